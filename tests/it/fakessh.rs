//! copy and stream through a fake ssh (tests/fixtures/fake-ssh): exact argv, quoting, failures, restarts.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::util::{Env, bin, fails, fake_ssh, ok, show, signal, stderr, wait_for};

/// `hammer-mirror` with the fake ssh and this binary as the remote command.
fn hm(e: &Env) -> Command {
    let mut c = e.cmd();
    c.env("HAMMER_RSH", fake_ssh()).env("FAKE_SSH_LOG", e.path("ssh.log")).args(["--remote-cmd", bin()]);
    c
}

/// The argv of each fake ssh call.
fn calls(e: &Env) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(e.path("ssh.log")).unwrap_or_default();
    log.split("--end--\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(String::from).collect()).collect()
}

#[test]
fn copy_to_a_remote_target_sends_the_documented_argv() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("b/c", "2")]);
    let target = format!("root@backup:{}", e.path("s").display());
    let o = hm(&e).args(["-y", "-vv", "-o", "ConnectTimeout=5", "copy"]).arg(&m).arg(&target).output().unwrap();
    ok(&o);
    let c = calls(&e);
    assert_eq!(c.len(), 1, "one ssh child: {c:?}");
    let s = e.path("s").display().to_string();
    assert_eq!(
        c[0],
        [
            "-o",
            "ConnectTimeout=5",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
            "root@backup",
            "--",
            bin(),
            "-vv",
            "-y",
            "-2",
            "--link-compress",
            "auto",
            "mirror-write",
            &s
        ]
    );
    assert_eq!(crate::util::sync_end_tid(&e, &e.path("s")), crate::util::sync_end_tid(&e, &m));
}

#[test]
fn copy_from_a_remote_source_with_port_compression_and_split() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let src = format!("ssh://u@h:2222{}", m.display());
    let o = hm(&e).args(["-y", "-X", "-S", "1m", "-t", "600", "copy"]).arg(&src).arg(e.path("s")).output().unwrap();
    ok(&o);
    let c = calls(&e);
    let m = m.display().to_string();
    assert_eq!(
        c[0],
        [
            "-C",
            "-p",
            "2222",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
            "u@h",
            "--",
            bin(),
            "-y",
            "-2",
            "-t",
            "600",
            "-S",
            "1m",
            "mirror-read",
            &m
        ]
    );
}

#[test]
fn hostile_paths_arrive_intact_and_run_nothing() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let dir = e.path("we'ird $(touch canary) `touch canary2` ; dir");
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("slave *!");
    let arg = format!("backup:{}", target.display());
    let o = hm(&e).args(["-y", "copy"]).arg(&m).arg(&arg).output().unwrap();
    ok(&o);
    assert!(target.exists(), "the slave was created at the exact path:\n{}", show(&o));
    assert!(!e.path("canary").exists() && !e.path("canary2").exists(), "a shell ran the path");
    let c = calls(&e);
    assert!(c[0].last().unwrap().starts_with('\''), "the remote path is quoted: {:?}", c[0]);
}

#[test]
fn ssh_failures_fail_the_copy_with_advice() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let o = hm(&e).env("FAKE_SSH_EXIT", "255").arg("copy").arg(&m).arg("backup:/x").output().unwrap();
    fails(&o, 1, "ssh to backup failed: ssh authentication was refused");
    let o = hm(&e).args(["--ssh", "no-such-ssh-binary", "copy"]).arg(&m).arg("backup:/x").output().unwrap();
    fails(&o, 1, "command not found: no-such-ssh-binary");
}

#[test]
fn a_remote_refusal_is_status_3() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let m2 = e.master_with("m2", &[("b", "1")]);
    let o = hm(&e).arg("copy").arg(&m).arg(format!("backup:{}", m2.display())).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("different shared-uuid"), "{}", show(&o));
}

#[test]
fn stream_restarts_after_the_link_is_killed() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let s = e.path("s");
    let pids = e.path("pids");
    let child = hm(&e)
        .env("FAKE_SSH_PIDS", &pids)
        .args(["-y", "-i", "0", "--retry-delay", "1", "stream"])
        .arg(&m)
        .arg(format!("backup:{}", s.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let master_tid = crate::util::sync_end_tid(&e, &m);
    wait_for("the first pass", || s.exists() && crate::util::sync_end_tid(&e, &s) == master_tid);
    // Kill the link.
    let first = std::fs::read_to_string(&pids).unwrap();
    let pid: u32 = first.lines().next().unwrap().trim().parse().unwrap();
    signal(pid, Signal::SIGKILL);
    wait_for("a second ssh", || std::fs::read_to_string(&pids).unwrap().lines().count() >= 2);
    // A new import is picked up after the restart.
    crate::util::write_tree(&e.path("m.tree"), &[("later", "2")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let new_tid = crate::util::sync_end_tid(&e, &m);
    wait_for("the new TID on the slave", || crate::util::sync_end_tid(&e, &s) == new_tid);
    signal(child.id(), Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "SIGTERM ends stream with 0:\n{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Lost Link"), "{}", show(&out));
}

#[test]
fn a_stopped_peer_is_detected_as_a_stall_and_the_stream_restarts() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let s = e.path("s");
    let pids = e.path("pids");
    let child = hm(&e)
        .env("FAKE_SSH_PIDS", &pids)
        .args(["-y", "-i", "0", "--retry-delay", "1", "--stall-timeout", "3", "stream"])
        .arg(&m)
        .arg(format!("backup:{}", s.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t1 = crate::util::sync_end_tid(&e, &m);
    wait_for("the first pass", || s.exists() && crate::util::sync_end_tid(&e, &s) == t1);
    // Stop the remote writer: the link stays open but nothing moves.
    let pid: u32 = std::fs::read_to_string(&pids).unwrap().lines().next().unwrap().trim().parse().unwrap();
    signal(pid, Signal::SIGSTOP);
    crate::util::write_tree(&e.path("m.tree"), &[("later", "2")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let t2 = crate::util::sync_end_tid(&e, &m);
    wait_for("the stall restart to sync the new TID", || crate::util::sync_end_tid(&e, &s) == t2);
    signal(pid, Signal::SIGKILL);
    signal(child.id(), Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stall: no progress for 3 s"), "{}", show(&out));
}

#[test]
fn a_forced_ssh_remote_command_allows_mirroring_under_its_prefix_only() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("d/b", "2")]);
    let prefix = e.path("backups");
    std::fs::create_dir(&prefix).unwrap();
    let forced = format!("{} ssh-remote write '{}'", bin(), prefix.display());
    let run = |target: &str| hm(&e).env("FAKE_SSH_FORCED", &forced).args(["-y", "copy"]).arg(&m).arg(target).output();

    let s = prefix.join("s");
    ok(&run(&format!("backup:{}", s.display())).unwrap());
    assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m));

    // Outside the prefix, through "..", and through a symlink that leaves it.
    std::os::unix::fs::symlink(e.dir.path(), prefix.join("out")).unwrap();
    for (target, why) in [
        (e.path("elsewhere"), "is not under"),
        (prefix.join("../escape"), "'..' in"),
        (prefix.join("out/escape"), "is not under"),
    ] {
        let o = run(&format!("backup:{}", target.display())).unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", show(&o));
        assert!(stderr(&o).contains("ssh-remote: refused: ") && stderr(&o).contains(why), "{}", show(&o));
        assert!(!target.exists() && !e.path("escape").exists(), "a refused target was created");
    }
    // A key for writing cannot read.
    let o = hm(&e)
        .env("FAKE_SSH_FORCED", &forced)
        .arg("copy")
        .arg(format!("backup:{}", s.display()))
        .arg(e.path("t"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(stderr(&o).contains("'mirror-read' is not allowed for ssh-remote write"), "{}", show(&o));
}
