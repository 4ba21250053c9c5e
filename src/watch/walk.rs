//! What `watch` learns from one import walk: the directories to watch, the names of linked files, what to re-read next time.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::fstype::{self, Notifies};
use super::links::{Inode, Links};
use crate::store::import::Visitor;

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::notify::{WatchError, Watches};

/// The import's [`Visitor`] for one recording.
pub struct Walk<'a> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub watches: Option<&'a mut Watches>,
    pub links: &'a Links,
    /// The walk's number: watches it adds carry it.
    pub generation: u64,
    /// A full import: nothing to check, everything to relearn.
    pub full: bool,
    root_dev: u64,
    /// Filesystems (st_dev) below the root already looked at.
    devs: HashSet<u64>,

    /// The first directory that could not be watched.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub watch_error: Option<WatchError>,
    /// Names recorded before and gone now (with everything below them).
    pub removed: Vec<PathBuf>,
    /// Names examined that the index of links knew.
    pub examined_known: HashSet<PathBuf>,
    /// Names of files with several names, examined: their file and link count.
    pub multi: Vec<(PathBuf, Inode, u64)>,
    /// Names left at their recorded version (to be read again).
    pub unstable: Vec<PathBuf>,
    /// The walk was abandoned: a full rescan is needed (a new link whose other names are unknown).
    pub rescan: bool,
    /// Directories where another filesystem is mounted (the first of each).
    pub mounts: Vec<PathBuf>,
}

impl<'a> Walk<'a> {
    pub fn new(root: &Path, links: &'a Links, generation: u64, full: bool) -> Walk<'a> {
        let root_dev = std::fs::metadata(root).map_or(0, |m| m.dev());
        Walk {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            watches: None,
            links,
            generation,
            full,
            root_dev,
            devs: HashSet::new(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            watch_error: None,
            removed: Vec::new(),
            examined_known: HashSet::new(),
            multi: Vec::new(),
            unstable: Vec::new(),
            rescan: false,
            mounts: Vec::new(),
        }
    }

    /// True when every name of every linked file this walk met was visited
    /// by it (so that it decided as a full import's walk would).
    fn links_covered(&self) -> bool {
        let mut seen: HashMap<Inode, (usize, u64)> = HashMap::new();
        for (_, inode, nlink) in &self.multi {
            let e = seen.entry(*inode).or_default();
            e.0 += 1;
            e.1 = *nlink;
        }
        seen.iter().all(|(inode, &(names, nlink))| match self.links.names(*inode) {
            Some(known) => {
                known.iter().all(|q| self.examined_known.contains(q) || self.removed.iter().any(|r| q.starts_with(r)))
            }
            // Not known to have several names: all of them must be in this walk.
            None => names as u64 == nlink,
        })
    }
}

impl Visitor for Walk<'_> {
    fn directory(&mut self, _path: &Path, _rel: &Path) -> crate::ioctl::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(w) = self.watches.as_deref_mut()
            && self.watch_error.is_none()
            && let Err(e) = w.add(_path, _rel, self.generation)
        {
            self.watch_error = Some(e);
        }
        Ok(())
    }

    fn examined(&mut self, rel: &Path, m: Option<&Metadata>) {
        if self.links.contains(rel) {
            self.examined_known.insert(rel.to_path_buf());
        }
        let Some(m) = m else { return };
        if !m.is_dir() && m.nlink() > 1 {
            self.multi.push((rel.to_path_buf(), (m.dev(), m.ino()), m.nlink()));
        } else if m.is_dir() && m.dev() != self.root_dev && self.devs.insert(m.dev()) {
            self.mounts.push(rel.to_path_buf());
        }
    }

    fn removed(&mut self, rel: &Path) {
        self.removed.push(rel.to_path_buf());
    }

    fn unstable(&mut self, rel: &Path) {
        self.unstable.push(rel.to_path_buf());
    }

    fn complete(&mut self) -> bool {
        if self.full || self.links_covered() {
            return true;
        }
        self.rescan = true;
        false
    }
}

/// The warning for a filesystem mounted at `path` inside the tree, if its
/// changes raise no notifications.
pub fn mount_warning(path: &Path) -> Option<String> {
    match fstype::of(path) {
        Notifies::Yes => None,
        Notifies::No(kind) => Some(format!(
            "{} is a {kind} mount: changes made there by other machines raise no notifications; \
             they are recorded at the next full scan (a restart, or --poll)",
            path.display()
        )),
        Notifies::Local(kind) => {
            Some(format!("{} is a {kind} mount: only changes made through this machine are notified", path.display()))
        }
    }
}
