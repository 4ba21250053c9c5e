//! Remote words through the real shells a remote login may have: sh, bash and tcsh (root's csh on
//! DragonFly, the peer of `--remote-cmd hammer`). Each quoted word must come back byte for byte; copy and
//! ssh-remote work through them with hostile paths; words no shell can take are refused before anything runs.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use hammer_mirror::ssh::quote;

use crate::util::{Env, bin, fails, fake_ssh, ok, show, stderr};

/// The shells to try; tcsh is skipped, with the reason printed, where it is not installed.
fn shells() -> Vec<&'static str> {
    let mut v = vec!["sh", "bash"];
    if Command::new("tcsh").args(["-fc", "exit 0"]).status().is_ok_and(|s| s.success()) {
        v.push("tcsh");
    } else {
        eprintln!("skipped for tcsh: tcsh is not installed (.ci/run installs it)");
    }
    v
}

/// One word of each kind a path may hold.
fn table() -> Vec<(&'static str, Vec<u8>)> {
    let mut long = Vec::new();
    while long.len() < 3000 {
        long.extend_from_slice(b"dir with 'quotes' and !bangs! $x `y` \\ ~ #/");
    }
    vec![
        ("space", b"a b".to_vec()),
        ("single quote", b"it's".to_vec()),
        ("bang", b"a!b".to_vec()),
        ("bangs", b"!!-!$ !".to_vec()),
        ("star", b"*".to_vec()),
        ("command substitution", b"$(touch canary)".to_vec()),
        ("backquotes", b"`touch canary`".to_vec()),
        ("backslash", b"a\\b\\".to_vec()),
        ("tilde", b"~".to_vec()),
        ("tilde path", b"~/x ~root".to_vec()),
        ("hash", b"#x".to_vec()),
        ("ampersand", b"a&b".to_vec()),
        ("semicolon", b"a;b".to_vec()),
        ("pipe", b"a|b".to_vec()),
        ("redirections", b"<a >b".to_vec()),
        ("tab", b"a\tb".to_vec()),
        ("empty", b"".to_vec()),
        ("non-UTF-8", b"\xff\xfe\x80caf\xc3\xa9".to_vec()),
        ("braces and globs", b"{a,b}?[c]".to_vec()),
        ("variable", b"$HOME ${x}".to_vec()),
        ("leading equals", b"=ls".to_vec()),
        ("leading dash", b"-n".to_vec()),
        ("carriage return and escape", b"a\r\x1b[0m".to_vec()),
        ("long", long),
    ]
}

/// `printf '%s\0' <quoted words>` through `shell -c`, as sshd runs a command.
fn through(shell: &str, e: &Env, words: &[&[u8]]) -> Output {
    let mut line = b"printf '%s\\0'".to_vec();
    for w in words {
        line.push(b' ');
        line.extend_from_slice(quote(OsStr::from_bytes(w)).as_bytes());
    }
    Command::new(shell)
        .arg("-c")
        .arg(OsString::from_vec(line))
        .current_dir(e.dir.path())
        .env("HOME", e.dir.path())
        .output()
        .unwrap()
}

#[test]
fn every_quoted_word_arrives_byte_identical_through_sh_bash_and_tcsh() {
    let e = Env::new();
    let table = table();
    for shell in shells() {
        for (name, word) in &table {
            let o = through(shell, &e, &[word]);
            let mut want = word.clone();
            want.push(0);
            assert!(
                o.status.success() && o.stdout == want,
                "{shell}: the {name} word {:?} came back as {:?}:\n{}",
                String::from_utf8_lossy(word),
                String::from_utf8_lossy(&o.stdout),
                show(&o)
            );
        }
        // All of them on one line, as a command line carries several words.
        let words: Vec<&[u8]> = table.iter().map(|(_, w)| w.as_slice()).collect();
        let o = through(shell, &e, &words);
        let want: Vec<u8> = words.iter().flat_map(|w| w.iter().copied().chain([0])).collect();
        assert_eq!(o.stdout, want, "{shell}: the whole table on one line:\n{}", show(&o));
        assert!(!e.path("canary").exists(), "{shell} ran a quoted word");
    }
}

/// `hammer-mirror` with the fake ssh running the remote side through `shell`.
fn hm(e: &Env, shell: &str) -> Command {
    let mut c = e.cmd();
    c.env("HAMMER_RSH", fake_ssh())
        .env("FAKE_SSH_SHELL", shell)
        .env("FAKE_SSH_LOG", e.path("ssh.log"))
        .env("HOME", e.dir.path())
        .args(["--remote-cmd", bin()]);
    c
}

/// A directory whose name no shell may read unquoted, non-UTF-8 included.
fn hostile_dir(e: &Env) -> PathBuf {
    let mut name = b"we'ird !bang! $(touch canary) `touch canary` ; & | * ~ # ".to_vec();
    name.extend_from_slice(b"\xff\xfe dir");
    let dir = e.dir.path().join(OsStr::from_bytes(&name));
    std::fs::create_dir(&dir).unwrap();
    dir
}

fn remote(path: &std::path::Path) -> OsString {
    let mut s = OsString::from("backup:");
    s.push(path);
    s
}

#[test]
fn copy_both_ways_through_each_login_shell_with_a_hostile_path() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("d/b", "2")]);
    let dir = hostile_dir(&e);
    for shell in shells() {
        let s = dir.join(format!("slave of {shell} !"));
        let o = hm(&e, shell).args(["-y", "copy"]).arg(&m).arg(remote(&s)).output().unwrap();
        ok(&o);
        assert!(s.exists(), "{shell}: the slave is not at its exact path:\n{}", show(&o));
        assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m), "{shell}");
        // And read back from there (the read verb, the source side).
        let t = e.path(&format!("back-{shell}"));
        ok(&hm(&e, shell).args(["-y", "copy"]).arg(remote(&s)).arg(&t).output().unwrap());
        assert_eq!(crate::util::sync_end_tid(&e, &t), crate::util::sync_end_tid(&e, &m), "{shell}");
        // verify reads through the remote shell too.
        ok(&hm(&e, shell).arg("verify").arg(&m).arg(remote(&s)).output().unwrap());
    }
    assert!(!e.path("canary").exists(), "a remote shell ran part of the path");
}

#[test]
fn an_ssh_remote_key_takes_every_path_the_orchestrator_quotes() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let prefix = hostile_dir(&e);
    for shell in shells() {
        let forced = |role: &str| {
            let mut c = OsString::from(format!("{} ssh-remote {role} ", bin()));
            c.push(quote(prefix.as_os_str()));
            c
        };
        let s = prefix.join(format!("it's {shell}!"));
        let o =
            hm(&e, shell).env("FAKE_SSH_FORCED", forced("write")).args(["-y", "copy"]).arg(&m).arg(remote(&s)).output();
        ok(&o.unwrap());
        assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m), "{shell}");
        let t = e.path(&format!("t-{shell}"));
        let o =
            hm(&e, shell).env("FAKE_SSH_FORCED", forced("read")).args(["-y", "copy"]).arg(remote(&s)).arg(&t).output();
        ok(&o.unwrap());
        assert_eq!(crate::util::sync_end_tid(&e, &t), crate::util::sync_end_tid(&e, &m), "{shell}");
    }
}

#[test]
fn remote_words_with_a_newline_are_refused_before_anything_runs() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let o = hm(&e, "sh").args(["-y", "copy"]).arg(&m).arg("backup:/tmp/a\nb").output().unwrap();
    fails(&o, 2, "endpoint 'backup:/tmp/a\\nb': a newline cannot be passed to the remote shell (csh cannot quote it)");
    let o = hm(&e, "sh").arg("verify").arg("ssh://backup/x\ny").arg(&m).output().unwrap();
    fails(&o, 2, "endpoint 'ssh://backup/x\\ny': a newline cannot be passed to the remote shell");
    let o = e.cmd().args(["--remote-cmd", "hammer\nrm", "copy"]).arg(&m).arg("backup:/x").output().unwrap();
    fails(&o, 2, "invalid value 'hammer\nrm' for '--remote-cmd <PATH>': \"hammer\\nrm\": a newline cannot be passed");
    assert!(!e.path("ssh.log").exists(), "ssh was started:\n{}", stderr(&o));
    // A local path may hold a newline: no shell reads it.
    let s = e.path("new\nline");
    ok(&e.cmd().args(["-y", "copy"]).arg(&m).arg(&s).output().unwrap());
    assert!(s.exists());
}
