//! The ssh command line of a remote peer, shell quoting (and its strict inverse), and ssh failure typing (pure functions).
//!
//! ssh joins the words after the destination with spaces and hands the
//! result to the remote user's login shell, which is `sh`, `bash` or, for
//! root on DragonFly BSD, `csh` (tcsh). So every remote word is quoted here
//! in a form all of them read back byte for byte: an allow-list of bytes
//! passes as is, anything else goes inside single quotes, with `'` written
//! `'\''` and `!` written `'\!'` (csh expands `!` even inside single quotes;
//! a backslash before it outside the quotes works in every shell). A newline
//! has no such form (csh refuses it even between quotes), so remote words
//! with one are refused before anything runs ([`check_word`]).
//! [`split_line`] is the inverse that `ssh-remote` uses on the command sshd
//! hands it: it reads what [`quote`] writes, and refuses whatever a shell
//! would expand or treat as an operator. Nothing here runs a process.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::endpoint::Remote;

/// Bytes that no shell gives a meaning to (`=` only inside a word: zsh
/// expands a leading `=cmd`).
fn is_plain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&c)
}

/// Why a word cannot be handed to a remote shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    #[error("a newline cannot be passed to the remote shell (csh cannot quote it)")]
    Newline,
    #[error("a NUL byte cannot be passed in a command line")]
    Nul,
}

/// Checks that `word` can be quoted for every remote shell (sh, bash, csh).
pub fn check_word(word: &OsStr) -> Result<(), WordError> {
    let b = word.as_bytes();
    if b.contains(&b'\n') {
        Err(WordError::Newline)
    } else if b.contains(&0) {
        Err(WordError::Nul)
    } else {
        Ok(())
    }
}

/// Quotes one word for sh, bash and csh alike. The word must pass
/// [`check_word`] (a newline comes out as sh reads it, which csh refuses).
pub fn quote(word: &OsStr) -> OsString {
    let b = word.as_bytes();
    if !b.is_empty() && b[0] != b'=' && b.iter().copied().all(is_plain) {
        return word.to_os_string();
    }
    let mut out = Vec::with_capacity(b.len() + 2);
    out.push(b'\'');
    for &c in b {
        match c {
            b'\'' => out.extend_from_slice(b"'\\''"),
            b'!' => out.extend_from_slice(b"'\\!'"),
            _ => out.push(c),
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// Why [`split_line`] refused a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a newline at byte {0}")]
    Newline(usize),
    #[error("an unterminated quote that opens at byte {0}")]
    Unterminated(usize),
    #[error("a backslash at the end")]
    TrailingBackslash,
    #[error("unquoted '{}' at byte {at} (a shell would give it a meaning)", char::from(*.byte))]
    Special { byte: u8, at: usize },
}

/// Splits a command line into words as sh would, without expanding
/// anything: single quotes, double quotes (where `\` escapes only `$`, `` ` ``,
/// `"` and `\`) and backslash escapes are honoured; anything a shell would
/// expand or treat as an operator (`$`, `` ` ``, `;`, `|`, `&`, `<`, `>`, `(`,
/// `)`, globs, braces, `!`, a leading `~` or `#`) is refused, since the word
/// it stands for cannot be known. Reads back every line [`quote`] makes.
pub fn split_line(line: &[u8]) -> Result<Vec<OsString>, SplitError> {
    if let Some(at) = line.iter().position(|&c| c == b'\n') {
        return Err(SplitError::Newline(at));
    }
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c {
            b' ' | b'\t' => {
                words.extend(word.take().map(OsString::from_vec));
                i += 1;
                continue;
            }
            b'\'' => {
                let end = line[i + 1..].iter().position(|&c| c == b'\'').ok_or(SplitError::Unterminated(i))?;
                word.get_or_insert_with(Vec::new).extend_from_slice(&line[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
            b'"' => {
                let open = i;
                let w = word.get_or_insert_with(Vec::new);
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(SplitError::Unterminated(open)),
                        Some(b'"') => break,
                        Some(b'\\') if matches!(line.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            w.push(line[i + 1]);
                            i += 2;
                        }
                        Some(&byte @ (b'$' | b'`' | b'!')) => return Err(SplitError::Special { byte, at: i }),
                        Some(&other) => {
                            w.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
                continue;
            }
            b'\\' => {
                let &next = line.get(i + 1).ok_or(SplitError::TrailingBackslash)?;
                word.get_or_insert_with(Vec::new).push(next);
                i += 2;
                continue;
            }
            b'$' | b'`' | b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')' | b'*' | b'?' | b'[' | b']' | b'{' | b'}'
            | b'!' | b'^' => return Err(SplitError::Special { byte: c, at: i }),
            b'~' | b'#' if word.is_none() => return Err(SplitError::Special { byte: c, at: i }),
            _ => word.get_or_insert_with(Vec::new).push(c),
        }
        i += 1;
    }
    words.extend(word.map(OsString::from_vec));
    Ok(words)
}

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
}

impl SshOpts {
    /// True when the remote program is stock DragonFly hammer (no options of ours).
    pub fn stock_remote(&self) -> bool {
        std::path::Path::new(&self.remote_cmd).file_name().is_some_and(|n| n == "hammer")
    }
}

/// The argument vector of the ssh child for `remote` running `verb`:
/// `ssh [-C] [-p port] [-o opt ...] [user@]host -- <remote-cmd> [-v..] [-y] -2 [-t N] [-S X] <verb> <path>`.
pub fn argv(o: &SshOpts, remote: &Remote, verb: Verb) -> Vec<OsString> {
    let mut v: Vec<OsString> = o.program.clone();
    if o.compress {
        v.push("-C".into());
    }
    if let Some(p) = remote.port.or(o.port) {
        v.push("-p".into());
        v.push(p.to_string().into());
    }
    for opt in &o.options {
        v.push("-o".into());
        v.push(opt.clone());
    }
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

    #[test]
    fn quoting_table() {
        let q = |s: &[u8]| quote(OsStr::from_bytes(s)).into_vec();
        assert_eq!(q(b"/pfs/a"), b"/pfs/a");
        assert_eq!(q(b"user@host:1,2=3+%"), b"user@host:1,2=3+%");
        assert_eq!(q(b"=ls"), b"'=ls'", "zsh expands a leading =");
        assert_eq!(q(b""), b"''");
        assert_eq!(q(b"a b"), b"'a b'");
        assert_eq!(q(b"it's"), b"'it'\\''s'");
        assert_eq!(q(b"!"), b"''\\!''");
        assert_eq!(q(b"a!b"), b"'a'\\!'b'");
        assert_eq!(q(b"~/x"), b"'~/x'");
        assert_eq!(q(b"*"), b"'*'");
        assert_eq!(q(b"$(touch x)"), b"'$(touch x)'");
        assert_eq!(q(b"`x`;y|z&"), b"'`x`;y|z&'");
        assert_eq!(q(b"\xff\xfe"), b"'\xff\xfe'");
    }

    #[test]
    fn words_a_remote_shell_cannot_take_are_refused() {
        assert_eq!(check_word(OsStr::new("/pfs/a b!'")), Ok(()));
        assert_eq!(check_word(OsStr::new("a\nb")), Err(WordError::Newline));
        assert_eq!(check_word(OsStr::from_bytes(b"a\0b")), Err(WordError::Nul));
        assert!(WordError::Newline.to_string().contains("newline"));
    }

    #[test]
    fn split_line_reads_shell_words_and_refuses_what_a_shell_would_expand() {
        let sp = |s: &[u8]| split_line(s).map(|w| w.into_iter().map(OsString::into_vec).collect::<Vec<_>>());
        assert_eq!(
            sp(b"  hammer -2  mirror-read\t/p "),
            Ok(vec![b"hammer".to_vec(), b"-2".into(), b"mirror-read".into(), b"/p".into()])
        );
        assert_eq!(sp(b"'a b'c\\ d \"e \\$ \\x\" ''"), Ok(vec![b"a bc d".to_vec(), b"e $ \\x".into(), b"".into()]));
        assert_eq!(
            sp(b"'a'\\!'b' x~y a#b =c \xff"),
            Ok(vec![b"a!b".to_vec(), b"x~y".into(), b"a#b".into(), b"=c".into(), b"\xff".into()])
        );
        assert_eq!(sp(b"a\nb"), Err(SplitError::Newline(1)));
        assert_eq!(sp(b"a 'b"), Err(SplitError::Unterminated(2)));
        assert_eq!(sp(b"a \"b"), Err(SplitError::Unterminated(2)));
        assert_eq!(sp(b"a\\"), Err(SplitError::TrailingBackslash));
        for (line, byte, at) in [
            (&b"a;b"[..], b';', 1),
            (b"$(x)", b'$', 0),
            (b"\"$x\"", b'$', 1),
            (b"`x`", b'`', 0),
            (b"a|b", b'|', 1),
            (b"a&", b'&', 1),
            (b"<x", b'<', 0),
            (b"*", b'*', 0),
            (b"a?", b'?', 1),
            (b"{a,b}", b'{', 0),
            (b"a!b", b'!', 1),
            (b"x ~/p", b'~', 2),
            (b"x #c", b'#', 2),
        ] {
            assert_eq!(sp(line), Err(SplitError::Special { byte, at }), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(
            split_line(b"a *").unwrap_err().to_string(),
            "unquoted '*' at byte 2 (a shell would give it a meaning)"
        );
    }

    proptest::proptest! {
        #[test]
        fn split_line_reads_back_every_quoted_line(words in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 1..6)) {
            let words: Vec<Vec<u8>> = words.into_iter().map(|w| w.into_iter().filter(|&c| c != b'\n').collect()).collect();
            let line: Vec<u8> = words
                .iter()
                .map(|w| quote(OsStr::from_bytes(w)).into_vec())
                .collect::<Vec<_>>()
                .join(&b' ');
            let back: Vec<Vec<u8>> = split_line(&line).unwrap().into_iter().map(OsString::into_vec).collect();
            proptest::prop_assert_eq!(back, words);
        }
    }

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
