//! Changing a master store: one transaction = one new TID, records created or marked deleted, never erased.
//!
//! `import` and the tests build on this. A slave refuses it: slaves change
//! only through mirror-write.

use std::ops::Bound;

use heed::RwTxn;

use super::keys::{self, Key, VALUE_HEAD, ValueHead};
use super::{Store, now_secs};
use crate::ioctl::{Pfs, PfsError, Result};
use crate::mrecord::{BTYPE_RECORD, BaseElm, LOCALIZE_MASK, LeafElm, doalign, leaf_data_crc};

/// Where synthetic data offsets start (HAMMER's large-data zone, 10).
pub(crate) const DATA_ZONE: u64 = 0xa000_0000_0000_0000;

/// An open master transaction; nothing is visible until [`MasterTxn::commit`].
pub struct MasterTxn<'s> {
    store: &'s Store,
    txn: RwTxn<'s>,
    tid: u64,
    now: u32,
    data_off: u64,
    next_obj: i64,
    changed: u64,
}

impl<'s> MasterTxn<'s> {
    /// Starts a transaction on a master opened for writing.
    pub fn begin(store: &'s Store) -> Result<Self> {
        let txn = store.write_txn()?;
        let pfsd = store.stored_pfsd(&txn)?;
        if pfsd.is_slave() {
            return Err(PfsError::SlaveReadOnly { path: Pfs::path(store).to_path_buf() });
        }
        let tid = store.next_tid(&txn)?;
        let data_off = store.meta_u64(&txn, "data_off")?.unwrap_or(DATA_ZONE);
        // Object ids come from the TID space, as in HAMMER, so they are never reused.
        let next_obj = store.meta_u64(&txn, "next_obj")?.map_or(0x100, |v| v as i64);
        Ok(MasterTxn { store, txn, tid, now: now_secs(), data_off, next_obj, changed: 0 })
    }

    /// The TID every change of this transaction carries.
    pub fn tid(&self) -> u64 {
        self.tid
    }

    /// Read access to the store as of before this transaction.
    pub fn rtxn(&self) -> &heed::RoTxn<'s> {
        &self.txn
    }

    /// A new object id, never used before in this PFS.
    pub fn alloc_obj_id(&mut self) -> i64 {
        self.next_obj = self.next_obj.max(0x100) + 1;
        self.next_obj
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
    pub fn create(&mut self, localization: u32, obj_id: i64, rec_type: u16, key: i64, obj_type: u8, data: &[u8]) -> Result<()> {
        let leaf = LeafElm {
            base: BaseElm {
                obj_id,
                key,
                create_tid: self.tid,
                delete_tid: 0,
                rec_type,
                obj_type,
                btype: BTYPE_RECORD,
                localization: localization & LOCALIZE_MASK,
            },
            create_ts: self.now,
            delete_ts: 0,
            data_offset: if data.is_empty() { 0 } else { self.data_off },
            data_len: data.len() as i32,
            data_crc: leaf_data_crc(rec_type, data),
        };
        self.data_off += doalign(data.len()) as u64;
        let k = keys::encode_key(&leaf.base);
        self.store.db.recs.put(&mut self.txn, &k[..], &keys::encode_value(&leaf, data)).map_err(|e| self.err(e))?;
        let t = keys::tid_key(self.tid, &k);
        self.store.db.tids.put(&mut self.txn, &t[..], &()).map_err(|e| self.err(e))?;
        self.changed += 1;
        Ok(())
    }

    /// Marks a live record deleted at this transaction's TID.
    pub fn delete(&mut self, key: &Key) -> Result<bool> {
        let Some(mut v) = self.store.db.recs.get(&self.txn, &key[..]).map_err(|e| self.err(e))?.map(<[u8]>::to_vec)
        else {
            return Ok(false);
        };
        let mut h = ValueHead::decode(&v).ok_or_else(|| self.store.corrupt("bad record value"))?;
        if h.delete_tid != 0 {
            return Ok(false);
        }
        h.delete_tid = self.tid;
        h.delete_ts = self.now;
        h.encode(&mut v[..VALUE_HEAD]);
        self.store.db.recs.put(&mut self.txn, &key[..], &v).map_err(|e| self.err(e))?;
        let t = keys::tid_key(self.tid, key);
        self.store.db.tids.put(&mut self.txn, &t[..], &()).map_err(|e| self.err(e))?;
        self.changed += 1;
        Ok(true)
    }

    /// Every live record of object `obj_id` (all rec types), in key order.
    pub fn live_records_of(&self, localization: u32, obj_id: i64) -> Result<Vec<(Key, LeafElm, Vec<u8>)>> {
        let lo = keys::encode_key(&BaseElm { localization, obj_id, rec_type: 0, key: i64::MIN, create_tid: 1, ..Default::default() });
        let hi = keys::encode_key(&BaseElm {
            localization,
            obj_id,
            rec_type: u16::MAX,
            key: i64::MAX,
            create_tid: u64::MAX,
            ..Default::default()
        });
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut out = Vec::new();
        for item in self.store.db.recs.range(&self.txn, &range).map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (leaf, data) = keys::decode_leaf(k, v, self.store.pfs_id).ok_or_else(|| self.store.corrupt("bad record"))?;
            if leaf.base.delete_tid == 0 {
                out.push((k.try_into().expect("key length"), leaf, data.to_vec()));
            }
        }
        Ok(out)
    }

    /// Commits: the PFS's `sync_end_tid` becomes this TID. With no change,
    /// nothing is committed and the TID is not used.
    pub fn commit(mut self) -> Result<u64> {
        if self.changed == 0 {
            return Ok(self.store.last_tid(&self.txn)?);
        }
        let (store, tid) = (self.store, self.tid);
        store.put_meta(&mut self.txn, "last_tid", &tid.to_le_bytes())?;
        store.put_meta(&mut self.txn, "data_off", &self.data_off.to_le_bytes())?;
        store.put_meta(&mut self.txn, "next_obj", &(self.next_obj as u64).to_le_bytes())?;
        store.commit(self.txn, "commit")?;
        Ok(tid)
    }
}
