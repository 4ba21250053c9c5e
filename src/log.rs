//! Message levels, line sinks, text-to-lines writers and timestamps: the leaf every reporting module uses.
//!
//! Nothing here knows about progress bars, JSON or the mirror halves; it only
//! moves lines of text with a [`Level`], so that `-q` can keep problems and
//! drop routine messages by level, never by reading the text.

use std::time::{SystemTime, UNIX_EPOCH};

/// How much a message matters. `-q` keeps [`Level::Warn`] and [`Level::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    /// hammer's routine messages ("Mirror-read ... succeeded", "Prescan ...").
    Info,
    /// What only `-v`/`-vv` asks for (hammer's scan lines).
    Debug,
}

impl Level {
    /// Whether `-q` keeps a message of this level.
    pub fn kept_by_quiet(self) -> bool {
        self <= Level::Warn
    }
}

/// A `Write` that hands each complete line to `F` (for text written as a
/// stream, such as hammer's `-v` scan lines). A trailing partial line is
/// handed on when the writer is dropped.
pub struct LineWriter<F: FnMut(&str)> {
    f: F,
    buf: Vec<u8>,
}

impl<F: FnMut(&str)> LineWriter<F> {
    pub fn new(f: F) -> Self {
        LineWriter { f, buf: Vec::new() }
    }
}

impl<F: FnMut(&str)> std::io::Write for LineWriter<F> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&c| c == b'\n') {
            (self.f)(String::from_utf8_lossy(&self.buf[start..start + i]).trim_start_matches('\r'));
            start += i + 1;
        }
        self.buf.drain(..start);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&str)> Drop for LineWriter<F> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            (self.f)(String::from_utf8_lossy(&self.buf).trim_start_matches('\r'));
        }
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An ISO 8601 UTC timestamp, to the second, for log lines.
pub fn timestamp() -> String {
    iso8601(SystemTime::now())
}

/// `t` as ISO 8601 UTC to the second (`2026-12-02T20:18:41Z`).
pub fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A TID as every message and JSON object spells it: `0x` and 16 hex digits.
pub fn tid(t: u64) -> String {
    format!("0x{t:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn timestamps_are_iso_8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(1_796_242_721)), "2026-12-02T20:18:41Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        let t = timestamp();
        assert!(t.len() == 20 && t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn line_writer_splits_lines() {
        let got = Mutex::new(Vec::<String>::new());
        {
            let mut w = LineWriter::new(|l: &str| got.lock().unwrap().push(l.into()));
            write!(w, "a\nb").unwrap();
            write!(w, "c\n\rscan\n tail").unwrap();
        }
        assert_eq!(*got.lock().unwrap(), ["a", "bc", "scan", " tail"]);
    }

    #[test]
    fn quiet_keeps_warnings_and_errors_only() {
        assert!(Level::Error.kept_by_quiet() && Level::Warn.kept_by_quiet());
        assert!(!Level::Info.kept_by_quiet() && !Level::Debug.kept_by_quiet());
        assert_eq!(tid(0x1234), "0x0000000000001234");
    }
}
