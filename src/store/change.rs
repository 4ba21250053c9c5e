//! Waiting for a store to change without polling it: an inotify watch on its data file, where Linux has one.
//!
//! Every LMDB commit writes the data file (its meta page at least), so a
//! modification of the file is the sign that a new TID may exist. A stream
//! idle for hours then sleeps in poll(2) instead of opening a read
//! transaction ten times a second (100 idle streams of `run` used about 4 %
//! of a core that way). The watch is only a hint: the caller checks the TID
//! after every wakeup and at least once a second, and falls back to plain
//! sleeping where inotify is not there.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Look at the TID at least this often, changes seen or not.
const RECHECK: Duration = Duration::from_secs(5);
/// After a change, look again this often for this long: the event comes
/// when the writer's meta page reaches the page cache, but LMDB publishes
/// the transaction to readers only after that write's fdatasync returns.
const SETTLE: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

/// A watch on one store file.
pub(crate) struct Change {
    #[cfg(target_os = "linux")]
    fd: Option<nix::sys::inotify::Inotify>,
    /// When the TID was last looked at, and when the file last changed.
    state: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Change {
    pub(crate) fn new(path: &Path) -> Change {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
            let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok().filter(|i| {
                i.add_watch(path, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_DELETE_SELF)
                    .is_ok()
            });
            Change { fd, state: Mutex::new((None, None)) }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            Change { state: Mutex::new((None, None)) }
        }
    }

    /// Whether the TID is worth reading now: the file changed lately, or
    /// there is no watch, or [`RECHECK`] passed (a watch is only a hint).
    pub(crate) fn worth_a_look(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(target_os = "linux")]
        let watched = self.fd.is_some();
        #[cfg(not(target_os = "linux"))]
        let watched = false;
        let due = !watched || settling(st.1) || st.0.is_none_or(|t| t.elapsed() >= RECHECK);
        if due {
            st.0 = Some(Instant::now());
        }
        due
    }

    /// Sleeps until the file changes or `most` passes (whichever is first;
    /// may return early; no more than [`SETTLE`]'s step soon after a
    /// change), then forgets the events seen.
    pub(crate) fn wait(&self, most: Duration) {
        #[cfg(target_os = "linux")]
        if let Some(i) = &self.fd {
            use std::os::fd::AsFd;
            let last = self.state.lock().unwrap_or_else(|e| e.into_inner()).1;
            let most = if settling(last) { most.min(SETTLE.0) } else { most };
            let mut fds = [nix::poll::PollFd::new(i.as_fd(), nix::poll::PollFlags::POLLIN)];
            // Rounded up: a timeout of 0 would return at once, and the caller spin.
            let ms = u16::try_from(most.as_micros().div_ceil(1000).max(1)).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, ms);
            let mut seen = false;
            while matches!(i.read_events(), Ok(e) if !e.is_empty()) {
                seen = true;
            }
            if seen {
                self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(Instant::now());
            }
            return;
        }
        std::thread::sleep(most.min(Duration::from_millis(100)));
    }
}

/// Whether a change at `last` is recent enough to look again.
fn settling(last: Option<Instant>) -> bool {
    last.is_some_and(|t| t.elapsed() < SETTLE.1)
}
