//! Parsing `[user@]host:pfs`, `ssh://[user@]host[:port]/pfs` and local paths (pure; spawns nothing).
//!
//! scp's colon rule: text is remote when the part before the first `:`
//! contains no `/`, so `./a:b` and `/x:y` stay local. An IPv6 host is
//! written in brackets (`[::1]:pfs`). A host that starts with `-` (it would
//! reach ssh as an option), or a user or host with whitespace or shell
//! metacharacters, is refused before anything runs; so is a remote path that
//! no remote shell can take (a newline, see `ssh::check_word`).
//!
//! As with scp, a remote path is absolute or relative to the remote home
//! directory (where ssh starts the remote command): `host:~/pfs` and
//! `ssh://host/~/pfs` are `pfs` there, so the `~` never reaches the remote
//! shell inside quotes, where it would name a directory called `~`.
//! `~user/` is refused (nothing here knows another user's home), and a
//! relative path that starts with `-` is sent as `./-...`, so that the remote
//! program cannot take it for an option.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// One side of a copy or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Local(PathBuf),
    Remote(Remote),
}

/// A PFS on another host, reached through ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub user: Option<String>,
    pub host: String,
    /// From `ssh://host:port/...`; `-p` applies otherwise.
    pub port: Option<u16>,
    /// The PFS path on the remote host: absolute, or relative to the remote
    /// home directory (a leading `~/` taken off, `./` put before a `-`).
    pub path: OsString,
}

impl Remote {
    /// `user@host` or `host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Local(p) => write!(f, "{}", p.display()),
            Endpoint::Remote(r) => write!(f, "{}:{}", r.destination(), r.path.to_string_lossy()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint '{0}': empty PFS path")]
    EmptyPath(String),
    #[error("endpoint '{0}': empty host name")]
    EmptyHost(String),
    #[error("endpoint '{0}': a host may not start with '-'")]
    DashHost(String),
    #[error("endpoint '{endpoint}': illegal character {ch:?} in {what}")]
    BadChar { endpoint: String, what: &'static str, ch: char },
    #[error("endpoint '{0}': bad port")]
    BadPort(String),
    #[error("endpoint '{0}': ssh:// needs a path after the host (ssh://host/pfs)")]
    UrlPath(String),
    #[error("endpoint '{0}': {1}")]
    BadPath(String, crate::shellword::WordError),
    #[error("endpoint '{0}': names the remote home directory itself; give the PFS in it (host:~/pfs or host:pfs)")]
    HomeItself(String),
    #[error("endpoint '{0}': another user's home (~user/) is not supported; give the full path")]
    OtherHome(String),
}

/// The endpoint as typed, for messages: lossy UTF-8 with control characters escaped.
fn shown(arg: &OsStr) -> String {
    let mut out = String::new();
    for ch in arg.to_string_lossy().chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The remote path as ssh will send it (see the module comment).
fn remote_path(path: &[u8], full: &str) -> Result<OsString, EndpointError> {
    crate::shellword::check_word(OsStr::from_bytes(path)).map_err(|e| EndpointError::BadPath(full.into(), e))?;
    let path = match path.strip_prefix(b"~") {
        None => path,
        Some(rest) if rest.first().is_some_and(|&b| b != b'/') => return Err(EndpointError::OtherHome(full.into())),
        // `~`, `~/`, `~//x`: what follows the slashes, in the home directory.
        Some(rest) => &rest[rest.iter().take_while(|&&b| b == b'/').count()..],
    };
    if path.is_empty() {
        return Err(EndpointError::HomeItself(full.into()));
    }
    let mut out = Vec::with_capacity(path.len() + 2);
    if path.starts_with(b"-") {
        out.extend_from_slice(b"./");
    }
    out.extend_from_slice(path);
    Ok(OsString::from_vec(out))
}

/// Characters allowed in a host name (letters, digits, `.`, `-`, `_`; `:` and
/// `%` inside IPv6 brackets).
fn check_host(host: &str, full: &str, v6: bool) -> Result<(), EndpointError> {
    if host.is_empty() {
        return Err(EndpointError::EmptyHost(full.into()));
    }
    if host.starts_with('-') {
        return Err(EndpointError::DashHost(full.into()));
    }
    for ch in host.chars() {
        let ok = ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') || (v6 && matches!(ch, ':' | '%'));
        if !ok {
            return Err(EndpointError::BadChar { endpoint: full.into(), what: "host", ch });
        }
    }
    Ok(())
}

fn check_user(user: &str, full: &str) -> Result<(), EndpointError> {
    if user.starts_with('-') {
        return Err(EndpointError::BadChar { endpoint: full.into(), what: "user", ch: '-' });
    }
    match user.chars().find(|&ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '$'))) {
        Some(ch) => Err(EndpointError::BadChar { endpoint: full.into(), what: "user", ch }),
        None if user.is_empty() => Err(EndpointError::BadChar { endpoint: full.into(), what: "user", ch: '@' }),
        None => Ok(()),
    }
}

/// Splits `[user@]host` and checks both parts.
fn user_host(s: &str, full: &str) -> Result<(Option<String>, String, bool), EndpointError> {
    let (user, host) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    if let Some(u) = user {
        check_user(u, full)?;
    }
    let (host, v6) = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => (inner, true),
        None => (host, false),
    };
    check_host(host, full, v6)?;
    Ok((user.map(str::to_string), host.to_string(), v6))
}

/// Parses one endpoint argument.
pub fn parse(arg: &OsStr) -> Result<Endpoint, EndpointError> {
    let bytes = arg.as_bytes();
    let full = shown(arg);
    if let Some(rest) = bytes.strip_prefix(b"ssh://") {
        let slash = rest.iter().position(|&b| b == b'/').ok_or_else(|| EndpointError::UrlPath(full.clone()))?;
        let authority = std::str::from_utf8(&rest[..slash]).map_err(|_| EndpointError::EmptyHost(full.clone()))?;
        // ssh://host/~/pfs is in the remote home, as git reads it.
        let path = &rest[slash..];
        let path = match path.strip_prefix(b"/") {
            Some(p) if p.starts_with(b"~") => p,
            _ => path,
        };
        // [user@]host[:port], host possibly [v6]
        let (uh, port) = match authority.rsplit_once(':') {
            Some((uh, p)) if !uh.ends_with(':') && (!uh.starts_with('[') || uh.ends_with(']')) => (
                uh,
                Some(p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| EndpointError::BadPort(full.clone()))?),
            ),
            _ => (authority, None),
        };
        let (user, host, _) = user_host(uh, &full)?;
        let path = remote_path(path, &full)?;
        return Ok(Endpoint::Remote(Remote { user, host, port, path }));
    }
    // scp's rule, with [v6] hosts: the colon that ends the host.
    let first_colon = bytes.iter().position(|&b| b == b':');
    let colon = match bytes.iter().position(|&b| b == b'[') {
        Some(open) if first_colon.is_some_and(|c| open < c) => bytes[open..]
            .iter()
            .position(|&b| b == b']')
            .map(|close| open + close)
            .and_then(|close| (bytes.get(close + 1) == Some(&b':')).then_some(close + 1)),
        _ => first_colon,
    };
    match colon {
        Some(c) if !bytes[..c].contains(&b'/') => {
            let uh = std::str::from_utf8(&bytes[..c]).map_err(|_| EndpointError::BadChar {
                endpoint: full.clone(),
                what: "host",
                ch: '\u{fffd}',
            })?;
            if bytes.len() == c + 1 {
                return Err(EndpointError::EmptyPath(full));
            }
            let (user, host, _) = user_host(uh, &full)?;
            let path = remote_path(&bytes[c + 1..], &full)?;
            Ok(Endpoint::Remote(Remote { user, host, port: None, path }))
        }
        _ => {
            if arg.is_empty() {
                return Err(EndpointError::EmptyPath(full));
            }
            Ok(Endpoint::Local(PathBuf::from(arg)))
        }
    }
}

/// The commands whose operands are endpoints.
const ENDPOINT_COMMANDS: [&str; 3] = ["copy", "stream", "verify"];

/// What a word that starts with one `-` is to the option parser.
enum Dashed {
    /// Flags only (`-vy`).
    Flags,
    /// Ends with an option whose value is the next word (`-o`, `-yS`).
    ValueNext,
    /// An option with its value attached (`-oBatchMode=yes`, `-S1m`).
    ValueAttached,
    /// Not a group of our options: an operand that starts with `-`.
    Operand,
}

fn short_arg(cmds: &[&clap::Command], c: char) -> Option<bool> {
    cmds.iter().flat_map(|cmd| cmd.get_arguments()).find_map(|a| {
        a.get_all_short_aliases()
            .unwrap_or_default()
            .into_iter()
            .chain(a.get_short())
            .any(|s| s == c)
            .then(|| a.get_action().takes_values())
    })
}

fn dashed(cmds: &[&clap::Command], group: &[u8]) -> Dashed {
    for (i, &b) in group.iter().enumerate() {
        match short_arg(cmds, char::from(b)).filter(|_| b.is_ascii()) {
            None => return Dashed::Operand,
            Some(false) => {}
            Some(true) if i + 1 == group.len() => return Dashed::ValueNext,
            Some(true) => return Dashed::ValueAttached,
        }
    }
    Dashed::Flags
}

/// Finds an operand of `copy`, `stream` or `verify` that is a remote endpoint
/// whose host starts with `-`, where the option parser would read it as
/// options: `copy -h:/x s` would print the help (`-h`) and exit 0. Run on the
/// raw arguments before they are parsed; global options before and after the
/// command (with their values, attached or not) are skipped as clap reads them.
/// After `--` every word is an operand, and `parse` refuses such a host itself.
pub fn dash_host_operand(cmd: &clap::Command, args: &[OsString]) -> Option<EndpointError> {
    // Such a host needs a word that starts with '-' and has a ':'; most command lines have none.
    if !args.iter().skip(1).any(|a| a.as_bytes().starts_with(b"-") && a.as_bytes().contains(&b':')) {
        return None;
    }
    let mut cmd = cmd.clone();
    cmd.build();
    let root = &cmd;
    let mut sub: Option<&clap::Command> = None;
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        let b = w.as_bytes();
        let cmds: Vec<&clap::Command> = sub.into_iter().chain([root]).collect();
        if b == b"--" {
            return None;
        } else if let Some(long) = b.strip_prefix(b"--") {
            let takes_value = !long.contains(&b'=')
                && cmds.iter().flat_map(|c| c.get_arguments()).any(|a| {
                    a.get_action().takes_values()
                        && a.get_long_and_visible_aliases()
                            .unwrap_or_default()
                            .iter()
                            .chain(a.get_all_aliases().unwrap_or_default().iter())
                            .any(|l| l.as_bytes() == long)
                });
            if takes_value {
                words.next();
            }
        } else if let Some(group) = b.strip_prefix(b"-").filter(|g| !g.is_empty()) {
            match dashed(&cmds, group) {
                Dashed::Flags | Dashed::ValueAttached => {}
                Dashed::ValueNext => {
                    words.next();
                }
                Dashed::Operand => {
                    if sub.is_some_and(|s| ENDPOINT_COMMANDS.contains(&s.get_name()))
                        && let Err(e @ EndpointError::DashHost(_)) = parse(w)
                    {
                        return Some(e);
                    }
                }
            }
        } else if sub.is_none() {
            // The first operand is the command; an unknown one is clap's to report.
            sub = Some(root.find_subcommand(w)?);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Endpoint {
        Endpoint::Remote(Remote { user: user.map(Into::into), host: host.into(), port, path: path.into() })
    }

    #[test]
    fn table() {
        let ok: &[(&str, Endpoint)] = &[
            ("/pfs/a", Endpoint::Local("/pfs/a".into())),
            ("pfs", Endpoint::Local("pfs".into())),
            ("./a:b", Endpoint::Local("./a:b".into())),
            ("/x:y", Endpoint::Local("/x:y".into())),
            ("backup:/pfs/a", remote(None, "backup", None, "/pfs/a")),
            ("root@backup:/pfs/a", remote(Some("root"), "backup", None, "/pfs/a")),
            ("host:rel/pfs", remote(None, "host", None, "rel/pfs")),
            ("h:/a b'c", remote(None, "h", None, "/a b'c")),
            ("h:/x:y", remote(None, "h", None, "/x:y")),
            ("[::1]:/pfs", remote(None, "::1", None, "/pfs")),
            ("u@[fe80::1%eth0]:/p", remote(Some("u"), "fe80::1%eth0", None, "/p")),
            ("ssh://backup/pfs/a", remote(None, "backup", None, "/pfs/a")),
            ("ssh://u@backup:2222/pfs/a", remote(Some("u"), "backup", Some(2222), "/pfs/a")),
            ("ssh://[::1]:22/p", remote(None, "::1", Some(22), "/p")),
            ("ssh://[::1]/p", remote(None, "::1", None, "/p")),
            // The remote home, as scp and git read it; a leading '-' cannot become an option.
            ("h:~/pfs", remote(None, "h", None, "pfs")),
            ("h:~//a/b", remote(None, "h", None, "a/b")),
            ("ssh://h/~/pfs", remote(None, "h", None, "pfs")),
            ("h:a/~/b", remote(None, "h", None, "a/~/b")),
            ("h:-x", remote(None, "h", None, "./-x")),
            ("h:~/-x", remote(None, "h", None, "./-x")),
            ("h:/a!b c'd", remote(None, "h", None, "/a!b c'd")),
            ("/local/new\nline", Endpoint::Local("/local/new\nline".into())),
        ];
        for (s, want) in ok {
            assert_eq!(&parse(OsStr::new(s)).unwrap(), want, "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("-oProxyCommand=x:/p", "may not start with '-'"),
            ("host:", "empty PFS path"),
            (":/p", "empty host name"),
            ("h;rm:/p", "illegal character ';' in host"),
            ("h$(x):/p", "illegal character '$' in host"),
            ("us er@h:/p", "illegal character ' ' in user"),
            ("-u@h:/p", "in user"),
            ("ssh://h", "needs a path"),
            ("ssh://h:0/p", "bad port"),
            ("ssh://h:99999/p", "bad port"),
            ("ssh://-h/p", "may not start with '-'"),
            ("", "empty PFS path"),
            ("h:/a\nb", "endpoint 'h:/a\\nb': a newline cannot be passed to the remote shell"),
            ("ssh://h/a\nb", "a newline cannot be passed"),
            ("h:~", "names the remote home directory itself"),
            ("h:~/", "names the remote home directory itself"),
            ("ssh://h/~", "names the remote home directory itself"),
            ("h:~bob/pfs", "endpoint 'h:~bob/pfs': another user's home (~user/) is not supported"),
            ("ssh://h/~bob/pfs", "another user's home"),
            ("-h:/x", "endpoint '-h:/x': a host may not start with '-'"),
        ];
        for (s, msg) in bad {
            let e = parse(OsStr::new(s)).unwrap_err().to_string();
            assert!(e.contains(msg), "{s}: {e}");
        }
    }

    fn dash_host(args: &[&str]) -> Option<String> {
        let args: Vec<OsString> =
            std::iter::once("hammer-mirror").chain(args.iter().copied()).map(OsString::from).collect();
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        dash_host_operand(&cmd, &args).map(|e| e.to_string())
    }

    #[test]
    fn a_dash_host_is_found_where_the_option_parser_would_take_it() {
        let refused = "endpoint '-h:/x': a host may not start with '-'";
        for args in [
            &["copy", "-h:/x", "s"][..],
            &["copy", "m", "-h:/x"],
            &["-y", "stream", "-vy", "-h:/x", "s"],
            &["mirror-copy", "-o", "A=b", "-h:/x", "s"],
            &["verify", "--as-of", "1", "-h:/x", "s"],
            &["-v", "verify", "m", "-h:/x"],
        ] {
            assert_eq!(dash_host(args).as_deref(), Some(refused), "{args:?}");
        }
        assert_eq!(
            dash_host(&["copy", "-vh:/x", "s"]).as_deref(),
            Some("endpoint '-vh:/x': a host may not start with '-'")
        );
        // Options with their values (attached or not, before or after the
        // command), other commands, and what follows `--` are left alone.
        for args in [
            &["copy", "m", "s", "-y"][..],
            &["copy", "-oProxyJump=j:22", "m", "s"],
            &["copy", "-o", "-h:/x", "m", "s"],
            &["copy", "--ssh", "-h:/x", "m", "s"],
            &["copy", "--ssh=-h:/x", "m", "s"],
            &["-S1m", "copy", "-p2222", "m", "s"],
            &["-c", "-h:/x", "read", "m"],
            &["pfs-status", "-h:/x"],
            &["copy", "--", "-h:/x", "s"],
            &["copy", "-h"],
            &["copy", "-x", "s"],
            &["nosuch", "-h:/x"],
        ] {
            assert_eq!(dash_host(args), None, "{args:?}");
        }
    }

    #[test]
    fn non_utf8_paths_stay_intact() {
        let raw = OsStr::from_bytes(b"h:/p\xff");
        match parse(raw).unwrap() {
            Endpoint::Remote(r) => assert_eq!(r.path.as_bytes(), b"/p\xff"),
            other => panic!("{other:?}"),
        }
    }
}
