//! Store tests: mirror_read / mirror_write against each other, as the kernel's invariants require.

use super::master::MasterTxn;
use super::*;
use crate::ioctl::MirrorRw;
use crate::mrecord::{self, Record, SERIALBUF_SIZE};

pub(crate) fn new_pfsd(slave: bool, shared: [u8; 16]) -> PseudofsData {
    PseudofsData {
        sync_beg_tid: 1,
        sync_end_tid: 1,
        shared_uuid: shared,
        unique_uuid: *uuid::Uuid::new_v4().as_bytes(),
        mirror_flags: if slave { PFSD_SLAVE } else { 0 },
        ..Default::default()
    }
}

fn pair(dir: &Path) -> (Store, Store) {
    let shared = *uuid::Uuid::new_v4().as_bytes();
    let m = Store::create(&dir.join("master"), &new_pfsd(false, shared), 3).unwrap();
    let s = Store::create(&dir.join("slave"), &new_pfsd(true, shared), 7).unwrap();
    (m, s)
}

/// Reads `(beg, end]` from `src` with a buffer of `bufsize` bytes.
fn read_all(src: &Store, tid_beg: u64, tid_end: u64, bufsize: usize) -> Vec<u8> {
    let mut m = MirrorRw::for_read(tid_beg, tid_end);
    let mut buf = vec![0u8; bufsize];
    let mut out = Vec::new();
    loop {
        let n = src.mirror_read(&mut m, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        m.key_beg = m.key_cur;
        if n == 0 {
            break;
        }
    }
    out
}

/// Applies `stream` to `dst` in chunks of about `chunk` bytes, then moves its sync_end_tid.
fn apply_all(dst: &mut Store, stream: &[u8], tid_beg: u64, tid_end: u64, chunk: usize) {
    let mut w = MirrorRw::for_write(tid_beg, tid_end);
    let mut off = 0;
    while off < stream.len() {
        let mut end = off;
        while end < stream.len() && (end == off || end - off < chunk) {
            let (_, n) = mrecord::decode(&stream[end..]).unwrap();
            end += n;
        }
        dst.mirror_write(&mut w, &stream[off..end]).unwrap();
        off = end;
    }
    let mut p = dst.get_pseudofs().unwrap();
    p.sync_end_tid = tid_end;
    dst.set_pseudofs(&p).unwrap();
}

fn visible(s: &Store, asof: u64) -> Vec<(BaseElmKey, Vec<u8>)> {
    let mut v = Vec::new();
    s.for_each_as_of(asof, |l, d| {
        let b = &l.base;
        v.push(((b.localization & 0xffff, b.obj_id, b.rec_type, b.key, b.create_tid, b.obj_type), d.to_vec()));
        Ok(())
    })
    .unwrap();
    v
}

type BaseElmKey = (u32, i64, u16, i64, u64, u8);

fn mirror(m: &Store, s: &mut Store, bufsize: usize, chunk: usize) -> u64 {
    let beg = s.get_pseudofs().unwrap().sync_end_tid + 1;
    let src = m.get_pseudofs().unwrap();
    let stream = read_all(m, beg, src.sync_end_tid, bufsize);
    apply_all(s, &stream, src.sync_beg_tid, src.sync_end_tid, chunk);
    src.sync_end_tid
}

#[test]
fn full_then_incremental_mirror_matches_at_every_tid() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut tids = Vec::new();
    let mut t = MasterTxn::begin(&m).unwrap();
    for obj in 0..50 {
        t.create(1, 0x1000 + obj, 1, 0, 2, &[obj as u8; 128]).unwrap();
        t.create(2, 0x1000 + obj, 0x10, 16384, 2, &vec![obj as u8; 100 + obj as usize]).unwrap();
    }
    tids.push(t.commit().unwrap());
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    assert_eq!(visible(&s, tids[0]), visible(&m, tids[0]));

    // Delete one object, change another, add a third.
    let mut t = MasterTxn::begin(&m).unwrap();
    for (k, _, _) in t.live_records_of(2, 0x1005).unwrap() {
        t.delete(&k).unwrap();
    }
    let (k, _, _) = t.live_records_of(2, 0x1007).unwrap().remove(0);
    t.delete(&k).unwrap();
    t.create(2, 0x1007, 0x10, 16384, 2, b"new").unwrap();
    t.create(1, 0x2000, 1, 0, 1, b"dir").unwrap();
    tids.push(t.commit().unwrap());

    let before = read_all(&m, tids[0] + 1, tids[1], SERIALBUF_SIZE);
    let recs: Vec<_> = mrecord::records(&before).map(Result::unwrap).collect();
    assert!(matches!(recs[0], Record::Skip { .. }), "incremental starts with a SKIP: {:?}", recs[0]);
    assert_eq!(recs.iter().filter(|r| !matches!(r, Record::Skip { .. })).count(), 4);

    // A tiny buffer and one-record chunks must give the same result.
    mirror(&m, &mut s, 200, 1);
    for &t in &tids {
        assert_eq!(visible(&s, t), visible(&m, t), "as of {t:x}");
    }
    assert_eq!(s.get_pseudofs().unwrap().sync_end_tid, tids[1]);
}

#[test]
fn index_and_walk_scans_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    let mut tids = vec![];
    for round in 0..3u8 {
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in 0..3000 {
            if obj % 7 == round as i64 {
                t.create(2, 0x1000 + obj, 0x10, round as i64 * 16384 + 16384, 2, &[round; 10]).unwrap();
            }
        }
        tids.push(t.commit().unwrap());
    }
    // The last round changed ~430 of ~1300 records: the index is used when
    // the limit allows, the walk otherwise; both must produce the same bytes.
    let by_index = read_all(&m, tids[1] + 1, tids[2], 4096);
    *m.scan_cache.lock().unwrap() = Some(scan::ChangeCache::forced_walk(tids[1] + 1, tids[2], &m));
    let mut mm = MirrorRw::for_read(tids[1] + 1, tids[2]);
    let mut buf = vec![0u8; 1 << 20];
    let n = m.mirror_read(&mut mm, &mut buf).unwrap();
    let walked: Vec<_> = mrecord::records(&buf[..n]).map(Result::unwrap).collect();
    let indexed: Vec<_> = mrecord::records(&by_index).map(Result::unwrap).collect();
    assert_eq!(walked.len(), indexed.len());
    for (i, (a, b)) in walked.iter().zip(&indexed).enumerate() {
        assert_eq!(a, b, "record {i}");
    }
}

#[test]
fn slave_refuses_out_of_order_and_out_of_range_records() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    t.create(1, 0x501, 1, 0, 2, b"b").unwrap();
    let tid = t.commit().unwrap();
    let stream = read_all(&m, 1, tid, SERIALBUF_SIZE);
    let recs: Vec<_> = mrecord::records(&stream).map(Result::unwrap).collect();
    let mut swapped = Vec::new();
    recs[1].encode_to_vec(&mut swapped);
    recs[0].encode_to_vec(&mut swapped);
    let mut w = MirrorRw::for_write(1, tid);
    let e = s.mirror_write(&mut w, &swapped).unwrap_err().to_string();
    assert!(e.contains("out of order"), "{e}");
    assert_eq!(s.record_count().unwrap(), 0, "nothing applied");
    let mut w = MirrorRw::for_write(1, tid - 1);
    let e = s.mirror_write(&mut w, &stream).unwrap_err().to_string();
    assert!(e.contains("outside the announced TID range"), "{e}");
    assert_eq!(w.flags & crate::ioctl::HEAD_ERROR, crate::ioctl::HEAD_ERROR);
}

#[test]
fn upgrade_rolls_back_a_partial_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    let t1 = t.commit().unwrap();
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    let mut t = MasterTxn::begin(&m).unwrap();
    let (k, _, _) = t.live_records_of(1, 0x500).unwrap().remove(0);
    t.delete(&k).unwrap();
    t.create(1, 0x501, 1, 0, 2, b"b").unwrap();
    let t2 = t.commit().unwrap();
    // Apply the second cycle without moving sync_end_tid (a lost link).
    let stream = read_all(&m, t1 + 1, t2, SERIALBUF_SIZE);
    let mut w = MirrorRw::for_write(1, t2);
    s.mirror_write(&mut w, &stream).unwrap();
    assert_eq!(s.record_count().unwrap(), 2);
    s.upgrade().unwrap();
    assert!(!s.get_pseudofs().unwrap().is_slave());
    assert_eq!(visible(&s, u64::MAX - 1), visible(&m, t1));
    assert_eq!(s.record_count().unwrap(), 1);
}

#[test]
fn second_writer_is_told_the_pfs_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    drop(m);
    let _w = Store::open(&dir.path().join("master"), Access::Write).unwrap();
    let f = std::fs::File::open(dir.path().join("master")).unwrap();
    let e = lock_writer(&dir.path().join("master"), &f, Duration::from_millis(100)).unwrap_err().to_string();
    assert!(e.contains("PFS is busy"), "{e}");
    assert!(Store::open(&dir.path().join("master"), Access::Read).is_ok());
}

#[test]
fn a_killed_multi_commit_import_is_rolled_back_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    let t1 = t.commit().unwrap();
    // An import that checkpoints (70 MiB) and then dies before its final commit.
    let mut t = MasterTxn::begin(&m).unwrap();
    let (k, _, _) = t.live_records_of(1, 0x500).unwrap().remove(0);
    t.delete(&k).unwrap();
    for i in 0..1100 {
        t.create(2, 0x600, 0x10, (i + 1) * 65536, 2, &vec![7u8; 65536]).unwrap();
    }
    drop(t);
    assert_eq!(m.get_pseudofs().unwrap().sync_end_tid, t1, "the partial import is invisible");
    assert!(m.record_count().unwrap() > 1, "some of it was committed");
    assert_eq!(visible(&m, t1).len(), 1, "the view as of the PFS's TID is untouched");
    let t = MasterTxn::begin(&m).unwrap();
    assert!(t.tid() > t1);
    drop(t);
    let t = MasterTxn::begin(&m).unwrap();
    t.commit().unwrap();
    assert_eq!(m.record_count().unwrap(), 1, "leftovers removed");
    assert_eq!(visible(&m, u64::MAX - 1), visible(&m, t1));
}
