//! The LMDB memory map of the userspace store: opening an environment, releasing its resident pages, and turning a fault past the end of a store file into a message.
//!
//! heed marks `EnvOpenOptions::open` and `flags` unsafe because a memory map
//! is undefined behaviour if the file underneath changes outside LMDB's
//! locking. The crate keeps every `unsafe` in this module tree, so the store
//! opens its environments here. The invariants we uphold: the file is only
//! ever changed through LMDB (our own writers take LMDB's lock; `pfs-destroy`
//! removes the file only while holding the store's writer lock), no flag that
//! weakens durability (NO_SYNC, NO_META_SYNC) is used, NO_LOCK only for a
//! read-only environment whose caller holds a shared `flock` that every
//! writer's exclusive one excludes, and each file is opened at most once per
//! process (`crate::store` keeps a registry by device and inode).
//!
//! A store file that another process truncates while it is mapped would
//! kill us with SIGBUS on the next access past its new end. [`guard`]
//! registers each open store file; the SIGBUS handler finds the one that
//! faulted (its map holds the address, or it is now shorter than it was when
//! last checked), prints "PFS file damaged: <path>: ..." and exits with
//! status 1. A SIGBUS that is none of ours goes to the previous handler.

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use heed::{Env, EnvFlags, EnvOpenOptions, WithoutTls};

/// How an environment is opened.
#[derive(Clone, Copy, Debug)]
pub struct EnvOptions {
    pub map_size: usize,
    pub max_dbs: u32,
    pub max_readers: u32,
    /// MDB_RDONLY: the data file is opened read-only and no write
    /// transaction can begin.
    pub read_only: bool,
    /// MDB_NOLOCK, for a read-only environment without a usable lock file:
    /// the caller holds a shared `flock` on the data file for as long as the
    /// environment is open, and writers take an exclusive one first.
    pub no_lock: bool,
}

/// Opens the LMDB environment in directory `dir`, whose `data.mdb` and
/// `lock.mdb` are the files to use (the store links them to the files it
/// opened and checked itself).
pub fn open_env(dir: &Path, o: EnvOptions) -> heed::Result<Env<WithoutTls>> {
    assert!(!o.no_lock || o.read_only, "NO_LOCK only for a read-only environment");
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(o.map_size).max_dbs(o.max_dbs).max_readers(o.max_readers);
    let mut flags = EnvFlags::empty();
    if o.read_only {
        flags |= EnvFlags::READ_ONLY;
    }
    if o.no_lock {
        flags |= EnvFlags::NO_LOCK;
    }
    // SAFETY: READ_ONLY only restricts; NO_LOCK is used only as the module
    // documentation says (a read-only environment under a shared flock that
    // excludes every writer).
    unsafe {
        opts.flags(flags);
    }
    // SAFETY: see the module documentation: the file is only modified through
    // LMDB and opened once per process.
    unsafe { opts.open(dir) }
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

/// Store files registered for the SIGBUS handler at once, at most.
const SLOTS: usize = 256;
/// Bytes of a registered message.
const MSG: usize = 512;

/// One registered store file, read by the signal handler (hence atomics only).
struct Slot {
    /// The file's descriptor; -1 when free, -2 while being filled.
    fd: AtomicI32,
    /// The length the file had and needed when last checked.
    need: AtomicU64,
    map_start: AtomicUsize,
    map_len: AtomicUsize,
    msg_len: AtomicUsize,
    msg: [AtomicU8; MSG],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            fd: AtomicI32::new(-1),
            need: AtomicU64::new(0),
            map_start: AtomicUsize::new(0),
            map_len: AtomicUsize::new(0),
            msg_len: AtomicUsize::new(0),
            msg: [const { AtomicU8::new(0) }; MSG],
        }
    }
}

static GUARDS: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// The SIGBUS action that was installed before ours.
static PREVIOUS: OnceLock<nix::sys::signal::SigAction> = OnceLock::new();

/// A store file registered with the SIGBUS handler; unregistered on drop.
#[derive(Debug)]
pub struct Guard(Option<usize>);

impl Guard {
    /// The length the file needs, as last checked.
    pub fn set_need(&self, need: u64) {
        if let Some(i) = self.0 {
            GUARDS[i].need.store(need, Ordering::Release);
        }
    }

    /// Where the file is mapped in this process.
    pub fn set_map(&self, (start, len): (usize, usize)) {
        if let Some(i) = self.0 {
            GUARDS[i].map_start.store(start, Ordering::Relaxed);
            GUARDS[i].map_len.store(len, Ordering::Release);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            GUARDS[i].fd.store(-1, Ordering::Release);
        }
    }
}

/// Registers the store file open as `fd` (and kept open while the guard
/// lives); `prefix` starts the message printed when it faults, e.g.
/// "hammer-mirror: PFS file damaged: <path>: ". Installs the handler on first
/// use. Without a free slot the file is simply not guarded.
pub fn guard(fd: RawFd, prefix: &str) -> Guard {
    install();
    let Some(i) =
        GUARDS.iter().position(|s| s.fd.compare_exchange(-1, -2, Ordering::AcqRel, Ordering::Relaxed).is_ok())
    else {
        return Guard(None);
    };
    let s = &GUARDS[i];
    let b = prefix.as_bytes();
    let n = b.len().min(MSG);
    for (slot, byte) in s.msg.iter().zip(&b[..n]) {
        slot.store(*byte, Ordering::Relaxed);
    }
    s.msg_len.store(n, Ordering::Relaxed);
    s.need.store(0, Ordering::Relaxed);
    s.map_len.store(0, Ordering::Relaxed);
    s.fd.store(fd, Ordering::Release);
    Guard(Some(i))
}

fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    PREVIOUS.get_or_init(|| {
        let ours = SigAction::new(
            SigHandler::SigAction(on_sigbus),
            SaFlags::SA_SIGINFO | SaFlags::SA_ONSTACK,
            SigSet::empty(),
        );
        // SAFETY: the handler only reads atomics and calls async-signal-safe
        // functions (fstat, write, _exit, sigaction).
        unsafe { sigaction(Signal::SIGBUS, &ours) }
            .unwrap_or_else(|_| SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()))
    });
}

/// The faulting address of a SIGBUS.
fn fault_address(info: *mut libc::siginfo_t) -> usize {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "macos"
    ))]
    {
        if info.is_null() {
            return 0;
        }
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
        unsafe { (*info).si_addr() as usize }
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "macos"
    )))]
    {
        let _ = info;
        0
    }
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let addr = fault_address(info);
    for s in &GUARDS {
        let fd = s.fd.load(Ordering::Acquire);
        if fd < 0 {
            continue;
        }
        let (start, len) = (s.map_start.load(Ordering::Relaxed), s.map_len.load(Ordering::Acquire));
        let in_map = len != 0 && addr >= start && addr - start < len;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat on a descriptor into a properly sized buffer.
        let size = (unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0)
            // SAFETY: fstat succeeded, so it filled the buffer.
            .then(|| unsafe { st.assume_init() }.st_size as u64);
        let short = size.is_some_and(|n| n < s.need.load(Ordering::Acquire));
        if !(in_map || (len == 0 && short)) {
            continue;
        }
        let mut msg = [0u8; MSG + 128];
        let mut n = s.msg_len.load(Ordering::Relaxed).min(MSG);
        for (b, a) in msg.iter_mut().zip(&s.msg[..n]) {
            *b = a.load(Ordering::Relaxed);
        }
        let past_end = size.is_none_or(|size| addr.wrapping_sub(start) as u64 >= size);
        let tail: &[u8] = if short {
            b"the file was cut short while in use (another process truncated it?)\n"
        } else if past_end {
            b"a page past the end of the file was read (a damaged page points there)\n"
        } else {
            b"a page of the file could not be read (an I/O error)\n"
        };
        msg[n..n + tail.len()].copy_from_slice(tail);
        n += tail.len();
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is ours.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), n);
            libc::_exit(1);
        }
    }
    // Not a store file's fault: put the previous action back and return, so
    // that the faulting access repeats under it.
    if let Some(prev) = PREVIOUS.get() {
        // SAFETY: restores the action that was installed before ours.
        unsafe {
            let _ = nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGBUS, prev);
        }
    }
}

/// Keeps glibc's malloc from serving large blocks out of its heaps.
///
/// LMDB allocates a few MiB of bookkeeping per environment opened for
/// writing (its dirty-page and free-page lists) with calloc. glibc raises
/// its mmap threshold after large frees, and a calloc from the heap then
/// clears, and so makes resident, memory that a fresh mmap would leave
/// untouched: `run` with 100 idle streams held about 200 MiB that way,
/// 40 MiB with the threshold fixed at glibc's default of 128 KiB.
pub fn fix_malloc_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before
    // any thread of ours starts, and M_MMAP_THRESHOLD with 128 KiB is a
    // value glibc documents as valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
