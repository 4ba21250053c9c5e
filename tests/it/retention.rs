//! Retention through the binary: snapshot/snapls/snaprm, prune keeping every kept TID byte for byte, targets holding
//! prunes back (and the full sweep past a stale one), slaves pruning on their own, space reused and compacted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::{Env, fails, ok, show, stderr, stdout, sync_end_tid, wait_for, write_tree};

/// Per path: type, mode, size, mtime (µs), contents or target.
pub fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mtime = m.mtime() * 1_000_000 + m.mtime_nsec() / 1000;
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o} mtime {mtime}", m.mode())
            } else if m.is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else {
                format!("file {:o} {} mtime {mtime} {:?}", m.mode(), m.size(), std::fs::read(&p).unwrap())
            };
            out.insert(p.strip_prefix(root).unwrap().display().to_string(), what);
        }
    }
    out
}

/// `export --as-of tid` into a fresh directory, listed (None when the export fails).
pub fn try_export_as_of(e: &Env, pfs: &Path, tid: &str) -> Option<BTreeMap<String, String>> {
    let n = std::fs::read_dir(e.dir.path()).unwrap().count();
    let out = e.path(&format!("export-{n}"));
    let o = e.run([
        OsStr::new("-q"),
        OsStr::new("export"),
        OsStr::new("--as-of"),
        OsStr::new(tid),
        pfs.as_os_str(),
        out.as_os_str(),
    ]);
    let l = o.status.success().then(|| listing(&out));
    let _ = std::fs::remove_dir_all(&out);
    l
}

/// `export --as-of tid` into a fresh directory, listed.
#[track_caller]
pub fn export_as_of(e: &Env, pfs: &Path, tid: &str) -> BTreeMap<String, String> {
    try_export_as_of(e, pfs, tid).unwrap_or_else(|| panic!("export --as-of {tid} of {} failed", pfs.display()))
}

/// Imports `tree` into `pfs` and returns the new TID.
fn import(e: &Env, tree: &Path, pfs: &Path) -> String {
    ok(&e.run([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), pfs.as_os_str()]));
    sync_end_tid(e, pfs)
}

/// A master with `n` imports of a changing tree (contents, modes, a removal, a
/// symlink); returns it and the TID of each import.
fn churned_master(e: &Env, n: usize) -> (PathBuf, Vec<String>) {
    let tree = e.path("t");
    write_tree(&tree, &[("keep", "always"), ("d/x", "0")]);
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    let mut tids = Vec::new();
    for i in 0..n {
        std::fs::write(tree.join("d/x"), format!("version {i} ").repeat(200 * (i + 1))).unwrap();
        std::fs::write(tree.join(format!("f{}", i % 3)), format!("{i}")).unwrap();
        if i % 4 == 3 {
            let _ = std::fs::remove_file(tree.join("f0"));
        }
        std::fs::set_permissions(tree.join("keep"), std::fs::Permissions::from_mode(0o600 + (i as u32 % 2) * 0o44))
            .unwrap();
        let _ = std::fs::remove_file(tree.join("link"));
        std::os::unix::fs::symlink(format!("target-{i}"), tree.join("link")).unwrap();
        tids.push(import(e, &tree, &m));
    }
    (m, tids)
}

fn json_lines(o: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn snapshots_are_made_listed_removed_and_named_by_export() {
    let e = Env::new();
    let (m, tids) = churned_master(&e, 3);
    let o = e.run([OsStr::new("snapshot"), m.as_os_str(), OsStr::new("before the upgrade")]);
    ok(&o);
    assert_eq!(stdout(&o).trim(), tids[2], "the snapshot is of the current TID");
    // A slave's current TID is its sync-end-tid: a second snapshot of it is refused.
    let s = e.path("s");
    ok(&e.run([OsStr::new("-q"), OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    let o = e.run([OsStr::new("--json"), OsStr::new("snapshot"), s.as_os_str(), OsStr::new("slave's own")]);
    ok(&o);
    assert_eq!(json_lines(&o)[0]["tid"], sync_end_tid(&e, &s).as_str());
    let o = e.run([OsStr::new("snapshot"), s.as_os_str()]);
    fails(&o, 1, "there is already a snapshot at TID");

    let o = e.run([OsStr::new("snapls"), m.as_os_str()]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!("{}\t", tids[2])) && stdout(&o).contains("\"before the upgrade\""),
        "{}",
        show(&o)
    );
    let o = e.run([OsStr::new("--json"), OsStr::new("snapls"), m.as_os_str()]);
    let l = json_lines(&o);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["tid"], tids[2].as_str());
    assert_eq!(l[0]["note"], "before the upgrade");
    assert!(l[0]["time"].as_str().unwrap().ends_with('Z'));

    // export --as-of takes the note.
    let import_3 = import(&e, &e.path("t"), &m);
    assert_ne!(import_3, tids[2]);
    assert_eq!(export_as_of(&e, &m, "before the upgrade"), export_as_of(&e, &m, &tids[2]));
    let o = e.run([
        OsStr::new("export"),
        OsStr::new("--as-of"),
        OsStr::new("no such note"),
        m.as_os_str(),
        e.path("x").as_os_str(),
    ]);
    fails(&o, 2, "--as-of \"no such note\" is neither a TID nor the note of a snapshot of");
    assert!(!e.path("x").exists());

    // A note too long is a usage error; a TID that has no snapshot changes nothing.
    let long = "n".repeat(64);
    fails(
        &e.run([OsStr::new("snapshot"), m.as_os_str(), OsStr::new(&long)]),
        2,
        "the note is 64 bytes; at most 63 fit",
    );
    let o = e.run([OsStr::new("snaprm"), m.as_os_str(), OsStr::new(&tids[2]), OsStr::new("0x1")]);
    fails(&o, 1, "no snapshot at TID 0x0000000000000001 (snapls lists them); nothing was deleted");
    assert_eq!(json_lines(&e.run([OsStr::new("--json"), OsStr::new("snapls"), m.as_os_str()])).len(), 1);
    ok(&e.run([OsStr::new("snaprm"), m.as_os_str(), OsStr::new(&tids[2])]));
    assert!(json_lines(&e.run([OsStr::new("--json"), OsStr::new("snapls"), m.as_os_str()])).is_empty());
}

#[test]
fn a_malformed_rule_is_a_usage_error_naming_its_token() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 1);
    let o = e.run([OsStr::new("prune"), m.as_os_str(), OsStr::new("--keep"), OsStr::new("24h:all,48x:1h")]);
    fails(&o, 2, "rule '48x:1h': '48x': a duration ends in s, m, h, d, w or y");
    let o = e.run([OsStr::new("prune"), m.as_os_str(), OsStr::new("--keep"), OsStr::new("30d:1d,24h:all")]);
    fails(&o, 2, "rule '24h:all': its age is not greater than the previous rule's 30d");
    let o = e.run([OsStr::new("stream"), OsStr::new("--prune"), OsStr::new("1d"), m.as_os_str(), OsStr::new("s")]);
    fails(&o, 2, "rule '1d': no ':' between AGE and EVERY");
}

/// Every TID a prune keeps (from its --json report), the current state included.
fn kept_tids(report: &serde_json::Value, all: &[String]) -> Vec<String> {
    let mut kept: Vec<String> =
        report["kept"].as_array().unwrap().iter().map(|k| k["tid"].as_str().unwrap().to_string()).collect();
    let from = report["kept_from"].as_str().unwrap();
    kept.extend(all.iter().filter(|t| t.as_str() >= from).cloned());
    kept
}

#[test]
fn a_prune_leaves_every_kept_tid_as_it_was_byte_for_byte() {
    let e = Env::new();
    let (m, mut tids) = churned_master(&e, 5);
    // A snapshot in the middle of the history (its record takes a TID of its own).
    ok(&e.run([OsStr::new("-q"), OsStr::new("snapshot"), m.as_os_str(), OsStr::new("kept")]));
    tids.push(sync_end_tid(&e, &m));
    let tree = e.path("t");
    for i in 0..3 {
        std::fs::write(tree.join("d/x"), format!("after the snapshot {i}")).unwrap();
        tids.push(import(&e, &tree, &m));
    }
    let before: Vec<_> = tids.iter().map(|t| export_as_of(&e, &m, t)).collect();

    // 1s periods: of the imports of each second, the newest stays.
    let o = e.run([
        OsStr::new("--json"),
        OsStr::new("prune"),
        m.as_os_str(),
        OsStr::new("--keep"),
        OsStr::new("1h:1s"),
        OsStr::new("--dry-run"),
    ]);
    ok(&o);
    let dry = &json_lines(&o)[0];
    assert_eq!(dry["dry_run"], true);
    let records = dry["records_removed"].as_u64().unwrap();
    assert!(records > 0, "{dry}");
    let o =
        e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str(), OsStr::new("--keep"), OsStr::new("1h:1s")]);
    ok(&o);
    let done = &json_lines(&o)[0];
    assert_eq!(done["records_removed"], records, "the dry run said what the prune did");
    assert_eq!(done["kept"], dry["kept"]);
    let kept = kept_tids(done, &tids);
    assert!(kept.contains(tids.last().unwrap()), "the current state is kept");
    let mut refused = 0;
    for (t, b) in tids.iter().zip(&before) {
        if kept.contains(t) {
            assert_eq!(&export_as_of(&e, &m, t), b, "kept TID {t} changed");
        } else if let Some(l) = try_export_as_of(&e, &m, t) {
            // Exported: then it must show what it showed.
            assert_eq!(&l, b, "TID {t} exports, so it must be whole");
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "some TIDs were taken apart and their export refused");

    // Without --keep: only the snapshot and the current state.
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str()]);
    ok(&o);
    let r = &json_lines(&o)[0];
    let kept: Vec<&str> = r["kept"].as_array().unwrap().iter().map(|k| k["why"].as_str().unwrap()).collect();
    assert_eq!(kept, ["snapshot"], "{r}");
    assert_eq!(export_as_of(&e, &m, tids.last().unwrap()), before[8]);
    assert_eq!(export_as_of(&e, &m, "kept"), before[4]);
    // Nothing more to go; a fresh copy of what is left verifies.
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str(), OsStr::new("--dry-run")]);
    assert_eq!(json_lines(&o)[0]["records_removed"], 0);
    ok(&e.run([OsStr::new("-q"), OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), e.path("s").as_os_str()]));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), e.path("s").as_os_str()]));
}

#[test]
fn prune_min_keeps_recent_history_whole() {
    let e = Env::new();
    let (m, tids) = churned_master(&e, 4);
    ok(&e.run([OsStr::new("pfs-update"), m.as_os_str(), OsStr::new("prune-min=1d")]));
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str()]);
    ok(&o);
    let r = &json_lines(&o)[0];
    assert_eq!(r["records_removed"], 0, "{r}");
    assert!(r["kept_from"].as_str().unwrap() <= tids[0].as_str(), "{r}");
    assert_eq!(r["kept_from_why"], "prune-min");
}

#[test]
fn targets_hold_prunes_back_and_a_stale_one_gets_a_full_sweep() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 3);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-q"), OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    let acked = sync_end_tid(&e, &s);
    let slave_uuid = crate::util::status_json(&e, &s)["unique_uuid"].as_str().unwrap().to_string();
    let tree = e.path("t");
    let mut later = Vec::new();
    for i in 0..3 {
        std::fs::write(tree.join("d/x"), format!("after the copy {i}")).unwrap();
        later.push(import(&e, &tree, &m));
    }

    // The slave's TID and everything after it stay; the prune says who holds it.
    let o = e.run([OsStr::new("prune"), m.as_os_str()]);
    ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{acked}  and every TID after it (held back by target {slave_uuid}")),
        "{}",
        show(&o)
    );
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str(), OsStr::new("--dry-run")]);
    let r = &json_lines(&o)[0];
    assert_eq!(r["held_back_by"]["uuid"], slave_uuid.as_str());
    assert_eq!(r["held_back_by"]["tid"], acked.as_str());
    assert_eq!(r["targets"].as_array().unwrap().len(), 1);
    assert_eq!(r["targets"][0]["uuid"], slave_uuid.as_str());
    assert_eq!(r["records_removed"], 0);
    let at_ack = export_as_of(&e, &m, &acked);

    // Forced: the history the slave still needs goes; the next pass sweeps it whole.
    let o = e.run([OsStr::new("prune"), m.as_os_str(), OsStr::new("--force-below-targets")]);
    ok(&o);
    assert!(
        stderr(&o).contains(&format!("--force-below-targets: target {slave_uuid} acknowledged only {acked}")),
        "{}",
        show(&o)
    );
    // The master no longer holds the slave's TID whole: export says so instead of showing a partial state.
    let o = e.run([
        OsStr::new("export"),
        OsStr::new("--as-of"),
        OsStr::new(&acked),
        m.as_os_str(),
        e.path("x").as_os_str(),
    ]);
    fails(&o, 2, &format!("no longer holds TID {acked} whole"));
    assert!(try_export_as_of(&e, &m, &acked).is_none());
    let o = e.run([OsStr::new("copy"), m.as_os_str(), s.as_os_str()]);
    ok(&o);
    assert!(
        stderr(&o).contains("below the history this PFS pruned") && stderr(&o).contains("a full sweep pass"),
        "{}",
        show(&o)
    );
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
    assert_eq!(sync_end_tid(&e, &s), *later.last().unwrap());
    // The slave keeps what it received: its own past is still there.
    assert_eq!(export_as_of(&e, &s, &acked), at_ack);
    // Caught up: the next pass is incremental again.
    std::fs::write(tree.join("new"), "n").unwrap();
    import(&e, &tree, &m);
    let o = e.run([OsStr::new("copy"), m.as_os_str(), s.as_os_str()]);
    ok(&o);
    assert!(!stderr(&o).contains("full sweep"), "{}", show(&o));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));

    // A target that will never come back is forgotten by name (not by a dry run).
    let forget = |dry: bool| {
        let mut args = vec![OsStr::new("prune"), m.as_os_str(), OsStr::new("--forget-target"), OsStr::new(&slave_uuid)];
        if dry {
            args.push(OsStr::new("--dry-run"));
        }
        e.run(args)
    };
    ok(&forget(true));
    ok(&forget(false));
    fails(&forget(false), 2, &format!("knows no target {slave_uuid}"));
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), m.as_os_str(), OsStr::new("--dry-run")]);
    assert!(json_lines(&o)[0]["held_back_by"].is_null(), "{}", show(&o));
}

#[test]
fn a_slave_prunes_with_its_own_rules_and_keeps_mirroring() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 4);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-q"), OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    let before = export_as_of(&e, &s, &sync_end_tid(&e, &s));
    let o = e.run([OsStr::new("--json"), OsStr::new("prune"), s.as_os_str()]);
    ok(&o);
    assert!(json_lines(&o)[0]["records_removed"].as_u64().unwrap() > 0, "{}", show(&o));
    assert_eq!(export_as_of(&e, &s, &sync_end_tid(&e, &s)), before);
    // The master keeps its history; mirroring goes on.
    let tree = e.path("t");
    std::fs::write(tree.join("d/x"), "after the slave's prune").unwrap();
    import(&e, &tree, &m);
    ok(&e.run([OsStr::new("-q"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
}

#[test]
fn pruned_pages_are_reused_and_compact_gives_them_back() {
    let e = Env::new();
    let tree = e.path("t");
    let files: Vec<(String, String)> = (0..40).map(|i| (format!("d{}/f{i}", i % 4), "x".repeat(3000))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    write_tree(&tree, &refs);
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    let size = || std::fs::metadata(&m).unwrap().len();
    let mut sizes = Vec::new();
    for cycle in 0..50 {
        // Churn: a quarter of the files rewritten each time.
        for i in (cycle % 4..40).step_by(4) {
            std::fs::write(tree.join(&files[i].0), format!("{cycle:03}:{i:03}:").repeat(1000)).unwrap();
        }
        import(&e, &tree, &m);
        ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
        sizes.push(size());
    }
    let (at10, at50) = (sizes[9] as f64, sizes[49] as f64);
    eprintln!("store file size over 50 churn+prune cycles: {sizes:?}");
    assert!(at50 <= at10 * 1.10, "the file grew from {at10} to {at50} bytes over 40 churn+prune cycles: {sizes:?}");
    let current = export_as_of(&e, &m, &sync_end_tid(&e, &m));

    // Churn without pruning grows it; prune + compact brings it back down.
    for cycle in 0..5 {
        for (i, f) in files.iter().enumerate() {
            std::fs::write(tree.join(&f.0), format!("more {cycle} {i}").repeat(500)).unwrap();
        }
        import(&e, &tree, &m);
    }
    let grown = size();
    assert!(grown > sizes[49], "five imports of new contents without a prune grow the file: {grown}");
    ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
    let latest = export_as_of(&e, &m, &sync_end_tid(&e, &m));
    assert_ne!(latest, current);
    let o = e.run([OsStr::new("compact"), m.as_os_str()]);
    ok(&o);
    assert!(stderr(&o).contains("Compacted"), "{}", show(&o));
    assert!(size() < grown, "compact: {grown} -> {} bytes", size());
    assert_eq!(export_as_of(&e, &m, &sync_end_tid(&e, &m)), latest);
    // The compacted store takes writes and mirrors.
    std::fs::write(tree.join("after-compact"), "c").unwrap();
    import(&e, &tree, &m);
    ok(&e.run([OsStr::new("-q"), OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), e.path("s").as_os_str()]));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), e.path("s").as_os_str()]));
}

#[test]
fn a_stream_reading_the_old_file_of_a_compacted_store_opens_the_new_one_with_no_lost_link_and_no_backoff() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 3);
    let s = e.path("s");
    // A lost link would wait a minute: the waits below would time out.
    let stream = e
        .cmd()
        .args([
            OsStr::new("-y"),
            OsStr::new("-i"),
            OsStr::new("1"),
            OsStr::new("--retry-delay"),
            OsStr::new("60"),
            OsStr::new("stream"),
            m.as_os_str(),
            s.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first pass", || s.exists() && sync_end_tid(&e, &s) == sync_end_tid(&e, &m));
    ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
    let tree = e.path("t");
    // Rounds with 0 to 3 more commits in between, so that compactions happen
    // at both parities of LMDB's transaction id while the stream (another
    // process) has the lock file open.
    for round in 0..4 {
        for k in 0..round {
            ok(&e.run([OsStr::new("-q"), OsStr::new("snapshot"), m.as_os_str(), OsStr::new(&format!("r{round}k{k}"))]));
        }
        ok(&e.run([OsStr::new("-q"), OsStr::new("compact"), m.as_os_str()]));
        std::fs::write(tree.join("after-compact"), format!("round {round}")).unwrap();
        let t = import(&e, &tree, &m);
        wait_for("the stream to send the TID imported after the compaction", || sync_end_tid(&e, &s) == t);
        assert_eq!(export_as_of(&e, &m, &t), listing(&tree), "round {round}");
        ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
    }
    crate::util::signal(stream.id(), nix::sys::signal::Signal::SIGTERM);
    let o = stream.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("Lost Link") && !err.contains("retrying in") && !err.contains("cannot stream"), "{err}");
    assert!(
        err.matches("the store file was compacted; reading the new one").count()
            + err.matches("running again on the new file").count()
            >= 4,
        "{err}"
    );
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
}

#[test]
fn stream_prune_prunes_the_master_after_an_acknowledged_pass() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 4);
    let s = e.path("s");
    let stream = e
        .cmd()
        .args([
            OsStr::new("-y"),
            OsStr::new("-i"),
            OsStr::new("1"),
            OsStr::new("stream"),
            OsStr::new("--prune"),
            OsStr::new("1s:1h"),
            OsStr::new("--prune-every"),
            OsStr::new("1"),
            m.as_os_str(),
            s.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the stream's prune", || {
        let o = e.run([
            OsStr::new("--json"),
            OsStr::new("prune"),
            m.as_os_str(),
            OsStr::new("--dry-run"),
            OsStr::new("--keep"),
            OsStr::new("1s:1h"),
        ]);
        o.status.success() && json_lines(&o).first().is_some_and(|r| r["records_removed"] == 0)
    });
    crate::util::signal(stream.id(), nix::sys::signal::Signal::SIGTERM);
    let o = stream.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains(&format!("prune {}: ", m.display())), "{}", show(&o));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
}

#[test]
fn imports_go_on_between_the_batches_of_a_long_prune() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 3);
    let tree = e.path("t");
    let files: Vec<(String, String)> = (0..400).map(|i| (format!("many/f{i}"), format!("{i}"))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    for round in 0..3 {
        write_tree(&tree, &refs);
        std::fs::write(tree.join("round"), format!("{round}")).unwrap();
        for (f, _) in &files {
            std::fs::write(tree.join(f), format!("{round} {f}")).unwrap();
        }
        import(&e, &tree, &m);
    }
    let prune = e
        .cmd()
        .env("HAMMER_MIRROR_PRUNE_BATCH", "5")
        .env("HAMMER_MIRROR_LOCK_WAIT", "30")
        .args([OsStr::new("prune"), m.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Imports while it runs: each gets the writer lock between two batches.
    let mut imported = Vec::new();
    for i in 0..3 {
        std::fs::write(tree.join("during"), format!("{i}")).unwrap();
        let o = e
            .cmd()
            .env("HAMMER_MIRROR_LOCK_WAIT", "30")
            .args([OsStr::new("-q"), OsStr::new("import"), tree.as_os_str(), m.as_os_str()])
            .output()
            .unwrap();
        ok(&o);
        imported.push((sync_end_tid(&e, &m), listing(&tree)));
    }
    let o = prune.wait_with_output().unwrap();
    ok(&o);
    assert!(stderr(&o).contains("commits"), "{}", show(&o));
    // What the imports made during the prune is all there.
    for (t, l) in &imported {
        assert_eq!(&export_as_of(&e, &m, t), l, "TID {t} imported during the prune");
    }
}

#[test]
fn watch_goes_on_recording_into_a_compacted_store() {
    let e = Env::new();
    let (m, _) = churned_master(&e, 2);
    let tree = e.path("t");
    let before = sync_end_tid(&e, &m);
    let watch = e
        .cmd()
        .args([OsStr::new("--settle"), OsStr::new("50"), OsStr::new("watch"), tree.as_os_str(), m.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(tree.join("watched"), "before the compaction").unwrap();
    wait_for("watch's first recording", || {
        sync_end_tid(&e, &m) != before
            && try_export_as_of(&e, &m, &sync_end_tid(&e, &m)).is_some_and(|l| l == listing(&tree))
    });
    ok(&e.run([OsStr::new("-q"), OsStr::new("prune"), m.as_os_str()]));
    ok(&e.run([OsStr::new("-q"), OsStr::new("compact"), m.as_os_str()]));
    for i in 0..3 {
        std::fs::write(tree.join("watched"), format!("after the compaction {i}")).unwrap();
        wait_for("watch to record the change", || {
            try_export_as_of(&e, &m, &sync_end_tid(&e, &m)).is_some_and(|l| l == listing(&tree))
        });
    }
    crate::util::signal(watch.id(), nix::sys::signal::Signal::SIGTERM);
    let o = watch.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
}

/// `verify` plays the target of both its readers with their own PFSDs: no
/// PFS records itself as a target (one would hold its own prunes back).
#[test]
fn verify_records_no_acknowledgement() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
    let targets = |p: &std::path::Path| {
        let o = e.run([OsStr::new("prune"), OsStr::new("--dry-run"), p.as_os_str()]);
        ok(&o);
        format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o)).matches(" acknowledged ").count()
    };
    assert_eq!(targets(&m), 1, "the master knows its one target");
    assert_eq!(targets(&s), 0, "the slave is nobody's master");
}
