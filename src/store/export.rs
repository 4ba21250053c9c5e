//! `export`: writes the tree a store PFS held as of a TID into a new or empty directory.
//!
//! Three passes over the records visible as of the TID: the first collects
//! inodes, directory entries and long symlink targets (small) and creates
//! the tree; the second writes file data straight from the map into the
//! files (holes stay holes); the last sets owners (when run as root), modes
//! and times, directories deepest first so that writing into them does not
//! move their times. Names are checked: a name with a `/`, a NUL, `.` or
//! `..` (only a damaged store could hold one) is skipped with a warning, so
//! an export never writes outside its directory.
//!
//! Every record is checked as it is read (see [`super::keys`]). A damaged
//! one fails the export, naming the path and TID of what it held, before
//! anything is written when the tree's records are damaged; with
//! `keep_going` the rest is exported (a file with damaged data keeps a
//! hole there) and the damage comes back as warnings.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::Store;
use crate::hammerfs::{
    self as hfs, DirEntryData, HAMMER_FIXKEY_SYMLINK, HAMMER_LOCALIZE_MISC, HAMMER_OBJID_ROOT,
    HAMMER_OBJTYPE_DIRECTORY, HAMMER_OBJTYPE_REGFILE, HAMMER_OBJTYPE_SOFTLINK, HAMMER_RECTYPE_DATA,
    HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_FIX, HAMMER_RECTYPE_INODE, InodeData,
};
use crate::ioctl::{Pfs, PfsError, Result};

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Other objects: fifos, sockets, device nodes.
    pub special: u64,
    /// File data bytes written.
    pub bytes: u64,
    /// Things that could not be reproduced (device nodes without root, damaged entries).
    pub warnings: Vec<String>,
}

/// The TID an export uses by default: the PFS's `sync_end_tid` (for a
/// master, its last import; for a slave, the last complete mirror run).
pub fn default_asof(store: &Store) -> Result<u64> {
    Ok(store.get_pseudofs()?.sync_end_tid)
}

/// One damaged record an export met.
struct Hurt {
    base: crate::mrecord::BaseElm,
    /// Its data is damaged (its leaf is intact), so it is visible as of the TID.
    data_only: bool,
    damage: super::keys::Damage,
}

/// Damaged records named in an error at most.
const NAMED: usize = 20;

/// Exports the tree as of `asof` into `dir` (created if missing; must be
/// empty); with `keep_going`, exports what is intact (see the module
/// documentation).
pub fn export(store: &Store, dir: &Path, asof: u64, keep_going: bool) -> Result<ExportStats> {
    prepare_target(dir)?;
    let mut tree = Tree::default();
    let mut bad = None;
    let mut hurt: Vec<Hurt> = Vec::new();
    store.for_each_as_of_checked(asof, |seen| {
        let (leaf, data) = match seen {
            super::Seen::Record(leaf, data) => (leaf, data),
            super::Seen::Damaged { base, leaf, damage } => {
                hurt.push(Hurt { base, data_only: leaf.is_some(), damage });
                return Ok(());
            }
        };
        let b = &leaf.base;
        match b.rec_type {
            HAMMER_RECTYPE_INODE => match InodeData::decode(data) {
                Some(ino) => {
                    tree.inodes.insert(b.obj_id, ino);
                }
                None => bad = Some(format!("object 0x{:016x} has an inode of {} bytes", b.obj_id, data.len())),
            },
            HAMMER_RECTYPE_DIRENTRY => match DirEntryData::decode(data) {
                Some(e) => tree.entries.entry(b.obj_id).or_default().push((e.name, e.obj_id)),
                None => bad = Some(format!("directory 0x{:016x} has a damaged entry", b.obj_id)),
            },
            HAMMER_RECTYPE_FIX if b.key == HAMMER_FIXKEY_SYMLINK => {
                tree.fix.insert(b.obj_id, data.to_vec());
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Some(detail) = bad {
        return Err(PfsError::Corrupt { path: store.path().to_path_buf(), detail });
    }
    let names = Names::of(&tree);
    if !hurt.is_empty() && !keep_going {
        return Err(damage_error(store, &names, &hurt, asof));
    }
    let Some(root) = tree.inodes.get(&HAMMER_OBJID_ROOT).cloned() else {
        return Err(PfsError::invalid(
            store.path(),
            "export",
            format!("the PFS holds no root directory as of 0x{asof:016x} (nothing was imported or mirrored yet)"),
        ));
    };
    let mut out = Writer { stats: ExportStats::default(), files: HashMap::new(), meta: Vec::new(), dirs: Vec::new() };
    out.dirs.push((dir.to_path_buf(), root));
    out.stats.dirs += 1;
    out.create_tree(&tree, dir)?;
    out.write_data(store, asof)?;
    out.set_metadata()?;
    for h in &hurt {
        let what = names.describe(h, asof);
        out.warn(what);
    }
    Ok(out.stats)
}

/// The error for damaged records met by an export.
fn damage_error(store: &Store, names: &Names, hurt: &[Hurt], asof: u64) -> PfsError {
    let mut detail = format!("{} damaged record{}: ", hurt.len(), if hurt.len() == 1 { "" } else { "s" });
    let listed: Vec<String> = hurt.iter().take(NAMED).map(|h| names.describe(h, asof)).collect();
    detail.push_str(&listed.join("; "));
    if hurt.len() > NAMED {
        detail.push_str(&format!("; and {} more", hurt.len() - NAMED));
    }
    detail.push_str(" (hammer-mirror scrub lists them all; export --keep-going exports the rest; repair --from <replica> repairs them)");
    PfsError::Corrupt { path: store.path().to_path_buf(), detail }
}

/// Paths of the PFS's objects as of the export's TID, for messages.
struct Names {
    /// Object → (parent directory, name) of its first entry.
    parent: HashMap<i64, (i64, Vec<u8>)>,
}

impl Names {
    fn of(tree: &Tree) -> Names {
        let mut parent = HashMap::new();
        let mut dirs: Vec<&i64> = tree.entries.keys().collect();
        dirs.sort_unstable();
        for dir in dirs {
            let mut entries: Vec<&(Vec<u8>, i64)> = tree.entries[dir].iter().collect();
            entries.sort_unstable();
            for (name, obj) in entries {
                parent.entry(*obj).or_insert((*dir, name.clone()));
            }
        }
        Names { parent }
    }

    /// "/a/b" for an object reached from the root, else its id.
    fn path(&self, obj: i64) -> String {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut at = obj;
        while at != HAMMER_OBJID_ROOT {
            match self.parent.get(&at) {
                Some((dir, name)) if parts.len() < 4096 => {
                    parts.push(name);
                    at = *dir;
                }
                _ => return format!("object 0x{obj:016x}"),
            }
        }
        if parts.is_empty() {
            return "/".into();
        }
        parts.iter().rev().map(|p| format!("/{}", String::from_utf8_lossy(p))).collect()
    }

    fn describe(&self, h: &Hurt, asof: u64) -> String {
        let b = &h.base;
        let path = self.path(b.obj_id);
        let what = match b.rec_type {
            HAMMER_RECTYPE_INODE => "its inode".to_string(),
            HAMMER_RECTYPE_DATA => format!("its data ending at offset {}", b.key),
            HAMMER_RECTYPE_DIRENTRY => format!("an entry of the directory (key 0x{:016x})", b.key),
            HAMMER_RECTYPE_FIX => "its symlink target".to_string(),
            t => format!("a record of type 0x{t:02x} (key 0x{:016x})", b.key),
        };
        let seen =
            if h.data_only { String::new() } else { format!(" (whether visible as of 0x{asof:016x} is unknown)") };
        format!("{path}: {what}, TID 0x{:016x}: {}{seen}", b.create_tid, h.damage)
    }
}

/// Creates `dir` if it is missing; refuses anything but an empty directory.
fn prepare_target(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(dir).map_err(|e| PfsError::io(dir, "create directory", e))
        }
        Err(e) => Err(PfsError::io(dir, "stat", e)),
        Ok(m) if !m.is_dir() => Err(PfsError::invalid(dir, "export", "exists and is not a directory")),
        Ok(_) => {
            let mut it = std::fs::read_dir(dir).map_err(|e| PfsError::io(dir, "read directory", e))?;
            if it.next().is_some() {
                return Err(PfsError::invalid(
                    dir,
                    "export",
                    "directory is not empty; export only into a new or empty directory",
                ));
            }
            Ok(())
        }
    }
}

#[derive(Default)]
struct Tree {
    inodes: HashMap<i64, InodeData>,
    /// Directory object → (name, object) of its entries.
    entries: HashMap<i64, Vec<(Vec<u8>, i64)>>,
    /// Long symlink targets.
    fix: HashMap<i64, Vec<u8>>,
}

struct Writer {
    stats: ExportStats,
    /// Regular file object → (first path, size).
    files: HashMap<i64, (PathBuf, u64)>,
    /// Objects other than directories, for the metadata pass.
    meta: Vec<(PathBuf, InodeData)>,
    /// Directories in creation order (parents first).
    dirs: Vec<(PathBuf, InodeData)>,
}

/// True for a name that stays inside its directory.
fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Writer {
    fn warn(&mut self, msg: String) {
        self.stats.warnings.push(msg);
    }

    /// Creates every directory, file, link and node below `root`.
    fn create_tree(&mut self, tree: &Tree, root: &Path) -> Result<()> {
        let mut seen_dirs = HashSet::from([HAMMER_OBJID_ROOT]);
        let mut stack = vec![(HAMMER_OBJID_ROOT, root.to_path_buf())];
        while let Some((dir_obj, dir_path)) = stack.pop() {
            let mut entries: Vec<&(Vec<u8>, i64)> =
                tree.entries.get(&dir_obj).map(|v| v.iter().collect()).unwrap_or_default();
            entries.sort_unstable();
            for (name, obj) in entries {
                let path = dir_path.join(OsStr::from_bytes(name));
                if !safe_name(name) {
                    self.warn(format!(
                        "{}: skipped an entry with an invalid name {:?}",
                        dir_path.display(),
                        String::from_utf8_lossy(name)
                    ));
                    continue;
                }
                let Some(ino) = tree.inodes.get(obj) else {
                    self.warn(format!("{}: skipped, object 0x{obj:016x} has no inode", path.display()));
                    continue;
                };
                if ino.obj_type == HAMMER_OBJTYPE_DIRECTORY {
                    if !seen_dirs.insert(*obj) {
                        self.warn(format!("{}: skipped a second link to a directory", path.display()));
                        continue;
                    }
                    std::fs::create_dir(&path).map_err(|e| PfsError::io(&path, "create directory", e))?;
                    self.stats.dirs += 1;
                    self.dirs.push((path.clone(), ino.clone()));
                    stack.push((*obj, path));
                    continue;
                }
                if let Some((first, _)) = self.files.get(obj) {
                    std::fs::hard_link(first, &path).map_err(|e| PfsError::io(&path, "link", e))?;
                    continue;
                }
                if self.create_object(tree, *obj, ino, &path)? {
                    self.meta.push((path, ino.clone()));
                }
            }
        }
        Ok(())
    }

    /// Creates one non-directory object; false when it was skipped.
    fn create_object(&mut self, tree: &Tree, obj: i64, ino: &InodeData, path: &Path) -> Result<bool> {
        match ino.obj_type {
            HAMMER_OBJTYPE_REGFILE => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| PfsError::io(path, "create", e))?;
                f.set_len(ino.size).map_err(|e| PfsError::io(path, "truncate", e))?;
                self.files.insert(obj, (path.to_path_buf(), ino.size));
                self.stats.files += 1;
            }
            HAMMER_OBJTYPE_SOFTLINK => {
                let target = match ino.symlink_inline() {
                    Some(t) => t.to_vec(),
                    None => match tree.fix.get(&obj) {
                        Some(t) => t.clone(),
                        None => {
                            self.warn(format!("{}: skipped, the symlink's target record is missing", path.display()));
                            return Ok(false);
                        }
                    },
                };
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), path)
                    .map_err(|e| PfsError::io(path, "create symlink", e))?;
                self.stats.symlinks += 1;
            }
            t @ (hfs::HAMMER_OBJTYPE_FIFO
            | hfs::HAMMER_OBJTYPE_SOCKET
            | hfs::HAMMER_OBJTYPE_CDEV
            | hfs::HAMMER_OBJTYPE_BDEV) => {
                let kind = SFlag::from_bits_truncate(hfs::unix_file_type_bits(t) as _);
                let dev = nix::sys::stat::makedev(ino.rmajor as u64, ino.rminor as u64);
                match nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(0o600), dev) {
                    Ok(()) => self.stats.special += 1,
                    Err(e) => {
                        self.warn(format!("{}: skipped, cannot create the node: {}", path.display(), e.desc()));
                        return Ok(false);
                    }
                }
            }
            t => {
                self.warn(format!("{}: skipped, objects of HAMMER type {t} cannot be exported", path.display()));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the DATA records of every exported file (the first walk
    /// found the damaged ones: they are left out, holes in their files).
    fn write_data(&mut self, store: &Store, asof: u64) -> Result<()> {
        let mut open: Option<(i64, File, PathBuf, u64)> = None;
        let mut bytes = 0u64;
        let files = &self.files;
        store.for_each_as_of_checked(asof, |seen| {
            let super::Seen::Record(leaf, data) = seen else { return Ok(()) };
            let b = &leaf.base;
            if b.rec_type != HAMMER_RECTYPE_DATA || b.localization & hfs::HAMMER_LOCALIZE_MASK != HAMMER_LOCALIZE_MISC {
                return Ok(());
            }
            let Some((path, size)) = files.get(&b.obj_id) else { return Ok(()) };
            if open.as_ref().is_none_or(|(o, ..)| *o != b.obj_id) {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| PfsError::io(path, "open", e))?;
                open = Some((b.obj_id, f, path.clone(), *size));
            }
            let (_, f, path, size) = open.as_ref().expect("opened");
            let base = (b.key as u64).saturating_sub(data.len() as u64);
            if base >= *size {
                return Ok(());
            }
            let n = data.len().min((*size - base) as usize);
            f.write_all_at(&data[..n], base).map_err(|e| PfsError::io(path, "write", e))?;
            bytes += n as u64;
            Ok(())
        })?;
        self.stats.bytes = bytes;
        Ok(())
    }

    /// Owners (as root), modes and times; directories last, deepest first.
    fn set_metadata(&mut self) -> Result<()> {
        let root = nix::unistd::geteuid().is_root();
        let meta = std::mem::take(&mut self.meta);
        let dirs = std::mem::take(&mut self.dirs);
        for (path, ino) in meta.iter().chain(dirs.iter().rev()) {
            let link = ino.obj_type == HAMMER_OBJTYPE_SOFTLINK;
            if root {
                let (uid, gid) =
                    (nix::unistd::Uid::from_raw(ino.unix_uid()), nix::unistd::Gid::from_raw(ino.unix_gid()));
                nix::unistd::fchownat(
                    nix::fcntl::AT_FDCWD,
                    path.as_path(),
                    Some(uid),
                    Some(gid),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| PfsError::io(path, "chown", e.into()))?;
            }
            if !link {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(ino.mode as u32 & 0o7777))
                    .map_err(|e| PfsError::io(path, "chmod", e))?;
            }
            let ts = |t: u64| {
                let (s, ns) = hfs::hammer_time_to_unix(t);
                TimeSpec::new(s as _, ns as _)
            };
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                path.as_path(),
                &ts(ino.atime),
                &ts(ino.mtime),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| PfsError::io(path, "set times", e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"x\0y"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe"] {
            assert!(safe_name(good), "{good:?}");
        }
    }
}
