//! Snapshot records in mirror streams: a slave receives its master's (as a HAMMER kernel sends them) and keeps them.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Output, Stdio};

use crate::util::{Env, ok, show, stdout};
use hammer_mirror::hammerfs::{HAMMER_LOCALIZE_PSEUDOFS_MASK, SnapshotData, leaf_data_crc, snapshot_record_key};
use hammer_mirror::mrecord::{self, BTYPE_RECORD, BaseElm, LeafElm, Record};

/// `write <pfs>` with `stream` on stdin.
fn write(e: &Env, pfs: &str, stream: &[u8]) -> Output {
    let mut c = e
        .cmd()
        .args(["-y", "write", pfs])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stream).unwrap();
    c.wait_with_output().unwrap()
}

/// The full one-way stream of `pfs` (`read` without a begin TID).
fn full_stream(e: &Env, pfs: &str) -> Vec<u8> {
    let o = e.run(["read", pfs]);
    ok(&o);
    o.stdout
}

/// `stream` with the snapshot record of `tid` (at `tid`, note `note`)
/// inserted where the kernel's B-tree order puts it, as a HAMMER master
/// that has `hammer snapshot`s sends it.
fn with_snapshot(stream: &[u8], tid: u64, note: &str) -> Vec<u8> {
    let (lo_type, obj_id, rec_type, key) = snapshot_record_key(tid);
    // Leaves carry their PFS's id in the localization, as the kernel sends them.
    let pfs = mrecord::records(stream)
        .find_map(|r| match r.unwrap() {
            Record::Rec { leaf, .. } => Some(leaf.base.localization & HAMMER_LOCALIZE_PSEUDOFS_MASK),
            _ => None,
        })
        .unwrap();
    let localization = pfs | lo_type;
    let data = SnapshotData::new(tid, 1_700_000_000_000_000, note.as_bytes()).encode();
    let leaf = LeafElm {
        base: BaseElm {
            obj_id,
            key,
            create_tid: tid,
            delete_tid: 0,
            rec_type,
            obj_type: 0,
            btype: BTYPE_RECORD,
            localization,
        },
        create_ts: 1_700_000_000,
        delete_ts: 0,
        data_offset: 0xa000_0000_0000_0000,
        data_len: data.len() as i32,
        data_crc: leaf_data_crc(rec_type, &data),
    };
    let mut out = Vec::new();
    let mut inserted = false;
    for r in mrecord::records(stream) {
        let r = r.unwrap();
        let at = match r {
            Record::Rec { leaf, .. } | Record::Pass { leaf } => Some(leaf.base),
            Record::Skip { beg, .. } => Some(beg),
            Record::Sync => Some(BaseElm { localization: u32::MAX, ..Default::default() }),
            _ => None,
        };
        if !inserted && at.is_some_and(|b| b.btree_cmp(&leaf.base).is_gt()) {
            Record::rec(leaf, &data).encode_to_vec(&mut out);
            inserted = true;
        }
        r.encode_to_vec(&mut out);
    }
    assert!(inserted, "no place for the snapshot record in the stream");
    out
}

/// The snapshot records of `pfs` as `read | dump` lists them: key and TIDs
/// (`create:delete`, the delete TID 0 while the snapshot is live).
fn snapshot_records(e: &Env, pfs: &str) -> Vec<(String, String)> {
    let o = e.sh(&format!("\"$HM\" read {pfs} | \"$HM\" dump"));
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].contains(" rt=16 "))
        .map(|w| {
            (w[0].split_whitespace().nth(2).unwrap().to_string(), w[1].split_whitespace().nth(1).unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_slave_keeps_the_snapshot_records_its_master_sent_after_the_master_drops_them() {
    let e = Env::new();
    e.master_with("m", &[("a", "1"), ("d/b", "2")]);
    let tid = u64::from_str_radix(crate::util::sync_end_tid(&e, &e.path("m")).trim_start_matches("0x"), 16).unwrap();

    let stream = with_snapshot(&full_stream(&e, "m"), tid, "before the upgrade");
    let o = write(&e, "s", &stream);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(snapshot_records(&e, "s"), [(format!("key={tid:016x}"), format!("{tid:016x}:0000000000000000"))]);

    // The master changes; its next full stream no longer has the snapshot
    // (a HAMMER master destroys a deleted snapshot's record) and sweeps the
    // slave of every record it does not mention, but not of snapshots.
    crate::util::write_tree(&e.path("m.tree"), &[("c", "3")]);
    std::fs::remove_file(e.path("m.tree/a")).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), e.path("m").as_os_str()]));
    let o = write(&e, "s", &full_stream(&e, "m"));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(snapshot_records(&e, "s"), [(format!("key={tid:016x}"), format!("{tid:016x}:0000000000000000"))]);
    // The pass did sweep: the file the import removed is gone from the slave.
    ok(&e.run(["export", "s", "s.tree"]));
    let o = e.sh("cd s.tree && find . -type f | sort");
    assert_eq!(stdout(&o), "./c\n./d/b\n");
}
