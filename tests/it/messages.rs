//! The wording of every refusal and failure: one line that names the command, the PFS or host and the cause, once.

use std::path::Path;
use std::process::{Output, Stdio};

use crate::util::{Env, fake_ssh, ok, show};

/// What no message may look like.
fn check_wording(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    for line in err.lines().filter(|l| l.starts_with("hammer-mirror:")) {
        for c_name in ["validate_mrec_header", "mirror_read:", "update_pfs_snapshot", "generate_mrec_header"] {
            assert!(!line.contains(c_name), "a C function name in {line:?}");
        }
        assert!(!line.trim_end().ends_with(':'), "an empty tail in {line:?}");
        assert!(!line.contains("PFS#"), "a PFS number instead of its path in {line:?}");
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert!(w[0] != w[1], "a doubled prefix {:?} in {line:?}", w[0]);
            let (a, b) = (w[0].split_whitespace().next(), w[1].split_whitespace().next());
            assert!(!(a.is_some() && a == b && a.unwrap().starts_with("mirror-")), "a doubled {a:?} in {line:?}");
        }
    }
}

/// Runs `args` in `e` with `stdin` (a file or nothing) and checks the exit status and the whole error line.
#[track_caller]
fn says(e: &Env, args: &[&str], stdin: Option<&Path>, code: i32, line: &str) {
    let mut c = e.cmd();
    c.args(args);
    if let Some(f) = stdin {
        c.stdin(Stdio::from(std::fs::File::open(f).unwrap()));
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(code), "{args:?}:\n{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l == line), "{args:?}: no line\n  {line}\nin:\n{}", show(&o));
    check_wording(&o);
}

#[test]
fn local_refusals_and_failures() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    e.master_with("other", &[("b", "2")]);
    ok(&e.run(["-y", "copy", "m", "s"]));
    ok(&e.run(["-y", "copy", "m", "up"]));
    ok(&e.run(["pfs-upgrade", "up"]));
    std::fs::write(e.path("empty"), b"").unwrap();
    std::fs::create_dir(e.path("t")).unwrap();

    says(&e, &["read", "nosuch"], None, 1, "hammer-mirror: mirror-read: nosuch: no such PFS");
    says(&e, &["copy", "nosuch", "s"], None, 1, "hammer-mirror: copy nosuch to s: mirror-read: nosuch: no such PFS");
    says(
        &e,
        &["copy", "m", "new"],
        None,
        3,
        "hammer-mirror: copy m to new: mirror-write new: the slave PFS does not exist and there is no terminal to ask; pass -y to create it",
    );
    says(
        &e,
        &["copy", "m", "up"],
        None,
        3,
        "hammer-mirror: copy m to up: mirror-write up: target must be in slave mode (up is a master; make a slave with pfs-slave, or pfs-downgrade it)",
    );
    let o = e.run(["copy", "m", "other"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("source and target have different shared-uuid's!"),
        "{}",
        show(&o)
    );
    check_wording(&o);
    says(
        &e,
        &["write", "s"],
        Some(&e.path("empty")),
        1,
        "hammer-mirror: mirror-write s: the source sent nothing (the input ended before any PFS description); the PFS is unchanged",
    );
    says(&e, &["pfs-status", "nosuch"], None, 1, "hammer-mirror: pfs-status: nosuch: no such PFS");
    says(&e, &["pfs-update", "nosuch", "label=x"], None, 1, "hammer-mirror: pfs-update: nosuch: no such PFS");
    says(&e, &["-y", "pfs-destroy", "nosuch"], None, 1, "hammer-mirror: pfs-destroy: nosuch: no such PFS");
    says(&e, &["export", "nosuch", "out"], None, 1, "hammer-mirror: export: nosuch: no such PFS");
    says(&e, &["import", "t", "nosuch"], None, 1, "hammer-mirror: import: nosuch: no such PFS");
    says(&e, &["verify", "m", "nosuch"], None, 1, "hammer-mirror: verify m nosuch: mirror-read: nosuch: no such PFS");
    says(&e, &["pfs-upgrade", "m"], None, 1, "hammer-mirror: pfs-upgrade m: It is already a master");
    says(&e, &["pfs-master", "m"], None, 1, "hammer-mirror: Cannot create m, file exists!");
    says(&e, &["copy", "m", "m"], None, 2, "hammer-mirror: source and target are the same PFS (m)");
    says(
        &e,
        &["read", "t"],
        None,
        1,
        "hammer-mirror: mirror-read: t: not a PFS: a plain directory; record it with `hammer-mirror import <dir> <pfs>` first (a store PFS is a file)",
    );
    // A failed export leaves no directory behind that it made.
    ok(&e.run([
        "pfs-slave",
        "fresh",
        &format!("shared-uuid={}", crate::util::status_json(&e, &e.path("m"))["shared_uuid"].as_str().unwrap()),
    ]));
    let o = e.run(["export", "fresh", "out"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(!e.path("out").exists(), "the failed export left its directory:\n{}", show(&o));
}

#[test]
fn remote_failures_name_the_host_and_the_cause() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    let fake = fake_ssh();
    let rsh = fake.to_str().unwrap();
    // A remote program that fails without a word: no empty tail.
    says(
        &e,
        &["--ssh", rsh, "--remote-cmd", "false", "-y", "copy", "m", "backup:/x"],
        None,
        1,
        "hammer-mirror: copy m to backup:/x: the target on backup failed with exit status 1",
    );
    // A remote source that sends nothing and exits 0 is not a success.
    says(
        &e,
        &["--ssh", rsh, "--remote-cmd", "true", "-y", "copy", "backup:/m", "s"],
        None,
        1,
        "hammer-mirror: copy backup:/m to s: mirror-write s: the source sent nothing (the input ended before any PFS description); the PFS is unchanged",
    );
    assert!(!e.path("s").exists(), "no slave was created from nothing");
    // A remote hammer-mirror too old for --link-compress: both sides named, a refusal.
    let old = e.path("old");
    std::fs::write(
        &old,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --link-compress ] && {{ echo \"error: unexpected argument '--link-compress' found\" >&2; exit 2; }}; done\nexec {} \"$@\"\n",
            crate::util::bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let old = old.display().to_string();
    says(
        &e,
        &["--ssh", rsh, "--remote-cmd", &old, "-y", "copy", "m", "backup:/x"],
        None,
        3,
        &format!(
            "hammer-mirror: copy m to backup:/x: the target on backup does not know --link-compress: its {old} is older than this hammer-mirror {} (which asked for --compress auto); upgrade the remote one, or give --compress none here",
            env!("CARGO_PKG_VERSION")
        ),
    );
    says(
        &e,
        &["--ssh", rsh, "--remote-cmd", "hammer", "--compress", "lz4", "copy", "m", "backup:/x"],
        None,
        2,
        "hammer-mirror: --compress lz4 needs hammer-mirror on the remote side: stock hammer (--remote-cmd hammer) cannot decompress; use --compress none (or -X for ssh -C)",
    );
    // A missing remote program is a refusal that retrying cannot fix.
    let o = e
        .cmd()
        .args(["--ssh", rsh, "--remote-cmd", "no-such-hammer-mirror", "-y", "copy", "m", "backup:/x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the target on backup: no-such-hammer-mirror was not found on the remote host (exit status 127); give its full path with --remote-cmd"),
        "{}",
        show(&o)
    );
    check_wording(&o);
}

#[test]
fn monitoring_refusals_and_failures() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let o = e.run(["--metrics-listen", &listen, "-y", "copy", "m", "s"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("hammer-mirror: --metrics-listen {listen}: cannot listen: ")), "{}", show(&o));
    check_wording(&o);
    says(
        &e,
        &["status", "--check", "--warn", "2h", "--crit", "1h"],
        None,
        2,
        "hammer-mirror: status --check: --warn (7200 s) is above --crit (3600 s)",
    );
    says(
        &e,
        &["--after-pass", "true", "ssh-remote", "read", "/tmp"],
        None,
        2,
        "hammer-mirror: ssh-remote: --after-pass is refused here: hooks and metrics belong to the orchestrating copy, stream or run",
    );
    says(
        &e,
        &["--metrics-file", "m.prom", "watch", "tree", "m"],
        None,
        2,
        "hammer-mirror: watch: --metrics-file is refused here: hooks and metrics belong to the orchestrating copy, stream or run",
    );
    // An unwritable state directory is said once, and the copy goes on.
    std::fs::write(e.path("file"), b"").unwrap();
    let o =
        e.cmd().env("HAMMER_MIRROR_STATE_DIR", e.path("file/state")).args(["-y", "copy", "m", "s"]).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("state directory")).collect();
    assert_eq!(warned.len(), 1, "{}", show(&o));
    assert!(
        warned[0].contains(&format!("creating the state directory {}", e.path("file/state").display())),
        "{}",
        show(&o)
    );
}

#[test]
fn retention_refusals_and_failures() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    says(&e, &["prune", "nosuch"], None, 1, "hammer-mirror: prune: nosuch: no such PFS");
    says(&e, &["compact", "nosuch"], None, 1, "hammer-mirror: compact: nosuch: no such PFS");
    says(&e, &["snapshot", "nosuch"], None, 1, "hammer-mirror: snapshot: nosuch: no such PFS");
    says(&e, &["snapls", "nosuch"], None, 1, "hammer-mirror: snapls: nosuch: no such PFS");
    says(
        &e,
        &["snaprm", "m", "0x5"],
        None,
        1,
        "hammer-mirror: snaprm m: no snapshot at TID 0x0000000000000005 (snapls lists them); nothing was deleted",
    );
    says(
        &e,
        &["prune", "m", "--forget-target", "xyz"],
        None,
        2,
        "hammer-mirror: prune: --forget-target \"xyz\" is not a uuid",
    );
    says(
        &e,
        &["prune", "m", "--forget-target", "2407f5f2-66d2-4d05-9c74-fe2e77c1fa22"],
        None,
        2,
        "hammer-mirror: prune: m knows no target 2407f5f2-66d2-4d05-9c74-fe2e77c1fa22",
    );
    says(
        &e,
        &["export", "--as-of", "nosuch", "m", "out"],
        None,
        2,
        "hammer-mirror: export: --as-of \"nosuch\" is neither a TID nor the note of a snapshot of m (snapls lists them)",
    );
    says(
        &e,
        &["-y", "stream", "--prune", "1d:all", "h:m", "s"],
        None,
        2,
        "hammer-mirror: stream --prune: the source h:m is on another host; run `hammer-mirror prune` there (or a stream with --prune from it)",
    );
}
