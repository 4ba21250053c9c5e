//! The human and `--json` voice of a command: an observer of events that draws an indicatif bar, log lines or JSON Lines.
//!
//! One [`Reporter`] serves a command. With a bar, every message is printed
//! through it (above the bar, never through it). Without one (`--progress
//! never`, `-q`, or stderr not a terminal under `auto`) no control
//! characters are written: one plain line per finished pass, or with
//! `--json` one JSON object per pass on stdout. `-q` keeps warnings and
//! errors and drops routine messages, by their level. A closed stdout
//! (`--json ... | head -1`) ends the JSON output quietly; the copy goes on.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Output;
use crate::event::{Event, Observer, Pass};
use crate::log::{Level, timestamp};

/// What one finished pass, or the failure of a run, looked like (the `--json` object).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub time: String,
    pub source: String,
    pub target: String,
    pub tid_beg: Option<String>,
    pub tid_end: Option<String>,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub result: &'static str,
    pub reason: Option<String>,
}

#[derive(Default)]
struct State {
    /// Bytes of earlier passes of this run (for the overall bar).
    done_bytes: u64,
    total: Option<u64>,
}

pub struct Reporter {
    bar: Option<ProgressBar>,
    out: Output,
    source: String,
    target: String,
    /// A line (or JSON object) per pass; false for the remote halves of a
    /// copy, whose orchestrator reports the passes.
    pass_lines: bool,
    state: Mutex<State>,
    /// Our stdout was closed: no more JSON.
    stdout_closed: AtomicBool,
    /// When the current run started.
    started: Mutex<Instant>,
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

fn new_bar(forced: bool) -> ProgressBar {
    let target = if forced {
        // --progress always off a terminal: indicatif would hide the bar.
        ProgressDrawTarget::term_like_with_hz(Box::new(ForcedStderr), 4)
    } else {
        ProgressDrawTarget::stderr_with_hz(4)
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
}

impl Reporter {
    /// A reporter for a transfer from `source` to `target`.
    pub fn new(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(out, source, target, true)
    }

    /// A reporter for a remote half (`-2`): messages only; the orchestrator on
    /// the other end reports the passes.
    pub fn for_remote_half(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(Output { bars: false, json: false, ..out }, source, target, false)
    }

    fn build(out: Output, source: String, target: String, pass_lines: bool) -> Arc<Reporter> {
        let bar = out.bars.then(|| new_bar(out.forced));
        Arc::new(Reporter {
            bar,
            out,
            source,
            target,
            pass_lines,
            state: Mutex::new(State::default()),
            stdout_closed: AtomicBool::new(false),
            started: Mutex::new(Instant::now()),
        })
    }

    /// Prints a line above the bar (or plainly on stderr).
    pub fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    /// Prints a message unless `-q` drops its level; returns whether it was shown.
    pub fn message(&self, level: Level, text: &str) -> bool {
        let shown = !self.out.quiet || level.kept_by_quiet();
        if shown {
            self.line(text);
        }
        shown
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one JSON object on stdout; a closed stdout ends the JSON output.
    pub fn json(&self, value: &impl serde::Serialize) {
        if self.stdout_closed.load(Ordering::Relaxed) {
            return;
        }
        let mut line = serde_json::to_vec(value).expect("serializable");
        line.push(b'\n');
        let mut out = std::io::stdout().lock();
        if out.write_all(&line).and_then(|()| out.flush()).is_err() {
            self.stdout_closed.store(true, Ordering::Relaxed);
        }
    }

    /// Reports a pass, or the failure of a run (`result` "failed", with a `reason`).
    pub fn report(&self, r: &PassReport) {
        if self.out.json {
            self.json(r);
        } else if !self.out.quiet {
            let rate = if r.seconds > 0.0 { r.bytes as f64 / r.seconds / 1e6 } else { 0.0 };
            let none = String::new();
            self.line(&format!(
                "{} {} -> {}: {} {}..{}, {} records, {} bytes in {:.1} s ({rate:.1} MB/s)",
                r.time,
                r.source,
                r.target,
                r.result,
                r.tid_beg.as_ref().unwrap_or(&none),
                r.tid_end.as_ref().unwrap_or(&none),
                r.records,
                r.bytes,
                r.seconds
            ));
        }
    }

    /// The object of a failed run.
    fn failure(&self, reason: &str, refused: bool) -> PassReport {
        PassReport {
            time: timestamp(),
            source: self.source.clone(),
            target: self.target.clone(),
            tid_beg: None,
            tid_end: None,
            records: 0,
            bytes: 0,
            seconds: since(*self.started.lock().unwrap_or_else(|e| e.into_inner())),
            result: if refused { "refused" } else { "failed" },
            reason: Some(reason.to_string()),
        }
    }

    fn pass_done(&self, p: &Pass) {
        self.lock().done_bytes += p.bytes;
        if !self.pass_lines {
            return;
        }
        self.report(&PassReport {
            time: timestamp(),
            source: self.source.clone(),
            target: self.target.clone(),
            tid_beg: Some(crate::log::tid(p.tid_beg)),
            tid_end: Some(crate::log::tid(p.tid_end)),
            records: p.records,
            bytes: p.bytes,
            seconds: (p.seconds * 1000.0).round() / 1000.0,
            result: "synced",
            reason: None,
        });
    }
}

impl Observer for Reporter {
    fn event(&self, e: &Event) {
        match e {
            Event::Message { level, text } => {
                self.message(*level, text);
            }
            Event::Prescan { total, .. } => {
                self.lock().total = Some(*total);
                if let Some(b) = &self.bar {
                    b.set_length(*total);
                }
            }
            Event::PassStarted { tid_beg, tid_end, estimate } => {
                let s = self.lock();
                if let Some(b) = &self.bar {
                    b.set_message(format!("{tid_beg:016x}..{tid_end:016x}"));
                    if s.total.is_none() {
                        b.set_length(estimate.unwrap_or(0));
                    }
                    b.set_position(s.done_bytes);
                }
            }
            Event::Progress { bytes } => {
                if let Some(b) = &self.bar {
                    let done = self.lock().done_bytes;
                    b.set_position(done + bytes);
                }
            }
            Event::PassDone(p) => self.pass_done(p),
            Event::LostLink { error, retry_in } => {
                self.message(Level::Warn, &format!("{} Lost Link: {error}", timestamp()));
                if let Some(d) = retry_in {
                    self.message(Level::Warn, &format!("{} retrying in {} s", timestamp(), d.as_secs()));
                }
            }
            Event::Stalled { secs } => {
                self.message(
                    Level::Warn,
                    &format!("{} stall: no progress for {secs} s (--stall-timeout); ending this run", timestamp()),
                );
            }
            Event::Failed { reason, refused } => {
                // The error itself is printed once, by main; machines get the object.
                if self.out.json {
                    self.json(&self.failure(reason, *refused));
                }
            }
            Event::RunStarted { .. } => *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
            Event::Stopped { .. } => {}
        }
    }
}

/// Seconds since `t`, to the millisecond.
pub fn since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}
