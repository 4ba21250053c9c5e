//! Waiting for a store to change without polling it: inotify watches on store data files, one inotify instance per process.
//!
//! Every LMDB commit writes the data file (its meta page at least), so a
//! modification of the file is the sign that a new TID may exist. A stream
//! idle for hours then sleeps on a condition variable instead of opening a
//! read transaction ten times a second (100 idle streams of `run` used about
//! 4 % of a core that way). The watch is only a hint: the caller checks the
//! TID after every wakeup and at least every [`RECHECK`], and falls back to
//! plain sleeping where inotify is not there or its limits are reached.
//!
//! One inotify instance serves the whole process (a user has 128 by
//! default, and `run` may wait on hundreds of stores): a thread reads its
//! events and wakes the waiters of the file each one names.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Look at the TID at least this often, changes seen or not.
const RECHECK: Duration = Duration::from_secs(5);
/// After a change, look again this often for this long: the event comes
/// when the writer's meta page reaches the page cache, but LMDB publishes
/// the transaction to readers only after that write's fdatasync returns.
const SETTLE: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));
/// How long to sleep between looks without a watch.
const UNWATCHED: Duration = Duration::from_millis(100);

/// What the event thread tells the waiters of one file.
#[derive(Default)]
struct Flag {
    /// How many changes were seen, and when the last one was.
    seen: Mutex<(u64, Option<Instant>)>,
    woke: Condvar,
}

impl Flag {
    fn last(&self) -> Option<Instant> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// A watch on one store file.
pub(crate) struct Change {
    watch: Option<Watch>,
    /// When the TID was last looked at.
    looked: Mutex<Option<Instant>>,
}

impl Change {
    pub(crate) fn new(path: &Path) -> Change {
        Change { watch: Watch::new(path), looked: Mutex::new(None) }
    }

    /// Whether the TID is worth reading now: the file changed lately, or
    /// there is no watch, or [`RECHECK`] passed (a watch is only a hint).
    pub(crate) fn worth_a_look(&self) -> bool {
        let mut looked = self.looked.lock().unwrap_or_else(|e| e.into_inner());
        let due = match &self.watch {
            None => true,
            Some(w) => settling(w.flag.last()) || looked.is_none_or(|t| t.elapsed() >= RECHECK),
        };
        if due {
            *looked = Some(Instant::now());
        }
        due
    }

    /// Sleeps until the file changes or `most` passes (whichever is first;
    /// may return early; no more than [`SETTLE`]'s step soon after a change).
    pub(crate) fn wait(&self, most: Duration) {
        let Some(w) = &self.watch else {
            std::thread::sleep(most.min(UNWATCHED));
            return;
        };
        let seen = w.flag.seen.lock().unwrap_or_else(|e| e.into_inner());
        let most = if settling(seen.1) { most.min(SETTLE.0) } else { most };
        let count = seen.0;
        let _ = w.flag.woke.wait_timeout_while(seen, most, |s| s.0 == count);
    }
}

/// Whether a change at `last` is recent enough to look again.
fn settling(last: Option<Instant>) -> bool {
    last.is_some_and(|t| t.elapsed() < SETTLE.1)
}

/// The process's inotify instance and who waits on each of its watches.
#[cfg(target_os = "linux")]
struct Hub {
    ino: nix::sys::inotify::Inotify,
    /// Watches of one file share a descriptor (inotify gives the same one
    /// for the same inode), so each has the flags of all its waiters.
    flags: Mutex<HashMap<nix::sys::inotify::WatchDescriptor, Vec<Weak<Flag>>>>,
}

#[cfg(target_os = "linux")]
fn hub() -> Option<&'static Hub> {
    static HUB: OnceLock<Option<&'static Hub>> = OnceLock::new();
    *HUB.get_or_init(|| {
        use nix::sys::inotify::{InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).ok()?;
        let hub: &'static Hub = Box::leak(Box::new(Hub { ino, flags: Mutex::new(HashMap::new()) }));
        std::thread::Builder::new().name("store-changes".into()).spawn(move || hub.serve()).ok()?;
        Some(hub)
    })
}

#[cfg(target_os = "linux")]
impl Hub {
    /// Wakes the waiters of every file an event names, for the life of the process.
    fn serve(&self) {
        loop {
            let Ok(events) = self.ino.read_events() else {
                std::thread::sleep(UNWATCHED);
                continue;
            };
            let now = Instant::now();
            let flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
            for ev in events {
                for f in flags.get(&ev.wd).into_iter().flatten().filter_map(Weak::upgrade) {
                    let mut seen = f.seen.lock().unwrap_or_else(|e| e.into_inner());
                    *seen = (seen.0 + 1, Some(now));
                    f.woke.notify_all();
                }
            }
        }
    }
}

/// One waiter's registration with the [`Hub`].
struct Watch {
    flag: Arc<Flag>,
    #[cfg(target_os = "linux")]
    wd: nix::sys::inotify::WatchDescriptor,
}

impl Watch {
    #[cfg(target_os = "linux")]
    fn new(path: &Path) -> Option<Watch> {
        use nix::sys::inotify::AddWatchFlags as F;
        let hub = hub()?;
        let mut flags = hub.flags.lock().unwrap_or_else(|e| e.into_inner());
        let wd = hub.ino.add_watch(path, F::IN_MODIFY | F::IN_ATTRIB | F::IN_DELETE_SELF).ok()?;
        let flag = Arc::new(Flag::default());
        let list = flags.entry(wd).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&flag));
        Some(Watch { flag, wd })
    }

    #[cfg(not(target_os = "linux"))]
    fn new(_: &Path) -> Option<Watch> {
        None
    }
}

#[cfg(target_os = "linux")]
impl Drop for Watch {
    fn drop(&mut self) {
        let Some(hub) = hub() else { return };
        let mut flags = hub.flags.lock().unwrap_or_else(|e| e.into_inner());
        let mine = Arc::downgrade(&self.flag);
        if let Some(list) = flags.get_mut(&self.wd) {
            list.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&mine));
            if list.is_empty() {
                flags.remove(&self.wd);
                let _ = hub.ino.rm_watch(self.wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_wakes_every_waiter_of_the_file_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let (a1, a2, b1) = (Change::new(&a), Change::new(&a), Change::new(&b));
        assert!(a1.watch.is_some(), "inotify is there on Linux");
        for c in [&a1, &a2, &b1] {
            assert!(c.worth_a_look(), "the first look is due");
            assert!(!c.worth_a_look(), "nothing changed since");
        }
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(&a, "x").unwrap();
            });
            a1.wait(Duration::from_secs(10));
        });
        assert!(t0.elapsed() < Duration::from_secs(5), "woken by the write, not the timeout");
        std::thread::sleep(Duration::from_millis(50));
        assert!(a1.worth_a_look() && a2.worth_a_look(), "both waiters of a see the change");
        assert!(!b1.worth_a_look(), "b did not change");
        drop(a2);
        std::thread::sleep(SETTLE.1);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(&a, "y").unwrap();
            });
            a1.wait(Duration::from_secs(10));
        });
        assert!(t0.elapsed() < Duration::from_secs(5), "the other waiter's drop kept a's watch");
    }
}
