//! Store tests: mirror_read / mirror_write against each other, as the kernel's invariants require.

use super::master::MasterTxn;
use super::*;
use crate::ioctl::MirrorRw;
use crate::mrecord::{self, Record, SERIALBUF_SIZE};

pub(crate) fn new_pfsd(slave: bool, shared: [u8; 16]) -> PseudofsData {
    PseudofsData {
        sync_beg_tid: 1,
        sync_end_tid: 1,
        shared_uuid: shared,
        unique_uuid: *uuid::Uuid::new_v4().as_bytes(),
        mirror_flags: if slave { PFSD_SLAVE } else { 0 },
        ..Default::default()
    }
}

pub(super) fn pair(dir: &Path) -> (Store, Store) {
    let shared = *uuid::Uuid::new_v4().as_bytes();
    let m = Store::create(&dir.join("master"), &new_pfsd(false, shared), 3).unwrap();
    let s = Store::create(&dir.join("slave"), &new_pfsd(true, shared), 7).unwrap();
    (m, s)
}

/// Reads `(beg, end]` from `src` with a buffer of `bufsize` bytes.
pub(super) fn read_all(src: &Store, tid_beg: u64, tid_end: u64, bufsize: usize) -> Vec<u8> {
    let mut m = MirrorRw::for_read(tid_beg, tid_end);
    let mut buf = vec![0u8; bufsize];
    let mut out = Vec::new();
    loop {
        let n = src.mirror_read(&mut m, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
        m.key_beg = m.key_cur;
        if n == 0 {
            break;
        }
    }
    out
}

/// Applies `stream` to `dst` in chunks of about `chunk` bytes, then moves its sync_end_tid.
pub(super) fn apply_all(dst: &mut Store, stream: &[u8], tid_beg: u64, tid_end: u64, chunk: usize) {
    let mut w = MirrorRw::for_write(tid_beg, tid_end);
    let mut off = 0;
    while off < stream.len() {
        let mut end = off;
        while end < stream.len() && (end == off || end - off < chunk) {
            let (_, n) = mrecord::decode(&stream[end..]).unwrap();
            end += n;
        }
        dst.mirror_write(&mut w, &stream[off..end]).unwrap();
        off = end;
    }
    let mut p = dst.get_pseudofs().unwrap();
    p.sync_end_tid = tid_end;
    dst.set_pseudofs(&p).unwrap();
}

pub(super) fn visible(s: &Store, asof: u64) -> Vec<(BaseElmKey, Vec<u8>)> {
    let mut v = Vec::new();
    s.for_each_as_of(asof, |l, d| {
        let b = &l.base;
        v.push(((b.localization & 0xffff, b.obj_id, b.rec_type, b.key, b.create_tid, b.obj_type), d.to_vec()));
        Ok(())
    })
    .unwrap();
    v
}

pub(super) type BaseElmKey = (u32, i64, u16, i64, u64, u8);

pub(super) fn mirror(m: &Store, s: &mut Store, bufsize: usize, chunk: usize) -> u64 {
    let beg = s.get_pseudofs().unwrap().sync_end_tid + 1;
    let src = m.get_pseudofs().unwrap();
    let stream = read_all(m, beg, src.sync_end_tid, bufsize);
    apply_all(s, &stream, src.sync_beg_tid, src.sync_end_tid, chunk);
    src.sync_end_tid
}

#[test]
fn full_then_incremental_mirror_matches_at_every_tid() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut tids = Vec::new();
    let mut t = MasterTxn::begin(&m).unwrap();
    for obj in 0..50 {
        t.create(1, 0x1000 + obj, 1, 0, 2, &[obj as u8; 128]).unwrap();
        t.create(2, 0x1000 + obj, 0x10, 16384, 2, &vec![obj as u8; 100 + obj as usize]).unwrap();
    }
    tids.push(t.commit().unwrap());
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    assert_eq!(visible(&s, tids[0]), visible(&m, tids[0]));

    // Delete one object, change another, add a third.
    let mut t = MasterTxn::begin(&m).unwrap();
    for (k, _, _) in t.live_records_of(2, 0x1005).unwrap() {
        t.delete(&k).unwrap();
    }
    let (k, _, _) = t.live_records_of(2, 0x1007).unwrap().remove(0);
    t.delete(&k).unwrap();
    t.create(2, 0x1007, 0x10, 16384, 2, b"new").unwrap();
    t.create(1, 0x2000, 1, 0, 1, b"dir").unwrap();
    tids.push(t.commit().unwrap());

    let before = read_all(&m, tids[0] + 1, tids[1], SERIALBUF_SIZE);
    let recs: Vec<_> = mrecord::records(&before).map(Result::unwrap).collect();
    assert!(matches!(recs[0], Record::Skip { .. }), "incremental starts with a SKIP: {:?}", recs[0]);
    assert_eq!(recs.iter().filter(|r| !matches!(r, Record::Skip { .. })).count(), 4);

    // The smallest buffer and one-record chunks must give the same result.
    mirror(&m, &mut s, mrecord::MAX_REC_SIZE, 1);
    for &t in &tids {
        assert_eq!(visible(&s, t), visible(&m, t), "as of {t:x}");
    }
    assert_eq!(s.get_pseudofs().unwrap().sync_end_tid, tids[1]);
}

#[test]
fn index_and_walk_scans_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    let mut tids = vec![];
    for round in 0..3u8 {
        let mut t = MasterTxn::begin(&m).unwrap();
        for obj in 0..3000 {
            if obj % 7 == round as i64 {
                t.create(2, 0x1000 + obj, 0x10, round as i64 * 16384 + 16384, 2, &[round; 10]).unwrap();
            }
        }
        tids.push(t.commit().unwrap());
    }
    // The last round changed ~430 of ~1300 records: the index is used when
    // the limit allows, the walk otherwise; both must produce the same bytes.
    let by_index = read_all(&m, tids[1] + 1, tids[2], mrecord::MAX_REC_SIZE);
    *m.scan_cache.lock().unwrap() = Some(scan::ChangeCache::forced_walk(tids[1] + 1, tids[2], &m));
    let mut mm = MirrorRw::for_read(tids[1] + 1, tids[2]);
    let mut buf = vec![0u8; 1 << 20];
    let n = m.mirror_read(&mut mm, &mut buf).unwrap();
    let walked: Vec<_> = mrecord::records(&buf[..n]).map(Result::unwrap).collect();
    let indexed: Vec<_> = mrecord::records(&by_index).map(Result::unwrap).collect();
    assert_eq!(walked.len(), indexed.len());
    for (i, (a, b)) in walked.iter().zip(&indexed).enumerate() {
        assert_eq!(a, b, "record {i}");
    }
}

#[test]
fn slave_refuses_out_of_order_and_out_of_range_records() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    t.create(1, 0x501, 1, 0, 2, b"b").unwrap();
    let tid = t.commit().unwrap();
    let stream = read_all(&m, 1, tid, SERIALBUF_SIZE);
    let recs: Vec<_> = mrecord::records(&stream).map(Result::unwrap).collect();
    let mut swapped = Vec::new();
    recs[1].encode_to_vec(&mut swapped);
    recs[0].encode_to_vec(&mut swapped);
    let mut w = MirrorRw::for_write(1, tid);
    let e = s.mirror_write(&mut w, &swapped).unwrap_err().to_string();
    assert!(e.contains("out of order"), "{e}");
    assert_eq!(s.record_count().unwrap(), 0, "nothing applied");
    let mut w = MirrorRw::for_write(1, tid - 1);
    let e = s.mirror_write(&mut w, &stream).unwrap_err().to_string();
    assert!(e.contains("outside the announced TID range"), "{e}");
    assert_eq!(w.flags & crate::ioctl::HEAD_ERROR, crate::ioctl::HEAD_ERROR);
}

#[test]
fn upgrade_rolls_back_a_partial_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    let t1 = t.commit().unwrap();
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    let mut t = MasterTxn::begin(&m).unwrap();
    let (k, _, _) = t.live_records_of(1, 0x500).unwrap().remove(0);
    t.delete(&k).unwrap();
    t.create(1, 0x501, 1, 0, 2, b"b").unwrap();
    let t2 = t.commit().unwrap();
    // Apply the second cycle without moving sync_end_tid (a lost link).
    let stream = read_all(&m, t1 + 1, t2, SERIALBUF_SIZE);
    let mut w = MirrorRw::for_write(1, t2);
    s.mirror_write(&mut w, &stream).unwrap();
    assert_eq!(s.record_count().unwrap(), 2);
    s.upgrade().unwrap();
    assert!(!s.get_pseudofs().unwrap().is_slave());
    assert_eq!(visible(&s, u64::MAX - 1), visible(&m, t1));
    assert_eq!(s.record_count().unwrap(), 1);
}

#[test]
fn second_writer_is_told_the_pfs_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    drop(m);
    let _w = Store::open(&dir.path().join("master"), Access::Write).unwrap();
    let f = std::fs::File::open(dir.path().join("master")).unwrap();
    let e = lock_writer(&dir.path().join("master"), &f, Duration::from_millis(100)).unwrap_err().to_string();
    assert!(e.contains("PFS is busy"), "{e}");
    assert!(Store::open(&dir.path().join("master"), Access::Read).is_ok());
}

#[test]
fn a_killed_multi_commit_import_is_rolled_back_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    t.create(1, 0x500, 1, 0, 2, b"a").unwrap();
    let t1 = t.commit().unwrap();
    // An import that checkpoints (70 MiB) and then dies before its final commit.
    let mut t = MasterTxn::begin(&m).unwrap();
    let (k, _, _) = t.live_records_of(1, 0x500).unwrap().remove(0);
    t.delete(&k).unwrap();
    for i in 0..1100 {
        t.create(2, 0x600, 0x10, (i + 1) * 65536, 2, &vec![7u8; 65536]).unwrap();
    }
    drop(t);
    assert_eq!(m.get_pseudofs().unwrap().sync_end_tid, t1, "the partial import is invisible");
    assert!(m.record_count().unwrap() > 1, "some of it was committed");
    assert_eq!(visible(&m, t1).len(), 1, "the view as of the PFS's TID is untouched");
    let t = MasterTxn::begin(&m).unwrap();
    assert!(t.tid() > t1);
    drop(t);
    let t = MasterTxn::begin(&m).unwrap();
    t.commit().unwrap();
    assert_eq!(m.record_count().unwrap(), 1, "leftovers removed");
    assert_eq!(visible(&m, u64::MAX - 1), visible(&m, t1));
}

/// One change to a small tree, for the equivalence property.
#[derive(Clone, Debug)]
enum Change {
    Write { path: usize, len: usize, seed: u8 },
    Remove { path: usize },
    Mkdir { path: usize },
    Symlink { path: usize, len: usize },
    HardLink { from: usize, to: usize },
    Chmod { path: usize, mode: u32 },
    Truncate { path: usize, len: usize },
}

const PATHS: [&str; 8] = ["a", "b", "d", "d/c", "d/e", "d/e/f", "x", "d/e/g"];

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    let p = 0..PATHS.len();
    let len = prop_oneof![Just(0usize), 1usize..64, 8180usize..8200, 16380usize..16390, 1_040_000usize..1_100_000];
    prop_oneof![
        4 => (p.clone(), len.clone(), any::<u8>()).prop_map(|(path, len, seed)| Change::Write { path, len, seed }),
        2 => p.clone().prop_map(|path| Change::Remove { path }),
        2 => p.clone().prop_map(|path| Change::Mkdir { path }),
        1 => (p.clone(), 1usize..60).prop_map(|(path, len)| Change::Symlink { path, len }),
        1 => (p.clone(), p.clone()).prop_map(|(from, to)| Change::HardLink { from, to }),
        1 => (p.clone(), prop_oneof![Just(0o600u32), Just(0o755), Just(0o4711)]).prop_map(|(path, mode)| Change::Chmod { path, mode }),
        1 => (p, len).prop_map(|(path, len)| Change::Truncate { path, len }),
    ]
}

/// Applies `c` to the tree at `root`; changes that do not fit the tree's shape are skipped.
fn apply_change(root: &Path, c: &Change) {
    use std::os::unix::fs::PermissionsExt;
    let at = |i: usize| root.join(PATHS[i]);
    let _ = match c {
        Change::Write { path, len, seed } => {
            let data: Vec<u8> =
                (0..*len).map(|i| if i % 5000 < 4000 { 0 } else { seed.wrapping_add(i as u8) }).collect();
            std::fs::write(at(*path), data)
        }
        Change::Remove { path } => {
            let p = at(*path);
            if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }
        }
        Change::Mkdir { path } => std::fs::create_dir(at(*path)),
        Change::Symlink { path, len } => std::os::unix::fs::symlink("t".repeat(*len), at(*path)),
        Change::HardLink { from, to } => std::fs::hard_link(at(*from), at(*to)),
        Change::Chmod { path, mode } => {
            if at(*path).is_symlink() {
                Ok(())
            } else {
                std::fs::set_permissions(at(*path), std::fs::Permissions::from_mode(*mode))
            }
        }
        Change::Truncate { path, len } => {
            std::fs::OpenOptions::new().write(true).open(at(*path)).and_then(|f| f.set_len(*len as u64))
        }
    };
}

/// Everything export must reproduce: per path, type, mode, size, mtime (µs), contents or target.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o} {}", m.mode(), m.mtime() * 1_000_000 + m.mtime_nsec() / 1000)
            } else if m.is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else {
                let data = std::fs::read(&p).unwrap();
                format!(
                    "file {:o} {} {} {:08x}",
                    m.mode(),
                    m.nlink(),
                    m.mtime() * 1_000_000 + m.mtime_nsec() / 1000,
                    crc32fast::hash(&data)
                )
            };
            out.push((p.strip_prefix(root).unwrap().display().to_string(), what));
        }
    }
    out.sort();
    out
}

/// `visible`, with the PFS id in directory entries cleared: mirror-write
/// rewrites it to the target's (`hammer_mirror_localize_data`).
fn delocalized(s: &Store, asof: u64) -> Vec<(BaseElmKey, Vec<u8>)> {
    let mut v = visible(s, asof);
    for (k, d) in &mut v {
        if k.2 == crate::hammerfs::HAMMER_RECTYPE_DIRENTRY && d.len() >= 12 {
            d[10..12].fill(0);
        }
    }
    v
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..Default::default()
    })]

    /// Random tree changes imported at several TIDs; each increment mirrored
    /// whole or in arbitrary chunks: the slave's records and its exports as
    /// of every TID equal the master's and the tree as it was.
    #[test]
    fn import_mirror_export_agree_at_every_tid(
        rounds in proptest::collection::vec(proptest::collection::vec(change(), 1..6), 1..5),
        bufsize in proptest::prop_oneof![proptest::strategy::Just(SERIALBUF_SIZE), mrecord::MAX_REC_SIZE..200_000],
        chunk in proptest::prop_oneof![proptest::strategy::Just(SERIALBUF_SIZE), 1usize..100_000],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut s) = pair(dir.path());
        super::import::make_root(&m).unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let mut seen = Vec::new();
        for round in &rounds {
            for c in round {
                apply_change(&tree, c);
            }
            let st = super::import::import(&m, &tree).unwrap();
            mirror(&m, &mut s, bufsize, chunk);
            seen.push((st.tid, snapshot(&tree)));
        }
        for (i, (tid, want)) in seen.iter().enumerate() {
            proptest::prop_assert_eq!(delocalized(&s, *tid), delocalized(&m, *tid), "records as of {:x}", tid);
            for (name, store) in [("m", &m), ("s", &s)] {
                let out = dir.path().join(format!("out-{name}-{i}"));
                super::export::export(store, &out, *tid, false).unwrap();
                proptest::prop_assert_eq!(&snapshot(&out), want, "{} as of {:x}", name, tid);
            }
        }
    }
}

#[test]
fn releasing_resident_pages_keeps_reads_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    // 40 MiB of data: a full scan crosses RESIDENT_BUDGET several times, so the
    // map's pages are released while the scan holds values from it.
    let mut t = MasterTxn::begin(&m).unwrap();
    for obj in 0..640 {
        let data: Vec<u8> = (0..65536u32).map(|i| (i as u8) ^ (obj as u8)).collect();
        t.create(2, 0x1000 + obj, 0x10, 65536, 2, &data).unwrap();
    }
    t.commit().unwrap();
    let txn = m.read_txn().unwrap();
    let (_, v) = m.db.recs.iter(&txn).unwrap().next().unwrap().unwrap();
    let copy = v.to_vec();
    let map = crate::ioctl::mapped::find_map(v.as_ptr() as usize, m.db.ino);
    if cfg!(target_os = "linux") {
        let (start, len) = map.expect("the store's map is in /proc/self/maps");
        assert!(start <= v.as_ptr() as usize && (v.as_ptr() as usize) < start + len);
    }
    if let Some(map) = map {
        crate::ioctl::mapped::release_resident(&m.db.env, map);
    }
    assert_eq!(v, &copy[..], "a value read before the release reads the same after it");
    drop(txn);
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    let end = m.get_pseudofs().unwrap().sync_end_tid;
    let got = visible(&s, end);
    assert_eq!(got.len(), 640);
    assert_eq!(got, visible(&m, end));
}

#[test]
fn a_store_of_the_old_record_layout_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old");
    {
        let s = Store::create(&path, &new_pfsd(false, [7; 16]), 1).unwrap();
        let mut txn = s.write_txn().unwrap();
        s.db.meta.delete(&mut txn, "layout").unwrap();
        s.commit(txn, "test").unwrap();
    }
    let err = Store::open(&path, Access::Read).err().expect("refused").to_string();
    assert!(err.contains("store record layout 1") && err.contains("old"), "{err}");
}

/// Rewrites a store of the current layout as layout 2 wrote it: values
/// without checksums, empty TID index values, unsealed meta entries.
fn to_layout_2(s: &Store) {
    let mut txn = s.write_txn().unwrap();
    let recs: Vec<(Vec<u8>, Vec<u8>)> =
        s.db.recs.iter(&txn).unwrap().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
    for (k, v) in recs {
        let mut v2 = v[..keys::LEAF_FIELDS].to_vec();
        v2.extend_from_slice(&v[keys::VALUE_HEAD..]);
        s.db.recs.put(&mut txn, &k, &v2).unwrap();
    }
    let tids: Vec<Vec<u8>> = s.db.tids.iter(&txn).unwrap().map(|r| r.unwrap().0.to_vec()).collect();
    for t in tids {
        s.db.tids.put(&mut txn, &t, &[]).unwrap();
    }
    let meta: Vec<(String, Vec<u8>)> =
        s.db.meta.iter(&txn).unwrap().map(|r| r.map(|(k, v)| (k.to_owned(), v.to_vec())).unwrap()).collect();
    for (k, v) in meta {
        if k != layout::MAGIC_KEY && k != layout::LAYOUT_KEY {
            s.db.meta.put(&mut txn, &k, keys::open_meta(&k, &v).unwrap()).unwrap();
        }
    }
    s.db.meta.put(&mut txn, layout::LAYOUT_KEY, &2u64.to_le_bytes()).unwrap();
    s.commit(txn, "test").unwrap();
}

#[test]
fn a_layout_2_store_is_upgraded_in_place_by_its_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s) = pair(dir.path());
    let mut t = MasterTxn::begin(&m).unwrap();
    for obj in 0..40 {
        t.create(1, 0x1000 + obj, 1, 0, 2, &[obj as u8; 128]).unwrap();
        t.create(2, 0x1000 + obj, 0x10, 16384, 2, &vec![obj as u8; 16384]).unwrap();
    }
    let t1 = t.commit().unwrap();
    let mut t = MasterTxn::begin(&m).unwrap();
    let (k, _, _) = t.live_records_of(2, 0x1003).unwrap().remove(0);
    t.delete(&k).unwrap();
    let t2 = t.commit().unwrap();
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    let views: Vec<_> = [t1, t2].iter().map(|&t| visible(&m, t)).collect();
    let pfsd = m.get_pseudofs().unwrap();
    let path = dir.path().join("master");
    to_layout_2(&m);
    drop(m);
    assert_eq!(file::open_data(&path, Access::Read).unwrap().vetted.layout, 2);
    // A reader upgrades it (it may write the file), then reads it checked.
    let m = Store::open(&path, Access::Read).unwrap();
    assert_eq!(file::open_data(&path, Access::Read).unwrap().vetted.layout, LAYOUT);
    assert_eq!(m.get_pseudofs().unwrap(), pfsd);
    for (t, v) in [t1, t2].iter().zip(&views) {
        assert_eq!(&visible(&m, *t), v);
    }
    // The TID index still serves incremental reads, and agrees with a walk.
    assert_eq!(read_all(&m, t1 + 1, t2, SERIALBUF_SIZE), {
        *m.scan_cache.lock().unwrap() = Some(scan::ChangeCache::forced_walk(t1 + 1, t2, &m));
        read_all(&m, t1 + 1, t2, SERIALBUF_SIZE)
    });
    drop(m);
    // A reader that may not write it is told how to upgrade it.
    let spath = dir.path().join("slave");
    to_layout_2(&s);
    drop(s);
    let mut perms = std::fs::metadata(&spath).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o400);
    std::fs::set_permissions(&spath, perms).unwrap();
    if !nix::unistd::geteuid().is_root() {
        let err = Store::open(&spath, Access::Read).err().expect("refused").to_string();
        assert!(err.contains("layout 2 must be upgraded") && err.contains("write access"), "{err}");
    }
}

/// Moves the record at `key` of `s` to a key one bit away (as a damaged
/// key would show it): its leaf then fails its checksum there.
fn damage_key(s: &Store, key: &keys::Key) -> keys::Key {
    let mut txn = s.write_txn().unwrap();
    let v = s.db.recs.get(&txn, &key[..]).unwrap().unwrap().to_vec();
    let blob = s.db.blobs.get(&txn, &key[..]).unwrap().map(<[u8]>::to_vec);
    s.erase_record(&mut txn, &key[..]).unwrap();
    let mut bad = *key;
    bad[5] ^= 0x20;
    s.db.recs.put(&mut txn, &bad[..], &v).unwrap();
    if let Some(b) = blob {
        s.db.blobs.put(&mut txn, &bad[..], &b).unwrap();
    }
    s.commit(txn, "test").unwrap();
    bad
}

/// Flips a byte of the data of the record at `key`.
fn damage_data(s: &Store, key: &keys::Key) {
    let mut txn = s.write_txn().unwrap();
    match s.db.blobs.get(&txn, &key[..]).unwrap().map(<[u8]>::to_vec) {
        Some(mut b) => {
            b[7] ^= 1;
            s.db.blobs.put(&mut txn, &key[..], &b).unwrap();
        }
        None => {
            let mut v = s.db.recs.get(&txn, &key[..]).unwrap().unwrap().to_vec();
            let n = v.len() - 1;
            v[n] ^= 1;
            s.db.recs.put(&mut txn, &key[..], &v).unwrap();
        }
    }
    s.commit(txn, "test").unwrap();
}

/// A master of 30 objects mirrored to a slave, the slave's damage found
/// by scrub: (master, slave, the TID, the keys of two data records and an inode).
fn damaged_pair(dir: &Path) -> (Store, Store, u64, Vec<keys::Key>) {
    let (m, mut s) = pair(dir);
    let mut t = MasterTxn::begin(&m).unwrap();
    for obj in 0..30 {
        t.create(1, 0x1000 + obj, 1, 0, 2, &[obj as u8; 128]).unwrap();
        t.create(2, 0x1000 + obj, 0x10, 16384, 2, &vec![obj as u8 + 1; 16384]).unwrap();
    }
    let t1 = t.commit().unwrap();
    mirror(&m, &mut s, SERIALBUF_SIZE, SERIALBUF_SIZE);
    let key = |loc: u32, obj: i64, rt: u16, k: i64| {
        keys::encode_key(&crate::mrecord::BaseElm {
            localization: loc,
            obj_id: obj,
            rec_type: rt,
            key: k,
            create_tid: t1,
            ..Default::default()
        })
    };
    let keys = vec![key(2, 0x1003, 0x10, 16384), key(2, 0x1011, 0x10, 16384), key(1, 0x1007, 1, 0)];
    (m, s, t1, keys)
}

#[test]
fn a_repair_pass_rewrites_damaged_data_erases_damaged_keys_and_restores_what_they_hid() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut s, t1, k) = damaged_pair(dir.path());
    damage_data(&s, &k[0]);
    damage_data(&s, &k[2]);
    let bad = damage_key(&s, &k[1]);
    let found = scrub::scrub(&s).unwrap();
    // The three records, and the index entry of the key the damage hid.
    assert_eq!(found.damaged(), 4, "{:?}", found.findings);
    let listed: Vec<(keys::Key, bool)> = found.damaged_records().into_iter().map(|(k, i, _)| (k, i)).collect();
    assert!(listed.contains(&(k[0], true)) && listed.contains(&(bad, false)), "{listed:?}");
    assert!(s.record_damage(&listed).unwrap());
    // The write half asks from two below the oldest; here, straight through the store.
    // A damaged leaf: the whole history is asked for.
    let floor = s.repair_floor().unwrap().unwrap();
    assert_eq!(floor, 1);
    let stream = read_all(&m, floor, t1, SERIALBUF_SIZE);
    apply_all(&mut s, &stream, 1, t1, 64 << 10);
    let said = s.take_repaired();
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said.iter().any(|l| l.contains("erased")) && said.iter().any(|l| l.contains("restored")), "{said:?}");
    let after = scrub::scrub(&s).unwrap();
    assert_eq!(after.damaged(), 0, "{:?}", after.findings);
    assert_eq!(visible(&s, t1), visible(&m, t1));
    assert!(s.repair_floor().unwrap().is_none(), "the damage list is cleared");
}

#[test]
fn repair_from_a_replica_mends_data_leaves_and_keys_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (m, s, t1, k) = damaged_pair(dir.path());
    damage_data(&s, &k[0]);
    damage_key(&s, &k[1]);
    let found = scrub::scrub(&s).unwrap();
    let done = repair::repair(&s, &m, &found).unwrap();
    assert_eq!(done.rewritten.len(), 3, "{done:?}");
    assert!(done.left.is_empty(), "{done:?}");
    assert_eq!(scrub::scrub(&s).unwrap().damaged(), 0);
    assert_eq!(visible(&s, t1), visible(&m, t1));
    // A master from its slave.
    damage_data(&m, &k[2]);
    damage_key(&m, &k[0]);
    let found = scrub::scrub(&m).unwrap();
    let done = repair::repair(&m, &s, &found).unwrap();
    assert!(done.left.is_empty(), "{done:?}");
    assert_eq!(scrub::scrub(&m).unwrap().damaged(), 0, "{:?}", scrub::scrub(&m).unwrap().findings);
    assert_eq!(visible(&s, t1), visible(&m, t1));
}
