//! Store files on disk: the data file and its `-lock` file opened without following symlinks and vetted before LMDB maps them, new stores created 0600 under a temporary name and published complete, and the writer lock.
//!
//! What is guaranteed, also in a directory others can write to:
//!
//! * The data file and the lock file are opened with `O_NOFOLLOW`; a symlink
//!   at either path is refused by name. New files are created with `O_EXCL`
//!   and mode 0600 (less if the umask says so). A lock file must be a
//!   regular file with one link, owned by the caller or by the store's owner.
//! * Nothing is created beside a file that is not a complete store: the data
//!   file is vetted (LMDB's meta pages, its length, the store's magic and
//!   layout; see [`super::lmdbfile`]) before its lock file is opened or
//!   created.
//! * LMDB opens its files by name. It is given a private directory (mode
//!   0700, in `$TMPDIR`, or `/tmp` when others may rename what is in
//!   `$TMPDIR`) whose `data.mdb` and `lock.mdb` are symlinks to
//!   `/proc/self/fd/N` (or `/dev/fd/N`) of the descriptors opened and checked
//!   here, so it maps exactly the inode that was vetted and locks exactly the
//!   lock file that was checked, whatever happens to the names meanwhile.
//!   Where neither `/proc/self/fd` nor `/dev/fd` reaches an open descriptor,
//!   the links name the paths themselves, and someone who can rename entries
//!   in the store's directory could still race the check.
//! * A new store is written under `.<name>.hm-new.<random>` in the same
//!   directory, with its own lock file, and published with `link(2)` (which
//!   never replaces an existing file) once its first transactions are
//!   committed, so a kill leaves either no store or a complete one. Leftover
//!   temporaries whose writer is gone are removed by the next creation of the
//!   same name.
//!
//! What is not: someone who can write to the directory can still remove or
//! rename a store (that is the directory's permission to give), and a file
//! that shrinks while a transaction reads it faults; the SIGBUS handler of
//! [`crate::ioctl::mapped`] then names it and exits with status 1.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use heed::{Env, WithoutTls};
use nix::errno::Errno;

use super::Access;
use super::layout::{self, FILE_MODE, lock_path};
use super::lmdbfile::{self, Problem, Vetted};
use crate::ioctl::mapped::{self, EnvOptions};
use crate::ioctl::{PfsError, Result};

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw)
}

/// Permission problems that make a reader fall back to read-only access.
fn no_permission(e: &io::Error) -> bool {
    matches!(errno(e), Some(Errno::EACCES | Errno::EPERM | Errno::EROFS))
}

/// Opens `path` without following a symlink, without blocking on a FIFO.
fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
}

/// Creates `path`: it must not exist (not even as a symlink), mode 0600.
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// "a symbolic link (to X)": what is wrong with a symlink where a store
/// file or its lock file belongs.
fn link_detail(path: &Path) -> String {
    match std::fs::read_link(path) {
        Ok(t) => format!("a symbolic link (to {})", t.display()),
        Err(_) => "a symbolic link".into(),
    }
}

/// "<path> is a symbolic link (to X)".
fn symlink_detail(path: &Path) -> String {
    format!("{} is {}", path.display(), link_detail(path))
}

/// The refusal of a store path that is a symlink.
pub(crate) fn symlink_refusal(path: &Path) -> PfsError {
    PfsError::Refused {
        path: path.to_path_buf(),
        op: "open",
        detail: format!("{}; store files are never opened through one: name the file itself", link_detail(path)),
    }
}

fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
}

/// The error for a failed open of the data file.
fn open_error(path: &Path, e: io::Error) -> PfsError {
    match errno(&e) {
        Some(Errno::ENOENT) => PfsError::NotFound { path: path.to_path_buf() },
        Some(Errno::ELOOP | Errno::EMLINK) if is_symlink(path) => symlink_refusal(path),
        Some(Errno::EISDIR | Errno::ENXIO | Errno::EOPNOTSUPP) => {
            PfsError::NotPfs { path: path.to_path_buf(), detail: "not a PFS store file".into() }
        }
        _ => PfsError::io(path, "open", e),
    }
}

fn damaged(path: &Path, detail: String) -> PfsError {
    PfsError::Damaged { path: path.to_path_buf(), detail }
}

pub(crate) fn problem(path: &Path, p: Problem) -> PfsError {
    match p {
        Problem::Io(e) => PfsError::io(path, "read", e),
        Problem::Bad(s) => damaged(path, s),
    }
}

/// An open data file that passed [`vet`].
pub(crate) struct DataFile {
    pub file: File,
    pub vetted: Vetted,
    /// Opened for writing (readers fall back to read-only without permission).
    pub writable: bool,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
}

/// Opens and vets the data file of the store at `path`.
pub(crate) fn open_data(path: &Path, access: Access) -> Result<DataFile> {
    let (file, writable) = match open_nofollow(path, true) {
        Ok(f) => (f, true),
        Err(e) if access == Access::Read && no_permission(&e) => {
            (open_nofollow(path, false).map_err(|e| open_error(path, e))?, false)
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let m = file.metadata().map_err(|e| PfsError::io(path, "stat", e))?;
    if !m.is_file() {
        return Err(PfsError::NotPfs { path: path.to_path_buf(), detail: "not a PFS store file".into() });
    }
    let vetted = vet(path, &file)?;
    Ok(DataFile { file, vetted, writable, dev: m.dev(), ino: m.ino(), uid: m.uid() })
}

/// Opens `path` again for writing, as the inode `key` (device, inode) it
/// must still be.
pub(crate) fn reopen(path: &Path, key: (u64, u64)) -> Result<File> {
    let f = open_nofollow(path, true).map_err(|e| open_error(path, e))?;
    let m = f.metadata().map_err(|e| PfsError::io(path, "stat", e))?;
    if (m.dev(), m.ino()) != key {
        return Err(PfsError::invalid(path, "open", "the file was replaced while it was being opened"));
    }
    Ok(f)
}

/// [`lmdbfile::vet`] with the store's names, tried again when a writer
/// committed meanwhile (its pages may have been reused under the reads).
pub(crate) fn vet(path: &Path, file: &File) -> Result<Vetted> {
    let txnid = |f: &File| lmdbfile::read_meta(f).map(|(m, _)| m.txnid).ok();
    let mut last = None;
    for _ in 0..4 {
        let before = txnid(file);
        match lmdbfile::vet(file, layout::MAGIC, layout::META_TABLE, layout::MAGIC_KEY, layout::LAYOUT_KEY) {
            Ok(v) => return Ok(v),
            Err(p) => {
                let moved = before.is_some() && txnid(file) != before;
                last = Some(p);
                if !moved {
                    break;
                }
            }
        }
    }
    Err(problem(path, last.expect("tried at least once")))
}

/// Checks an open lock file: a regular file with one link, owned by us or
/// by the store's owner.
fn check_lock(lock: &Path, f: &File, data_uid: u32) -> std::result::Result<(), String> {
    let m = f.metadata().map_err(|e| format!("{}: {e}", lock.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !m.is_file() {
        Err(format!("{} is not a regular file", lock.display()))
    } else if m.nlink() != 1 {
        Err(format!("{} has {} hard links", lock.display(), m.nlink()))
    } else if m.uid() != me && m.uid() != data_uid {
        Err(format!("{} belongs to uid {}, neither you nor the store's owner", lock.display(), m.uid()))
    } else {
        Ok(())
    }
}

/// The refusal of a lock file that failed a check.
fn lock_refusal(path: &Path, why: String) -> PfsError {
    // Someone else's doing, or an attack: retrying cannot fix it (exit status 3; stream stops).
    PfsError::Refused {
        path: path.to_path_buf(),
        op: "lock file",
        detail: format!("{why}; refusing to use it (remove it if you did not make it)"),
    }
}

/// Opens (creating it 0600 if needed) the lock file of the vetted store at
/// `path`. For a reader without the permission to, `None`: the store is then
/// read without LMDB's lock file (see [`lock_shared`]).
pub(crate) fn open_lock(path: &Path, data_uid: u32, access: Access) -> Result<Option<File>> {
    let lp = lock_path(path);
    let denied = |e: io::Error| {
        if access == Access::Read && no_permission(&e) {
            Ok(None)
        } else {
            Err(PfsError::io(path, "open the lock file", e))
        }
    };
    for _ in 0..8 {
        match open_nofollow(&lp, true) {
            Ok(f) => {
                check_lock(&lp, &f, data_uid).map_err(|why| lock_refusal(path, why))?;
                reserve_lock(path, &f)?;
                return Ok(Some(f));
            }
            Err(e) if errno(&e) == Some(Errno::ENOENT) => match create_new(&lp) {
                Ok(f) => {
                    give_to_owner(&f, data_uid);
                    reserve_lock(path, &f)?;
                    return Ok(Some(f));
                }
                Err(e) if errno(&e) == Some(Errno::EEXIST) => continue,
                Err(e) => return denied(e),
            },
            Err(e) if matches!(errno(&e), Some(Errno::ELOOP | Errno::EMLINK)) && is_symlink(&lp) => {
                return Err(lock_refusal(path, symlink_detail(&lp)));
            }
            Err(e) if matches!(errno(&e), Some(Errno::ENXIO | Errno::EISDIR)) => {
                return Err(lock_refusal(path, format!("{} is not a regular file", lp.display())));
            }
            Err(e) => return denied(e),
        }
    }
    Err(PfsError::invalid(path, "lock file", format!("{} keeps appearing and disappearing", lp.display())))
}

/// Allocates the blocks of the lock file `f` of the store at `path`
/// ([`layout::LOCK_FILE_BYTES`]; nothing to do when they are), so that LMDB's
/// shared map of it never faults on a full filesystem: ENOSPC here is an
/// error naming the store. Where the filesystem cannot allocate ahead, LMDB
/// is left to do as before.
fn reserve_lock(path: &Path, f: &File) -> Result<()> {
    match nix::fcntl::posix_fallocate(f.as_fd(), 0, layout::LOCK_FILE_BYTES as libc::off_t) {
        Err(e @ (Errno::ENOSPC | Errno::EDQUOT | Errno::EFBIG | Errno::EIO)) => {
            Err(PfsError::io(path, "allocate the lock file", e.into()))
        }
        _ => Ok(()),
    }
}

/// A lock file root creates beside another user's store goes to that user,
/// who could not open it for writing otherwise. Best effort.
fn give_to_owner(f: &File, data_uid: u32) {
    if nix::unistd::geteuid().is_root() && data_uid != 0 {
        let _ = std::os::unix::fs::fchown(f, Some(data_uid), None);
    }
}

/// Refuses to create a store at `path` when what is at its lock file's path
/// could not be used.
pub(crate) fn check_lock_slot(path: &Path) -> Result<()> {
    let lp = lock_path(path);
    match lp.symlink_metadata() {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(lock_refusal(path, symlink_detail(&lp))),
        Ok(_) => match open_nofollow(&lp, true) {
            Ok(f) => check_lock(&lp, &f, nix::unistd::geteuid().as_raw()).map_err(|why| lock_refusal(path, why)),
            Err(e) => Err(PfsError::io(path, "open the lock file", e)),
        },
    }
}

/// Raised by SIGINT and SIGTERM in the commands that handle them (see
/// [`signal_flag`]): a store that waits for another process's lock then
/// gives up at once instead of at the end of `HAMMER_MIRROR_LOCK_WAIT`.
static STOP_WAITING: std::sync::LazyLock<Arc<AtomicBool>> = std::sync::LazyLock::new(Default::default);

/// The flag a command's SIGINT and SIGTERM handlers raise so that lock
/// waits end at once (`signal_hook::flag::register` it).
pub fn signal_flag() -> Arc<AtomicBool> {
    Arc::clone(&STOP_WAITING)
}

thread_local! {
    /// The stop flag of the run this thread works for (see [`waits_end_with`]).
    static RUN_STOP: std::cell::RefCell<Option<Arc<AtomicBool>>> = const { std::cell::RefCell::new(None) };
}

/// While the guard lives, this thread's store waits also end when `stop` is
/// raised (a copy's half: its run was stopped, stalled, or its other side ended).
pub fn waits_end_with(stop: Arc<AtomicBool>) -> WaitsEndWith {
    WaitsEndWith(RUN_STOP.replace(Some(stop)))
}

/// See [`waits_end_with`]; restores what was before on drop.
pub struct WaitsEndWith(Option<Arc<AtomicBool>>);

impl Drop for WaitsEndWith {
    fn drop(&mut self) {
        RUN_STOP.set(self.0.take());
    }
}

/// Why a lock wait must end now, if it must.
fn wait_ended() -> Option<&'static str> {
    if STOP_WAITING.load(Ordering::Relaxed) {
        Some("stopped by a signal while waiting for it; nothing was changed")
    } else if RUN_STOP.with_borrow(|s| s.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))) {
        Some("the run ended while waiting for it; nothing was changed")
    } else {
        None
    }
}

/// `flock(2)` on `file`, retried every 50 ms up to `wait`; false when still
/// taken. `waiting` says, once, that it has to wait. A signal that asked us
/// to stop, or the end of this thread's run, ends the wait with an error.
fn flock_wait(path: &Path, file: &File, exclusive: bool, wait: Duration, waiting: &dyn Fn()) -> Result<bool> {
    #[allow(deprecated)]
    use nix::fcntl::{FlockArg, flock};
    let deadline = Instant::now() + wait;
    let arg = if exclusive { FlockArg::LockExclusiveNonblock } else { FlockArg::LockSharedNonblock };
    let mut said = false;
    loop {
        // nix deprecates flock() for its Flock wrapper, which takes the File by value; we keep ours.
        #[allow(deprecated)]
        match flock(file.as_fd().as_raw_fd(), arg) {
            Ok(()) => return Ok(true),
            Err(Errno::EWOULDBLOCK) if let Some(why) = wait_ended() => {
                return Err(PfsError::Busy { path: path.to_path_buf(), detail: why.into() });
            }
            Err(Errno::EWOULDBLOCK) if Instant::now() < deadline => {
                // Never wait in silence.
                if !said {
                    said = true;
                    waiting();
                }
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(Errno::EWOULDBLOCK) => return Ok(false),
            Err(e) => return Err(PfsError::io(path, "lock", e.into())),
        }
    }
}

/// Says what the store waits for, on stderr (before any progress bar exists:
/// stores are opened before a transfer starts).
fn notice(text: &str) {
    eprintln!("hammer-mirror: {text}");
}

/// Takes the exclusive writer lock on `file`, waiting up to `wait`; says at once that it waits.
pub(crate) fn lock_writer(path: &Path, file: &File, wait: Duration) -> Result<()> {
    let waiting = || {
        notice(&format!(
            "{}: PFS is busy: another process is writing to it; waiting up to {:.0} s for it \
             (HAMMER_MIRROR_LOCK_WAIT)",
            path.display(),
            wait.as_secs_f64()
        ))
    };
    if flock_wait(path, file, true, wait, &waiting)? {
        return Ok(());
    }
    Err(PfsError::Busy {
        path: path.to_path_buf(),
        detail: format!(
            "waited {:.0} s for the writer lock; set HAMMER_MIRROR_LOCK_WAIT to wait longer",
            wait.as_secs_f64()
        ),
    })
}

/// Takes a shared lock on the data file for a reader that has no lock file
/// it may write: without LMDB's reader table, no writer may run meanwhile.
pub(crate) fn lock_shared(path: &Path, file: &File, wait: Duration) -> Result<()> {
    let waiting = || {
        notice(&format!(
            "{}: a writer holds the PFS and {} is not writable by you: waiting up to {:.0} s for the writer \
             (HAMMER_MIRROR_LOCK_WAIT)",
            path.display(),
            lock_path(path).display(),
            wait.as_secs_f64()
        ))
    };
    if flock_wait(path, file, false, wait, &waiting)? {
        return Ok(());
    }
    Err(PfsError::Busy {
        path: path.to_path_buf(),
        detail: format!(
            "the lock file {} is not writable by you, so reading waits for writers; waited {:.0} s",
            lock_path(path).display(),
            wait.as_secs_f64()
        ),
    })
}

/// A path that opens exactly the file open as `f`: its `/proc/self/fd` or
/// `/dev/fd` entry when this system has one that does, else `fallback`.
fn fd_link(f: &File, fallback: &Path) -> PathBuf {
    let fd = f.as_raw_fd();
    let Ok(m) = f.metadata() else { return fallback.to_path_buf() };
    for cand in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
        if std::fs::metadata(&cand).is_ok_and(|c| c.dev() == m.dev() && c.ino() == m.ino()) {
            return cand.into();
        }
    }
    std::path::absolute(fallback).unwrap_or_else(|_| fallback.to_path_buf())
}

/// Where the private directory for LMDB goes: `$TMPDIR` when others cannot
/// rename what is in it (not writable by them, or sticky), else `/tmp`.
fn private_base() -> PathBuf {
    let safe = |d: &Path| d.metadata().is_ok_and(|m| m.is_dir() && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0));
    let tmp = std::env::temp_dir();
    if safe(&tmp) { tmp } else { PathBuf::from("/tmp") }
}

/// Opens the LMDB environment of the store at `path` on the open `data`
/// file and `lock` file (see the module documentation). Without a lock file
/// the environment is read-only and lock-less: the caller holds
/// [`lock_shared`].
pub(crate) fn open_env(path: &Path, data: &File, lock: Option<&File>, writable: bool) -> Result<Env<WithoutTls>> {
    let dir = tempfile::Builder::new()
        .prefix(".hammer-mirror-env.")
        .tempdir_in(private_base())
        .map_err(|e| PfsError::io(path, "make a private directory for LMDB (in $TMPDIR)", e))?;
    let link = |target: PathBuf, name: &str| {
        std::os::unix::fs::symlink(target, dir.path().join(name))
            .map_err(|e| PfsError::io(path, "make a private directory for LMDB (in $TMPDIR)", e))
    };
    link(fd_link(data, path), "data.mdb")?;
    if let Some(l) = lock {
        link(fd_link(l, &lock_path(path)), "lock.mdb")?;
    }
    let fs = nix::sys::statvfs::fstatvfs(data).map_or(u64::MAX, |v| v.blocks() * v.fragment_size());
    let len = data.metadata().map_or(0, |m| m.len());
    let opts = EnvOptions {
        map_size: layout::map_size(fs, len),
        max_dbs: layout::MAX_DBS,
        max_readers: layout::MAX_READERS,
        read_only: !writable || lock.is_none(),
        no_lock: lock.is_none(),
    };
    mapped::open_env(dir.path(), opts).map_err(|e| match e {
        heed::Error::Io(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
            PfsError::io(path, "map it (this process's address space is full: too many stores open at once)", e)
        }
        e => super::lmdb_err(path, "open", e),
    })
}

/// A store being created: its data file (write-locked) and lock file under
/// temporary names beside the target.
pub(crate) struct NewStore {
    pub tmp: PathBuf,
    pub data: File,
    pub lock: File,
}

#[cfg(test)]
impl NewStore {
    /// Removes the temporaries.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
        let _ = std::fs::remove_file(lock_path(&self.tmp));
    }
}

/// The directory and name of `path`.
fn split(path: &Path) -> Result<(PathBuf, &OsStr)> {
    let name = path.file_name().ok_or_else(|| PfsError::invalid(path, "create", "not a file name"))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name))
}

/// Creates the temporary files of a new store at `path` (after removing
/// what killed creations of the same name left).
pub(crate) fn create_temp(path: &Path) -> Result<NewStore> {
    let (dir, name) = split(path)?;
    if name.len() + layout::LOCK_SUFFIX.len() > 255 {
        return Err(PfsError::invalid(path, "create", "the name is too long for its lock file name"));
    }
    clean_stale(&dir, name);
    let prefix = layout::new_prefix(name);
    for _ in 0..16 {
        let rand = uuid::Uuid::new_v4().simple().to_string();
        let mut n = prefix.clone();
        n.push(&rand[..8]);
        let tmp = dir.join(n);
        let data = match create_new(&tmp) {
            Ok(f) => f,
            Err(e) if errno(&e) == Some(Errno::EEXIST) => continue,
            Err(e) => return Err(PfsError::io(path, "create", e)),
        };
        let fail = |e: io::Error| {
            let _ = std::fs::remove_file(&tmp);
            PfsError::io(path, "create", e)
        };
        if !flock_wait(path, &data, true, Duration::ZERO, &|| ())? {
            return Err(fail(io::Error::from(io::ErrorKind::WouldBlock)));
        }
        let lock_tmp = lock_path(&tmp);
        let lock = match create_new(&lock_tmp) {
            Ok(f) => f,
            // A leftover of a creation killed with the same random name.
            Err(e) if errno(&e) == Some(Errno::EEXIST) && !is_symlink(&lock_tmp) => {
                let _ = std::fs::remove_file(&lock_tmp);
                create_new(&lock_tmp).map_err(fail)?
            }
            Err(e) => return Err(fail(e)),
        };
        if let Err(e) = reserve_lock(path, &lock) {
            let _ = std::fs::remove_file(&lock_tmp);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        return Ok(NewStore { tmp, data, lock });
    }
    Err(PfsError::invalid(path, "create", "no free temporary name"))
}

/// Gives the complete store at `tmp` its name `target`: `link(2)`, which
/// fails when `target` exists, then removes `tmp`, and syncs the directory.
pub(crate) fn publish(tmp: &Path, target: &Path) -> Result<()> {
    let exists = || PfsError::invalid(target, "create", "cannot create PFS, file exists");
    match std::fs::hard_link(tmp, target) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
        }
        Err(e) if errno(&e) == Some(Errno::EEXIST) => return Err(exists()),
        // A file system without hard links: rename, having looked first.
        Err(_) if target.symlink_metadata().is_err() => {
            std::fs::rename(tmp, target).map_err(|e| PfsError::io(target, "create", e))?
        }
        Err(_) => return Err(exists()),
    }
    let (dir, _) = split(target)?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporaries of killed creations of `name` in `dir`: ours,
/// regular files, whose writer lock is free (a creation in progress holds it).
fn clean_stale(dir: &Path, name: &OsStr) {
    let prefix = layout::new_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let n = entry.file_name();
        if !n.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let p = entry.path();
        let Ok(m) = p.symlink_metadata() else { continue };
        if !m.is_file() || m.uid() != me {
            continue;
        }
        if n.as_bytes().ends_with(layout::LOCK_SUFFIX.as_bytes()) {
            // A lock file whose data file is gone.
            let data = &n.as_bytes()[..n.len() - layout::LOCK_SUFFIX.len()];
            if !dir.join(OsStr::from_bytes(data)).exists() {
                let _ = std::fs::remove_file(&p);
            }
            continue;
        }
        let Ok(f) = open_nofollow(&p, false) else { continue };
        if flock_wait(&p, &f, true, Duration::ZERO, &|| ()).unwrap_or(false) {
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_file(lock_path(&p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leftover_temporary_is_removed_unless_its_writer_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s");
        let stale = create_temp(&target).unwrap();
        let stale_path = stale.tmp.clone();
        drop(stale); // as a killed creation leaves it: files, no lock holder
        let live = create_temp(&target).unwrap();
        assert!(!stale_path.exists() && !lock_path(&stale_path).exists(), "the stale temporary is gone");
        assert!(live.tmp.exists());
        // A creation in progress (it holds its lock) is left alone.
        let other = create_temp(&target).unwrap();
        assert!(live.tmp.exists() && other.tmp.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n.as_bytes().starts_with(b".s.hm-new.")), "{names:?}");
        live.discard();
        other.discard();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn publishing_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s");
        let n = create_temp(&target).unwrap();
        std::fs::write(&target, b"someone else's").unwrap();
        let e = publish(&n.tmp, &target).unwrap_err().to_string();
        assert!(e.contains("file exists"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
        std::fs::remove_file(&target).unwrap();
        publish(&n.tmp, &target).unwrap();
        assert!(target.exists() && !n.tmp.exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o077, 0, "0600 at most");
    }

    #[test]
    fn lock_files_that_are_not_plain_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let store = dir.path().join("x");
        std::os::unix::fs::symlink(&victim, lock_path(&store)).unwrap();
        let e = open_lock(&store, 0, Access::Write).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link (to ") && e.contains("refusing to use it"), "{e}");
        assert!(check_lock_slot(&store).is_err());
        std::fs::remove_file(lock_path(&store)).unwrap();
        std::fs::hard_link(&victim, lock_path(&store)).unwrap();
        let e = open_lock(&store, 0, Access::Read).unwrap_err().to_string();
        assert!(e.contains("has 2 hard links"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        std::fs::remove_file(lock_path(&store)).unwrap();
        let f = open_lock(&store, 0, Access::Read).unwrap().expect("created");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o077, 0);
        assert!(check_lock_slot(&store).is_ok());
    }
}
