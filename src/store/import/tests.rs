//! Tests of `import_changes` against a full import: random operation sequences, the same records.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::ioctl::Pfs;
use crate::store::tests::new_pfsd;

/// One operation on the tree (indexes into [`PATHS`]).
#[derive(Clone, Debug)]
enum Op {
    Write { path: usize, len: usize, seed: u8 },
    Sparse { path: usize, at: u64 },
    Remove { path: usize },
    Mkdir { path: usize },
    Rename { from: usize, to: usize },
    Symlink { path: usize, len: usize },
    HardLink { from: usize, to: usize },
    Chmod { path: usize, mode: u32 },
    Touch { path: usize, secs: i64 },
    Truncate { path: usize, len: u64 },
}

const PATHS: [&str; 11] = ["a", "b", "d", "d/c", "d/e", "d/e/f", "x", "d/e/g", "y", "y/z", "y/d"];

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let p = 0..PATHS.len();
    let len = prop_oneof![Just(0usize), 1usize..64, 8180usize..8200, 16380usize..16390, 70_000usize..80_000];
    prop_oneof![
        4 => (p.clone(), len.clone(), any::<u8>()).prop_map(|(path, len, seed)| Op::Write { path, len, seed }),
        1 => (p.clone(), prop_oneof![Just(0u64), Just(16384), Just(1_200_000)]).prop_map(|(path, at)| Op::Sparse { path, at }),
        2 => p.clone().prop_map(|path| Op::Remove { path }),
        3 => p.clone().prop_map(|path| Op::Mkdir { path }),
        3 => (p.clone(), p.clone()).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => (p.clone(), 1usize..120).prop_map(|(path, len)| Op::Symlink { path, len }),
        2 => (p.clone(), p.clone()).prop_map(|(from, to)| Op::HardLink { from, to }),
        1 => (p.clone(), prop_oneof![Just(0o600u32), Just(0o755), Just(0o4711)]).prop_map(|(path, mode)| Op::Chmod { path, mode }),
        1 => (p.clone(), 1_000_000i64..2_000_000_000).prop_map(|(path, secs)| Op::Touch { path, secs }),
        1 => (p, 0u64..70_000).prop_map(|(path, len)| Op::Truncate { path, len }),
    ]
}

/// Applies `op` to the tree at `root` and marks in `changes` what a watcher
/// sees change (names created, written, removed, renamed; a directory that
/// appears is marked whole). Operations that do not fit the tree are no-ops.
fn apply(root: &Path, op: &Op, changes: &mut Changes) {
    use std::os::unix::fs::PermissionsExt;
    let at = |i: usize| root.join(PATHS[i]);
    let rel = |i: usize| PathBuf::from(PATHS[i]);
    let ok = match op {
        Op::Write { path, len, seed } => {
            let data: Vec<u8> =
                (0..*len).map(|i| if i % 20000 < 17000 { 0 } else { seed.wrapping_add(i as u8) }).collect();
            std::fs::write(at(*path), data).is_ok()
        }
        Op::Sparse { path, at: off } => std::fs::OpenOptions::new()
            .write(true)
            .open(at(*path))
            .and_then(|f| std::os::unix::fs::FileExt::write_at(&f, b"sparse", *off))
            .is_ok(),
        Op::Remove { path } => {
            let p = at(*path);
            if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }.is_ok()
        }
        Op::Mkdir { path } => {
            let ok = std::fs::create_dir(at(*path)).is_ok();
            if ok {
                changes.mark_all(&rel(*path));
            }
            false
        }
        Op::Rename { from, to } => {
            let ok = std::fs::rename(at(*from), at(*to)).is_ok();
            if ok {
                changes.mark(&rel(*from));
                if at(*to).is_dir() && !at(*to).is_symlink() {
                    changes.mark_all(&rel(*to));
                } else {
                    changes.mark(&rel(*to));
                }
            }
            false
        }
        // Dangling (written through, a symlink would change what it points at, elsewhere).
        Op::Symlink { path, len } => {
            std::os::unix::fs::symlink(format!("/nonexistent/{}", "t".repeat(*len)), at(*path)).is_ok()
        }
        Op::HardLink { from, to } => {
            let ok = std::fs::hard_link(at(*from), at(*to)).is_ok();
            if ok {
                changes.mark(&rel(*to));
            }
            false
        }
        Op::Chmod { path, mode } => {
            !at(*path).is_symlink()
                && std::fs::set_permissions(at(*path), std::fs::Permissions::from_mode(*mode)).is_ok()
        }
        Op::Touch { path, secs } => std::fs::File::options()
            .write(true)
            .open(at(*path))
            .and_then(|f| f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(*secs as u64)))
            .is_ok(),
        Op::Truncate { path, len } => {
            std::fs::OpenOptions::new().write(true).open(at(*path)).and_then(|f| f.set_len(*len)).is_ok()
        }
    };
    if ok {
        changes.mark(&rel(op_path(op)));
    }
}

fn op_path(op: &Op) -> usize {
    match *op {
        Op::Write { path, .. }
        | Op::Sparse { path, .. }
        | Op::Remove { path }
        | Op::Mkdir { path }
        | Op::Symlink { path, .. }
        | Op::Chmod { path, .. }
        | Op::Touch { path, .. }
        | Op::Truncate { path, .. } => path,
        Op::Rename { to, .. } | Op::HardLink { to, .. } => to,
    }
}

/// Every name of the tree with its inode, for the files with more than one name.
fn linked_names(root: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.nlink() > 1 {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), (m.dev(), m.ino()));
            }
        }
    }
    out
}

/// What a watcher adds for hard links: every name, before or after, of a
/// file one of whose names is at or below a marked name.
fn mark_other_names(
    changes: &mut Changes,
    before: &BTreeMap<PathBuf, (u64, u64)>,
    after: &BTreeMap<PathBuf, (u64, u64)>,
) {
    let marked: Vec<PathBuf> = changes.paths().into_iter().map(|(p, _)| p).collect();
    let mut inodes = BTreeSet::new();
    for (p, i) in before.iter().chain(after) {
        if marked.iter().any(|m| p.starts_with(m)) || changes.covers(p) {
            inodes.insert(*i);
        }
    }
    for (p, i) in before.iter().chain(after) {
        if inodes.contains(i) {
            changes.mark(p);
        }
    }
}

/// The live records as of the last TID, without what depends on the TIDs,
/// and without access times (listing a directory sets its own).
fn records(s: &Store) -> Vec<(u32, i64, u16, i64, u8, Vec<u8>)> {
    let asof = s.get_pseudofs().unwrap().sync_end_tid;
    let mut v = Vec::new();
    s.for_each_as_of(asof, |l, d| {
        let b = &l.base;
        let mut d = d.to_vec();
        if b.rec_type == HAMMER_RECTYPE_INODE
            && let Some(mut ino) = InodeData::decode(&d)
        {
            ino.atime = 0;
            d = ino.encode().to_vec();
        }
        v.push((b.localization, b.obj_id, b.rec_type, b.key, b.obj_type, d));
        Ok(())
    })
    .unwrap();
    v
}

fn master(path: &Path) -> Store {
    let s = Store::create(path, &new_pfsd(false, [9; 16]), 1).unwrap();
    make_root(&s).unwrap();
    s
}

struct Quiet;
impl Visitor for Quiet {}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..Default::default()
    })]

    /// After every step, a PFS kept by importing only the marked names holds
    /// exactly the records of one kept by full imports (object ids included).
    #[test]
    fn importing_the_changes_writes_what_a_full_import_writes(
        steps in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let (inc, full) = (master(&dir.path().join("inc")), master(&dir.path().join("full")));
        import(&inc, &tree).unwrap();
        import(&full, &tree).unwrap();
        for (i, step) in steps.iter().enumerate() {
            let before = linked_names(&tree);
            let mut changes = Changes::default();
            for op in step {
                apply(&tree, op, &mut changes);
            }
            mark_other_names(&mut changes, &before, &linked_names(&tree));
            import_changes(&inc, &tree, &changes, &mut Quiet).unwrap().unwrap();
            import(&full, &tree).unwrap();
            let (a, b) = (records(&inc), records(&full));
            let only_inc: Vec<_> = a.iter().filter(|r| !b.contains(r)).collect();
            let only_full: Vec<_> = b.iter().filter(|r| !a.contains(r)).collect();
            proptest::prop_assert!(
                only_inc.is_empty() && only_full.is_empty(),
                "after step {} {:?}, changes {:?}: only incremental {:?}, only full {:?}",
                i, step, changes, only_inc, only_full
            );
        }
    }
}

#[test]
fn an_empty_change_list_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/f"), b"x").unwrap();
    let s = master(&dir.path().join("pfs"));
    let first = import(&s, &tree).unwrap().tid;
    std::fs::write(tree.join("d/f"), b"changed, but not listed").unwrap();
    let st = import_changes(&s, &tree, &Changes::default(), &mut Quiet).unwrap().unwrap();
    assert_eq!((st.tid, st.changed_records, st.bytes_read), (first, 0, 0));
    let mut c = Changes::default();
    c.mark(Path::new("d/f"));
    let st = import_changes(&s, &tree, &c, &mut Quiet).unwrap().unwrap();
    assert!(st.tid > first && st.bytes_read == 23 && st.files == 1 && st.dirs == 2, "{st:?}");
}

#[test]
fn a_visitor_can_abandon_an_import() {
    struct No;
    impl Visitor for No {
        fn complete(&mut self) -> bool {
            false
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("f"), b"x").unwrap();
    let s = master(&dir.path().join("pfs"));
    let before = records(&s);
    assert_eq!(import_changes(&s, &tree, &Changes::all(), &mut No).unwrap(), None);
    assert_eq!(records(&s), before, "nothing recorded");
    assert!(import(&s, &tree).unwrap().changed_records > 0, "and the next import records it all");
}

/// A visitor that rewrites the file `hot` whenever it is about to be read, as a busy writer would.
struct Rewriter {
    path: PathBuf,
    rewrites: u32,
    unstable: Vec<PathBuf>,
}

impl Visitor for Rewriter {
    fn reading(&mut self, rel: &Path) {
        if rel == self.path.file_name().map(Path::new).unwrap() && self.rewrites > 0 {
            self.rewrites -= 1;
            // After its lstat, before its read: the read then disagrees with
            // the lstat (another size, mtime and ctime).
            std::fs::write(&self.path, vec![b'n'; 20_000 + self.rewrites as usize]).unwrap();
        }
    }
    fn unstable(&mut self, rel: &Path) {
        self.unstable.push(rel.to_path_buf());
    }
}

#[test]
fn a_file_changed_while_read_is_read_again_never_recorded_torn() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("hot"), b"old").unwrap();
    let s = master(&dir.path().join("pfs"));
    import(&s, &tree).unwrap();
    std::fs::write(tree.join("hot"), b"newer").unwrap();
    // Changed once while read: the second read is the one recorded.
    let mut v = Rewriter { path: tree.join("hot"), rewrites: 1, unstable: vec![] };
    let mut c = Changes::default();
    c.mark(Path::new("hot"));
    import_changes(&s, &tree, &c, &mut v).unwrap().unwrap();
    assert!(v.unstable.is_empty());
    let out = dir.path().join("out1");
    crate::store::export::export(&s, &out, s.get_pseudofs().unwrap().sync_end_tid, false).unwrap();
    assert_eq!(std::fs::read(out.join("hot")).unwrap(), vec![b'n'; 20_000]);
}

#[test]
fn a_file_that_keeps_changing_keeps_its_recorded_version_and_a_new_one_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("hot"), b"old").unwrap();
    std::fs::write(tree.join("other"), b"1").unwrap();
    let s = master(&dir.path().join("pfs"));
    import(&s, &tree).unwrap();
    let before = records(&s);
    std::fs::write(tree.join("hot"), b"newer").unwrap();
    // Changed at every read.
    let mut v = Rewriter { path: tree.join("hot"), rewrites: READ_TRIES, unstable: vec![] };
    let st = import_changes(&s, &tree, &Changes::all(), &mut v).unwrap().unwrap();
    assert_eq!(v.unstable, vec![PathBuf::from("hot")]);
    assert_eq!(st.unstable, 1);
    assert_eq!(records(&s), before, "the old version stays, whole; nothing else changed");

    // A new file that keeps changing is not recorded at all (yet).
    std::fs::remove_file(tree.join("hot")).unwrap();
    std::fs::write(tree.join("hot"), b"brand new").unwrap();
    std::fs::write(tree.join("other"), b"2").unwrap();
    let mut v = Rewriter { path: tree.join("hot"), rewrites: READ_TRIES, unstable: vec![] };
    import_changes(&s, &tree, &Changes::all(), &mut v).unwrap().unwrap();
    assert_eq!(v.unstable, vec![PathBuf::from("hot")]);
    let out = dir.path().join("out");
    crate::store::export::export(&s, &out, s.get_pseudofs().unwrap().sync_end_tid, false).unwrap();
    assert_eq!(std::fs::read(out.join("other")).unwrap(), b"2");
    assert_eq!(std::fs::read(out.join("hot")).unwrap(), b"old", "the name keeps its recorded object");

    // A new name that keeps changing is left out (until it is quiet).
    std::fs::write(tree.join("fresh"), b"new name").unwrap();
    let mut v = Rewriter { path: tree.join("fresh"), rewrites: READ_TRIES, unstable: vec![] };
    let mut c = Changes::default();
    c.mark(Path::new("fresh"));
    let tid = import_changes(&s, &tree, &c, &mut v).unwrap().unwrap().tid;
    assert_eq!(v.unstable, vec![PathBuf::from("fresh")]);
    let out = dir.path().join("out2");
    crate::store::export::export(&s, &out, tid, false).unwrap();
    assert!(!out.join("fresh").exists());

    // Once quiet, both are recorded as they are.
    let st = import(&s, &tree).unwrap();
    assert_eq!(st.unstable, 0);
    let out = dir.path().join("out3");
    crate::store::export::export(&s, &out, st.tid, false).unwrap();
    assert_eq!(std::fs::read(out.join("hot")).unwrap().len(), 20_000);
    assert_eq!(std::fs::read(out.join("fresh")).unwrap().len(), 20_000);
}
