//! Runs one parsed command line: the dispatch from `cli::Command` to the modules that do the work.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::{Config, CreatePolicy, Terminal};
use crate::endpoint::Endpoint;
use crate::error::{Stdout, usage};
use crate::event::Observer;
use crate::exit::Status;
use crate::mirror::write::Create;
use crate::progress::Reporter;
use crate::prompt::{ask, have_terminal};
use crate::store::Access;
use crate::transport::{self, Role, STDIN_READ_AHEAD};

/// Runs the command; the caller prints the error and maps it to an exit status.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    crate::ioctl::mapped::fix_malloc_threshold();
    let cfg = Config::from_cli(&cli.global, Terminal::probe())?;
    let g = &cli.global;
    match &cli.command {
        Command::Dump => {
            let stats = crate::mirror::dump::dump(io::stdin().lock(), io::BufWriter::new(Stdout))?;
            if g.verbose > 0 {
                eprintln!("Mirror-dump: {} records, {} bytes", stats.records, stats.bytes);
            }
            Ok(Status::Success)
        }
        Command::Read { pfs, begin_tid } => cmd_read(&cfg, pfs, *begin_tid, false),
        Command::ReadStream { pfs, begin_tid } => cmd_read(&cfg, pfs, *begin_tid, true),
        Command::Write { pfs } => cmd_write(&cfg, pfs),
        Command::Copy { source, targets } => cmd_copy(&cfg, source, targets, false),
        Command::Stream { source, targets } => cmd_copy(&cfg, source, targets, true),
        Command::PfsMaster { pfs, options } => done(crate::pfscmd::create(pfs, false, options, &mut Stdout)),
        Command::PfsSlave { pfs, options } => done(crate::pfscmd::create(pfs, true, options, &mut Stdout)),
        Command::PfsStatus { pfs } => {
            let ok = crate::pfscmd::status(pfs, g.json, &mut Stdout)?;
            Ok(if ok { Status::Success } else { Status::Failure })
        }
        Command::PfsUpdate { pfs, options } => done(crate::pfscmd::update(pfs, options, &mut Stdout)),
        Command::PfsUpgrade { pfs } => done(crate::pfscmd::change_mode(pfs, true, &mut Stdout)),
        Command::PfsDowngrade { pfs } => done(crate::pfscmd::change_mode(pfs, false, &mut Stdout)),
        Command::PfsDestroy { pfs } => done(crate::pfscmd::destroy(pfs, g.yes, &ask, have_terminal(), &mut Stdout)),
        Command::Import { dir, pfs } => cmd_import(&cfg, dir, pfs),
        Command::SshRemote { role, prefix } => {
            let original = std::env::var_os("SSH_ORIGINAL_COMMAND");
            let argv = crate::remote::check(*role, prefix, original.as_deref())?;
            let inner = <Cli as clap::Parser>::try_parse_from(&argv).map_err(|e| usage(format!("ssh-remote: {e}")))?;
            run(inner)
        }
        Command::Completions { shell } => {
            crate::completions::print(*shell, &mut Stdout).context("writing the completion script")?;
            Ok(Status::Success)
        }
        Command::Help { command } => crate::help::print(command.as_deref(), &mut Stdout).map(|()| Status::Success),
        Command::Run => {
            crate::fleet::run::run(&crate::fleet::run::config_path(g.config.as_ref()), g, Terminal::probe())?;
            Ok(Status::Success)
        }
        Command::Config { action: crate::cli::ConfigAction::Check } => {
            let path = crate::fleet::run::config_path(g.config.as_ref());
            let fleet = crate::fleet::config::load(&path, g, Terminal::probe())?;
            for w in &fleet.warnings {
                eprintln!("hammer-mirror: warning: {w}");
            }
            crate::fleet::check(&fleet, &path, &mut Stdout)?;
            Ok(Status::Success)
        }
        Command::Verify { a, b, as_of } => cmd_verify(&cfg, a, b, *as_of),
        Command::Export { pfs, dir, as_of } => cmd_export(&cfg, pfs, dir, *as_of),
        Command::Watch { dir, pfs } => crate::watch::command(&cfg, g, dir, pfs),
    }
}

fn done(r: anyhow::Result<()>) -> anyhow::Result<Status> {
    r.map(|()| Status::Success)
}

fn endpoint(arg: &std::ffi::OsStr) -> anyhow::Result<Endpoint> {
    crate::endpoint::parse(arg).map_err(|e| usage(e.to_string()))
}

fn cmd_verify(cfg: &Config, a: &std::ffi::OsStr, b: &std::ffi::OsStr, as_of: Option<u64>) -> anyhow::Result<Status> {
    let (ea, eb) = (endpoint(a)?, endpoint(b)?);
    let reporter = Reporter::new(crate::config::Output { bars: false, ..cfg.output }, ea.to_string(), eb.to_string());
    let obs: Arc<dyn Observer> = reporter.clone();
    let report = match crate::verify::verify(&ea, &eb, as_of, &cfg.ssh, &obs) {
        Ok(r) => r,
        Err(e) => {
            let e = e.context(format!("verify {ea} {eb}"));
            if cfg.output.json {
                reporter.json(&serde_json::json!({
                    "time": crate::log::timestamp(),
                    "event": "verify",
                    "a": ea.to_string(),
                    "b": eb.to_string(),
                    "result": "failed",
                    "reason": crate::error::reason(&e),
                }));
            }
            return Err(e);
        }
    };
    if cfg.output.json {
        writeln!(Stdout, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(Stdout, "{}", crate::verify::text(&report))?;
    }
    Ok(if report.identical { Status::Success } else { Status::Failure })
}

fn cmd_import(cfg: &Config, dir: &Path, path: &Path) -> anyhow::Result<Status> {
    let store = crate::pfs::open_store(path, Access::Write).context("import")?;
    if crate::ioctl::Pfs::get_pseudofs(&store)?.is_slave() {
        return Err(crate::error::refused(format!(
            "import: {} is a slave: only mirror-write changes it (pfs-upgrade makes it a master)",
            path.display()
        )));
    }
    let t = Instant::now();
    let st = crate::store::import::import(&store, dir)
        .with_context(|| format!("import {} into {}", dir.display(), path.display()))?;
    if !cfg.output.quiet {
        eprintln!(
            "Imported {} into {} as TID 0x{:016x}: {} files, {} directories, {} symlinks, {} unchanged, {} removed, {} records changed, {} bytes read in {:.2} s",
            dir.display(),
            path.display(),
            st.tid,
            st.files,
            st.dirs,
            st.symlinks,
            st.unchanged,
            st.removed,
            st.changed_records,
            st.bytes_read,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(Status::Success)
}

fn cmd_export(cfg: &Config, path: &Path, dir: &Path, as_of: Option<u64>) -> anyhow::Result<Status> {
    let store = crate::pfs::open_store(path, Access::Read).context("export")?;
    let asof = match as_of {
        Some(t) => t,
        None => crate::store::export::default_asof(&store)?,
    };
    let pfsd = crate::ioctl::Pfs::get_pseudofs(&store)?;
    if pfsd.is_slave() && asof > pfsd.sync_end_tid {
        // Above it lies at most a pass the slave has not acknowledged: never shown.
        return Err(usage(format!(
            "export: {} is a slave whose history ends at its sync-end-tid {}; --as-of cannot go beyond it",
            path.display(),
            crate::log::tid(pfsd.sync_end_tid)
        )));
    }
    let created = !dir.exists();
    let st = match crate::store::export::export(&store, dir, asof) {
        Ok(st) => st,
        Err(e) => {
            // A failed export leaves no half tree behind in a directory it made.
            if created {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(anyhow::Error::new(e).context(format!("export {} to {}", path.display(), dir.display())));
        }
    };
    for w in &st.warnings {
        eprintln!("Warning: {w}");
    }
    if !cfg.output.quiet {
        eprintln!(
            "Exported {} as of 0x{asof:016x} to {}: {} files, {} directories, {} symlinks, {} other, {} bytes",
            path.display(),
            dir.display(),
            st.files,
            st.dirs,
            st.symlinks,
            st.special,
            st.bytes
        );
    }
    if !st.warnings.is_empty() {
        // Like rsync's partial-transfer status: the tree is there, but not all of it.
        eprintln!(
            "hammer-mirror: export incomplete: {} objects were skipped (see the warnings above)",
            st.warnings.len()
        );
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

/// Signal flags: `stop` is set by SIGINT and SIGTERM, `interrupted` by SIGINT only.
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub interrupted: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers; with `ignore_hup`, SIGHUP no longer ends the
    /// process (nohup-proof).
    pub fn install(ignore_hup: bool) -> anyhow::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s = Signals { stop: Arc::new(AtomicBool::new(false)), interrupted: Arc::new(AtomicBool::new(false)) };
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&s.stop)).context("installing signal handlers")?;
        }
        signal_hook::flag::register(SIGINT, Arc::clone(&s.interrupted)).context("installing signal handlers")?;
        if ignore_hup {
            signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false))).context("ignoring SIGHUP")?;
        }
        Ok(s)
    }
}

fn cmd_copy(
    cfg: &Config,
    source: &std::ffi::OsStr,
    targets: &[std::ffi::OsString],
    streaming: bool,
) -> anyhow::Result<Status> {
    let src = endpoint(source)?;
    let mut dsts = Vec::with_capacity(targets.len());
    for t in targets {
        let dst = endpoint(t)?;
        crate::orchestrate::check_pair(&src, &dst)?;
        if dsts.contains(&dst) {
            return Err(usage(format!("the target {dst} is given twice")));
        }
        dsts.push(dst);
    }
    let sig = Signals::install(streaming)?;
    if let [dst] = &dsts[..] {
        return run_pair(cfg, &src, dst, streaming, &sig);
    }
    // Several targets: one conversation each, in parallel, each with its own
    // lines (a bar per target would fight over the terminal; a question
    // would be asked by several at once, so a missing slave needs -y).
    let mut each = cfg.clone();
    each.output.bars = false;
    if each.create == CreatePolicy::Ask {
        each.create = CreatePolicy::Refuse;
    }
    let results: Vec<anyhow::Result<Status>> = std::thread::scope(|scope| {
        let runs: Vec<_> = dsts.iter().map(|dst| scope.spawn(|| run_pair(&each, &src, dst, streaming, &sig))).collect();
        runs.into_iter().map(|r| r.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a copy thread panicked")))).collect()
    });
    // The worst of the targets: a refusal, then a failure, then an interrupt.
    let mut worst = Status::Success;
    for r in results {
        let status = match r {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hammer-mirror: {e:#}");
                crate::exit::status_of(&e)
            }
        };
        worst = crate::exit::worst(worst, status);
    }
    Ok(worst)
}

/// One source to one target: a copy, or a stream until stopped or refused.
fn run_pair(cfg: &Config, src: &Endpoint, dst: &Endpoint, streaming: bool, sig: &Signals) -> anyhow::Result<Status> {
    let (s, d) = (src.to_string(), dst.to_string());
    let reporter = if streaming { Reporter::for_stream(cfg.output, s, d) } else { Reporter::new(cfg.output, s, d) };
    let obs: Arc<dyn Observer> = reporter.clone();
    let started = Instant::now();
    let result = if streaming {
        reporter.message(
            crate::log::Level::Info,
            &format!(
                "{} stream {src} -> {dst}: started (pid {}, passes at least {} s apart, stall timeout {})",
                crate::log::timestamp(),
                std::process::id(),
                cfg.read.delay.as_secs(),
                cfg.stall_timeout.map_or_else(|| "off".to_string(), |d| format!("{} s", d.as_secs()))
            ),
        );
        crate::orchestrate::stream(cfg, &obs, src, dst, &sig.stop).map(|()| None)
    } else {
        crate::orchestrate::copy(cfg, &obs, src, dst, &sig.stop).map(Some)
    };
    reporter.finish();
    if sig.interrupted.load(Ordering::Relaxed) {
        reporter.stopped("SIGINT");
        return Ok(Status::Interrupted);
    }
    if sig.stop.load(Ordering::Relaxed) {
        reporter.stopped("SIGTERM");
        if !streaming {
            return Ok(Status::Terminated);
        }
    }
    let what = if streaming { "stream" } else { "copy" };
    match result {
        Err(e) => Err(e.context(format!("{what} {src} to {dst}"))),
        Ok(Some(o)) if matches!((src, dst), (Endpoint::Remote(_), Endpoint::Remote(_))) => {
            // Both halves ran remotely: no pass events reached us; report the run.
            reporter.report(&crate::progress::PassReport {
                time: crate::log::timestamp(),
                event: "pass",
                source: src.to_string(),
                target: dst.to_string(),
                tid_beg: None,
                tid_end: o.acked_tid.map(crate::log::tid),
                records: 0,
                bytes: o.bytes,
                link_bytes: o.bytes,
                ratio: crate::progress::ratio(o.bytes, o.bytes),
                seconds: crate::progress::since(started),
                result: "synced",
                reason: None,
            });
            Ok(Status::Success)
        }
        Ok(_) => Ok(Status::Success),
    }
}

fn cmd_read(cfg: &Config, path: &Path, begin_tid: Option<u64>, streaming: bool) -> anyhow::Result<Status> {
    if io::stdout().is_terminal() {
        return Err(usage(
            "refusing to write a binary mirror stream to a terminal; pipe it into `hammer-mirror write <pfs>` or a file",
        ));
    }
    let pfs =
        crate::pfs::open(path, Access::Read).map_err(|e| crate::mirror::in_half(e.into(), "mirror-read", path))?;
    let opts = crate::mirror::read::ReadOpts { streaming, begin_tid, ..cfg.read.clone() };
    let sig = Signals::install(false)?;
    let (stdin, stdout) = transport::stdio().context("duplicating stdin/stdout")?;
    let link = transport::stack(stdin, stdout, Role::Source, &cfg.link).context("setting up the link")?;
    let reporter = half_reporter(cfg, path.display().to_string(), "stdout".into());
    let r = crate::mirror::read::read(pfs.as_ref(), &opts, link.tx, link.rx, reporter.as_ref(), &sig.stop);
    reporter.finish();
    r?;
    Ok(Status::Success)
}

/// The reporter of a half run on its own: a remote half of copy (`-2`)
/// only speaks up with messages; its orchestrator reports the passes.
fn half_reporter(cfg: &Config, source: String, target: String) -> Arc<Reporter> {
    if cfg.read.two_way {
        Reporter::for_remote_half(cfg.output, source, target)
    } else {
        Reporter::new(cfg.output, source, target)
    }
}

fn cmd_write(cfg: &Config, path: &Path) -> anyhow::Result<Status> {
    let create = match cfg.create {
        CreatePolicy::Yes => Create::Yes,
        CreatePolicy::Ask => Create::Ask(&ask),
        CreatePolicy::Refuse => Create::Refuse,
    };
    let sig = Signals::install(false)?;
    let (stdin, stdout) = transport::stdio().context("duplicating stdin/stdout")?;
    // Keep draining the pipe (ssh) while the store waits for the disk.
    let link_opts = transport::LinkOpts { read_ahead: Some(STDIN_READ_AHEAD), ..cfg.link.clone() };
    let link = transport::stack(stdin, stdout, Role::Target, &link_opts).context("setting up the link")?;
    // In two-way mode stdout is the stream back to the source.
    let (back, mut text): (Box<dyn Write + Send>, Box<dyn Write>) =
        if cfg.write.two_way { (link.tx, Box::new(io::sink())) } else { (Box::new(io::sink()), Box::new(Stdout)) };
    let reporter = half_reporter(cfg, "stdin".into(), path.display().to_string());
    let opener = crate::pfs::PathOpener(path.to_path_buf());
    let r = crate::mirror::write::write(
        &opener,
        &cfg.write,
        create,
        link.rx,
        back,
        &mut *text,
        reporter.as_ref(),
        &sig.stop,
    );
    reporter.finish();
    r?;
    Ok(Status::Success)
}
