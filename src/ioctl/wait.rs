//! Waiting for a PFS to pass a TID within a timeout, over any source of its current TID: the kernel's GET/WAI_PSEUDOFS, or a fake in the tests.
//!
//! The kernel's own wait cannot be bounded. `hammer_ioc_wait_pseudofs()`
//! (`sys/vfs/hammer/hammer_pfs.c`) sleeps with `tsleep(waitp, PCATCH,
//! "hmrmwt", 0)`: no timeout, woken by the flusher (`flush_tid1`, for a
//! master) or by SET_PSEUDOFS (`sync_end_tid`, for a slave), or ended early
//! by a signal *delivered to the sleeping thread*. It discards tsleep's
//! result, so an interrupted wait returns 0 without `HAMMER_IOC_HEAD_INTR`,
//! exactly like a wakeup, and a wakeup for another PFS of the same
//! filesystem returns too. In a multi-threaded process the kernel may hand
//! SIGTERM to any thread, so a signal cannot be relied on to end it.
//!
//! Hence [`wait_past`]: with a timeout it never sleeps in the kernel; it asks
//! for the current TID (GET_PSEUDOFS, a lookup of the in-memory PFS data)
//! every [`POLL`] until the TID has moved or the time is up, so a wait always
//! returns within its timeout and the caller can send heartbeats, notice a
//! stall, or see the stop flag SIGTERM raised. Only an unbounded wait sleeps
//! in WAI_PSEUDOFS, re-checking the TID after every wakeup.

use std::time::{Duration, Instant};

use super::Result;
use crate::mrecord::PseudofsData;

/// How often a bounded wait asks for the current TID.
pub const POLL: Duration = Duration::from_millis(100);

/// What [`wait_past`] needs from a PFS and a clock.
pub trait TidWatch {
    /// The PFS's current `sync_end_tid` (GET_PSEUDOFS).
    fn current_tid(&self) -> Result<u64>;
    /// Sleeps until the PFS may have passed `pfsd.sync_end_tid`; may return
    /// early, and for no reason (WAI_PSEUDOFS).
    fn block(&self, pfsd: &PseudofsData) -> Result<()>;
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

/// WAI_PSEUDOFS with a timeout: true as soon as the PFS's TID is above
/// `pfsd.sync_end_tid`, false when `timeout` passed first (after one last
/// look). `None` waits for as long as it takes.
pub fn wait_past(w: &impl TidWatch, pfsd: &PseudofsData, timeout: Option<Duration>) -> Result<bool> {
    let since = pfsd.sync_end_tid;
    let Some(deadline) = timeout.and_then(|t| w.now().checked_add(t)) else {
        loop {
            if w.current_tid()? > since {
                return Ok(true);
            }
            // The kernel compares with `since` itself before it sleeps, so a
            // TID that moved since the look above is not missed.
            w.block(pfsd)?;
        }
    };
    loop {
        if w.current_tid()? > since {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(w.now());
        if left.is_zero() {
            return Ok(false);
        }
        w.sleep(left.min(POLL));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::ioctl::PfsError;

    /// A PFS whose TID moves at given times on a clock that only sleeping
    /// advances; a blocking wait sleeps until the next move (or spuriously
    /// for `spurious` first).
    struct Fake {
        start: Instant,
        elapsed: Cell<Duration>,
        /// (time, TID from then on), in time order.
        moves: Vec<(Duration, u64)>,
        spurious: Cell<u32>,
        log: RefCell<Vec<String>>,
        fail_at: Option<Duration>,
    }

    impl Fake {
        fn new(moves: &[(u64, u64)]) -> Self {
            Fake {
                start: Instant::now(),
                elapsed: Cell::new(Duration::ZERO),
                moves: moves.iter().map(|&(ms, tid)| (Duration::from_millis(ms), tid)).collect(),
                spurious: Cell::new(0),
                log: RefCell::new(Vec::new()),
                fail_at: None,
            }
        }

        fn ms(&self) -> u128 {
            self.elapsed.get().as_millis()
        }

        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }
    }

    impl TidWatch for Fake {
        fn current_tid(&self) -> Result<u64> {
            self.log.borrow_mut().push(format!("get@{}", self.ms()));
            if self.fail_at.is_some_and(|t| self.elapsed.get() >= t) {
                return Err(PfsError::io(
                    std::path::Path::new("/pfs"),
                    "HAMMERIOC_GET_PSEUDOFS",
                    std::io::Error::from_raw_os_error(libc::EIO),
                ));
            }
            let now = self.elapsed.get();
            Ok(self.moves.iter().take_while(|(t, _)| *t <= now).last().map_or(100, |&(_, tid)| tid))
        }

        fn block(&self, pfsd: &PseudofsData) -> Result<()> {
            self.log.borrow_mut().push(format!("wai({})@{}", pfsd.sync_end_tid, self.ms()));
            if self.spurious.get() > 0 {
                self.spurious.set(self.spurious.get() - 1);
                self.elapsed.set(self.elapsed.get() + Duration::from_millis(1000));
                return Ok(());
            }
            let now = self.elapsed.get();
            let next = self.moves.iter().find(|(t, _)| *t > now).expect("a blocking wait with nothing to come");
            self.elapsed.set(next.0);
            Ok(())
        }

        fn now(&self) -> Instant {
            self.start + self.elapsed.get()
        }

        fn sleep(&self, d: Duration) {
            self.log.borrow_mut().push(format!("sleep {}", d.as_millis()));
            self.elapsed.set(self.elapsed.get() + d);
        }
    }

    fn at(tid: u64) -> PseudofsData {
        PseudofsData { sync_end_tid: tid, ..Default::default() }
    }

    #[test]
    fn a_pfs_that_does_not_move_returns_false_at_the_timeout_without_blocking() {
        let f = Fake::new(&[]);
        assert!(!wait_past(&f, &at(100), Some(Duration::from_millis(250))).unwrap());
        assert_eq!(f.log(), ["get@0", "sleep 100", "get@100", "sleep 100", "get@200", "sleep 50", "get@250"]);
        assert_eq!(f.ms(), 250, "never sleeps past the deadline");
    }

    #[test]
    fn a_move_is_seen_at_the_next_look() {
        let f = Fake::new(&[(150, 101)]);
        assert!(wait_past(&f, &at(100), Some(Duration::from_secs(5))).unwrap());
        assert_eq!(f.log(), ["get@0", "sleep 100", "get@100", "sleep 100", "get@200"]);
    }

    #[test]
    fn only_a_tid_above_the_given_one_counts() {
        let f = Fake::new(&[(0, 7)]);
        assert!(!wait_past(&f, &at(7), Some(Duration::from_millis(100))).unwrap());
        assert!(wait_past(&f, &at(6), Some(Duration::from_millis(100))).unwrap());
        let f = Fake::new(&[(0, 7)]);
        assert!(wait_past(&f, &at(3), Some(Duration::ZERO)).unwrap());
        assert_eq!(f.log(), ["get@0"], "a TID that already moved needs no sleep");
    }

    #[test]
    fn a_zero_timeout_looks_once() {
        let f = Fake::new(&[]);
        assert!(!wait_past(&f, &at(100), Some(Duration::ZERO)).unwrap());
        assert_eq!(f.log(), ["get@0"]);
    }

    #[test]
    fn an_unbounded_wait_sleeps_in_the_kernel_and_survives_spurious_wakeups() {
        let f = Fake::new(&[(5000, 200)]);
        f.spurious.set(2);
        assert!(wait_past(&f, &at(100), None).unwrap());
        assert_eq!(
            f.log(),
            ["get@0", "wai(100)@0", "get@1000", "wai(100)@1000", "get@2000", "wai(100)@2000", "get@5000"]
        );
        // A timeout too large for the clock is no timeout.
        let f = Fake::new(&[(10, 200)]);
        assert!(wait_past(&f, &at(100), Some(Duration::MAX)).unwrap());
        assert_eq!(f.log(), ["get@0", "wai(100)@0", "get@10"]);
    }

    #[test]
    fn an_error_ends_the_wait() {
        let mut f = Fake::new(&[]);
        f.fail_at = Some(Duration::from_millis(200));
        let err = wait_past(&f, &at(100), Some(Duration::from_secs(1))).unwrap_err();
        assert_eq!(err.to_string(), "/pfs: HAMMERIOC_GET_PSEUDOFS failed: Input/output error (os error 5)");
        assert_eq!(f.ms(), 200);
    }
}
