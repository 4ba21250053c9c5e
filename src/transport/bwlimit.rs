//! `-b`: a bandwidth-limited `Write`, smooth over small quanta instead of hammer's one-second bursts.
//!
//! hammer's `writebw()` writes a second's worth at full speed and then
//! sleeps out the rest of the second. This writer sends at most 1/20 s worth
//! of bytes at a time and sleeps whenever it is ahead of `rate × elapsed`,
//! so the average over any window of a second or more stays at the rate.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A bandwidth budget shared by several links (`run`'s total bandwidth):
/// each write reserves its bytes at the end of a common timeline, so the
/// links together stay at the rate and, writing small quanta in turn, share
/// it fairly.
#[derive(Debug)]
pub struct Budget {
    rate: u64,
    next: Mutex<Option<Instant>>,
}

impl Budget {
    pub fn new(rate: u64) -> Arc<Budget> {
        Arc::new(Budget { rate: rate.max(1), next: Mutex::new(None) })
    }

    /// Waits until `n` bytes may go.
    pub fn take(&self, n: u64) {
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // An idle budget saves nothing up: no burst after a pause.
            let start = next.map_or(now, |t| t.max(now));
            *next = Some(start + Duration::from_secs_f64(n as f64 / self.rate as f64));
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

pub struct BwLimit<W> {
    inner: W,
    rate: u64,
    start: Option<Instant>,
    sent: u64,
    budget: Option<Arc<Budget>>,
}

impl<W: Write> BwLimit<W> {
    /// `rate` in bytes per second (at least 1).
    pub fn new(inner: W, rate: u64) -> Self {
        BwLimit { inner, rate: rate.max(1), start: None, sent: 0, budget: None }
    }

    /// Also within a budget shared with other links.
    pub fn shared(inner: W, rate: Option<u64>, budget: Arc<Budget>) -> Self {
        BwLimit { inner, rate: rate.unwrap_or(u64::MAX).max(1), start: None, sent: 0, budget: Some(budget) }
    }

    fn quantum(&self) -> usize {
        let rate = self.budget.as_ref().map_or(self.rate, |b| b.rate.min(self.rate));
        (rate / 20).clamp(1, 1 << 20) as usize
    }

    /// Sleeps until sending `n` more bytes keeps us at or below the rate.
    fn pace(&mut self, n: u64) {
        let start = *self.start.get_or_insert_with(Instant::now);
        let wait = wait_before(self.sent + n, self.rate, start.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// How long to wait so that `total` bytes sent after `elapsed` stay within `rate` bytes/s.
pub fn wait_before(total: u64, rate: u64, elapsed: Duration) -> Duration {
    Duration::from_secs_f64(total as f64 / rate as f64).saturating_sub(elapsed)
}

impl<W: Write> Write for BwLimit<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.quantum());
        self.pace(n as u64);
        if let Some(b) = &self.budget {
            b.take(n as u64);
        }
        let k = self.inner.write(&buf[..n])?;
        self.sent += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_when_ahead_of_the_rate() {
        let s = Duration::from_secs;
        assert_eq!(wait_before(100, 100, s(0)), s(1));
        assert_eq!(wait_before(100, 100, s(1)), s(0));
        assert_eq!(wait_before(100, 100, s(5)), s(0));
        assert_eq!(wait_before(150, 100, Duration::from_millis(500)), s(1));
    }

    #[test]
    fn links_share_a_budget() {
        let b = Budget::new(1 << 20);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                let b = Arc::clone(&b);
                s.spawn(move || {
                    let mut w = BwLimit::shared(io::sink(), None, b);
                    w.write_all(&vec![0u8; 300 << 10]).unwrap();
                });
            }
        });
        // 600 KiB at 1 MiB/s in all: about 0.6 s, not 0.3 (each alone).
        assert!(t.elapsed() >= Duration::from_millis(500), "{:?}", t.elapsed());
    }

    #[test]
    fn writes_in_small_quanta() {
        let mut w = BwLimit::new(Vec::new(), 1 << 30);
        assert_eq!(w.write(&vec![0u8; 10 << 20]).unwrap(), 1 << 20);
        let mut w = BwLimit::new(Vec::new(), 2000);
        assert_eq!(w.write(&[0u8; 500]).unwrap(), 100);
    }
}
