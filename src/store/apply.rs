//! MIRROR_WRITE for the store (the kernel's rules of `hammer_mirror.c`), and the slave-to-master rollback.
//!
//! The incoming REC/PASS/SKIP records walk the target in key order. Target
//! records between two mentioned keys that the source no longer has are
//! marked deleted at `tid_end` (never erased); a SKIP leaves its range alone;
//! a REC creates what is missing (only if `create_tid >= tid_beg`, the
//! source's `sync_beg_tid`), and a REC or PASS carrying a delete_tid marks the
//! target copy deleted. These are the intended semantics of store.md §3.3-3.4,
//! without the B-tree-shape quirks Q1/Q2. One call is one LMDB transaction:
//! a record that fails a check aborts the whole call and leaves the store as
//! it was. Stricter than the kernel: records must arrive in strictly
//! increasing key order and inside the announced TID range, REC_NODATA is
//! refused, and REC_BADCRC records are counted and reported (not applied).

use std::ops::Bound;

use heed::RwTxn;

use super::keys::{self, Key, VALUE_HEAD, ValueHead};
use super::master::DATA_ZONE;
use super::{Store, now_secs};
use crate::hammerfs::{
    HAMMER_LOCALIZE_MASK as LOCALIZE_MASK, HAMMER_RECTYPE_CONFIG as RECTYPE_CONFIG,
    HAMMER_RECTYPE_DIRENTRY as RECTYPE_DIRENTRY, HAMMER_RECTYPE_SNAPSHOT as RECTYPE_SNAPSHOT, leaf_data_crc,
};
use crate::ioctl::Pfs;
use crate::ioctl::{HEAD_ERROR, MirrorRw, PfsError, Result};
use crate::mrecord::{BaseElm, LeafElm, Record, doalign, leaf_data_crc_ok, rtype};

/// `cursor_state`: the sweep position excludes `key_cur` (a record was handled there).
const AFTER_KEY: u32 = 1;
/// EINVAL, reported in `MirrorRw::error` like the kernel's HEAD_ERROR.
const EINVAL: i32 = 22;

/// State of one MIRROR_WRITE call.
struct Apply<'s, 't> {
    store: &'s Store,
    txn: RwTxn<'t>,
    tid_beg: u64,
    tid_end: u64,
    /// The sweep position: records after it (or at it, when inclusive) and
    /// before the next mentioned key are candidates for deletion.
    pos: Key,
    pos_inclusive: bool,
    key_cur: BaseElm,
    now: u32,
    max_tid: u64,
    data_off: u64,
}

impl Apply<'_, '_> {
    fn err(&self, e: heed::Error) -> PfsError {
        self.store.err("mirror-write", e)
    }

    /// The kernel's `hammer_mirror_delete_to`: marks deleted, at tid_end, the
    /// live target records from the sweep position up to `target` (exclusive)
    /// that were created before tid_end.
    fn delete_to(&mut self, target: &Key) -> Result<()> {
        let lo = if self.pos_inclusive { Bound::Included(&self.pos[..]) } else { Bound::Excluded(&self.pos[..]) };
        let range = (lo, Bound::Excluded(&target[..]));
        let mut doomed: Vec<(Key, Vec<u8>)> = Vec::new();
        for item in self.store.db.recs.range(&self.txn, &range).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key: Key = k.try_into().map_err(|_| self.store.corrupt("bad record key"))?;
            let h = ValueHead::decode(v).ok_or_else(|| self.store.corrupt("bad record value"))?;
            let base = keys::decode_key(&key, 0);
            // A slave keeps its snapshots, its own and those its master deleted (snapshots.rs).
            let kept = base.rec_type == RECTYPE_CONFIG || base.rec_type == RECTYPE_SNAPSHOT;
            if kept || h.delete_tid != 0 || base.create_tid >= self.tid_end {
                continue;
            }
            doomed.push((key, v.to_vec()));
        }
        for (key, mut v) in doomed {
            let mut h = ValueHead::decode(&v).expect("decoded above");
            h.delete_tid = self.tid_end;
            h.delete_ts = self.now;
            h.encode(&mut v[..VALUE_HEAD]);
            self.put_record(&key, &v)?;
            self.index(self.tid_end, &key)?;
        }
        self.max_tid = self.max_tid.max(self.tid_end);
        Ok(())
    }

    fn put_record(&mut self, key: &Key, v: &[u8]) -> Result<()> {
        self.store.db.recs.put(&mut self.txn, &key[..], v).map_err(|e| self.store.err("mirror-write", e))
    }

    fn index(&mut self, tid: u64, key: &Key) -> Result<()> {
        let t = keys::tid_key(tid, key);
        self.store.db.tids.put(&mut self.txn, &t[..], &()).map_err(|e| self.store.err("mirror-write", e))
    }

    fn unindex(&mut self, tid: u64, key: &Key) -> Result<()> {
        let t = keys::tid_key(tid, key);
        self.store.db.tids.delete(&mut self.txn, &t[..]).map(|_| ()).map_err(|e| self.store.err("mirror-write", e))
    }

    /// Refuses a record at or before the current position.
    fn check_order(&self, key: &Key, what: &str, b: &BaseElm) -> std::result::Result<(), String> {
        let ok = if self.pos_inclusive { *key >= self.pos } else { *key > self.pos };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{what} obj={:016x} key={:016x} rt={:02x} tid={:016x} is out of order (duplicate or before obj={:016x} key={:016x})",
                b.obj_id, b.key, b.rec_type, b.create_tid, self.key_cur.obj_id, self.key_cur.key
            ))
        }
    }

    fn skip(&mut self, beg: &BaseElm, end: &BaseElm) -> std::result::Result<(), Fail> {
        let kb = keys::encode_key(beg);
        let ke = keys::encode_key(end);
        self.check_order(&kb, "SKIP", beg).map_err(Fail::Invalid)?;
        if ke < kb {
            return Err(Fail::Invalid(format!(
                "SKIP ends (obj={:016x}) before it begins (obj={:016x})",
                end.obj_id, beg.obj_id
            )));
        }
        self.delete_to(&kb)?;
        self.pos = ke;
        self.pos_inclusive = true;
        self.key_cur = *end;
        Ok(())
    }

    /// A REC or PASS record: sweep up to it, then create or update it.
    fn leaf(&mut self, leaf: &LeafElm, data: Option<&[u8]>) -> std::result::Result<(), Fail> {
        let what = if data.is_some() { "REC" } else { "PASS" };
        let b = &leaf.base;
        let key = keys::encode_key(b);
        self.check_order(&key, what, b).map_err(Fail::Invalid)?;
        if b.create_tid == 0 || b.create_tid > self.tid_end {
            return Err(Fail::Invalid(format!(
                "{what} obj={:016x} key={:016x} has create_tid {:016x}, outside the announced TID range (up to {:016x})",
                b.obj_id, b.key, b.create_tid, self.tid_end
            )));
        }
        if b.delete_tid != 0 && b.delete_tid <= b.create_tid {
            return Err(Fail::Invalid(format!(
                "{what} obj={:016x} key={:016x} is deleted ({:016x}) before it was created ({:016x})",
                b.obj_id, b.key, b.delete_tid, b.create_tid
            )));
        }
        if data.is_some() && b.delete_tid > self.tid_end {
            return Err(Fail::Invalid(format!(
                "REC obj={:016x} key={:016x} has delete_tid {:016x}, outside the announced TID range (up to {:016x})",
                b.obj_id, b.key, b.delete_tid, self.tid_end
            )));
        }
        self.delete_to(&key)?;
        if b.rec_type == RECTYPE_CONFIG {
            return Ok(());
        }
        self.key_cur = *b;
        self.pos = key;
        self.pos_inclusive = false;
        let existing = self.store.db.recs.get(&self.txn, &key[..]).map_err(|e| self.err(e))?.map(<[u8]>::to_vec);
        match existing {
            Some(mut v) => {
                let mut h = ValueHead::decode(&v).ok_or_else(|| self.store.corrupt("bad record value"))?;
                if b.delete_tid != 0 && b.delete_tid != h.delete_tid {
                    if h.delete_tid != 0 {
                        self.unindex(h.delete_tid, &key)?;
                    }
                    h.delete_tid = b.delete_tid;
                    h.delete_ts = leaf.delete_ts;
                    h.encode(&mut v[..VALUE_HEAD]);
                    self.put_record(&key, &v)?;
                    self.index(b.delete_tid, &key)?;
                    self.max_tid = self.max_tid.max(b.delete_tid);
                }
            }
            None => {
                if let Some(data) = data.filter(|_| b.create_tid >= self.tid_beg) {
                    self.create(leaf, data, &key)?;
                }
            }
        }
        Ok(())
    }

    /// `hammer_create_at_cursor(UMIRROR)`: inserts a new record.
    fn create(&mut self, leaf: &LeafElm, data: &[u8], key: &Key) -> std::result::Result<(), Fail> {
        let b = &leaf.base;
        if !data.is_empty() && !leaf_data_crc_ok(leaf, data) {
            return Err(Fail::Invalid(format!("data crc mismatch on pipe: obj={:016x} key={:016x}", b.obj_id, b.key)));
        }
        let mut leaf = *leaf;
        let owned: Vec<u8>;
        let data = if b.rec_type == RECTYPE_DIRENTRY && data.len() >= 12 {
            // hammer_cursor_localize_data: the entry's localization becomes
            // the target PFS's, and the CRC follows.
            let mut d = data.to_vec();
            d[8..12].copy_from_slice(&(self.store.pfs_id << 16).to_le_bytes());
            leaf.data_crc = leaf_data_crc(b.rec_type, &d);
            owned = d;
            &owned[..]
        } else {
            data
        };
        leaf.base.localization &= LOCALIZE_MASK;
        if data.is_empty() {
            leaf.data_offset = 0;
        } else {
            leaf.data_offset = self.data_off;
            self.data_off += doalign(data.len()) as u64;
        }
        let store = self.store;
        store.put_record(&mut self.txn, key, &leaf, data).map_err(|e| store.err("mirror-write", e))?;
        // Inserting faults in B-tree pages of the map, and the kernel maps
        // the freshly written data around them too: release them as a
        // reader does, within the batch (safe mid-transaction: LMDB's dirty
        // pages are not in the map, and spilled ones read back the same).
        store.count_resident(data.len().max(64 << 10));
        self.index(b.create_tid, key)?;
        if b.delete_tid != 0 {
            self.index(b.delete_tid, key)?;
        }
        self.max_tid = self.max_tid.max(b.create_tid).max(b.delete_tid);
        Ok(())
    }
}

/// Why one record could not be applied.
enum Fail {
    Invalid(String),
    Pfs(PfsError),
}

impl From<PfsError> for Fail {
    fn from(e: PfsError) -> Self {
        Fail::Pfs(e)
    }
}

/// See the module documentation.
pub fn mirror_write(store: &mut Store, m: &mut MirrorRw, buf: &[u8]) -> Result<()> {
    let store: &Store = store;
    let path = Pfs::path(store).to_path_buf();
    let txn = store.write_txn()?;
    let pfsd = store.stored_pfsd(&txn)?;
    if !pfsd.is_slave() {
        return Err(PfsError::invalid(&path, "mirror-write", "target must be in slave mode"));
    }
    let data_off = store.meta_u64(&txn, "data_off")?.unwrap_or(DATA_ZONE);
    let max_tid = store.last_tid(&txn)?;
    let fresh = m.cursor_state & AFTER_KEY == 0;
    let mut a = Apply {
        store,
        txn,
        tid_beg: m.tid_beg,
        tid_end: m.tid_end,
        // A fresh cycle (key_cur all-zero, as userland passes it) sweeps from
        // the very first key.
        pos: if fresh && m.key_cur == BaseElm::default() { [0; keys::KEY_LEN] } else { keys::encode_key(&m.key_cur) },
        pos_inclusive: fresh,
        key_cur: m.key_cur,
        now: now_secs(),
        max_tid,
        data_off,
    };
    let mut off = 0;
    while off < buf.len() {
        let step = match crate::mrecord::decode_unverified(&buf[off..]) {
            Err(e) => Err(Fail::Invalid(e.to_string())),
            Ok((rec, n)) => {
                let r = match rec {
                    Record::Skip { beg, end } => a.skip(&beg, &end),
                    Record::Rec { rtype: t, leaf, data } if t & rtype::TYPE_MASK == rtype::REC_BADCRC => {
                        // The source could not read this record intact; the
                        // kernel drops it too. The write half reports it.
                        let _ = (leaf, data);
                        Ok(())
                    }
                    Record::Rec { rtype: t, .. } if t & rtype::NODATA != 0 => {
                        Err(Fail::Invalid("REC_NODATA record (a prescan stream without data) cannot be applied".into()))
                    }
                    Record::Rec { leaf, data, .. } => a.leaf(&leaf, Some(data)),
                    Record::Pass { leaf } => a.leaf(&leaf, None),
                    other => Err(Fail::Invalid(format!(
                        "{} record where only REC, PASS and SKIP may appear",
                        rtype::name(other.type_word())
                    ))),
                };
                r.map(|()| n)
            }
        };
        match step {
            Ok(n) => off += n,
            Err(fail) => {
                m.flags |= HEAD_ERROR;
                m.error = EINVAL;
                return Err(match fail {
                    Fail::Pfs(e) => e,
                    Fail::Invalid(detail) => {
                        PfsError::invalid(&path, "mirror-write", format!("record at batch byte {off}: {detail}"))
                    }
                });
            }
        }
    }
    let Apply { mut txn, key_cur, pos_inclusive, max_tid, data_off, .. } = a;
    store.put_meta(&mut txn, "data_off", &data_off.to_le_bytes())?;
    store.put_meta(&mut txn, "last_tid", &max_tid.to_le_bytes())?;
    store.commit(txn, "mirror-write")?;
    m.key_cur = BaseElm { localization: key_cur.localization & LOCALIZE_MASK, ..key_cur };
    m.cursor_state = if pos_inclusive { 0 } else { AFTER_KEY };
    Ok(())
}

/// Removes what a partial, uncommitted cycle or import left above `last`:
/// records created after it are destroyed, deletions after it undone
/// (`hammer_pfs_rollback` with `trunc_tid = last + 1`). Returns the highest
/// TID seen, so that TIDs are never reused, and how many records changed.
pub(crate) fn rollback_above(store: &Store, txn: &mut RwTxn<'_>, last: u64) -> Result<(u64, usize)> {
    let trunc = last + 1;
    let lo = keys::tid_key(trunc, &[0; keys::KEY_LEN]);
    let range = (Bound::Included(&lo[..]), Bound::Unbounded);
    let mut affected: Vec<Key> = Vec::new();
    for item in store.db.tids.range(txn, &range).map_err(|e| store.err("rollback", e))? {
        let (k, ()) = item.map_err(|e| store.err("rollback", e))?;
        affected.push(k[8..].try_into().map_err(|_| store.corrupt("bad TID index entry"))?);
    }
    affected.sort_unstable();
    affected.dedup();
    let mut max_tid = store.last_tid(txn)?;
    let changed = affected.len();
    for key in affected {
        let Some(v) = store.db.recs.get(txn, &key[..]).map_err(|e| store.err("rollback", e))?.map(<[u8]>::to_vec)
        else {
            continue;
        };
        let mut h = ValueHead::decode(&v).ok_or_else(|| store.corrupt("bad record value"))?;
        let create_tid = keys::decode_key(&key, 0).create_tid;
        max_tid = max_tid.max(create_tid).max(h.delete_tid);
        let unindex = |txn: &mut RwTxn<'_>, tid: u64| {
            store.db.tids.delete(txn, &keys::tid_key(tid, &key)[..]).map_err(|e| store.err("rollback", e))
        };
        if create_tid >= trunc {
            store.erase_record(txn, &key[..]).map_err(|e| store.err("rollback", e))?;
            unindex(txn, create_tid)?;
            if h.delete_tid != 0 {
                unindex(txn, h.delete_tid)?;
            }
        } else if h.delete_tid >= trunc {
            unindex(txn, h.delete_tid)?;
            h.delete_tid = 0;
            h.delete_ts = 0;
            let mut v = v;
            h.encode(&mut v[..VALUE_HEAD]);
            store.db.recs.put(txn, &key[..], &v).map_err(|e| store.err("rollback", e))?;
        }
    }
    Ok((max_tid, changed))
}

/// UPG_PSEUDOFS: a slave becomes a master after rolling back to its
/// `sync_end_tid` (records created later are removed, deletions after it
/// undone), as `hammer_pfs_rollback` does.
pub fn rollback_and_upgrade(store: &mut Store) -> Result<()> {
    let store: &Store = store;
    let mut txn = store.write_txn()?;
    let mut pfsd = store.stored_pfsd(&txn)?;
    if !pfsd.is_slave() {
        return Err(PfsError::invalid(Pfs::path(store), "pfs-upgrade", "PFS is already a master"));
    }
    let (max_tid, _) = rollback_above(store, &mut txn, pfsd.sync_end_tid)?;
    pfsd.mirror_flags &= !crate::mrecord::PFSD_SLAVE;
    store.put_meta(&mut txn, "pfsd", &pfsd.to_bytes())?;
    store.put_meta(&mut txn, "last_tid", &max_tid.max(pfsd.sync_end_tid).to_le_bytes())?;
    store.commit(txn, "pfs-upgrade")
}
