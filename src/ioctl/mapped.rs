//! The LMDB memory map of the userspace store: opening an environment, and releasing its resident pages.
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

/// The mapping of this process that contains address `addr` (start,
/// length), provided it maps the file with inode `ino`, from
/// `/proc/self/maps`; None where there is no such file (not Linux) or no
/// such mapping. LMDB does not tell where its map is unless the map is fixed,
/// but every value a read-only transaction returns points into it.
pub fn find_map(addr: usize, ino: u64) -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (a, b) = f.next()?.split_once('-')?;
        let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
        let inode: u64 = f.nth(3)?.parse().ok()?;
        (a <= addr && addr < b && inode == ino).then_some((a, b - a))
    })
}

/// Drops this process's resident pages of `env`'s map (`MADV_DONTNEED`),
/// the map being at `map` as [`find_map`] found it.
///
/// LMDB maps the file shared and read-only and never changes a page a
/// reader can see, so the pages stay valid: a later access faults them back
/// in from the page cache. Without this, a scan of a large PFS counts every
/// page of the file in the process's resident set.
pub fn release_resident(env: &Env<WithoutTls>, map: (usize, usize)) {
    let info = env.info();
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as usize;
    let len = map.1.min(info.last_page_number.saturating_add(1).saturating_mul(page));
    if len == 0 {
        return;
    }
    // SAFETY: the range is the start of LMDB's shared, read-only mapping of
    // the store file, up to its last used page. MADV_DONTNEED on such a
    // mapping only unmaps the pages from this process; their contents, read
    // back from the file on the next access, are unchanged, so references
    // into the map stay valid. A failure only means the pages stay resident.
    unsafe {
        libc::madvise(map.0 as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}
