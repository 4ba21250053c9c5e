//! Store files as an attacker, a crash and a failing disk see them: symlinked and foreign lock files, non-store files, file modes, readers beside a held writer, read-only files and directories, symlinks to stores, kills during creation, truncated files.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Env, fails, ok, show, stderr, stdout};
use hammer_mirror::store::master::MasterTxn;
use hammer_mirror::store::{Access, Store};

const BIN: &str = env!("CARGO_BIN_EXE_hammer-mirror");

/// A few files, some of them a few pages long.
fn files() -> Vec<(&'static str, String)> {
    vec![("a", "1".into()), ("d/b", "b".repeat(30_000)), ("d/c", "c".repeat(70_000)), ("e/f", "some text\n".into())]
}

fn master(e: &Env, name: &str) -> PathBuf {
    let f = files();
    let refs: Vec<(&str, &str)> = f.iter().map(|(p, c)| (*p, c.as_str())).collect();
    e.master_with(name, &refs)
}

/// Every name in the test directory (sorted).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Never a signal: an exit status of our own.
#[track_caller]
fn no_signal(what: &str, o: &Output) {
    assert!(o.status.signal().is_none() && o.status.code().is_some_and(|c| c <= 128), "{what}: killed:\n{}", show(o));
}

/// Waits for `c` up to 90 s; a child still running then is killed and the test fails naming `what`.
#[track_caller]
fn finish(what: &str, mut c: Child) -> Output {
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(90) {
            let _ = c.kill();
            panic!("{what} did not finish within 90 s:\n{}", show(&c.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    c.wait_with_output().unwrap()
}

fn spawn(e: &Env, args: &[&str]) -> Child {
    e.cmd().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn symlinked_and_foreign_lock_files_are_refused_and_their_targets_kept() {
    let e = Env::new();
    let m = master(&e, "m");
    ok(&e.run(["-y", "copy", "m", "s"]));
    ok(&e.sh("$HM read m > stream"));
    // A world-writable directory where "nobody" prepared the lock files.
    let w = e.path("w");
    std::fs::create_dir(&w).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
    let victim = e.path("victim");
    std::fs::write(&victim, "root's secret\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plant = |name: &str| {
        let lock = w.join(format!("{name}-lock"));
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::lchown(&lock, Some(65534), Some(65534)).unwrap();
        }
    };
    let says = format!(" is a symbolic link (to {}); refusing to use it", victim.display());

    // Creating: nothing is made, the victim is untouched.
    plant("new");
    // Refusals (exit 3): a stream stops instead of retrying.
    for cmd in [
        &["pfs-master", "w/new"][..],
        &["pfs-slave", "w/new"],
        &["-y", "copy", "m", "w/new"],
        &["-y", "--retry-delay", "1", "stream", "m", "w/new"],
    ] {
        let o = e.run(cmd);
        fails(&o, 3, &format!("w/new-lock{says}"));
    }
    let o =
        e.cmd().args(["-y", "write", "w/new"]).stdin(std::fs::File::open(e.path("stream")).unwrap()).output().unwrap();
    fails(&o, 3, &format!("w/new-lock{says}"));
    assert_eq!(listing(&w), ["new-lock"], "nothing created");

    // Opening existing stores: every command refuses the same way.
    std::fs::copy(&m, w.join("m")).unwrap();
    std::fs::copy(e.path("s"), w.join("s")).unwrap();
    plant("m");
    plant("s");
    for cmd in [
        &["pfs-status", "w/m"][..],
        &["read", "w/m"],
        &["export", "w/m", "out"],
        &["import", "m.tree", "w/m"],
        &["verify", "w/m", "s"],
        &["copy", "w/m", "s2"],
        &["-y", "copy", "m", "w/s"],
        &["pfs-update", "w/m", "label=x"],
        &["-y", "pfs-destroy", "w/m"],
    ] {
        let o = e.run(cmd);
        let name = if cmd.contains(&"w/s") { "w/s" } else { "w/m" };
        fails(&o, if cmd[0] == "pfs-status" { 1 } else { 3 }, &format!("{name}-lock{says}"));
    }
    let o = e.cmd().args(["write", "w/s"]).stdin(std::fs::File::open(e.path("stream")).unwrap()).output().unwrap();
    fails(&o, 3, &format!("w/s-lock{says}"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's secret\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().len(), 14, "not overwritten with lock data");
    assert!(!e.path("out").exists() && !e.path("s2").exists());

    // A hard link to another file, or a lock file of a third user, is refused too.
    std::fs::remove_file(w.join("m-lock")).unwrap();
    std::fs::hard_link(&victim, w.join("m-lock")).unwrap();
    fails(&e.run(["pfs-status", "w/m"]), 1, "w/m-lock has 2 hard links; refusing to use it");
    std::fs::remove_file(w.join("m-lock")).unwrap();
    if nix::unistd::geteuid().is_root() {
        std::fs::write(w.join("m-lock"), "").unwrap();
        std::os::unix::fs::lchown(w.join("m-lock"), Some(65534), Some(65534)).unwrap();
        fails(&e.run(["pfs-status", "w/m"]), 1, "w/m-lock belongs to uid 65534, neither you nor the store's owner");
        std::fs::remove_file(w.join("m-lock")).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's secret\n");
    // Once the planted file is gone, the store is fine.
    ok(&e.run(["pfs-status", "w/m"]));
    if nix::unistd::geteuid().is_root() {
        // Root looking at another user's store leaves that user a lock file they can use.
        std::fs::copy(&m, w.join("u")).unwrap();
        std::os::unix::fs::lchown(w.join("u"), Some(65534), Some(65534)).unwrap();
        ok(&e.run(["pfs-status", "w/u"]));
        assert_eq!(std::fs::metadata(w.join("u-lock")).unwrap().uid(), 65534);
    }
}

#[test]
fn inspecting_a_file_that_is_not_a_store_creates_nothing() {
    let e = Env::new();
    master(&e, "m");
    ok(&e.run(["-y", "copy", "m", "s"]));
    ok(&e.sh("$HM read m > stream"));
    let lmdb_of_another = {
        // A store whose magic is another program's: a sound LMDB file that is not ours.
        let p = e.path("m");
        let mut b = std::fs::read(&p).unwrap();
        let mut n = 0;
        while let Some(at) = b.windows(26).position(|w| w == b"hammer-mirror PFS store v1") {
            b[at..at + 26].copy_from_slice(b"somebody else's database v");
            n += 1;
        }
        assert!(n > 0, "the magic is in the file");
        b
    };
    for (name, content, what) in [
        ("emptyfile", Vec::new(), "empty file, not a hammer-mirror PFS store file"),
        (
            "notes.txt",
            b"just some text\n".repeat(1000),
            "not a hammer-mirror PFS store file (no LMDB meta page at its start)",
        ),
        ("short", b"x".repeat(100), "100 bytes, too short for an LMDB meta page: not a hammer-mirror PFS store file"),
        ("other.mdb", lmdb_of_another, "not a hammer-mirror PFS store file (an LMDB file without the store's magic)"),
    ] {
        std::fs::write(e.path(name), &content).unwrap();
        let before = listing(e.dir.path());
        let says = format!("PFS file damaged: {name}: {what}");
        for cmd in [
            vec!["pfs-status", name],
            vec!["read", name],
            vec!["export", name, "out"],
            vec!["verify", "m", name],
            vec!["import", "m.tree", name],
            vec!["-y", "copy", name, "new"],
            vec!["-y", "copy", "m", name],
            vec!["pfs-upgrade", name],
        ] {
            fails(&e.run(&cmd), 1, &says);
        }
        let o = e.cmd().args(["write", name]).stdin(std::fs::File::open(e.path("stream")).unwrap()).output().unwrap();
        fails(&o, 1, &says);
        assert_eq!(std::fs::read(e.path(name)).unwrap(), content, "{name} unchanged");
        assert_eq!(listing(e.dir.path()), before, "nothing created beside {name}");
    }
}

#[test]
fn store_files_are_created_0600_whatever_the_umask() {
    let e = Env::new();
    ok(&e.sh("umask 000; mkdir t && echo x > t/a && $HM pfs-master m >/dev/null && $HM import t m >/dev/null && \
              $HM -y copy m s && $HM pfs-slave s2 >/dev/null"));
    for f in ["m", "m-lock", "s", "s-lock", "s2", "s2-lock"] {
        let mode = std::fs::metadata(e.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} is {mode:o}");
    }
    // A tighter umask is honoured.
    ok(&e.sh("umask 077; $HM pfs-master m3 >/dev/null"));
    assert_eq!(std::fs::metadata(e.path("m3")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn readers_complete_while_a_writer_holds_the_store() {
    let e = Env::new();
    let m = master(&e, "m");
    ok(&e.run(["-y", "copy", "m", "s"]));
    // A writer in the middle of its transaction: the writer lock and LMDB's write mutex held.
    let store = Store::open(&m, Access::Write).unwrap();
    let txn = MasterTxn::begin(&store).unwrap();
    fails(&e.run(["import", "m.tree", "m"]), 1, "m: PFS is busy: another process is writing to it");
    for args in [
        &["pfs-status", "m"][..],
        &["--json", "pfs-status", "m"],
        &["export", "m", "out"],
        &["verify", "m", "s"],
        &["-y", "copy", "m", "s2"],
        &["copy", "m", "s"],
        &["read", "m"],
    ] {
        let o = finish(&format!("{args:?} beside a held writer"), spawn(&e, args));
        ok(&o);
    }
    assert_eq!(std::fs::read_to_string(e.path("out/d/b")).unwrap(), "b".repeat(30_000));
    drop(txn);
    drop(store);

    // An import stopped by SIGSTOP while it holds the store.
    let big = e.path("big");
    for i in 0..1500 {
        crate::util::write_tree(&big, &[(&format!("d{}/f{i}", i % 30), &format!("file {i}\n"))]);
    }
    ok(&e.run(["pfs-master", "m2"]));
    let import = e.cmd().args(["import", "big", "m2"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(import.id() as i32);
    let held = || {
        let f = std::fs::File::open(e.path("m2")).unwrap();
        #[allow(deprecated)]
        let r = nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&f), nix::fcntl::FlockArg::LockSharedNonblock);
        r.is_err()
    };
    crate::util::wait_for("the import to take the writer lock", &|| held());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    for args in [&["pfs-status", "m2"][..], &["export", "m2", "out2"], &["read", "m2"], &["-y", "copy", "m2", "s3"]] {
        ok(&finish(&format!("{args:?} beside a stopped import"), spawn(&e, args)));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    ok(&finish("the import, continued", import));
}

/// Runs the binary as another user: `nobody` (through setpriv) when we are
/// root, ourselves otherwise (then file modes alone deny access).
fn as_other(e: &Env, args: &[&OsStr]) -> Command {
    let mut c = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HAMMER_") {
            c.env_remove(&k);
        }
    }
    c.args(args).env("HAMMER_MIRROR_LOCK_WAIT", "1").current_dir(e.dir.path()).stdin(Stdio::null());
    c
}

#[test]
fn read_only_store_files_and_directories_are_readable() {
    let e = Env::new();
    let root = nix::unistd::geteuid().is_root();
    if root {
        std::fs::set_permissions(e.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let probe = as_other(&e, &[OsStr::new("--version")]).output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            println!("skipped: cannot run the binary as nobody through setpriv ({probe:?})");
            return;
        }
    }
    let m = master(&e, "m");
    let p = |s: &str| e.path(s).into_os_string();
    // Ours, read-only, in a directory we may write (as nobody when we are root).
    let mine = e.path("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::copy(&m, mine.join("m")).unwrap();
    if root {
        for f in [mine.clone(), mine.join("m")] {
            std::os::unix::fs::lchown(&f, Some(65534), Some(65534)).unwrap();
        }
    }
    std::fs::set_permissions(mine.join("m"), std::fs::Permissions::from_mode(0o400)).unwrap();
    for args in [
        vec![OsStr::new("pfs-status"), mine.join("m").as_os_str()],
        vec![OsStr::new("export"), mine.join("m").as_os_str(), mine.join("out").as_os_str()],
        vec![OsStr::new("read"), mine.join("m").as_os_str()],
    ] {
        ok(&as_other(&e, &args).output().unwrap());
    }
    assert_eq!(std::fs::read_to_string(mine.join("out/d/c")).unwrap(), "c".repeat(70_000));
    // A directory we may not write, without a lock file, and with one we may not open.
    let ro = e.path("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::copy(&m, ro.join("m")).unwrap();
    std::fs::copy(&m, ro.join("m2")).unwrap();
    std::fs::set_permissions(ro.join("m"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(ro.join("m2"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::write(ro.join("m2-lock"), "").unwrap();
    std::fs::set_permissions(ro.join("m2-lock"), std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    for args in [
        vec![OsStr::new("pfs-status"), ro.join("m").as_os_str()],
        vec![OsStr::new("pfs-status"), ro.join("m2").as_os_str()],
        vec![OsStr::new("read"), ro.join("m").as_os_str()],
        vec![OsStr::new("verify"), ro.join("m").as_os_str(), ro.join("m2").as_os_str()],
        vec![OsStr::new("export"), ro.join("m").as_os_str(), mine.join("out2").as_os_str()],
    ] {
        ok(&as_other(&e, &args).output().unwrap());
    }
    assert_eq!(listing(&ro), ["m", "m2", "m2-lock"], "no lock file was made");
    // Writing needs the permission, and says which errno refused it.
    let o =
        as_other(&e, &[OsStr::new("pfs-update"), ro.join("m").as_os_str(), OsStr::new("label=x")]).output().unwrap();
    fails(&o, 1, "open failed: Permission denied (os error 13)");
    // A store we may not read at all: the errno is named.
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(if root { 0o600 } else { 0o000 })).unwrap();
    let o = as_other(&e, &[OsStr::new("pfs-status"), &p("m")]).output().unwrap();
    fails(&o, 1, "m: open failed: Permission denied (os error 13)");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_symlink_to_a_store_is_refused_by_name() {
    let e = Env::new();
    master(&e, "m");
    ok(&e.run(["-y", "copy", "m", "s"]));
    std::os::unix::fs::symlink("m", e.path("link")).unwrap();
    std::os::unix::fs::symlink("s", e.path("slink")).unwrap();
    std::os::unix::fs::symlink("nowhere", e.path("dangling")).unwrap();
    let says = |name: &str, to: &str| {
        format!(
            "{name}: open refused: a symbolic link (to {to}); store files are never opened through one: name the file itself"
        )
    };
    // A refusal (exit 3: a stream stops instead of retrying); pfs-status reports it per PFS.
    fails(&e.run(["pfs-status", "link"]), 1, &says("link", "m"));
    fails(&e.run(["read", "link"]), 3, &says("link", "m"));
    fails(&e.run(["export", "link", "out"]), 3, &says("link", "m"));
    fails(&e.run(["import", "m.tree", "link"]), 3, &says("link", "m"));
    fails(&e.run(["copy", "m", "slink"]), 3, &says("slink", "s"));
    fails(&e.run(["-y", "copy", "m", "dangling"]), 3, &says("dangling", "nowhere"));
    fails(&e.run(["-y", "--retry-delay", "1", "stream", "m", "slink"]), 3, &says("slink", "s"));
    fails(&e.run(["pfs-master", "dangling"]), 1, "Cannot create dangling, file exists!");
    for o in [e.run(["pfs-status", "link"]), e.run(["copy", "m", "slink"])] {
        assert!(!stderr(&o).contains("not a HAMMER filesystem"), "{}", show(&o));
    }
    assert!(!e.path("nowhere").exists() && !e.path("link-lock").exists() && !e.path("dangling-lock").exists());
    // A directory (or a symlink to one) is still the kernel's.
    std::fs::create_dir(e.path("dir")).unwrap();
    std::os::unix::fs::symlink("dir", e.path("dirlink")).unwrap();
    fails(&e.run(["pfs-status", "dirlink"]), 1, "dirlink: not a HAMMER filesystem");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn sigkill(c: &Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGKILL);
}

/// Temporaries of a creation of `name` left in the directory.
fn temporaries(e: &Env, name: &str) -> Vec<String> {
    listing(e.dir.path()).into_iter().filter(|n| n.starts_with(&format!(".{name}.hm-new."))).collect()
}

#[test]
fn a_kill_during_slave_or_pfs_creation_never_leaves_an_unusable_file() {
    let e = Env::new();
    master(&e, "m");
    let seed = 0x0510_7e5f_11e5_u64;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let rm = |name: &str| {
        for f in [name.to_string(), format!("{name}-lock")] {
            let _ = std::fs::remove_file(e.path(&f));
        }
    };
    // How long a copy into a missing slave takes here: kills fall anywhere in it.
    let t = Instant::now();
    ok(&e.run(["-y", "copy", "m", "s"]));
    let span = t.elapsed().as_micros() as u64 + 1;
    let mut found = [0usize; 2];
    for round in 0..30 {
        rm("s");
        let c = e.cmd().args(["-y", "copy", "m", "s"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % span));
        sigkill(&c);
        let _ = finish("the killed copy", c);
        found[usize::from(e.path("s").exists())] += 1;
        // Whatever the kill left, the next copy works and the slave is the master's.
        let o = e.run(["-y", "copy", "m", "s"]);
        assert!(o.status.success(), "round {round}: the copy after a kill failed:\n{}", show(&o));
        ok(&e.run(["verify", "m", "s"]));
    }
    println!("after the kills: {} without a slave, {} with one", found[0], found[1]);
    rm("s");
    ok(&e.run(["-y", "copy", "m", "s"]));
    assert_eq!(temporaries(&e, "s"), Vec::<String>::new(), "leftovers removed by the last creation");

    // pfs-master and pfs-slave: the file is complete or absent.
    let t = Instant::now();
    ok(&e.run(["pfs-master", "x"]));
    let span = t.elapsed().as_micros() as u64 + 1;
    for round in 0..20 {
        rm("x");
        let verb = if round % 2 == 0 { "pfs-master" } else { "pfs-slave" };
        let c = e.cmd().args([verb, "x"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % span));
        sigkill(&c);
        let _ = finish("the killed pfs-master", c);
        let o = if e.path("x").exists() { e.run(["pfs-status", "x"]) } else { e.run([verb, "x"]) };
        assert!(o.status.success(), "round {round}: after a kill of {verb}:\n{}", show(&o));
        if verb == "pfs-master" {
            ok(&e.run(["export", "x", &format!("x{round}.out")]));
        }
    }
}

/// The stream of `m`'s whole history, in a file.
fn stream_of(e: &Env, m: &str) -> PathBuf {
    let p = e.path(&format!("{m}.stream"));
    ok(&e.sh(&format!("$HM read {m} > {}", p.display())));
    p
}

#[test]
fn truncated_store_files_are_damaged_for_every_command_never_a_signal() {
    let e = Env::new();
    e.master_with("m", &[("a", "1"), ("d/b", &"b".repeat(9000)), ("d/c", &"c".repeat(20_000))]);
    ok(&e.run(["-y", "copy", "m", "s"]));
    let stream = stream_of(&e, "m");
    let mut cuts_checked = 0;
    for (orig, is_slave) in [("m", false), ("s", true)] {
        let bytes = std::fs::read(e.path(orig)).unwrap();
        let name = "t";
        // What the untruncated file shows, under the same name.
        std::fs::write(e.path(name), &bytes).unwrap();
        let status = stdout(ok(&e.run(["pfs-status", name])));
        let _ = std::fs::remove_file(e.path(&format!("{name}-lock")));
        let len = bytes.len();
        let cuts: Vec<usize> = (0..len).step_by(4096).chain((1000..len).step_by(4096)).collect();
        for cut in cuts {
            std::fs::write(e.path(name), &bytes[..cut]).unwrap();
            let _ = std::fs::remove_file(e.path(&format!("{name}-lock")));
            let o = e.run(["pfs-status", name]);
            no_signal(&format!("{orig} cut at {cut}: pfs-status"), &o);
            if o.status.success() {
                // Only pages the free list names were cut: the store is whole.
                assert_eq!(stdout(&o), status, "{orig} cut at {cut}");
                continue;
            }
            cuts_checked += 1;
            let says = format!("PFS file damaged: {name}: ");
            fails(&o, 1, &says);
            let mut cmds: Vec<Vec<&str>> = vec![
                vec!["read", name],
                vec!["export", name, "out"],
                vec!["import", "m.tree", name],
                vec!["pfs-update", name, "label=x"],
            ];
            if is_slave {
                cmds.extend([vec!["verify", "m", name], vec!["-y", "copy", "m", name], vec!["pfs-upgrade", name]]);
            } else {
                cmds.extend([vec!["verify", name, "s"], vec!["-y", "copy", name, "c"], vec!["pfs-downgrade", name]]);
            }
            for cmd in &cmds {
                let o = e.run(cmd);
                no_signal(&format!("{orig} cut at {cut}: {cmd:?}"), &o);
                fails(&o, 1, &says);
            }
            let o = e.cmd().args(["write", name]).stdin(std::fs::File::open(&stream).unwrap()).output().unwrap();
            no_signal(&format!("{orig} cut at {cut}: write"), &o);
            fails(&o, 1, &says);
            assert_eq!(std::fs::read(e.path(name)).unwrap(), &bytes[..cut], "{orig} cut at {cut}: unchanged");
            assert!(!e.path("c").exists() && !e.path("out").exists());
        }
    }
    assert!(cuts_checked > 20, "{cuts_checked} damaged cuts");
}

#[test]
fn a_file_cut_short_while_it_is_read_is_damaged_not_a_signal() {
    let e = Env::new();
    let big: Vec<(String, String)> = (0..8).map(|i| (format!("f{i}"), format!("{i:07}\n").repeat(1 << 17))).collect();
    let refs: Vec<(&str, &str)> = big.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let m = e.master_with("m", &refs);
    let mut c = e.cmd().args(["-B", "read", "m"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut first = vec![0u8; 64 << 10];
    out.read_exact(&mut first).unwrap();
    // The reader is now blocked on the pipe, in the middle of 8 MiB; cut the file under it.
    std::fs::OpenOptions::new().write(true).open(&m).unwrap().set_len(8192).unwrap();
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let o = finish("the read of a file cut short", c);
    no_signal("read of a file cut short", &o);
    fails(&o, 1, "PFS file damaged: ");
    assert!(stderr(&o).contains("m: "), "{}", show(&o));
    assert!(first.len() + rest.len() < 8 << 20, "the read did not complete");
}

#[test]
fn lmdb_s_private_directory_never_goes_where_others_could_swap_it() {
    let e = Env::new();
    master(&e, "m");
    // A TMPDIR that is missing, or that anyone may rename entries in: /tmp is used instead.
    let open = e.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for tmpdir in [e.path("missing"), open.clone()] {
        ok(&e.cmd().args(["pfs-status", "m"]).env("TMPDIR", &tmpdir).output().unwrap());
    }
    assert_eq!(listing(&open), Vec::<String>::new());
    // A private TMPDIR is used, and left empty.
    let private = e.path("private");
    std::fs::create_dir(&private).unwrap();
    ok(&e.cmd().args(["pfs-status", "m"]).env("TMPDIR", &private).output().unwrap());
    assert_eq!(listing(&private), Vec::<String>::new(), "the private directory is removed once LMDB is open");
}
