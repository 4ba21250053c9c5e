//! Upgrading a store file of record layout 2 to layout 3 (checksums on records, index entries and meta entries) in place, in one transaction.
//!
//! Layout 3 adds, in front of a record's data, the `leaf_sum` and `data_sum`
//! of [`super::keys`], gives every TID index entry its checksum as its value
//! and seals every `meta` entry but the magic and the layout. A layout-2
//! file is upgraded by the first process that opens it with write access
//! (a reader without it is refused, saying so): everything is rewritten in
//! one LMDB transaction, the new layout number included, so that a file is
//! entirely of one layout whatever happens. Blobs are read (for `data_sum`)
//! but not rewritten. A value that is already malformed is left as it is:
//! `scrub` then reports it as damaged.

use std::ops::Bound;
use std::path::Path;

use super::Store;
use super::keys::{self, LEAF_FIELDS, VALUE_HEAD, ValueHead};
use super::layout::{LAYOUT, LAYOUT_KEY, MAGIC_KEY};
use crate::ioctl::{PfsError, Result};

/// The layout this module upgrades from.
pub(crate) const FROM: u64 = 2;

/// Records or index entries rewritten per batch of reads.
const CHUNK: usize = 4096;

/// The refusal of a layout-2 file that this process may not write.
pub(crate) fn needs_write_access(path: &Path) -> PfsError {
    PfsError::NotPfs {
        path: path.to_path_buf(),
        detail: format!(
            "store record layout {FROM} must be upgraded to layout {LAYOUT} (checksums) before it is read, \
             which needs write access to the file: run any command on it once as a user who may write it \
             (e.g. hammer-mirror scrub)"
        ),
    }
}

/// Upgrades `store` (open for writing) to [`LAYOUT`], unless another
/// process did it first.
pub(crate) fn to_current(store: &Store) -> Result<()> {
    let err = |e| store.err("upgrade", e);
    let mut txn = store.write_txn()?;
    if store.db.meta.get(&txn, LAYOUT_KEY).map_err(err)? == Some(&LAYOUT.to_le_bytes()[..]) {
        return Ok(());
    }
    let meta: Vec<(String, Vec<u8>)> = store
        .db
        .meta
        .iter(&txn)
        .map_err(err)?
        .map(|r| r.map(|(k, v)| (k.to_owned(), v.to_vec())))
        .collect::<heed::Result<_>>()
        .map_err(err)?;
    for (k, v) in meta {
        if k != MAGIC_KEY && k != LAYOUT_KEY {
            store.db.meta.put(&mut txn, &k, &keys::seal_meta(&k, &v)).map_err(err)?;
        }
    }
    let mut from: Option<Vec<u8>> = None;
    loop {
        let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
            let lo = from.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            store
                .db
                .recs
                .range(&txn, &(lo, Bound::Unbounded))
                .map_err(err)?
                .take(CHUNK)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect::<heed::Result<_>>()
                .map_err(err)?
        };
        let Some((last, _)) = chunk.last() else { break };
        from = Some(last.clone());
        for (k, v2) in &chunk {
            let Some(h) = ValueHead::decode(v2) else { continue };
            let front = &v2[LEAF_FIELDS..];
            if k.len() != keys::KEY_LEN || h.data_len < 0 || (h.data_len as usize) < front.len() {
                continue;
            }
            let sum = if front.len() == h.data_len as usize {
                keys::data_sum(k, front)
            } else {
                match store.db.blobs.get(&txn, k).map_err(err)? {
                    Some(rest) => crc32c::crc32c_append(keys::data_sum(k, front), rest),
                    // Left for scrub to report: the value says there is more.
                    None => 0,
                }
            };
            store.count_resident(v2.len() + h.data_len as usize);
            let mut v3 = vec![0u8; VALUE_HEAD + front.len()];
            v3[LEAF_FIELDS + 4..VALUE_HEAD].copy_from_slice(&sum.to_le_bytes());
            v3[VALUE_HEAD..].copy_from_slice(front);
            keys::set_head(k, &mut v3, &h);
            store.db.recs.put(&mut txn, k, &v3).map_err(err)?;
        }
    }
    let mut from: Option<Vec<u8>> = None;
    loop {
        let chunk: Vec<Vec<u8>> = {
            let lo = from.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            store
                .db
                .tids
                .range(&txn, &(lo, Bound::Unbounded))
                .map_err(err)?
                .take(CHUNK)
                .map(|r| r.map(|(k, _)| k.to_vec()))
                .collect::<heed::Result<_>>()
                .map_err(err)?
        };
        let Some(last) = chunk.last() else { break };
        from = Some(last.clone());
        for t in &chunk {
            store.db.tids.put(&mut txn, t, &keys::tid_value(t)).map_err(err)?;
        }
    }
    store.db.meta.put(&mut txn, LAYOUT_KEY, &LAYOUT.to_le_bytes()).map_err(err)?;
    store.commit(txn, "upgrade")
}
