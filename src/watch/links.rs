//! The names of every file with several names (hard links) in the watched tree, so that a change seen through one name re-reads them all.
//!
//! inotify reports a change under the name it was made through only: a
//! write through `a/x` says nothing about its other name `b/y`, nor does a
//! new link or an unlink change what `b/y`'s directory reports, though its
//! link count and ctime changed. A full import visits every name of such a
//! file in its walk order; an import of the changes must visit the same
//! names, so every name of a linked file that a change reaches is marked.
//! A link to a file that had one name until now cannot be found this way
//! (its other name is anywhere): [`Walk`](super::walk) then asks for a full
//! rescan. Memory: one entry per name of a multiply linked file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::store::import::Changes;

/// `(st_dev, st_ino)`.
pub type Inode = (u64, u64);

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Links {
    by_path: BTreeMap<PathBuf, Inode>,
    by_inode: HashMap<Inode, BTreeSet<PathBuf>>,
}

impl Links {
    pub fn clear(&mut self) {
        self.by_path.clear();
        self.by_inode.clear();
    }

    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The names of `inode` known (None: a file not known to have several names).
    pub fn names(&self, inode: Inode) -> Option<&BTreeSet<PathBuf>> {
        self.by_inode.get(&inode)
    }

    pub fn contains(&self, rel: &Path) -> bool {
        self.by_path.contains_key(rel)
    }

    /// `rel` is a name of `inode`.
    pub fn insert(&mut self, rel: &Path, inode: Inode) {
        self.remove(rel);
        self.by_path.insert(rel.to_path_buf(), inode);
        self.by_inode.entry(inode).or_default().insert(rel.to_path_buf());
    }

    /// `rel` is no longer known as a name of a linked file.
    pub fn remove(&mut self, rel: &Path) {
        if let Some(inode) = self.by_path.remove(rel)
            && let Some(names) = self.by_inode.get_mut(&inode)
        {
            names.remove(rel);
            if names.is_empty() {
                self.by_inode.remove(&inode);
            }
        }
    }

    /// The known names at or below `rel`.
    pub fn below(&self, rel: &Path) -> Vec<PathBuf> {
        use std::ops::Bound;
        self.by_path
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(rel))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Every name at or below `rel` is gone.
    pub fn remove_below(&mut self, rel: &Path) {
        for p in self.below(rel) {
            self.remove(&p);
        }
    }

    /// Marks in `changes` every known name of each linked file that a
    /// marked name reaches: a name at or below a marked one (what it was:
    /// removed, renamed, replaced), or the file a marked name is now (looked
    /// up under `root`). Names only on the way to a marked one reach nothing.
    pub fn expand(&self, root: &Path, changes: &mut Changes) {
        if self.by_inode.is_empty() {
            return;
        }
        let mut inodes = BTreeSet::new();
        for (p, _) in changes.marked_paths() {
            for q in self.below(&p) {
                inodes.insert(self.by_path[&q]);
            }
            if let Ok(m) = std::fs::symlink_metadata(root.join(&p))
                && !m.is_dir()
                && m.nlink() > 1
            {
                inodes.insert((m.dev(), m.ino()));
            }
        }
        for i in inodes {
            for q in self.by_inode.get(&i).into_iter().flatten() {
                changes.mark(q);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_by_path_and_by_inode() {
        let mut l = Links::default();
        l.insert(Path::new("a/x"), (1, 5));
        l.insert(Path::new("b/y"), (1, 5));
        l.insert(Path::new("a.b"), (1, 6));
        l.insert(Path::new("a/z/w"), (1, 6));
        assert_eq!(l.names((1, 5)).unwrap().len(), 2);
        assert_eq!(l.below(Path::new("a")), vec![PathBuf::from("a/x"), PathBuf::from("a/z/w")]);
        l.remove_below(Path::new("a"));
        assert_eq!(l.len(), 2);
        assert_eq!(l.names((1, 5)).unwrap().iter().collect::<Vec<_>>(), vec![Path::new("b/y")]);
        l.insert(Path::new("b/y"), (1, 7));
        assert!(l.names((1, 5)).is_none(), "a name re-inserted leaves its old file");
        assert_eq!(l.below(Path::new("")).len(), 2);
    }

    #[test]
    fn expanding_marks_every_name_a_change_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/sub")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/sub/x"), b"x").unwrap();
        std::fs::hard_link(root.join("a/sub/x"), root.join("b/y")).unwrap();
        let m = std::fs::metadata(root.join("b/y")).unwrap();
        let mut l = Links::default();
        l.insert(Path::new("a/sub/x"), (m.dev(), m.ino()));
        l.insert(Path::new("b/y"), (m.dev(), m.ino()));

        // A write through b/y: a/sub/x too.
        let mut c = Changes::default();
        c.mark(Path::new("b/y"));
        l.expand(root, &mut c);
        assert!(c.covers(Path::new("a/sub/x")));

        // a removed (or renamed): b/y lost a name.
        let mut c = Changes::default();
        c.mark(Path::new("a"));
        l.expand(root, &mut c);
        assert!(c.covers(Path::new("b/y")));

        // An unrelated change marks nothing more.
        let mut c = Changes::default();
        c.mark(Path::new("b/other"));
        l.expand(root, &mut c);
        assert_eq!(c.len(), 2);
    }
}
