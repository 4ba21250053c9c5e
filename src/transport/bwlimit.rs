//! `-b`: a bandwidth-limited `Write`, smooth over small quanta instead of hammer's one-second bursts.
//!
//! hammer's `writebw()` writes a second's worth at full speed and then
//! sleeps out the rest of the second. This writer sends at most 1/20 s worth
//! of bytes at a time and sleeps whenever it is ahead of `rate × elapsed`,
//! so the average over any window of a second or more stays at the rate.

use std::io::{self, Write};
use std::time::{Duration, Instant};

pub struct BwLimit<W> {
    inner: W,
    rate: u64,
    start: Option<Instant>,
    sent: u64,
}

impl<W: Write> BwLimit<W> {
    /// `rate` in bytes per second (at least 1).
    pub fn new(inner: W, rate: u64) -> Self {
        BwLimit { inner, rate: rate.max(1), start: None, sent: 0 }
    }

    fn quantum(&self) -> usize {
        (self.rate / 20).clamp(1, 1 << 20) as usize
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
    fn writes_in_small_quanta() {
        let mut w = BwLimit::new(Vec::new(), 1 << 30);
        assert_eq!(w.write(&vec![0u8; 10 << 20]).unwrap(), 1 << 20);
        let mut w = BwLimit::new(Vec::new(), 2000);
        assert_eq!(w.write(&[0u8; 500]).unwrap(), 100);
    }
}
