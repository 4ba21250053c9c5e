//! Pruning a store PFS's history (HAMMER's prune): which TIDs stay whole, what goes, in bounded batches; and the targets' acknowledged TIDs that hold it back.
//!
//! A record version survives exactly when some kept TID `t` sees it:
//! `create_tid <= t < delete_tid`, or it is live (`delete_tid` 0). The kept
//! TIDs are the snapshots, the current state (a master's last TID, a
//! slave's `sync_end_tid`), the TIDs the rules pick, every TID younger than
//! the PFS's `prune-min`, and everything at or above the lowest TID a
//! target acknowledged (unless forced). So `export --as-of` any kept TID
//! shows what it showed before, byte for byte.
//!
//! What the store remembers in its `meta` table:
//!
//! * `prune_h` and `prune_kept`: the TIDs whose state is still whole
//!   (every TID at or above `prune_h`, and the listed ones below it). Only
//!   those are candidates for the rules of a later prune, so a rule never
//!   "keeps" a TID an earlier prune already took apart. Written before
//!   anything is removed.
//! * `pruned_to`: the highest delete TID of a record removed, written in
//!   the same commit as the removal. A target whose `sync_end_tid` is below
//!   it may hold a record whose removal no incremental pass can tell it
//!   about: mirror-read gives it a full sweep pass instead.
//! * `target:<uuid>`: per target (its unique uuid, as its PFSD says during
//!   copy and stream), the TID it last acknowledged, when, and its label.
//!
//! Removal walks the records in key order, [`SCAN_BATCH`] per LMDB commit,
//! so memory stays bounded and a kill at any moment leaves a store whose
//! kept TIDs are all whole (each commit removes only records no kept TID
//! sees). The freed pages go back to LMDB's free list and are reused by
//! later writes; `compact` gives them back to the file system.

use std::ops::Bound;

use heed::{RoTxn, RwTxn};

use super::Store;
use super::keys::{self, KEY_LEN, Key, TID_KEY_LEN};
use crate::ioctl::{Pfs, PfsError, Result};
use crate::mrecord::{PseudofsData, uuid_from_wire};
use crate::retention::Rules;

/// Records examined per LMDB commit (`HAMMER_MIRROR_PRUNE_BATCH` sets
/// another number, for the kill tests).
#[cfg(not(test))]
pub const SCAN_BATCH: usize = 8192;
#[cfg(test)]
pub const SCAN_BATCH: usize = 7;

fn scan_batch() -> usize {
    std::env::var("HAMMER_MIRROR_PRUNE_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SCAN_BATCH)
}

const KEY_H: &str = "prune_h";
const KEY_KEPT: &str = "prune_kept";
const KEY_PRUNED_TO: &str = "pruned_to";
const TARGET_PREFIX: &str = "target:";
/// The longest label kept per target.
const LABEL_MAX: usize = 64;

/// What a prune keeps besides snapshots and the current state.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `--keep`; None keeps only the snapshots and the current state.
    pub rules: Option<Rules>,
    /// `--force-below-targets`: the targets' acknowledged TIDs hold nothing back.
    pub force_below_targets: bool,
    /// The time the rules count ages from (seconds since the epoch).
    pub now: u64,
}

/// A target known to a master: the TID it last acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub uuid: [u8; 16],
    pub tid: u64,
    /// When it acknowledged it (seconds since the epoch).
    pub time: u64,
    pub label: String,
}

impl Target {
    /// How messages name it: its uuid, and its label when it has one.
    pub fn name(&self) -> String {
        let u = uuid_from_wire(&self.uuid);
        if self.label.is_empty() { format!("target {u}") } else { format!("target {u} (label \"{}\")", self.label) }
    }
}

/// Why a TID is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    Snapshot(String),
    Rule,
    PruneMin,
    /// At or above the lowest acknowledged TID.
    Target,
    Current,
}

impl Why {
    pub fn as_str(&self) -> &'static str {
        match self {
            Why::Snapshot(_) => "snapshot",
            Why::Rule => "rule",
            Why::PruneMin => "prune-min",
            Why::Target => "target",
            Why::Current => "current",
        }
    }
}

/// What a prune does: decided in one read transaction.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The kept TIDs below `horizon`, in order, with why (a snapshot first).
    pub kept: Vec<(u64, Why)>,
    /// Every TID at or above it stays whole; no record deleted after it goes.
    pub horizon: u64,
    /// Why the horizon is not higher.
    pub horizon_why: Why,
    /// The target whose acknowledged TID is the horizon, when one is.
    pub held_by: Option<Target>,
    /// The lowest acknowledged target when `--force-below-targets` set it aside.
    pub overridden: Option<Target>,
    /// The current state's TID.
    pub current: u64,
    /// Record versions and data bytes that go.
    pub records: u64,
    pub bytes: u64,
    /// What is whole afterwards (stored before anything is removed).
    new_h: u64,
    new_kept: Vec<u64>,
}

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub records: u64,
    pub bytes: u64,
    pub commits: u64,
}

fn u64_at(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[..8]);
    u64::from_le_bytes(b)
}

/// The TIDs whose state is whole: (`prune_h`, the listed ones below it).
fn whole(store: &Store, txn: &RoTxn<'_>) -> Result<(u64, Vec<u64>)> {
    let h = store.meta_u64(txn, KEY_H)?.unwrap_or(0);
    let kept = match store.get_meta(txn, KEY_KEPT)? {
        None => Vec::new(),
        Some(v) if v.len().is_multiple_of(8) => v.chunks_exact(8).map(u64_at).collect(),
        Some(_) => return Err(store.corrupt("meta prune_kept has a bad length")),
    };
    Ok((h, kept))
}

/// Whether the state as of `tid` is still whole (no prune took it apart);
/// else the lowest TID from which every one is.
pub fn whole_at(store: &Store, tid: u64) -> Result<std::result::Result<(), u64>> {
    let txn = store.read_txn()?;
    let (h, kept) = whole(store, &txn)?;
    Ok(if tid >= h || kept.binary_search(&tid).is_ok() { Ok(()) } else { Err(h) })
}

/// The highest delete TID of a record any prune removed (0: none).
pub fn pruned_to(store: &Store) -> Result<u64> {
    let txn = store.read_txn()?;
    Ok(store.meta_u64(&txn, KEY_PRUNED_TO)?.unwrap_or(0))
}

fn target_key(uuid: &[u8; 16]) -> String {
    format!("{TARGET_PREFIX}{}", uuid_from_wire(uuid).simple())
}

/// The targets this PFS knows, lowest acknowledged TID first.
pub fn targets(store: &Store) -> Result<Vec<Target>> {
    let txn = store.read_txn()?;
    targets_in(store, &txn)
}

fn targets_in(store: &Store, txn: &RoTxn<'_>) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for item in store.db.meta.prefix_iter(txn, TARGET_PREFIX).map_err(|e| store.err("read", e))? {
        let (k, v) = item.map_err(|e| store.err("read", e))?;
        let v = keys::open_meta(k, v).ok_or_else(|| PfsError::Damaged {
            path: store.path.clone(),
            detail: format!("the store's {k:?} entry fails its checksum"),
        })?;
        let hex = &k[TARGET_PREFIX.len()..];
        let uuid = uuid::Uuid::try_parse(hex).map_err(|_| store.corrupt(format!("meta {k}: not a uuid")))?;
        if v.len() < 16 {
            return Err(store.corrupt(format!("meta {k} has a bad length")));
        }
        out.push(Target {
            uuid: uuid.to_bytes_le(),
            tid: u64_at(&v[..8]),
            time: u64_at(&v[8..16]),
            label: String::from_utf8_lossy(&v[16..]).into_owned(),
        });
    }
    out.sort_by_key(|t| (t.tid, t.uuid));
    Ok(out)
}

/// Records that the target described by `target` acknowledged `tid`.
pub fn record_ack(store: &Store, target: &PseudofsData, tid: u64) -> Result<()> {
    let mut txn = store.write_txn()?;
    let mut v = Vec::with_capacity(16 + LABEL_MAX);
    v.extend_from_slice(&tid.to_le_bytes());
    v.extend_from_slice(&u64::from(super::now_secs()).to_le_bytes());
    let label = target.label_str();
    let mut end = label.len().min(LABEL_MAX);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    v.extend_from_slice(&label.as_bytes()[..end]);
    store.put_meta(&mut txn, &target_key(&target.unique_uuid), &v)?;
    store.commit(txn, "record the target's acknowledgement")
}

/// Forgets a target (it no longer holds prunes back). False when unknown.
pub fn forget_target(store: &Store, uuid: &[u8; 16]) -> Result<bool> {
    let mut txn = store.write_txn()?;
    let gone = store.db.meta.delete(&mut txn, &target_key(uuid)).map_err(|e| store.err("prune", e))?;
    store.commit(txn, "prune")?;
    Ok(gone)
}

/// The distinct TIDs of the TID index up to `last`, with their times (the
/// create or delete time of a record changed at each).
fn tid_times(store: &Store, txn: &RoTxn<'_>, last: u64) -> Result<Vec<(u64, u64)>> {
    let err = |e| store.err("prune", e);
    let mut out = Vec::new();
    let mut from = 0u64;
    loop {
        let lo = keys::tid_key(from, &[0; KEY_LEN]);
        let range = (Bound::Included(&lo[..]), Bound::Unbounded);
        let Some(item) = store.db.tids.range(txn, &range).map_err(err)?.next() else { break };
        let (k, v) = item.map_err(err)?;
        keys::check_tid_entry(k, v).map_err(|d| store.damaged(k, d))?;
        let k: [u8; TID_KEY_LEN] = k.try_into().map_err(|_| store.corrupt("bad TID index entry"))?;
        let tid = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
        if tid > last {
            break;
        }
        let rec = &k[8..];
        let v = store.db.recs.get(txn, rec).map_err(err)?;
        let time = match v.and_then(|v| keys::decode_leaf(rec, v, 0).ok()) {
            Some((leaf, _)) if leaf.base.create_tid == tid => leaf.create_ts,
            Some((leaf, _)) => leaf.delete_ts,
            None => 0,
        };
        out.push((tid, u64::from(time)));
        match tid.checked_add(1) {
            Some(n) => from = n,
            None => break,
        }
    }
    Ok(out)
}

/// Decides what a prune of `store` under `policy` keeps and removes (a
/// dry run is this alone).
pub fn plan(store: &Store, policy: &Policy) -> Result<Plan> {
    let txn = store.read_txn()?;
    let pfsd = store.pfsd_in(&txn)?;
    let current = pfsd.sync_end_tid;
    let (old_h, old_kept) = whole(store, &txn)?;
    let is_whole = |t: u64| t >= old_h || old_kept.binary_search(&t).is_ok();
    let candidates: Vec<(u64, u64)> = tid_times(store, &txn, current)?.into_iter().filter(|c| is_whole(c.0)).collect();

    // Picks: the rules, and everything younger than prune-min.
    let mut why: Vec<Option<Why>> = match &policy.rules {
        Some(r) => r.pick(policy.now, &candidates).into_iter().map(|k| k.then_some(Why::Rule)).collect(),
        None => vec![None; candidates.len()],
    };
    let prune_min = u64::try_from(pfsd.prune_min).unwrap_or(0);
    if prune_min > 0 {
        for (w, &(_, time)) in why.iter_mut().zip(&candidates) {
            if w.is_none() && time.saturating_add(prune_min) > policy.now {
                *w = Some(Why::PruneMin);
            }
        }
    }
    let snaps = store.snapshots()?;
    let snap_note = |t: u64| snaps.binary_search_by_key(&t, |s| s.tid).ok().map(|i| snaps[i].label_str());

    // The horizon: the current state, the lowest target, and the start of
    // the longest run of kept candidates that reaches the current state.
    let mut horizon = current;
    let mut horizon_why = Why::Current;
    let (mut held_by, mut overridden) = (None, None);
    let lowest = targets_in(store, &txn)?.into_iter().next();
    if let Some(t) = lowest {
        if policy.force_below_targets {
            overridden = (t.tid < current).then_some(t);
        } else if t.tid < horizon {
            horizon = t.tid;
            horizon_why = Why::Target;
            held_by = Some(t);
        }
    }
    let run = candidates.iter().zip(&why).rev().take_while(|(c, w)| w.is_some() || snap_note(c.0).is_some());
    if let Some(((first, _), w)) = run.last()
        && *first < horizon
    {
        horizon = *first;
        horizon_why = w.clone().unwrap_or(Why::Snapshot(String::new()));
        held_by = None;
    }

    let mut kept: Vec<(u64, Why)> = Vec::new();
    for (&(tid, _), w) in candidates.iter().zip(&why) {
        if tid >= horizon {
            break;
        }
        if let Some(note) = snap_note(tid) {
            kept.push((tid, Why::Snapshot(note)));
        } else if let Some(w) = w {
            kept.push((tid, w.clone()));
        }
    }
    // Snapshots of TIDs that are no candidates (never changed anything, or
    // taken apart before the snapshot was made) keep what they see too.
    for s in &snaps {
        if s.tid < horizon && kept.binary_search_by_key(&s.tid, |k| k.0).is_err() {
            let at = kept.partition_point(|k| k.0 < s.tid);
            kept.insert(at, (s.tid, Why::Snapshot(s.label_str())));
        }
    }
    let new_h = horizon.max(old_h);
    let mut new_kept: Vec<u64> = kept.iter().map(|k| k.0).filter(|&t| is_whole(t)).collect();
    new_kept.extend(old_kept.iter().copied().filter(|&t| t >= horizon && t < new_h));
    new_kept.sort_unstable();
    new_kept.dedup();

    let mut p =
        Plan { kept, horizon, horizon_why, held_by, overridden, current, records: 0, bytes: 0, new_h, new_kept };
    drop(txn);
    // Count what goes (the same walk as the removal, without removing).
    let mut from: Option<Key> = None;
    loop {
        let txn = store.read_txn()?;
        let (batch, next) = doomed(store, &txn, &p, from)?;
        for (_, _, bytes) in &batch {
            p.records += 1;
            p.bytes += bytes;
        }
        match next {
            Some(k) => from = Some(k),
            None => return Ok(p),
        }
    }
}

/// The records of one batch that go, from key `from` (the first one when
/// None): (key, delete_tid, data bytes), and where the next batch starts.
#[allow(clippy::type_complexity)]
fn doomed(store: &Store, txn: &RoTxn<'_>, p: &Plan, from: Option<Key>) -> Result<(Vec<(Key, u64, u64)>, Option<Key>)> {
    let err = |e| store.err("prune", e);
    let lo = from.unwrap_or([0; KEY_LEN]);
    let range = (Bound::Included(&lo[..]), Bound::Unbounded);
    let mut out = Vec::new();
    let mut last = None;
    let batch = scan_batch();
    for (n, item) in store.db.recs.range(txn, &range).map_err(err)?.enumerate() {
        if n == batch {
            return Ok((out, last.and_then(|k| keys::successor(&k))));
        }
        let (k, v) = item.map_err(err)?;
        let key: Key = k.try_into().map_err(|_| store.corrupt("bad record key"))?;
        last = Some(key);
        store.touched(v);
        let (leaf, _) = keys::decode_leaf(k, v, store.pfs_id).map_err(|d| store.damaged(k, d))?;
        let (c, d) = (leaf.base.create_tid, leaf.base.delete_tid);
        if d == 0 || d > p.horizon {
            continue;
        }
        // The first kept TID at or after its creation must be before its deletion.
        let i = p.kept.partition_point(|k| k.0 < c);
        if p.kept.get(i).is_some_and(|k| k.0 < d) {
            continue;
        }
        out.push((key, d, leaf.data_len.max(0) as u64));
    }
    Ok((out, None))
}

/// Runs `f` with the store open for writing: `store` itself when it is,
/// else the same file opened for writing for the time of `f`, so that a
/// long prune lets other writers (import, watch, a stream's pass) in
/// between its batches. Other writers never change what a plan removes:
/// they create and delete above the current state, and a plan removes only
/// records deleted at or before it.
fn with_writer<R>(store: &Store, f: impl FnOnce(&Store) -> Result<R>) -> Result<R> {
    if store.is_writable() {
        return f(store);
    }
    let w = Store::open(Pfs::path(store), super::Access::Write)?;
    if w.db.ino != store.db.ino {
        return Err(PfsError::invalid(
            Pfs::path(store),
            "prune",
            "the store file was replaced (compacted) during the prune; prune again",
        ));
    }
    f(&w)
}

/// Carries out `p` (made by [`plan`] on this store): first records what
/// stays whole, then removes in batches, each an LMDB commit of its own
/// under the writer lock (taken per batch when `store` is open read-only).
pub fn apply(store: &Store, p: &Plan) -> Result<Outcome> {
    let mut out = Outcome::default();
    with_writer(store, |w| {
        let mut txn = w.write_txn()?;
        // What another prune took apart since the plan stays taken apart.
        let (h, kept) = whole(w, &txn)?;
        let new_h = p.new_h.max(h);
        let list: Vec<u8> = p
            .new_kept
            .iter()
            .filter(|&&t| t < new_h && (t >= h || kept.binary_search(&t).is_ok()))
            .flat_map(|t| t.to_le_bytes())
            .collect();
        w.put_meta(&mut txn, KEY_H, &new_h.to_le_bytes())?;
        w.put_meta(&mut txn, KEY_KEPT, &list)?;
        w.commit(txn, "prune")
    })?;
    out.commits += 1;
    let mut from: Option<Key> = None;
    loop {
        let next = with_writer(store, |w| batch(w, p, from, &mut out))?;
        match next {
            Some(k) => from = Some(k),
            None => return Ok(out),
        }
    }
}

/// One batch of [`apply`]; where the next one starts.
fn batch(store: &Store, p: &Plan, from: Option<Key>, out: &mut Outcome) -> Result<Option<Key>> {
    {
        let mut txn = store.write_txn()?;
        let (batch, next) = doomed(store, &txn, p, from)?;
        if !batch.is_empty() {
            let mut high = store.meta_u64(&txn, KEY_PRUNED_TO)?.unwrap_or(0);
            for (key, d, bytes) in &batch {
                remove(store, &mut txn, key, *d)?;
                high = high.max(*d);
                out.records += 1;
                out.bytes += bytes;
            }
            store.put_meta(&mut txn, KEY_PRUNED_TO, &high.to_le_bytes())?;
            store.commit(txn, "prune")?;
            out.commits += 1;
        }
        Ok(next)
    }
}

/// Erases one record version and its TID index entries.
fn remove(store: &Store, txn: &mut RwTxn<'_>, key: &Key, delete_tid: u64) -> Result<()> {
    let err = |e| store.err("prune", e);
    let create_tid = keys::decode_key(key, 0).create_tid;
    store.erase_record(txn, &key[..]).map_err(err)?;
    store.db.tids.delete(txn, &keys::tid_key(create_tid, key)[..]).map_err(err)?;
    store.db.tids.delete(txn, &keys::tid_key(delete_tid, key)[..]).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hammerfs::{HAMMER_LOCALIZE_INODE, HAMMER_RECTYPE_INODE};
    use crate::store::master::MasterTxn;
    use crate::store::tests::new_pfsd;

    /// One TID per step: object 0x1000's inode rewritten (the old version deleted).
    fn history(s: &Store, steps: u8) -> Vec<u64> {
        let mut tids = Vec::new();
        for i in 0..steps {
            let mut t = MasterTxn::begin(s).unwrap();
            for (k, leaf) in t.live_heads_of(HAMMER_LOCALIZE_INODE, 0x1000).unwrap() {
                let _ = leaf;
                t.delete(&k).unwrap();
            }
            t.create(HAMMER_LOCALIZE_INODE, 0x1000, HAMMER_RECTYPE_INODE, 0, 1, &[i; 100]).unwrap();
            tids.push(t.commit().unwrap());
        }
        tids
    }

    fn as_of(s: &Store, t: u64) -> Vec<(u64, Vec<u8>)> {
        let mut v = Vec::new();
        s.for_each_as_of(t, |l, d| {
            v.push((l.base.create_tid, d.to_vec()));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn only_what_no_kept_tid_sees_goes_and_the_targets_hold_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::create(&dir.path().join("m"), &new_pfsd(false, [1; 16]), 1).unwrap();
        let tids = history(&s, 20);
        s.add_snapshots(&[crate::hammerfs::SnapshotData::new(tids[3], 0, b"kept")]).unwrap();
        let before: Vec<_> = tids.iter().map(|&t| as_of(&s, t)).collect();
        let slave = PseudofsData { unique_uuid: [9; 16], ..new_pfsd(true, [1; 16]) };
        record_ack(&s, &slave, tids[10]).unwrap();

        let p = plan(&s, &Policy::default()).unwrap();
        assert_eq!(p.horizon, tids[10], "the target holds everything from its TID back");
        assert_eq!(p.held_by.as_ref().unwrap().uuid, [9; 16]);
        assert_eq!(p.kept.iter().map(|k| k.0).collect::<Vec<_>>(), [tids[3]]);
        assert_eq!(p.records, 9, "versions 0-2 and 4-9: those seen only by unkept TIDs below the target");
        let o = apply(&s, &p).unwrap();
        assert_eq!((o.records, o.bytes), (9, 900));
        assert!(o.commits >= 3, "in batches: {o:?}");
        for (i, &t) in tids.iter().enumerate() {
            if i == 3 || i >= 10 {
                assert_eq!(as_of(&s, t), before[i], "kept TID {i}");
            }
        }
        assert_eq!(pruned_to(&s).unwrap(), tids[10]);

        // Forced: only the snapshot and the current state stay.
        let p = plan(&s, &Policy { force_below_targets: true, ..Default::default() }).unwrap();
        assert_eq!(p.overridden.as_ref().unwrap().tid, tids[10]);
        let current = s.get_pseudofs().unwrap().sync_end_tid;
        assert!(current > tids[19], "the snapshot record has a TID of its own");
        assert_eq!(p.horizon, current);
        apply(&s, &p).unwrap();
        assert_eq!(as_of(&s, tids[3]), before[3]);
        assert_eq!(as_of(&s, tids[19]), before[19]);
        assert_eq!(s.record_count().unwrap(), 3, "root-less: versions 3 and 19 and the snapshot record");
        // Nothing is left to go, and a later prune keeps what is whole.
        assert_eq!(plan(&s, &Policy::default()).unwrap().records, 0);
    }

    #[test]
    fn rules_pick_only_whole_tids() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(&dir.path().join("m"), &new_pfsd(false, [1; 16]), 1).unwrap();
        let tids = history(&s, 6);
        let now = u64::from(crate::store::now_secs());
        // Everything younger than an hour: all kept, nothing goes.
        let all = Policy { rules: Some(Rules::parse("1h:all").unwrap()), now, ..Default::default() };
        let p = plan(&s, &all).unwrap();
        assert_eq!((p.records, p.horizon), (0, tids[0]));
        apply(&s, &p).unwrap();
        // Prune to the current state; then the same rules find nothing whole below it.
        apply(&s, &plan(&s, &Policy::default()).unwrap()).unwrap();
        let p = plan(&s, &all).unwrap();
        assert!(p.kept.is_empty(), "{:?}", p.kept);
        assert_eq!(p.horizon, tids[5]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

        /// Random histories: after a prune, every kept TID shows what it
        /// showed before, and what remains is only what some kept TID sees;
        /// a second prune with other rules keeps that.
        #[test]
        fn a_prune_keeps_exactly_what_kept_tids_see(
            steps in proptest::collection::vec((proptest::collection::vec(0u8..5, 0..4), proptest::bool::ANY), 1..14),
            ack in proptest::option::of(0usize..14),
            force in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Store::create(&dir.path().join("m"), &new_pfsd(false, [1; 16]), 1).unwrap();
            let mut tids = Vec::new();
            for (i, (objs, snap)) in steps.iter().enumerate() {
                let mut t = MasterTxn::begin(&s).unwrap();
                for &o in objs {
                    let obj = 0x1000 + i64::from(o);
                    for (k, _) in t.live_heads_of(HAMMER_LOCALIZE_INODE, obj).unwrap() {
                        t.delete(&k).unwrap();
                    }
                    if !(i + o as usize).is_multiple_of(3) {
                        t.create(HAMMER_LOCALIZE_INODE, obj, HAMMER_RECTYPE_INODE, 0, 1, &[i as u8; 40]).unwrap();
                    }
                }
                // An empty transaction commits no TID of its own.
                t.create(HAMMER_LOCALIZE_INODE, 0x2000 + i as i64, HAMMER_RECTYPE_INODE, 0, 1, &[1; 8]).unwrap();
                let tid = t.commit().unwrap();
                tids.push(tid);
                if *snap {
                    s.add_snapshots(&[crate::hammerfs::SnapshotData::new(tid, 0, b"s")]).unwrap();
                    tids.push(s.get_pseudofs().unwrap().sync_end_tid);
                }
            }
            if let Some(a) = ack {
                let slave = PseudofsData { unique_uuid: [9; 16], ..new_pfsd(true, [1; 16]) };
                record_ack(&s, &slave, tids[a.min(tids.len() - 1)]).unwrap();
            }
            let before: Vec<_> = tids.iter().map(|&t| as_of(&s, t)).collect();
            let p = plan(&s, &Policy { force_below_targets: force, ..Default::default() }).unwrap();
            let kept: Vec<u64> = tids
                .iter()
                .copied()
                .filter(|&t| t >= p.horizon || p.kept.iter().any(|k| k.0 == t))
                .collect();
            let o = apply(&s, &p).unwrap();
            proptest::prop_assert_eq!(o.records, p.records);
            for (i, &t) in tids.iter().enumerate() {
                if kept.contains(&t) {
                    proptest::prop_assert_eq!(&as_of(&s, t), &before[i], "kept TID {}", i);
                }
            }
            // Nothing remains that no kept TID sees.
            let txn = s.read_txn().unwrap();
            for item in s.db.recs.iter(&txn).unwrap() {
                let (k, v) = item.unwrap();
                let (leaf, _) = keys::decode_leaf(k, v, 1).unwrap();
                let (c, d) = (leaf.base.create_tid, leaf.base.delete_tid);
                let seen = d == 0 || d > p.horizon || kept.iter().any(|&t| c <= t && t < d)
                    || p.kept.iter().any(|k| c <= k.0 && k.0 < d);
                proptest::prop_assert!(seen, "record {:x}..{:x} is seen by no kept TID", c, d);
            }
            drop(txn);
            // A second prune that would keep everything whole changes none of it.
            let now = u64::from(crate::store::now_secs());
            let all = Policy { rules: Some(Rules::parse("1h:all").unwrap()), now, force_below_targets: force };
            let again = plan(&s, &all).unwrap();
            proptest::prop_assert_eq!(again.records, 0);
            apply(&s, &again).unwrap();
            for (i, &t) in tids.iter().enumerate() {
                if kept.contains(&t) {
                    proptest::prop_assert_eq!(&as_of(&s, t), &before[i], "kept TID {} after a second prune", i);
                }
            }
        }
    }
}
