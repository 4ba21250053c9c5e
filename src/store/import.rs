//! `import`: turns a directory tree into HAMMER records in a master store, one TID per import, changes only.
//!
//! The records are laid out as the HAMMER kernel lays them out (see
//! [`crate::hammerfs`]): an INODE record per object, DIRENTRY records keyed
//! by the directory's name hash (ALG1 for new directories) with collision
//! iteration, DATA records of 16 KiB blocks below 1 MiB and 64 KiB above,
//! keyed by their end offset (a file of at most 8 KiB is one record rounded
//! to 16 bytes), long symlink targets in a FIX record. Blocks of zeros are
//! holes: no record.
//!
//! A re-import writes only what changed since the last one: an object whose
//! type, mode, owner, size, link count, ctime and mtime are as stored is not
//! read at all (as rsync's quick check); a changed file is read and only the
//! blocks that differ are replaced. Names gone from the tree are marked
//! deleted with everything only they reached. History is kept: every
//! replaced record stays readable as of its TIDs. Nothing is visible until
//! the final commit; an error anywhere (an unreadable file, a full disk)
//! leaves the PFS at its previous TID.
//!
//! [`import_changes`] does the same for only the names a [`Changes`] tree
//! lists (what `watch` saw change): it visits them in the order a full
//! import visits the tree and decides for each exactly as a full import
//! does, so that it writes the same records, provided the tree lists every
//! name whose object changed. A file that changes while it is read (its
//! size, mtime, ctime or inode differ after the read) is read again; after
//! [`READ_TRIES`] reads it keeps its recorded version (a new one is left
//! out) and the [`Visitor`] is told: never a torn copy. A file changed a
//! moment before is read only once it has been quiet a little ([`quiet`]):
//! a write under way, or one within the same timestamp tick, would not show.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::Store;
use super::keys::Key;
use super::master::MasterTxn;
use crate::hammerfs::{
    self as hfs, DirEntryData, HAMMER_FIXKEY_SYMLINK, HAMMER_INODE_DATA_VERSION, HAMMER_LOCALIZE_INODE,
    HAMMER_LOCALIZE_MISC, HAMMER_OBJID_ROOT, HAMMER_OBJTYPE_DIRECTORY, HAMMER_OBJTYPE_REGFILE, HAMMER_OBJTYPE_SOFTLINK,
    HAMMER_RECTYPE_DATA, HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_FIX, HAMMER_RECTYPE_INODE, InodeData,
    NEW_DIRECTORY_CAP_FLAGS,
};
use crate::ioctl::{PfsError, Result};

/// How many times a file that changes while it is read is read before its
/// recorded version is kept.
pub const READ_TRIES: u32 = 3;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// The PFS's TID after the import (unchanged when nothing changed).
    pub tid: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// File bytes read (files whose metadata was unchanged are not read).
    pub bytes_read: u64,
    /// Records created or marked deleted.
    pub changed_records: u64,
    /// Objects found as stored (not read).
    pub unchanged: u64,
    /// Names removed since the last import.
    pub removed: u64,
    /// Names left at their recorded version because they kept changing while read (or vanished meanwhile).
    pub unstable: u64,
}

/// The names below an imported directory that changed, as a tree of path
/// components: an import of it examines these names (and the directories
/// on the way to them) and nothing else, except below a name marked
/// [`Changes::mark_all`], where it reads everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    all: bool,
    /// The name itself was marked (not only a name below it).
    marked: bool,
    /// Sorted by bytes, the order in which an import visits a directory.
    names: BTreeMap<Vec<u8>, Changes>,
}

impl Changes {
    /// Everything: a full import.
    pub fn all() -> Changes {
        Changes { all: true, marked: true, names: BTreeMap::new() }
    }

    /// True when the whole tree is to be read.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        !self.all && self.names.is_empty()
    }

    /// Names listed (a measure of the memory held).
    pub fn len(&self) -> usize {
        self.names.values().map(|c| 1 + c.len()).sum()
    }

    /// The node of `rel` (a path relative to the imported directory), made
    /// if needed; None when an ancestor (or `rel` itself) is read whole anyway.
    fn node(&mut self, rel: &Path) -> Option<&mut Changes> {
        let mut cur = self;
        for c in rel.components() {
            if cur.all {
                return None;
            }
            if let Component::Normal(name) = c {
                cur = cur.names.entry(name.as_bytes().to_vec()).or_default();
            }
        }
        (!cur.all).then_some(cur)
    }

    /// The name at `rel` is examined (its object compared with the record;
    /// a directory's entries are not listed unless a name below is marked).
    pub fn mark(&mut self, rel: &Path) {
        if let Some(n) = self.node(rel) {
            n.marked = true;
        }
    }

    /// Everything at and below `rel` is read, as a full import reads it.
    pub fn mark_all(&mut self, rel: &Path) {
        if let Some(n) = self.node(rel) {
            n.all = true;
            n.marked = true;
            n.names.clear();
        }
    }

    /// Adds what `other` lists.
    pub fn merge(&mut self, other: Changes) {
        if self.all {
            return;
        }
        if other.all {
            *self = other;
            return;
        }
        self.marked |= other.marked;
        for (name, below) in other.names {
            self.names.entry(name).or_default().merge(below);
        }
    }

    /// True when an import of these changes examines the name at `rel`.
    pub fn covers(&self, rel: &Path) -> bool {
        let mut cur = self;
        for c in rel.components() {
            if cur.all {
                return true;
            }
            if let Component::Normal(name) = c {
                match cur.names.get(name.as_bytes()) {
                    Some(n) => cur = n,
                    None => return false,
                }
            }
        }
        true
    }

    /// Every listed name, as paths relative to the imported directory, with
    /// whether it is read whole.
    pub fn paths(&self) -> Vec<(PathBuf, bool)> {
        self.walk(false)
    }

    /// The names marked themselves (not only on the way to a marked name),
    /// with whether they are read whole.
    pub fn marked_paths(&self) -> Vec<(PathBuf, bool)> {
        self.walk(true)
    }

    fn walk(&self, marked_only: bool) -> Vec<(PathBuf, bool)> {
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::new(), self)];
        while let Some((p, c)) = stack.pop() {
            for (name, below) in &c.names {
                let q = p.join(OsStr::from_bytes(name));
                if below.marked || !marked_only {
                    out.push((q.clone(), below.all));
                }
                stack.push((q, below));
            }
        }
        out
    }
}

/// What an import tells its caller as it goes (`watch` keeps its watches
/// and its index of hard links with it). Paths are relative to the imported
/// directory.
pub trait Visitor {
    /// Directory `path` (`rel`) is about to be listed.
    fn directory(&mut self, _path: &Path, _rel: &Path) -> Result<()> {
        Ok(())
    }
    /// The name at `rel` was examined: its `lstat`, or None when it is gone.
    fn examined(&mut self, _rel: &Path, _m: Option<&Metadata>) {}
    /// The file at `rel` is about to be read (again, after it changed while read).
    fn reading(&mut self, _rel: &Path) {}
    /// What was recorded at `rel` (and below it) is gone from the PFS.
    fn removed(&mut self, _rel: &Path) {}
    /// The name at `rel` keeps its recorded version: it changed while it
    /// was read [`READ_TRIES`] times (or was not quiet, see [`quiet`],
    /// within the import's budget), or vanished while it was read.
    fn unstable(&mut self, _rel: &Path) {}
    /// Called before the commit: false abandons the import (nothing is recorded).
    fn complete(&mut self) -> bool {
        true
    }
}

/// Gives a new master its root directory (HAMMER's `hammer_mkroot_pseudofs`):
/// mode 0755, owned by root, times now.
pub fn make_root(store: &Store) -> Result<()> {
    let mut txn = MasterTxn::begin(store)?;
    let now = txn.tid() / 1000;
    let ino = InodeData {
        version: HAMMER_INODE_DATA_VERSION,
        mode: 0o755,
        obj_type: HAMMER_OBJTYPE_DIRECTORY,
        cap_flags: NEW_DIRECTORY_CAP_FLAGS,
        nlinks: 1,
        ctime: now,
        mtime: now,
        atime: now,
        ..Default::default()
    };
    txn.create(
        HAMMER_LOCALIZE_INODE,
        HAMMER_OBJID_ROOT,
        HAMMER_RECTYPE_INODE,
        0,
        HAMMER_OBJTYPE_DIRECTORY,
        &ino.encode(),
    )?;
    txn.commit()?;
    Ok(())
}

/// Imports the tree at `dir` into the master `store` as one new TID. A file
/// that keeps changing while it is read keeps its recorded version, with a
/// warning on stderr.
pub fn import(store: &Store, dir: &Path) -> Result<ImportStats> {
    struct Warn<'a>(&'a Path);
    impl Visitor for Warn<'_> {
        fn unstable(&mut self, rel: &Path) {
            eprintln!(
                "Warning: {}: kept changing while it was read ({READ_TRIES} tries, waiting up to {} s in all for it to be \
                 quiet) or vanished: its recorded version is kept",
                self.0.join(rel).display(),
                quiet::QUIET_BUDGET.as_secs()
            );
        }
    }
    Ok(import_changes(store, dir, &Changes::all(), &mut Warn(dir))?.expect("a full import always completes"))
}

/// Imports the names `changes` lists of the tree at `dir` into the master
/// `store` as one new TID (see the module documentation). None when the
/// visitor abandoned it.
pub fn import_changes(
    store: &Store,
    dir: &Path,
    changes: &Changes,
    visitor: &mut dyn Visitor,
) -> Result<Option<ImportStats>> {
    let meta = std::fs::metadata(dir).map_err(|e| PfsError::io(dir, "stat", e))?;
    if !meta.is_dir() {
        return Err(PfsError::invalid(dir, "import", "not a directory"));
    }
    let mut skip = HashSet::new();
    let store_path = crate::ioctl::Pfs::path(store);
    for p in [store_path.to_path_buf(), super::layout::lock_path(store_path)] {
        if let Ok(m) = std::fs::metadata(&p) {
            skip.insert((m.dev(), m.ino()));
        }
    }
    let mut imp = Importer {
        txn: MasterTxn::begin(store)?,
        root: dir.to_path_buf(),
        visitor,
        stats: ImportStats::default(),
        visited: HashSet::new(),
        links: HashMap::new(),
        orphans: Vec::new(),
        skip,
        unstable_inodes: HashSet::new(),
        block: Vec::with_capacity(hfs::HAMMER_XBUFSIZE),
        quiet_left: quiet::QUIET_BUDGET,
    };
    imp.visited.insert(HAMMER_OBJID_ROOT);
    let root = imp.txn.live_record(HAMMER_LOCALIZE_INODE, HAMMER_OBJID_ROOT, HAMMER_RECTYPE_INODE, 0)?;
    let cap_flags =
        root.as_ref().and_then(|(_, _, d)| InodeData::decode(d)).map_or(NEW_DIRECTORY_CAP_FLAGS, |i| i.cap_flags);
    // A directory is never unstable: its entries are what changes.
    imp.object(dir, &meta, HAMMER_OBJID_ROOT, 0, cap_flags)?;
    imp.count(&meta);
    imp.directory(dir, HAMMER_OBJID_ROOT, cap_flags, Some(changes))?;
    imp.remove_orphans()?;
    if !imp.visitor.complete() {
        return Ok(None);
    }
    imp.stats.changed_records = imp.txn.changes();
    let mut stats = imp.stats;
    stats.tid = imp.txn.commit()?;
    Ok(Some(stats))
}

/// True for the errors that mean a name went away while the import looked
/// at it (removed, or a directory on its path replaced).
fn vanished(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

/// `path` relative to the imported directory `root`.
fn rel<'p>(root: &Path, path: &'p Path) -> &'p Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// A stored directory entry: its key, the object it names, that object's type.
type Entry = (Key, i64, u8);

/// What one name's update did to its directory, undone when its object
/// turns out to be unstable.
#[derive(Default)]
struct EntryUndo {
    created: Option<Key>,
    deleted: Option<Key>,
    orphaned: bool,
}

struct Importer<'s, 'v> {
    txn: MasterTxn<'s>,
    /// The imported directory (paths given to the visitor are relative to it).
    root: PathBuf,
    visitor: &'v mut dyn Visitor,
    stats: ImportStats,
    /// Objects reached by this import.
    visited: HashSet<i64>,
    /// (st_dev, st_ino) of multiply linked files → their object id.
    links: HashMap<(u64, u64), i64>,
    /// Objects whose name was removed: deleted at the end unless reached.
    orphans: Vec<i64>,
    /// (st_dev, st_ino) never imported: the store's own files.
    skip: HashSet<(u64, u64)>,
    /// Multiply linked files left at their recorded version: their other names are too.
    unstable_inodes: HashSet<(u64, u64)>,
    block: Vec<u8>,
    /// What is left of [`quiet::QUIET_BUDGET`] for this import.
    quiet_left: std::time::Duration,
}

/// The inode HAMMER would hold for an object with this `lstat`.
fn inode_of(m: &Metadata, obj_type: u8, parent: i64, cap_flags: u8) -> InodeData {
    let dir = obj_type == HAMMER_OBJTYPE_DIRECTORY;
    let (rmajor, rminor) = if matches!(obj_type, hfs::HAMMER_OBJTYPE_CDEV | hfs::HAMMER_OBJTYPE_BDEV) {
        (nix::sys::stat::major(m.rdev()) as u32, nix::sys::stat::minor(m.rdev()) as u32)
    } else {
        (0, 0)
    };
    let time = |s: i64, ns: i64| hfs::unix_to_hammer_time(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
    let mut ino = InodeData {
        version: HAMMER_INODE_DATA_VERSION,
        mode: (m.mode() & 0o7777) as u16,
        rmajor,
        rminor,
        ctime: time(m.ctime(), m.ctime_nsec()),
        parent_obj_id: parent,
        obj_type,
        cap_flags: if dir { cap_flags } else { 0 },
        nlinks: if dir { 1 } else { m.nlink() },
        size: if dir { 0 } else { m.size() },
        mtime: time(m.mtime(), m.mtime_nsec()),
        atime: time(m.atime(), m.atime_nsec()),
        ..Default::default()
    };
    ino.set_unix_uid(m.uid());
    ino.set_unix_gid(m.gid());
    ino
}

/// True when `stored` describes the same object as `new`: everything but
/// the access time (and the symlink target, compared by the caller's size).
fn same_inode(stored: &InodeData, new: &InodeData) -> bool {
    let mut a = stored.clone();
    a.atime = new.atime;
    a.ext = new.ext;
    a == *new
}

/// True when `after` (an `fstat` once a file was read) shows the file that
/// `before` (its `lstat`) described, unchanged: the same inode, size, mtime
/// and ctime to the nanosecond.
fn same_version(before: &Metadata, after: &Metadata) -> bool {
    (
        before.dev(),
        before.ino(),
        before.size(),
        before.mtime(),
        before.mtime_nsec(),
        before.ctime(),
        before.ctime_nsec(),
    ) == (after.dev(), after.ino(), after.size(), after.mtime(), after.mtime_nsec(), after.ctime(), after.ctime_nsec())
}

/// Opens a file for reading without changing its access time when the
/// caller may (O_NOATIME: the owner, or root), as backup tools do.
fn open_for_reading(path: &Path) -> std::io::Result<File> {
    // Not through a symlink swapped in since the walk saw a file, nor blocking on a FIFO.
    let open = |extra: i32| {
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | extra).open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }
}

impl Importer<'_, '_> {
    fn io(&self, path: &Path, op: &'static str, e: std::io::Error) -> PfsError {
        PfsError::io(path, op, e)
    }

    fn count(&mut self, m: &Metadata) {
        match hfs::obj_type_from_unix_mode(m.mode()) {
            HAMMER_OBJTYPE_DIRECTORY => self.stats.dirs += 1,
            HAMMER_OBJTYPE_SOFTLINK => self.stats.symlinks += 1,
            _ => self.stats.files += 1,
        }
    }

    /// Imports directory `path` (object `dir_obj`): every entry, or with
    /// `changes` (not all), only the names it lists.
    fn directory(&mut self, path: &Path, dir_obj: i64, cap_flags: u8, changes: Option<&Changes>) -> Result<()> {
        match changes {
            Some(c) if !c.all => self.changed_names(path, dir_obj, cap_flags, c),
            _ => self.listing(path, dir_obj, cap_flags),
        }
    }

    /// Every entry of directory `path`, as listed now.
    fn listing(&mut self, path: &Path, dir_obj: i64, cap_flags: u8) -> Result<()> {
        self.visitor.directory(path, rel(&self.root, path))?;
        let dir_lo = hfs::dir_entry_localization_type(cap_flags);
        let mut existing: HashMap<Vec<u8>, Entry> = HashMap::new();
        for (k, leaf, data) in self.txn.live_records(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY)? {
            let e =
                DirEntryData::decode(&data).ok_or_else(|| PfsError::invalid(path, "import", "bad directory entry"))?;
            existing.insert(e.name, (k, e.obj_id, leaf.base.obj_type));
        }
        let listed = std::fs::read_dir(path).and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect());
        let mut names: Vec<std::ffi::OsString> = match listed {
            Ok(n) => n,
            Err(e) if vanished(&e) && dir_obj != HAMMER_OBJID_ROOT => {
                // Gone while we looked (removed or renamed): what it held stays as recorded.
                self.stats.unstable += 1;
                self.visitor.unstable(rel(&self.root, path));
                return Ok(());
            }
            Err(e) => return Err(self.io(path, "read directory", e)),
        };
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_path = path.join(&name);
            let m = match std::fs::symlink_metadata(&child_path) {
                Ok(m) => m,
                // Removed since the listing: as if it had not been listed.
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(self.io(&child_path, "stat", e)),
            };
            let name = name.into_vec();
            let found = existing.remove(&name);
            self.entry(path, dir_obj, cap_flags, &name, m, found, None)?;
        }
        for (name, (k, old, _)) in existing {
            self.txn.delete(&k)?;
            self.orphans.push(old);
            self.stats.removed += 1;
            let child = path.join(OsStr::from_bytes(&name));
            self.visitor.removed(rel(&self.root, &child));
        }
        Ok(())
    }

    /// The names `changes` lists in directory `path`, each as a full import
    /// would see it now.
    fn changed_names(&mut self, path: &Path, dir_obj: i64, cap_flags: u8, changes: &Changes) -> Result<()> {
        for (name, below) in &changes.names {
            let child_path = path.join(OsStr::from_bytes(name));
            let m = match std::fs::symlink_metadata(&child_path) {
                Ok(m) => Some(m),
                Err(e) if vanished(&e) => None,
                Err(e) => return Err(self.io(&child_path, "stat", e)),
            };
            let found = self.lookup_entry(path, dir_obj, cap_flags, name)?;
            match m {
                Some(m) if !self.skip.contains(&(m.dev(), m.ino())) => {
                    self.entry(path, dir_obj, cap_flags, name, m, found, Some(below))?
                }
                _ => {
                    self.visitor.examined(rel(&self.root, &child_path), None);
                    if let Some((k, old, _)) = found {
                        self.txn.delete(&k)?;
                        self.orphans.push(old);
                        self.stats.removed += 1;
                        self.visitor.removed(rel(&self.root, &child_path));
                    }
                }
            }
        }
        Ok(())
    }

    /// The live entry `name` of directory `dir_obj`: a lookup of its name hash.
    fn lookup_entry(&self, path: &Path, dir_obj: i64, cap_flags: u8, name: &[u8]) -> Result<Option<Entry>> {
        let (key, max) = hfs::directory_namekey_for(cap_flags, name)
            .ok_or_else(|| PfsError::invalid(path, "import", "directory uses an unknown name hash"))?;
        let dir_lo = hfs::dir_entry_localization_type(cap_flags);
        let last = key.saturating_add(i64::from(max.max(1)) - 1);
        for (k, leaf, data) in self.txn.live_records_in(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY, (key, last))? {
            let e =
                DirEntryData::decode(&data).ok_or_else(|| PfsError::invalid(path, "import", "bad directory entry"))?;
            if e.name == name {
                return Ok(Some((k, e.obj_id, leaf.base.obj_type)));
            }
        }
        Ok(None)
    }

    /// Brings the name `name` of directory `dir_obj` (at `dir`) up to date:
    /// `m` is its `lstat`, `found` its stored entry; `below` what changed
    /// under it (None: everything).
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        dir: &Path,
        dir_obj: i64,
        cap_flags: u8,
        name: &[u8],
        mut m: Metadata,
        found: Option<Entry>,
        below: Option<&Changes>,
    ) -> Result<()> {
        let child_path = dir.join(OsStr::from_bytes(name));
        if self.skip.contains(&(m.dev(), m.ino())) {
            return Ok(());
        }
        let inode = (m.dev(), m.ino());
        let multi = !m.is_dir() && m.nlink() > 1;
        if multi && self.unstable_inodes.contains(&inode) {
            // Another name of a file left at its recorded version: so is this one.
            if let Some((_, old, _)) = found {
                self.visited.insert(old);
            }
            self.stats.unstable += 1;
            self.visitor.unstable(rel(&self.root, &child_path));
            return Ok(());
        }
        let obj_type = hfs::obj_type_from_unix_mode(m.mode());
        let linked = multi.then(|| self.links.get(&inode).copied()).flatten();
        let mut undo = EntryUndo::default();
        let kept = found.map(|(_, old, _)| old);
        let (obj, fresh) = match found {
            // Kept unless another name already took the object in this import
            // without being a link of this file (a hard link replaced by a file of its own).
            Some((_, old, t))
                if t == obj_type
                    && linked.is_none_or(|l| l == old)
                    && (linked == Some(old) || !self.visited.contains(&old)) =>
            {
                (old, false)
            }
            found => {
                if let Some((k, old, _)) = found {
                    self.txn.delete(&k)?;
                    self.orphans.push(old);
                    undo.deleted = Some(k);
                    undo.orphaned = true;
                    self.visitor.removed(rel(&self.root, &child_path));
                }
                let obj = linked.unwrap_or_else(|| self.txn.alloc_obj_id());
                undo.created = Some(self.add_entry(&child_path, dir_obj, cap_flags, name, obj, obj_type)?);
                (obj, true)
            }
        };
        let new_link = multi && linked.is_none();
        if multi {
            self.links.insert(inode, obj);
        }
        self.visitor.examined(rel(&self.root, &child_path), Some(&m));
        if !self.visited.insert(obj) {
            return Ok(()); // another name of an object already imported
        }
        let mut tries = 1;
        let child_caps = loop {
            if let Some(caps) = self.object(&child_path, &m, obj, dir_obj, NEW_DIRECTORY_CAP_FLAGS)? {
                break caps;
            }
            // Changed while it was read: undo what this read wrote, and read it again.
            self.txn.revert_object(&[HAMMER_LOCALIZE_INODE, HAMMER_LOCALIZE_MISC], obj)?;
            let again = match std::fs::symlink_metadata(&child_path) {
                Ok(n) if tries < READ_TRIES && (n.dev(), n.ino()) == inode && n.file_type() == m.file_type() => Some(n),
                Ok(_) => None,
                Err(e) if vanished(&e) => None,
                Err(e) => return Err(self.io(&child_path, "stat", e)),
            };
            match again {
                Some(n) => {
                    m = n;
                    tries += 1;
                }
                None => {
                    // Kept at its recorded version (a new name is left out).
                    for k in [undo.created, undo.deleted].into_iter().flatten() {
                        self.txn.revert(&k)?;
                    }
                    if undo.orphaned {
                        self.orphans.pop();
                    }
                    if fresh {
                        self.visited.remove(&obj);
                    }
                    if new_link {
                        self.links.remove(&inode);
                    }
                    if let Some(old) = kept {
                        self.visited.insert(old);
                    }
                    if multi {
                        self.unstable_inodes.insert(inode);
                    }
                    self.stats.unstable += 1;
                    self.visitor.unstable(rel(&self.root, &child_path));
                    return Ok(());
                }
            }
        };
        self.count(&m);
        if m.is_dir() {
            // A new directory object holds nothing yet: all of it is read.
            self.directory(&child_path, obj, child_caps, if fresh { None } else { below })?;
        }
        Ok(())
    }

    /// Adds the directory entry `name` → `obj` to `dir_obj` at the first free
    /// key of its name hash (`hammer_ip_add_directory`); returns its key.
    fn add_entry(
        &mut self,
        path: &Path,
        dir_obj: i64,
        cap_flags: u8,
        name: &[u8],
        obj: i64,
        obj_type: u8,
    ) -> Result<Key> {
        let (mut key, max) = hfs::directory_namekey_for(cap_flags, name)
            .ok_or_else(|| PfsError::invalid(path, "import", "parent directory uses an unknown name hash"))?;
        let dir_lo = hfs::dir_entry_localization_type(cap_flags);
        let mut left = max;
        while self.txn.key_used(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY, key)? {
            left -= 1;
            if left == 0 || key == i64::MAX {
                return Err(PfsError::invalid(path, "import", "too many names collide in this directory"));
            }
            key += 1;
        }
        let localization = hfs::pfs_to_localization(self.txn_pfs());
        let entry = DirEntryData { obj_id: obj, localization, reserved01: 0, name: name.to_vec() };
        self.txn.create(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY, key, obj_type, &entry.encode())?;
        let base = crate::mrecord::BaseElm {
            localization: dir_lo & hfs::HAMMER_LOCALIZE_MASK,
            obj_id: dir_obj,
            rec_type: HAMMER_RECTYPE_DIRENTRY,
            key,
            create_tid: self.txn.tid(),
            ..Default::default()
        };
        Ok(super::keys::encode_key(&base))
    }

    fn txn_pfs(&self) -> u16 {
        self.txn.pfs_id() as u16
    }

    /// Brings object `obj` up to date with the file at `path`; returns the
    /// directory capability flags it carries (for a directory's entries),
    /// or None when the file changed (or vanished) while it was read: what
    /// was written for it is then for the caller to undo.
    fn object(&mut self, path: &Path, m: &Metadata, obj: i64, parent: i64, new_caps: u8) -> Result<Option<u8>> {
        let obj_type = hfs::obj_type_from_unix_mode(m.mode());
        let stored = self.txn.live_record(HAMMER_LOCALIZE_INODE, obj, HAMMER_RECTYPE_INODE, 0)?;
        let stored_ino = stored.as_ref().and_then(|(_, _, d)| InodeData::decode(d));
        let caps = stored_ino.as_ref().filter(|i| i.obj_type == obj_type).map_or(new_caps, |i| i.cap_flags);
        let mut ino = inode_of(m, obj_type, parent, caps);
        let same = match &stored_ino {
            Some(old) if same_inode(old, &ino) => {
                obj_type != HAMMER_OBJTYPE_SOFTLINK || {
                    let Some(target) = self.read_link(path)? else { return Ok(None) };
                    self.symlink_same(&target, obj, old)?
                }
            }
            _ => false,
        };
        if same {
            self.stats.unchanged += 1;
            return Ok(Some(caps));
        }
        match obj_type {
            HAMMER_OBJTYPE_REGFILE => match self.file_data(path, m, obj, stored_ino.is_some())? {
                Some(size) => ino.size = size,
                None => return Ok(None),
            },
            HAMMER_OBJTYPE_SOFTLINK => {
                let Some(target) = self.read_link(path)? else { return Ok(None) };
                self.symlink(&target, obj, &mut ino)?
            }
            _ => {}
        }
        if let Some((k, _, _)) = stored {
            self.txn.delete(&k)?;
        }
        self.txn.create(HAMMER_LOCALIZE_INODE, obj, HAMMER_RECTYPE_INODE, 0, obj_type, &ino.encode())?;
        Ok(Some(caps))
    }

    /// The target of the symlink at `path`; None when it vanished.
    fn read_link(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match std::fs::read_link(path) {
            Ok(t) => Ok(Some(t.into_os_string().into_vec())),
            Err(e) if vanished(&e) || e.kind() == std::io::ErrorKind::InvalidInput => Ok(None),
            Err(e) => Err(self.io(path, "read symlink", e)),
        }
    }

    /// True when the stored symlink target is `target`.
    fn symlink_same(&mut self, target: &[u8], obj: i64, stored: &InodeData) -> Result<bool> {
        if let Some(inline) = stored.symlink_inline() {
            return Ok(inline == target);
        }
        let fix = self.txn.live_record(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_FIX, HAMMER_FIXKEY_SYMLINK)?;
        Ok(fix.is_some_and(|(_, _, d)| d == target))
    }

    /// Stores the symlink target `target` in `ino` or a FIX record.
    fn symlink(&mut self, target: &[u8], obj: i64, ino: &mut InodeData) -> Result<()> {
        let old = self.txn.live_record(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_FIX, HAMMER_FIXKEY_SYMLINK)?;
        if ino.set_symlink_inline(target) {
            if let Some((k, _, _)) = old {
                self.txn.delete(&k)?;
            }
            return Ok(());
        }
        ino.size = target.len() as u64;
        match old {
            Some((_, _, data)) if data == target => {}
            other => {
                if let Some((k, _, _)) = other {
                    self.txn.delete(&k)?;
                }
                self.txn.create(
                    HAMMER_LOCALIZE_MISC,
                    obj,
                    HAMMER_RECTYPE_FIX,
                    HAMMER_FIXKEY_SYMLINK,
                    HAMMER_OBJTYPE_SOFTLINK,
                    target,
                )?;
            }
        }
        Ok(())
    }

    /// Reads the file at `path` (whose `lstat` is `m`) and replaces the DATA
    /// records of `obj` that differ; returns the size read, or None when the
    /// file is not the one `m` describes once read (changed meanwhile, or gone).
    fn file_data(&mut self, path: &Path, m: &Metadata, obj: i64, had_inode: bool) -> Result<Option<u64>> {
        // Changed a moment ago: read once quiet (a write under way now would not show).
        let wait = quiet::wait_for(m);
        if !wait.is_zero() {
            if wait > self.quiet_left {
                return Ok(None);
            }
            self.quiet_left -= wait;
            std::thread::sleep(wait);
        }
        self.visitor.reading(rel(&self.root, path));
        let file = match open_for_reading(path) {
            Ok(f) => f,
            Err(e) if vanished(&e) => return Ok(None),
            Err(e) => return Err(self.io(path, "open", e)),
        };
        let mut r = BufReader::with_capacity(crate::mrecord::SERIALBUF_SIZE, file);
        // The blocks stored now, by key; whatever is not matched is deleted.
        let mut old: HashMap<i64, (Key, i32)> = HashMap::new();
        if had_inode {
            for (k, leaf) in self.txn.live_heads(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_DATA)? {
                old.insert(leaf.base.key, (k, leaf.data_len));
            }
        }
        let mut block = std::mem::take(&mut self.block);
        let mut offset = 0u64;
        let result = loop {
            let bsize = hfs::data_block_size(offset);
            block.clear();
            block.resize(bsize, 0);
            let n = match read_full(&mut r, &mut block) {
                Ok(n) => n,
                Err(e) => break Err(self.io(path, "read", e)),
            };
            if n == 0 {
                break Ok(());
            }
            self.stats.bytes_read += n as u64;
            // A short first block is the whole file (read_full stops only at
            // EOF): at most 8 KiB makes one record rounded to 16 bytes.
            let len = if offset == 0 { hfs::data_record_len(0, n as u64) } else { bsize };
            if let Err(e) = self.data_block(obj, offset, &block[..len], &mut old) {
                break Err(e);
            }
            offset += n as u64;
            if n < bsize {
                break Ok(());
            }
        };
        self.block = block;
        result?;
        let after = r.get_ref().metadata().map_err(|e| self.io(path, "stat", e))?;
        if !same_version(m, &after) || offset != m.size() {
            return Ok(None);
        }
        for (_, (k, _)) in old {
            self.txn.delete(&k)?;
        }
        Ok(Some(offset))
    }

    /// Records the block of `obj` at `offset` unless it is stored as it is
    /// (its entry is then taken out of `old`) or is a hole.
    fn data_block(&mut self, obj: i64, offset: u64, data: &[u8], old: &mut HashMap<i64, (Key, i32)>) -> Result<()> {
        let len = data.len();
        let key = hfs::data_record_key(offset, len);
        let hole = data.iter().all(|&b| b == 0);
        let keep = match old.remove(&key) {
            Some((k, old_len)) => {
                let same = !hole
                    && old_len as usize == len
                    && self
                        .txn
                        .live_record(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_DATA, key)?
                        .is_some_and(|(_, _, d)| d == data);
                if !same {
                    self.txn.delete(&k)?;
                }
                same
            }
            None => false,
        };
        if !keep && !hole {
            self.txn.create(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_DATA, key, HAMMER_OBJTYPE_REGFILE, data)?;
        }
        Ok(())
    }

    /// Deletes every record of objects whose names were removed and that this
    /// import did not reach, and of everything below them.
    fn remove_orphans(&mut self) -> Result<()> {
        while let Some(obj) = self.orphans.pop() {
            if !self.visited.insert(obj) {
                continue;
            }
            for lo in [HAMMER_LOCALIZE_INODE, HAMMER_LOCALIZE_MISC] {
                // Without their data: a removed file's blocks are only marked deleted.
                for (k, leaf) in self.txn.live_heads_of(lo, obj)? {
                    if leaf.base.rec_type == HAMMER_RECTYPE_DIRENTRY
                        && let Some((_, _, data)) =
                            self.txn.live_record(lo, obj, HAMMER_RECTYPE_DIRENTRY, leaf.base.key)?
                        && let Some(e) = DirEntryData::decode(&data)
                    {
                        self.orphans.push(e.obj_id);
                    }
                    self.txn.delete(&k)?;
                }
            }
        }
        Ok(())
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub mod quiet;
/// Incremental against full imports (in import/tests.rs).
#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn same_inode_ignores_atime_only() {
        let a = InodeData { mode: 0o644, size: 5, atime: 1, mtime: 2, ..Default::default() };
        let mut b = a.clone();
        b.atime = 99;
        assert!(same_inode(&a, &b));
        b.mtime = 3;
        assert!(!same_inode(&a, &b));
    }

    #[test]
    fn changes_mark_names_and_whole_subtrees() {
        let mut c = Changes::default();
        assert!(c.is_empty());
        c.mark(Path::new("a/b/f"));
        c.mark(Path::new("a/g"));
        assert!(c.covers(Path::new("a/b/f")) && c.covers(Path::new("a")) && !c.covers(Path::new("a/h")));
        assert_eq!(c.len(), 4);
        c.mark_all(Path::new("a/b"));
        assert!(c.covers(Path::new("a/b/anything/deeper")));
        assert_eq!(c.len(), 3, "marking a subtree whole drops what was listed below it");
        c.mark(Path::new("a/b/x"));
        assert_eq!(c.len(), 3, "a name below a whole subtree adds nothing");
        let mut p = c.paths();
        p.sort();
        assert_eq!(p, vec![(PathBuf::from("a"), false), (PathBuf::from("a/b"), true), (PathBuf::from("a/g"), false)]);
        let mut m = c.marked_paths();
        m.sort();
        assert_eq!(m, vec![(PathBuf::from("a/b"), true), (PathBuf::from("a/g"), false)], "a is only on the way");
        let mut d = Changes::default();
        d.mark(Path::new("a/b/y"));
        d.mark(Path::new("q"));
        c.merge(d);
        assert!(c.covers(Path::new("q")) && c.covers(Path::new("a/b/z")));
        assert_eq!(c.len(), 4);
        let mut e = Changes::default();
        e.merge(Changes::all());
        assert!(e.is_all());
        c.mark_all(Path::new(""));
        assert!(c.is_all() && c.covers(Path::new("z")));
    }
}
