//! Progress and per-pass reports: an indicatif bar on a terminal, plain timestamped lines or JSON off it.
//!
//! One [`Reporter`] serves a command. With a bar, every log line is printed
//! through it (above the bar, never through it). Without one (`--progress
//! never`, `-q`, or stderr not a terminal under `auto`) no control characters
//! are written: one plain line per finished pass, or with `--json` one JSON
//! object per pass on stdout.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressWhen;
use crate::mirror::Progress;

/// A `Write` that hands complete lines to a sink (hammer's messages, which
/// the halves write as text, go above the progress bar line by line).
pub struct LogWriter {
    sink: crate::child::LineSink,
    buf: Vec<u8>,
}

impl LogWriter {
    pub fn new(sink: crate::child::LineSink) -> Self {
        LogWriter { sink, buf: Vec::new() }
    }
}

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        while let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            (self.sink)(String::from_utf8_lossy(&line[..i]).trim_start_matches('\r'));
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            (self.sink)(String::from_utf8_lossy(&self.buf).trim_start_matches('\r'));
        }
    }
}

/// Whether a message of a half, a child or the orchestrator is about
/// something going wrong (kept under `-q`): hammer's routine messages
/// ("Prescan ...", "Mirror-read ... succeeded") are not.
pub fn reports_a_problem(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    ["warning", "error", "lost link", "cannot", "fail", "refus", "interrupted", "retrying"]
        .iter()
        .any(|w| l.contains(w))
}

/// What one finished pass looked like (the `--json` object).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub source: String,
    pub target: String,
    pub tid_beg: String,
    pub tid_end: String,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub result: &'static str,
}

#[derive(Default)]
struct State {
    tid_beg: u64,
    tid_end: u64,
    started: Option<Instant>,
    /// Bytes of earlier passes of this run (for the overall bar).
    done_bytes: u64,
    total: Option<u64>,
}

pub struct Reporter {
    bar: Option<ProgressBar>,
    json: bool,
    quiet: bool,
    source: String,
    target: String,
    state: Mutex<State>,
}

/// stderr as a terminal whatever it is (for `--progress always`): ANSI
/// cursor movements, the width from `COLUMNS` (default 80).
#[derive(Debug)]
struct ForcedStderr;

impl ForcedStderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::Write::write_all(&mut std::io::stderr().lock(), s.as_bytes())
    }

    fn cursor(&self, n: usize, dir: char) -> std::io::Result<()> {
        if n == 0 { Ok(()) } else { self.put(&format!("\x1b[{n}{dir}")) }
    }
}

impl indicatif::TermLike for ForcedStderr {
    fn width(&self) -> u16 {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80)
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

/// Whether bars are drawn.
pub fn bars_enabled(when: ProgressWhen, quiet: bool) -> bool {
    match when {
        ProgressWhen::Always => true,
        ProgressWhen::Never => false,
        ProgressWhen::Auto => !quiet && std::io::stderr().is_terminal(),
    }
}

impl Reporter {
    pub fn new(when: ProgressWhen, quiet: bool, json: bool, source: String, target: String) -> Arc<Reporter> {
        let bar = bars_enabled(when, quiet).then(|| {
            let target = if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr_with_hz(4)
            } else {
                // --progress always off a terminal: indicatif would hide the bar.
                ProgressDrawTarget::term_like_with_hz(Box::new(ForcedStderr), 4)
            };
            let b = ProgressBar::with_draw_target(None, target);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} [{wide_bar}] eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Arc::new(Reporter { bar, json, quiet, source, target, state: Mutex::new(State::default()) })
    }

    /// Prints a log line above the bar (or plainly on stderr).
    pub fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    /// A sink for child stderr and half messages. With `-q` it keeps only
    /// the lines that report a problem (see [`reports_a_problem`]).
    pub fn sink(self: &Arc<Self>) -> crate::child::LineSink {
        let me = Arc::clone(self);
        Arc::new(move |l: &str| {
            if !me.quiet || reports_a_problem(l) {
                me.line(l)
            }
        })
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports a pass (also used for failures: `result` "failed").
    pub fn report(&self, r: &PassReport) {
        if self.json {
            println!("{}", serde_json::to_string(r).expect("serializable"));
        } else if !self.quiet {
            let rate = if r.seconds > 0.0 { r.bytes as f64 / r.seconds / 1e6 } else { 0.0 };
            self.line(&format!(
                "{} {} -> {}: {} {}..{}, {} records, {} bytes in {:.1} s ({rate:.1} MB/s)",
                crate::orchestrate::timestamp(),
                r.source,
                r.target,
                r.result,
                r.tid_beg,
                r.tid_end,
                r.records,
                r.bytes,
                r.seconds
            ));
        }
    }
}

impl Progress for Reporter {
    fn prescan(&self, total: u64, _chunks: usize) {
        self.lock().total = Some(total);
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    fn pass_started(&self, tid_beg: u64, tid_end: u64, estimate: Option<u64>) {
        let mut s = self.lock();
        s.tid_beg = tid_beg;
        s.tid_end = tid_end;
        s.started = Some(Instant::now());
        if let Some(b) = &self.bar {
            b.set_message(format!("{:016x}..{:016x}", tid_beg, tid_end));
            if s.total.is_none() {
                b.set_length(estimate.unwrap_or(0));
            }
            b.set_position(s.done_bytes);
        }
    }

    fn bytes(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            let done = self.lock().done_bytes;
            b.set_position(done + bytes);
        }
    }

    fn pass_done(&self, tid: u64, records: u64, bytes: u64) {
        let (beg, secs) = {
            let mut s = self.lock();
            s.done_bytes += bytes;
            (s.tid_beg, s.started.map_or(0.0, |t| t.elapsed().as_secs_f64()))
        };
        self.report(&PassReport {
            source: self.source.clone(),
            target: self.target.clone(),
            tid_beg: format!("0x{beg:016x}"),
            tid_end: format!("0x{tid:016x}"),
            records,
            bytes,
            seconds: (secs * 1000.0).round() / 1000.0,
            result: "synced",
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn quiet_keeps_problems_and_drops_routine_messages() {
        for routine in [
            "Prescan to break up bulk transfer",
            "Prescan 1 chunks, total 0 MBytes (1234)",
            "Mirror-read /pfs/a succeeded",
            "Mirror-read: Mirror 0000000000000001 to 00000000000000ff",
            "Mirror-write: Completed, updated snapshot to 00000000000000ff",
            "PFS slave /pfs/b does not exist. Auto create new slave PFS!",
            "Cyclefile /var/c updated to 0x00000000000000ff",
        ] {
            assert!(!reports_a_problem(routine), "{routine}");
        }
        for problem in [
            "2026-11-25T10:00:00Z Lost Link: the peer ended the stream",
            "2026-11-25T10:00:00Z retrying in 15 s",
            "cycle-file /var/c: Warning, malformed",
            "Mirror-read /pfs/a: cannot stream: broken pipe",
            "Mirror-read /pfs/a interrupted by timer at 0000000000001000",
            "backup: ssh: connect to host backup port 22: Connection refused",
            "export: warning: cannot chown x",
        ] {
            assert!(reports_a_problem(problem), "{problem}");
        }
    }

    #[test]
    fn log_writer_splits_lines() {
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let g = Arc::clone(&got);
        {
            let mut w = LogWriter::new(Arc::new(move |l| g.lock().unwrap().push(l.into())));
            write!(w, "a\nb").unwrap();
            write!(w, "c\n\rscan\n tail").unwrap();
        }
        assert_eq!(*got.lock().unwrap(), ["a", "bc", "scan", " tail"]);
    }

    #[test]
    fn never_and_quiet_mean_no_bar() {
        assert!(!bars_enabled(ProgressWhen::Never, false));
        assert!(bars_enabled(ProgressWhen::Always, true));
        assert!(!bars_enabled(ProgressWhen::Auto, true));
    }
}
