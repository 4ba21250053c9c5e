//! `watch`: a live directory recorded into a PFS through the binary; bad input, signals, restarts, lost events, limits.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hammer_mirror::hammerfs::{DirEntryData, HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_INODE, InodeData};
use hammer_mirror::ioctl::Pfs;
use hammer_mirror::store::{Access, Store};
use nix::sys::signal::Signal;

use crate::util::{Env, alive, fails, ok, signal, stderr, wait_for};

/// A `watch` running in the background; its stderr and stdout go to files.
struct Watch {
    child: Child,
    err: PathBuf,
    out: PathBuf,
}

impl Watch {
    fn start(env: &Env, tree: &Path, pfs: &Path, extra: &[&str]) -> Watch {
        Self::start_with(env, env.cmd(), tree, pfs, extra)
    }

    fn start_with(env: &Env, mut cmd: Command, tree: &Path, pfs: &Path, extra: &[&str]) -> Watch {
        let n = std::fs::read_dir(env.dir.path()).unwrap().count();
        let (err, out) = (env.path(&format!("watch-{n}.err")), env.path(&format!("watch-{n}.out")));
        cmd.arg("--json");
        if !extra.contains(&"--settle") {
            cmd.args(["--settle", "50"]);
        }
        let child = cmd
            .args(extra)
            .arg("watch")
            .arg(tree)
            .arg(pfs)
            .stderr(std::fs::File::create(&err).unwrap())
            .stdout(std::fs::File::create(&out).unwrap())
            .spawn()
            .expect("start watch");
        let w = Watch { child, err, out };
        wait_for("watch to finish its first scan", || w.log().contains("watching") || !alive(w.child.id()));
        assert!(alive(w.child.id()), "watch ended at start:\n{}", w.log());
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The JSON objects printed so far.
    fn json(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    fn stop(mut self, sig: Signal) -> (std::process::ExitStatus, String) {
        signal(self.child.id(), sig);
        let st = self.child.wait().unwrap();
        (st, self.log())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if alive(self.child.id()) {
            signal(self.child.id(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn master(env: &Env, name: &str) -> PathBuf {
    let pfs = env.path(name);
    ok(&env.run([OsStr::new("pfs-master"), pfs.as_os_str()]));
    pfs
}

/// Per path: type, mode, owner, size, mtime (µs), links, contents or target.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o} {}:{}", m.mode(), m.uid(), m.gid())
            } else if m.is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else {
                format!(
                    "file {:o} {}:{} {} links {} mtime {} crc {:08x}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    m.nlink(),
                    m.mtime() * 1_000_000 + m.mtime_nsec() / 1000,
                    crc32fast::hash(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(p.strip_prefix(root).unwrap().display().to_string(), what);
        }
    }
    out
}

/// `export` of the PFS's latest TID into a new directory.
fn exported(env: &Env, pfs: &Path) -> PathBuf {
    let n = std::fs::read_dir(env.dir.path()).unwrap().count();
    let out = env.path(&format!("export-{n}"));
    ok(&env.run([OsStr::new("-q"), OsStr::new("export"), pfs.as_os_str(), out.as_os_str()]));
    out
}

/// `export --as-of tid` into `as-of-<tid>`.
fn exported_as_of(env: &Env, pfs: &Path, tid: &str) -> PathBuf {
    let out = env.path(&format!("as-of-{tid}"));
    ok(&env.run([
        OsStr::new("-q"),
        OsStr::new("export"),
        OsStr::new("--as-of"),
        OsStr::new(tid),
        pfs.as_os_str(),
        out.as_os_str(),
    ]));
    out
}

/// Writes the fence file and waits until the PFS holds it: every change
/// made before it was seen and recorded (inotify keeps the order).
fn fence(env: &Env, tree: &Path, pfs: &Path, n: u32) {
    std::fs::write(tree.join(".fence"), n.to_string()).unwrap();
    wait_for(&format!("fence {n} to be recorded"), || {
        let out = exported(env, pfs);
        let there = std::fs::read_to_string(out.join(".fence")).is_ok_and(|s| s == n.to_string());
        let _ = std::fs::remove_dir_all(&out);
        there
    });
}

/// Asserts that the PFS's latest TID, exported, is the tree.
#[track_caller]
fn assert_pfs_is_tree(env: &Env, tree: &Path, pfs: &Path) {
    let out = exported(env, pfs);
    assert_eq!(snapshot(&out), snapshot(tree), "export of {} differs from {}", pfs.display(), tree.display());
    std::fs::remove_dir_all(out).unwrap();
}

/// The live records as of the PFS's last TID, with object ids renumbered in
/// the order a walk from the root meets them (object ids come from the TID
/// space: two PFSs that took other TIDs have others) and without access
/// times (reading a directory sets its own).
fn canonical_records(pfs: &Path) -> Vec<(u32, i64, u16, i64, u8, Vec<u8>)> {
    let s = Store::open(pfs, Access::Read).unwrap();
    let asof = s.get_pseudofs().unwrap().sync_end_tid;
    let mut recs = Vec::new();
    s.for_each_as_of(asof, |l, d| {
        let b = &l.base;
        recs.push((b.localization, b.obj_id, b.rec_type, b.key, b.obj_type, d.to_vec()));
        Ok(())
    })
    .unwrap();
    // Entries per directory in key order, then a breadth-first walk from the root.
    let mut entries: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (_, obj, rt, _, _, d) in &recs {
        if *rt == HAMMER_RECTYPE_DIRENTRY {
            entries.entry(*obj).or_default().push(DirEntryData::decode(d).unwrap().obj_id);
        }
    }
    let mut ids = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([1i64]);
    while let Some(o) = queue.pop_front() {
        if ids.contains_key(&o) {
            continue;
        }
        ids.insert(o, ids.len() as i64 + 1);
        queue.extend(entries.get(&o).into_iter().flatten());
    }
    let id = |o: i64| *ids.get(&o).unwrap_or_else(|| panic!("object {o:x} not reached from the root"));
    let mut out: Vec<_> = recs
        .into_iter()
        .map(|(lo, obj, rt, key, ot, mut d)| {
            if rt == HAMMER_RECTYPE_DIRENTRY {
                let mut e = DirEntryData::decode(&d).unwrap();
                e.obj_id = id(e.obj_id);
                d = e.encode();
            } else if rt == HAMMER_RECTYPE_INODE {
                let mut ino = InodeData::decode(&d).unwrap();
                ino.atime = 0;
                if ino.parent_obj_id != 0 {
                    ino.parent_obj_id = id(ino.parent_obj_id);
                }
                d = ino.encode().to_vec();
            }
            (lo, id(obj), rt, key, ot, d)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_directory_is_recorded_as_it_changes_and_sigterm_records_what_is_pending() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("d/f", "one"), ("g", "two")]);
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &[]);
    assert!(w.log().contains("full scan (start)"), "{}", w.log());
    assert_pfs_is_tree(&env, &tree, &pfs);

    std::fs::write(tree.join("d/new"), "three").unwrap();
    std::fs::rename(tree.join("d"), tree.join("e")).unwrap();
    std::fs::remove_file(tree.join("g")).unwrap();
    fence(&env, &tree, &pfs, 1);
    assert_pfs_is_tree(&env, &tree, &pfs);
    let changes: Vec<_> = w.json().into_iter().filter(|j| j["scan"] == "changes").collect();
    assert!(
        !changes.is_empty() && changes.iter().all(|j| j["event"] == "watch" && j["tid"].is_string()),
        "{changes:?}"
    );

    // A change waiting for its quiet period is recorded by SIGTERM, then exit 0.
    let before = crate::util::sync_end_tid(&env, &pfs);
    drop(w);
    let w = Watch::start(&env, &tree, &pfs, &["--settle", "600000", "--max-delay", "600000"]);
    std::fs::write(tree.join("e/late"), "four").unwrap();
    let (st, log) = w.stop(Signal::SIGTERM);
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(log.contains("stopped by SIGTERM"), "{log}");
    assert_ne!(crate::util::sync_end_tid(&env, &pfs), before);
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn sigint_records_what_is_pending_and_exits_130() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "x")]);
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &["--settle", "600000", "--max-delay", "600000"]);
    std::fs::write(tree.join("f"), "changed").unwrap();
    let (st, log) = w.stop(Signal::SIGINT);
    assert_eq!(st.code(), Some(130), "{log}");
    assert!(log.contains("stopped by SIGINT"), "{log}");
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn sighup_does_not_stop_it() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "x")]);
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &[]);
    signal(w.child.id(), Signal::SIGHUP);
    std::fs::write(tree.join("f"), "after the hangup").unwrap();
    fence(&env, &tree, &pfs, 1);
    assert!(alive(w.child.id()));
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn changes_made_while_it_is_down_or_killed_are_found_by_the_scan_at_start() {
    let env = Env::new();
    let tree = env.path("tree");
    let files: Vec<(String, String)> = (0..300).map(|i| (format!("d{}/f{i}", i % 7), format!("v{i}"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    crate::util::write_tree(&tree, &refs);
    let pfs = master(&env, "pfs");
    for round in 0..4u32 {
        let w = Watch::start(&env, &tree, &pfs, &[]);
        // Many changes, and a SIGKILL at whatever point the recording of them reached.
        for i in 0..300 {
            let p = tree.join(format!("d{}/f{i}", i % 7));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            match (i + round) % 3 {
                0 => std::fs::write(&p, format!("round {round} {}", "x".repeat(i as usize))).unwrap(),
                1 => {
                    let _ = std::fs::remove_file(&p);
                }
                _ => std::fs::write(&p, "back").unwrap(),
            }
        }
        std::fs::rename(tree.join(format!("d{round}")), tree.join(format!("moved{round}"))).unwrap();
        let (st, _) = w.stop(Signal::SIGKILL);
        assert_eq!(st.code(), None);
        // And more while it is down.
        std::fs::write(tree.join(format!("while-down-{round}")), "z").unwrap();
    }
    let w = Watch::start(&env, &tree, &pfs, &[]);
    fence(&env, &tree, &pfs, 9);
    assert_pfs_is_tree(&env, &tree, &pfs);
    drop(w);
}

#[test]
fn lost_events_mean_a_full_rescan() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("d/f", "x")]);
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &[]);
    let queue: usize =
        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events").unwrap().trim().parse().unwrap();
    // Stopped, it cannot read: more events than the kernel's queue holds overflow it.
    signal(w.child.id(), Signal::SIGSTOP);
    for i in 0..queue + 100 {
        std::fs::File::create(tree.join(format!("d/n{i}"))).unwrap();
    }
    signal(w.child.id(), Signal::SIGCONT);
    wait_for("the overflow to be noticed", || w.log().contains("overflowed"));
    fence(&env, &tree, &pfs, 1);
    assert_pfs_is_tree(&env, &tree, &pfs);
    let log = w.log();
    assert!(log.contains("full scan (events were lost)"), "{log}");
    assert!(w.json().iter().any(|j| j["scan"] == "full" && j["reason"] == "events were lost"));
}

#[test]
fn a_new_link_to_a_file_in_an_unchanged_directory_is_recorded_as_a_full_import_records_it() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("z/old", "linked"), ("a/keep", "k")]);
    let (pfs, reference) = (master(&env, "pfs"), master(&env, "ref"));
    // The reference is imported after every step: the same history, the same keys.
    let import_reference =
        || ok(&env.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), reference.as_os_str()])).status;
    let w = Watch::start(&env, &tree, &pfs, &[]);
    import_reference();
    // "a/new" comes before "z/old" in a full import's walk.
    std::fs::hard_link(tree.join("z/old"), tree.join("a/new")).unwrap();
    fence(&env, &tree, &pfs, 1);
    import_reference();
    assert!(w.log().contains("full scan (a new link"), "{}", w.log());
    assert_eq!(canonical_records(&pfs), canonical_records(&reference));
    // Written through one name, seen through both; then one name goes.
    std::fs::write(tree.join("a/new"), "rewritten through a/new").unwrap();
    fence(&env, &tree, &pfs, 2);
    import_reference();
    assert_eq!(canonical_records(&pfs), canonical_records(&reference));
    std::fs::remove_file(tree.join("z/old")).unwrap();
    fence(&env, &tree, &pfs, 3);
    import_reference();
    assert_eq!(canonical_records(&pfs), canonical_records(&reference));
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn a_link_made_and_removed_before_it_is_read_is_recorded_as_a_full_import_records_it() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("b", "linked"), ("d/keep", "k"), ("e/keep", "k")]);
    let (pfs, reference) = (master(&env, "pfs"), master(&env, "ref"));
    let import_reference =
        || ok(&env.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), reference.as_os_str()])).status;
    let w = Watch::start(&env, &tree, &pfs, &[]);
    import_reference();
    // Only b's link count and ctime change: inotify names d/x alone, and it is gone.
    std::fs::hard_link(tree.join("b"), tree.join("d/x")).unwrap();
    std::fs::remove_file(tree.join("d/x")).unwrap();
    fence(&env, &tree, &pfs, 1);
    import_reference();
    assert!(
        w.log().contains("full scan (a new name went before it was read: it may have been a hard link)"),
        "{}",
        w.log()
    );
    assert_eq!(canonical_records(&pfs), canonical_records(&reference));
    // Moved away or replaced: the same.
    std::fs::hard_link(tree.join("b"), tree.join("d/y")).unwrap();
    std::fs::rename(tree.join("e/keep"), tree.join("d/y")).unwrap();
    fence(&env, &tree, &pfs, 2);
    import_reference();
    assert_eq!(canonical_records(&pfs), canonical_records(&reference));
    // An ordinary temporary file (created, written, removed) costs no rescan.
    let scans = w.log().matches("full scan").count();
    std::fs::write(tree.join("d/tmp"), "scratch").unwrap();
    std::fs::remove_file(tree.join("d/tmp")).unwrap();
    fence(&env, &tree, &pfs, 3);
    assert_eq!(w.log().matches("full scan").count(), scans, "{}", w.log());
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn a_file_rewritten_while_it_is_read_is_never_recorded_torn() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[]);
    let size = 4 << 20;
    std::fs::write(tree.join("hot"), vec![b'A'; size]).unwrap();
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &["--settle", "0", "--max-delay", "0"]);
    // A writer rewrites the whole file in place, 64 KiB at a time, alternating letters.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), tree.join("hot"));
        std::thread::spawn(move || {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 400 {
                let letter = b'A' + (round % 26) as u8;
                for off in (0..size).step_by(64 << 10) {
                    f.write_all_at(&[letter; 64 << 10], off as u64).unwrap();
                }
                round += 1;
            }
        })
    };
    wait_for("a few recordings while the file is rewritten", || {
        w.json().iter().filter(|j| j["scan"] == "changes" && j["recorded"] == true).count() >= 3 || writer.is_finished()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    fence(&env, &tree, &pfs, 1);
    // Every TID's version of the file is one whole round of the writer.
    for j in w.json() {
        let tid = j["tid"].as_str().unwrap();
        if env.path(&format!("as-of-{tid}")).exists() {
            continue;
        }
        let out = exported_as_of(&env, &pfs, tid);
        let data = std::fs::read(out.join("hot")).unwrap();
        assert_eq!(data.len(), size);
        assert!(
            data.iter().all(|&b| b == data[0]),
            "TID {tid} recorded a torn copy (starts with {:?})",
            data[0] as char
        );
        std::fs::remove_dir_all(out).unwrap();
    }
    assert_pfs_is_tree(&env, &tree, &pfs);
}

/// Each change starts a recording while the next, long write is under way:
/// what is recorded is a state the file had between two writes, never a mix.
#[test]
fn a_read_overlapping_one_long_write_is_never_recorded_torn() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[]);
    let size = 32 << 20;
    std::fs::write(tree.join("hot"), vec![b'A'; size]).unwrap();
    let pfs = master(&env, "pfs");
    let w = Watch::start(&env, &tree, &pfs, &["--settle", "0", "--max-delay", "0"]);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(tree.join("hot")).unwrap();
        for round in 1..=8u8 {
            let letter = b'A' + round;
            // One byte (its event starts a recording), then the whole file in one write.
            f.write_all_at(&[letter], 0).unwrap();
            f.write_all_at(&vec![letter; size], 0).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    fence(&env, &tree, &pfs, 1);
    // Every TID's version is one the file had between two writes: uniform,
    // or its first byte one round ahead of the rest.
    for j in w.json().iter().filter(|j| j["recorded"] == true) {
        let tid = j["tid"].as_str().unwrap();
        let out = exported_as_of(&env, &pfs, tid);
        let Ok(data) = std::fs::read(out.join("hot")) else { continue };
        assert_eq!(data.len(), size);
        let rest = data[1..].iter().position(|&b| b != data[1]);
        assert!(
            rest.is_none(),
            "TID {tid} recorded a torn copy: {:?} then {:?} from byte {}",
            data[1] as char,
            data[1 + rest.unwrap()] as char,
            1 + rest.unwrap()
        );
        std::fs::remove_dir_all(out).unwrap();
    }
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn watch_and_stream_keep_a_slave_up_to_date() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "first")]);
    let (pfs, slave) = (master(&env, "pfs"), env.path("slave"));
    let _w = Watch::start(&env, &tree, &pfs, &[]);
    let mut stream =
        env.cmd().args(["-y", "-q", "-i", "0", "stream"]).arg(&pfs).arg(&slave).stderr(Stdio::null()).spawn().unwrap();
    std::fs::write(tree.join("f"), "second").unwrap();
    std::fs::create_dir(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/g"), "third").unwrap();
    fence(&env, &tree, &pfs, 1);
    let want = crate::util::sync_end_tid(&env, &pfs);
    wait_for("the slave to reach the master's TID", || {
        slave.exists() && crate::util::sync_end_tid(&env, &slave) == want
    });
    assert_pfs_is_tree(&env, &tree, &slave);
    signal(stream.id(), Signal::SIGTERM);
    assert_eq!(stream.wait().unwrap().code(), Some(0));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "x")]);
    let pfs = master(&env, "pfs");
    fails(&env.run([OsStr::new("watch"), tree.join("f").as_os_str(), pfs.as_os_str()]), 2, "f: not a directory");
    fails(
        &env.run([OsStr::new("watch"), env.path("missing").as_os_str(), pfs.as_os_str()]),
        2,
        "missing: No such file",
    );
    // A slave changes only through mirror-write.
    let slave = env.path("slave");
    ok(&env.run([OsStr::new("pfs-slave"), slave.as_os_str()]));
    fails(&env.run([OsStr::new("watch"), tree.as_os_str(), slave.as_os_str()]), 3, "is a slave");
    fails(&env.run([OsStr::new("watch"), tree.as_os_str(), env.path("nopfs").as_os_str()]), 1, "nopfs");
    // No notifications there: refused, with the way out.
    let o = env.run([OsStr::new("watch"), OsStr::new("/sys/kernel"), pfs.as_os_str()]);
    fails(&o, 3, "is on a sysfs filesystem");
    assert!(stderr(&o).contains("--poll SECONDS"), "{}", stderr(&o));
    fails(&env.run(["--poll", "0", "watch", "tree", "pfs"]), 2, "--poll");
    fails(&env.run(["--settle", "soon", "watch", "tree", "pfs"]), 2, "--settle");
}

#[test]
fn poll_rescans_periodically_where_there_are_no_notifications() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "x")]);
    let pfs = master(&env, "pfs");
    let mut child = env
        .cmd()
        .args(["--json", "--poll", "1", "watch"])
        .arg(&tree)
        .arg(&pfs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!((first["scan"].as_str(), first["reason"].as_str()), (Some("full"), Some("start")));
    std::fs::write(tree.join("g"), "new").unwrap();
    // Each line is one scan; the one after the write has it.
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(next["reason"], "--poll");
    signal(child.id(), Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn too_few_inotify_watches_stop_it_with_the_limit_named_after_recording_the_tree() {
    let env = Env::new();
    let probe = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", "echo 5 > /proc/sys/user/max_inotify_watches"])
        .stderr(Stdio::null())
        .status();
    if probe.map_or(true, |s| !s.success()) {
        println!(
            "skipped: no user namespace whose inotify watch limit (user.max_inotify_watches) a test may lower \
             (unshare -U -r failed)"
        );
        return;
    }
    let tree = env.path("tree");
    let files: Vec<String> = (0..12).map(|i| format!("d{i}/f")).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|f| (f.as_str(), "x")).collect();
    crate::util::write_tree(&tree, &refs);
    let pfs = master(&env, "pfs");
    let out = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c"])
        .arg(format!("echo 5 > /proc/sys/user/max_inotify_watches && exec '{}' watch tree pfs", crate::util::bin()))
        .current_dir(env.dir.path())
        .env("HAMMER_MIRROR_LOCK_WAIT", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fails(&out, 1, "inotify watches are used up (user.max_inotify_watches = 5 in this user namespace");
    assert!(stderr(&out).contains("sysctl fs.inotify.max_user_watches="), "{}", stderr(&out));
    assert!(stderr(&out).contains("or use --poll SECONDS"), "{}", stderr(&out));
    // What it could read was recorded first.
    assert_pfs_is_tree(&env, &tree, &pfs);
}

mod property {
    use super::*;

    /// One operation (indexes into PATHS).
    #[derive(Clone, Debug)]
    pub enum Op {
        Write { path: usize, len: usize, seed: u8 },
        Sparse { path: usize, at: u64 },
        Remove { path: usize },
        Mkdir { path: usize },
        Rename { from: usize, to: usize },
        Symlink { path: usize, len: usize },
        HardLink { from: usize, to: usize },
        Chmod { path: usize, mode: u32 },
        Chown { path: usize, uid: u32 },
        Touch { path: usize, secs: u64 },
        Truncate { path: usize, len: u64 },
    }

    const PATHS: [&str; 12] = ["a", "b", "d", "d/c", "d/e", "d/e/f", "x", "d/e/g", "y", "y/z", "y/d", "y/d/q"];

    pub fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let p = 0..PATHS.len();
        let len = prop_oneof![Just(0usize), 1usize..64, 8180usize..8200, 16380usize..16390, 70_000usize..80_000];
        prop_oneof![
            4 => (p.clone(), len, any::<u8>()).prop_map(|(path, len, seed)| Op::Write { path, len, seed }),
            1 => (p.clone(), prop_oneof![Just(0u64), Just(16384), Just(1_200_000)]).prop_map(|(path, at)| Op::Sparse { path, at }),
            2 => p.clone().prop_map(|path| Op::Remove { path }),
            3 => p.clone().prop_map(|path| Op::Mkdir { path }),
            3 => (p.clone(), p.clone()).prop_map(|(from, to)| Op::Rename { from, to }),
            1 => (p.clone(), 1usize..120).prop_map(|(path, len)| Op::Symlink { path, len }),
            2 => (p.clone(), p.clone()).prop_map(|(from, to)| Op::HardLink { from, to }),
            1 => (p.clone(), prop_oneof![Just(0o600u32), Just(0o755), Just(0o4711)]).prop_map(|(path, mode)| Op::Chmod { path, mode }),
            1 => (p.clone(), prop_oneof![Just(0u32), Just(1234)]).prop_map(|(path, uid)| Op::Chown { path, uid }),
            1 => (p.clone(), 1_000_000u64..2_000_000_000).prop_map(|(path, secs)| Op::Touch { path, secs }),
            1 => (p, 0u64..70_000).prop_map(|(path, len)| Op::Truncate { path, len }),
        ]
    }

    /// True when `op` writes to the object at `name` or changes its
    /// attributes, or moves it (or a directory above it) elsewhere.
    fn reaches(op: &Op, name: &str) -> bool {
        match *op {
            Op::Write { path, .. }
            | Op::Sparse { path, .. }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Touch { path, .. }
            | Op::Truncate { path, .. } => PATHS[path] == name,
            Op::Rename { from, .. } => Path::new(name).starts_with(PATHS[from]),
            _ => false,
        }
    }

    /// Applies a step's operations, calling `settle` (a fence) where watch's
    /// documented blind spot would be: a hard link that is written through,
    /// or made in a directory that appeared in the same settle period, is
    /// seen only when it lives until the next recording (one made and
    /// removed otherwise is: the property covers it).
    pub fn apply_step(root: &Path, step: &[Op], mut settle: impl FnMut()) {
        let mut new_dirs: Vec<&str> = Vec::new();
        let under = |dirs: &[&str], p: &str| dirs.iter().any(|d| Path::new(p).starts_with(d));
        for (i, op) in step.iter().enumerate() {
            let done = apply(root, op);
            match op {
                Op::Mkdir { path } if done => new_dirs.push(PATHS[*path]),
                Op::Rename { from, to } if done && under(&new_dirs, PATHS[*from]) => new_dirs.push(PATHS[*to]),
                Op::HardLink { to, .. }
                    if done
                        && (under(&new_dirs, PATHS[*to]) || step[i + 1..].iter().any(|o| reaches(o, PATHS[*to]))) =>
                {
                    settle();
                    new_dirs.clear();
                }
                _ => {}
            }
        }
    }

    /// Applies `op` to the tree at `root` (an operation that does not fit the
    /// tree is a no-op); true when it did something.
    pub fn apply(root: &Path, op: &Op) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let at = |i: usize| root.join(PATHS[i]);
        let r = match op {
            Op::Write { path, len, seed } => {
                let data: Vec<u8> =
                    (0..*len).map(|i| if i % 20000 < 17000 { 0 } else { seed.wrapping_add(i as u8) }).collect();
                std::fs::write(at(*path), data)
            }
            Op::Sparse { path, at: off } => std::fs::OpenOptions::new()
                .write(true)
                .open(at(*path))
                .and_then(|f| std::os::unix::fs::FileExt::write_at(&f, b"sparse", *off).map(drop)),
            Op::Remove { path } => {
                let p = at(*path);
                if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }
            }
            Op::Mkdir { path } => std::fs::create_dir(at(*path)),
            Op::Rename { from, to } => std::fs::rename(at(*from), at(*to)),
            // Dangling: writes never go through it to somewhere else.
            Op::Symlink { path, len } => {
                std::os::unix::fs::symlink(format!("/nonexistent/{}", "t".repeat(*len)), at(*path))
            }
            Op::HardLink { from, to } => std::fs::hard_link(at(*from), at(*to)),
            Op::Chmod { path, mode } if !at(*path).is_symlink() => {
                std::fs::set_permissions(at(*path), std::fs::Permissions::from_mode(*mode))
            }
            Op::Chmod { .. } => Ok(()),
            Op::Chown { path, uid } if nix::unistd::geteuid().is_root() => {
                std::os::unix::fs::lchown(at(*path), Some(*uid), Some(*uid))
            }
            Op::Chown { .. } => Ok(()),
            Op::Touch { path, secs } => std::fs::File::options()
                .write(true)
                .open(at(*path))
                .and_then(|f| f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(*secs))),
            Op::Truncate { path, len } => {
                std::fs::OpenOptions::new().write(true).open(at(*path)).and_then(|f| f.set_len(*len))
            }
        };
        r.is_ok()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(6),
        failure_persistence: None,
        ..Default::default()
    })]

    /// Random operations on a watched tree: after each settle, the PFS's
    /// export is the tree, and its records are those a full import of the
    /// same tree (into a PFS imported after every step) holds.
    #[test]
    fn a_watched_tree_is_recorded_as_a_full_import_records_it(
        steps in proptest::collection::vec(proptest::collection::vec(property::op(), 1..8), 1..6),
    ) {
        let env = Env::new();
        let tree = env.path("tree");
        std::fs::create_dir(&tree).unwrap();
        let (pfs, reference) = (master(&env, "pfs"), master(&env, "ref"));
        let w = Watch::start(&env, &tree, &pfs, &[]);
        for (i, step) in steps.iter().enumerate() {
            let mut fences = 0;
            property::apply_step(&tree, step, || {
                fences += 1;
                fence(&env, &tree, &pfs, 1000 * (i as u32 + 1) + fences);
            });
            fence(&env, &tree, &pfs, i as u32);
            ok(&env.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), reference.as_os_str()]));
            let out = exported(&env, &pfs);
            proptest::prop_assert_eq!(snapshot(&out), snapshot(&tree), "export after step {} {:?}", i, step);
            proptest::prop_assert_eq!(canonical_records(&pfs), canonical_records(&reference), "records after step {} {:?}", i, step);
        }
        proptest::prop_assert!(alive(w.child.id()), "{}", w.log());
    }
}

#[test]
fn constant_churn_is_recorded_every_max_delay() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("log", "")]);
    let pfs = master(&env, "pfs");
    // The tree is never quiet for 10 minutes: only --max-delay records it
    // (the file itself is quiet for more than QUIET_MS between appends).
    let w = Watch::start(&env, &tree, &pfs, &["--settle", "600000", "--max-delay", "300"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), tree.join("log"));
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writeln!(f, "line {i}").unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    wait_for("two recordings while the file keeps growing", || {
        w.json().iter().filter(|j| j["scan"] == "changes" && j["recorded"] == true).count() >= 2
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let (st, log) = w.stop(Signal::SIGTERM);
    assert_eq!(st.code(), Some(0), "{log}");
    assert_pfs_is_tree(&env, &tree, &pfs);
}

#[test]
fn a_pfs_inside_the_watched_tree_is_left_out_and_does_not_feed_itself() {
    let env = Env::new();
    let tree = env.path("tree");
    crate::util::write_tree(&tree, &[("f", "x")]);
    let pfs = tree.join("self.pfs");
    ok(&env.run([OsStr::new("pfs-master"), pfs.as_os_str()]));
    let w = Watch::start(&env, &tree, &pfs, &[]);
    std::fs::write(tree.join("g"), "y").unwrap();
    fence(&env, &tree, &pfs, 1);
    let out = exported(&env, &pfs);
    assert!(!out.join("self.pfs").exists() && !out.join("self.pfs-lock").exists());
    assert_eq!(std::fs::read_to_string(out.join("g")).unwrap(), "y");
    // Its own commits raise events it ignores: nothing follows a recording
    // but the next change's.
    let n = w.json().len();
    std::fs::write(tree.join(".fence"), "again").unwrap();
    wait_for("the next recording", || w.json().len() > n);
    let after = w.json();
    assert_eq!(after.len(), n + 1, "one recording: {after:?}");
    assert_eq!(after[n]["names"], 1, "only the fence changed: {}", after[n]);
}
