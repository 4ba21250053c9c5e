//! The store's file layout constants: its magic, record layout version, map size, table names and the names of the files beside it.
//!
//! One place for what identifies a store file on disk. `LAYOUT` is the one
//! version number of the record layout: bump it (and only it) when what the
//! tables hold changes incompatibly; a store of another layout is refused by
//! name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The `meta` value (key [`MAGIC_KEY`]) that marks a file as a hammer-mirror PFS store.
pub const MAGIC: &[u8] = b"hammer-mirror PFS store v1";
/// The key of [`MAGIC`] in the `meta` table.
pub const MAGIC_KEY: &str = "magic";
/// The key of the record layout (a little-endian u64) in the `meta` table.
pub const LAYOUT_KEY: &str = "layout";
/// The record layout: 2 since data beyond a record value's first bytes went
/// to the blob table, 3 since records, TID index entries and meta entries
/// carry checksums (a layout-2 file is upgraded in place: `store::upgrade`).
pub const LAYOUT: u64 = 3;
/// Address space reserved for a map at most; the file only grows as data arrives.
pub const MAP_SIZE: usize = 1 << 40;
/// Address space reserved for a map at least.
const MIN_MAP: u64 = 1 << 30;

/// The map to reserve for a store on a filesystem of `fs_bytes`: no more
/// than the filesystem can hold (a file cannot outgrow it), rounded up to a
/// power of two, between 1 GiB and [`MAP_SIZE`], and never below the file's
/// `file_bytes`. A process has 128 TiB of address space: at 1 TiB a map,
/// `run` could not open more than ~120 stores (mmap fails with ENOMEM).
pub fn map_size(fs_bytes: u64, file_bytes: u64) -> usize {
    let want = fs_bytes.max(file_bytes).max(MIN_MAP).checked_next_power_of_two().unwrap_or(u64::MAX);
    usize::try_from(want).unwrap_or(usize::MAX).min(MAP_SIZE).max(usize::try_from(file_bytes).unwrap_or(usize::MAX))
}
/// Named LMDB databases of a store.
pub const MAX_DBS: u32 = 8;
/// LMDB reader slots (processes and threads reading at once).
pub const MAX_READERS: u32 = 126;
/// Bytes of LMDB's lock file (its reader table): `MDB_txninfo` (three
/// 64-byte cache lines) and one 64-byte slot per further reader, to a whole
/// number of 4 KiB pages. The store allocates them before LMDB maps the
/// file, since a page of a shared map that a full filesystem cannot back
/// is a SIGBUS at first touch, not an error.
pub const LOCK_FILE_BYTES: u64 = ((MAX_READERS as u64 - 1) * 64 + 192).div_ceil(4096) * 4096;
/// The tables of a store, in the order they are created.
pub const TABLES: [&str; 4] = [META_TABLE, "recs", "tids", "blobs"];
/// The table holding the magic, the layout and the PFS description.
pub const META_TABLE: &str = "meta";
/// Mode of every file the store creates (before the umask).
pub const FILE_MODE: u32 = 0o600;
/// What follows a store's file name in its LMDB lock file's name.
pub const LOCK_SUFFIX: &str = "-lock";
/// What follows `.<name>` in the name of a store being created.
const NEW_MARK: &str = ".hm-new.";
/// The longest part of a store's file name kept in its temporary name (so
/// that the temporary name and its lock stay within NAME_MAX).
const NEW_NAME_KEEP: usize = 200;

/// The LMDB lock file of the store at `path`: `<path>-lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(LOCK_SUFFIX);
    s.into()
}

/// The prefix of the temporary names under which a store named `name` is
/// created in its directory: `.<name>.hm-new.` (the name cut to 200 bytes).
pub fn new_prefix(name: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let b = name.as_bytes();
    let mut v = Vec::with_capacity(b.len().min(NEW_NAME_KEEP) + 10);
    v.push(b'.');
    v.extend_from_slice(&b[..b.len().min(NEW_NAME_KEEP)]);
    v.extend_from_slice(NEW_MARK.as_bytes());
    OsString::from_vec(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn maps_fit_the_filesystem() {
        assert_eq!(map_size(0, 0), 1 << 30);
        assert_eq!(map_size(252_000_000_000, 4096), 256 << 30);
        assert_eq!(map_size(12 << 30, 0), 16 << 30);
        assert_eq!(map_size(100 << 40, 0), MAP_SIZE);
        // A file larger than its filesystem says (grown online, say) is mapped whole.
        assert_eq!(map_size(1 << 30, (3 << 30) + 5), 4 << 30);
    }

    #[test]
    fn names_beside_a_store() {
        assert_eq!(lock_path(Path::new("/a/b")), Path::new("/a/b-lock"));
        assert_eq!(new_prefix(OsStr::new("slave")), OsStr::new(".slave.hm-new."));
        let long = "x".repeat(255);
        let p = new_prefix(OsStr::new(&long));
        // Room for 8 random characters and "-lock" within NAME_MAX.
        assert!(p.as_bytes().len() + 8 + LOCK_SUFFIX.len() <= 255, "{}", p.len());
    }
}
