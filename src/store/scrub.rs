//! `scrub`: reads and checks every page, record, blob, TID index entry and meta entry of a store PFS, naming what is damaged by path and TID.
//!
//! First the file's B-trees are walked page by page with plain reads (the
//! checks of [`super::lmdbfile::Pages::walk`]: what LMDB would trust), all
//! inside one read transaction, so that no writer reuses the pages walked.
//! The tables whose pages are sound are then read through LMDB: every
//! record's leaf and data against their checksums and HAMMER's data CRC;
//! every TID index entry against its checksum and its record, and every
//! record against the index entries it needs; every blob against its
//! record; every meta entry against its checksum. Damaged records are
//! named by their key fields, TID and, where the PFS's directory entries
//! reach the object, its path. Memory stays bounded: findings beyond
//! [`MAX_FINDINGS`] are only counted, and the map's pages are released as
//! a reader's are.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::keys::{self, Damage};
use super::layout::{LAYOUT_KEY, MAGIC_KEY, TABLES};
use super::{Store, lmdbfile};
use crate::hammerfs::{DirEntryData, HAMMER_OBJID_ROOT, HAMMER_OBJTYPE_DIRECTORY, HAMMER_RECTYPE_DIRENTRY};
use crate::ioctl::{Pfs, Result};
use crate::mrecord::PseudofsData;

/// Findings kept (and printed) at most; the rest are counted.
pub const MAX_FINDINGS: usize = 10_000;

/// One damaged thing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// "page", "record", "index", "blob" or "meta".
    pub kind: &'static str,
    /// The table it is in.
    pub table: String,
    /// For a record: its key fields (as its key says) and the path of its object, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordId>,
    pub what: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordId {
    pub obj_id: String,
    pub rec_type: u16,
    pub key: String,
    pub tid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The leaf is intact (only the data is damaged, or an index entry is missing).
    pub leaf_intact: bool,
    #[serde(skip)]
    pub raw: Option<keys::Key>,
}

/// What a scrub found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub pages: u64,
    pub bytes: u64,
    pub records: u64,
    pub index_entries: u64,
    pub blobs: u64,
    pub meta_entries: u64,
    pub findings: Vec<Finding>,
    /// Findings beyond [`MAX_FINDINGS`].
    pub more: u64,
    pub seconds: f64,
}

impl Report {
    pub fn damaged(&self) -> u64 {
        self.findings.len() as u64 + self.more
    }

    fn add(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.more += 1;
        }
    }

    /// The keys of the damaged records found (for `repair`), and whether
    /// each one's leaf is intact.
    pub fn damaged_records(&self) -> Vec<(keys::Key, bool, Option<String>)> {
        self.findings
            .iter()
            .filter(|f| f.kind == "record")
            .filter_map(|f| f.record.as_ref().and_then(|r| Some((r.raw?, r.leaf_intact, r.path.clone()))))
            .collect()
    }
}

fn hex(v: u64) -> String {
    format!("0x{v:016x}")
}

/// Scrubs `store`; see the module documentation.
pub fn scrub(store: &Store) -> Result<Report> {
    let start = Instant::now();
    let path = Pfs::path(store).to_path_buf();
    let mut r = Report::default();
    let txn = store.read_txn()?;
    let data = &store.db.files.data;
    let (meta, len) = lmdbfile::read_meta(data).map_err(|p| super::file::problem(&path, p))?;
    let pages = lmdbfile::Pages::new(data, meta, len);
    let mut sound: HashSet<String> = HashSet::new();
    let mut seen = lmdbfile::PageSet::new(meta.last_pg);
    match pages.trees(&TABLES) {
        Err(p) => r.add(page_finding("main", p)),
        Ok(trees) => {
            for (name, db) in trees {
                match pages.walk(&db, name == "main", &mut seen) {
                    Ok((n, bytes)) => {
                        r.pages += n;
                        r.bytes += bytes;
                        sound.insert(name);
                    }
                    Err(p) => r.add(page_finding(&name, p)),
                }
            }
        }
    }
    r.pages += 2; // the meta pages
    let err = |e| store.err("scrub", e);
    if sound.contains("meta") {
        for item in store.db.meta.iter(&txn).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            r.meta_entries += 1;
            if k == MAGIC_KEY || k == LAYOUT_KEY {
                continue;
            }
            match keys::open_meta(k, v) {
                None => r.add(Finding {
                    kind: "meta",
                    table: "meta".into(),
                    record: None,
                    what: format!("the entry {k:?} fails its checksum"),
                }),
                Some(v) if k == "pfsd" && v.len() != PseudofsData::SIZE => r.add(Finding {
                    kind: "meta",
                    table: "meta".into(),
                    record: None,
                    what: format!("the PFS description holds {} bytes, not {}", v.len(), PseudofsData::SIZE),
                }),
                Some(_) => {}
            }
        }
    }
    // Records: their own checks, and the index entries they need.
    let mut parents: HashMap<i64, (u64, i64, Vec<u8>)> = HashMap::new();
    let mut hurt: Vec<(usize, i64)> = Vec::new();
    if sound.contains("recs") {
        for item in store.db.recs.iter(&txn).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            store.touched(v);
            r.records += 1;
            let leaf = match keys::decode_leaf(k, v, store.pfs_id) {
                Ok((leaf, _)) => leaf,
                Err(d) => {
                    record_finding(&mut r, &mut hurt, k, false, d.to_string());
                    continue;
                }
            };
            let (data, check) = store.record_data_checked(&txn, k, &leaf, v)?;
            if let Err(d) = check {
                record_finding(&mut r, &mut hurt, k, true, d.to_string());
                continue;
            }
            let b = &leaf.base;
            // Directories' names are kept (a few per directory); other
            // objects are looked up later, only when damaged.
            if b.rec_type == HAMMER_RECTYPE_DIRENTRY && b.obj_type == HAMMER_OBJTYPE_DIRECTORY {
                name_entry(&mut parents, &leaf, &data);
            }
            if sound.contains("tids") {
                let key: &keys::Key = k.try_into().expect("checked length");
                for tid in [b.create_tid, b.delete_tid] {
                    if tid == 0 {
                        continue;
                    }
                    let t = keys::tid_key(tid, key);
                    if store.db.tids.get(&txn, &t[..]).map_err(err)?.is_none() {
                        record_finding(
                            &mut r,
                            &mut hurt,
                            k,
                            true,
                            format!("the TID index lacks its entry for TID {}", hex(tid)),
                        );
                    }
                }
            }
        }
    }
    if sound.contains("tids") {
        for item in store.db.tids.iter(&txn).map_err(err)? {
            let (t, v) = item.map_err(err)?;
            r.index_entries += 1;
            // The entry's page and its record's: the faults map the pages around them too.
            store.count_resident(16 << 10);
            let bad = |what: String| Finding { kind: "index", table: "tids".into(), record: None, what };
            if keys::check_tid_entry(t, v).is_err() {
                let what = if t.len() == keys::TID_KEY_LEN {
                    format!(
                        "the entry for TID {} of {}: {}",
                        hex(tid_of(t)),
                        super::describe_key(&t[8..]),
                        Damage::Index
                    )
                } else {
                    format!("an entry of {} bytes: {}", t.len(), Damage::Index)
                };
                r.add(bad(what));
                continue;
            }
            if !sound.contains("recs") {
                continue;
            }
            let tid = tid_of(t);
            let k = &t[8..];
            let names = match store.db.recs.get(&txn, k).map_err(err)? {
                None => false,
                Some(v) => match keys::check_value(k, v) {
                    Ok(h) => keys::decode_key(k, 0).create_tid == tid || h.delete_tid == tid,
                    // The record is reported damaged already.
                    Err(_) => true,
                },
            };
            if !names {
                r.add(bad(format!(
                    "the entry for TID {} names {}, which has no change at that TID",
                    hex(tid),
                    super::describe_key(k)
                )));
            }
        }
    }
    if sound.contains("blobs") && sound.contains("recs") {
        for item in store.db.blobs.iter(&txn).map_err(err)? {
            let (k, _) = item.map_err(err)?;
            r.blobs += 1;
            // LMDB reads each blob's first overflow page header.
            store.count_resident(64 << 10);
            let orphan = match store.db.recs.get(&txn, k).map_err(err)? {
                None => true,
                Some(v) => match keys::check_value(k, v) {
                    Ok(h) => h.data_len as usize <= v.len() - keys::VALUE_HEAD,
                    // The record is reported damaged already.
                    Err(_) => false,
                },
            };
            if orphan {
                r.add(Finding {
                    kind: "blob",
                    table: "blobs".into(),
                    record: None,
                    what: format!("a blob under {} that no record holds", super::describe_key(k)),
                });
            }
        }
    }
    // Name the damaged records' objects: their entries, found in one more walk.
    let wanted: HashSet<i64> = hurt.iter().map(|(_, o)| *o).filter(|o| !parents.contains_key(o)).collect();
    if !wanted.is_empty() && sound.contains("recs") {
        for item in store.db.recs.iter(&txn).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            store.touched(v);
            if k.len() != keys::KEY_LEN || keys::decode_key(k, 0).rec_type != HAMMER_RECTYPE_DIRENTRY {
                continue;
            }
            let Ok((leaf, _)) = keys::decode_leaf(k, v, store.pfs_id) else { continue };
            if let (data, Ok(())) = store.record_data_checked(&txn, k, &leaf, v)?
                && DirEntryData::decode(&data).is_some_and(|e| wanted.contains(&e.obj_id))
            {
                name_entry(&mut parents, &leaf, &data);
            }
        }
    }
    for (i, obj) in hurt {
        if let Some(rec) = r.findings.get_mut(i).and_then(|f| f.record.as_mut()) {
            rec.path = path_of(&parents, obj);
        }
    }
    r.seconds = start.elapsed().as_secs_f64();
    Ok(r)
}

/// Keeps the entry `data` of directory record `leaf` as its target's name
/// when it names it best (the newest live entry).
fn name_entry(parents: &mut HashMap<i64, (u64, i64, Vec<u8>)>, leaf: &crate::mrecord::LeafElm, data: &[u8]) {
    let Some(e) = DirEntryData::decode(data) else { return };
    let b = &leaf.base;
    let rank = if b.delete_tid == 0 { u64::MAX } else { b.create_tid };
    if parents.get(&e.obj_id).is_none_or(|(r0, ..)| rank >= *r0) {
        parents.insert(e.obj_id, (rank, b.obj_id, e.name));
    }
}

fn tid_of(t: &[u8]) -> u64 {
    u64::from_be_bytes(t[..8].try_into().expect("8 bytes"))
}

fn page_finding(table: &str, p: lmdbfile::Problem) -> Finding {
    let what = match p {
        lmdbfile::Problem::Bad(s) => s,
        lmdbfile::Problem::Io(e) => format!("read error: {e}"),
    };
    Finding { kind: "page", table: table.into(), record: None, what }
}

fn record_finding(r: &mut Report, hurt: &mut Vec<(usize, i64)>, k: &[u8], leaf_intact: bool, what: String) {
    let record = (k.len() == keys::KEY_LEN).then(|| {
        let b = keys::decode_key(k, 0);
        if r.findings.len() < MAX_FINDINGS {
            hurt.push((r.findings.len(), b.obj_id));
        }
        RecordId {
            obj_id: hex(b.obj_id as u64),
            rec_type: b.rec_type,
            key: hex(b.key as u64),
            tid: hex(b.create_tid),
            path: None,
            leaf_intact,
            raw: k.try_into().ok(),
        }
    });
    r.add(Finding { kind: "record", table: "recs".into(), record, what });
}

/// "/a/b" for an object the directory entries reach from the root.
fn path_of(parents: &HashMap<i64, (u64, i64, Vec<u8>)>, obj: i64) -> Option<String> {
    if obj == HAMMER_OBJID_ROOT {
        return Some("/".into());
    }
    let mut parts = Vec::new();
    let mut at = obj;
    while at != HAMMER_OBJID_ROOT {
        let (_, dir, name) = parents.get(&at)?;
        parts.push(String::from_utf8_lossy(name).into_owned());
        if parts.len() > 4096 {
            return None;
        }
        at = *dir;
    }
    Some(parts.iter().rev().map(|p| format!("/{p}")).collect())
}

/// One line for a finding, as `scrub` prints it.
pub fn describe(f: &Finding) -> String {
    match &f.record {
        Some(r) => format!(
            "{}: record obj={} rt=0x{:02x} key={} TID {}: {}",
            r.path.as_deref().unwrap_or("(no path)"),
            r.obj_id,
            r.rec_type,
            r.key,
            r.tid,
            f.what
        ),
        None => format!("{} table: {}", f.table, f.what),
    }
}
