//! `compact`: rewrites a store to its smallest size (LMDB's compacting copy) and renames the copy over it, under the writer lock.
//!
//! The copy is made beside the store under a temporary name (as a new
//! store is: `file::create_temp`), synced, and renamed over the store: a
//! crash at any moment leaves the old file or the new one (and at worst a
//! temporary that the next creation or compaction of that name removes).
//! Processes that have the old file open keep the read transactions they
//! have; a new one on the old file is refused (`Store::read_txn`: see
//! below), so they open the store again. A writer that was waiting for the
//! old file's lock opens the new file instead (`Store::open`).
//!
//! The LMDB lock file stays: processes that have it open keep its last
//! transaction id, and LMDB reads the meta page of that id's parity. A
//! compacting copy puts its state in meta page 1; when the live id is even,
//! one commit to the copy moves the state to page 0 first, so that the
//! copy's newest meta page is the one every process will read.

use std::path::Path;

use heed::CompactionOption;

use super::{Access, Store, file, lmdbfile};
use crate::ioctl::{PfsError, Result};

/// What a compaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
}

/// Compacts the store at `path` (see the module documentation).
pub fn compact(path: &Path) -> Result<Compacted> {
    let store = Store::open(path, Access::Write)?;
    let before = store.db.files.data.metadata().map_err(|e| PfsError::io(path, "stat", e))?.len();
    let txnid = store.db.env.info().last_txn_id as u64;
    let new = file::create_temp(path)?;
    let discard = |tmp: &Path| {
        let _ = std::fs::remove_file(tmp);
        let _ = std::fs::remove_file(super::layout::lock_path(tmp));
    };
    let made = (|| {
        let mut data = new.data.try_clone().map_err(|e| PfsError::io(path, "compact", e))?;
        store.db.env.copy_to_file(&mut data, CompactionOption::Enabled).map_err(|e| store.err("compact", e))?;
        if txnid.is_multiple_of(2) {
            // One commit moves the copy's state to meta page 0 (see above).
            let held = new.data.try_clone().map_err(|e| PfsError::io(path, "compact", e))?;
            let copy = Store::open_with(&new.tmp, Access::Write, Some(held), super::lock_wait())?;
            let mut txn = copy.write_txn()?;
            copy.put_meta(&mut txn, "compacted", &super::now_secs().to_le_bytes())?;
            copy.commit(txn, "compact")?;
        }
        let (meta, _) = lmdbfile::read_meta(&new.data).map_err(|p| file::problem(&new.tmp, p))?;
        if meta.txnid % 2 != txnid % 2 {
            return Err(PfsError::invalid(
                path,
                "compact",
                format!("the copy's newest meta page is of transaction {}, not of {txnid}'s parity", meta.txnid),
            ));
        }
        new.data.sync_all().map_err(|e| PfsError::io(&new.tmp, "sync", e))?;
        // Keep the owner and mode of the file it replaces.
        let m = store.db.files.data.metadata().map_err(|e| PfsError::io(path, "stat", e))?;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let _ = std::os::unix::fs::fchown(&new.data, Some(m.uid()), Some(m.gid()));
        new.data
            .set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(|e| PfsError::io(&new.tmp, "chmod", e))?;
        Ok(())
    })();
    if let Err(e) = made {
        discard(&new.tmp);
        return Err(e);
    }
    let after = new.data.metadata().map_err(|e| PfsError::io(&new.tmp, "stat", e))?.len();
    if let Err(e) = std::fs::rename(&new.tmp, path) {
        discard(&new.tmp);
        return Err(PfsError::io(path, "compact: rename the copy over the store", e));
    }
    let _ = std::fs::remove_file(super::layout::lock_path(&new.tmp));
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    drop(store);
    Ok(Compacted { before, after })
}
