//! The configuration file of `run` and `config check`: jobs of a source and its targets, defaults, global limits (TOML).
//!
//! ```toml
//! [global]
//! max_concurrent = 4      # passes moving data at once, over all jobs
//! bandwidth = "100m"      # bytes per second over all local sources, shared fairly
//!
//! [defaults]              # every job's options unless it sets its own
//! interval = 30
//! ssh_options = ["IdentityFile=/etc/hammer-mirror/id_ed25519"]
//!
//! [[job]]
//! name = "projects"
//! source = "/pfs/projects"
//! targets = ["backup:/backup/projects", "offsite:/backup/projects"]
//!
//! [[job]]
//! name = "homes"
//! source = "/pfs/home/*"             # a glob: every PFS it matches
//! targets = ["backup:/backup/home/"] # ends in /: the PFS's own name is added
//! ```
//!
//! Parsing is pure: [`parse`] takes the text and the command line's global
//! options (the base every job starts from) and returns the expanded list
//! of pairs, each with the `Config` the orchestrator runs it with (through
//! `Config::from_cli`, as a command line would), or an error naming the
//! file, the line and the key. Only the glob expansion reads the file
//! system, through the `expand` function it is given.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::cli::{GlobalOpts, parse_size};
use crate::config::{Config, Terminal};
use crate::endpoint::Endpoint;

/// The configuration file when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/hammer-mirror/hammer-mirror.toml";

macro_rules! options {
    ($(#[$m:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($extra)*
            /// -i, seconds
            interval: Option<Spanned<u64>>,
            /// -b, a size such as "50m"
            bandwidth: Option<Spanned<String>>,
            /// -S, a size
            split: Option<Spanned<String>>,
            retry_delay: Option<Spanned<u64>>,
            max_retry_delay: Option<Spanned<u64>>,
            stall_timeout: Option<Spanned<u64>>,
            /// ssh's -o options
            ssh_options: Option<Spanned<Vec<String>>>,
            /// --ssh
            ssh: Option<Spanned<String>>,
            port: Option<Spanned<u16>>,
            remote_cmd: Option<Spanned<String>>,
            /// -y: create missing slaves
            create: Option<Spanned<bool>>,
            /// -B
            bulk: Option<Spanned<bool>>,
            /// stream --prune: retention rules for the (local) source
            prune: Option<Spanned<String>>,
            /// stream --prune-every, seconds
            prune_every: Option<Spanned<u64>>,
            /// --compress: auto, zstd[:LEVEL], lz4 or none
            compress: Option<Spanned<String>>,
        }
    };
}

options!(
    /// Options a job may set, and their defaults.
    Options {}
);

options!(
    /// One `[[job]]`.
    Job {
        name: Spanned<String>,
        source: Spanned<String>,
        targets: Spanned<Vec<String>>,
    }
);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Global {
    max_concurrent: Option<Spanned<usize>>,
    bandwidth: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    global: Global,
    defaults: Option<Options>,
    #[serde(default, rename = "job")]
    jobs: Vec<Job>,
}

/// What `run` does for one target of one job.
#[derive(Debug, Clone)]
pub struct Pair {
    pub job: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub config: Config,
    /// The options as given (what a reload compares to tell a changed pair).
    pub opts: String,
    /// `prune` (and `prune_every`, seconds): prune the local source after acknowledged passes.
    pub prune: Option<(crate::retention::Rules, u64)>,
}

/// The whole configuration, expanded.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub pairs: Vec<Pair>,
    pub max_concurrent: Option<usize>,
    pub bandwidth: Option<u64>,
    /// How many jobs the file has (a glob job counts once).
    pub jobs: usize,
    /// What is worth saying but not an error (a glob that matches nothing yet).
    pub warnings: Vec<String>,
}

/// A configuration error: where, which key, what.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {key}: {what}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub what: String,
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: impl Into<String>, what: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: line_of(self.text, span.start),
            key: key.into(),
            what: what.into(),
        }
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Parses and expands a configuration. `base` is the command line's global
/// options; `expand` lists the local paths a glob matches.
pub fn parse(
    file: &Path,
    text: &str,
    base: &GlobalOpts,
    term: Terminal,
    expand: &dyn Fn(&str) -> Result<Vec<PathBuf>, String>,
) -> Result<Fleet, ConfigError> {
    let cx = Ctx { file, text };
    let f: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        let what = e.message().to_string();
        // The key: the one the message names, else the one on the error's line.
        let on_line = e.span().and_then(|s| {
            let start = text[..s.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
            let line = text[start..].lines().next().unwrap_or("");
            line.split_once('=').map(|(k, _)| k.trim().to_string()).filter(|k| !k.is_empty())
        });
        let key = what
            .split('`')
            .nth(1)
            .filter(|_| what.starts_with("unknown field") || what.starts_with("missing field"))
            .map(str::to_string)
            .or(on_line)
            .unwrap_or_else(|| "-".to_string());
        ConfigError { file: file.to_path_buf(), line, key, what }
    })?;
    let max_concurrent = match &f.global.max_concurrent {
        Some(m) if *m.get_ref() == 0 => return Err(cx.err(m.span(), "global.max_concurrent", "must be at least 1")),
        m => m.as_ref().map(|m| *m.get_ref()),
    };
    let bandwidth = match &f.global.bandwidth {
        Some(b) => Some(size(&cx, b, "global.bandwidth")?),
        None => None,
    };
    let mut pairs: Vec<Pair> = Vec::new();
    let mut warnings = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, job) in f.jobs.iter().enumerate() {
        let name = job.name.get_ref().clone();
        let key = |k: &str| format!("job {} ({name}) {k}", i + 1);
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(cx.err(job.name.span(), key("name"), "a job name is one word"));
        }
        if !names.insert(name.clone()) {
            return Err(cx.err(job.name.span(), key("name"), "two jobs have this name"));
        }
        let mut g = base.clone();
        if let Some(d) = &f.defaults {
            apply(&cx, &d.as_view(), &mut g, &|k| format!("defaults.{k}"))?;
        }
        apply(&cx, &job.as_view(), &mut g, &key)?;
        let config =
            Config::from_cli(&g, term).map_err(|e| cx.err(job.name.span(), key("options"), format!("{e:#}")))?;
        let prune = job_prune(&cx, f.defaults.as_ref(), job, &key)?;
        if job.targets.get_ref().is_empty() {
            return Err(cx.err(job.targets.span(), key("targets"), "a job needs at least one target"));
        }
        let src_text = job.source.get_ref();
        let sources: Vec<String> = if has_glob(src_text) {
            let parsed = crate::endpoint::parse(std::ffi::OsStr::new(src_text))
                .map_err(|e| cx.err(job.source.span(), key("source"), e.to_string()))?;
            if matches!(parsed, Endpoint::Remote(_)) {
                return Err(cx.err(job.source.span(), key("source"), "a glob names local PFSs only"));
            }
            let found = expand(src_text).map_err(|e| cx.err(job.source.span(), key("source"), e))?;
            if found.is_empty() {
                // Not an error: the PFSs may come later (a SIGHUP to run picks them up).
                warnings.push(format!(
                    "{}:{}: {}: no PFS matches {src_text} yet",
                    file.display(),
                    line_of(text, job.source.span().start),
                    key("source")
                ));
            }
            found.into_iter().map(|p| p.display().to_string()).collect()
        } else {
            vec![src_text.clone()]
        };
        for src in &sources {
            let source = crate::endpoint::parse(std::ffi::OsStr::new(src))
                .map_err(|e| cx.err(job.source.span(), key("source"), e.to_string()))?;
            if prune.is_some() && matches!(source, Endpoint::Remote(_)) {
                return Err(cx.err(
                    job.source.span(),
                    key("prune"),
                    "prune needs a local source (prune a remote one on its own host)",
                ));
            }
            let base_name = Path::new(src).file_name().map(|n| n.to_string_lossy().into_owned());
            for t in job.targets.get_ref() {
                let t = match (t.ends_with('/'), &base_name) {
                    (true, Some(n)) => format!("{t}{n}"),
                    (false, _) if sources.len() > 1 => {
                        return Err(cx.err(
                            job.targets.span(),
                            key("targets"),
                            format!("{t}: a glob source needs targets that are directories (ending in /)"),
                        ));
                    }
                    _ => t.clone(),
                };
                let target = crate::endpoint::parse(std::ffi::OsStr::new(&t))
                    .map_err(|e| cx.err(job.targets.span(), key("targets"), e.to_string()))?;
                if target == source {
                    return Err(cx.err(job.targets.span(), key("targets"), format!("{t} is the source itself")));
                }
                if let Some(p) = pairs.iter().find(|p| p.target == target) {
                    return Err(cx.err(
                        job.targets.span(),
                        key("targets"),
                        format!("{t} is a target of job {} already: two streams into one slave", p.job),
                    ));
                }
                pairs.push(Pair {
                    job: name.clone(),
                    source: source.clone(),
                    target,
                    config: config.clone(),
                    opts: format!("{g:?} {prune:?}"),
                    prune: prune.clone(),
                });
            }
        }
    }
    Ok(Fleet { pairs, max_concurrent, bandwidth, jobs: f.jobs.len(), warnings })
}

/// A job's `prune` and `prune_every` (its own, else the defaults').
fn job_prune(
    cx: &Ctx<'_>,
    defaults: Option<&Options>,
    job: &Job,
    key: &dyn Fn(&str) -> String,
) -> Result<Option<(crate::retention::Rules, u64)>, ConfigError> {
    let (rules, rules_key) = match (&job.prune, defaults.and_then(|d| d.prune.as_ref())) {
        (Some(r), _) => (r, key("prune")),
        (None, Some(r)) => (r, "defaults.prune".to_string()),
        (None, None) => return Ok(None),
    };
    let rules = crate::retention::Rules::parse(rules.get_ref()).map_err(|e| cx.err(rules.span(), rules_key, e))?;
    let every = match (&job.prune_every, defaults.and_then(|d| d.prune_every.as_ref())) {
        (Some(e), _) | (None, Some(e)) if *e.get_ref() == 0 => {
            return Err(cx.err(e.span(), key("prune_every"), "must be at least 1 second"));
        }
        (Some(e), _) | (None, Some(e)) => *e.get_ref(),
        (None, None) => crate::defaults::PRUNE_EVERY,
    };
    Ok(Some((rules, every)))
}

fn size(cx: &Ctx<'_>, s: &Spanned<String>, key: &str) -> Result<u64, ConfigError> {
    parse_size(s.get_ref()).map(|z| z.bytes).map_err(|e| cx.err(s.span(), key, e))
}

/// The option fields of a job or of the defaults, as one view.
struct View<'a> {
    interval: &'a Option<Spanned<u64>>,
    bandwidth: &'a Option<Spanned<String>>,
    split: &'a Option<Spanned<String>>,
    retry_delay: &'a Option<Spanned<u64>>,
    max_retry_delay: &'a Option<Spanned<u64>>,
    stall_timeout: &'a Option<Spanned<u64>>,
    ssh_options: &'a Option<Spanned<Vec<String>>>,
    ssh: &'a Option<Spanned<String>>,
    port: &'a Option<Spanned<u16>>,
    remote_cmd: &'a Option<Spanned<String>>,
    create: &'a Option<Spanned<bool>>,
    bulk: &'a Option<Spanned<bool>>,
    compress: &'a Option<Spanned<String>>,
}

macro_rules! view {
    ($t:ty) => {
        impl $t {
            fn as_view(&self) -> View<'_> {
                View {
                    interval: &self.interval,
                    bandwidth: &self.bandwidth,
                    split: &self.split,
                    retry_delay: &self.retry_delay,
                    max_retry_delay: &self.max_retry_delay,
                    stall_timeout: &self.stall_timeout,
                    ssh_options: &self.ssh_options,
                    ssh: &self.ssh,
                    port: &self.port,
                    remote_cmd: &self.remote_cmd,
                    create: &self.create,
                    bulk: &self.bulk,
                    compress: &self.compress,
                }
            }
        }
    };
}
view!(Options);
view!(Job);

/// Sets the options `v` gives on `g`.
fn apply(cx: &Ctx<'_>, v: &View<'_>, g: &mut GlobalOpts, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let sized = |s: &Spanned<String>, k: &str| -> Result<crate::cli::Size, ConfigError> {
        parse_size(s.get_ref()).map_err(|e| cx.err(s.span(), key(k), e))
    };
    if let Some(x) = v.interval {
        g.delay = *x.get_ref();
    }
    if let Some(x) = v.bandwidth {
        let b = sized(x, "bandwidth")?;
        if b.bytes == 0 {
            return Err(cx.err(x.span(), key("bandwidth"), "0 bytes per second would never send anything"));
        }
        g.bandwidth = Some(b);
    }
    if let Some(x) = v.split {
        g.splitup = Some(sized(x, "split")?);
    }
    if let Some(x) = v.retry_delay {
        g.retry_delay = Some(*x.get_ref());
    }
    if let Some(x) = v.max_retry_delay {
        g.max_retry_delay = *x.get_ref();
    }
    if let Some(x) = v.stall_timeout {
        g.stall_timeout = *x.get_ref();
    }
    if let Some(x) = v.ssh_options {
        g.ssh_option = x.get_ref().iter().map(OsString::from).collect();
    }
    if let Some(x) = v.ssh {
        crate::ssh::split_command(x.get_ref()).map_err(|e| cx.err(x.span(), key("ssh"), e))?;
        g.ssh = Some(x.get_ref().clone());
    }
    if let Some(x) = v.port {
        g.port = Some(*x.get_ref());
    }
    if let Some(x) = v.remote_cmd {
        crate::cli::parse_remote_cmd(x.get_ref()).map_err(|e| cx.err(x.span(), key("remote_cmd"), e))?;
        g.remote_cmd = x.get_ref().clone();
    }
    if let Some(x) = v.create {
        g.yes = *x.get_ref();
    }
    if let Some(x) = v.bulk {
        g.bulk = *x.get_ref();
    }
    if let Some(x) = v.compress {
        let c =
            crate::transport::frame::Compress::parse(x.get_ref()).map_err(|e| cx.err(x.span(), key("compress"), e))?;
        g.compression = Some(c);
    }
    Ok(())
}

/// The local paths a glob matches, sorted (for `parse`).
pub fn glob_paths(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.map_err(|e| e.to_string())?;
        // PFS store files, or HAMMER PFS directories; not the stores' lock files.
        if !p.to_string_lossy().ends_with("-lock")
            && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and parses the configuration file at `path`.
pub fn load(path: &Path, base: &GlobalOpts, term: Terminal) -> anyhow::Result<Fleet> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::error::usage(format!("config: cannot read {}: {e}", path.display())))?;
    parse(path, &text, base, term, &glob_paths).map_err(|e| crate::error::usage(format!("config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn base() -> GlobalOpts {
        Cli::try_parse_from(["hammer-mirror", "run"]).unwrap().global
    }

    fn no_glob(_: &str) -> Result<Vec<PathBuf>, String> {
        Ok(vec!["/pfs/a".into(), "/pfs/b".into()])
    }

    fn fleet(text: &str) -> Result<Fleet, ConfigError> {
        parse(Path::new("f.toml"), text, &base(), Terminal::default(), &no_glob)
    }

    #[test]
    fn jobs_expand_into_pairs_with_their_options() {
        let f = fleet(
            r#"
[global]
max_concurrent = 2
bandwidth = "10m"

[defaults]
interval = 30
ssh_options = ["IdentityFile=/k"]

[[job]]
name = "one"
source = "/pfs/x"
targets = ["backup:/b/x", "/local/x"]
interval = 7

[[job]]
name = "many"
source = "/pfs/*"
targets = ["backup:/b/"]
create = true
compress = "zstd:6"
"#,
        )
        .unwrap();
        assert_eq!((f.jobs, f.max_concurrent, f.bandwidth), (2, Some(2), Some(10 << 20)));
        let names: Vec<String> = f.pairs.iter().map(|p| format!("{}: {} -> {}", p.job, p.source, p.target)).collect();
        assert_eq!(
            names,
            [
                "one: /pfs/x -> backup:/b/x",
                "one: /pfs/x -> /local/x",
                "many: /pfs/a -> backup:/b/a",
                "many: /pfs/b -> backup:/b/b"
            ]
        );
        assert_eq!(f.pairs[0].config.read.delay.as_secs(), 7, "the job's own interval");
        assert_eq!(f.pairs[2].config.read.delay.as_secs(), 30, "the default");
        assert_eq!(f.pairs[0].config.ssh.options, [OsString::from("IdentityFile=/k")]);
        assert_eq!(f.pairs[2].config.create, crate::config::CreatePolicy::Yes);
        use crate::transport::frame::Compress;
        assert_eq!(f.pairs[2].config.ssh.link_compress, Some(Compress::Zstd(6)));
        assert_eq!(f.pairs[0].config.ssh.link_compress, Some(Compress::Auto), "the default");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = |t: &str| fleet(t).unwrap_err().to_string();
        assert_eq!(
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\nintervl = 3\n"),
            "f.toml:5: intervl: unknown field `intervl`, expected one of `name`, `source`, `targets`, `interval`, `bandwidth`, `split`, `retry_delay`, `max_retry_delay`, `stall_timeout`, `ssh_options`, `ssh`, `port`, `remote_cmd`, `create`, `bulk`, `prune`, `prune_every`, `compress`"
        );
        assert_eq!(
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\nbandwidth = \"5x\"\n"),
            "f.toml:5: job 1 (a) bandwidth: invalid size '5x': expected a number with an optional k, m or g suffix (e.g. 4g)"
        );
        assert_eq!(
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"-h:/q\"]\n"),
            "f.toml:4: job 1 (a) targets: endpoint '-h:/q': a host may not start with '-'"
        );
        assert_eq!(e("[global]\nmax_concurrent = 0\n"), "f.toml:2: global.max_concurrent: must be at least 1");
        assert!(
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\ncompress = \"gzip\"\n")
                .starts_with("f.toml:5: job 1 (a) compress: invalid compression 'gzip'"),
            "{}",
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\ncompress = \"gzip\"\n")
        );
        assert!(
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\n").starts_with("f.toml:1: targets: missing field `targets`"),
            "{}",
            e("[[job]]\nname = \"a\"\nsource = \"/p\"\n")
        );
        assert_eq!(
            e("[[job]]\nname = \"a\"\nsource = \"/pfs/*\"\ntargets = [\"backup:/b\"]\n"),
            "f.toml:4: job 1 (a) targets: backup:/b: a glob source needs targets that are directories (ending in /)"
        );
        assert_eq!(
            e(
                "[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\n[[job]]\nname = \"b\"\nsource = \"/r\"\ntargets = [\"/q\"]\n"
            ),
            "f.toml:8: job 2 (b) targets: /q is a target of job a already: two streams into one slave"
        );
    }

    #[test]
    fn prune_is_a_local_sources_own_and_its_rules_are_checked() {
        let f = fleet(
            "[defaults]\nprune = \"1d:all\"\n[[job]]\nname = \"a\"\nsource = \"/pfs/a\"\ntargets = [\"/b/a\"]\nprune_every = 60\n",
        )
        .unwrap();
        let (rules, every) = f.pairs[0].prune.clone().unwrap();
        assert_eq!((rules.to_string().as_str(), every), ("1d:all", 60));
        let err = fleet("[[job]]\nname = \"a\"\nsource = \"/pfs/a\"\ntargets = [\"/b/a\"]\nprune = \"1d:al\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f.toml:5: job 1 (a) prune: rule '1d:al': 'al'"), "{err}");
        let err = fleet("[[job]]\nname = \"a\"\nsource = \"h:/pfs/a\"\ntargets = [\"/b/a\"]\nprune = \"1d:all\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prune needs a local source"), "{err}");
        assert!(
            fleet("[[job]]\nname = \"a\"\nsource = \"/pfs/a\"\ntargets = [\"/b/a\"]\n").unwrap().pairs[0]
                .prune
                .is_none()
        );
    }
}
