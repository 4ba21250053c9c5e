//! MIRROR_WRITE for the store (the kernel's rules of `hammer_mirror.c`), refusing any change to acknowledged history.
//!
//! The incoming REC/PASS/SKIP records walk the target in key order. Target
//! records between two mentioned keys that the source no longer has are
//! marked deleted at `tid_end` (never erased); a SKIP leaves its range alone;
//! a REC creates what is missing (only if `create_tid >= tid_beg`, the
//! source's `sync_beg_tid`), and a REC or PASS carrying a delete_tid marks the
//! target copy deleted. These are the intended semantics of store.md §3.3-3.4,
//! without the B-tree-shape quirks Q1/Q2.
//!
//! Stricter than the kernel:
//! * records must arrive in strictly increasing key order and inside the
//!   announced TID range, and REC_NODATA is refused;
//! * the slave's past is append-only history ([`crate::history`]): a
//!   pass ending below `sync_end_tid`, a new record created at or before
//!   it, or a deletion at or before it (by REC, PASS or the sweep) is
//!   refused, naming the record and both TIDs;
//! * a REC_BADCRC record (the source could not read its data intact) is
//!   not applied but counts as mentioned: the sweep leaves the slave's
//!   record at that key alone (the kernel ignores it, so its sweep may
//!   delete the slave's good copy);
//! * a pass that fails leaves no trace: the first call of a pass discards
//!   what an earlier unsynced pass left (see [`super::rollback`]), and a
//!   call that fails discards the whole pass. Within a call, changes are
//!   committed every [`DIRTY_LIMIT`] bytes so that a sweep or a large
//!   deletion runs in bounded memory; nothing above `sync_end_tid` is
//!   visible as of it, and a failure discards it all.

use std::ops::Bound;

use heed::RwTxn;

use super::keys::{self, Key};
use super::master::DATA_ZONE;
use super::{Store, now_secs, partial, rollback};
use crate::hammerfs::{
    HAMMER_LOCALIZE_MASK as LOCALIZE_MASK, HAMMER_RECTYPE_CONFIG as RECTYPE_CONFIG,
    HAMMER_RECTYPE_DIRENTRY as RECTYPE_DIRENTRY, HAMMER_RECTYPE_SNAPSHOT as RECTYPE_SNAPSHOT, leaf_data_crc,
};
use crate::history as guard;
use crate::ioctl::Pfs;
use crate::ioctl::{HEAD_ERROR, MirrorRw, PartialPass, PfsError, Result};
use crate::mrecord::{BaseElm, LeafElm, Record, doalign, leaf_data_crc_ok, rtype};

/// `cursor_state`: the sweep position excludes `key_cur` (a record was handled there).
const AFTER_KEY: u32 = 1;
/// `cursor_state`: this pass has applied a batch (the next call is not the pass's first).
const STARTED: u32 = 2;
/// EINVAL, reported in `MirrorRw::error` like the kernel's HEAD_ERROR.
const EINVAL: i32 = 22;
/// Bytes of changes (a page per changed record, plus new data) held in one
/// LMDB transaction before it is committed.
#[cfg(not(test))]
const DIRTY_LIMIT: usize = 16 << 20;
#[cfg(test)]
const DIRTY_LIMIT: usize = 64 << 10;
/// Doomed records a sweep collects before marking them.
const SWEEP_BATCH: usize = 1024;
/// What a change to an existing record is counted as (the page it dirties).
const PAGE: usize = 4096;

/// State of one MIRROR_WRITE call.
struct Apply<'s> {
    store: &'s Store,
    /// None only while an intermediate commit swaps it.
    txn: Option<RwTxn<'s>>,
    /// Bytes changed since the last commit.
    dirty: usize,
    tid_beg: u64,
    tid_end: u64,
    /// The slave's acknowledged TID: nothing at or below it may change.
    sync_end_tid: u64,
    /// Where a resumed pass would start if this call were cut short.
    resume_from: BaseElm,
    /// The sweep position: records after it (or at it, when inclusive) and
    /// before the next mentioned key are candidates for deletion.
    pos: Key,
    pos_inclusive: bool,
    key_cur: BaseElm,
    now: u32,
    max_tid: u64,
    data_off: u64,
    /// The damaged records scrub recorded (key → leaf intact): a REC for
    /// one rewrites it (see [`Apply::repair`]).
    repair: std::collections::BTreeMap<Key, bool>,
    /// `repair` changed: stored with the next commit.
    repair_changed: bool,
}

impl<'s> Apply<'s> {
    fn err(&self, e: heed::Error) -> PfsError {
        self.store.err("mirror-write", e)
    }

    fn txn(&self) -> &RwTxn<'s> {
        self.txn.as_ref().expect("open")
    }

    fn wtxn(&mut self) -> &mut RwTxn<'s> {
        self.txn.as_mut().expect("open")
    }

    /// Writes the allocators and, with the records, how far the pass came
    /// (`resume`: the first key it does not hold for sure; see
    /// [`super::partial`]), and commits what was changed so far.
    fn commit(&mut self, resume: BaseElm) -> Result<()> {
        let store = self.store;
        let mut txn = self.txn.take().expect("open");
        store.put_meta(&mut txn, "data_off", &self.data_off.to_le_bytes())?;
        store.put_meta(&mut txn, "last_tid", &self.max_tid.to_le_bytes())?;
        // (A chunk of a repair pass, ending at or below the slave's TID, is
        // nothing to resume.)
        if self.tid_end > self.sync_end_tid {
            partial::put(store, &mut txn, &PartialPass { tid_end: self.tid_end, resume_key: resume })?;
        }
        if self.repair_changed {
            store.put_damage_list(&mut txn, &self.repair)?;
            self.repair_changed = false;
        }
        store.commit(txn, "mirror-write")?;
        self.dirty = 0;
        Ok(())
    }

    /// Counts `bytes` of changes; past [`DIRTY_LIMIT`], commits and goes on
    /// in a new transaction. An intermediate commit records the position
    /// this call started from: what lies beyond it may be half applied.
    fn dirtied(&mut self, bytes: usize) -> Result<()> {
        self.dirty += bytes;
        if self.dirty >= DIRTY_LIMIT {
            self.commit(self.resume_from)?;
            self.txn = Some(self.store.write_txn()?);
        }
        Ok(())
    }

    /// The kernel's `hammer_mirror_delete_to`: marks deleted, at tid_end, the
    /// live target records from the sweep position up to `target` (exclusive)
    /// that were created before tid_end; in batches of [`SWEEP_BATCH`].
    fn delete_to(&mut self, target: &Key) -> std::result::Result<(), Fail> {
        let mut from = self.pos;
        let mut inclusive = self.pos_inclusive;
        loop {
            let mut doomed: Vec<(Key, Vec<u8>)> = Vec::new();
            let mut erased: Vec<Key> = Vec::new();
            let mut more = false;
            {
                let lo = if inclusive { Bound::Included(&from[..]) } else { Bound::Excluded(&from[..]) };
                let range = (lo, Bound::Excluded(&target[..]));
                for item in self.store.db.recs.range(self.txn(), &range).map_err(|e| self.err(e))? {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    self.store.count_resident(k.len() + v.len());
                    let key: Key = k.try_into().map_err(|_| self.store.corrupt("bad record key"))?;
                    let h = match keys::check_value(k, v) {
                        Ok(h) => h,
                        // Damaged, recorded by scrub, and the source has no
                        // record at its key: its key is what is damaged.
                        Err(_) if self.repair.contains_key(&key) => {
                            erased.push(key);
                            continue;
                        }
                        Err(d) => return Err(Fail::Pfs(self.store.damaged(k, d))),
                    };
                    let base = keys::decode_key(&key, 0);
                    // A slave keeps its snapshots, its own and those its master deleted (snapshots.rs).
                    let kept = base.rec_type == RECTYPE_CONFIG || base.rec_type == RECTYPE_SNAPSHOT;
                    if kept || h.delete_tid != 0 || base.create_tid >= self.tid_end {
                        continue;
                    }
                    guard::check_sweep(&base, self.tid_end, self.sync_end_tid)
                        .map_err(|r| Fail::Refused(r.to_string()))?;
                    doomed.push((key, v.to_vec()));
                    if doomed.len() >= SWEEP_BATCH {
                        more = true;
                        break;
                    }
                }
            }
            if let Some(last) = doomed.last().map(|d| d.0).into_iter().chain(erased.last().copied()).max() {
                from = last;
                inclusive = false;
            }
            for key in erased {
                let store = self.store;
                store.erase_record(self.wtxn(), &key[..]).map_err(|e| store.err("mirror-write", e))?;
                self.repaired(&key, "erased (damaged, and the source has no record at its key)");
                self.dirtied(PAGE)?;
            }
            for (key, mut v) in doomed {
                let mut h = keys::check_value(&key[..], &v).expect("checked above");
                h.delete_tid = self.tid_end;
                h.delete_ts = self.now;
                keys::set_head(&key[..], &mut v, &h);
                self.put_record(&key, &v)?;
                self.index(self.tid_end, &key)?;
                self.max_tid = self.max_tid.max(self.tid_end);
                self.dirtied(PAGE)?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn put_record(&mut self, key: &Key, v: &[u8]) -> Result<()> {
        let db = self.store.db.recs;
        db.put(self.wtxn(), &key[..], v).map_err(|e| self.store.err("mirror-write", e))
    }

    fn index(&mut self, tid: u64, key: &Key) -> Result<()> {
        let store = self.store;
        store.index_put(self.wtxn(), tid, key).map_err(|e| store.err("mirror-write", e))
    }

    fn unindex(&mut self, tid: u64, key: &Key) -> Result<()> {
        let store = self.store;
        store.index_del(self.wtxn(), tid, key).map_err(|e| store.err("mirror-write", e))
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

    /// A REC_BADCRC record: not applied, but mentioned, so that the sweep
    /// leaves the slave's record at its key alone.
    fn bad_crc(&mut self, leaf: &LeafElm) -> std::result::Result<(), Fail> {
        let b = &leaf.base;
        let key = keys::encode_key(b);
        self.check_order(&key, "REC_BADCRC", b).map_err(Fail::Invalid)?;
        self.delete_to(&key)?;
        self.key_cur = *b;
        self.pos = key;
        self.pos_inclusive = false;
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
        let mut existing = self.store.db.recs.get(self.txn(), &key[..]).map_err(|e| self.err(e))?.map(<[u8]>::to_vec);
        // The lookup faults in map pages: counted so that they are released.
        self.store.count_resident(existing.as_ref().map_or(0, Vec::len) + PAGE);
        // A record scrub found damaged (and only one: a repair is explicit,
        // never a source's choice): the REC repairs it.
        if let (Some(v), Some(data)) = (&existing, data)
            && self.repair.contains_key(&key)
        {
            let leaf_ok = keys::check_value(&key[..], v).is_ok();
            existing = Some(self.repair(leaf, data, &key, v, leaf_ok)?);
        }
        let refused = |r: guard::Refusal| Fail::Refused(r.to_string());
        match existing {
            Some(mut v) => {
                let mut h = keys::check_value(&key[..], &v).map_err(|d| self.store.damaged(&key[..], d))?;
                if guard::check_delete(what, b, h.delete_tid, self.sync_end_tid).map_err(refused)? {
                    if h.delete_tid != 0 {
                        self.unindex(h.delete_tid, &key)?;
                    }
                    h.delete_tid = b.delete_tid;
                    h.delete_ts = leaf.delete_ts;
                    keys::set_head(&key[..], &mut v, &h);
                    self.put_record(&key, &v)?;
                    self.index(b.delete_tid, &key)?;
                    self.max_tid = self.max_tid.max(b.delete_tid);
                    self.dirtied(PAGE)?;
                }
            }
            None => {
                // A damaged key may have hidden this record (scrub recorded
                // damaged leaves): restored, in acknowledged history too.
                let hidden = b.create_tid <= self.sync_end_tid && self.repair.values().any(|intact| !intact);
                if let Some(data) = data
                    && hidden
                {
                    self.create(leaf, data, &key)?;
                    self.repaired(&key, "restored (a damaged key had hidden it)");
                } else if let Some(data) = data
                    && guard::check_new_record(b, self.tid_beg, self.sync_end_tid).map_err(refused)?
                {
                    self.create(leaf, data, &key)?;
                }
            }
        }
        Ok(())
    }

    /// Notes that the record at `key` was repaired (`how`) and is no longer damaged.
    fn repaired(&mut self, key: &Key, how: &str) {
        if self.repair.remove(key).is_some() {
            self.repair_changed = true;
        }
        let line = format!("{}: {how}", super::describe_key(&key[..]));
        self.store.repaired.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// Rewrites the damaged record at `key` (its value `old`) from a REC of
    /// the source: with its own leaf fields when they are intact
    /// (`keep_leaf`: only the data was damaged), else the source's. Returns
    /// the new value; the caller goes on as for a record it holds.
    fn repair(
        &mut self,
        leaf: &LeafElm,
        data: &[u8],
        key: &Key,
        old: &[u8],
        keep_leaf: bool,
    ) -> std::result::Result<Vec<u8>, Fail> {
        let b = &leaf.base;
        if !data.is_empty() && !leaf_data_crc_ok(leaf, data) {
            return Err(Fail::Invalid(format!("data crc mismatch on pipe: obj={:016x} key={:016x}", b.obj_id, b.key)));
        }
        let (mut new, data) = self.localized(leaf, data);
        if keep_leaf && let Ok((own, _)) = keys::decode_leaf(&key[..], old, self.store.pfs_id) {
            new.base.delete_tid = own.base.delete_tid;
            new.delete_ts = own.delete_ts;
        }
        new.data_offset = if data.is_empty() { 0 } else { self.data_off };
        self.data_off += doalign(data.len()) as u64;
        let store = self.store;
        let err = |e| store.err("mirror-write", e);
        store.erase_record(self.wtxn(), &key[..]).map_err(err)?;
        store.put_record(self.wtxn(), &key[..], &new, &data).map_err(err)?;
        for tid in [new.base.create_tid, new.base.delete_tid] {
            if tid != 0 {
                self.index(tid, key)?;
            }
        }
        self.max_tid = self.max_tid.max(new.base.delete_tid);
        self.repaired(key, if keep_leaf { "data rewritten from the source" } else { "rewritten from the source" });
        self.dirtied(data.len() + PAGE)?;
        Ok(keys::encode_value(&key[..], &new, &data))
    }

    /// A record as this PFS stores it: localization without PFS bits, a
    /// directory entry naming this PFS (its CRC recomputed), as
    /// `hammer_cursor_localize_data` does.
    fn localized<'d>(&self, leaf: &LeafElm, data: &'d [u8]) -> (LeafElm, std::borrow::Cow<'d, [u8]>) {
        let mut leaf = *leaf;
        leaf.base.localization &= LOCALIZE_MASK;
        if leaf.base.rec_type == RECTYPE_DIRENTRY && data.len() >= 12 {
            let mut d = data.to_vec();
            d[8..12].copy_from_slice(&(self.store.pfs_id << 16).to_le_bytes());
            leaf.data_crc = leaf_data_crc(leaf.base.rec_type, &d);
            return (leaf, d.into());
        }
        (leaf, data.into())
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
        store.put_record(self.wtxn(), key, &leaf, data).map_err(|e| store.err("mirror-write", e))?;
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
        self.dirtied(data.len() + 256)?;
        Ok(())
    }
}

/// Why one record could not be applied.
enum Fail {
    Invalid(String),
    /// It would change acknowledged history.
    Refused(String),
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
    let pfsd = {
        let txn = store.read_txn()?;
        store.stored_pfsd(&txn)?
    };
    if !pfsd.is_slave() {
        return Err(PfsError::invalid(&path, "mirror-write", "target must be in slave mode"));
    }
    if m.cursor_state & STARTED == 0 {
        // A new pass: what an earlier one left without its SYNC goes first,
        // unless this pass resumes it (the write half said so, and the
        // recorded partial pass has this pass's end).
        let resumes = store.take_resuming() && store.partial()?.is_some_and(|p| p.tid_end == m.tid_end);
        if !resumes {
            rollback::discard_unsynced(store, false)?;
        }
        // A chunk of a repair pass may end below it (see [`Store::repair_floor`]).
        let repair_chunk = store.in_repair_pass() && m.tid_end <= pfsd.sync_end_tid;
        if !repair_chunk && let Err(r) = guard::check_pass_end(pfsd.sync_end_tid, m.tid_end) {
            m.flags |= HEAD_ERROR;
            m.error = EINVAL;
            return Err(PfsError::Refused { path, op: "mirror-write", detail: r.to_string() });
        }
    }
    match apply(store, m, buf, pfsd.sync_end_tid) {
        Ok(()) => {
            m.cursor_state |= STARTED;
            Ok(())
        }
        Err((off, fail)) => {
            m.flags |= HEAD_ERROR;
            m.error = EINVAL;
            // The whole pass goes, earlier batches and intermediate commits
            // included: a stream that carried a bad record is not one to
            // resume. Should that fail too, the next pass finishes it; the
            // first cause is what is reported.
            let _ = rollback::discard_unsynced(store, false);
            Err(match fail {
                Fail::Pfs(e) => e,
                Fail::Invalid(detail) => {
                    PfsError::invalid(&path, "mirror-write", format!("record at batch byte {off}: {detail}"))
                }
                Fail::Refused(detail) => PfsError::Refused {
                    path,
                    op: "mirror-write",
                    detail: format!("record at batch byte {off}: {detail}"),
                },
            })
        }
    }
}

/// Applies the records of `buf`; on failure, the batch offset of the record and why.
fn apply(store: &Store, m: &mut MirrorRw, buf: &[u8], sync_end_tid: u64) -> std::result::Result<(), (usize, Fail)> {
    let txn = store.write_txn().map_err(|e| (0, Fail::Pfs(e)))?;
    let meta = |txn: &RwTxn<'_>| -> Result<(u64, u64)> {
        Ok((store.meta_u64(txn, "data_off")?.unwrap_or(DATA_ZONE), store.last_tid(txn)?))
    };
    let (data_off, max_tid) = meta(&txn).map_err(|e| (0, Fail::Pfs(e)))?;
    let repair = store.damage_list(&txn).map_err(|e| (0, Fail::Pfs(e)))?;
    let fresh = m.cursor_state & AFTER_KEY == 0;
    let mut a = Apply {
        store,
        txn: Some(txn),
        dirty: 0,
        tid_beg: m.tid_beg,
        tid_end: m.tid_end,
        sync_end_tid,
        resume_from: if m.cursor_state & STARTED == 0 {
            BaseElm::key_beg_init()
        } else {
            partial::resume_key(&m.key_cur, m.cursor_state & AFTER_KEY == 0)
        },
        // A fresh cycle (key_cur all-zero, as userland passes it) sweeps from
        // the very first key.
        pos: if fresh && m.key_cur == BaseElm::default() { [0; keys::KEY_LEN] } else { keys::encode_key(&m.key_cur) },
        pos_inclusive: fresh,
        key_cur: m.key_cur,
        now: now_secs(),
        max_tid,
        data_off,
        repair,
        repair_changed: false,
    };
    let mut off = 0;
    while off < buf.len() {
        let step = match crate::mrecord::decode_unverified(&buf[off..]) {
            Err(e) => Err(Fail::Invalid(e.to_string())),
            Ok((rec, n)) => {
                let r = match rec {
                    Record::Skip { beg, end } => a.skip(&beg, &end),
                    Record::Rec { rtype: t, leaf, .. } if t & rtype::TYPE_MASK == rtype::REC_BADCRC => {
                        // The write half reports it.
                        a.bad_crc(&leaf)
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
            Err(fail) => return Err((off, fail)),
        }
    }
    let resume = partial::resume_key(&a.key_cur, a.pos_inclusive);
    a.commit(resume).map_err(|e| (off, Fail::Pfs(e)))?;
    m.key_cur = BaseElm { localization: a.key_cur.localization & LOCALIZE_MASK, ..a.key_cur };
    m.cursor_state = (m.cursor_state & !AFTER_KEY) | if a.pos_inclusive { 0 } else { AFTER_KEY };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Status, status_of};
    use crate::mrecord::SERIALBUF_SIZE;
    use crate::store::master::MasterTxn;
    use crate::store::tests::{mirror, pair, read_all, visible};
    use crate::store::{Access, keys::TID_KEY_LEN};

    /// A master holding objects 0x500..0x500+n from an earlier TID and 0xf00
    /// from t1, the slave mirrored to t1, and a later master TID t2 that
    /// deletes 0x500 and adds 0x900.
    fn synced(dir: &std::path::Path, n: i64) -> (Store, Store, u64, u64) {
        let (m, mut s) = pair(dir);
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in 0x500..0x500 + n {
            t.create(1, obj, 1, 0, 2, &[obj as u8; 40]).unwrap();
        }
        t.commit().unwrap();
        let mut t = MasterTxn::begin(&m).unwrap();
        t.create(1, 0xf00, 1, 0, 2, b"last").unwrap();
        let t1 = t.commit().unwrap();
        mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
        let mut t = MasterTxn::begin(&m).unwrap();
        let (k, _, _) = t.live_records_of(1, 0x500).unwrap().remove(0);
        t.delete(&k).unwrap();
        t.create(1, 0x900, 1, 0, 2, b"new").unwrap();
        let t2 = t.commit().unwrap();
        assert_eq!(s.get_pseudofs().unwrap().sync_end_tid, t1);
        (m, s, t1, t2)
    }

    /// Records (key, value) and TID index entries.
    type Dump = (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>);

    /// Everything the store holds, above its sync_end_tid too: records and TID index.
    fn everything(s: &Store) -> Dump {
        let txn = s.read_txn().unwrap();
        let recs = s.db.recs.iter(&txn).unwrap().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
        let tids = s.db.tids.iter(&txn).unwrap().map(|r| r.map(|(k, _)| k.to_vec()).unwrap()).collect();
        (recs, tids)
    }

    fn encode(recs: &[Record<'_>]) -> Vec<u8> {
        let mut v = Vec::new();
        for r in recs {
            r.encode_to_vec(&mut v);
        }
        v
    }

    /// The leaf of the slave's record of object `obj`.
    fn leaf_of(s: &Store, obj: i64) -> (LeafElm, Vec<u8>) {
        let mut found = None;
        s.for_each_as_of(u64::MAX - 1, |l, d| {
            if l.base.obj_id == obj {
                found = Some((*l, d.to_vec()));
            }
            Ok(())
        })
        .unwrap();
        found.unwrap_or_else(|| panic!("no record of {obj:x}"))
    }

    /// A SKIP from the first key to the first record of object `obj` (exclusive).
    fn skip_to(obj: i64) -> Record<'static> {
        Record::Skip {
            beg: BaseElm::key_beg_init(),
            end: BaseElm { localization: 1, obj_id: obj, ..Default::default() },
        }
    }

    fn refused(e: PfsError) -> String {
        assert!(matches!(e, PfsError::Refused { .. }), "{e}");
        assert_eq!(status_of(&anyhow::Error::new(e).context("mirror-write")), Status::Refused);
        "refused".into()
    }

    #[test]
    fn a_pass_ending_below_the_acknowledged_tid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut s, t1, _) = synced(dir.path(), 3);
        let before = everything(&s);
        let stream = read_all(&m, 1, t1, SERIALBUF_SIZE);
        let mut w = MirrorRw::for_write(1, t1 - 1);
        let e = s.mirror_write(&mut w, &stream).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("{:#018x}", t1 - 1)) && msg.contains(&format!("{t1:#018x}")), "{msg}");
        assert!(msg.contains("below this slave's sync-end-tid"), "{msg}");
        refused(e);
        assert_eq!(w.flags & HEAD_ERROR, HEAD_ERROR);
        assert_eq!(everything(&s), before);
    }

    #[test]
    fn a_new_record_in_the_acknowledged_past_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, mut s, t1, t2) = synced(dir.path(), 3);
        let before = everything(&s);
        let (mut leaf, data) = leaf_of(&s, 0x501);
        leaf.base.obj_id = 0x700; // a record the slave never had, created at t1
        let (z, _) = leaf_of(&s, 0xf00);
        let stream = encode(&[Record::rec(leaf, &data), Record::Pass { leaf: z }]);
        let stream = [encode(&[skip_to(0x600)]), stream].concat();
        let e = s.mirror_write(&mut MirrorRw::for_write(1, t2), &stream).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("REC obj=0000000000000700 key=0000000000000000 rt=01"), "{msg}");
        let created =
            format!("created at TID {:#018x}, at or before its sync-end-tid {t1:#018x}", leaf.base.create_tid);
        assert!(msg.contains(&created), "{msg}");
        refused(e);
        assert_eq!(everything(&s), before);
        // Created before the source's announced begin TID: left out, as the kernel does.
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &stream).unwrap();
        assert_eq!(everything(&s), before);
    }

    #[test]
    fn a_deletion_in_the_acknowledged_past_is_refused_through_pass_and_rec() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, mut s, t1, t2) = synced(dir.path(), 3);
        let before = everything(&s);
        let (mut leaf, data) = leaf_of(&s, 0x502);
        // Issue 19: delete_tid = create_tid + 1, inside acknowledged history.
        leaf.base.delete_tid = leaf.base.create_tid + 1;
        for rec in [Record::Pass { leaf }, Record::rec(leaf, &data)] {
            let e = s.mirror_write(&mut MirrorRw::for_write(1, t2), &encode(&[rec])).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("obj=0000000000000502 key=0000000000000000 rt=01"), "{msg}");
            assert!(msg.contains(&format!("deleted at TID {:#018x}", leaf.base.create_tid + 1)), "{msg}");
            assert!(msg.contains(&format!("sync-end-tid {t1:#018x}")) && msg.contains("holds it live"), "{msg}");
            refused(e);
            assert_eq!(everything(&s), before);
        }
        // After the acknowledged TID it is an ordinary deletion.
        let as_of_t1 = visible(&s, t1);
        leaf.base.delete_tid = t2;
        let (z, _) = leaf_of(&s, 0xf00);
        let stream = encode(&[skip_to(0x502), Record::Pass { leaf }, Record::Pass { leaf: z }]);
        s.mirror_write(&mut MirrorRw::for_write(1, t2), &stream).unwrap();
        assert_eq!(visible(&s, t1), as_of_t1);
        assert_eq!(visible(&s, t2).len(), 3);
    }

    #[test]
    fn a_sweep_at_the_acknowledged_tid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, mut s, t1, _) = synced(dir.path(), 3);
        let before = everything(&s);
        // A pass "ending" at sync_end_tid that mentions only the last record:
        // the sweep would delete the others as of t1.
        let (leaf, _) = leaf_of(&s, 0xf00);
        let e = s.mirror_write(&mut MirrorRw::for_write(1, t1), &encode(&[Record::Pass { leaf }])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("omits the live record obj=0000000000000500"), "{msg}");
        assert!(msg.contains(&format!("end TID {t1:#018x}")), "{msg}");
        refused(e);
        assert_eq!(everything(&s), before);
        // The same pass mentioning everything is a harmless re-send.
        let stream = read_all(&_m, 1, t1, SERIALBUF_SIZE);
        s.mirror_write(&mut MirrorRw::for_write(1, t1), &stream).unwrap();
        assert_eq!(everything(&s), before);
    }

    #[test]
    fn a_bad_crc_record_keeps_the_slaves_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, mut s, t1, t2) = synced(dir.path(), 3);
        let (a, adata) = leaf_of(&s, 0x501);
        let (c, _) = leaf_of(&s, 0x502);
        let (z, _) = leaf_of(&s, 0x500);
        let garbage = vec![0xee; adata.len()];
        let (f, _) = leaf_of(&s, 0xf00);
        let stream = encode(&[
            Record::Pass { leaf: z },
            Record::Rec { rtype: rtype::REC_BADCRC, leaf: a, data: &garbage },
            Record::Pass { leaf: c },
            Record::Pass { leaf: f },
        ]);
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &stream).unwrap();
        let live: Vec<i64> = visible(&s, t2).iter().map(|(k, _)| k.1).collect();
        assert_eq!(live, [0x500, 0x501, 0x502, 0xf00], "the record at the BADCRC key stays live");
        assert_eq!(leaf_of(&s, 0x501).1, adata, "with its good data");
        // Control: leaving the record out does delete it.
        drop(s);
        let mut s = Store::open(&dir.path().join("slave"), Access::Write).unwrap();
        let stream = encode(&[Record::Pass { leaf: z }, Record::Pass { leaf: c }, Record::Pass { leaf: f }]);
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &stream).unwrap();
        let live: Vec<i64> = visible(&s, t2).iter().map(|(k, _)| k.1).collect();
        assert_eq!(live, [0x500, 0x502, 0xf00]);
    }

    #[test]
    fn a_large_sweep_commits_in_batches_and_a_failure_discards_all_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_m, mut s, t1, t2) = synced(dir.path(), 400);
        let before = everything(&s);
        let (last, _) = leaf_of(&s, 0xf00);
        let (first, _) = leaf_of(&s, 0x500);
        // Mentions only the last record (the sweep dooms 400), then a record out of order.
        let stream = encode(&[Record::Pass { leaf: last }, Record::Pass { leaf: first }]);
        let txns = s.db.env.info().last_txn_id;
        let e = s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &stream).unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
        assert!(s.db.env.info().last_txn_id > txns + 5, "the sweep committed in batches");
        assert_eq!(everything(&s), before, "and all of it was discarded");
        // Without the bad record the sweep applies: 400 deleted as of t2, none as of t1.
        let stream = encode(&[Record::Pass { leaf: last }]);
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &stream).unwrap();
        assert_eq!(visible(&s, t2).len(), 1);
        assert_eq!(visible(&s, t1).len(), 401);
    }

    /// Index entries above `tid`.
    fn above(s: &Store, tid: u64) -> usize {
        everything(s)
            .1
            .iter()
            .filter(|k| k.len() == TID_KEY_LEN && u64::from_be_bytes(k[..8].try_into().unwrap()) > tid)
            .count()
    }

    #[test]
    fn an_unsynced_pass_is_kept_for_a_resume_and_discarded_by_any_other_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut s, t1, t2) = synced(dir.path(), 3);
        let before = everything(&s);
        let increment = read_all(&m, t1 + 1, t2, SERIALBUF_SIZE);
        // Applied, never synced: recorded as a partial pass; then a new pass
        // that does not resume it: its first call discards the old one.
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &increment).unwrap();
        assert!(above(&s, t1) > 0);
        assert_eq!(s.partial().unwrap().map(|p| p.tid_end), Some(t2));
        let (z, _) = leaf_of(&s, 0x501);
        let mut pass2 = MirrorRw::for_write(t1 + 1, t2);
        s.mirror_write(&mut pass2, &encode(&[skip_to(z.base.obj_id)])).unwrap();
        assert_eq!(s.partial().unwrap().map(|p| p.tid_end), Some(t2), "the new pass is partial in its turn");
        let mut pass3 = MirrorRw::for_write(t1 + 1, t2);
        s.mirror_write(&mut pass3, &[]).unwrap();
        assert_eq!(everything(&s), before, "a new pass started from the synced state");

        // Dropped, or killed (no drop, the lock gone as the kernel drops it):
        // the partial pass stays, for the next pass to resume or discard.
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &increment).unwrap();
        s.lock = None;
        std::mem::forget(s);
        let mut s = Store::open(&dir.path().join("slave"), Access::Write).unwrap();
        assert!(above(&s, t1) > 0 && s.partial().unwrap().is_some(), "kept for a resume");
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &[]).unwrap();
        assert_eq!(everything(&s), before, "a pass that does not resume it discards it");
        assert_eq!(s.partial().unwrap().map(|p| p.tid_end), Some(t2), "and is the partial pass now");
    }

    #[test]
    fn a_resumed_pass_ends_as_the_whole_pass_would() {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut s, t1, _) = synced(dir.path(), 40);
        // An increment of many records: new objects between the old ones, and deletions.
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in (0x480..0x560).step_by(3) {
            t.create(1, obj, 1, 7, 2, &[obj as u8; 300]).unwrap();
        }
        for obj in (0x501..0x520).step_by(2) {
            let (k, _, _) = t.live_records_of(1, obj).unwrap().remove(0);
            t.delete(&k).unwrap();
        }
        let t2 = t.commit().unwrap();
        let increment = read_all(&m, t1 + 1, t2, SERIALBUF_SIZE);
        // The first half of the pass's records arrive; then the link is lost.
        let n = crate::mrecord::heads(&increment).count();
        assert!(n > 4, "{n} records");
        let cut = crate::mrecord::heads(&increment).nth(n / 2).map(|(off, _, _)| off).unwrap();
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &increment[..cut]).unwrap();
        let p = s.partial().unwrap().expect("a partial pass");
        assert_eq!(p.tid_end, t2);
        // The source resumes at the key the slave named: a SKIP to it, then the rest.
        let mut rest = encode(&[Record::Skip { beg: BaseElm::key_beg_init(), end: p.resume_key }]);
        let mut rd = MirrorRw::for_read(t1 + 1, t2);
        rd.key_beg = p.resume_key;
        let mut buf = vec![0u8; SERIALBUF_SIZE];
        loop {
            let n = m.mirror_read(&mut rd, &mut buf).unwrap();
            rest.extend_from_slice(&buf[..n]);
            rd.key_beg = rd.key_cur;
            if n == 0 {
                break;
            }
        }
        s.resume_partial().unwrap();
        s.mirror_write(&mut MirrorRw::for_write(t1 + 1, t2), &rest).unwrap();
        let mut p = s.get_pseudofs().unwrap();
        p.sync_end_tid = t2;
        s.set_pseudofs(&p).unwrap();
        assert_eq!(s.partial().unwrap(), None, "the SYNC ends it");
        assert_eq!(visible(&s, t2), visible(&m, t2));
        assert_eq!(visible(&s, t1), visible(&m, t1));
    }

    #[test]
    fn a_synced_pass_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut s, t1, t2) = synced(dir.path(), 3);
        mirror(&m, &mut s, SERIALBUF_SIZE, 100);
        drop(s);
        let s = Store::open(&dir.path().join("slave"), Access::Write).unwrap();
        assert_eq!(s.get_pseudofs().unwrap().sync_end_tid, t2);
        assert_eq!(visible(&s, t2), visible(&m, t2));
        assert_eq!(visible(&s, t1), visible(&m, t1));
    }
}
