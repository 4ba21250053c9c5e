//! Snapshots of a store PFS: HAMMER's snapshot records, kept among the PFS's own records as ADD/DEL/GET_SNAPSHOT keep them.
//!
//! A snapshot of TID `t` is the record `(INODE, obj_id 1, SNAPSHOT, key t)`
//! whose data is a `hammer_snapshot_data` (`crate::hammerfs::SnapshotData`),
//! exactly where `hammer_ioc_add_snapshot()` puts it. So snapshots travel in
//! mirror streams both ways, with stock `hammer` too: a slave receives its
//! master's. As in the kernel:
//!
//! * adding creates the records at a new TID of their own on a master (so a
//!   stream sends them at once); a TID that already has a snapshot is
//!   refused, never given a new note;
//! * deleting destroys the record outright (`HAMMER_DELETE_DESTROY`): no
//!   new TID, nothing for mirroring to propagate;
//! * a slave may add and delete its own. Its records take the slave's
//!   `sync_end_tid` as create_tid (it has no TIDs of its own), which an
//!   upgrade's rollback keeps, and mirror-write never sweeps SNAPSHOT
//!   records away (`apply.rs`): a slave keeps what it received and what it
//!   added, whatever the master later deletes.

use std::ops::Bound;

use heed::RoTxn;

use super::keys::{self, Key};
use super::master::{DATA_ZONE, MasterTxn};
use super::{Store, now_secs};
use crate::hammerfs::{HAMMER_RECTYPE_SNAPSHOT, SnapshotData, leaf_data_crc, snapshot_record_key};
use crate::ioctl::{MAX_SNAPSHOTS, Pfs, PfsError, Result};
use crate::mrecord::{BTYPE_RECORD, BaseElm, LeafElm, doalign};

/// The B-tree element of the snapshot of `tid` created at `create_tid`.
fn base(tid: u64, create_tid: u64) -> BaseElm {
    let (localization, obj_id, rec_type, key) = snapshot_record_key(tid);
    BaseElm { obj_id, key, create_tid, delete_tid: 0, rec_type, obj_type: 0, btype: BTYPE_RECORD, localization }
}

/// The store keys of every snapshot record (all TIDs, all versions).
fn all_keys() -> (Key, Key) {
    let lo = BaseElm { key: i64::MIN, ..base(0, 1) };
    let hi = BaseElm { key: i64::MAX, ..base(0, u64::MAX) };
    (keys::encode_key(&lo), keys::encode_key(&hi))
}

/// The live snapshot records of `tid` (usually one; two when a slave made
/// its own of a TID its master's also has) with their create_tids.
fn live(store: &Store, txn: &RoTxn<'_>, tid: u64) -> Result<Vec<(Key, u64)>> {
    let (lo, hi) = (keys::encode_key(&base(tid, 1)), keys::encode_key(&base(tid, u64::MAX)));
    let mut out = Vec::new();
    let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
    for item in store.db.recs.range(txn, &range).map_err(|e| store.err("snapshot", e))? {
        let (k, v) = item.map_err(|e| store.err("snapshot", e))?;
        let (leaf, _) = keys::decode_leaf(k, v, store.pfs_id).map_err(|d| store.damaged(k, d))?;
        if leaf.base.delete_tid == 0 {
            out.push((k.try_into().map_err(|_| store.corrupt("bad record key"))?, leaf.base.create_tid));
        }
    }
    Ok(out)
}

/// ADD_SNAPSHOT; see the module documentation.
pub fn add(store: &Store, snaps: &[SnapshotData]) -> Result<()> {
    let mut t = match MasterTxn::begin(store) {
        Ok(t) => t,
        Err(PfsError::SlaveReadOnly { .. }) => return add_on_slave(store, snaps),
        Err(e) => return Err(e),
    };
    let mut refused = None;
    for s in snaps {
        let (localization, obj_id, rec_type, key) = snapshot_record_key(s.tid);
        if t.live_record(localization, obj_id, rec_type, key)?.is_some() {
            refused = Some(s.tid);
            break;
        }
        t.create(localization, obj_id, rec_type, key, 0, &s.encode())?;
    }
    t.commit()?;
    refused.map_or(Ok(()), |tid| Err(PfsError::SnapshotExists { path: Pfs::path(store).to_path_buf(), tid }))
}

/// ADD_SNAPSHOT on a slave: records at its `sync_end_tid`.
fn add_on_slave(store: &Store, snaps: &[SnapshotData]) -> Result<()> {
    let mut txn = store.write_txn()?;
    let create_tid = store.stored_pfsd(&txn)?.sync_end_tid.max(1);
    let mut data_off = store.meta_u64(&txn, "data_off")?.unwrap_or(DATA_ZONE);
    let mut refused = None;
    for s in snaps {
        if !live(store, &txn, s.tid)?.is_empty() {
            refused = Some(s.tid);
            break;
        }
        let data = s.encode();
        let leaf = LeafElm {
            base: base(s.tid, create_tid),
            create_ts: now_secs(),
            delete_ts: 0,
            data_offset: data_off,
            data_len: data.len() as i32,
            data_crc: leaf_data_crc(HAMMER_RECTYPE_SNAPSHOT, &data),
        };
        let k = keys::encode_key(&leaf.base);
        if store.db.recs.get(&txn, &k[..]).map_err(|e| store.err("snapshot", e))?.is_some() {
            // A deleted version of the master's, created at the very same TID.
            return Err(PfsError::invalid(
                Pfs::path(store),
                "snapshot",
                format!("a deleted snapshot record of TID 0x{:016x} from the master is in the way", s.tid),
            ));
        }
        data_off += doalign(data.len()) as u64;
        store.put_record(&mut txn, &k[..], &leaf, &data).map_err(|e| store.err("snapshot", e))?;
        store.index_put(&mut txn, create_tid, &k).map_err(|e| store.err("snapshot", e))?;
    }
    store.put_meta(&mut txn, "data_off", &data_off.to_le_bytes())?;
    store.commit(txn, "snapshot")?;
    refused.map_or(Ok(()), |tid| Err(PfsError::SnapshotExists { path: Pfs::path(store).to_path_buf(), tid }))
}

/// DEL_SNAPSHOT; see the module documentation.
pub fn delete(store: &Store, tids: &[u64]) -> Result<()> {
    let mut txn = store.write_txn()?;
    let mut refused = None;
    for &tid in tids {
        let doomed = live(store, &txn, tid)?;
        if doomed.is_empty() {
            refused = Some(tid);
            break;
        }
        for (k, create_tid) in doomed {
            store.erase_record(&mut txn, &k[..]).map_err(|e| store.err("snapshot", e))?;
            store.index_del(&mut txn, create_tid, &k).map_err(|e| store.err("snapshot", e))?;
        }
    }
    store.commit(txn, "snapshot")?;
    refused.map_or(Ok(()), |tid| Err(PfsError::NoSuchSnapshot { path: Pfs::path(store).to_path_buf(), tid }))
}

/// GET_SNAPSHOT: the live snapshots, one per TID (the oldest record's when
/// there are two), in TID order.
pub fn list(store: &Store) -> Result<Vec<SnapshotData>> {
    let txn = store.read_txn()?;
    let (lo, hi) = all_keys();
    let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
    let mut out = Vec::new();
    for item in store.db.recs.range(&txn, &range).map_err(|e| store.err("snapshot", e))? {
        let (k, v) = item.map_err(|e| store.err("snapshot", e))?;
        let (leaf, _) = keys::decode_leaf(k, v, store.pfs_id).map_err(|d| store.damaged(k, d))?;
        if leaf.base.delete_tid != 0 {
            continue;
        }
        let data = store.record_data(&txn, k, &leaf, v)?;
        let tid = leaf.base.key as u64;
        let mut s = SnapshotData::decode(&data).ok_or_else(|| {
            store.corrupt(format!("the snapshot record of TID 0x{tid:016x} holds {} bytes, not 128", data.len()))
        })?;
        // The key is the TID; the kernel trusts it over the data too.
        s.tid = tid;
        out.push(s);
        if out.len() > MAX_SNAPSHOTS {
            return Err(PfsError::invalid(
                Pfs::path(store),
                "snapshot",
                format!("the PFS has more than {MAX_SNAPSHOTS} snapshots"),
            ));
        }
    }
    out.sort_by_key(|s| s.tid);
    out.dedup_by_key(|s| s.tid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hammerfs::{HAMMER_LOCALIZE_INODE, HAMMER_OBJID_ROOT, HAMMER_RECTYPE_INODE};
    use crate::ioctl::MirrorRw;
    use crate::mrecord::SERIALBUF_SIZE;
    use crate::store::Access;
    use crate::store::tests::new_pfsd;

    fn snap(tid: u64, note: &str) -> SnapshotData {
        SnapshotData::new(tid, 1_700_000_000_000_000, note.as_bytes())
    }

    fn listed(s: &Store) -> Vec<(u64, String)> {
        s.snapshots().unwrap().iter().map(|s| (s.tid, s.label_str())).collect()
    }

    /// A master with a root and one object, committed at one TID.
    fn master(dir: &std::path::Path, shared: [u8; 16]) -> (Store, u64) {
        let m = Store::create(&dir.join("master"), &new_pfsd(false, shared), 3).unwrap();
        let mut t = MasterTxn::begin(&m).unwrap();
        t.create(HAMMER_LOCALIZE_INODE, HAMMER_OBJID_ROOT, HAMMER_RECTYPE_INODE, 0, 1, &[1; 128]).unwrap();
        t.create(HAMMER_LOCALIZE_INODE, 0x1000, HAMMER_RECTYPE_INODE, 0, 2, &[2; 128]).unwrap();
        let tid = t.commit().unwrap();
        (m, tid)
    }

    /// A mirror pass from `beg` (1: everything) up to the master's sync_end_tid.
    fn mirror(m: &Store, s: &mut Store, beg: u64) {
        let src = m.get_pseudofs().unwrap();
        let mut r = MirrorRw::for_read(beg, src.sync_end_tid);
        let mut w = MirrorRw::for_write(src.sync_beg_tid, src.sync_end_tid);
        let mut buf = vec![0u8; SERIALBUF_SIZE];
        loop {
            let n = m.mirror_read(&mut r, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.mirror_write(&mut w, &buf[..n]).unwrap();
            r.key_beg = r.key_cur;
        }
        let mut p = s.get_pseudofs().unwrap();
        p.sync_end_tid = src.sync_end_tid;
        s.set_pseudofs(&p).unwrap();
    }

    #[test]
    fn a_master_adds_at_a_new_tid_lists_in_tid_order_and_deletes_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, t1) = master(dir.path(), [7; 16]);
        let records = m.record_count().unwrap();
        let high = 1 << 63 | 5;
        m.add_snapshots(&[snap(t1, "daily"), snap(high, ""), snap(3, "old")]).unwrap();
        assert_eq!(listed(&m), [(3, "old".into()), (t1, "daily".into()), (high, String::new())]);
        let t2 = m.get_pseudofs().unwrap().sync_end_tid;
        assert!(t2 > t1, "the records have a TID of their own, for a stream to send");

        // A TID that has a snapshot keeps its note; the ones before it in the batch are added.
        let err = m.add_snapshots(&[snap(4, "four"), snap(t1, "other note"), snap(9, "nine")]).unwrap_err();
        assert!(matches!(err, PfsError::SnapshotExists { tid, .. } if tid == t1), "{err:?}");
        assert_eq!(err.to_string(), format!("{}: there is already a snapshot at TID 0x{t1:016x}", m.path().display()));
        assert_eq!(listed(&m).iter().map(|s| s.0).collect::<Vec<_>>(), [3, 4, t1, high]);
        assert_eq!(listed(&m)[2].1, "daily");
        // The same TID twice in one batch: the second is refused too.
        let err = m.add_snapshots(&[snap(11, "a"), snap(11, "b")]).unwrap_err();
        assert!(matches!(err, PfsError::SnapshotExists { tid: 11, .. }), "{err:?}");
        assert_eq!(listed(&m).iter().find(|s| s.0 == 11).unwrap().1, "a");

        // Deleting stops at the first TID without a snapshot; the ones before go.
        let last = m.get_pseudofs().unwrap().sync_end_tid;
        let err = m.delete_snapshots(&[3, 8, 4]).unwrap_err();
        assert!(matches!(err, PfsError::NoSuchSnapshot { tid: 8, .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("{}: no snapshot at TID 0x0000000000000008", m.path().display()));
        m.delete_snapshots(&[4, 11, t1, high]).unwrap();
        assert!(listed(&m).is_empty());
        assert_eq!(m.record_count().unwrap(), records, "destroyed, not marked deleted");
        assert_eq!(m.get_pseudofs().unwrap().sync_end_tid, last, "deleting takes no TID");
        assert!(matches!(m.delete_snapshots(&[t1]), Err(PfsError::NoSuchSnapshot { .. })));
    }

    #[test]
    fn snapshots_live_in_the_store_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, t1) = master(dir.path(), [7; 16]);
        m.add_snapshots(&[snap(t1, "kept")]).unwrap();
        drop(m);
        let r = Store::open(&dir.path().join("master"), Access::Read).unwrap();
        assert_eq!(listed(&r), [(t1, "kept".into())]);
        let mut r = r;
        let err = r.add_snapshots(&[snap(1, "x")]).unwrap_err();
        assert!(err.to_string().contains("store opened read-only"), "{err}");
        let err = r.delete_snapshots(&[t1]).unwrap_err();
        assert!(err.to_string().contains("store opened read-only"), "{err}");
    }

    #[test]
    fn a_slave_receives_its_masters_snapshots_and_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, t1) = master(dir.path(), [7; 16]);
        m.add_snapshots(&[snap(t1, "from the master")]).unwrap();
        let mut s = Store::create(&dir.path().join("slave"), &new_pfsd(true, [7; 16]), 9).unwrap();
        mirror(&m, &mut s, 1);
        assert_eq!(listed(&s), [(t1, "from the master".into())]);

        // The slave's own snapshot takes no TID and is not the master's.
        let synced = s.get_pseudofs().unwrap().sync_end_tid;
        s.add_snapshots(&[snap(t1 - 1, "the slave's own")]).unwrap();
        assert_eq!(s.get_pseudofs().unwrap().sync_end_tid, synced);
        assert!(matches!(s.add_snapshots(&[snap(t1, "again")]), Err(PfsError::SnapshotExists { .. })));
        assert_eq!(listed(&m), [(t1, "from the master".into())]);

        // The master deletes its snapshot and changes; a full pass sweeps
        // everything the master does not have, but not the slave's snapshots.
        m.delete_snapshots(&[t1]).unwrap();
        let mut t = MasterTxn::begin(&m).unwrap();
        t.create(HAMMER_LOCALIZE_INODE, 0x2000, HAMMER_RECTYPE_INODE, 0, 2, &[3; 128]).unwrap();
        t.commit().unwrap();
        mirror(&m, &mut s, 1);
        assert_eq!(listed(&s), [(t1 - 1, "the slave's own".into()), (t1, "from the master".into())]);

        // Upgrading (rolling back to sync_end_tid) keeps them, and the slave deletes its own.
        s.upgrade().unwrap();
        assert_eq!(listed(&s).len(), 2);
        s.delete_snapshots(&[t1 - 1, t1]).unwrap();
        assert!(listed(&s).is_empty());
    }

    #[test]
    fn a_damaged_snapshot_record_is_reported_by_tid() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = master(dir.path(), [7; 16]);
        let mut t = MasterTxn::begin(&m).unwrap();
        let (lo, obj, rt, key) = snapshot_record_key(0x55);
        t.create(lo, obj, rt, key, 0, b"short").unwrap();
        t.commit().unwrap();
        let err = m.snapshots().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: PFS store is corrupt: the snapshot record of TID 0x0000000000000055 holds 5 bytes, not 128",
                m.path().display()
            )
        );
    }
}
