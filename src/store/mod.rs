//! The userspace PFS store: one PFS in one LMDB file, behaving through `Pfs` like the HAMMER kernel.
//!
//! Layout (see [`keys`]): a `meta` table (magic, the `hammer_pseudofs_data`,
//! PFS id, last TID, object id and data offset allocators), a `recs` table of
//! B-tree leaf records in `hammer_btree_cmp` order, and a `tids` index of
//! every create/delete TID. LMDB gives MVCC: readers in any process never
//! block the one writer. Writers are serialized by an exclusive `flock` on the
//! data file, taken when the store is opened for writing and held until it is
//! dropped; a second writer waits `HAMMER_MIRROR_LOCK_WAIT` seconds (default
//! 10) and then fails with "PFS is busy". Every commit is durable (LMDB's
//! default fsync), so `sync_end_tid` only moves after the data it covers is
//! on disk.

pub mod apply;
pub mod export;
pub mod import;
pub mod keys;
pub mod master;
mod partial;
pub mod rollback;
pub mod scan;
pub mod snapshots;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heed::types::{Bytes, Str, Unit};
use heed::{Database, Env, RoTxn, RwTxn, WithoutTls};

use crate::hammerfs::SnapshotData;
use crate::ioctl::{MirrorRw, Pfs, PfsError, Result, SynctidOp};
use crate::mrecord::{LeafElm, PFSD_SLAVE, PseudofsData};

/// The `meta` value that marks a file as a hammer-mirror PFS store.
const MAGIC: &[u8] = b"hammer-mirror PFS store v1";
/// The record layout: 2 since data beyond a record value's first bytes went
/// to the blob table.
const LAYOUT: u64 = 2;
/// Address space reserved for the map; the file only grows as data arrives.
const MAP_SIZE: usize = 1 << 40;
/// How often `wait_pseudofs` looks for a new TID.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// Whether a store is opened for reading only or also for writing (which
/// takes the writer lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// One open environment, shared by every `Store` of the same file in this
/// process (LMDB forbids opening a file twice in one process).
pub(crate) struct Shared {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) meta: Database<Str, Bytes>,
    pub(crate) recs: Database<Bytes, Bytes>,
    pub(crate) tids: Database<Bytes, Unit>,
    /// The data of records beyond what their values hold (see [`keys::inline_len`]).
    pub(crate) blobs: Database<Bytes, Bytes>,
    /// The data file's inode, and where it is mapped in this process once
    /// looked up.
    ino: u64,
    map: std::sync::OnceLock<Option<(usize, usize)>>,
}

static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = LazyLock::new(Default::default);

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
}

/// Bytes a process may touch in the map before its pages are released
/// (copy runs a reader and a writer; P7 allows 64 MiB for both).
const RESIDENT_BUDGET: usize = 8 << 20;

fn lmdb_err(path: &Path, op: &'static str, e: heed::Error) -> PfsError {
    match e {
        heed::Error::Io(source) => PfsError::io(path, op, source),
        heed::Error::Mdb(heed::MdbError::Invalid) | heed::Error::Mdb(heed::MdbError::VersionMismatch) => {
            PfsError::NotPfs { path: path.to_path_buf(), detail: "not a hammer-mirror PFS store file".into() }
        }
        heed::Error::Mdb(heed::MdbError::Corrupted) | heed::Error::Mdb(heed::MdbError::PageNotFound) => {
            PfsError::Corrupt { path: path.to_path_buf(), detail: format!("{op}: {e}") }
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

/// Says what the store waits for, on stderr (before any progress bar exists:
/// stores are opened before a transfer starts).
fn notice(text: &str) {
    eprintln!("hammer-mirror: {text}");
}

/// Takes the exclusive writer lock on `file`, waiting up to `wait`; says at once that it waits.
fn lock_writer(path: &Path, file: &File, wait: Duration) -> Result<()> {
    use nix::errno::Errno;
    #[allow(deprecated)]
    use nix::fcntl::{FlockArg, flock};
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        // nix deprecates flock() for its Flock wrapper, which takes the File by value; we keep ours.
        #[allow(deprecated)]
        match flock(file.as_fd().as_raw_fd(), FlockArg::LockExclusiveNonblock) {
            Ok(()) => return Ok(()),
            Err(Errno::EWOULDBLOCK) if Instant::now() < deadline => {
                // Never wait in silence.
                if !said {
                    said = true;
                    notice(&format!(
                        "{}: PFS is busy: another process is writing to it; waiting up to {:.0} s for it \
                         (HAMMER_MIRROR_LOCK_WAIT)",
                        path.display(),
                        wait.as_secs_f64()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(Errno::EWOULDBLOCK) => {
                return Err(PfsError::Busy {
                    path: path.to_path_buf(),
                    detail: format!(
                        "waited {:.0} s for the writer lock; set HAMMER_MIRROR_LOCK_WAIT to wait longer",
                        wait.as_secs_f64()
                    ),
                });
            }
            Err(e) => return Err(PfsError::io(path, "lock", e.into())),
        }
    }
}

impl Store {
    /// Opens an existing store.
    pub fn open(path: &Path, access: Access) -> Result<Store> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PfsError::NotFound { path: path.to_path_buf() },
            _ => PfsError::io(path, "stat", e),
        })?;
        if !meta.is_file() {
            return Err(PfsError::NotPfs { path: path.to_path_buf(), detail: "not a PFS store file".into() });
        }
        Self::open_file(path, access, false)
    }

    /// Creates a new store holding `pfsd` (fails if `path` exists) and returns
    /// it open for writing.
    pub fn create(path: &Path, pfsd: &PseudofsData, pfs_id: u32) -> Result<Store> {
        if path.symlink_metadata().is_ok() {
            return Err(PfsError::invalid(path, "create", "cannot create PFS, file exists"));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(PfsError::invalid(path, "create", format!("directory {} does not exist", parent.display())));
        }
        let store = Self::open_file(path, Access::Write, true)?;
        let mut txn = store.write_txn()?;
        store.put_meta(&mut txn, "magic", MAGIC)?;
        store.put_meta(&mut txn, "layout", &LAYOUT.to_le_bytes())?;
        store.put_meta(&mut txn, "pfs_id", &pfs_id.to_le_bytes())?;
        store.put_meta(&mut txn, "pfsd", &pfsd.to_bytes())?;
        store.put_meta(&mut txn, "last_tid", &pfsd.sync_end_tid.max(1).to_le_bytes())?;
        store.commit(txn, "create")?;
        let mut store = store;
        store.pfs_id = pfs_id;
        Ok(store)
    }

    fn open_file(path: &Path, access: Access, creating: bool) -> Result<Store> {
        let key = if creating {
            std::path::absolute(path).map_err(|e| PfsError::io(path, "open", e))?
        } else {
            path.canonicalize().map_err(|e| PfsError::io(path, "open", e))?
        };
        let lock = match access {
            Access::Read => None,
            Access::Write => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(creating)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| PfsError::io(path, "open for writing", e))?;
                lock_writer(path, &f, lock_wait())?;
                Some(f)
            }
        };
        let db = Self::shared(path, &key)?;
        let mut store = Store {
            path: path.to_path_buf(),
            db,
            pfs_id: 0,
            lock,
            scan_cache: Mutex::new(None),
            touched: Default::default(),
            resuming: Default::default(),
        };
        if !creating {
            let pfs_id = {
                let txn = store.read_txn()?;
                match store.db.meta.get(&txn, "magic").map_err(|e| lmdb_err(path, "open", e))? {
                    Some(m) if m == MAGIC => {}
                    _ => {
                        return Err(PfsError::NotPfs {
                            path: path.to_path_buf(),
                            detail: "not a hammer-mirror PFS store file".into(),
                        });
                    }
                }
                let layout = store.meta_u64(&txn, "layout")?.unwrap_or(1);
                if layout != LAYOUT {
                    return Err(PfsError::NotPfs {
                        path: path.to_path_buf(),
                        detail: format!(
                            "store record layout {layout}, this hammer-mirror reads layout {LAYOUT}: \
                             export the PFS with the version that wrote it and import it again"
                        ),
                    });
                }
                store.meta_u64(&txn, "pfs_id")?.unwrap_or(0) as u32
            };
            store.pfs_id = pfs_id;
            // A slave's pass killed before its SYNC leaves no trace, but for
            // the partial pass the next one may resume.
            rollback::discard_unsynced(&store, true)?;
        }
        Ok(store)
    }

    /// The process-wide environment for `key` (a canonical path).
    fn shared(path: &Path, key: &Path) -> Result<Arc<Shared>> {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.get(key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let env = crate::ioctl::mapped::open_env(path, MAP_SIZE, 8).map_err(|e| lmdb_err(path, "open", e))?;
        // Reader slots of processes that were killed would pin old pages forever.
        let _ = env.clear_stale_readers();
        let mut txn = env.write_txn().map_err(|e| lmdb_err(path, "open", e))?;
        let meta = env.create_database(&mut txn, Some("meta")).map_err(|e| lmdb_err(path, "open", e))?;
        let recs = env.create_database(&mut txn, Some("recs")).map_err(|e| lmdb_err(path, "open", e))?;
        let tids = env.create_database(&mut txn, Some("tids")).map_err(|e| lmdb_err(path, "open", e))?;
        let blobs = env.create_database(&mut txn, Some("blobs")).map_err(|e| lmdb_err(path, "open", e))?;
        txn.commit().map_err(|e| lmdb_err(path, "open", e))?;
        let ino = std::fs::metadata(path).map_err(|e| PfsError::io(path, "stat", e))?.ino();
        let shared = Arc::new(Shared { env, meta, recs, tids, blobs, ino, map: Default::default() });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(key.to_path_buf(), Arc::downgrade(&shared));
        Ok(shared)
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
        let map = self.db.map.get_or_init(|| {
            // Any value a read-only transaction returns lies in the map.
            let txn = self.read_txn().ok()?;
            let (_, v) = self.db.meta.iter(&txn).ok()?.next()?.ok()?;
            crate::ioctl::mapped::find_map(v.as_ptr() as usize, self.db.ino)
        });
        if let Some(map) = *map {
            crate::ioctl::mapped::release_resident(&self.db.env, map);
        }
    }

    pub fn is_writable(&self) -> bool {
        self.lock.is_some()
    }

    pub(crate) fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>> {
        self.db.env.read_txn().map_err(|e| lmdb_err(&self.path, "read", e))
    }

    pub(crate) fn write_txn(&self) -> Result<RwTxn<'_>> {
        if self.lock.is_none() {
            return Err(PfsError::invalid(&self.path, "write", "store opened read-only"));
        }
        self.db.env.write_txn().map_err(|e| lmdb_err(&self.path, "write", e))
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

    pub(crate) fn put_meta(&self, txn: &mut RwTxn<'_>, key: &str, v: &[u8]) -> Result<()> {
        self.db.meta.put(txn, key, v).map_err(|e| self.err("write", e))
    }

    pub(crate) fn meta_u64(&self, txn: &RoTxn<'_>, key: &str) -> Result<Option<u64>> {
        match self.db.meta.get(txn, key).map_err(|e| self.err("read", e))? {
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
        match self.db.meta.get(txn, "pfsd").map_err(|e| self.err("read", e))? {
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
        for item in self.db.recs.iter(&txn).map_err(|e| self.err("read", e))? {
            let (k, v) = item.map_err(|e| self.err("read", e))?;
            let (leaf, front) =
                keys::decode_leaf(k, v, self.pfs_id).ok_or_else(|| self.corrupt("undecodable record"))?;
            let b = &leaf.base;
            self.touched(v);
            if b.create_tid <= asof && (b.delete_tid == 0 || asof < b.delete_tid) {
                f(&leaf, &self.record_data(&txn, k, &leaf, front)?)?;
            }
        }
        Ok(())
    }

    /// A record's data: `front`, the part its value holds, then the rest
    /// from the blob table (borrowed from the map when there is no rest).
    pub(crate) fn record_data<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        key: &[u8],
        leaf: &LeafElm,
        front: &'t [u8],
    ) -> Result<std::borrow::Cow<'t, [u8]>> {
        let len = leaf.data_len as usize;
        if front.len() == len {
            return Ok(front.into());
        }
        let rest = self.db.blobs.get(txn, key).map_err(|e| self.err("read", e))?;
        match rest {
            Some(rest) if front.len() + rest.len() == len => {
                self.touched(rest);
                if front.is_empty() {
                    return Ok(rest.into());
                }
                let mut d = Vec::with_capacity(len);
                d.extend_from_slice(front);
                d.extend_from_slice(rest);
                Ok(d.into())
            }
            _ => Err(self.corrupt(format!(
                "record obj={:016x} key={:016x}: data missing from the blob table",
                leaf.base.obj_id, leaf.base.key
            ))),
        }
    }

    /// Stores a new record under `key`: its value, and the blob of what the
    /// value does not hold.
    pub(crate) fn put_record(&self, txn: &mut RwTxn<'_>, key: &[u8], leaf: &LeafElm, data: &[u8]) -> heed::Result<()> {
        let front = keys::inline_len(data.len());
        self.db.recs.put(txn, key, &keys::encode_value(leaf, data))?;
        if front < data.len() {
            self.db.blobs.put(txn, key, &data[front..])?;
        }
        Ok(())
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
        self.commit(txn, "set_pseudofs")
    }

    fn wait_pseudofs(&self, pfsd: &PseudofsData, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.get_pseudofs()?.sync_end_tid > pfsd.sync_end_tid {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            std::thread::sleep(WAIT_POLL);
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
}
