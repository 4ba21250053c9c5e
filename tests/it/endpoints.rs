//! Endpoints as the binary takes them: a host that starts with '-' wherever an endpoint is taken, the
//! remote home (`host:~/pfs`), global options after the command, and option values that are refused.

use std::ffi::OsStr;
use std::process::Command;

use crate::util::{Env, bin, fails, fake_ssh, ok, show, stdout};

fn calls(e: &Env) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(e.path("ssh.log")).unwrap_or_default();
    log.split("--end--\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(String::from).collect()).collect()
}

/// `hammer-mirror` with the fake ssh (remote home: `home/` of the test dir).
fn hm(e: &Env) -> Command {
    std::fs::create_dir_all(e.path("home")).unwrap();
    let mut c = e.cmd();
    c.env("HAMMER_RSH", fake_ssh())
        .env("FAKE_SSH_LOG", e.path("ssh.log"))
        .env("HOME", e.path("home"))
        .args(["--remote-cmd", bin()]);
    c
}

#[test]
fn a_host_that_starts_with_a_dash_is_a_usage_error_wherever_an_endpoint_is_taken() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let m = m.to_str().unwrap();
    for args in [
        &["copy", "-h:/x", "s"][..],
        &["copy", m, "-h:/x"],
        &["mirror-copy", "-y", "-h:/x", "s"],
        &["copy", "-h:/x", "s", "-y"],
        &["-v", "stream", m, "-h:/x"],
        &["mirror-stream", "-h:/x", "s"],
        &["verify", "-h:/x", m],
        &["verify", "--as-of", "1", m, "-h:/x"],
        &["copy", "--", "-h:/x", "s"],
    ] {
        let o = hm(&e).args(args).output().unwrap();
        fails(&o, 2, "hammer-mirror: endpoint '-h:/x': a host may not start with '-'");
        assert!(o.stdout.is_empty(), "{args:?} printed something (the help?):\n{}", show(&o));
    }
    let o = hm(&e).args(["copy", "-oProxyCommand=sh:/x", "s"]).output().unwrap();
    fails(&o, 2, "required arguments were not provided");
    assert!(calls(&e).is_empty(), "ssh was started");
}

#[test]
fn global_options_after_the_command_still_work() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let s = e.path("s");
    // A remote source, which gets the source-only options (-S, -t) too.
    let o = hm(&e)
        .arg("copy")
        .arg(format!("backup:{}", m.display()))
        .arg(&s)
        .args(["-y", "-oConnectTimeout=5", "-S1m", "-o", "ProxyJump=j:22", "-vt", "600"])
        .output()
        .unwrap();
    ok(&o);
    let c = calls(&e);
    let words = &c[0];
    for w in [["-o", "ConnectTimeout=5"], ["-o", "ProxyJump=j:22"], ["-S", "1m"], ["-t", "600"]] {
        assert!(words.windows(2).any(|p| p == w), "{w:?} not in {words:?}");
    }
    assert!(words.contains(&"-v".to_string()) && words.contains(&"-y".to_string()), "{words:?}");
    assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m));
}

#[test]
fn a_remote_path_under_tilde_is_in_the_remote_home_as_with_scp() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let home = e.path("home");
    for (target, slave) in [("backup:~/s1", "s1"), ("ssh://backup/~/s2", "s2"), ("backup:s3", "s3")] {
        let o = hm(&e).args(["-y", "copy"]).arg(&m).arg(target).output().unwrap();
        ok(&o);
        assert!(home.join(slave).exists(), "{target}: no slave in the remote home:\n{}", show(&o));
        assert_eq!(crate::util::sync_end_tid(&e, &home.join(slave)), crate::util::sync_end_tid(&e, &m));
        assert_eq!(calls(&e).last().unwrap().last().unwrap(), slave, "the path as sent for {target}");
    }
    assert!(!home.join("~").exists() && !e.path("~").exists(), "a directory named '~' was made");
    // The same paths as a source, and to verify.
    ok(&hm(&e).args(["-y", "copy", "backup:~/s1", "back"]).output().unwrap());
    assert_eq!(crate::util::sync_end_tid(&e, &e.path("back")), crate::util::sync_end_tid(&e, &m));
    let o = hm(&e).arg("verify").arg(&m).arg("backup:~/s2").output().unwrap();
    ok(&o);
    assert!(stdout(&o).contains("identical"), "{}", show(&o));
    // A relative path that starts with '-' is not an option to the remote program.
    ok(&hm(&e).args(["-y", "copy"]).arg(&m).arg("backup:-h").output().unwrap());
    assert!(home.join("-h").exists());
    assert_eq!(calls(&e).last().unwrap().last().unwrap(), "./-h");
}

#[test]
fn home_directories_that_are_not_a_pfs_path_are_refused() {
    let e = Env::new();
    for (arg, msg) in [
        ("backup:~", "endpoint 'backup:~': names the remote home directory itself"),
        ("backup:~/", "endpoint 'backup:~/': names the remote home directory itself"),
        (
            "backup:~bob/pfs",
            "endpoint 'backup:~bob/pfs': another user's home (~user/) is not supported; give the full path",
        ),
    ] {
        fails(&hm(&e).args(["copy", "m", arg]).output().unwrap(), 2, msg);
    }
    assert!(calls(&e).is_empty(), "ssh was started");
}

#[test]
fn a_bandwidth_of_zero_is_a_usage_error() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    for zero in ["0", "0k", "0x0"] {
        let o = e.run([
            OsStr::new("-b"),
            OsStr::new(zero),
            OsStr::new("-y"),
            OsStr::new("copy"),
            m.as_os_str(),
            OsStr::new("s"),
        ]);
        fails(
            &o,
            2,
            &format!("invalid bandwidth '{zero}': must be at least 1 byte per second (leave -b out for no limit)"),
        );
    }
    assert!(!e.path("s").exists());
    ok(&e.run([
        OsStr::new("-b"),
        OsStr::new("1m"),
        OsStr::new("-y"),
        OsStr::new("copy"),
        m.as_os_str(),
        OsStr::new("s"),
    ]));
}
