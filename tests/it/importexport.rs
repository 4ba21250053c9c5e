//! import/export through the binary: round trips compared with diff, history as of old TIDs, change-only re-imports.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::util::{Env, fails, ok, stderr, sync_end_tid};

/// A tree with what an administrator's data holds: nested dirs, empty and
/// small files, a file over 1 MiB with a hole, hard links, short and long
/// symlinks, odd names, a fifo, unusual modes.
fn rich_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(root.join("etc/conf.d/empty"), "").unwrap();
    std::fs::write(root.join("exactly-8192"), vec![7u8; 8192]).unwrap();
    std::fs::write(root.join("just-over-8192"), vec![9u8; 8193]).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(4 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", 4 << 20).unwrap();
    std::fs::hard_link(root.join("etc/hosts"), root.join("hosts.link")).unwrap();
    std::os::unix::fs::symlink("etc/hosts", root.join("short-link")).unwrap();
    std::os::unix::fs::symlink("/a/target/longer/than/twenty/four/bytes", root.join("long-link")).unwrap();
    std::os::unix::fs::symlink("dangling", root.join("dangling-link")).unwrap();
    std::fs::write(root.join("name with spaces & 'quotes'"), "x").unwrap();
    std::fs::write(root.join("ünïcødé"), "y").unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    std::fs::set_permissions(root.join("etc/conf.d"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(root.join("exactly-8192"), std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// `diff -r` (symlinks compared as links) plus modes, link counts, sizes and
/// mtimes to the microsecond (HAMMER keeps times in microseconds).
#[track_caller]
fn assert_same_tree(e: &Env, a: &str, b: &str) {
    let o =
        e.sh(&format!("diff -r --no-dereference {a} {b} | grep -v 'is a fifo while file' ; exit ${{PIPESTATUS[0]}}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.trim().is_empty(), "trees differ:\n{out}{}", stderr(&o));
    let listing = |d: &str| {
        let o = e.sh(&format!("cd {d} && find . -mindepth 1 -printf '%p %M %n %s %T@\\n' | sed 's/\\(\\.[0-9]\\{{6\\}}\\)[0-9]*$/\\1/' | sort"));
        ok(&o);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(listing(a), listing(b), "metadata differs between {a} and {b}");
}

fn import(e: &Env, tree: &str, pfs: &str) -> String {
    let o = e.run([OsStr::new("import"), OsStr::new(tree), OsStr::new(pfs)]);
    ok(&o);
    stderr(&o)
}

#[test]
fn round_trip_keeps_contents_links_modes_and_times() {
    let e = Env::new();
    rich_tree(&e.path("src"));
    ok(&e.run(["pfs-master", "m"]));
    let msg = import(&e, "src", "m");
    assert!(msg.contains("0 unchanged, 0 removed"), "{msg}");
    ok(&e.run(["export", "m", "out"]));
    assert_same_tree(&e, "src", "out");
    // Hard links come back as hard links, holes as holes.
    let a = std::fs::metadata(e.path("out/etc/hosts")).unwrap();
    let b = std::fs::metadata(e.path("out/hosts.link")).unwrap();
    assert_eq!(a.ino(), b.ino());
    let sparse = std::fs::metadata(e.path("out/sparse")).unwrap();
    assert!(sparse.blocks() * 512 < 1 << 20, "the hole was written out: {} blocks", sparse.blocks());
}

#[test]
fn unchanged_reimport_reads_nothing_and_keeps_the_tid() {
    let e = Env::new();
    rich_tree(&e.path("src"));
    ok(&e.run(["pfs-master", "m"]));
    import(&e, "src", "m");
    let tid = sync_end_tid(&e, &e.path("m"));
    let msg = import(&e, "src", "m");
    assert!(msg.contains(" 0 records changed, 0 bytes read"), "{msg}");
    assert_eq!(sync_end_tid(&e, &e.path("m")), tid);
}

#[test]
fn changes_make_a_new_tid_and_old_tids_stay_exportable() {
    let e = Env::new();
    rich_tree(&e.path("src"));
    ok(&e.run(["pfs-master", "m"]));
    import(&e, "src", "m");
    let first = sync_end_tid(&e, &e.path("m"));
    ok(&e.sh("cp -a src v1"));

    // Edit one block in the middle of the big file, remove a dir, add a file,
    // turn a file into a directory, shorten a file.
    ok(&e.sh("printf 'CHANGED' | dd of=src/big.bin bs=1 seek=2000000 conv=notrunc status=none && \
         rm -r src/etc/conf.d && echo new > src/new-file && rm src/just-over-8192 && mkdir src/just-over-8192 && \
         truncate -s 100 src/sparse"));
    let msg = import(&e, "src", "m");
    assert!(msg.contains("1 removed"), "{msg}");
    let second = sync_end_tid(&e, &e.path("m"));
    assert_ne!(first, second);

    ok(&e.run(["export", "m", "now"]));
    assert_same_tree(&e, "src", "now");
    ok(&e.run([OsStr::new("export"), OsStr::new("--as-of"), OsStr::new(&first), OsStr::new("m"), OsStr::new("then")]));
    assert_same_tree(&e, "v1", "then");
}

#[test]
fn a_changed_block_replaces_one_record() {
    let e = Env::new();
    std::fs::create_dir(e.path("src")).unwrap();
    std::fs::write(e.path("src/f"), vec![1u8; 4 << 20]).unwrap();
    ok(&e.run(["pfs-master", "m"]));
    import(&e, "src", "m");
    ok(&e.sh("printf 'Z' | dd of=src/f bs=1 seek=3000000 conv=notrunc status=none"));
    let msg = import(&e, "src", "m");
    // One DATA record deleted + one created, the inode deleted + created.
    assert!(msg.contains(" 4 records changed"), "{msg}");
}

#[test]
fn export_refuses_a_non_empty_target_and_an_empty_pfs() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    std::fs::create_dir(e.path("busy")).unwrap();
    std::fs::write(e.path("busy/keep"), "mine").unwrap();
    let busy = e.path("busy");
    fails(&e.run([OsStr::new("export"), m.as_os_str(), busy.as_os_str()]), 1, "directory is not empty");
    assert_eq!(std::fs::read_to_string(e.path("busy/keep")).unwrap(), "mine");

    ok(&e.run(["pfs-slave", "s"]));
    fails(&e.run(["export", "s", "out"]), 1, "holds no root directory");
}

#[test]
fn import_refuses_a_slave_and_a_missing_tree() {
    let e = Env::new();
    ok(&e.run(["pfs-slave", "s"]));
    std::fs::create_dir(e.path("src")).unwrap();
    let o = e.run(["import", "src", "s"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("slave"), "{}", stderr(&o));
    ok(&e.run(["pfs-master", "m"]));
    fails(&e.run(["import", "no-such-dir", "m"]), 1, "no-such-dir");
    // The arguments the wrong way round: a directory is no store PFS.
    fails(
        &e.run(["import", "m", "src"]),
        1,
        "import: src: not a PFS: a directory, not a store PFS (a store PFS is a file: make one with `hammer-mirror pfs-master <file>`)",
    );
}

#[test]
fn unreadable_file_aborts_the_import_and_changes_nothing() {
    if nix::unistd::geteuid().is_root() {
        eprintln!("skipped: root reads files whatever their mode");
        return;
    }
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let tid = sync_end_tid(&e, &m);
    std::fs::write(e.path("m.tree/secret"), "s").unwrap();
    std::fs::set_permissions(e.path("m.tree/secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    fails(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]), 1, "secret");
    assert_eq!(sync_end_tid(&e, &m), tid);
}

#[test]
fn the_store_file_inside_the_tree_is_not_imported() {
    let e = Env::new();
    std::fs::create_dir(e.path("data")).unwrap();
    std::fs::write(e.path("data/file"), "x").unwrap();
    ok(&e.run(["pfs-master", "data/pfs"]));
    import(&e, "data", "data/pfs");
    ok(&e.run(["export", "data/pfs", "out"]));
    let mut names: Vec<_> = std::fs::read_dir(e.path("out")).unwrap().map(|d| d.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from("file")]);
}

/// A file written every 10 ms is never quiet for QUIET_MS: it keeps its
/// recorded version (a write under way could have been read half done),
/// with a warning naming it; one quiet a moment is read after a short wait.
#[test]
fn a_file_that_is_never_quiet_keeps_its_recorded_version_and_one_changed_a_moment_ago_is_read() {
    let e = Env::new();
    crate::util::write_tree(&e.path("t"), &[("hot", "v0"), ("calm", "c")]);
    ok(&e.run(["pfs-master", "m"]));
    import(&e, "t", "m");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), e.path("t/hot"));
        std::thread::spawn(move || {
            let mut i = 1u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&path, format!("v{i}")).unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::write(e.path("t/calm"), "changed a moment ago").unwrap();
    let out = e.run(["import", "t", "m"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    ok(&out);
    assert!(
        stderr(&out)
            .contains("t/hot: kept changing while it was read (3 tries, waiting up to 2 s in all for it to be quiet)"),
        "{}",
        stderr(&out)
    );
    ok(&e.run(["-q", "export", "m", "x"]));
    assert_eq!(std::fs::read_to_string(e.path("x/hot")).unwrap(), "v0");
    assert_eq!(std::fs::read_to_string(e.path("x/calm")).unwrap(), "changed a moment ago");
}
