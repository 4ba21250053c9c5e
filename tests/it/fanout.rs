//! One source to several targets: `copy SRC DST1 DST2 ...` and `stream SRC DST1 DST2 ...`, each target on its own.

use std::ffi::OsStr;
use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::util::{Env, bin, fake_ssh, ok, show, signal, stderr, sync_end_tid, wait_for};

#[test]
fn a_copy_to_several_targets_reports_each_and_exits_with_the_worst() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("d/b", "2")]);
    e.master_with("other", &[("x", "9")]);
    let remote = format!("backup:{}", e.path("s2").display());
    let o = e
        .cmd()
        .env("HAMMER_RSH", fake_ssh())
        .args(["--remote-cmd", bin(), "-y", "copy", "m", "s1", &remote])
        .output()
        .unwrap();
    ok(&o);
    for s in ["s1", "s2"] {
        assert_eq!(sync_end_tid(&e, &e.path(s)), sync_end_tid(&e, &m), "{s}:\n{}", show(&o));
    }
    let err = stderr(&o);
    assert!(err.contains(" m -> s1: synced ") && err.contains(&format!(" m -> {remote}: synced ")), "{err}");

    // One target refuses (a master of another PFS): the others still sync, the status is the refusal's.
    crate::util::write_tree(&e.path("m.tree"), &[("c", "3")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let o = e
        .cmd()
        .env("HAMMER_RSH", fake_ssh())
        .args(["--remote-cmd", bin(), "copy", "m", "other", "s1", &remote])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("hammer-mirror: copy m to other: ") && err.contains("different shared-uuid's"), "{err}");
    for s in ["s1", "s2"] {
        assert_eq!(sync_end_tid(&e, &e.path(s)), sync_end_tid(&e, &m), "{s}:\n{}", show(&o));
    }
    // The same target twice is a usage error.
    let o = e.run(["copy", "m", "s1", "s1"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stderr(&o).contains("the target s1 is given twice"), "{}", show(&o));
}

#[test]
fn a_stalled_target_of_a_stream_does_not_hold_back_the_others() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let s1 = e.path("s1");
    let s2 = e.path("s2");
    let child = e
        .cmd()
        .env("HAMMER_RSH", fake_ssh())
        .env("FAKE_SSH_PIDS", e.path("pids"))
        .args(["--remote-cmd", bin(), "-y", "-i", "0", "--stall-timeout", "60", "stream", "m"])
        .arg(&s1)
        .arg(format!("backup:{}", s2.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t1 = sync_end_tid(&e, &m);
    wait_for("both targets' first pass", &|| {
        s1.exists() && s2.exists() && sync_end_tid(&e, &s1) == t1 && sync_end_tid(&e, &s2) == t1
    });
    // The remote target stops answering (SIGSTOP): the local one goes on.
    let remote: u32 = std::fs::read_to_string(e.path("pids")).unwrap().lines().next().unwrap().trim().parse().unwrap();
    signal(remote, Signal::SIGSTOP);
    for (i, name) in ["b", "c"].iter().enumerate() {
        crate::util::write_tree(&e.path("m.tree"), &[(name, "new")]);
        ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
        let t = sync_end_tid(&e, &m);
        wait_for(&format!("import {i} on the live target"), &|| sync_end_tid(&e, &s1) == t);
    }
    signal(remote, Signal::SIGCONT);
    let t = sync_end_tid(&e, &m);
    wait_for("the stalled target to catch up", &|| sync_end_tid(&e, &s2) == t);
    signal(child.id(), Signal::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("stopped by SIGTERM").count(), 2, "one stop line per target:\n{err}");
}

#[test]
fn a_cascade_passes_on_only_what_the_middle_slave_acknowledged() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    ok(&e.run(["-y", "copy", "m", "s1"]));
    ok(&e.run(["-y", "copy", "s1", "s2"]));
    assert_eq!(sync_end_tid(&e, &e.path("s2")), sync_end_tid(&e, &m));
    // A big change reaches s1 only in part: the copy is killed half way.
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(e.path("m.tree/big"), &big).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let before = sync_end_tid(&e, &e.path("s1"));
    let size = || std::fs::metadata(e.path("s1")).map_or(0, |m| m.len());
    let start = size();
    let child = e.cmd().args(["-b", "8m", "copy", "m", "s1"]).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the copy to apply a part of the change", &|| size() > start + (10 << 20));
    signal(child.id(), Signal::SIGKILL);
    let _ = child.wait_with_output();
    assert_eq!(sync_end_tid(&e, &e.path("s1")), before, "s1 acknowledged nothing new");
    // s1 as a source sends what it acknowledged, not the part it holds above it.
    ok(&e.run(["copy", "s1", "s2"]));
    assert_eq!(sync_end_tid(&e, &e.path("s2")), before);
    ok(&e.run(["verify", "s1", "s2"]));
    ok(&e.run(["-q", "export", "s2", "s2.out"]));
    assert!(!e.path("s2.out/big").exists(), "the unacknowledged part reached the slave's slave");
    // Once s1 has it all, so does s2.
    ok(&e.run(["copy", "m", "s1"]));
    ok(&e.run(["copy", "s1", "s2"]));
    assert_eq!(sync_end_tid(&e, &e.path("s2")), sync_end_tid(&e, &m));
    ok(&e.run(["verify", "m", "s2"]));
}

#[test]
fn streams_cascade_master_to_slave_to_slave() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    ok(&e.run(["-y", "copy", "m", "s1"]));
    let stream = |src: &str, dst: &str| {
        e.cmd()
            .args(["-y", "-i", "0", "stream", src, dst])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = stream("m", "s1");
    let second = stream("s1", "s2");
    for name in ["b", "c"] {
        crate::util::write_tree(&e.path("m.tree"), &[(name, name)]);
        ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
        let t = sync_end_tid(&e, &m);
        wait_for("the change at the end of the cascade", &|| {
            e.path("s2").exists() && sync_end_tid(&e, &e.path("s2")) == t
        });
    }
    for c in [first, second] {
        signal(c.id(), Signal::SIGTERM);
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    }
    ok(&e.run(["verify", "m", "s2"]));
}
