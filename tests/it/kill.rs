//! Kill tests: SIGKILL the orchestrator, the source or the target (the fake ssh execs the remote command, so
//! killing it is killing the ssh child) at seeded random points of a `copy`, then check that the target is at
//! a committed TID and consistent (`verify` as of its own sync_end_tid), and that a rerun completes.
//! 50 iterations by default; HAMMER_MIRROR_KILL_ITERATIONS=N runs more.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::{Env, WAIT_BOUND, alive, bin, fake_ssh, ok, show, signal, wait_for, wait_until};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The remote sides that the fake ssh started for this copy (`copy` empties the pid file before each run).
fn remote_pids(e: &Env) -> Vec<u32> {
    let pids = std::fs::read_to_string(e.path("pids")).unwrap_or_default();
    pids.lines().filter_map(|p| p.trim().parse().ok()).collect()
}

/// SIGKILL to the remote side of this copy, if it has started.
fn sigkill_remote(e: &Env) {
    if let Some(&pid) = remote_pids(e).first() {
        signal(pid, Signal::SIGKILL);
    }
}

fn copy(e: &Env, src: &str, dst: &str) -> Child {
    let _ = std::fs::remove_file(e.path("pids"));
    e.cmd()
        .env("HAMMER_RSH", fake_ssh())
        .env("FAKE_SSH_PIDS", e.path("pids"))
        .env("HAMMER_MIRROR_LOCK_WAIT", "10")
        .args(["--remote-cmd", bin(), "-q", "-y", "-S", "2m", "copy", src, dst])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The copy's output, once it has ended (a copy that never ends is killed and fails the test).
fn wait(mut c: Child) -> std::process::Output {
    if !wait_until(|| c.try_wait().unwrap().is_some()) {
        let _ = c.kill();
        panic!("copy did not end within {WAIT_BOUND:?}:\n{}", show(&c.wait_with_output().unwrap()));
    }
    c.wait_with_output().unwrap()
}

fn verify_at_own_tid(e: &Env, m: &Path, s: &Path, what: &str) {
    if !s.exists() {
        return;
    }
    let o = e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]);
    assert!(o.status.success(), "after {what}: the target is not consistent with the source:\n{}", show(&o));
}

#[test]
fn sigkill_at_random_points_then_rerun() {
    let iterations: u64 =
        std::env::var("HAMMER_MIRROR_KILL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let e = Env::new();
    let mut files: Vec<(String, String)> =
        (0..40).map(|i| (format!("d{}/f{i}", i % 4), format!("{i}-").repeat(20_000 + i * 3000))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let m = e.master_with("m", &refs);
    let s = e.path("s");
    let (ms, ss) = (m.display().to_string(), s.display().to_string());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut kills = [0u32; 3];
    for i in 0..iterations {
        // Something new to copy most of the time.
        if i % 3 != 2 {
            let n = files.len();
            files.push((format!("new/g{i}"), format!("{i}+").repeat(50_000)));
            files[(rng.next() % n as u64) as usize].1.push_str("changed");
            let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            crate::util::write_tree(&e.path("m.tree"), &refs);
            ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
        }
        let variant = rng.next() % 3;
        let (src, dst) = match variant {
            0 => (ms.clone(), format!("backup:{ss}")),
            1 => (format!("backup:{ms}"), ss.clone()),
            _ => (ms.clone(), format!("backup:{ss}")),
        };
        let child = copy(&e, &src, &dst);
        // The random point of the kill (a moment of the copy, not a wait for something).
        std::thread::sleep(Duration::from_millis(rng.next() % 150));
        let what = match variant {
            0 => {
                // The remote target (the ssh child).
                sigkill_remote(&e);
                "killing the target"
            }
            1 => {
                sigkill_remote(&e);
                "killing the source"
            }
            _ => {
                signal(child.id(), Signal::SIGKILL);
                "killing the orchestrator"
            }
        };
        kills[variant as usize] += 1;
        let _ = wait(child);
        // An orphaned remote half ends when its socket closes; it must, before the target is checked.
        for pid in remote_pids(&e) {
            wait_for("the remote half of the killed copy to end", || !alive(pid));
        }
        verify_at_own_tid(&e, &m, &s, what);
        // The rerun completes and the target catches up.
        let o = wait(copy(&e, &ms, &ss));
        assert!(o.status.success(), "rerun after {what} failed:\n{}", show(&o));
        assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m), "after {what}");
        verify_at_own_tid(&e, &m, &s, what);
    }
    eprintln!("kill iterations: {iterations} (target {}, source {}, orchestrator {})", kills[0], kills[1], kills[2]);
    ok(&e.run([OsStr::new("export"), s.as_os_str(), e.path("out").as_os_str()]));
    ok(&e.sh("diff -r m.tree out"));
}

/// A prune SIGKILLed at random points (in small batches, so that most kills land between two of its commits)
/// leaves a store that opens and whose kept TIDs (a snapshot, the current state) export as before; a rerun
/// finishes it.
#[test]
fn prune_sigkilled_at_random_points_keeps_every_kept_tid() {
    let iterations: u64 =
        std::env::var("HAMMER_MIRROR_KILL_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(50) / 5;
    let e = Env::new();
    let tree = e.path("m.tree");
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    let mut snap = String::new();
    for round in 0..5 {
        let files: Vec<(String, String)> =
            (0..300).map(|i| (format!("d{}/f{i}", i % 8), format!("{round}/{i} ").repeat(40))).collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        crate::util::write_tree(&tree, &refs);
        ok(&e.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), m.as_os_str()]));
        if round == 2 {
            let o = e.run([OsStr::new("snapshot"), m.as_os_str(), OsStr::new("middle")]);
            ok(&o);
            snap = String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
    }
    let current = crate::util::sync_end_tid(&e, &m);
    let kept = [snap.clone(), current.clone()];
    let before: Vec<_> = kept.iter().map(|t| crate::retention::export_as_of(&e, &m, t)).collect();
    let prune = |p: &Path| {
        e.cmd()
            .env("HAMMER_MIRROR_PRUNE_BATCH", "40")
            .args([OsStr::new("-q"), OsStr::new("prune"), p.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // How long an uninterrupted prune takes, to spread the kills over it.
    let full = e.path("full");
    std::fs::copy(&m, &full).unwrap();
    let t = std::time::Instant::now();
    let o = wait(prune(&full));
    assert!(o.status.success(), "{}", show(&o));
    let span = (t.elapsed().as_millis() as u64).max(20);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut midway = 0u32;
    for i in 0..iterations.max(1) {
        let p = e.path(&format!("k{i}"));
        std::fs::copy(&m, &p).unwrap();
        let child = prune(&p);
        std::thread::sleep(Duration::from_millis(rng.next() % span));
        signal(child.id(), Signal::SIGKILL);
        let _ = wait(child);
        ok(&e.run([OsStr::new("pfs-status"), p.as_os_str()]));
        for (t, b) in kept.iter().zip(&before) {
            assert_eq!(&crate::retention::export_as_of(&e, &p, t), b, "kill {i}: kept TID {t} changed");
        }
        let o = e.run([OsStr::new("--json"), OsStr::new("prune"), OsStr::new("--dry-run"), p.as_os_str()]);
        ok(&o);
        let left = String::from_utf8_lossy(&o.stdout).contains("\"records_removed\":0");
        midway += u32::from(!left && std::fs::metadata(&p).unwrap().len() > 0);
        let o = wait(prune(&p));
        assert!(o.status.success(), "the prune after kill {i}: {}", show(&o));
        for (t, b) in kept.iter().zip(&before) {
            assert_eq!(&crate::retention::export_as_of(&e, &p, t), b, "after kill {i} and a rerun: kept TID {t}");
        }
        let o = e.run([OsStr::new("--json"), OsStr::new("prune"), OsStr::new("--dry-run"), p.as_os_str()]);
        ok(&o);
        assert!(String::from_utf8_lossy(&o.stdout).contains("\"records_removed\":0"), "{}", show(&o));
        std::fs::remove_file(&p).unwrap();
        let _ = std::fs::remove_file(e.path(&format!("k{i}-lock")));
    }
    eprintln!("prune kills: {} (a prune {span} ms long; {midway} left work for the rerun)", iterations.max(1));
}

/// A compact SIGKILLed at random points leaves the old file or the new one: the store opens and shows what it
/// showed, and the next compact succeeds.
#[test]
fn compact_sigkilled_at_random_points_leaves_the_old_or_the_new_file() {
    let e = Env::new();
    let tree = e.path("m.tree");
    let files: Vec<(String, String)> =
        (0..400).map(|i| (format!("d{}/f{i}", i % 8), format!("{i} ").repeat(300))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let m = e.master_with("m", &refs);
    crate::util::write_tree(&tree, &refs[..200]);
    ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
    let compact = || {
        e.cmd().args([OsStr::new("-q"), OsStr::new("compact"), m.as_os_str()]).stderr(Stdio::piped()).spawn().unwrap()
    };
    let t = std::time::Instant::now();
    let o = wait(compact());
    assert!(o.status.success(), "{}", show(&o));
    let span = (t.elapsed().as_millis() as u64).max(10);
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for i in 0..10 {
        // Something to compact away each time.
        std::fs::write(tree.join("churn"), format!("{i}").repeat(20_000)).unwrap();
        ok(&e.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), m.as_os_str()]));
        ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
        let current = crate::util::sync_end_tid(&e, &m);
        let want = crate::retention::export_as_of(&e, &m, &current);
        let child = compact();
        std::thread::sleep(Duration::from_millis(rng.next() % (span * 2)));
        signal(child.id(), Signal::SIGKILL);
        let _ = wait(child);
        assert_eq!(crate::util::sync_end_tid(&e, &m), current, "kill {i}");
        assert_eq!(crate::retention::export_as_of(&e, &m, &current), want, "kill {i}");
    }
    let o = wait(compact());
    assert!(o.status.success(), "{}", show(&o));
    // What the killed compactions left beside it is gone after a complete one.
    let left: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".hm-new."))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}
