//! The HAMMER interface: the `Pfs` trait with the operations cmd_mirror.c makes through ioctl(2).
//!
//! Two implementations: [`kernel`] (the real DragonFly ioctls, whose ABI is
//! `sys`) and the userspace store (`crate::store`). The mirror halves only
//! ever talk to a `dyn Pfs`. The crate denies `unsafe` code everywhere but in
//! `sys` (the `ioctl(2)` calls) and [`mapped`] (the store's memory map).

pub mod kernel;
#[allow(unsafe_code)]
pub mod mapped;
mod snapshots;
#[allow(unsafe_code)]
mod sys;
pub mod wait;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hammerfs::SnapshotData;
use crate::mrecord::{BaseElm, PseudofsData};

/// `HAMMER_IOC_HEAD_ERROR`.
pub const HEAD_ERROR: u32 = 0x0000_8000;
/// `HAMMER_IOC_HEAD_INTR`: the call was interrupted by a signal.
pub const HEAD_INTR: u32 = 0x0001_0000;
/// `HAMMER_IOC_MIRROR_NODATA`: MIRROR_READ without bulk data (the prescan).
pub const MIRROR_NODATA: u32 = 0x0000_0001;

/// The most snapshots [`Pfs::snapshots`] returns (HAMMER sets no limit;
/// this bounds the memory a PFS full of snapshot records can make us use).
pub const MAX_SNAPSHOTS: usize = 1 << 20;

/// `enum hammer_synctid_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum SynctidOp {
    None = 0,
    Async = 1,
    Sync1 = 2,
    Sync2 = 3,
}

/// The arguments of MIRROR_READ / MIRROR_WRITE (`struct hammer_ioc_mirror_rw`
/// without the user buffer, which is passed beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRw {
    /// `head.flags`: in, [`MIRROR_NODATA`]; out, [`HEAD_INTR`] / [`HEAD_ERROR`].
    pub flags: u32,
    /// `head.error`: the errno that goes with [`HEAD_ERROR`].
    pub error: i32,
    pub key_beg: BaseElm,
    pub key_end: BaseElm,
    /// Where the scan stopped (read) or the tracking position (write). The
    /// caller passes it back unchanged between calls of one batch.
    pub key_cur: BaseElm,
    pub tid_beg: u64,
    pub tid_end: u64,
    pub pfs_id: i32,
    pub shared_uuid: [u8; 16],
    /// Opaque per-batch state of an implementation that has more tracking
    /// state than `key_cur` (the store's sweep position is inclusive after a
    /// SKIP). The kernel keeps this in its cursor and ignores the field.
    pub cursor_state: u32,
}

impl MirrorRw {
    /// A read over the whole key space, as `hammer_cmd_mirror_read` sets it up.
    pub fn for_read(tid_beg: u64, tid_end: u64) -> Self {
        MirrorRw {
            flags: 0,
            error: 0,
            key_beg: BaseElm::key_beg_init(),
            key_end: BaseElm::key_end_init(),
            key_cur: BaseElm::default(),
            tid_beg,
            tid_end,
            pfs_id: 0,
            shared_uuid: [0; 16],
            cursor_state: 0,
        }
    }

    /// A write as `hammer_cmd_mirror_write` sets it up (note: key_end =
    /// key_beg and key_cur all-zero, exactly as the C code does).
    pub fn for_write(tid_beg: u64, tid_end: u64) -> Self {
        let beg = BaseElm::key_beg_init();
        MirrorRw {
            flags: 0,
            error: 0,
            key_beg: beg,
            key_end: beg,
            key_cur: BaseElm::default(),
            tid_beg,
            tid_end,
            pfs_id: 0,
            shared_uuid: [0; 16],
            cursor_state: 0,
        }
    }
}

/// Why a PFS operation failed. Every variant names the PFS path.
#[derive(Debug, thiserror::Error)]
pub enum PfsError {
    #[error("{}: not a HAMMER filesystem", path.display())]
    NotHammer { path: PathBuf },
    #[error("{}: no such PFS", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: not a PFS: {detail}", path.display())]
    NotPfs { path: PathBuf, detail: String },
    #[error("{}: PFS is busy: another process is writing to it ({detail})", path.display())]
    Busy { path: PathBuf, detail: String },
    #[error("{}: PFS store is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// The store file itself is not sound (short, foreign, bad LMDB pages):
    /// found before it is mapped, or when it changes while open.
    #[error("PFS file damaged: {}: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("{}: PFS is a slave; only mirror-write may change it (use pfs-upgrade to make it a master)", path.display())]
    SlaveReadOnly { path: PathBuf },
    #[error("{}: {op}: {detail}", path.display())]
    Invalid { path: PathBuf, op: &'static str, detail: String },
    /// `compact` replaced the store file since it was opened: new TIDs go
    /// to the new file, so whoever goes on reading must open it again.
    #[error("{}: {op}: the store file was replaced (compacted) since it was opened; open it again", path.display())]
    Replaced { path: PathBuf, op: &'static str },
    #[error("{}: there is already a snapshot at TID 0x{tid:016x}", path.display())]
    SnapshotExists { path: PathBuf, tid: u64 },
    #[error("{}: no snapshot at TID 0x{tid:016x}", path.display())]
    NoSuchSnapshot { path: PathBuf, tid: u64 },
    /// A safety check refused the request; retrying cannot fix it (exit status 3).
    #[error("{}: {op} refused: {detail}", path.display())]
    Refused { path: PathBuf, op: &'static str, detail: String },
    /// The errno text is part of the message (not a `source`, so that a
    /// chain printed with `{:#}` names it once).
    #[error("{}: {op} failed: {error}{}", path.display(), disk_full_hint(path, error))]
    Io { path: PathBuf, op: &'static str, error: io::Error },
}

/// " (no space left on ...)" when an I/O error happened on a full filesystem:
/// LMDB reports a failed write as EIO, which alone would not tell why.
fn disk_full_hint(path: &Path, e: &io::Error) -> String {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let full = e.kind() == io::ErrorKind::StorageFull
        || nix::sys::statvfs::statvfs(dir).is_ok_and(|v| v.blocks_available() * v.fragment_size() < (1 << 20));
    if full { format!(" (no space left on the filesystem holding {})", dir.display()) } else { String::new() }
}

impl PfsError {
    /// The PFS the error is about (every variant names one).
    pub fn path(&self) -> &Path {
        match self {
            PfsError::NotHammer { path }
            | PfsError::NotFound { path }
            | PfsError::NotPfs { path, .. }
            | PfsError::Busy { path, .. }
            | PfsError::Corrupt { path, .. }
            | PfsError::Damaged { path, .. }
            | PfsError::SlaveReadOnly { path }
            | PfsError::Invalid { path, .. }
            | PfsError::Replaced { path, .. }
            | PfsError::Refused { path, .. }
            | PfsError::SnapshotExists { path, .. }
            | PfsError::NoSuchSnapshot { path, .. }
            | PfsError::Io { path, .. } => path,
        }
    }

    pub fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        PfsError::Io { path: path.to_path_buf(), op, error: source }
    }

    pub fn invalid(path: &Path, op: &'static str, detail: impl Into<String>) -> Self {
        PfsError::Invalid { path: path.to_path_buf(), op, detail: detail.into() }
    }
}

pub type Result<T, E = PfsError> = std::result::Result<T, E>;

/// A pseudo-filesystem, as the HAMMER ioctls see it.
///
/// The operations and their semantics are the kernel's (DragonFly's
/// `sys/vfs/hammer/hammer_mirror.c`, `hammer_pfs.c`, `hammer_ioctl.c`): see
/// `doc/design.md`.
pub trait Pfs: Send {
    /// The path the PFS was opened by (for messages).
    fn path(&self) -> &Path;

    /// The PFS id (the upper 16 bits of its records' localization).
    fn pfs_id(&self) -> i32;

    /// GET_PSEUDOFS. For a master, `sync_end_tid` is the last committed TID.
    fn get_pseudofs(&self) -> Result<PseudofsData>;

    /// SET_PSEUDOFS: replaces the description; wakes `wait_pseudofs` callers.
    fn set_pseudofs(&mut self, pfsd: &PseudofsData) -> Result<()>;

    /// WAI_PSEUDOFS: waits until the PFS's `sync_end_tid` passes
    /// `pfsd.sync_end_tid`, or `timeout` runs out. Returns true when it moved.
    /// Both implementations return within the timeout (the kernel one by
    /// polling GET_PSEUDOFS, see [`wait`]), so a caller that waits in slices
    /// can send heartbeats and see a stop flag between them.
    fn wait_pseudofs(&self, pfsd: &PseudofsData, timeout: Option<Duration>) -> Result<bool>;

    /// MIRROR_READ: fills `buf` with packed REC/PASS/SKIP records from
    /// `m.key_beg` on, sets `m.key_cur`, and returns the bytes used. 0 means the
    /// key range is exhausted.
    fn mirror_read(&self, m: &mut MirrorRw, buf: &mut [u8]) -> Result<usize>;

    /// MIRROR_WRITE: applies packed REC/PASS/SKIP records, advancing
    /// `m.key_cur`. On failure `m.error` holds the errno and the error says
    /// which record.
    fn mirror_write(&mut self, m: &mut MirrorRw, buf: &[u8]) -> Result<()>;

    /// SYNCTID: flushes and returns the current TID.
    fn synctid(&mut self, op: SynctidOp) -> Result<u64>;

    /// UPG_PSEUDOFS: slave to master (rolls back anything after `sync_end_tid`).
    fn upgrade(&mut self) -> Result<()>;

    /// DGD_PSEUDOFS: master to slave.
    fn downgrade(&mut self) -> Result<()>;

    /// RMR_PSEUDOFS: destroys every record and marks the PFS deleted.
    fn destroy(&mut self) -> Result<()>;

    /// ADD_SNAPSHOT: records `snaps` in order, masters and slaves alike (a
    /// slave's own snapshots stay its own). Stops at the first whose TID
    /// already has a snapshot ([`PfsError::SnapshotExists`]: a note is
    /// never replaced), keeping those before it.
    fn add_snapshots(&mut self, snaps: &[SnapshotData]) -> Result<()>;

    /// DEL_SNAPSHOT: removes the snapshots of `tids` in order. Stops at the
    /// first TID without one ([`PfsError::NoSuchSnapshot`]), those before it
    /// removed. Only the snapshot goes, not the history it kept.
    fn delete_snapshots(&mut self, tids: &[u64]) -> Result<()>;

    /// GET_SNAPSHOT: every snapshot of the PFS, one per TID, in TID order
    /// (at most [`MAX_SNAPSHOTS`]).
    fn snapshots(&self) -> Result<Vec<SnapshotData>>;

    /// A target acknowledged `tid` in a two-way conversation (copy, stream):
    /// remember it, so that prune never removes what the target still
    /// needs. Ok(false) when it was not recorded now (the store is busy; the
    /// next acknowledgement records it; HAMMER keeps no such thing).
    fn record_ack(&self, _target: &PseudofsData, _tid: u64) -> Result<bool> {
        Ok(false)
    }

    /// The highest delete TID of a record removed by a prune (0: never
    /// pruned). A target below it gets a full sweep pass.
    fn pruned_to(&self) -> Result<u64> {
        Ok(0)
    }

    /// A slave's pass that got no SYNC, kept so that the next pass can
    /// resume it (the store does; HAMMER has no such thing: None).
    fn partial_pass(&self) -> Result<Option<PartialPass>> {
        Ok(None)
    }

    /// The next pass resumes [`Pfs::partial_pass`]: keep what it applied
    /// instead of discarding it before the pass starts.
    fn resume_partial(&mut self) -> Result<()> {
        Ok(())
    }

    /// A slave with damaged records that scrub recorded: the create TID of
    /// the oldest, where a repair pass from its master begins (the store
    /// does; HAMMER checks its own CRCs: None).
    fn repair_floor(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// What mirror writes since the last call repaired, one line each.
    fn take_repaired(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How far a pass that got no SYNC came on a slave: its end TID, and the
/// first key it does not have yet (where the source resumes, after a SKIP
/// over everything before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialPass {
    pub tid_end: u64,
    pub resume_key: BaseElm,
}

/// How the write half reaches its target: a PFS that may not exist yet, to
/// be created as a slave of the source (`pfs::PathOpener` for a path).
pub trait Opener: Send + Sync {
    /// The target's path (for messages).
    fn path(&self) -> &Path;

    /// Opens the PFS for writing; `Ok(None)` when nothing exists at the path.
    fn open(&self) -> Result<Option<Box<dyn Pfs>>>;

    /// Creates a new slave PFS of the master whose shared uuid is `shared_uuid`, open for writing.
    fn create_slave(&self, shared_uuid: &[u8; 16]) -> Result<Box<dyn Pfs>>;
}
