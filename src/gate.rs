//! A counting gate that bounds how many passes move data at once (`run`'s `max_concurrent`).
//!
//! A pass takes a permit before its first record and gives it back when
//! the target has acknowledged it (the permit is dropped). While it waits
//! for one, the waiter's `tick` runs once a second, so that the stall
//! watchdog can tell a queued pass from a dead link.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Debug)]
pub struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
    size: usize,
}

/// A permit; dropping it lets the next pass in.
pub struct Permit<'g>(&'g Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl Gate {
    /// A gate that lets `size` passes through at once (at least one).
    pub fn new(size: usize) -> Gate {
        Gate { free: Mutex::new(size.max(1)), freed: Condvar::new(), size: size.max(1) }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a permit, calling `tick` about once a second meanwhile;
    /// None when `give_up` says so (the run is being stopped).
    pub fn acquire(&self, mut tick: impl FnMut(), give_up: impl Fn() -> bool) -> Option<Permit<'_>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *free > 0 {
                *free -= 1;
                return Some(Permit(self));
            }
            if give_up() {
                return None;
            }
            let (f, timeout) =
                self.freed.wait_timeout(free, Duration::from_millis(250)).unwrap_or_else(|e| e.into_inner());
            free = f;
            if timeout.timed_out() {
                tick();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_more_than_size_hold_a_permit_at_once() {
        let g = Arc::new(Gate::new(2));
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (g, inside, most) = (Arc::clone(&g), Arc::clone(&inside), Arc::clone(&most));
                std::thread::spawn(move || {
                    let _p = g.acquire(|| {}, || false).unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_waiter_ticks_and_can_give_up() {
        let g = Gate::new(1);
        let held = g.acquire(|| {}, || false).unwrap();
        let mut ticks = 0;
        let t = std::time::Instant::now();
        assert!(g.acquire(|| ticks += 1, || t.elapsed() > Duration::from_millis(600)).is_none());
        assert!(ticks >= 1);
        drop(held);
        assert!(g.acquire(|| {}, || true).is_some(), "a free permit is taken even when giving up");
    }
}
