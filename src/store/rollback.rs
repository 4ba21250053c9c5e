//! Discarding what was written above a TID: a slave's unsynced pass, a killed import's leftovers, pfs-upgrade.
//!
//! `hammer_pfs_rollback` with `trunc_tid = last + 1`: records created after
//! `last` are destroyed, deletions after it undone, so that the store is
//! again exactly what it was as of `last`. The TID index names every
//! record changed after `last`; it is consumed in chunks of [`CHUNK`]
//! entries, one LMDB commit each, so that memory stays bounded whatever
//! the size of what is undone. A rollback killed between two commits is
//! finished by the next one (each entry is removed with its change).
//!
//! A slave discards everything above its `sync_end_tid` whenever a pass
//! did not end with its SYNC: when the store is opened for writing (a
//! killed writer), when the store of a failed pass is dropped (an error, a
//! refusal, an interrupt, a truncated stream), and before a pass applies
//! anything. So a pass leaves no trace unless it is acknowledged.

use std::ops::Bound;

use super::Store;
use super::keys::{self, KEY_LEN, Key, TID_KEY_LEN};
use crate::ioctl::{Pfs, PfsError, Result};

/// TID index entries undone per LMDB commit.
#[cfg(not(test))]
pub(crate) const CHUNK: usize = 4096;
#[cfg(test)]
pub(crate) const CHUNK: usize = 16;

/// Removes what was written above `last` (see the module documentation).
/// Returns the highest TID seen, so that TIDs are never reused, and how
/// many records changed.
pub(crate) fn rollback_above(store: &Store, last: u64) -> Result<(u64, usize)> {
    let trunc = last.saturating_add(1);
    let lo = keys::tid_key(trunc, &[0; KEY_LEN]);
    let mut max_tid = {
        let txn = store.read_txn()?;
        store.last_tid(&txn)?
    };
    let mut changed = 0;
    loop {
        let mut txn = store.write_txn()?;
        let mut entries: Vec<[u8; TID_KEY_LEN]> = Vec::with_capacity(CHUNK);
        {
            let range = (Bound::Included(&lo[..]), Bound::Unbounded);
            for item in store.db.tids.range(&txn, &range).map_err(|e| store.err("rollback", e))?.take(CHUNK) {
                let (k, v) = item.map_err(|e| store.err("rollback", e))?;
                store.index_entry(k, v)?;
                entries.push(k.try_into().expect("checked length"));
            }
        }
        if entries.is_empty() {
            return Ok((max_tid, changed));
        }
        for t in &entries {
            store.db.tids.delete(&mut txn, &t[..]).map_err(|e| store.err("rollback", e))?;
            let key: Key = t[8..].try_into().expect("TID key length");
            changed += undo(store, &mut txn, &key, trunc, &mut max_tid)?;
        }
        store.commit(txn, "rollback")?;
    }
}

/// Undoes the changes at or after `trunc` of the record at `key`; returns 1
/// when it changed (0: already undone through another of its index entries).
fn undo(store: &Store, txn: &mut heed::RwTxn<'_>, key: &Key, trunc: u64, max_tid: &mut u64) -> Result<usize> {
    let err = |e| store.err("rollback", e);
    let Some(mut v) = store.db.recs.get(txn, &key[..]).map_err(err)?.map(<[u8]>::to_vec) else {
        return Ok(0);
    };
    store.count_resident(4096);
    let create_tid = keys::decode_key(key, 0).create_tid;
    let mut h = match keys::check_value(&key[..], &v) {
        Ok(h) => h,
        // A damaged record the undone pass created goes with it; one it
        // only deleted is left for scrub to report (its delete TID is lost).
        Err(_) if create_tid >= trunc => {
            store.erase_record(txn, &key[..]).map_err(err)?;
            store.index_del(txn, create_tid, key).map_err(err)?;
            return Ok(1);
        }
        Err(_) => return Ok(0),
    };
    *max_tid = (*max_tid).max(create_tid).max(h.delete_tid);
    let unindex = |txn: &mut heed::RwTxn<'_>, tid: u64| store.index_del(txn, tid, key).map_err(err);
    if create_tid >= trunc {
        let delete_tid = h.delete_tid;
        store.erase_record(txn, &key[..]).map_err(err)?;
        unindex(txn, create_tid)?;
        if delete_tid != 0 {
            unindex(txn, delete_tid)?;
        }
        Ok(1)
    } else if h.delete_tid >= trunc {
        unindex(txn, h.delete_tid)?;
        h.delete_tid = 0;
        h.delete_ts = 0;
        keys::set_head(&key[..], &mut v, &h);
        store.db.recs.put(txn, &key[..], &v).map_err(err)?;
        Ok(1)
    } else {
        Ok(0)
    }
}

/// True when a slave holds changes above its `sync_end_tid` (one index seek).
fn unsynced(store: &Store, sync_end_tid: u64) -> Result<bool> {
    let txn = store.read_txn()?;
    let lo = keys::tid_key(sync_end_tid.saturating_add(1), &[0; KEY_LEN]);
    let range = (Bound::Included(&lo[..]), Bound::Unbounded);
    let mut it = store.db.tids.range(&txn, &range).map_err(|e| store.err("rollback", e))?;
    Ok(it.next().transpose().map_err(|e| store.err("rollback", e))?.is_some())
}

/// A slave open for writing discards what it holds above its
/// `sync_end_tid`: the leftovers of a pass that got no SYNC. With
/// `keep_partial`, a pass that recorded how far it came (see
/// [`super::partial`]) is kept for the next pass to resume. Returns how many
/// records changed; nothing for a master (an import rolls back its own
/// leftovers) or a read-only store.
pub(crate) fn discard_unsynced(store: &Store, keep_partial: bool) -> Result<usize> {
    if !store.is_writable() {
        return Ok(0);
    }
    let (pfsd, partial) = {
        let txn = store.read_txn()?;
        (store.stored_pfsd(&txn)?, super::partial::get(store, &txn)?)
    };
    if !pfsd.is_slave() || (keep_partial && partial.is_some()) {
        return Ok(0);
    }
    let changed = if unsynced(store, pfsd.sync_end_tid)? { rollback_above(store, pfsd.sync_end_tid)?.1 } else { 0 };
    if partial.is_some() {
        let mut txn = store.write_txn()?;
        super::partial::clear(store, &mut txn)?;
        store.commit(txn, "rollback")?;
    }
    Ok(changed)
}

/// UPG_PSEUDOFS: a slave becomes a master after rolling back to its
/// `sync_end_tid` (records created later are removed, deletions after it
/// undone), as `hammer_pfs_rollback` does.
pub fn rollback_and_upgrade(store: &mut Store) -> Result<()> {
    let store: &Store = store;
    let pfsd = {
        let txn = store.read_txn()?;
        store.stored_pfsd(&txn)?
    };
    if !pfsd.is_slave() {
        return Err(PfsError::invalid(Pfs::path(store), "pfs-upgrade", "PFS is already a master"));
    }
    let (max_tid, _) = rollback_above(store, pfsd.sync_end_tid)?;
    let mut txn = store.write_txn()?;
    let mut pfsd = store.stored_pfsd(&txn)?;
    pfsd.mirror_flags &= !crate::mrecord::PFSD_SLAVE;
    store.put_meta(&mut txn, "pfsd", &pfsd.to_bytes())?;
    store.put_meta(&mut txn, "last_tid", &max_tid.max(pfsd.sync_end_tid).to_le_bytes())?;
    store.commit(txn, "pfs-upgrade")
}
