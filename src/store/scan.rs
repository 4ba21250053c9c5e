//! MIRROR_READ for the store: REC / PASS / SKIP records for a TID range, in key order, resumable at `key_cur`.
//!
//! A record is *changed* in `[tid_beg, tid_end]` when its create_tid or its
//! delete_tid lies in the range. Changed records are sent as REC (created in
//! the range; delete_tid cleared if it is after tid_end, the stream being an
//! as-of-tid_end view) or PASS (created before the range, deleted in it).
//! Every run of unchanged records between them is summarized by one SKIP
//! from the run's first key to the next changed key, which is what the
//! kernel's mirror_tid pruning does for whole subtrees. The output depends
//! only on the records, not on how they are found: for a large share of
//! changes the records are walked in order; for a small share the changed
//! keys come from the TID index, so an incremental read after one change in
//! a big PFS costs O(changes · log n), not O(n).

use std::ops::Bound;

use super::Store;
use super::keys::{self, KEY_LEN, Key};
use crate::ioctl::Pfs;
use crate::ioctl::{MIRROR_NODATA, MirrorRw, PfsError, Result};
use crate::mrecord::{BaseElm, LeafElm, Record, rtype};

/// Changed keys of one TID range, kept between the calls of one scan.
pub struct ChangeCache {
    tid_beg: u64,
    tid_end: u64,
    /// Size of the TID index when the keys were collected: any write changes it.
    index_len: u64,
    /// Sorted, deduplicated; None when the share of changes is large enough
    /// that a sequential walk is cheaper.
    keys: Option<Vec<Key>>,
}

impl ChangeCache {
    /// A cache entry that makes the next scan of `[beg, end]` walk every record (tests).
    #[cfg(test)]
    pub(crate) fn forced_walk(tid_beg: u64, tid_end: u64, store: &Store) -> Self {
        let txn = store.read_txn().unwrap();
        let index_len = store.db.tids.len(&txn).unwrap();
        ChangeCache { tid_beg, tid_end, index_len, keys: None }
    }
}

/// Above this many changed records (and a quarter of the PFS) a scan walks all records.
const INDEX_LIMIT_MIN: u64 = 4096;

fn in_range(tid: u64, beg: u64, end: u64) -> bool {
    tid != 0 && tid >= beg && tid <= end
}

fn changed(l: &LeafElm, beg: u64, end: u64) -> bool {
    in_range(l.base.create_tid, beg, end) || in_range(l.base.delete_tid, beg, end)
}

/// Collects the changed keys of `[beg, end]` from the TID index, or None
/// when there are more than `limit`.
fn collect_changes(store: &Store, beg: u64, end: u64, limit: u64) -> Result<Option<Vec<Key>>> {
    let txn = store.read_txn()?;
    let lo = keys::tid_key(beg, &[0; KEY_LEN]);
    let hi = keys::tid_key(end, &[0xff; KEY_LEN]);
    let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
    let mut out = Vec::new();
    for item in store.db.tids.range(&txn, &range).map_err(|e| store.err("mirror-read", e))? {
        let (k, v) = item.map_err(|e| store.err("mirror-read", e))?;
        let key = store.index_entry(k, v)?;
        if out.len() as u64 >= limit {
            return Ok(None);
        }
        out.push(key);
        // The index's pages lie among data pages, and the faults that bring
        // them in map the data around them too: about 10 KiB per entry.
        store.count_resident(16 << 10);
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

/// Where the next emitted item goes; stops when the buffer is full.
struct Out<'b> {
    buf: &'b mut [u8],
    count: usize,
}

impl Out<'_> {
    /// Appends `rec`; false when it does not fit.
    fn put(&mut self, rec: &Record<'_>) -> bool {
        let n = rec.encoded_len();
        if self.count + n > self.buf.len() {
            return false;
        }
        rec.encode_into(&mut self.buf[self.count..]);
        self.count += n;
        true
    }
}

/// Whether [`changed_record`] sends the data of `leaf`.
fn sends_data(leaf: &LeafElm, m: &MirrorRw) -> bool {
    leaf.base.create_tid >= m.tid_beg && m.flags & MIRROR_NODATA == 0
}

/// Builds the record the scan sends for a changed leaf (`data`: all of it
/// when [`sends_data`], else anything; `intact`: whether it passed its checks).
fn changed_record<'d>(leaf: LeafElm, data: &'d [u8], intact: bool, m: &MirrorRw) -> Record<'d> {
    // A deletion after the pass's end is not part of it (the kernel sends it
    // on a PASS anyway; a slave used as a source would pass on a deletion of
    // a pass it has not acknowledged).
    let mut leaf = leaf;
    if leaf.base.delete_tid > m.tid_end {
        leaf.base.delete_tid = 0;
        leaf.delete_ts = 0;
    }
    if leaf.base.create_tid < m.tid_beg {
        return Record::Pass { leaf };
    }
    if m.flags & MIRROR_NODATA != 0 && leaf.data_len != 0 {
        Record::Rec { rtype: rtype::REC_NODATA, leaf, data: &[] }
    } else if !intact {
        // As the kernel does on EDOM: send it flagged, with the bad data; the
        // target drops it and says which record.
        Record::Rec { rtype: rtype::REC_BADCRC | rtype::DATA_CRC_BAD, leaf, data }
    } else {
        Record::Rec { rtype: rtype::REC, leaf, data }
    }
}

/// See the module documentation. Returns the bytes written into `buf`.
pub fn mirror_read(store: &Store, m: &mut MirrorRw, buf: &mut [u8]) -> Result<usize> {
    let path = || Pfs::path(store).to_path_buf();
    if (m.key_beg.localization | m.key_end.localization) & crate::hammerfs::HAMMER_LOCALIZE_PSEUDOFS_MASK != 0 {
        return Err(PfsError::invalid(&path(), "mirror-read", "key range carries PFS bits"));
    }
    if buf.len() < crate::mrecord::MAX_REC_SIZE {
        // Every record must fit, or a read would end early looking complete.
        return Err(PfsError::invalid(
            &path(),
            "mirror-read",
            format!("buffer of {} bytes is below the largest record ({})", buf.len(), crate::mrecord::MAX_REC_SIZE),
        ));
    }
    if m.key_beg.btree_cmp(&m.key_end).is_gt() {
        return Err(PfsError::invalid(&path(), "mirror-read", "key_beg is after key_end"));
    }
    let total = {
        let txn = store.read_txn()?;
        store.db.tids.len(&txn).map_err(|e| store.err("mirror-read", e))?
    };
    let mut cache = store.scan_cache.lock().unwrap_or_else(|e| e.into_inner());
    let fresh =
        cache.as_ref().is_some_and(|c| c.tid_beg == m.tid_beg && c.tid_end == m.tid_end && c.index_len == total);
    if !fresh {
        let limit = INDEX_LIMIT_MIN.max(total / 4);
        let keys = collect_changes(store, m.tid_beg, m.tid_end, limit)?;
        *cache = Some(ChangeCache { tid_beg: m.tid_beg, tid_end: m.tid_end, index_len: total, keys });
    }
    let changes = cache.as_ref().and_then(|c| c.keys.as_deref());
    let mut out = Out { buf, count: 0 };
    let pfs_id = store.pfs_id;
    let start = keys::encode_key(&m.key_beg);
    let end = keys::encode_key(&m.key_end);
    let txn = store.read_txn()?;
    let recs = store.db.recs;
    let bad = |k: &[u8]| store.corrupt(format!("undecodable record {}", hex(k)));
    let err = |e| store.err("mirror-read", e);

    // The first stored record at or after `pos` (within the range).
    let first_from = |pos: &Key| -> Result<Option<Key>> {
        let r = (Bound::Included(&pos[..]), Bound::Included(&end[..]));
        match recs.range(&txn, &r).map_err(err)?.next() {
            Some(item) => {
                let (k, _) = item.map_err(err)?;
                Ok(Some(k.try_into().map_err(|_| bad(k))?))
            }
            None => Ok(None),
        }
    };

    match changes {
        Some(changes) => {
            let mut pos: Key = start;
            let mut idx = changes.partition_point(|k| *k < pos);
            loop {
                let next_changed = changes.get(idx).filter(|k| **k <= end);
                // Unchanged records before the next change: one SKIP.
                if let Some(u) = first_from(&pos)?
                    && next_changed.is_none_or(|c| u < *c)
                {
                    let skip_end = match next_changed {
                        Some(c) => keys::decode_key(c, 0),
                        None => m.key_end,
                    };
                    let beg = keys::decode_key(&u, 0);
                    if !out.put(&Record::Skip { beg: strip(beg), end: strip(skip_end) }) {
                        m.key_cur = strip(beg);
                        return Ok(out.count);
                    }
                }
                let Some(c) = next_changed else { break };
                let v = recs.get(&txn, &c[..]).map_err(err)?.ok_or_else(|| PfsError::Damaged {
                    path: path(),
                    detail: format!("TID index names a missing {}", super::describe_key(c)),
                })?;
                store.touched(v);
                let (leaf, front) = keys::decode_leaf(c, v, pfs_id).map_err(|d| store.damaged(c, d))?;
                let (data, intact) = if sends_data(&leaf, m) {
                    bounded(store.record_data_checked(&txn, c, &leaf, v)?, &leaf)
                } else {
                    (front.into(), true)
                };
                if !out.put(&changed_record(leaf, &data, intact, m)) {
                    m.key_cur = strip(leaf.base);
                    return Ok(out.count);
                }
                idx += 1;
                match keys::successor(c) {
                    Some(s) => pos = s,
                    None => break,
                }
            }
        }
        None => {
            // Walk every record, sending changed ones and folding runs of
            // unchanged ones into SKIPs.
            let r = (Bound::Included(&start[..]), Bound::Included(&end[..]));
            let mut run: Option<BaseElm> = None;
            for item in recs.range(&txn, &r).map_err(err)? {
                let (k, v) = item.map_err(err)?;
                store.touched(v);
                let (leaf, front) = keys::decode_leaf(k, v, pfs_id).map_err(|d| store.damaged(k, d))?;
                if !changed(&leaf, m.tid_beg, m.tid_end) {
                    run.get_or_insert(leaf.base);
                    continue;
                }
                if let Some(beg) = run.take()
                    && !out.put(&Record::Skip { beg: strip(beg), end: strip(leaf.base) })
                {
                    m.key_cur = strip(beg);
                    return Ok(out.count);
                }
                let (data, intact) = if sends_data(&leaf, m) {
                    bounded(store.record_data_checked(&txn, k, &leaf, v)?, &leaf)
                } else {
                    (front.into(), true)
                };
                if !out.put(&changed_record(leaf, &data, intact, m)) {
                    m.key_cur = strip(leaf.base);
                    return Ok(out.count);
                }
            }
            if let Some(beg) = run
                && !out.put(&Record::Skip { beg: strip(beg), end: strip(m.key_end) })
            {
                m.key_cur = strip(beg);
                return Ok(out.count);
            }
        }
    }
    m.key_cur = strip(m.key_end);
    Ok(out.count)
}

/// Data and whether it is intact; damaged data is cut to the leaf's length
/// (a blob of the wrong size must not make a record too large to send).
fn bounded<'d>((data, check): super::Checked<'d>, leaf: &LeafElm) -> (std::borrow::Cow<'d, [u8]>, bool) {
    let len = leaf.data_len.max(0) as usize;
    match (data, check.is_ok()) {
        (d, true) => (d, true),
        (std::borrow::Cow::Borrowed(d), false) => (d[..d.len().min(len)].into(), false),
        (std::borrow::Cow::Owned(mut d), false) => {
            d.truncate(len);
            (d.into(), false)
        }
    }
}

/// A key as the kernel returns it: PFS bits stripped, only the key fields.
fn strip(b: BaseElm) -> BaseElm {
    BaseElm {
        localization: b.localization & crate::hammerfs::HAMMER_LOCALIZE_MASK,
        obj_id: b.obj_id,
        key: b.key,
        create_tid: b.create_tid,
        rec_type: b.rec_type,
        delete_tid: 0,
        obj_type: 0,
        btype: 0,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
