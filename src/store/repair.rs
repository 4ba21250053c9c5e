//! `repair <pfs> --from <replica>`: rewrites the damaged records of a store PFS from another store PFS of the same shared uuid, listing each.
//!
//! The damage is what [`super::scrub`] finds. Each damaged record is looked
//! up at its key in the replica, which must hold an intact copy created
//! within what the replica has acknowledged (its `sync_end_tid`):
//!
//! * a record whose leaf is intact and whose data is damaged gets the
//!   replica's data, which must match the leaf's HAMMER data CRC (a
//!   directory entry's PFS localization is rewritten first, as mirroring
//!   does); its own leaf is kept;
//! * a record whose leaf is damaged is rewritten whole from the replica's:
//!   its delete TID is the replica's, unless that lies beyond what this PFS
//!   has (a slave's `sync_end_tid`: then it is live), or this PFS's TID
//!   index records a later change of that key (a master ahead of its
//!   slave: then that TID);
//! * a damaged record the replica has no record at (its key is what is
//!   damaged) is erased, once the replica's records this PFS lacks are
//!   restored: a damaged key hides the record that was there;
//! * a TID index entry is added for every rewritten record's TIDs, and the
//!   damaged or stale entries scrub names are removed, as are orphan blobs.
//!
//! What cannot be repaired is listed and left as it is: records newer than
//! the replica's `sync_end_tid`, a replica whose copy is itself damaged or
//! differs, damaged LMDB pages, a damaged meta entry. All changes are made
//! in one transaction: history is otherwise never rewritten (the only
//! exception to the slave's append-only history, and an explicit one).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::keys::{self, KEY_LEN, Key};
use super::scrub::{self, Report};
use super::{Store, describe_key};
use crate::hammerfs::{HAMMER_RECTYPE_DIRENTRY, leaf_data_crc};
use crate::ioctl::{Pfs, PfsError, Result};
use crate::mrecord::LeafElm;

/// What a repair did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// One line per record rewritten, restored or erased.
    pub rewritten: Vec<String>,
    /// One line per damaged thing left as it was.
    pub left: Vec<String>,
    /// TID index entries removed or added, and orphan blobs removed.
    pub index_fixes: u64,
}

/// A record of the replica, checked: its leaf and data.
fn replica_record(src: &Store, txn: &heed::RoTxn<'_>, k: &Key) -> Result<Option<(LeafElm, Vec<u8>)>> {
    let Some(v) = src.db.recs.get(txn, &k[..]).map_err(|e| src.err("repair", e))? else { return Ok(None) };
    let (leaf, _) = keys::decode_leaf(&k[..], v, src.pfs_id).map_err(|d| src.damaged(&k[..], d))?;
    let data = src.record_data(txn, &k[..], &leaf, v)?.into_owned();
    Ok(Some((leaf, data)))
}

/// `data` of a record as it belongs in PFS `pfs_id` (a directory entry
/// names its own PFS), and the leaf CRC of that.
fn localized(leaf: &LeafElm, data: &[u8], pfs_id: u32) -> (Vec<u8>, u32) {
    let mut d = data.to_vec();
    if leaf.base.rec_type == HAMMER_RECTYPE_DIRENTRY && d.len() >= 12 {
        d[8..12].copy_from_slice(&(pfs_id << 16).to_le_bytes());
    }
    let crc = leaf_data_crc(leaf.base.rec_type, &d);
    (d, crc)
}

/// Repairs `target` (open for writing) from `src`, given `found`, the
/// scrub of `target`. See the module documentation.
pub fn repair(target: &Store, src: &Store, found: &Report) -> Result<Repaired> {
    let mut out = Repaired::default();
    let tp = target.get_pseudofs()?;
    let sp = src.get_pseudofs()?;
    if tp.shared_uuid != sp.shared_uuid {
        return Err(PfsError::invalid(
            Pfs::path(src),
            "repair",
            format!("not a replica of {}: its shared uuid differs", Pfs::path(target).display()),
        ));
    }
    for f in &found.findings {
        if matches!(f.kind, "page" | "meta") {
            out.left.push(format!("{} (cannot be repaired from a replica)", scrub::describe(f)));
        }
    }
    if found.more > 0 {
        out.left.push(format!("{} more damaged things not listed by scrub: run repair again", found.more));
    }
    // What this PFS may show: a slave its acknowledged history, a master all of it.
    let own_end = tp.sync_end_tid;
    let horizon = sp.sync_end_tid;
    let damaged: BTreeMap<Key, (bool, Option<String>)> =
        found.damaged_records().into_iter().map(|(k, intact, path)| (k, (intact, path))).collect();
    let stxn = src.read_txn()?;
    let mut txn = target.write_txn()?;
    let err = |e| target.err("repair", e);
    // Later changes this PFS's index knows of, past the replica's horizon.
    let mut later: HashMap<Key, u64> = HashMap::new();
    {
        let lo = keys::tid_key(horizon.saturating_add(1), &[0; KEY_LEN]);
        for item in target.db.tids.range(&txn, &(Bound::Included(&lo[..]), Bound::Unbounded)).map_err(err)? {
            let (t, v) = item.map_err(err)?;
            if keys::check_tid_entry(t, v).is_ok() {
                let k: Key = t[8..].try_into().expect("checked length");
                let tid = u64::from_be_bytes(t[..8].try_into().expect("8 bytes"));
                later.entry(k).or_insert(tid);
            }
        }
    }
    let mut hidden = false;
    for (k, (leaf_intact, path)) in &damaged {
        let name = match path {
            Some(p) => format!("{p}: {}", describe_key(&k[..])),
            None => describe_key(&k[..]),
        };
        let create_tid = keys::decode_key(&k[..], 0).create_tid;
        let Some(v) = target.db.recs.get(&txn, &k[..]).map_err(err)?.map(<[u8]>::to_vec) else { continue };
        let own = keys::decode_leaf(&k[..], &v, target.pfs_id).ok().map(|(l, _)| l);
        if create_tid > horizon {
            out.left.push(format!("{name}: created after the replica's sync-end-tid 0x{horizon:016x}"));
            continue;
        }
        let theirs = match replica_record(src, &stxn, k) {
            Ok(r) => r,
            Err(e) => {
                out.left.push(format!("{name}: the replica's copy is damaged too ({e})"));
                continue;
            }
        };
        let Some((sleaf, sdata)) = theirs else {
            if *leaf_intact && own.is_some() {
                out.left.push(format!("{name}: the replica has no such record"));
            } else {
                // Its key is what is damaged: restored below from what the replica has.
                target.erase_record(&mut txn, &k[..]).map_err(err)?;
                out.rewritten.push(format!("{name}: erased (damaged, and the replica has no record at this key)"));
                hidden = true;
            }
            continue;
        };
        let (data, crc) = localized(&sleaf, &sdata, target.pfs_id);
        let leaf = match own {
            Some(own) if *leaf_intact => {
                if crc != own.data_crc || own.data_len as usize != data.len() {
                    out.left.push(format!("{name}: the replica's data is not this record's (its CRC differs)"));
                    continue;
                }
                own
            }
            _ => {
                let mut l = sleaf;
                l.base.localization &= crate::hammerfs::HAMMER_LOCALIZE_MASK;
                l.data_crc = crc;
                if let Some(&t) = later.get(k).filter(|&&t| t != create_tid) {
                    l.base.delete_tid = t;
                } else if l.base.delete_tid > own_end {
                    l.base.delete_tid = 0;
                    l.delete_ts = 0;
                }
                l
            }
        };
        target.erase_record(&mut txn, &k[..]).map_err(err)?;
        target.put_record(&mut txn, &k[..], &leaf, &data).map_err(err)?;
        for tid in [leaf.base.create_tid, leaf.base.delete_tid] {
            if tid != 0 {
                target.index_put(&mut txn, tid, k).map_err(err)?;
            }
        }
        let how = if *leaf_intact { "data rewritten" } else { "rewritten" };
        out.rewritten.push(format!("{name}: {how} from the replica"));
    }
    if hidden {
        restore_missing(target, src, &stxn, &mut txn, horizon, own_end, &mut out)?;
    }
    out.index_fixes = fix_index_and_blobs(target, &mut txn)?;
    // What scrub recorded for a repair pass is repaired now (what is left,
    // a pass could not repair either).
    target.put_damage_list(&mut txn, &Default::default())?;
    target.commit(txn, "repair")?;
    Ok(out)
}

/// Restores the replica's records (created up to `horizon`) that `target`
/// lacks, as of what `target` shows (`own_end`).
fn restore_missing(
    target: &Store,
    src: &Store,
    stxn: &heed::RoTxn<'_>,
    txn: &mut heed::RwTxn<'_>,
    horizon: u64,
    own_end: u64,
    out: &mut Repaired,
) -> Result<()> {
    let serr = |e| src.err("repair", e);
    let mut missing: Vec<Key> = Vec::new();
    for item in src.db.recs.iter(stxn).map_err(serr)? {
        let (k, _) = item.map_err(serr)?;
        src.count_resident(4096);
        let Ok(key) = <Key>::try_from(k) else { continue };
        if keys::decode_key(k, 0).create_tid <= horizon
            && target.db.recs.get(txn, k).map_err(|e| target.err("repair", e))?.is_none()
        {
            missing.push(key);
        }
    }
    for k in missing {
        let name = describe_key(&k[..]);
        let Some((sleaf, sdata)) = replica_record(src, stxn, &k).ok().flatten() else {
            out.left.push(format!("{name}: missing here, and damaged in the replica"));
            continue;
        };
        let (data, crc) = localized(&sleaf, &sdata, target.pfs_id);
        let mut l = sleaf;
        l.base.localization &= crate::hammerfs::HAMMER_LOCALIZE_MASK;
        l.data_crc = crc;
        if l.base.delete_tid > own_end {
            l.base.delete_tid = 0;
            l.delete_ts = 0;
        }
        let err = |e| target.err("repair", e);
        target.put_record(txn, &k[..], &l, &data).map_err(err)?;
        for tid in [l.base.create_tid, l.base.delete_tid] {
            if tid != 0 {
                target.index_put(txn, tid, &k).map_err(err)?;
            }
        }
        out.rewritten.push(format!("{name}: restored from the replica (a damaged key had hidden it)"));
    }
    Ok(())
}

/// Removes TID index entries that fail their checksum or name no change of
/// an existing record, adds those the records need, and removes blobs no
/// record holds (a damaged record keeps its blob). Returns how many it fixed.
fn fix_index_and_blobs(target: &Store, txn: &mut heed::RwTxn<'_>) -> Result<u64> {
    let err = |e| target.err("repair", e);
    let mut stale: Vec<Vec<u8>> = Vec::new();
    for item in target.db.tids.iter(txn).map_err(err)? {
        let (t, v) = item.map_err(err)?;
        let ok = keys::check_tid_entry(t, v).is_ok() && {
            let tid = u64::from_be_bytes(t[..8].try_into().expect("8 bytes"));
            match target.db.recs.get(txn, &t[8..]).map_err(err)? {
                None => false,
                Some(rv) => keys::check_value(&t[8..], rv)
                    .is_ok_and(|h| keys::decode_key(&t[8..], 0).create_tid == tid || h.delete_tid == tid),
            }
        };
        if !ok {
            stale.push(t.to_vec());
        }
    }
    let mut fixed = stale.len() as u64;
    for t in stale {
        target.db.tids.delete(txn, &t).map_err(err)?;
    }
    let mut need: Vec<(u64, Key)> = Vec::new();
    let mut orphans: Vec<Vec<u8>> = Vec::new();
    for item in target.db.recs.iter(txn).map_err(err)? {
        let (k, v) = item.map_err(err)?;
        let (Ok(h), Ok(key)) = (keys::check_value(k, v), <Key>::try_from(k)) else { continue };
        for tid in [keys::decode_key(k, 0).create_tid, h.delete_tid] {
            if tid != 0 && target.db.tids.get(txn, &keys::tid_key(tid, &key)[..]).map_err(err)?.is_none() {
                need.push((tid, key));
            }
        }
    }
    fixed += need.len() as u64;
    for (tid, k) in need {
        target.index_put(txn, tid, &k).map_err(err)?;
    }
    for item in target.db.blobs.iter(txn).map_err(err)? {
        let (k, _) = item.map_err(err)?;
        let held = match target.db.recs.get(txn, k).map_err(err)? {
            None => false,
            Some(v) => keys::check_value(k, v).map_or(true, |h| h.data_len as usize > v.len() - keys::VALUE_HEAD),
        };
        if !held {
            orphans.push(k.to_vec());
        }
    }
    fixed += orphans.len() as u64;
    for k in orphans {
        target.db.blobs.delete(txn, &k).map_err(err)?;
    }
    Ok(fixed)
}
