//! The userspace PFS store: one PFS in one LMDB file, behaving through `Pfs` like the HAMMER kernel.
//!
//! Layout (see [`keys`] and [`layout`]): a `meta` table (magic, the
//! `hammer_pseudofs_data`, PFS id, last TID, object id and data offset
//! allocators), a `recs` table of B-tree leaf records in `hammer_btree_cmp`
//! order, a `blobs` table of what record values do not hold, and a `tids`
//! index of every create/delete TID.
//!
//! Files (see [`file`]): the data file and `<path>-lock` are opened without
//! following symlinks, the data file is vetted before LMDB maps it
//! ([`lmdbfile`]), and a new store is created 0600 under a temporary name and
//! published complete. LMDB gives MVCC: readers never take the writer lock
//! and never begin a write transaction, so a writer (even a stopped one)
//! never blocks them. Writers are serialized by an exclusive `flock` on the
//! data file, taken when the store is opened for writing and held until it is
//! dropped; a second writer waits `HAMMER_MIRROR_LOCK_WAIT` seconds (default
//! 10) and then fails with "PFS is busy". Every commit is durable (LMDB's
//! default fsync), so `sync_end_tid` only moves after the data it covers is
//! on disk. Every transaction begins with a check that the file still holds
//! every page the newest meta page uses; a file cut short during a
//! transaction is caught by the SIGBUS guard of [`crate::ioctl::mapped`].

pub mod apply;
mod change;
pub mod compact;
pub mod export;
mod file;
pub mod import;
pub mod keys;
pub mod layout;
pub mod lmdbfile;
pub mod master;
#[cfg(test)]
mod open_tests;
mod partial;
pub mod prune;
pub mod repair;
pub mod rollback;
pub mod scan;
pub mod scrub;
pub mod snapshots;
#[cfg(test)]
mod tests;
mod upgrade;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heed::types::{Bytes, Str};
use heed::{Database, Env, RoTxn, RwTxn, WithoutTls};

use crate::hammerfs::SnapshotData;
use crate::ioctl::{MirrorRw, Pfs, PfsError, Result, SynctidOp, mapped};
use crate::mrecord::{BaseElm, LeafElm, PFSD_SLAVE, PseudofsData};
use layout::{LAYOUT, MAGIC};

#[cfg(test)]
use file::lock_writer;
pub use file::signal_flag as lock_wait_signal_flag;
pub(crate) use file::symlink_refusal;
pub use file::{WaitsEndWith, waits_end_with};

/// Why a writer opens a store again: the file it locked was replaced.
const REPLACED: &str = "the file was replaced (compacted) while waiting for the writer lock";

/// Why a store cannot be opened now: this process still has the file that
/// `compact` replaced open.
pub(crate) const OLD_OPEN: &str =
    "the store was replaced (compacted) while this process has the old file open; it can be opened once that is closed";

/// How often `wait_pseudofs` looks for a new TID at least (a change of the store file wakes it sooner).
const WAIT_POLL: Duration = Duration::from_secs(1);

/// Whether a store is opened for reading only or also for writing (which
/// takes the writer lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// One open environment, shared by every `Store` of the same file in this
/// process (LMDB forbids opening a file twice in one process: closing any
/// descriptor of its lock file drops the process's locks on it).
///
/// Fields drop in order: the environment first, then the files it was
/// opened on, and last the signal that the file may be opened again.
pub(crate) struct Shared {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) meta: Database<Str, Bytes>,
    pub(crate) recs: Database<Bytes, Bytes>,
    /// TID index entries and their checksums (see [`keys::tid_value`]).
    pub(crate) tids: Database<Bytes, Bytes>,
    /// The data of records beyond what their values hold (see [`keys::inline_len`]).
    pub(crate) blobs: Database<Bytes, Bytes>,
    /// The data file's inode, and where it is mapped in this process once
    /// looked up.
    ino: u64,
    /// The lock file's (device, inode), when there is one.
    lock_key: Option<(u64, u64)>,
    map: OnceLock<Option<(usize, usize)>>,
    /// Write transactions are possible (the data file is open for writing
    /// and LMDB has its lock file).
    writable: bool,
    psize: u64,
    /// The newest meta page's transaction and the file length it needs, as
    /// last found by reading the free list (when the file ends early).
    checked: Mutex<(u64, u64)>,
    files: Files,
    closed: Closed,
}

/// The descriptors LMDB's files were opened through (kept open while the
/// environment is: see [`file`]).
struct Files {
    /// First, so that the handler forgets the descriptor before it closes.
    guard: mapped::Guard,
    data: File,
    _lock: Option<File>,
}

/// Set once a [`Shared`] is entirely gone.
#[derive(Default)]
struct CloseState {
    done: Mutex<bool>,
    cv: Condvar,
}

impl CloseState {
    fn is_done(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The signal of a [`Shared`] of the file with inode `.1`.
struct Closed(Arc<CloseState>, #[cfg_attr(not(test), allow(dead_code))] u64);

/// Test instrumentation: the inodes with an environment open in this
/// process (LMDB must never have two of one file).
#[cfg(test)]
pub(crate) static LIVE: LazyLock<Mutex<std::collections::HashSet<u64>>> = LazyLock::new(Default::default);

impl Drop for Closed {
    fn drop(&mut self) {
        #[cfg(test)]
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
        *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.cv.notify_all();
    }
}

/// The open environments of this process by (device, inode), with the
/// signal that each is closed. An entry whose `Weak` is dead but whose close
/// is not done is being closed on another thread: an opener waits for it.
type Registry = HashMap<(u64, u64), (Weak<Shared>, Arc<CloseState>)>;
static OPEN: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

/// A PFS kept in a single file. See the module documentation.
pub struct Store {
    path: PathBuf,
    pub(crate) db: Arc<Shared>,
    pub(crate) pfs_id: u32,
    /// The writer lock, held while open for writing.
    lock: Option<File>,
    pub(crate) scan_cache: Mutex<Option<scan::ChangeCache>>,
    /// Bytes read through the map since its pages were last released.
    touched: std::sync::atomic::AtomicUsize,
    /// The next pass resumes the recorded partial pass ([`Pfs::resume_partial`]).
    resuming: std::sync::atomic::AtomicBool,
    /// What `wait_pseudofs` sleeps on (made on first use).
    change: std::sync::OnceLock<change::Change>,
    /// What mirror writes repaired, for [`Pfs::take_repaired`].
    pub(crate) repaired: Mutex<Vec<String>>,
    /// The pass under way is a repair pass ([`Pfs::repair_floor`] was
    /// asked): its SYNC forgets the damaged records it did not repair.
    repair_pass: std::sync::atomic::AtomicBool,
}

/// Bytes a process may touch in the map before its pages are released
/// (copy runs a reader and a writer; P7 allows 64 MiB for both).
const RESIDENT_BUDGET: usize = 8 << 20;

pub(crate) fn lmdb_err(path: &Path, op: &'static str, e: heed::Error) -> PfsError {
    match e {
        heed::Error::Io(source) => PfsError::io(path, op, source),
        heed::Error::Mdb(heed::MdbError::Invalid) | heed::Error::Mdb(heed::MdbError::VersionMismatch) => {
            PfsError::NotPfs { path: path.to_path_buf(), detail: "not a hammer-mirror PFS store file".into() }
        }
        heed::Error::Mdb(heed::MdbError::Corrupted) | heed::Error::Mdb(heed::MdbError::PageNotFound) => {
            PfsError::Damaged { path: path.to_path_buf(), detail: format!("{op}: LMDB found a damaged page ({e})") }
        }
        heed::Error::Mdb(heed::MdbError::MapFull) => {
            PfsError::io(path, op, std::io::Error::new(std::io::ErrorKind::StorageFull, "the store's map is full"))
        }
        other => PfsError::Invalid { path: path.to_path_buf(), op, detail: other.to_string() },
    }
}

/// Current wall-clock time in seconds (leaf `create_ts`/`delete_ts`).
pub(crate) fn now_secs() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// How long a writer waits for the lock.
fn lock_wait() -> Duration {
    let secs = std::env::var("HAMMER_MIRROR_LOCK_WAIT").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(secs.max(0.0))
}

impl Shared {
    /// Opens the environment on `data` (the inode `ino`) and `lock`; with
    /// `create`, makes the store's tables in a new file.
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: &Path,
        data: File,
        ino: u64,
        writable: bool,
        need: u64,
        lock: Option<File>,
        create: bool,
    ) -> Result<Shared> {
        if lock.is_none() {
            file::lock_shared(path, &data, lock_wait())?;
        }
        #[cfg(test)]
        assert!(LIVE.lock().unwrap_or_else(|e| e.into_inner()).insert(ino), "a second environment of {path:?}");
        let closed = Closed(Arc::default(), ino);
        let env = file::open_env(path, &data, lock.as_ref(), writable)?;
        // Reader slots of processes that were killed would pin old pages forever.
        let _ = env.clear_stale_readers();
        let err = |e| lmdb_err(path, "open", e);
        let [meta, recs, tids, blobs] = layout::TABLES;
        let (meta, recs, tids, blobs) = if create {
            let mut txn = env.write_txn().map_err(err)?;
            let t = (
                env.create_database(&mut txn, Some(meta)).map_err(err)?,
                env.create_database(&mut txn, Some(recs)).map_err(err)?,
                env.create_database(&mut txn, Some(tids)).map_err(err)?,
                env.create_database(&mut txn, Some(blobs)).map_err(err)?,
            );
            txn.commit().map_err(err)?;
            t
        } else {
            // Opened in a read transaction: a reader never waits for a writer.
            let txn = env.read_txn().map_err(err)?;
            let missing = |name: &str| PfsError::Damaged {
                path: path.to_path_buf(),
                detail: format!("the store's table {name:?} is missing"),
            };
            let t = (
                env.open_database(&txn, Some(meta)).map_err(err)?.ok_or_else(|| missing(meta))?,
                env.open_database(&txn, Some(recs)).map_err(err)?.ok_or_else(|| missing(recs))?,
                env.open_database(&txn, Some(tids)).map_err(err)?.ok_or_else(|| missing(tids))?,
                env.open_database(&txn, Some(blobs)).map_err(err)?.ok_or_else(|| missing(blobs))?,
            );
            // Committing a read transaction keeps the handles it opened.
            txn.commit().map_err(err)?;
            t
        };
        let (m, _) = lmdbfile::read_meta(&data).map_err(|p| file::problem(path, p))?;
        let lock_key = lock.as_ref().and_then(|l| l.metadata().ok()).map(|m| (m.dev(), m.ino()));
        let guard = mapped::guard(data.as_raw_fd(), &format!("hammer-mirror: PFS file damaged: {}: ", path.display()));
        guard.set_need(need);
        Ok(Shared {
            env,
            meta,
            recs,
            tids,
            blobs,
            ino,
            lock_key,
            map: OnceLock::new(),
            writable: writable && lock.is_some(),
            psize: u64::from(m.psize),
            checked: Mutex::new((0, 0)),
            files: Files { guard, data, _lock: lock },
            closed,
        })
    }

    /// Checks that the file still has what LMDB will read: its two meta
    /// pages always, and, once a transaction began (`begun`), every page
    /// the newest meta page uses (pages at the end that the free list names
    /// may be missing: see [`lmdbfile`]).
    fn check(&self, path: &Path, begun: bool) -> Result<()> {
        let damaged = |detail: String| PfsError::Damaged { path: path.to_path_buf(), detail };
        let len = self.files.data.metadata().map_err(|e| PfsError::io(path, "stat", e))?.len();
        if len < 2 * self.psize {
            return Err(damaged(format!(
                "the file is {len} bytes now, shorter than LMDB's two meta pages: it was cut short while open"
            )));
        }
        if !begun {
            return Ok(());
        }
        let info = self.env.info();
        let full = (info.last_page_number as u64 + 1).saturating_mul(self.psize);
        let need = if len >= full {
            full
        } else {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.0 != info.last_txn_id as u64 {
                let (m, flen) = lmdbfile::read_meta(&self.files.data).map_err(|p| file::problem(path, p))?;
                let need = match lmdbfile::Pages::new(&self.files.data, m, flen).needed_len() {
                    Ok(need) => need,
                    Err(lmdbfile::Problem::Bad(_)) => full,
                    Err(p) => return Err(file::problem(path, p)),
                };
                *checked = (m.txnid, need);
            }
            checked.1
        };
        if len < need {
            return Err(damaged(format!(
                "the file is {len} bytes now, but its pages need {need}: it was cut short while open"
            )));
        }
        self.files.guard.set_need(need);
        Ok(())
    }
}

impl Store {
    /// Opens an existing store.
    pub fn open(path: &Path, access: Access) -> Result<Store> {
        Self::open_waiting(path, access, lock_wait())
    }

    /// Opens an existing store for writing if no other process writes to it
    /// now (None when one does).
    pub fn open_writer_now(path: &Path) -> Result<Option<Store>> {
        match Self::open_waiting(path, Access::Write, Duration::ZERO) {
            Ok(s) => Ok(Some(s)),
            Err(PfsError::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Store::open`] with a writer waiting up to `wait` for the lock. A
    /// writer that got the lock of a file `compact` replaced meanwhile opens
    /// the new file instead.
    fn open_waiting(path: &Path, access: Access, wait: Duration) -> Result<Store> {
        let mut tries = 0;
        loop {
            match Self::open_with(path, access, None, wait) {
                Err(PfsError::Invalid { detail, .. }) if detail == REPLACED && tries < 8 => tries += 1,
                r => return r,
            }
        }
    }

    /// True when `path` no longer names this store's file (`compact` replaced it).
    pub(crate) fn replaced(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() != self.db.ino)
    }

    /// Opens an existing store; for writing with `held`, a descriptor of the
    /// same file that already holds the writer lock.
    fn open_with(path: &Path, access: Access, held: Option<File>, wait: Duration) -> Result<Store> {
        let data = file::open_data(path, access)?;
        let layout = data.vetted.layout;
        if layout == upgrade::FROM && access == Access::Read {
            // Upgraded by a writer first (which needs write access).
            if !data.writable {
                return Err(upgrade::needs_write_access(path));
            }
            drop(data);
            drop(Self::open_waiting(path, Access::Write, lock_wait())?);
            return Self::open_waiting(path, access, wait);
        }
        if layout != LAYOUT && layout != upgrade::FROM {
            return Err(PfsError::NotPfs {
                path: path.to_path_buf(),
                detail: format!(
                    "store record layout {layout}, this hammer-mirror reads layout {LAYOUT}: \
                     export the PFS with the version that wrote it and import it again"
                ),
            });
        }
        let key = (data.dev, data.ino);
        let (db, spare) = Self::shared(path, data, access)?;
        let lock = match (access, held) {
            (Access::Read, _) => None,
            (Access::Write, Some(held)) => {
                let m = held.metadata().map_err(|e| PfsError::io(path, "stat", e))?;
                if (m.dev(), m.ino()) != key {
                    return Err(PfsError::invalid(path, "open", "the file was replaced while it was created"));
                }
                Some(held)
            }
            (Access::Write, None) => {
                let f = match spare {
                    Some(f) => f,
                    None => file::reopen(path, key)?,
                };
                file::lock_writer(path, &f, wait)?;
                // compact replaces the file under the writer lock: the lock of
                // the file it replaced guards nothing.
                if std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) != key) {
                    return Err(PfsError::invalid(path, "open", REPLACED));
                }
                Some(f)
            }
        };
        if access == Access::Write && !db.writable {
            return Err(PfsError::invalid(path, "open for writing", "the store is open read-only in this process"));
        }
        let mut store = Store {
            path: path.to_path_buf(),
            db,
            pfs_id: 0,
            lock,
            scan_cache: Mutex::new(None),
            touched: Default::default(),
            resuming: Default::default(),
            change: Default::default(),
            repaired: Default::default(),
            repair_pass: Default::default(),
        };
        if layout == upgrade::FROM {
            upgrade::to_current(&store)?;
        }
        store.pfs_id = {
            let txn = store.read_txn()?;
            store.meta_u64(&txn, "pfs_id")?.unwrap_or(0) as u32
        };
        store.map();
        // A slave's pass killed before its SYNC leaves no trace, but for
        // the partial pass the next one may resume.
        rollback::discard_unsynced(&store, true)?;
        Ok(store)
    }

    /// Creates a new store holding `pfsd` (fails if `path` exists) and returns
    /// it open for writing.
    pub fn create(path: &Path, pfsd: &PseudofsData, pfs_id: u32) -> Result<Store> {
        Self::create_with(path, pfsd, pfs_id, |_| Ok(()))
    }

    /// [`Store::create`], with `init` run on the new store before it gets its
    /// name: a kill at any moment leaves either nothing at `path` or a store
    /// on which `init` completed (see [`file`]).
    pub fn create_with(
        path: &Path,
        pfsd: &PseudofsData,
        pfs_id: u32,
        init: impl FnOnce(&Store) -> Result<()>,
    ) -> Result<Store> {
        if path.symlink_metadata().is_ok() {
            return Err(PfsError::invalid(path, "create", "cannot create PFS, file exists"));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(PfsError::invalid(path, "create", format!("directory {} does not exist", parent.display())));
        }
        file::check_lock_slot(path)?;
        let file::NewStore { tmp, data: held, lock } = file::create_temp(path)?;
        let discard = |tmp: &Path| {
            let _ = std::fs::remove_file(tmp);
            let _ = std::fs::remove_file(layout::lock_path(tmp));
        };
        let made = (|| {
            let m = held.metadata().map_err(|e| PfsError::io(path, "stat", e))?;
            let data = file::reopen(&tmp, (m.dev(), m.ino()))?;
            let shared = Shared::new(path, data, m.ino(), true, 0, Some(lock), true)?;
            let held_dup = held.try_clone().map_err(|e| PfsError::io(path, "create", e))?;
            let store = Store {
                path: path.to_path_buf(),
                db: Arc::new(shared),
                pfs_id,
                lock: Some(held_dup),
                scan_cache: Mutex::new(None),
                touched: Default::default(),
                resuming: Default::default(),
                change: Default::default(),
                repaired: Default::default(),
                repair_pass: Default::default(),
            };
            let mut txn = store.write_txn()?;
            store.put_meta(&mut txn, layout::MAGIC_KEY, MAGIC)?;
            store.put_meta(&mut txn, layout::LAYOUT_KEY, &LAYOUT.to_le_bytes())?;
            store.put_meta(&mut txn, "pfs_id", &pfs_id.to_le_bytes())?;
            store.put_meta(&mut txn, "pfsd", &pfsd.to_bytes())?;
            store.put_meta(&mut txn, "last_tid", &pfsd.sync_end_tid.max(1).to_le_bytes())?;
            store.commit(txn, "create")?;
            init(&store)
        })();
        // The temporary lock file goes with the temporary name; the store's
        // own is made beside it by its first open.
        let _ = std::fs::remove_file(layout::lock_path(&tmp));
        if let Err(e) = made.and_then(|()| file::publish(&tmp, path)) {
            discard(&tmp);
            return Err(e);
        }
        Self::open_with(path, Access::Write, Some(held), lock_wait())
    }

    /// The process-wide environment of the vetted `data` file, and `data`'s
    /// descriptor back when an open environment is used.
    fn shared(path: &Path, data: file::DataFile, access: Access) -> Result<(Arc<Shared>, Option<File>)> {
        let key = (data.dev, data.ino);
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((weak, closing)) = open.get(&key) {
            if let Some(s) = weak.upgrade() {
                return Ok((s, Some(data.file)));
            }
            // Its last user is closing it on another thread; the closing
            // side never takes this lock, so wait holding it.
            closing.clone().wait();
        }
        let lock = file::open_lock(path, data.uid, access)?;
        // After `compact`, the lock file is the new file's too: a second
        // environment on it in this process would take LMDB's first-user
        // lock from ourselves and reinitialize it under other processes.
        let lock_key = lock.as_ref().and_then(|l| l.metadata().ok()).map(|m| (m.dev(), m.ino()));
        if lock_key.is_some()
            && open.values().any(|(w, _)| w.upgrade().is_some_and(|s| s.lock_key == lock_key && s.ino != data.ino))
        {
            return Err(PfsError::invalid(path, "open", OLD_OPEN));
        }
        let shared = Arc::new(Shared::new(path, data.file, data.ino, data.writable, data.vetted.need, lock, false)?);
        open.retain(|_, (w, closing)| w.strong_count() > 0 || !closing.is_done());
        open.insert(key, (Arc::downgrade(&shared), shared.closed.0.clone()));
        Ok((shared, None))
    }

    /// Where the store file is mapped in this process (looked up once; the
    /// SIGBUS guard gets it too).
    fn map(&self) -> Option<(usize, usize)> {
        *self.db.map.get_or_init(|| {
            // Any value a read-only transaction returns lies in the map.
            let txn = self.read_txn().ok()?;
            let (_, v) = self.db.meta.iter(&txn).ok()?.next()?.ok()?;
            let map = mapped::find_map(v.as_ptr() as usize, self.db.ino)?;
            self.db.files.guard.set_map(map);
            Some(map)
        })
    }

    /// Counts a value `v` read through the map; see
    /// [`Store::count_resident`]. Reading only its header costs more than a
    /// page: Linux maps the cached pages around a faulting address too
    /// (`fault_around_bytes`, 64 KiB by default).
    pub(crate) fn touched(&self, v: &[u8]) {
        self.count_resident(v.len().max(64 << 10));
    }

    /// Counts `bytes` read or written through the store; past
    /// [`RESIDENT_BUDGET`], drops the map's resident pages so that the
    /// memory of a scan or a long `mirror-write` does not grow with the PFS
    /// (see [`crate::ioctl::mapped::release_resident`]).
    pub(crate) fn count_resident(&self, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.touched.fetch_add(bytes, Relaxed) + bytes < RESIDENT_BUDGET {
            return;
        }
        self.touched.store(0, Relaxed);
        if let Some(map) = self.map() {
            mapped::release_resident(&self.db.env, map);
        }
    }

    pub fn is_writable(&self) -> bool {
        self.lock.is_some()
    }

    /// A read-only transaction, once the file is checked (see [`Shared::check`]).
    ///
    /// Refused once `compact` replaced the file: the lock file is the new
    /// file's then, and LMDB would pick this file's meta page by the new
    /// file's transaction ids. A transaction begun while the path still
    /// names this file began before the replacement, on its newest state.
    pub(crate) fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>> {
        self.db.check(&self.path, false)?;
        let txn = self.db.env.read_txn().map_err(|e| lmdb_err(&self.path, "read", e))?;
        self.db.check(&self.path, true)?;
        if self.replaced() {
            return Err(PfsError::Replaced { path: self.path.clone(), op: "read" });
        }
        Ok(txn)
    }

    /// A write transaction (the store must be open for writing), once the
    /// file is checked.
    pub(crate) fn write_txn(&self) -> Result<RwTxn<'_>> {
        if self.lock.is_none() {
            return Err(PfsError::invalid(&self.path, "write", "store opened read-only"));
        }
        self.db.check(&self.path, false)?;
        let txn = self.db.env.write_txn().map_err(|e| lmdb_err(&self.path, "write", e))?;
        self.db.check(&self.path, true)?;
        Ok(txn)
    }

    pub(crate) fn commit(&self, txn: RwTxn<'_>, op: &'static str) -> Result<()> {
        txn.commit().map_err(|e| lmdb_err(&self.path, op, e))
    }

    pub(crate) fn err(&self, op: &'static str, e: heed::Error) -> PfsError {
        lmdb_err(&self.path, op, e)
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> PfsError {
        PfsError::Corrupt { path: self.path.clone(), detail: detail.into() }
    }

    /// Stores a `meta` entry, sealed with its checksum (but for the magic
    /// and the layout, which identify the file and are checked by value).
    pub(crate) fn put_meta(&self, txn: &mut RwTxn<'_>, key: &str, v: &[u8]) -> Result<()> {
        let r = if key == layout::MAGIC_KEY || key == layout::LAYOUT_KEY {
            self.db.meta.put(txn, key, v)
        } else {
            self.db.meta.put(txn, key, &keys::seal_meta(key, v))
        };
        r.map_err(|e| self.err("write", e))
    }

    /// A sealed `meta` entry, once its checksum passes.
    pub(crate) fn get_meta<'t>(&self, txn: &'t RoTxn<'_>, key: &str) -> Result<Option<&'t [u8]>> {
        match self.db.meta.get(txn, key).map_err(|e| self.err("read", e))? {
            None => Ok(None),
            Some(v) => keys::open_meta(key, v).map(Some).ok_or_else(|| PfsError::Damaged {
                path: self.path.clone(),
                detail: format!("the store's {key:?} entry fails its checksum"),
            }),
        }
    }

    pub(crate) fn meta_u64(&self, txn: &RoTxn<'_>, key: &str) -> Result<Option<u64>> {
        match self.get_meta(txn, key)? {
            None => Ok(None),
            Some(v) if v.len() == 8 || v.len() == 4 => {
                let mut b = [0u8; 8];
                b[..v.len()].copy_from_slice(v);
                Ok(Some(u64::from_le_bytes(b)))
            }
            Some(_) => Err(self.corrupt(format!("meta {key} has a bad length"))),
        }
    }

    /// The stored PFS description (without the master's live sync_end_tid).
    pub(crate) fn stored_pfsd(&self, txn: &RoTxn<'_>) -> Result<PseudofsData> {
        match self.get_meta(txn, "pfsd")? {
            Some(v) if v.len() == PseudofsData::SIZE => Ok(PseudofsData::decode(v)),
            _ => Err(self.corrupt("PFS description missing")),
        }
    }

    /// The last TID committed in this store (imports on a master, mirror
    /// writes raise it on a slave).
    pub(crate) fn last_tid(&self, txn: &RoTxn<'_>) -> Result<u64> {
        Ok(self.meta_u64(txn, "last_tid")?.unwrap_or(1))
    }

    /// The PFS description as GET_PSEUDOFS returns it: for a master,
    /// `sync_end_tid` is the last committed TID.
    pub(crate) fn pfsd_in(&self, txn: &RoTxn<'_>) -> Result<PseudofsData> {
        let mut p = self.stored_pfsd(txn)?;
        if !p.is_slave() {
            p.sync_end_tid = self.last_tid(txn)?;
        }
        Ok(p)
    }

    /// The first TID above `tid` at which a record was created or deleted
    /// (one seek in the `tids` index): the oldest change a target synced
    /// to `tid` lacks (`status` dates the lag by it).
    pub fn first_tid_after(&self, tid: u64) -> Result<Option<u64>> {
        let txn = self.read_txn()?;
        let lo = keys::tid_key(tid.saturating_add(1), &[0; keys::KEY_LEN]);
        let range = (std::ops::Bound::Included(&lo[..]), std::ops::Bound::Unbounded);
        let mut it = self.db.tids.range(&txn, &range).map_err(|e| self.err("status", e))?;
        match it.next().transpose().map_err(|e| self.err("status", e))? {
            Some((k, _)) if k.len() >= 8 => Ok(Some(u64::from_be_bytes(k[..8].try_into().expect("8 bytes")))),
            _ => Ok(None),
        }
    }

    /// Allocates the TID of a new master transaction: after every TID this
    /// store has seen, and near the time of day in nanoseconds as HAMMER's.
    pub(crate) fn next_tid(&self, txn: &RoTxn<'_>) -> Result<u64> {
        let last = self.last_tid(txn)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Ok(now.max(last + 1))
    }

    /// Every record visible as of `asof` (HAMMER's `hammer_btree_chkts`:
    /// created at or before it, not deleted at or before it), in key order,
    /// localized to this PFS. `f` gets each leaf and its data.
    pub fn for_each_as_of(&self, asof: u64, mut f: impl FnMut(&LeafElm, &[u8]) -> Result<()>) -> Result<()> {
        let txn = self.read_txn()?;
        let mut order = KeyOrder::default();
        for item in self.db.recs.iter(&txn).map_err(|e| self.err("read", e))? {
            let (k, v) = item.map_err(|e| self.err("read", e))?;
            order.check(self, k)?;
            let (leaf, _) = keys::decode_leaf(k, v, self.pfs_id).map_err(|d| self.damaged(k, d))?;
            let b = &leaf.base;
            self.touched(v);
            if b.create_tid <= asof && (b.delete_tid == 0 || asof < b.delete_tid) {
                f(&leaf, &self.record_data(&txn, k, &leaf, v)?)?;
            }
        }
        Ok(())
    }

    /// Like [`Store::for_each_as_of`], but a damaged record is handed to
    /// `f` as [`Seen::Damaged`] instead of ending the walk: one whose data is
    /// damaged when its (intact) leaf is visible as of `asof`, one whose leaf
    /// is damaged always (whether it is visible cannot be known).
    pub fn for_each_as_of_checked(&self, asof: u64, mut f: impl FnMut(Seen<'_>) -> Result<()>) -> Result<()> {
        let txn = self.read_txn()?;
        let mut order = KeyOrder::default();
        for item in self.db.recs.iter(&txn).map_err(|e| self.err("read", e))? {
            let (k, v) = item.map_err(|e| self.err("read", e))?;
            order.check(self, k)?;
            self.touched(v);
            let key = || if k.len() == keys::KEY_LEN { keys::decode_key(k, self.pfs_id) } else { BaseElm::default() };
            let leaf = match keys::decode_leaf(k, v, self.pfs_id) {
                Ok((leaf, _)) => leaf,
                Err(damage) => {
                    f(Seen::Damaged { base: key(), leaf: None, damage })?;
                    continue;
                }
            };
            let b = &leaf.base;
            if b.create_tid <= asof && (b.delete_tid == 0 || asof < b.delete_tid) {
                match self.record_data_checked(&txn, k, &leaf, v)? {
                    (data, Ok(())) => f(Seen::Record(&leaf, &data))?,
                    (_, Err(damage)) => f(Seen::Damaged { base: leaf.base, leaf: Some(leaf), damage })?,
                }
            }
        }
        Ok(())
    }

    /// A record's data, checked (see [`keys::check_data`]): an error names
    /// the record when it is damaged.
    pub(crate) fn record_data<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        key: &[u8],
        leaf: &LeafElm,
        v: &'t [u8],
    ) -> Result<std::borrow::Cow<'t, [u8]>> {
        let (data, check) = self.record_data_checked(txn, key, leaf, v)?;
        check.map_err(|d| self.damaged(key, d))?;
        Ok(data)
    }

    /// A record's data, whose leaf `v` already passed its checksum: the
    /// part the value holds, then the rest from the blob table (borrowed
    /// from the map when there is no rest), and whether it passes its
    /// checks (when a blob is missing or of the wrong size: what there is).
    pub(crate) fn record_data_checked<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        key: &[u8],
        leaf: &LeafElm,
        v: &'t [u8],
    ) -> Result<Checked<'t>> {
        let front = &v[keys::VALUE_HEAD.min(v.len())..];
        let len = leaf.data_len as usize;
        let data: std::borrow::Cow<'t, [u8]> = if front.len() == len {
            front.into()
        } else {
            match self.db.blobs.get(txn, key).map_err(|e| self.err("read", e))? {
                Some(rest) => {
                    self.touched(rest);
                    if front.is_empty() {
                        rest.into()
                    } else {
                        let mut d = Vec::with_capacity(front.len() + rest.len().min(crate::mrecord::MAX_REC_SIZE));
                        d.extend_from_slice(front);
                        d.extend_from_slice(rest);
                        d.into()
                    }
                }
                None => front.into(),
            }
        };
        let check = keys::check_data(key, v, leaf, &data);
        Ok((data, check))
    }

    /// The error for a damaged record or index entry at key `k`, named by
    /// what its key says (the key itself may be what is damaged).
    pub(crate) fn damaged(&self, k: &[u8], d: keys::Damage) -> PfsError {
        self.corrupt(format!("{}: {d}", describe_key(k)))
    }

    /// Stores a new record under `key`: its value, and the blob of what the
    /// value does not hold.
    pub(crate) fn put_record(&self, txn: &mut RwTxn<'_>, key: &[u8], leaf: &LeafElm, data: &[u8]) -> heed::Result<()> {
        let front = keys::inline_len(data.len());
        self.db.recs.put(txn, key, &keys::encode_value(key, leaf, data))?;
        if front < data.len() {
            self.db.blobs.put(txn, key, &data[front..])?;
        }
        Ok(())
    }

    /// Adds the TID index entry of `tid` for the record at `key`.
    pub(crate) fn index_put(&self, txn: &mut RwTxn<'_>, tid: u64, key: &keys::Key) -> heed::Result<()> {
        let t = keys::tid_key(tid, key);
        self.db.tids.put(txn, &t[..], &keys::tid_value(&t))
    }

    /// Removes the TID index entry of `tid` for the record at `key`.
    pub(crate) fn index_del(&self, txn: &mut RwTxn<'_>, tid: u64, key: &keys::Key) -> heed::Result<()> {
        self.db.tids.delete(txn, &keys::tid_key(tid, key)[..]).map(|_| ())
    }

    /// Checks a TID index entry read from the table; its record key.
    pub(crate) fn index_entry(&self, t: &[u8], v: &[u8]) -> Result<keys::Key> {
        keys::check_tid_entry(t, v).map_err(|d| {
            let what = if t.len() == keys::TID_KEY_LEN { describe_key(&t[8..]) } else { "an entry".into() };
            PfsError::Damaged { path: self.path.clone(), detail: format!("TID index, {what}: {d}") }
        })?;
        Ok(t[8..].try_into().expect("checked length"))
    }

    /// Erases the record under `key` (slave rollback only: history is
    /// otherwise never erased).
    pub(crate) fn erase_record(&self, txn: &mut RwTxn<'_>, key: &[u8]) -> heed::Result<()> {
        self.db.recs.delete(txn, key)?;
        self.db.blobs.delete(txn, key)?;
        Ok(())
    }

    /// Number of records (all versions).
    pub fn record_count(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        self.db.recs.len(&txn).map_err(|e| self.err("read", e))
    }
}

/// Checks that a walk of the records meets its keys in strictly increasing
/// order: a damaged branch page could send LMDB's cursor to a page twice,
/// or to a stale one, which no record's checksum would show.
#[derive(Default)]
struct KeyOrder(Option<keys::Key>);

impl KeyOrder {
    fn check(&mut self, store: &Store, k: &[u8]) -> Result<()> {
        let Ok(key) = <keys::Key>::try_from(k) else { return Err(store.damaged(k, keys::Damage::Shape)) };
        if self.0.is_some_and(|last| last >= key) {
            return Err(PfsError::Damaged {
                path: store.path.clone(),
                detail: format!("the records' B-tree is damaged: {} comes after a later key", describe_key(k)),
            });
        }
        self.0 = Some(key);
        Ok(())
    }
}

/// A record's data and whether it passed its checks.
pub(crate) type Checked<'t> = (std::borrow::Cow<'t, [u8]>, std::result::Result<(), keys::Damage>);

/// What [`Store::for_each_as_of_checked`] finds.
pub enum Seen<'a> {
    /// A visible record and its data, both intact.
    Record(&'a LeafElm, &'a [u8]),
    /// A damaged record: its key fields as its key says, its leaf when that
    /// is intact (then it is its data that is damaged), and what is wrong.
    Damaged { base: BaseElm, leaf: Option<LeafElm>, damage: keys::Damage },
}

/// A record key as messages name it: "record obj=… rt=… key=… tid=…".
pub(crate) fn describe_key(k: &[u8]) -> String {
    if k.len() != keys::KEY_LEN {
        return format!("a record key of {} bytes", k.len());
    }
    let b = keys::decode_key(k, 0);
    format!(
        "record obj=0x{:016x} rt=0x{:02x} key=0x{:016x} create_tid=0x{:016x}",
        b.obj_id, b.rec_type, b.key, b.create_tid
    )
}

impl Store {
    /// The partial pass recorded on this slave, if any (see [`partial`]).
    pub(crate) fn partial(&self) -> Result<Option<crate::ioctl::PartialPass>> {
        let txn = self.read_txn()?;
        partial::get(self, &txn)
    }

    /// Whether the next pass resumes the partial one; asking clears it.
    pub(crate) fn take_resuming(&self) -> bool {
        self.resuming.swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Store {
    /// A slave's pass that failed before its SYNC leaves no trace (should
    /// this fail, the next open for writing does it).
    fn drop(&mut self) {
        let _ = rollback::discard_unsynced(self, true);
    }
}

impl Pfs for Store {
    fn path(&self) -> &Path {
        &self.path
    }

    fn pfs_id(&self) -> i32 {
        self.pfs_id as i32
    }

    fn get_pseudofs(&self) -> Result<PseudofsData> {
        let txn = self.read_txn()?;
        self.pfsd_in(&txn)
    }

    fn set_pseudofs(&mut self, pfsd: &PseudofsData) -> Result<()> {
        let mut txn = self.write_txn()?;
        self.put_meta(&mut txn, "pfsd", &pfsd.to_bytes())?;
        let last = self.last_tid(&txn)?;
        if pfsd.sync_end_tid > last {
            self.put_meta(&mut txn, "last_tid", &pfsd.sync_end_tid.to_le_bytes())?;
        }
        // The SYNC of a pass ends it: nothing partial is left to resume.
        if partial::get(self, &txn)?.is_some_and(|p| p.tid_end <= pfsd.sync_end_tid) {
            partial::clear(self, &mut txn)?;
        }
        // A repair pass is over: what it did not repair, its source could not give.
        if self.repair_pass.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let left = self.damage_list(&txn)?;
            let mut lines = self.repaired.lock().unwrap_or_else(|e| e.into_inner());
            for (k, intact) in &left {
                // A damaged leaf the source sent nothing for (the sweep
                // stops at the source's last key): its key is what is damaged.
                let leaf_bad = self
                    .db
                    .recs
                    .get(&txn, &k[..])
                    .map_err(|e| self.err("write", e))?
                    .is_some_and(|v| keys::check_value(&k[..], v).is_err());
                if !intact && leaf_bad {
                    self.erase_record(&mut txn, &k[..]).map_err(|e| self.err("write", e))?;
                    lines.push(format!(
                        "{}: erased (damaged, and the source has no record at its key)",
                        describe_key(&k[..])
                    ));
                } else {
                    lines.push(format!("{}: not repaired (the source sent no intact copy)", describe_key(&k[..])));
                }
            }
            self.put_damage_list(&mut txn, &Default::default())?;
        }
        self.commit(txn, "set_pseudofs")
    }

    fn wait_pseudofs(&self, pfsd: &PseudofsData, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let change = self.change.get_or_init(|| change::Change::new(&self.path));
        loop {
            // The TID is read when the file changed (or a while passed): an
            // idle stream opens no transaction twice a second.
            if change.worth_a_look() && self.get_pseudofs()?.sync_end_tid > pfsd.sync_end_tid {
                return Ok(true);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(false);
            }
            if self.replaced() {
                // New TIDs go to the new file: whoever waits must open it.
                return Err(PfsError::Replaced { path: self.path.clone(), op: "wait" });
            }
            // A change of the file wakes us; the TID is checked at least every WAIT_POLL anyway.
            change.wait(left.map_or(WAIT_POLL, |l| l.min(WAIT_POLL)));
        }
    }

    fn mirror_read(&self, m: &mut MirrorRw, buf: &mut [u8]) -> Result<usize> {
        scan::mirror_read(self, m, buf)
    }

    fn mirror_write(&mut self, m: &mut MirrorRw, buf: &[u8]) -> Result<()> {
        apply::mirror_write(self, m, buf)
    }

    fn synctid(&mut self, _op: SynctidOp) -> Result<u64> {
        // Every commit is already durable; this only reports the TID.
        let txn = self.read_txn()?;
        self.last_tid(&txn)
    }

    fn upgrade(&mut self) -> Result<()> {
        rollback::rollback_and_upgrade(self)
    }

    fn downgrade(&mut self) -> Result<()> {
        let mut txn = self.write_txn()?;
        let mut p = self.stored_pfsd(&txn)?;
        if p.is_slave() {
            return Err(PfsError::invalid(&self.path, "pfs-downgrade", "PFS is already a slave"));
        }
        p.sync_end_tid = p.sync_end_tid.max(self.last_tid(&txn)?);
        p.mirror_flags |= PFSD_SLAVE;
        self.put_meta(&mut txn, "pfsd", &p.to_bytes())?;
        self.commit(txn, "pfs-downgrade")
    }

    fn destroy(&mut self) -> Result<()> {
        let mut txn = self.write_txn()?;
        self.db.recs.clear(&mut txn).map_err(|e| self.err("pfs-destroy", e))?;
        self.db.blobs.clear(&mut txn).map_err(|e| self.err("pfs-destroy", e))?;
        self.db.tids.clear(&mut txn).map_err(|e| self.err("pfs-destroy", e))?;
        let mut p = self.stored_pfsd(&txn)?;
        p.mirror_flags |= crate::mrecord::PFSD_DELETED;
        p.reserved01 = -1;
        self.put_meta(&mut txn, "pfsd", &p.to_bytes())?;
        self.commit(txn, "pfs-destroy")
    }

    fn add_snapshots(&mut self, snaps: &[SnapshotData]) -> Result<()> {
        snapshots::add(self, snaps)
    }

    fn delete_snapshots(&mut self, tids: &[u64]) -> Result<()> {
        snapshots::delete(self, tids)
    }

    fn partial_pass(&self) -> Result<Option<crate::ioctl::PartialPass>> {
        self.partial()
    }

    fn resume_partial(&mut self) -> Result<()> {
        self.resuming.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn snapshots(&self) -> Result<Vec<SnapshotData>> {
        snapshots::list(self)
    }

    fn record_ack(&self, target: &PseudofsData, tid: u64) -> Result<bool> {
        if self.is_writable() {
            prune::record_ack(self, target, tid)?;
            return Ok(true);
        }
        if self.replaced() {
            return Ok(false);
        }
        match Store::open_writer_now(&self.path) {
            Ok(Some(w)) if w.db.ino == self.db.ino => prune::record_ack(&w, target, tid).map(|()| true),
            Ok(_) => Ok(false),
            Err(PfsError::Invalid { detail, .. }) if detail == OLD_OPEN => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn pruned_to(&self) -> Result<u64> {
        prune::pruned_to(self)
    }

    fn repair_floor(&self) -> Result<Option<u64>> {
        let txn = self.read_txn()?;
        // A damaged leaf's key may be damaged too: its TID says nothing, and
        // the record it hid may be of any TID: the whole history then.
        let floor = self
            .damage_list(&txn)?
            .iter()
            .map(|(k, intact)| if *intact { keys::decode_key(&k[..], 0).create_tid } else { 1 })
            .min();
        if floor.is_some() {
            // Cleared by the SYNC that ends the repair pass (set_pseudofs).
            self.repair_pass.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(floor)
    }

    fn take_repaired(&self) -> Vec<String> {
        std::mem::take(&mut *self.repaired.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The `meta` entry of the damaged records scrub found (see [`Store::record_damage`]).
const DAMAGE_META: &str = "damaged";
/// Damaged records recorded at most.
const DAMAGE_MAX: usize = 10_000;

impl Store {
    /// A repair pass is under way (asked for through [`Pfs::repair_floor`]).
    pub(crate) fn in_repair_pass(&self) -> bool {
        self.repair_pass.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The damaged records scrub recorded, and whether each one's leaf is intact.
    pub(crate) fn damage_list(&self, txn: &RoTxn<'_>) -> Result<std::collections::BTreeMap<keys::Key, bool>> {
        let v = self.get_meta(txn, DAMAGE_META)?.unwrap_or_default();
        Ok(v.chunks_exact(keys::KEY_LEN + 1)
            .map(|c| (c[..keys::KEY_LEN].try_into().expect("key length"), c[keys::KEY_LEN] != 0))
            .collect())
    }

    /// Stores `list` as the damaged records (none: removes the entry).
    pub(crate) fn put_damage_list(
        &self,
        txn: &mut RwTxn<'_>,
        list: &std::collections::BTreeMap<keys::Key, bool>,
    ) -> Result<()> {
        if list.is_empty() {
            return self.db.meta.delete(txn, DAMAGE_META).map(|_| ()).map_err(|e| self.err("write", e));
        }
        let mut v = Vec::with_capacity(list.len() * (keys::KEY_LEN + 1));
        for (k, intact) in list.iter().take(DAMAGE_MAX) {
            v.extend_from_slice(k);
            v.push(u8::from(*intact));
        }
        self.put_meta(txn, DAMAGE_META, &v)
    }

    /// Records the damaged records `found` (by scrub, with whether each
    /// one's leaf is intact) on a slave, replacing what was recorded, so
    /// that the next pass from its master repairs them. Nothing for a master.
    pub fn record_damage(&self, found: &[(keys::Key, bool)]) -> Result<bool> {
        let mut txn = self.write_txn()?;
        if !self.stored_pfsd(&txn)?.is_slave() {
            return Ok(false);
        }
        let list = found.iter().copied().collect();
        self.put_damage_list(&mut txn, &list)?;
        self.commit(txn, "scrub")?;
        Ok(true)
    }
}
