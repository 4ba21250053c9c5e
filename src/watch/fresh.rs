//! The names that appeared since the last recording and were never written: one that goes again unread may have been a hard link, which only a full rescan sees.
//!
//! `link(b, x)` changes `b`'s link count and ctime, but inotify reports the
//! new name `x` alone (the link count's `IN_ATTRIB` goes to watches of the
//! file itself, not of its directories). While `x` exists, the walk finds a
//! file with several names and [`Links`](super::links) takes over; once `x`
//! is removed, moved away or replaced before the walk reads it, nothing
//! says which file it was. A name created (`IN_CREATE`) that went again
//! (`IN_DELETE`, `IN_MOVED_FROM`, replaced by a rename, or its directory
//! removed or moved) with no write or attribute change between is such a
//! link, a symlink or a device node: rare enough that a full rescan for it
//! costs nothing in the usual case, and ordinary temporary files (created,
//! written, removed) never cause one, nor do names moved in and removed
//! (an editor's backup: `file` renamed to `file~`, a new `file` written,
//! `file~` removed). A link written through, or made in a
//! directory that appeared in the same settle period (not watched yet), and
//! removed before the walk remains invisible: documented in `watch --help`.
//! Memory: one path per name created and not written since the last recording.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Fresh {
    names: HashSet<PathBuf>,
    /// A fresh name went unread: a full rescan is due.
    suspect: bool,
}

impl Fresh {
    /// A non-directory was created at `rel`.
    pub fn created(&mut self, rel: &Path) {
        // A fresh name replaced by another is gone.
        if !self.names.insert(rel.to_path_buf()) {
            self.suspect = true;
        }
    }

    /// Something was renamed onto `rel`: a fresh name there is gone (what
    /// moved in was not created here, and is no link of ours to track).
    pub fn moved_in(&mut self, rel: &Path) {
        self.suspect |= self.names.remove(rel);
    }

    /// The object at `rel` was written, or its attributes changed: an
    /// ordinary new file (or a link written through, which stays unseen).
    pub fn written(&mut self, rel: &Path) {
        self.names.remove(rel);
    }

    /// The name `rel` went away (removed, or moved away); for a directory,
    /// everything below it did.
    pub fn gone(&mut self, rel: &Path, dir: bool) {
        if dir {
            let before = self.names.len();
            self.names.retain(|p| !p.starts_with(rel));
            self.suspect |= self.names.len() != before;
        } else {
            self.suspect |= self.names.remove(rel);
        }
    }

    /// True when a fresh name went unread since the last call; starts over.
    pub fn take_suspect(&mut self) -> bool {
        self.names.clear();
        std::mem::take(&mut self.suspect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn a_new_name_gone_unwritten_asks_for_a_rescan() {
        let mut f = Fresh::default();
        f.created(p("d/x"));
        f.gone(p("d/x"), false);
        assert!(f.take_suspect());
        assert!(!f.take_suspect(), "once per recording");
    }

    #[test]
    fn ordinary_temporary_files_and_kept_names_do_not() {
        let mut f = Fresh::default();
        f.created(p("tmp.1"));
        f.written(p("tmp.1"));
        f.gone(p("tmp.1"), false);
        // An editor's backup: renamed away, a new file written, the backup removed.
        f.gone(p("file"), false);
        f.moved_in(p("file~"));
        f.created(p("file"));
        f.written(p("file"));
        f.gone(p("file~"), false);
        f.created(p("kept"));
        f.gone(p("other"), false);
        assert!(!f.take_suspect());
        // What a recording read is no longer fresh.
        f.gone(p("kept"), false);
        assert!(!f.take_suspect());
    }

    #[test]
    fn a_fresh_name_replaced_or_below_a_removed_directory_is_gone() {
        let mut f = Fresh::default();
        f.created(p("x"));
        f.created(p("x"));
        assert!(f.take_suspect());
        f.created(p("x"));
        f.moved_in(p("x"));
        assert!(f.take_suspect(), "renamed over");
        f.created(p("d/e/x"));
        f.gone(p("d/ee"), true);
        assert!(!f.take_suspect());
        f.created(p("d/e/x"));
        f.gone(p("d"), true);
        assert!(f.take_suspect());
    }
}
