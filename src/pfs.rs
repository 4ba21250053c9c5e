//! Opening a PFS by path: the DragonFly kernel implementation for HAMMER mounts, the userspace store otherwise.
//!
//! A regular file is a store PFS. A directory, or hammer's `@@PFS%05d`
//! softlink to one, goes to the kernel implementation, which reports "not a
//! HAMMER filesystem" where HAMMER is not there. A symlink to anything else
//! is refused by name: store files are never opened through a symlink (their
//! lock file would be made beside the link). Kept apart from `ioctl` so that
//! `ioctl` never depends on the store.

use std::path::Path;

use crate::ioctl::{Opener, Pfs, PfsError, kernel::KernelPfs};
use crate::mrecord::{PFSD_SLAVE, PseudofsData};
use crate::store::{Access, Store};

/// The PFS id given to store PFSs (the first id `hammer pfs-master` hands out).
pub const STORE_PFS_ID: u32 = 1;

/// What is at a PFS path.
enum Kind {
    Store,
    /// A directory or a symlink to one: the kernel's.
    Kernel,
    /// A symlink to something other than a directory.
    Symlink,
}

fn kind(path: &Path) -> Result<Kind, PfsError> {
    match path.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PfsError::NotFound { path: path.to_path_buf() }),
        Err(e) => Err(PfsError::io(path, "stat", e)),
        Ok(m) if m.file_type().is_symlink() => {
            Ok(if path.metadata().is_ok_and(|t| t.is_dir()) { Kind::Kernel } else { Kind::Symlink })
        }
        Ok(m) if m.is_dir() => Ok(Kind::Kernel),
        Ok(_) => Ok(Kind::Store),
    }
}

/// Opens the PFS at `path`.
pub fn open(path: &Path, access: Access) -> Result<Box<dyn Pfs>, PfsError> {
    match kind(path)? {
        Kind::Store => Ok(Box::new(Store::open(path, access)?)),
        Kind::Kernel => match KernelPfs::open(path) {
            // Not HAMMER: a plain directory is a tree to record, not a PFS.
            Err(PfsError::NotHammer { .. }) if path.symlink_metadata().is_ok_and(|m| m.is_dir()) => {
                Err(PfsError::NotPfs {
                    path: path.to_path_buf(),
                    detail: "a plain directory; record it with `hammer-mirror import <dir> <pfs>` \
                             first (a store PFS is a file)"
                        .into(),
                })
            }
            r => Ok(Box::new(r?)),
        },
        Kind::Symlink => Err(crate::store::symlink_refusal(path)),
    }
}

/// Opens a store PFS (for commands that only work on the store, like import).
pub fn open_store(path: &Path, access: Access) -> Result<Store, PfsError> {
    match kind(path)? {
        Kind::Kernel => match KernelPfs::open(path) {
            Err(PfsError::NotHammer { .. }) if path.symlink_metadata().is_ok_and(|m| m.is_dir()) => {
                Err(PfsError::NotPfs {
                    path: path.to_path_buf(),
                    detail: "a directory, not a store PFS (a store PFS is a file: make one with \
                             `hammer-mirror pfs-master <file>`)"
                        .into(),
                })
            }
            Err(e) => Err(e),
            Ok(_) => Err(PfsError::NotPfs { path: path.to_path_buf(), detail: "not a PFS store file".into() }),
        },
        Kind::Symlink => Err(crate::store::symlink_refusal(path)),
        Kind::Store => Store::open(path, access),
    }
}

/// True when something exists at `path` (hammer's `lstat()` test).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// `init_pfsd`: a new PFS description with fresh uuids, sync TIDs at 1.
pub fn init_pfsd(slave: bool) -> PseudofsData {
    PseudofsData {
        sync_beg_tid: 1,
        sync_end_tid: 1,
        shared_uuid: crate::mrecord::uuid_to_wire(&uuid::Uuid::new_v4()),
        unique_uuid: crate::mrecord::uuid_to_wire(&uuid::Uuid::new_v4()),
        mirror_flags: if slave { PFSD_SLAVE } else { 0 },
        ..Default::default()
    }
}

/// Creates a store PFS at `path` (pfs-master / pfs-slave, a new slave of
/// mirror-write) and returns it open for writing. A master gets its root
/// directory, as HAMMER's SET_PSEUDOFS does for a new master, before the
/// store gets its name: a kill never leaves a partial PFS at `path`.
pub fn create_store(path: &Path, pfsd: &PseudofsData) -> Result<Store, PfsError> {
    Store::create_with(path, pfsd, STORE_PFS_ID, |store| {
        if !pfsd.is_slave() {
            crate::store::import::make_root(store)?;
        }
        Ok(())
    })
}

/// The write half's [`Opener`] for a path: the PFS there, or a new store
/// slave created at it.
pub struct PathOpener(pub std::path::PathBuf);

impl Opener for PathOpener {
    fn path(&self) -> &Path {
        &self.0
    }

    fn open(&self) -> Result<Option<Box<dyn Pfs>>, PfsError> {
        if !exists(&self.0) {
            return Ok(None);
        }
        open(&self.0, Access::Write).map(Some)
    }

    fn create_slave(&self, shared_uuid: &[u8; 16]) -> Result<Box<dyn Pfs>, PfsError> {
        let mut pfsd = init_pfsd(true);
        pfsd.shared_uuid = *shared_uuid;
        Ok(Box::new(create_store(&self.0, &pfsd)?))
    }
}
