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

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::{BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::Store;
use super::master::MasterTxn;
use crate::hammerfs::{
    self as hfs, DirEntryData, HAMMER_FIXKEY_SYMLINK, HAMMER_INODE_DATA_VERSION, HAMMER_LOCALIZE_INODE,
    HAMMER_LOCALIZE_MISC, HAMMER_OBJID_ROOT, HAMMER_OBJTYPE_DIRECTORY, HAMMER_OBJTYPE_REGFILE, HAMMER_OBJTYPE_SOFTLINK,
    HAMMER_RECTYPE_DATA, HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_FIX, HAMMER_RECTYPE_INODE, InodeData,
    NEW_DIRECTORY_CAP_FLAGS,
};
use crate::ioctl::{PfsError, Result};

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

/// Imports the tree at `dir` into the master `store` as one new TID.
pub fn import(store: &Store, dir: &Path) -> Result<ImportStats> {
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
        stats: ImportStats::default(),
        visited: HashSet::new(),
        links: HashMap::new(),
        orphans: Vec::new(),
        skip,
        block: Vec::with_capacity(hfs::HAMMER_XBUFSIZE),
    };
    imp.visited.insert(HAMMER_OBJID_ROOT);
    let root = imp.txn.live_record(HAMMER_LOCALIZE_INODE, HAMMER_OBJID_ROOT, HAMMER_RECTYPE_INODE, 0)?;
    let cap_flags =
        root.as_ref().and_then(|(_, _, d)| InodeData::decode(d)).map_or(NEW_DIRECTORY_CAP_FLAGS, |i| i.cap_flags);
    imp.object(dir, &meta, HAMMER_OBJID_ROOT, 0, cap_flags)?;
    imp.directory(dir, HAMMER_OBJID_ROOT, cap_flags)?;
    imp.remove_orphans()?;
    imp.stats.changed_records = imp.txn.changes();
    let mut stats = imp.stats;
    stats.tid = imp.txn.commit()?;
    Ok(stats)
}

struct Importer<'s> {
    txn: MasterTxn<'s>,
    stats: ImportStats,
    /// Objects reached by this import.
    visited: HashSet<i64>,
    /// (st_dev, st_ino) of multiply linked files → their object id.
    links: HashMap<(u64, u64), i64>,
    /// Objects whose name was removed: deleted at the end unless reached.
    orphans: Vec<i64>,
    /// (st_dev, st_ino) never imported: the store's own files.
    skip: HashSet<(u64, u64)>,
    block: Vec<u8>,
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

impl Importer<'_> {
    fn io(&self, path: &Path, op: &'static str, e: std::io::Error) -> PfsError {
        PfsError::io(path, op, e)
    }

    /// Imports the entries of directory `path` (object `dir_obj`).
    fn directory(&mut self, path: &Path, dir_obj: i64, cap_flags: u8) -> Result<()> {
        let dir_lo = hfs::dir_entry_localization_type(cap_flags);
        let mut existing: HashMap<Vec<u8>, (super::keys::Key, i64, u8)> = HashMap::new();
        for (k, leaf, data) in self.txn.live_records(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY)? {
            let e =
                DirEntryData::decode(&data).ok_or_else(|| PfsError::invalid(path, "import", "bad directory entry"))?;
            existing.insert(e.name, (k, e.obj_id, leaf.base.obj_type));
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| self.io(path, "read directory", e))? {
            let entry = entry.map_err(|e| self.io(path, "read directory", e))?;
            names.push(entry.file_name());
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child_path = path.join(&name);
            let m = std::fs::symlink_metadata(&child_path).map_err(|e| self.io(&child_path, "stat", e))?;
            if self.skip.contains(&(m.dev(), m.ino())) {
                continue;
            }
            let obj_type = hfs::obj_type_from_unix_mode(m.mode());
            let linked = (!m.is_dir() && m.nlink() > 1).then(|| self.links.get(&(m.dev(), m.ino())).copied()).flatten();
            let name = name.as_bytes().to_vec();
            let obj = match existing.remove(&name) {
                Some((_, old, t)) if t == obj_type && linked.is_none_or(|l| l == old) => old,
                found => {
                    if let Some((k, old, _)) = found {
                        self.txn.delete(&k)?;
                        self.orphans.push(old);
                    }
                    let obj = linked.unwrap_or_else(|| self.txn.alloc_obj_id());
                    self.add_entry(&child_path, dir_obj, cap_flags, &name, obj, obj_type)?;
                    obj
                }
            };
            if !m.is_dir() && m.nlink() > 1 {
                self.links.insert((m.dev(), m.ino()), obj);
            }
            if !self.visited.insert(obj) {
                continue; // another name of an object already imported
            }
            let child_caps = self.object(&child_path, &m, obj, dir_obj, NEW_DIRECTORY_CAP_FLAGS)?;
            if m.is_dir() {
                self.directory(&child_path, obj, child_caps)?;
            }
        }
        for (_, (k, old, _)) in existing {
            self.txn.delete(&k)?;
            self.orphans.push(old);
            self.stats.removed += 1;
        }
        Ok(())
    }

    /// Adds the directory entry `name` → `obj` to `dir_obj` at the first free
    /// key of its name hash (`hammer_ip_add_directory`).
    fn add_entry(
        &mut self,
        path: &Path,
        dir_obj: i64,
        cap_flags: u8,
        name: &[u8],
        obj: i64,
        obj_type: u8,
    ) -> Result<()> {
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
        self.txn.create(dir_lo, dir_obj, HAMMER_RECTYPE_DIRENTRY, key, obj_type, &entry.encode())
    }

    fn txn_pfs(&self) -> u16 {
        self.txn.pfs_id() as u16
    }

    /// Brings object `obj` up to date with the file at `path`; returns the
    /// directory capability flags it carries (for a directory's entries).
    fn object(&mut self, path: &Path, m: &Metadata, obj: i64, parent: i64, new_caps: u8) -> Result<u8> {
        let obj_type = hfs::obj_type_from_unix_mode(m.mode());
        let stored = self.txn.live_record(HAMMER_LOCALIZE_INODE, obj, HAMMER_RECTYPE_INODE, 0)?;
        let stored_ino = stored.as_ref().and_then(|(_, _, d)| InodeData::decode(d));
        let caps = stored_ino.as_ref().filter(|i| i.obj_type == obj_type).map_or(new_caps, |i| i.cap_flags);
        let mut ino = inode_of(m, obj_type, parent, caps);
        match obj_type {
            HAMMER_OBJTYPE_DIRECTORY => self.stats.dirs += 1,
            HAMMER_OBJTYPE_SOFTLINK => self.stats.symlinks += 1,
            _ => self.stats.files += 1,
        }
        if let Some(old) = &stored_ino
            && same_inode(old, &ino)
            && (obj_type != HAMMER_OBJTYPE_SOFTLINK || self.symlink_same(path, obj, old)?)
        {
            self.stats.unchanged += 1;
            return Ok(caps);
        }
        match obj_type {
            HAMMER_OBJTYPE_REGFILE => ino.size = self.file_data(path, obj, stored_ino.is_some())?,
            HAMMER_OBJTYPE_SOFTLINK => self.symlink(path, obj, &mut ino)?,
            _ => {}
        }
        if let Some((k, _, _)) = stored {
            self.txn.delete(&k)?;
        }
        self.txn.create(HAMMER_LOCALIZE_INODE, obj, HAMMER_RECTYPE_INODE, 0, obj_type, &ino.encode())?;
        Ok(caps)
    }

    fn read_link(&self, path: &Path) -> Result<Vec<u8>> {
        Ok(std::fs::read_link(path).map_err(|e| self.io(path, "read symlink", e))?.into_os_string().into_vec())
    }

    /// True when the stored symlink target is the one at `path`.
    fn symlink_same(&mut self, path: &Path, obj: i64, stored: &InodeData) -> Result<bool> {
        let target = self.read_link(path)?;
        if let Some(inline) = stored.symlink_inline() {
            return Ok(inline == target.as_slice());
        }
        let fix = self.txn.live_record(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_FIX, HAMMER_FIXKEY_SYMLINK)?;
        Ok(fix.is_some_and(|(_, _, d)| d == target))
    }

    /// Stores the target of the symlink at `path` in `ino` or a FIX record.
    fn symlink(&mut self, path: &Path, obj: i64, ino: &mut InodeData) -> Result<()> {
        let target = self.read_link(path)?;
        let old = self.txn.live_record(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_FIX, HAMMER_FIXKEY_SYMLINK)?;
        if ino.set_symlink_inline(&target) {
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
                    &target,
                )?;
            }
        }
        Ok(())
    }

    /// Reads the file at `path` and replaces the DATA records of `obj` that
    /// differ; returns the size read.
    fn file_data(&mut self, path: &Path, obj: i64, had_inode: bool) -> Result<u64> {
        // Not through a symlink swapped in since the walk saw a file, nor blocking on a FIFO.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| self.io(path, "open", e))?;
        let mut r = BufReader::with_capacity(crate::mrecord::SERIALBUF_SIZE, file);
        // The blocks stored now, by key; whatever is not matched is deleted.
        let mut old: HashMap<i64, (super::keys::Key, i32)> = HashMap::new();
        if had_inode {
            for (k, leaf) in self.txn.live_heads(HAMMER_LOCALIZE_MISC, obj, HAMMER_RECTYPE_DATA)? {
                old.insert(leaf.base.key, (k, leaf.data_len));
            }
        }
        let mut block = std::mem::take(&mut self.block);
        let mut offset = 0u64;
        loop {
            let bsize = hfs::data_block_size(offset);
            block.clear();
            block.resize(bsize, 0);
            let n = read_full(&mut r, &mut block).map_err(|e| self.io(path, "read", e))?;
            if n == 0 {
                break;
            }
            self.stats.bytes_read += n as u64;
            // A short first block is the whole file (read_full stops only at
            // EOF): at most 8 KiB makes one record rounded to 16 bytes.
            let len = if offset == 0 { hfs::data_record_len(0, n as u64) } else { bsize };
            let data = &block[..len];
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
            offset += n as u64;
            if n < bsize {
                break;
            }
        }
        self.block = block;
        for (_, (k, _)) in old {
            self.txn.delete(&k)?;
        }
        Ok(offset)
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

#[cfg(test)]
mod tests {
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
}
