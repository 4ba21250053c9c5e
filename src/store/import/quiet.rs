//! When a file's read may be trusted: its last change must be older than the read by the timestamp granularity and a quiet period.
//!
//! A write is timestamped when it begins, and a file's timestamps have the
//! granularity of the kernel's coarse clock (a second on filesystems that
//! keep no fraction). A read checked only by comparing `lstat` before with
//! `fstat` after misses a write that began before the `lstat` and was still
//! copying data, and (where timestamps are coarse) one made within the same
//! tick: both leave the times as they were. A file whose ctime is at least
//! the granularity plus [`QUIET`](crate::defaults::QUIET_MS) before the read
//! begins has neither: a later write stamps a later time, which the `fstat`
//! after the read sees. Younger files are read once they are that old, the
//! waits of one import bounded by [`QUIET_BUDGET`]; past it they keep their
//! recorded version and are read again later (`watch`: a quiet period later).

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest one import waits, in all, for files to be quiet.
pub const QUIET_BUDGET: Duration = Duration::from_secs(2);

/// How far in the future a ctime may be (clocks disagree) and still be
/// waited for; beyond it the times say nothing and the read is trusted as
/// the before/after comparison allows.
const FUTURE_SLACK: Duration = Duration::from_secs(1);

/// The tick of the clock the kernel stamps files with (1 ms to 100 ms).
fn coarse_tick() -> Duration {
    static TICK: OnceLock<Duration> = OnceLock::new();
    *TICK.get_or_init(|| {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let id = nix::time::ClockId::CLOCK_REALTIME_COARSE;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let id = nix::time::ClockId::CLOCK_REALTIME;
        let res = nix::time::clock_getres(id).map_or(Duration::from_millis(10), Duration::from);
        res.clamp(Duration::from_millis(1), Duration::from_millis(100))
    })
}

/// The granularity of a file's timestamps: a second when its ctime has no
/// fraction (filesystems that keep whole seconds), else the coarse tick.
pub fn granularity(ctime_nsec: i64) -> Duration {
    if ctime_nsec == 0 { Duration::from_secs(1) } else { coarse_tick() }
}

/// How long to wait, as of `now`, before a file last changed at `changed`
/// may be read and trusted (zero: at once).
pub fn wait_before_reading(changed: SystemTime, granularity: Duration, now: SystemTime) -> Duration {
    let margin = granularity + Duration::from_millis(crate::defaults::QUIET_MS);
    match now.duration_since(changed) {
        Ok(age) => margin.saturating_sub(age),
        Err(e) if e.duration() <= FUTURE_SLACK => margin + e.duration(),
        Err(_) => Duration::ZERO,
    }
}

/// [`wait_before_reading`] for the file `m` describes, now.
pub fn wait_for(m: &std::fs::Metadata) -> Duration {
    let changed = UNIX_EPOCH + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().clamp(0, 999_999_999) as u32);
    wait_before_reading(changed, granularity(m.ctime_nsec()), SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_file_is_trusted_once_its_change_is_older_than_the_granularity_and_the_quiet_period() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let g = 4 * MS;
        let quiet = Duration::from_millis(crate::defaults::QUIET_MS);
        assert_eq!(wait_before_reading(t, g, t), g + quiet, "changed just now");
        assert_eq!(wait_before_reading(t, g, t + 10 * MS), g + quiet - 10 * MS);
        assert_eq!(wait_before_reading(t, g, t + g + quiet), Duration::ZERO);
        assert_eq!(wait_before_reading(t, g, t + Duration::from_secs(3600)), Duration::ZERO, "an old file");
    }

    #[test]
    fn a_ctime_in_the_future_is_waited_for_only_when_near() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let g = 4 * MS;
        let quiet = Duration::from_millis(crate::defaults::QUIET_MS);
        assert_eq!(wait_before_reading(t + 20 * MS, g, t), g + quiet + 20 * MS);
        assert_eq!(wait_before_reading(t + Duration::from_secs(7200), g, t), Duration::ZERO, "clocks disagree");
    }

    #[test]
    fn whole_second_timestamps_have_a_second_of_granularity() {
        assert_eq!(granularity(0), Duration::from_secs(1));
        let tick = granularity(123_456_789);
        assert!(tick >= MS && tick <= 100 * MS, "{tick:?}");
    }
}
