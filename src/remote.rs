//! `ssh-remote`: an authorized_keys forced command that lets a key run only mirroring, only under a PFS prefix.
//!
//! sshd puts the client's command in `SSH_ORIGINAL_COMMAND`. It is split
//! into words as a shell would (`ssh::split_line`: bytes, so any path the
//! orchestrator quotes arrives intact; never run by a shell; anything a shell
//! would expand is refused) and must be exactly what our orchestrator sends: `<program> [-v|-vv|-vvv] [-y] -2
//! [--link-compress HOW] [-t N] [-S X] [-b X]
//! [-B] [-i N] mirror-read|mirror-read-stream <pfs>` for `ssh-remote read`,
//! `<program> [-v..] [-y] -2 [--link-compress HOW] mirror-write <pfs>` for `ssh-remote write`.
//! The PFS must lie under the prefix: no `..`, and after resolving symlinks
//! of the existing part of the path it must still be inside the prefix. A
//! relative PFS path (what the client sends for `host:pfs` and `host:~/pfs`)
//! is taken from the prefix.
//! Anything else is refused with the reason on stderr (which ssh carries back
//! to the client) and exit status 3.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::MirrorError::{self, Refused};

/// Which side a key may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// mirror-read and mirror-read-stream
    Read,
    /// mirror-write
    Write,
}

/// Checks `SSH_ORIGINAL_COMMAND` and returns the argv to run (program name first).
pub fn check(role: Role, prefix: &Path, original: Option<&OsStr>) -> Result<Vec<OsString>, MirrorError> {
    let refuse = |why: String| Refused(format!("ssh-remote: refused: {why}"));
    let original =
        original.ok_or_else(|| refuse("no SSH_ORIGINAL_COMMAND (an interactive login is not allowed)".into()))?;
    let cmd = original.to_string_lossy();
    let words = crate::shellword::split_line(original.as_bytes())
        .map_err(|e| refuse(format!("cannot parse the command ({e}): {cmd}")))?;
    let mut it = words.iter().peekable();
    let _program = it.next().ok_or_else(|| refuse("empty command".into()))?;
    let mut argv: Vec<OsString> = vec!["hammer-mirror".into()];
    let mut two_way = false;
    loop {
        let Some(w) = it.next() else { return Err(refuse(format!("no mirror verb in: {cmd}"))) };
        match w.to_str().unwrap_or("") {
            "-v" | "-vv" | "-vvv" | "-y" | "-q" => argv.push(w.into()),
            "-2" => {
                two_way = true;
                argv.push(w.into());
            }
            "-B" if role == Role::Read => argv.push(w.into()),
            "-t" | "-S" | "-b" | "-i" | "--stall-timeout" if role == Role::Read => {
                let v = it.next().ok_or_else(|| refuse(format!("{} needs a value", w.to_string_lossy())))?;
                if !v.as_bytes().iter().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(refuse(format!("bad value for {}: {v:?}", w.to_string_lossy())));
                }
                argv.push(w.into());
                argv.push(v.into());
            }
            "--link-compress" => {
                let v = it.next().ok_or_else(|| refuse("--link-compress needs a value".into()))?;
                if crate::transport::frame::Compress::parse(&v.to_string_lossy()).is_err() {
                    return Err(refuse(format!("bad value for --link-compress: {v:?}")));
                }
                argv.push(w.into());
                argv.push(v.into());
            }
            "mirror-read" | "mirror-read-stream" if role == Role::Read => {
                argv.push(w.into());
                break;
            }
            "mirror-write" if role == Role::Write => {
                argv.push(w.into());
                break;
            }
            _ => {
                return Err(refuse(format!(
                    "'{}' is not allowed for ssh-remote {} (command: {cmd})",
                    w.to_string_lossy(),
                    if role == Role::Read { "read" } else { "write" }
                )));
            }
        }
    }
    if !two_way {
        return Err(refuse(format!("only two-way (-2) mirroring is allowed (command: {cmd})")));
    }
    let pfs = it.next().ok_or_else(|| refuse(format!("no PFS path (command: {cmd})")))?;
    if let Some(extra) = it.next() {
        return Err(refuse(format!("unexpected argument {extra:?} (command: {cmd})")));
    }
    let path = inside(prefix, Path::new(pfs)).map_err(refuse)?;
    argv.push(path.into_os_string());
    Ok(argv)
}

/// The PFS path, if it lies under `prefix` (relative paths are taken from the prefix).
fn inside(prefix: &Path, pfs: &Path) -> Result<PathBuf, String> {
    if pfs.components().any(|c| c == Component::ParentDir) {
        return Err(format!("'..' in {}", pfs.display()));
    }
    let prefix = prefix.canonicalize().map_err(|e| format!("prefix {}: {e}", prefix.display()))?;
    let full = if pfs.is_absolute() { pfs.to_path_buf() } else { prefix.join(pfs) };
    // Resolve symlinks in the part that exists (the PFS itself may not exist yet).
    let mut existing = full.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().map_err(|e| format!("{}: {e}", existing.display()))?;
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    if resolved == prefix || !resolved.starts_with(&prefix) {
        return Err(format!("{} is not under {}", pfs.display(), prefix.display()));
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn s(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|x| x.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn allows_exactly_what_the_orchestrator_sends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().canonicalize().unwrap();
        let pfs = p.join("a b");
        let cmd = format!("/usr/bin/hammer-mirror -vv -y -2 -t 60 -S 1g mirror-read-stream '{}'", pfs.display());
        assert_eq!(
            s(check(Role::Read, &p, Some(OsStr::new(&cmd))).unwrap()),
            [
                "hammer-mirror",
                "-vv",
                "-y",
                "-2",
                "-t",
                "60",
                "-S",
                "1g",
                "mirror-read-stream",
                &pfs.display().to_string()
            ]
        );
        let cmd = format!("hammer -2 mirror-write {}", p.join("s").display());
        assert_eq!(check(Role::Write, &p, Some(OsStr::new(&cmd))).unwrap().len(), 4);
    }

    /// What `ssh::argv` sends for `remote` (the words after `--`, joined by a space as ssh does).
    fn sent(o: &crate::ssh::SshOpts, path: &Path, verb: crate::ssh::Verb) -> OsString {
        let r = crate::endpoint::Remote { user: None, host: "h".into(), port: None, path: path.into() };
        let argv = crate::ssh::argv(o, &r, verb);
        let at = argv.iter().position(|w| w == "--").unwrap();
        OsString::from_vec(argv[at + 1..].iter().map(|w| w.as_bytes()).collect::<Vec<_>>().join(&b' '))
    }

    #[test]
    fn accepts_every_path_and_option_the_orchestrator_quotes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().canonicalize().unwrap();
        let mut o = crate::ssh::SshOpts {
            program: vec!["ssh".into()],
            remote_cmd: "/usr/local/bin/hammer-mirror".into(),
            verbose: 3,
            yes: true,
            timeout: Some(60),
            splitup: Some("1g".into()),
            bandwidth: Some("50m".into()),
            bulk: true,
            delay: Some(0),
            stall_timeout: Some(30),
            ..Default::default()
        };
        let names: [&[u8]; 12] =
            [b"a b", b"it's", b"a!b", b"*", b"$(x)", b"`x`", b"\\", b"~x", b"#x", b"&;|<>", b"\t", b"\xff\xfe"];
        for name in names {
            let name = OsStr::from_bytes(name);
            for (role, verb) in [(Role::Read, crate::ssh::Verb::ReadStream), (Role::Write, crate::ssh::Verb::Write)] {
                for pfs in [p.join(name), PathBuf::from(name)] {
                    let line = sent(&o, &pfs, verb);
                    let argv =
                        check(role, &p, Some(&line)).unwrap_or_else(|e| panic!("{}: {e}", line.to_string_lossy()));
                    assert_eq!(argv.last().unwrap(), p.join(name).as_os_str(), "{}", line.to_string_lossy());
                }
            }
        }
        // The same words, checked by what `hammer-mirror` parses them into.
        o.verbose = 1;
        let argv = check(Role::Read, &p, Some(&sent(&o, &p.join("x"), crate::ssh::Verb::Read))).unwrap();
        assert_eq!(
            s(argv),
            [
                "hammer-mirror",
                "-v",
                "-y",
                "-2",
                "-t",
                "60",
                "-S",
                "1g",
                "-B",
                "-b",
                "50m",
                "-i",
                "0",
                "--stall-timeout",
                "30",
                "mirror-read",
                &p.join("x").display().to_string()
            ]
        );
    }

    #[test]
    fn refuses_everything_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().canonicalize().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(out.path(), p.join("escape")).unwrap();
        let pd = p.display();
        let cases = [
            (Role::Read, None, "no SSH_ORIGINAL_COMMAND".to_string()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-write {pd}/x")), "'mirror-write' is not allowed".into()),
            (Role::Write, Some(format!("hammer-mirror -2 mirror-read {pd}/x")), "'mirror-read' is not allowed".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read {pd}/../etc")), "'..'".into()),
            (Role::Read, Some("hammer-mirror -2 mirror-read /etc/passwd".into()), "is not under".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read {pd}/escape/pfs")), "is not under".into()),
            (Role::Read, Some(format!("hammer-mirror mirror-read {pd}/x")), "only two-way".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read {pd}/x extra")), "unexpected argument".into()),
            (Role::Read, Some(format!("hammer-mirror -2 -c /tmp/x mirror-read {pd}/x")), "'-c' is not allowed".into()),
            (Role::Read, Some(format!("hammer-mirror -2 -t '1;rm' mirror-read {pd}/x")), "bad value for -t".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read {pd}/x;reboot")), "unquoted ';' at byte".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read {pd}/$(id)")), "unquoted '$' at byte".into()),
            (Role::Read, Some(format!("hammer-mirror -2 mirror-read '{pd}/x\ny'")), "a newline at byte".into()),
            (Role::Read, Some("sh -c 'echo pwned'".into()), "'-c' is not allowed".into()),
            (Role::Write, Some(format!("hammer-mirror -2 pfs-destroy {pd}/x")), "'pfs-destroy' is not allowed".into()),
        ];
        for (role, cmd, want) in cases {
            let e = check(role, &p, cmd.as_deref().map(OsStr::new)).unwrap_err().to_string();
            assert!(e.contains(&want), "{cmd:?}: {e}");
        }
    }
}
