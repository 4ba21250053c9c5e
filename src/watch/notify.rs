//! inotify: one watch per directory of the tree, and its events turned into the names that changed.
//!
//! Through nix's thin wrapper of the system calls: watch descriptors,
//! cookies, `IN_Q_OVERFLOW` and the errno of a refused watch (`ENOSPC`: the
//! `fs.inotify.max_user_watches` limit) reach us as they are. A watch is
//! added to each directory just before the import lists it, so that a name
//! created in it is either in the listing or reported. Memory: the kernel
//! takes about 1 KiB per watch (counted against max_user_watches); this
//! process keeps the directory's relative path once, shared by two maps
//! (about 100 bytes plus the path per directory).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::fresh::Fresh;
use crate::store::import::Changes;

/// What a directory watch reports.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
        | AddWatchFlags::from_bits_retain(libc::IN_EXCL_UNLINK)
}

/// Why a directory could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "cannot watch {dir}: this user's inotify watches are used up ({limit}, {watched} of them watching \
         this tree, one per directory); raise the limit, e.g. `sysctl fs.inotify.max_user_watches=1048576` \
         (and a file in /etc/sysctl.d to keep it), or use --poll SECONDS"
    )]
    Limit { dir: PathBuf, limit: String, watched: usize },
    #[error(
        "cannot start inotify: this user's inotify instances are used up (fs.inotify.max_user_instances = {limit}); \
         raise it with sysctl, or use --poll SECONDS"
    )]
    Instances { limit: String },
    #[error("cannot watch {dir}: {source}")]
    Other { dir: PathBuf, source: std::io::Error },
}

/// A value of /proc/sys/fs/inotify/`name`, as text.
fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .map_or_else(|_| "?".to_string(), |s| s.trim().to_string())
}

/// The watch limit in force, named: the system's, or a lower one of this
/// user namespace (user.max_inotify_watches).
fn watch_limit() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    match (read("/proc/sys/fs/inotify/max_user_watches"), read("/proc/sys/user/max_inotify_watches")) {
        (Some(fs), Some(ns)) if ns < fs => format!("user.max_inotify_watches = {ns} in this user namespace"),
        (Some(fs), _) => format!("fs.inotify.max_user_watches = {fs}"),
        (None, _) => "fs.inotify.max_user_watches".to_string(),
    }
}

/// What reading the events found besides the names.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Events read.
    pub events: usize,
    /// Events that marked a name (not about the PFS's own files, nor watch bookkeeping).
    pub marked: usize,
    /// The kernel's queue overflowed: events were lost.
    pub overflow: bool,
    /// The watched directory itself was removed or moved away.
    pub root_gone: bool,
}

/// The watches of one tree.
pub struct Watches {
    ino: Inotify,
    by_wd: HashMap<WatchDescriptor, Rc<Path>>,
    /// Relative path → its watch, and the walk that last added it.
    by_path: BTreeMap<Rc<Path>, (WatchDescriptor, u64)>,
    /// Relative paths whose events are of no interest (the PFS's own files).
    ignored: Vec<PathBuf>,
    /// The names that appeared since the last recording, unwritten.
    pub fresh: Fresh,
}

impl Watches {
    pub fn new(ignored: Vec<PathBuf>) -> Result<Watches, WatchError> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| match e {
            Errno::EMFILE => WatchError::Instances { limit: sysctl("max_user_instances") },
            e => WatchError::Other { dir: PathBuf::new(), source: e.into() },
        })?;
        Ok(Watches { ino, by_wd: HashMap::new(), by_path: BTreeMap::new(), ignored, fresh: Fresh::default() })
    }

    /// The descriptor to poll for events.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ino.as_fd()
    }

    /// Directories watched.
    pub fn len(&self) -> usize {
        self.by_wd.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_wd.is_empty()
    }

    /// Watches directory `path` (`rel` in the tree) in walk `generation`. A
    /// directory gone meanwhile is no error (its removal is reported).
    pub fn add(&mut self, path: &Path, rel: &Path, generation: u64) -> Result<(), WatchError> {
        let wd = match self.ino.add_watch(path, mask()) {
            Ok(wd) => wd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(Errno::ENOSPC) => {
                return Err(WatchError::Limit {
                    dir: path.to_path_buf(),
                    limit: watch_limit(),
                    watched: self.by_wd.len(),
                });
            }
            Err(e) => return Err(WatchError::Other { dir: path.to_path_buf(), source: e.into() }),
        };
        // The same directory under a new name (renamed): its old name goes.
        if let Some(old) = self.by_wd.get(&wd).cloned()
            && *old != *rel
            && self.by_path.get(&*old).is_some_and(|(w, _)| *w == wd)
        {
            self.by_path.remove(&*old);
        }
        let rel: Rc<Path> = Rc::from(rel);
        if let Some((other, _)) = self.by_path.insert(Rc::clone(&rel), (wd, generation))
            && other != wd
            && self.by_wd.get(&other).is_some_and(|p| *p == rel)
        {
            // Another directory had this name: it was replaced.
            self.by_wd.remove(&other);
            let _ = self.ino.rm_watch(other);
        }
        self.by_wd.insert(wd, rel);
        Ok(())
    }

    /// Stops watching the directories at or below `rel` that no walk since
    /// `generation` began has added (those a rename took elsewhere were).
    pub fn forget_below(&mut self, rel: &Path, generation: u64) {
        use std::ops::Bound;
        let stale: Vec<(Rc<Path>, WatchDescriptor)> = self
            .by_path
            .range::<Path, _>((Bound::Included(rel), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(rel))
            .filter(|(_, (_, g))| *g < generation)
            .map(|(p, (wd, _))| (Rc::clone(p), *wd))
            .collect();
        for (p, wd) in stale {
            self.by_path.remove(&*p);
            if self.by_wd.get(&wd).is_some_and(|q| *q == p) {
                self.by_wd.remove(&wd);
                let _ = self.ino.rm_watch(wd);
            }
        }
    }

    /// Reads every queued event and marks in `changes` the names they are about.
    pub fn read(&mut self, changes: &mut Changes) -> std::io::Result<Read> {
        let mut r = Read::default();
        loop {
            let events = match self.ino.read_events() {
                Ok(ev) => ev,
                Err(Errno::EAGAIN) => return Ok(r),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if events.is_empty() {
                return Ok(r);
            }
            for ev in events {
                r.events += 1;
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    r.overflow = true;
                    continue;
                }
                let Some(dir) = self.by_wd.get(&ev.wd).cloned() else { continue };
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory is gone (or no longer watched).
                    self.by_wd.remove(&ev.wd);
                    if self.by_path.get(&*dir).is_some_and(|(w, _)| *w == ev.wd) {
                        self.by_path.remove(&*dir);
                    }
                    r.root_gone |= dir.as_os_str().is_empty();
                    continue;
                }
                match ev.name {
                    Some(name) => {
                        let rel = dir.join(name);
                        if self.ignored.contains(&rel) {
                            continue;
                        }
                        r.marked += 1;
                        let appeared = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO;
                        let dir = ev.mask.contains(AddWatchFlags::IN_ISDIR);
                        if ev.mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
                            self.fresh.gone(&rel, dir);
                        } else if ev.mask.contains(AddWatchFlags::IN_CREATE) && !dir {
                            self.fresh.created(&rel);
                        } else if ev.mask.contains(AddWatchFlags::IN_MOVED_TO) {
                            self.fresh.moved_in(&rel);
                        } else if ev.mask.intersects(
                            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_CLOSE_WRITE,
                        ) {
                            self.fresh.written(&rel);
                        }
                        if ev.mask.intersects(appeared) && dir {
                            // What it holds may predate its watch: all of it is read.
                            changes.mark_all(&rel);
                        } else {
                            changes.mark(&rel);
                        }
                    }
                    None => {
                        let gone = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
                        if ev.mask.intersects(gone) {
                            // Its parent reports it; only the root has no parent here.
                            r.root_gone |= dir.as_os_str().is_empty();
                        } else {
                            r.marked += 1;
                            changes.mark(&dir);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Watches) -> (Changes, Read) {
        let mut c = Changes::default();
        let r = w.read(&mut c).unwrap();
        (c, r)
    }

    #[test]
    fn events_become_the_names_they_are_about() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        let mut w = Watches::new(vec![PathBuf::from("pfs")]).unwrap();
        w.add(root, Path::new(""), 1).unwrap();
        w.add(&root.join("d"), Path::new("d"), 1).unwrap();
        assert_eq!(w.len(), 2);
        std::fs::write(root.join("d/f"), b"x").unwrap();
        std::fs::create_dir(root.join("new")).unwrap();
        std::fs::write(root.join("pfs"), b"ignored").unwrap();
        std::fs::rename(root.join("d/f"), root.join("g")).unwrap();
        let (c, r) = drain(&mut w);
        assert!(r.events >= 4 && !r.overflow && !r.root_gone, "{r:?}");
        let mut want = Changes::default();
        want.mark(Path::new("d/f"));
        want.mark_all(Path::new("new"));
        want.mark(Path::new("g"));
        assert_eq!(c, want);
    }

    #[test]
    fn a_renamed_directory_keeps_its_watch_under_its_new_name_and_a_removed_one_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let mut w = Watches::new(vec![]).unwrap();
        w.add(root, Path::new(""), 1).unwrap();
        w.add(&root.join("a"), Path::new("a"), 1).unwrap();
        w.add(&root.join("a/b"), Path::new("a/b"), 1).unwrap();
        std::fs::rename(root.join("a"), root.join("z")).unwrap();
        drain(&mut w);
        // The next walk lists z and z/b, then forgets what is left under a.
        w.add(&root.join("z"), Path::new("z"), 2).unwrap();
        w.add(&root.join("z/b"), Path::new("z/b"), 2).unwrap();
        w.forget_below(Path::new("a"), 2);
        assert_eq!(w.len(), 3);
        std::fs::write(root.join("z/b/f"), b"x").unwrap();
        let (c, _) = drain(&mut w);
        assert!(c.covers(Path::new("z/b/f")) && !c.covers(Path::new("a")), "{c:?}");
        std::fs::remove_dir_all(root.join("z")).unwrap();
        let (c, _) = drain(&mut w);
        assert!(c.covers(Path::new("z")));
        assert_eq!(w.len(), 1, "the removed directories' watches are gone");
    }

    #[test]
    fn the_root_going_away_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        let mut w = Watches::new(vec![]).unwrap();
        w.add(&root, Path::new(""), 1).unwrap();
        std::fs::rename(&root, dir.path().join("elsewhere")).unwrap();
        assert!(drain(&mut w).1.root_gone);
    }
}
