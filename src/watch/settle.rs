//! When `watch` records: one TID per quiet period (`--settle`), at least one per `--max-delay` under constant churn.

use std::time::{Duration, Instant};

/// The changes noted since the last recording, as times.
#[derive(Debug, Clone)]
pub struct Settle {
    settle: Duration,
    max_delay: Duration,
    /// The first and the last change noted since the last recording.
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Settle {
    pub fn new(settle: Duration, max_delay: Duration) -> Settle {
        Settle { settle, max_delay, first: None, last: None }
    }

    /// A change seen at `now`.
    pub fn note(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// True when changes wait to be recorded.
    pub fn pending(&self) -> bool {
        self.first.is_some()
    }

    /// When the pending changes are to be recorded: `settle` after the last
    /// one, but no later than `max_delay` after the first.
    pub fn due(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.settle).min(first + self.max_delay))
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.due().is_some_and(|d| d <= now)
    }

    /// The pending changes were recorded.
    pub fn reset(&mut self) {
        self.first = None;
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn records_a_settle_period_after_the_last_change() {
        let t0 = Instant::now();
        let mut s = Settle::new(200 * MS, 2000 * MS);
        assert_eq!(s.due(), None);
        assert!(!s.pending() && !s.is_due(t0 + 10_000 * MS));
        s.note(t0);
        s.note(t0 + 150 * MS);
        assert_eq!(s.due(), Some(t0 + 350 * MS));
        assert!(!s.is_due(t0 + 349 * MS) && s.is_due(t0 + 350 * MS));
        s.reset();
        assert!(!s.pending());
    }

    #[test]
    fn constant_churn_is_recorded_every_max_delay() {
        let t0 = Instant::now();
        let mut s = Settle::new(200 * MS, 1000 * MS);
        for i in 0..20 {
            s.note(t0 + i * 100 * MS);
        }
        assert_eq!(s.due(), Some(t0 + 1000 * MS));
    }

    #[test]
    fn a_max_delay_below_the_settle_period_wins() {
        let t0 = Instant::now();
        let mut s = Settle::new(500 * MS, 100 * MS);
        s.note(t0);
        assert_eq!(s.due(), Some(t0 + 100 * MS));
    }
}
