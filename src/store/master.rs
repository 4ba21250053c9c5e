//! Changing a master store: one transaction = one new TID, records created or marked deleted, never erased.
//!
//! `import` and the tests build on this. A slave refuses it: slaves change
//! only through mirror-write. A large transaction is written in several LMDB
//! commits of about 32 MiB of changes so that memory stays bounded; readers never see
//! the partial state because every view is bounded by the PFS's last TID
//! (`sync_end_tid`), which moves only in the final commit. What a killed
//! import leaves above the last TID is rolled back by the next one.

use std::ops::Bound;

use heed::RwTxn;

use super::keys::{self, Key};
use super::{Store, now_secs};
use crate::hammerfs::{HAMMER_LOCALIZE_MASK, leaf_data_crc};
use crate::ioctl::{Pfs, PfsError, Result};
use crate::mrecord::{BTYPE_RECORD, BaseElm, LeafElm, doalign};

/// Where synthetic data offsets start (HAMMER's large-data zone, 10).
pub(crate) const DATA_ZONE: u64 = 0xa000_0000_0000_0000;

/// Bytes changed (new data, and a page per record marked deleted) before
/// an intermediate LMDB commit: LMDB keeps a transaction's dirty pages in
/// memory until it commits.
const CHECKPOINT: usize = 32 << 20;

/// An open master transaction; nothing is visible until [`MasterTxn::commit`].
pub struct MasterTxn<'s> {
    store: &'s Store,
    txn: Option<RwTxn<'s>>,
    /// Bytes written since the last LMDB commit.
    pending: usize,
    tid: u64,
    now: u32,
    data_off: u64,
    next_obj: i64,
    changed: u64,
}

impl<'s> MasterTxn<'s> {
    /// Starts a transaction on a master opened for writing.
    pub fn begin(store: &'s Store) -> Result<Self> {
        let last = {
            let txn = store.read_txn()?;
            if store.stored_pfsd(&txn)?.is_slave() {
                return Err(PfsError::SlaveReadOnly { path: Pfs::path(store).to_path_buf() });
            }
            store.last_tid(&txn)?
        };
        // Leftovers of an import that was killed between its commits (in
        // commits of their own: memory stays bounded whatever their size).
        let (seen, _) = super::rollback::rollback_above(store, last)?;
        let txn = store.write_txn()?;
        let tid = store.next_tid(&txn)?.max(seen + 1);
        let data_off = store.meta_u64(&txn, "data_off")?.unwrap_or(DATA_ZONE);
        // Object ids come from the TID space, as in HAMMER, so they are never reused.
        let next_obj = store.meta_u64(&txn, "next_obj")?.map_or(0x100, |v| v as i64);
        Ok(MasterTxn { store, txn: Some(txn), pending: 0, tid, now: now_secs(), data_off, next_obj, changed: 0 })
    }

    /// The TID every change of this transaction carries.
    pub fn tid(&self) -> u64 {
        self.tid
    }

    /// Read access to the store as of before this transaction.
    pub fn rtxn(&self) -> &heed::RoTxn<'s> {
        self.txn.as_ref().expect("open")
    }

    fn wtxn(&mut self) -> &mut RwTxn<'s> {
        self.txn.as_mut().expect("open")
    }

    /// Commits what was written so far (invisible: the last TID does not
    /// move) and continues in a new LMDB transaction.
    fn checkpoint(&mut self) -> Result<()> {
        let store = self.store;
        let mut txn = self.txn.take().expect("open");
        store.put_meta(&mut txn, "data_off", &self.data_off.to_le_bytes())?;
        store.put_meta(&mut txn, "next_obj", &(self.next_obj as u64).to_le_bytes())?;
        store.commit(txn, "write")?;
        self.txn = Some(store.write_txn()?);
        self.pending = 0;
        Ok(())
    }

    /// A new object id, never used before in this PFS.
    pub fn alloc_obj_id(&mut self) -> i64 {
        self.next_obj = self.next_obj.max(0x100) + 1;
        self.next_obj
    }

    /// The PFS id of the store.
    pub fn pfs_id(&self) -> u32 {
        self.store.pfs_id
    }

    /// Records changed so far.
    pub fn changes(&self) -> u64 {
        self.changed
    }

    fn err(&self, e: heed::Error) -> PfsError {
        self.store.err("write", e)
    }

    /// Creates a record `(localization, obj_id, rec_type, key)` with `data`
    /// at this transaction's TID; data CRC, offsets and timestamps are filled in.
    pub fn create(
        &mut self,
        localization: u32,
        obj_id: i64,
        rec_type: u16,
        key: i64,
        obj_type: u8,
        data: &[u8],
    ) -> Result<()> {
        let leaf = LeafElm {
            base: BaseElm {
                obj_id,
                key,
                create_tid: self.tid,
                delete_tid: 0,
                rec_type,
                obj_type,
                btype: BTYPE_RECORD,
                localization: localization & HAMMER_LOCALIZE_MASK,
            },
            create_ts: self.now,
            delete_ts: 0,
            data_offset: if data.is_empty() { 0 } else { self.data_off },
            data_len: data.len() as i32,
            data_crc: leaf_data_crc(rec_type, data),
        };
        self.data_off += doalign(data.len()) as u64;
        let k = keys::encode_key(&leaf.base);
        let (store, tid) = (self.store, self.tid);
        store.put_record(self.wtxn(), &k[..], &leaf, data).map_err(|e| store.err("write", e))?;
        store.index_put(self.wtxn(), tid, &k).map_err(|e| store.err("write", e))?;
        // Inserting faults in B-tree pages of the map (and the pages around
        // them): released like a reader's, so import's resident set stays bounded.
        store.count_resident(data.len().max(64 << 10));
        self.changed += 1;
        self.pending += data.len() + 128;
        if self.pending >= CHECKPOINT {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Marks a live record deleted at this transaction's TID.
    pub fn delete(&mut self, key: &Key) -> Result<bool> {
        let Some(mut v) = self.store.db.recs.get(self.rtxn(), &key[..]).map_err(|e| self.err(e))?.map(<[u8]>::to_vec)
        else {
            return Ok(false);
        };
        self.store.count_resident(v.len() + 4096);
        let mut h = keys::check_value(&key[..], &v).map_err(|d| self.store.damaged(&key[..], d))?;
        if h.delete_tid != 0 {
            return Ok(false);
        }
        h.delete_tid = self.tid;
        h.delete_ts = self.now;
        keys::set_head(&key[..], &mut v, &h);
        let (store, tid) = (self.store, self.tid);
        store.db.recs.put(self.wtxn(), &key[..], &v).map_err(|e| store.err("write", e))?;
        store.index_put(self.wtxn(), tid, key).map_err(|e| store.err("write", e))?;
        self.changed += 1;
        // A deletion rewrites a record in place: count the page it dirties.
        self.pending += 4096;
        if self.pending >= CHECKPOINT {
            self.checkpoint()?;
        }
        Ok(true)
    }

    /// Every live record of object `obj_id` (all rec types), in key order.
    pub fn live_records_of(&self, localization: u32, obj_id: i64) -> Result<Vec<(Key, LeafElm, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(localization, obj_id, (0, u16::MAX), (i64::MIN, i64::MAX), true, |k, leaf, data| {
            if leaf.base.delete_tid == 0 {
                out.push((*k, *leaf, data.to_vec()));
            }
            true
        })?;
        Ok(out)
    }

    /// Every live record of object `obj_id` (all rec types), without their data.
    pub fn live_heads_of(&self, localization: u32, obj_id: i64) -> Result<Vec<(Key, LeafElm)>> {
        let mut out = Vec::new();
        self.scan(localization, obj_id, (0, u16::MAX), (i64::MIN, i64::MAX), false, |k, leaf, _| {
            if leaf.base.delete_tid == 0 {
                out.push((*k, *leaf));
            }
            true
        })?;
        Ok(out)
    }

    /// The live records of object `obj_id` of type `rec_type`, with their data.
    pub fn live_records(&self, localization: u32, obj_id: i64, rec_type: u16) -> Result<Vec<(Key, LeafElm, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(localization, obj_id, (rec_type, rec_type), (i64::MIN, i64::MAX), true, |k, leaf, data| {
            if leaf.base.delete_tid == 0 {
                out.push((*k, *leaf, data.to_vec()));
            }
            true
        })?;
        Ok(out)
    }

    /// The live records of object `obj_id` of type `rec_type`, without their data.
    pub fn live_heads(&self, localization: u32, obj_id: i64, rec_type: u16) -> Result<Vec<(Key, LeafElm)>> {
        let mut out = Vec::new();
        self.scan(localization, obj_id, (rec_type, rec_type), (i64::MIN, i64::MAX), false, |k, leaf, _| {
            if leaf.base.delete_tid == 0 {
                out.push((*k, *leaf));
            }
            true
        })?;
        Ok(out)
    }

    /// The live records of object `obj_id` of type `rec_type` with keys in
    /// `keys_in` (inclusive), with their data.
    pub fn live_records_in(
        &self,
        localization: u32,
        obj_id: i64,
        rec_type: u16,
        keys_in: (i64, i64),
    ) -> Result<Vec<(Key, LeafElm, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(localization, obj_id, (rec_type, rec_type), keys_in, true, |k, leaf, data| {
            if leaf.base.delete_tid == 0 {
                out.push((*k, *leaf, data.to_vec()));
            }
            true
        })?;
        Ok(out)
    }

    /// Undoes what this transaction did to the record at `key`: a record it
    /// created is erased, a deletion it marked is cleared. Returns true when
    /// something was undone.
    pub fn revert(&mut self, key: &Key) -> Result<bool> {
        let (store, tid) = (self.store, self.tid);
        let Some(mut v) = store.db.recs.get(self.rtxn(), &key[..]).map_err(|e| self.err(e))?.map(<[u8]>::to_vec) else {
            return Ok(false);
        };
        let mut h = keys::check_value(&key[..], &v).map_err(|d| store.damaged(&key[..], d))?;
        let create_tid = keys::decode_key(key, 0).create_tid;
        if create_tid == tid {
            store.erase_record(self.wtxn(), &key[..]).map_err(|e| store.err("write", e))?;
        } else if h.delete_tid == tid {
            h.delete_tid = 0;
            h.delete_ts = 0;
            keys::set_head(&key[..], &mut v, &h);
            store.db.recs.put(self.wtxn(), &key[..], &v).map_err(|e| store.err("write", e))?;
        } else {
            return Ok(false);
        }
        store.index_del(self.wtxn(), tid, key).map_err(|e| store.err("write", e))?;
        self.changed = self.changed.saturating_sub(1);
        Ok(true)
    }

    /// Undoes everything this transaction did to object `obj_id` in the
    /// given localizations (its inode, data and FIX records).
    pub fn revert_object(&mut self, localizations: &[u32], obj_id: i64) -> Result<()> {
        let tid = self.tid;
        for &lo in localizations {
            let mut mine = Vec::new();
            self.scan(lo, obj_id, (0, u16::MAX), (i64::MIN, i64::MAX), false, |k, leaf, _| {
                if leaf.base.create_tid == tid || leaf.base.delete_tid == tid {
                    mine.push(*k);
                }
                true
            })?;
            for k in mine {
                self.revert(&k)?;
            }
        }
        Ok(())
    }

    /// The live record at `(localization, obj_id, rec_type, key)`, with its data.
    pub fn live_record(
        &self,
        localization: u32,
        obj_id: i64,
        rec_type: u16,
        key: i64,
    ) -> Result<Option<(Key, LeafElm, Vec<u8>)>> {
        let mut found = None;
        self.scan(localization, obj_id, (rec_type, rec_type), (key, key), true, |k, leaf, data| {
            if leaf.base.delete_tid == 0 {
                found = Some((*k, *leaf, data.to_vec()));
                return false;
            }
            true
        })?;
        Ok(found)
    }

    /// True when any record, live or deleted, sits at `(localization, obj_id,
    /// rec_type, key)` (HAMMER's directory-key collision test looks at history too).
    pub fn key_used(&self, localization: u32, obj_id: i64, rec_type: u16, key: i64) -> Result<bool> {
        let mut used = false;
        self.scan(localization, obj_id, (rec_type, rec_type), (key, key), false, |_, _, _| {
            used = true;
            false
        })?;
        Ok(used)
    }

    /// Visits the records of `obj_id` in the given type and key ranges (all
    /// versions, in key order) until `f` returns false; `f` gets their data
    /// when `with_data` (an empty slice otherwise).
    fn scan(
        &self,
        localization: u32,
        obj_id: i64,
        rec_types: (u16, u16),
        keys_in: (i64, i64),
        with_data: bool,
        mut f: impl FnMut(&Key, &LeafElm, &[u8]) -> bool,
    ) -> Result<()> {
        let bound = |rec_type, key, create_tid| {
            keys::encode_key(&BaseElm { localization, obj_id, rec_type, key, create_tid, ..Default::default() })
        };
        let lo = bound(rec_types.0, keys_in.0, 1);
        let hi = bound(rec_types.1, keys_in.1, u64::MAX);
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        for item in self.store.db.recs.range(self.rtxn(), &range).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            // Map pages faulted in by the walk are counted so that they are released.
            self.store.count_resident(v.len() + 4096);
            let (leaf, _) = keys::decode_leaf(k, v, self.store.pfs_id).map_err(|d| self.store.damaged(k, d))?;
            let data = if with_data { self.store.record_data(self.rtxn(), k, &leaf, v)? } else { (&[][..]).into() };
            let k: &Key = k.try_into().map_err(|_| self.store.corrupt("bad key length"))?;
            if !f(k, &leaf, &data) {
                break;
            }
        }
        Ok(())
    }

    /// Commits: the PFS's `sync_end_tid` becomes this TID. With no change,
    /// nothing is committed and the TID is not used.
    pub fn commit(mut self) -> Result<u64> {
        let (store, tid) = (self.store, self.tid);
        let mut txn = self.txn.take().expect("open");
        if self.changed == 0 {
            return store.last_tid(&txn);
        }
        store.put_meta(&mut txn, "last_tid", &tid.to_le_bytes())?;
        store.put_meta(&mut txn, "data_off", &self.data_off.to_le_bytes())?;
        store.put_meta(&mut txn, "next_obj", &(self.next_obj as u64).to_le_bytes())?;
        store.commit(txn, "commit")?;
        Ok(tid)
    }
}
