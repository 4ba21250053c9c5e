//! Store faults and concurrency through the binary: disk full, read-only target, corrupt store file, two
//! writers, a write and an import, two streams to one target.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{Env, fails, ok, show, wait_for};

/// A small tmpfs of `size`, unmounted on drop; None (with a printed reason) where mounting is not allowed.
pub struct Tmpfs(pub PathBuf);
impl Tmpfs {
    pub fn new(at: &Path, size: &str, ro: bool) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let opts = format!("size={size}{}", if ro { ",ro" } else { "" });
        let o = Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(at).output().ok()?;
        if !o.status.success() {
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// True when `pid` holds a flock(2) lock (the store's writer lock), by /proc/locks.
fn holds_flock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(4) == Some(&pid.to_string().as_str())
    })
}

fn shared_uuid(e: &Env, pfs: &Path) -> String {
    crate::util::status_json(e, pfs)["shared_uuid"].as_str().unwrap().to_string()
}

#[test]
fn disk_full_fails_clearly_and_leaves_the_last_synced_state() {
    let e = Env::new();
    let big: String = (0..200_000).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect::<String>().repeat(20);
    let m = e.master_with("m", &[("big", &big), ("small", "x")]);
    let Some(fs) = Tmpfs::new(&e.path("small-fs"), "2m", false) else { return };
    let s = fs.0.join("s");
    ok(&e.run([OsStr::new("pfs-slave"), s.as_os_str(), OsStr::new(&format!("shared-uuid={}", shared_uuid(&e, &m)))]));
    let o = e.run([OsStr::new("copy"), m.as_os_str(), s.as_os_str()]);
    fails(&o, 1, "no space left on the filesystem holding");
    assert_eq!(crate::util::sync_end_tid(&e, &s), "0x0000000000000001", "nothing became visible");
}

#[test]
fn read_only_target_fails_clearly() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let Some(fs) = Tmpfs::new(&e.path("ro-fs"), "1m", true) else { return };
    let o = e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), fs.0.join("s").as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(crate::util::stderr(&o).contains("Read-only file system"), "{}", show(&o));
}

#[test]
fn corrupt_store_files_are_reported_not_crashed_on() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", &"data ".repeat(50_000))]);
    let bad = e.path("bad");
    std::fs::copy(&m, &bad).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[..64].fill(0xff);
    std::fs::write(&bad, &bytes).unwrap();
    fails(&e.run([OsStr::new("pfs-status"), bad.as_os_str()]), 1, "not a hammer-mirror PFS store file");
    fails(&e.sh("$HM read bad > /dev/null"), 1, "not a hammer-mirror PFS store file");
    // Garbage in the data pages: the record data no longer matches its CRC.
    let bad2 = e.path("bad2");
    let mut bytes = std::fs::read(&m).unwrap();
    let at = bytes.windows(10).position(|w| w == b"data data ").expect("file data in the store");
    bytes[at..at + 10].copy_from_slice(b"XXXXXXXXXX");
    std::fs::write(&bad2, &bytes).unwrap();
    let o = e.sh("$HM read bad2 | $HM -y write s2");
    assert!(!o.status.success() || crate::util::stderr(&o).contains("data CRC error"), "{}", show(&o));
    assert!(crate::util::stderr(&o).contains("data CRC"), "{}", show(&o));
}

#[test]
fn a_second_writer_is_told_the_pfs_is_busy() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    ok(&e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), e.path("s").as_os_str()]));
    // A write that holds the slave while it waits for the rest of the stream.
    let stream = e.sh("$HM read m > stream");
    ok(&stream);
    let first_pfsd = &std::fs::read(e.path("stream")).unwrap()[..320];
    if !Path::new("/proc/locks").exists() {
        eprintln!("skipped: no /proc/locks to see the writer take its lock");
        return;
    }
    let mut holder =
        e.cmd().args(["write", "s"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut feed = holder.stdin.take().unwrap();
    feed.write_all(first_pfsd).unwrap();
    feed.flush().unwrap();
    // `feed` stays open: the write waits for the rest of the stream, holding the slave.
    wait_for("the first write to hold the slave's lock", || holds_flock(holder.id()));
    let o = e.sh("$HM write s < stream");
    fails(&o, 1, "PFS is busy");
    // It said so at once, before it gave up, with how long it waits.
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() >= 2
            && lines[0].ends_with(
                "s: PFS is busy: another process is writing to it; waiting up to 1 s for it (HAMMER_MIRROR_LOCK_WAIT)"
            ),
        "no notice before the wait:\n{err}"
    );
    // A second stream to the same target refuses the same way.
    let o = e.run([OsStr::new("copy"), m.as_os_str(), e.path("s").as_os_str()]);
    fails(&o, 1, "PFS is busy");
    // An import into the PFS the write holds waits, then gives up the same way.
    let o = e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), e.path("s").as_os_str()]);
    fails(&o, 1, "PFS is busy");
    let _ = holder.kill();
    let _ = holder.wait();
    drop(feed);
    // Once the holder is gone the lock is free again (also after a SIGKILL).
    ok(&e.sh("$HM write s < stream"));
}
