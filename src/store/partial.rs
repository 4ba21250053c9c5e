//! A slave's partial pass: how far a pass that got no SYNC came, kept durably so that the next pass resumes there.
//!
//! Every commit of a pass on a slave records, in the same LMDB transaction
//! as the records it applied, the pass's end TID and the first key it does
//! not hold yet. What the pass applied lies above the slave's
//! `sync_end_tid`, invisible to every view of its acknowledged history.
//! The next pass either resumes it (our source was told through the resume
//! token, and its stream starts with a SKIP to exactly that key) or the
//! partial pass is discarded before anything else is applied. A SYNC, a
//! discard and a rollback clear the record.

use heed::{RoTxn, RwTxn};

use super::Store;
use super::keys;
use crate::ioctl::{PartialPass, Result};
use crate::mrecord::BaseElm;

const META: &str = "partial";

/// The partial pass recorded in the store, if any.
pub(crate) fn get(store: &Store, txn: &RoTxn<'_>) -> Result<Option<PartialPass>> {
    match store.get_meta(txn, META)? {
        None => Ok(None),
        Some(v) if v.len() == 8 + BaseElm::SIZE => Ok(Some(PartialPass {
            tid_end: u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
            resume_key: BaseElm::decode(&v[8..]),
        })),
        Some(_) => Err(store.corrupt("the partial pass record has a bad length")),
    }
}

pub(crate) fn put(store: &Store, txn: &mut RwTxn<'_>, p: &PartialPass) -> Result<()> {
    let mut v = [0u8; 8 + BaseElm::SIZE];
    v[..8].copy_from_slice(&p.tid_end.to_le_bytes());
    p.resume_key.encode(&mut v[8..]);
    store.put_meta(txn, META, &v)
}

pub(crate) fn clear(store: &Store, txn: &mut RwTxn<'_>) -> Result<()> {
    store.db.meta.delete(txn, META).map(|_| ()).map_err(|e| store.err("write", e))
}

/// Where a source resumes after the target handled records up to `key_cur`:
/// at `key_cur` itself when the target's sweep position includes it (after
/// a SKIP, whose end is exclusive), else just after it.
pub(crate) fn resume_key(key_cur: &BaseElm, inclusive: bool) -> BaseElm {
    let base = BaseElm { localization: key_cur.localization & crate::hammerfs::HAMMER_LOCALIZE_MASK, ..*key_cur };
    if inclusive {
        return base;
    }
    match keys::successor(&keys::encode_key(&base)) {
        Some(next) => keys::decode_key(&next, 0),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_key_is_the_next_key_unless_the_position_includes_it() {
        let k = BaseElm {
            localization: 1,
            obj_id: 0x500,
            rec_type: 0x10,
            key: 0x4000,
            create_tid: 7,
            ..Default::default()
        };
        assert_eq!(resume_key(&k, true), k);
        let next = resume_key(&k, false);
        assert_eq!((next.obj_id, next.key, next.create_tid), (0x500, 0x4000, 8));
        assert!(k.btree_cmp(&next).is_lt());
    }
}
