//! Opening an LMDB environment: the one memory-map constructor the userspace store needs.
//!
//! heed marks `EnvOpenOptions::open` and `flags` unsafe because a memory map
//! is undefined behaviour if the file underneath changes outside LMDB's
//! locking. The crate keeps every `unsafe` in this module tree, so the store
//! opens its environments here. The invariants we uphold: the file is only
//! ever changed through LMDB (our own writers take LMDB's lock; `pfs-destroy`
//! removes the file only while holding the store's writer lock), no unsafe
//! LMDB flag (NO_SYNC, NO_META_SYNC, NO_LOCK) is used, and each path is opened
//! at most once per process (`crate::store` keeps a registry).

use std::path::Path;

use heed::{Env, EnvFlags, EnvOpenOptions, WithoutTls};

/// Opens (or creates) the single-file LMDB environment at `path`, its lock
/// file beside it as `<path>-lock`.
pub fn open_env(path: &Path, map_size: usize, max_dbs: u32) -> heed::Result<Env<WithoutTls>> {
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size).max_dbs(max_dbs).max_readers(126);
    // SAFETY: NO_SUB_DIR only changes the file layout (one data file plus
    // "<path>-lock"); it is not one of the flags that weaken LMDB's guarantees.
    unsafe {
        opts.flags(EnvFlags::NO_SUB_DIR);
    }
    // SAFETY: see the module documentation: the file is only modified through
    // LMDB and opened once per process.
    unsafe { opts.open(path) }
}
