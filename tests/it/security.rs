//! Issue 20's attacks that still went through, as regression tests through the binary: a hostile remote's malformed record or silence, a store created on a full filesystem, a writer stopped while it waits for another's lock.
//!
//! (What held is tested where it lives: storefiles.rs for lock-file symlinks,
//! modes, readers beside writers and kills during creation; endpoints.rs for
//! `-b 0`, `host:~/pfs` and `-h:/x`; fakessh.rs and defects.rs for silent
//! sources and remote stderr.)

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{Env, fails, ok, show, signal, stderr, wait_for};
use hammer_mirror::store::{Access, Store};

/// An executable sh script `name` in the test directory: a hostile stand-in for ssh.
fn script(e: &Env, name: &str, body: &str) -> PathBuf {
    let p = e.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Waits for `c` up to 90 s (then kills it and fails naming `what`); the output and how long it took.
#[track_caller]
fn finish(what: &str, mut c: Child) -> (Output, Duration) {
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(90) {
            let _ = c.kill();
            panic!("{what} did not finish within 90 s:\n{}", show(&c.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (c.wait_with_output().unwrap(), t.elapsed())
}

fn timed(what: &str, mut c: Command) -> (Output, Duration) {
    finish(what, c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap())
}

/// Never a signal, never a panic: an exit status of our own and a message.
#[track_caller]
fn no_crash(what: &str, o: &Output) {
    assert!(o.status.signal().is_none() && o.status.code().is_some_and(|c| c < 100), "{what}: crashed:\n{}", show(o));
    assert!(!stderr(o).contains("panicked"), "{what}: a panic:\n{}", show(o));
}

#[test]
fn a_malformed_record_from_a_remote_is_named_at_once_whichever_side_sends_it() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    // A record head with hammer's signature and rec_size 5, then silence with the link open.
    let evil =
        script(&e, "evil-ssh", "printf '\\162\\162\\331\\115\\0\\0\\0\\0\\5\\0\\0\\0\\1\\0\\0\\0'\nexec sleep 600\n");
    for (src, dst, line) in [
        (
            "host:/x/m",
            "s",
            "hammer-mirror: copy host:/x/m to s: mirror-write s: reading from the source: malformed record at byte 0: illegal rec_size 5 (must be 16..=65856)",
        ),
        (
            "m",
            "host:/x/s",
            "hammer-mirror: copy m to host:/x/s: mirror-read m: reading from the target: malformed record at byte 0: illegal rec_size 5 (must be 16..=65856)",
        ),
    ] {
        let mut c = e.cmd();
        // An unframed link, so that the record reaches the mirror stream's
        // parser (with compression the frame decoder refuses it first: the
        // compress tests cover that).
        c.env("HAMMER_RSH", &evil).args(["-y", "--compress", "none", "--stall-timeout", "100", "copy", src, dst]);
        let (o, took) = timed("a copy with a hostile remote", c);
        no_crash(src, &o);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(stderr(&o).lines().any(|l| l == line), "no line\n  {line}\nin:\n{}", show(&o));
        // The remote gets 2 s once our side failed; neither the stall timeout nor 30 s.
        assert!(took < Duration::from_secs(20), "{src} -> {dst} took {took:?}:\n{}", show(&o));
    }
    assert!(!e.path("s").exists(), "no slave from a malformed stream");
}

#[test]
fn a_silent_remote_ends_as_the_stall_it_caused_not_as_our_kill_of_it() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    let evil = script(&e, "silent-ssh", "exec sleep 600\n");
    for (src, dst) in [("host:/x/m", "s"), ("m", "host:/x/s")] {
        let mut c = e.cmd();
        c.env("HAMMER_RSH", &evil).args(["-y", "--stall-timeout", "2", "copy", src, dst]);
        let (o, took) = timed("a copy with a silent remote", c);
        no_crash(src, &o);
        let line =
            format!("hammer-mirror: copy {src} to {dst}: the link stalled: no progress for 2 s (--stall-timeout)");
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(stderr(&o).lines().any(|l| l == line), "no line\n  {line}\nin:\n{}", show(&o));
        assert!(!stderr(&o).contains("exit status"), "our own kill reported as the cause:\n{}", show(&o));
        assert!(took < Duration::from_secs(30), "{src} -> {dst} took {took:?}");
    }
}

/// Fills the filesystem holding `dir` (a small tmpfs).
fn fill(dir: &Path) {
    let mut f = File::create(dir.join("fill")).unwrap();
    let block = vec![0x5a_u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_store_created_on_a_full_filesystem_fails_with_enospc_never_a_signal() {
    let e = Env::new();
    e.master_with("m", &[("a", "1"), ("b", &"b".repeat(50_000))]);
    ok(&e.sh("$HM -B read m > m.stream 2>/dev/null"));
    let Some(fs) = crate::faults::Tmpfs::new(&e.path("full"), "2m", false) else { return };
    fill(&fs.0);
    // LMDB maps its lock file shared: a page the filesystem cannot back was a SIGBUS.
    let nospace = |path: &str| format!("{path}: allocate the lock file failed: No space left on device");
    let (o, _) = timed("pfs-master", {
        let mut c = e.cmd();
        c.args(["pfs-master", "full/x"]);
        c
    });
    no_crash("pfs-master on a full filesystem", &o);
    fails(&o, 1, &nospace("full/x"));
    let (o, _) = timed("copy", {
        let mut c = e.cmd();
        c.args(["-y", "copy", "m", "full/s"]);
        c
    });
    no_crash("copy into a new slave on a full filesystem", &o);
    fails(&o, 1, &nospace("full/s"));
    let (o, _) = timed("write", {
        let mut c = e.cmd();
        c.args(["-y", "write", "full/w"]).stdin(File::open(e.path("m.stream")).unwrap());
        c
    });
    no_crash("write into a new slave on a full filesystem", &o);
    fails(&o, 1, &nospace("full/w"));
    let left: Vec<String> =
        std::fs::read_dir(&fs.0).unwrap().map(|d| d.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["fill"], "nothing left behind");
    // With room again, the same commands work.
    std::fs::remove_file(fs.0.join("fill")).unwrap();
    ok(&e.run(["-y", "copy", "m", "full/s"]));
    ok(&e.run(["verify", "m", "full/s"]));
}

#[test]
fn a_writer_waiting_for_another_s_lock_stops_at_once() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    ok(&e.run(["-y", "copy", "m", "s"]));
    let before = crate::util::sync_end_tid(&e, &e.path("s"));
    ok(&e.run(["import", "m.tree", "m"]));
    ok(&e.sh("$HM -B read m > m.stream 2>/dev/null"));
    // Another writer holds the slave (this process, for as long as `held` lives).
    let held = Store::open(&e.path("s"), Access::Write).unwrap();
    let err = e.path("err");
    let start = |args: &[&str], stream: bool| {
        let mut c = e.cmd();
        c.env("HAMMER_MIRROR_LOCK_WAIT", "120").args(args).stdout(Stdio::null());
        if stream {
            c.stdin(File::open(e.path("m.stream")).unwrap());
        }
        let c = c.stderr(File::create(&err).unwrap()).spawn().unwrap();
        wait_for("the busy notice", || {
            std::fs::read_to_string(&err)
                .is_ok_and(|s| s.contains("s: PFS is busy: another process is writing to it; waiting up to 120 s"))
        });
        c
    };
    let stopped = "s: PFS is busy: another process is writing to it (stopped by a signal while waiting for it; nothing was changed)";
    for (args, stream, sig, code, says) in [
        (&["write", "s"][..], true, Signal::SIGTERM, 1, stopped),
        (&["write", "s"], true, Signal::SIGINT, 1, stopped),
        (&["copy", "m", "s"], false, Signal::SIGTERM, 143, "stopped by SIGTERM"),
        (&["copy", "m", "s"], false, Signal::SIGINT, 130, "interrupted"),
    ] {
        let c = start(args, stream);
        signal(c.id(), sig);
        let (o, took) = finish(&format!("{args:?} after {sig}"), c);
        let text = std::fs::read_to_string(&err).unwrap();
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?} to stop on {sig}:\n{text}");
        assert!(text.contains(says), "{args:?} after {sig}: no {says:?} in:\n{text}");
        assert!(!text.contains("waited 120 s"), "{args:?} waited the lock wait out:\n{text}");
        assert_eq!(o.status.code(), Some(code), "{args:?} after {sig}:\n{text}");
    }
    // The watchdog ends a copy whose target waits, too.
    let mut c = e.cmd();
    c.env("HAMMER_MIRROR_LOCK_WAIT", "120").args(["--stall-timeout", "2", "copy", "m", "s"]);
    let (o, took) = timed("a copy whose target waits for the lock", c);
    fails(
        &o,
        1,
        "s: PFS is busy: another process is writing to it (the run ended while waiting for it; nothing was changed)",
    );
    assert!(took < Duration::from_secs(30), "the stalled copy took {took:?}");
    drop(held);
    assert_eq!(crate::util::sync_end_tid(&e, &e.path("s")), before, "nothing changed while it waited");
    ok(&e.run(["copy", "m", "s"]));
    ok(&e.run(["verify", "m", "s"]));
}

#[test]
fn a_local_enospc_while_pulling_is_the_one_error_shown() {
    let e = Env::new();
    // 4 MB that no filesystem trick shrinks, for a 2 MB filesystem.
    let mut x = 0x2545_f491_u32;
    let big: String = (0..4_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let m = e.master_with("m", &[("big", &big), ("small", "x")]);
    let Some(fs) = crate::faults::Tmpfs::new(&e.path("small-fs"), "2m", false) else { return };
    let s = fs.0.join("s");
    let uuid = crate::util::status_json(&e, &m)["shared_uuid"].as_str().unwrap().to_string();
    ok(&e.run([
        std::ffi::OsStr::new("pfs-slave"),
        s.as_os_str(),
        std::ffi::OsStr::new(&format!("shared-uuid={uuid}")),
    ]));
    let o = e
        .cmd()
        .env("HAMMER_RSH", crate::util::fake_ssh())
        .args(["--remote-cmd", crate::util::bin(), "copy", &format!("host:{}", m.display())])
        .arg(&s)
        .output()
        .unwrap();
    no_crash("a pull into a full filesystem", &o);
    fails(&o, 1, "(no space left on the filesystem holding");
    let err = stderr(&o);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("hammer-mirror:")).collect();
    assert_eq!(errors.len(), 1, "one error, the cause:\n{err}");
    assert!(!err.contains("Broken pipe") && !err.contains("closed the link"), "the remote's symptom shown:\n{err}");
    assert_eq!(crate::util::sync_end_tid(&e, &s), "0x0000000000000001", "nothing became visible");
}
