//! The ssh command line of a remote peer and ssh failure typing (pure functions).
//!
//! Every word after the destination is quoted for the remote user's shell
//! by [`crate::shellword::quote`] (ssh joins them into one line). Nothing
//! here runs a process.

use std::ffi::OsString;

use crate::endpoint::Remote;
pub use crate::shellword::{WordError, check_word, quote, split_line};

/// The mirror verb a remote peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Read,
    ReadStream,
    Write,
}

impl Verb {
    pub fn word(self) -> &'static str {
        match self {
            Verb::Read => "mirror-read",
            Verb::ReadStream => "mirror-read-stream",
            Verb::Write => "mirror-write",
        }
    }
}

/// What the orchestrator's options put on a remote command line.
#[derive(Debug, Clone, Default)]
pub struct SshOpts {
    /// The ssh program and its leading options (`--ssh` / `HAMMER_RSH`), already split.
    pub program: Vec<OsString>,
    /// `-X`/`-C`: ssh -C.
    pub compress: bool,
    /// `-p`.
    pub port: Option<u16>,
    /// `-o` options, in order.
    pub options: Vec<OsString>,
    /// stdin is not a terminal: add `-o BatchMode=yes`.
    pub batch: bool,
    /// `--remote-cmd`.
    pub remote_cmd: OsString,
    pub verbose: u8,
    /// `-q`, passed to our own remote so that it only says what matters.
    pub quiet: bool,
    pub yes: bool,
    /// `-t` (source only).
    pub timeout: Option<u64>,
    /// `-S` as typed (source only).
    pub splitup: Option<String>,
    /// `-b` as typed (source only, and only to our own remote).
    pub bandwidth: Option<String>,
    /// `-B` (source only).
    pub bulk: bool,
    /// `-i` (source only, our own remote): minimum delay between stream passes.
    pub delay: Option<u64>,
    /// `--stall-timeout` when not the default (source only, our own remote).
    pub stall_timeout: Option<u64>,
    /// `--compress` unless none: our own remote is given `--link-compress`
    /// and the link is framed both ways (see [`SshOpts::framing`]).
    pub link_compress: Option<crate::transport::frame::Compress>,
    /// Called before each ssh child is started (`run`: its host's ControlMaster is up).
    pub before_connect: Option<std::sync::Arc<dyn BeforeConnect>>,
}

/// What must happen before an ssh child connects to a remote host.
pub trait BeforeConnect: std::fmt::Debug + Send + Sync {
    fn before_connect(&self, o: &SshOpts, remote: &Remote);
}

impl SshOpts {
    /// True when the remote program is stock DragonFly hammer (no options of ours).
    pub fn stock_remote(&self) -> bool {
        std::path::Path::new(&self.remote_cmd).file_name().is_some_and(|n| n == "hammer")
    }

    /// How a link to a remote half is framed: only our own remote knows
    /// frames, and only when told (`--link-compress`); None leaves the
    /// link a plain mirror stream.
    pub fn framing(&self) -> Option<crate::transport::frame::Compress> {
        self.link_compress.filter(|_| !self.stock_remote())
    }
}

/// The ssh program and its leading words, `-C` when asked, and `-p port`.
fn program_and_port(o: &SshOpts, remote: &Remote, compress: bool) -> Vec<OsString> {
    let mut v: Vec<OsString> = o.program.clone();
    if compress {
        v.push("-C".into());
    }
    if let Some(p) = remote.port.or(o.port) {
        v.push("-p".into());
        v.push(p.to_string().into());
    }
    v
}

/// `-o opt` for each of `options`, in order.
fn push_options(v: &mut Vec<OsString>, options: &[OsString]) {
    for opt in options {
        v.push("-o".into());
        v.push(opt.clone());
    }
}

/// The argument vector of the ssh child for `remote` running `verb`:
/// `ssh [-C] [-p port] [-o opt ...] [user@]host -- <remote-cmd> [-v..] [-y] -2 [-t N] [-S X] <verb> <path>`.
pub fn argv(o: &SshOpts, remote: &Remote, verb: Verb) -> Vec<OsString> {
    let mut v = program_and_port(o, remote, o.compress);
    push_options(&mut v, &o.options);
    if o.batch {
        v.push("-o".into());
        v.push("BatchMode=yes".into());
    }
    // A dead link is noticed by ssh itself within a minute, unless the user set it.
    if !o.options.iter().any(|x| x.to_string_lossy().to_ascii_lowercase().starts_with("serveraliveinterval")) {
        v.push("-o".into());
        v.push("ServerAliveInterval=15".into());
        v.push("-o".into());
        v.push("ServerAliveCountMax=4".into());
    }
    v.push(remote.destination().into());
    v.push("--".into());
    let mut words: Vec<OsString> = vec![o.remote_cmd.clone()];
    match o.verbose {
        0 => {}
        1 => words.push("-v".into()),
        2 => words.push("-vv".into()),
        _ => words.push("-vvv".into()),
    }
    if o.quiet && !o.stock_remote() {
        words.push("-q".into());
    }
    if o.yes {
        words.push("-y".into());
    }
    words.push("-2".into());
    if let Some(c) = o.framing() {
        words.push("--link-compress".into());
        words.push(c.word().into());
    }
    if verb != Verb::Write {
        if let Some(t) = o.timeout {
            words.push("-t".into());
            words.push(t.to_string().into());
        }
        if let Some(s) = &o.splitup {
            words.push("-S".into());
            words.push(s.into());
        }
        if o.bulk {
            words.push("-B".into());
        }
        if !o.stock_remote() {
            if let Some(b) = &o.bandwidth {
                words.push("-b".into());
                words.push(b.into());
            }
            if let Some(i) = o.delay {
                words.push("-i".into());
                words.push(i.to_string().into());
            }
            if let Some(t) = o.stall_timeout {
                words.push("--stall-timeout".into());
                words.push(t.to_string().into());
            }
        }
    }
    words.push(verb.word().into());
    words.push(remote.path.clone());
    v.extend(words.iter().map(|w| quote(w)));
    v
}

/// The argument vector of `ssh -O <op>` (`check`, `exit`) for `remote`'s
/// ControlMaster, with the same program, port and options as its connections.
pub fn control_argv(o: &SshOpts, remote: &Remote, op: &str) -> Vec<OsString> {
    let mut v = program_and_port(o, remote, false);
    push_options(&mut v, &o.options);
    v.extend(["-O".into(), op.into(), remote.destination().into()]);
    v
}

/// The argument vector that opens `remote`'s ControlMaster in the
/// background (`ssh -o ControlMaster=yes -N -f`; it lasts ControlPersist
/// after its last client), with the options of its connections.
pub fn master_argv(o: &SshOpts, remote: &Remote) -> Vec<OsString> {
    let mut v = program_and_port(o, remote, o.compress);
    // ssh takes an option's first value: this one before the connections' ControlMaster=auto.
    v.extend(["-o".into(), "ControlMaster=yes".into()]);
    push_options(&mut v, &o.options);
    if o.batch {
        v.extend(["-o".into(), "BatchMode=yes".into()]);
    }
    if !o.options.iter().any(|x| x.to_string_lossy().to_ascii_lowercase().starts_with("connecttimeout")) {
        v.extend(["-o".into(), "ConnectTimeout=30".into()]);
    }
    v.extend(["-N".into(), "-f".into(), remote.destination().into()]);
    v
}

/// Splits `--ssh` / `HAMMER_RSH` like a shell line (quotes honoured, nothing expanded).
pub fn split_command(s: &str) -> Result<Vec<OsString>, String> {
    let words = shell_words::split(s).map_err(|e| format!("cannot parse ssh command '{s}': {e}"))?;
    if words.is_empty() {
        return Err("the ssh command is empty".into());
    }
    Ok(words.into_iter().map(OsString::from).collect())
}

/// Why ssh itself failed (exit status 255), from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshFailure {
    AuthRefused,
    HostUnreachable,
    HostKey,
    Timeout,
    Other,
}

impl SshFailure {
    /// A sentence for the user, naming what to check.
    pub fn advice(&self) -> &'static str {
        match self {
            SshFailure::AuthRefused => {
                "ssh authentication was refused (check the key in authorized_keys, or use -o IdentityFile=...)"
            }
            SshFailure::HostUnreachable => {
                "the host could not be reached (check the name, the port (-p) and the network)"
            }
            SshFailure::HostKey => {
                "the host key could not be verified (connect once with ssh to accept it, or fix known_hosts)"
            }
            SshFailure::Timeout => "the connection timed out",
            SshFailure::Other => "ssh failed",
        }
    }
}

/// Types an ssh failure from its stderr text (OpenSSH 9.x messages).
pub fn classify(stderr: &str) -> SshFailure {
    let s = stderr.to_ascii_lowercase();
    if s.contains("host key verification failed") || s.contains("remote host identification has changed") {
        SshFailure::HostKey
    } else if s.contains("permission denied") || s.contains("too many authentication failures") {
        SshFailure::AuthRefused
    } else if s.contains("timed out") {
        SshFailure::Timeout
    } else if s.contains("could not resolve hostname")
        || s.contains("connection refused")
        || s.contains("no route to host")
        || s.contains("network is unreachable")
        || s.contains("name or service not known")
        || s.contains("connection closed by")
        || s.contains("kex_exchange_identification")
    {
        SshFailure::HostUnreachable
    } else {
        SshFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SshOpts {
        SshOpts { program: vec!["ssh".into()], remote_cmd: "hammer-mirror".into(), ..Default::default() }
    }

    fn remote(path: &str) -> Remote {
        Remote { user: Some("root".into()), host: "backup".into(), port: None, path: path.into() }
    }

    fn s(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|x| x.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_control_master_is_opened_checked_and_closed_with_the_connections_options() {
        let mut o = opts();
        o.port = Some(2222);
        o.batch = true;
        o.options = vec!["ControlMaster=auto".into(), "ControlPath=/run/x/cm-%C".into()];
        assert_eq!(
            s(master_argv(&o, &remote("/p"))),
            [
                "ssh",
                "-p",
                "2222",
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPath=/run/x/cm-%C",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
                "-N",
                "-f",
                "root@backup"
            ]
        );
        assert_eq!(
            s(control_argv(&o, &remote("/p"), "check")),
            [
                "ssh",
                "-p",
                "2222",
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPath=/run/x/cm-%C",
                "-O",
                "check",
                "root@backup"
            ]
        );
        o.options.push("connecttimeout=5".into());
        assert!(!s(master_argv(&o, &remote("/p"))).contains(&"ConnectTimeout=30".to_string()), "the user's wins");
    }

    #[test]
    fn argv_as_cli_md_shows_it() {
        let mut o = opts();
        assert_eq!(
            s(argv(&o, &remote("/pfs/a"), Verb::Write)),
            [
                "ssh",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=4",
                "root@backup",
                "--",
                "hammer-mirror",
                "-2",
                "mirror-write",
                "/pfs/a"
            ]
        );
        o.compress = true;
        o.port = Some(2222);
        o.options = vec!["Cipher=aes128-gcm@openssh.com".into(), "ServerAliveInterval=5".into()];
        o.batch = true;
        o.verbose = 2;
        o.yes = true;
        o.timeout = Some(60);
        o.splitup = Some("1g".into());
        o.bandwidth = Some("50m".into());
        assert_eq!(
            s(argv(&o, &remote("/pfs/my pfs"), Verb::ReadStream)),
            [
                "ssh",
                "-C",
                "-p",
                "2222",
                "-o",
                "Cipher=aes128-gcm@openssh.com",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "BatchMode=yes",
                "root@backup",
                "--",
                "hammer-mirror",
                "-vv",
                "-y",
                "-2",
                "-t",
                "60",
                "-S",
                "1g",
                "-b",
                "50m",
                "mirror-read-stream",
                "'/pfs/my pfs'"
            ]
        );
        // The target gets no source-only options; stock hammer gets no -b.
        assert_eq!(
            s(argv(&o, &remote("/p"), Verb::Write)),
            [
                "ssh",
                "-C",
                "-p",
                "2222",
                "-o",
                "Cipher=aes128-gcm@openssh.com",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "BatchMode=yes",
                "root@backup",
                "--",
                "hammer-mirror",
                "-vv",
                "-y",
                "-2",
                "mirror-write",
                "/p"
            ]
        );
        o.remote_cmd = "/sbin/hammer".into();
        o.verbose = 5;
        let a = s(argv(&o, &remote("/p"), Verb::Read));
        assert!(!a.contains(&"-b".to_string()), "{a:?}");
        assert!(a.contains(&"-vvv".to_string()));
        // A URL port wins over -p.
        let mut r = remote("/p");
        r.port = Some(22);
        assert_eq!(s(argv(&o, &r, Verb::Read))[2..4], ["-p", "22"]);
    }

    #[test]
    fn ssh_command_is_split_like_a_shell_line() {
        assert_eq!(s(split_command("ssh -i '/k ey' -o 'A=b c'").unwrap()), ["ssh", "-i", "/k ey", "-o", "A=b c"]);
        assert!(split_command("ssh 'unterminated").is_err());
        assert!(split_command("  ").is_err());
    }

    #[test]
    fn ssh_failures_are_typed() {
        assert_eq!(classify("root@h: Permission denied (publickey).\r\n"), SshFailure::AuthRefused);
        assert_eq!(classify("ssh: connect to host 127.0.0.1 port 1: Connection refused"), SshFailure::HostUnreachable);
        assert_eq!(
            classify("ssh: Could not resolve hostname nohost: Name or service not known"),
            SshFailure::HostUnreachable
        );
        assert_eq!(classify("Host key verification failed."), SshFailure::HostKey);
        assert_eq!(classify("ssh: connect to host 10.0.0.1 port 22: Connection timed out"), SshFailure::Timeout);
        assert_eq!(classify("something else"), SshFailure::Other);
    }
}
