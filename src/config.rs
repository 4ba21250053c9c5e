//! The configuration of a run, derived from the command line by one pure function; the defaults, named once.
//!
//! `cli` only describes syntax. [`Config::from_cli`] validates and derives
//! everything the orchestrator, the halves and the reporters need, given
//! what the process found about its terminals ([`Terminal`], probed by the
//! caller), so that it can be table-tested and so that another source of
//! options (a configuration file) can produce the same [`Config`].

use std::time::Duration;

use crate::cli::{GlobalOpts, ProgressWhen};
use crate::mirror::read::ReadOpts;
use crate::mirror::write::WriteOpts;
use crate::ssh::SshOpts;
use crate::transport::LinkOpts;
use crate::transport::frame::Compress;

pub use crate::defaults;

/// What the process has for terminals (probed once by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminal {
    pub stdin: bool,
    pub stderr: bool,
    /// A controlling terminal to ask questions on (/dev/tty opens).
    pub tty: bool,
}

impl Terminal {
    pub fn probe() -> Terminal {
        use std::io::IsTerminal;
        Terminal {
            stdin: std::io::stdin().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
            tty: crate::prompt::have_terminal(),
        }
    }
}

/// What to do about a missing local target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatePolicy {
    /// `-y`.
    Yes,
    /// Ask on the terminal.
    Ask,
    /// No terminal, no `-y`: refuse (exit 3).
    Refuse,
}

/// How a stream waits after a lost link: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// How the run reports (see `progress::Reporter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Progress bars are drawn.
    pub bars: bool,
    /// Bars are forced onto a stderr that is not a terminal (`--progress always`).
    pub forced: bool,
    pub quiet: bool,
    pub json: bool,
    pub verbose: u8,
}

/// Everything a command needs, derived from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub output: Output,
    /// The source half's options (copy and stream set `two_way`/`streaming`).
    pub read: ReadOpts,
    pub write: WriteOpts,
    /// What wraps a local half's streams (`-b`).
    pub link: LinkOpts,
    pub ssh: SshOpts,
    pub create: CreatePolicy,
    /// End a run that shows no progress for this long.
    pub stall_timeout: Option<Duration>,
    pub retry: Backoff,
}

/// The heartbeat interval of a stream whose stall timeout is `stall` seconds.
pub fn heartbeat(stall: u64) -> Option<Duration> {
    (stall > 0).then(|| Duration::from_secs((stall / 4).max(1)))
}

/// Whether bars are drawn for `--progress when`, `-q`, and stderr.
pub fn bars_enabled(when: ProgressWhen, quiet: bool, stderr_is_terminal: bool) -> bool {
    match when {
        ProgressWhen::Always => true,
        ProgressWhen::Never => false,
        ProgressWhen::Auto => !quiet && stderr_is_terminal,
    }
}

impl Config {
    /// Validates and derives the configuration (no system calls).
    pub fn from_cli(g: &GlobalOpts, term: Terminal) -> anyhow::Result<Config> {
        let bars = bars_enabled(g.progress, g.quiet, term.stderr);
        let program = match &g.ssh {
            Some(cmd) => crate::ssh::split_command(cmd).map_err(crate::error::usage)?,
            None => vec![defaults::SSH.into()],
        };
        // -X asks for ssh's compression: ours would only feed it what it cannot shrink.
        let compression = g.compression.unwrap_or(if g.compress { Compress::None } else { Compress::Auto });
        let ssh = SshOpts {
            program,
            compress: g.compress,
            port: g.port,
            options: g.ssh_option.clone(),
            // Nobody can type a password: not without a terminal, nor under a bar.
            batch: !term.stdin || bars,
            remote_cmd: g.remote_cmd.clone().into(),
            verbose: g.verbose,
            quiet: g.quiet,
            yes: g.yes,
            timeout: g.timeout,
            splitup: g.splitup.as_ref().map(|s| s.text.clone()),
            bandwidth: g.bandwidth.as_ref().map(|b| b.text.clone()),
            bulk: g.bulk,
            delay: (g.delay != defaults::DELAY).then_some(g.delay),
            stall_timeout: (g.stall_timeout != defaults::STALL_TIMEOUT).then_some(g.stall_timeout),
            link_compress: (compression != Compress::None).then_some(compression),
            before_connect: None,
        };
        if ssh.stock_remote() && matches!(compression, Compress::Zstd(_) | Compress::Lz4) {
            return Err(crate::error::usage(format!(
                "--compress {} needs hammer-mirror on the remote side: stock hammer (--remote-cmd {}) cannot decompress; \
                 use --compress none (or -X for ssh -C)",
                // As the user would write it: "zstd" for the default level.
                if compression == Compress::Zstd(crate::transport::frame::DEFAULT_ZSTD_LEVEL) {
                    "zstd".to_string()
                } else {
                    compression.word()
                },
                g.remote_cmd
            )));
        }
        let first = Duration::from_secs(g.retry_delay.unwrap_or(defaults::RETRY_BASE + g.delay));
        Ok(Config {
            output: Output { bars, forced: bars && !term.stderr, quiet: g.quiet, json: g.json, verbose: g.verbose },
            read: ReadOpts {
                verbose: g.verbose,
                two_way: g.two_way,
                streaming: false,
                timeout: g.timeout.map(Duration::from_secs),
                splitup: g.splitup.as_ref().map_or(defaults::SPLITUP, |s| s.bytes.max(1)),
                cycle_file: g.cycle_file.clone(),
                delay: Duration::from_secs(g.delay),
                bulk: g.bulk,
                begin_tid: None,
                heartbeat: heartbeat(g.stall_timeout),
                gate: None,
            },
            write: WriteOpts { verbose: g.verbose, two_way: g.two_way },
            link: LinkOpts {
                bandwidth: g.bandwidth.as_ref().map(|b| b.bytes),
                read_ahead: None,
                budget: None,
                frame: g.link_compress.filter(|c| *c != Compress::None),
                stats: None,
            },
            ssh,
            create: if g.yes {
                CreatePolicy::Yes
            } else if term.tty {
                CreatePolicy::Ask
            } else {
                CreatePolicy::Refuse
            },
            stall_timeout: (g.stall_timeout > 0).then(|| Duration::from_secs(g.stall_timeout)),
            retry: Backoff { first, max: Duration::from_secs(g.max_retry_delay).max(first) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn cfg(args: &[&str], term: Terminal) -> Config {
        let mut argv = vec!["hammer-mirror"];
        argv.extend_from_slice(args);
        argv.push("dump");
        Config::from_cli(&Cli::try_parse_from(argv).unwrap().global, term).unwrap()
    }

    const NOHUP: Terminal = Terminal { stdin: false, stderr: false, tty: false };
    const TTY: Terminal = Terminal { stdin: true, stderr: true, tty: true };

    #[test]
    fn defaults_are_hammers() {
        let c = cfg(&[], NOHUP);
        assert_eq!(c.read.delay, Duration::from_secs(5));
        assert_eq!(c.read.splitup, 4 << 30);
        assert_eq!(c.retry, Backoff { first: Duration::from_secs(20), max: Duration::from_secs(300) });
        assert_eq!(c.stall_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.read.heartbeat, Some(Duration::from_secs(75)));
        assert_eq!(c.create, CreatePolicy::Refuse);
        assert!(c.ssh.batch && !c.output.bars);
        assert_eq!((c.ssh.delay, c.ssh.stall_timeout), (None, None), "defaults are not passed on");
        assert_eq!(c.ssh.program, ["ssh"]);
    }

    #[test]
    fn options_derive_their_values() {
        let c = cfg(&["-i", "2", "-S", "1m", "-b", "50m", "--stall-timeout", "0", "-y"], NOHUP);
        assert_eq!(c.retry.first, Duration::from_secs(17), "15 + -i");
        assert_eq!(c.read.splitup, 1 << 20);
        assert_eq!(c.link.bandwidth, Some(50 << 20));
        assert_eq!(c.ssh.bandwidth.as_deref(), Some("50m"), "passed on as typed");
        assert_eq!(c.stall_timeout, None);
        assert_eq!(c.read.heartbeat, None);
        assert_eq!(c.create, CreatePolicy::Yes);
        assert_eq!((c.ssh.delay, c.ssh.stall_timeout), (Some(2), Some(0)));
        let c = cfg(&["--retry-delay", "400", "--max-retry-delay", "60"], NOHUP);
        assert_eq!(c.retry, Backoff { first: Duration::from_secs(400), max: Duration::from_secs(400) });
    }

    #[test]
    fn terminals_decide_prompts_bars_and_batch_mode() {
        let c = cfg(&[], TTY);
        assert!(c.output.bars && !c.output.forced);
        assert!(c.ssh.batch, "a bar is drawn: no password prompt under it");
        assert_eq!(c.create, CreatePolicy::Ask);
        let c = cfg(&["--progress", "never"], TTY);
        assert!(!c.output.bars && !c.ssh.batch, "a terminal and no bar: ssh may ask");
        let c = cfg(&["-q"], TTY);
        assert!(!c.output.bars);
        let c = cfg(&["--progress", "always"], NOHUP);
        assert!(c.output.bars && c.output.forced);
    }

    #[test]
    fn compression_is_auto_unless_told_or_ssh_compresses() {
        assert_eq!(cfg(&[], NOHUP).ssh.link_compress, Some(Compress::Auto));
        assert_eq!(cfg(&["--compress", "zstd:7"], NOHUP).ssh.link_compress, Some(Compress::Zstd(7)));
        assert_eq!(cfg(&["--compress", "none"], NOHUP).ssh.link_compress, None);
        assert_eq!(cfg(&["-X"], NOHUP).ssh.link_compress, None, "-X alone: ssh compresses");
        assert_eq!(cfg(&["-X", "--compress", "lz4"], NOHUP).ssh.link_compress, Some(Compress::Lz4));
        let stock = cfg(&["--remote-cmd", "/sbin/hammer"], NOHUP);
        assert_eq!(stock.ssh.framing(), None, "stock hammer gets no frames");
        let g = Cli::try_parse_from(["hammer-mirror", "--remote-cmd", "hammer", "--compress", "zstd", "dump"])
            .unwrap()
            .global;
        let e = Config::from_cli(&g, NOHUP).unwrap_err();
        assert!(e.to_string().contains("needs hammer-mirror on the remote side"), "{e:#}");
        assert_eq!(cfg(&[], NOHUP).link.frame, None, "only a remote half is framed");
        assert_eq!(cfg(&["--link-compress", "zstd:2"], NOHUP).link.frame, Some(Compress::Zstd(2)));
    }

    #[test]
    fn a_bad_ssh_command_is_a_usage_error() {
        let g = Cli::try_parse_from(["hammer-mirror", "--ssh", "ssh 'x", "dump"]).unwrap().global;
        let e = Config::from_cli(&g, NOHUP).unwrap_err();
        assert!(matches!(crate::error::kind(&e), Some(crate::error::MirrorError::Usage(_))), "{e:#}");
        assert!(e.to_string().contains("cannot parse ssh command"), "{e:#}");
    }
}
