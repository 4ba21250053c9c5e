//! The human and `--json` voice of a command: an observer of events that draws an indicatif bar, log lines or JSON Lines.
//!
//! One [`Reporter`] serves a command. With a bar (stderr a terminal, or
//! `--progress always`), every message is printed above it; the bar itself
//! appears only when the first pass starts, so a question asked before (the
//! slave-creation prompt) is never drawn over, and its rate counts transfer
//! time only. Without a bar no control characters are written: one line
//! per acknowledged pass, and during a long pass a progress line at most
//! once a minute. In a stream, heartbeat passes are silent; an idle stream
//! says so at most once an hour. `-q` keeps warnings and errors only, by
//! their level.
//!
//! `--json` writes JSON Lines on stdout, one object per line, each with
//! `time` (ISO 8601 UTC) and `event`: `pass` (an acknowledged pass),
//! `progress` (during a pass, at most once a second), `failed` (with
//! `result` "failed" or "refused" and a `reason`), `stopped`. TIDs are
//! strings `0x` + 16 hex digits; absent values are `null`. A closed stdout
//! ends the JSON output quietly; the copy goes on.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Output;
use crate::event::{Event, Observer, Pass};
use crate::log::{Level, tid, timestamp};

/// Plain progress lines during a pass, at most this often:
/// `HAMMER_MIRROR_LOG_EVERY` seconds, default 60.
fn plain_every() -> Duration {
    let secs = std::env::var("HAMMER_MIRROR_LOG_EVERY").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(60.0);
    Duration::from_secs_f64(secs.max(0.1))
}
/// JSON progress objects, at most this often.
const JSON_EVERY: Duration = Duration::from_secs(1);
/// "still idle" lines of a stream, at most this often.
const IDLE_EVERY: Duration = Duration::from_secs(3600);

/// An acknowledged pass, or how a run ended: the `--json` object (and the plain line).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub time: String,
    pub event: &'static str,
    pub source: String,
    pub target: String,
    pub tid_beg: Option<String>,
    pub tid_end: Option<String>,
    pub records: u64,
    /// Stream bytes.
    pub bytes: u64,
    /// Bytes on the link: fewer than `bytes` on a compressed ssh link, else the same.
    pub link_bytes: u64,
    /// `link_bytes / bytes` (null for no bytes).
    pub ratio: Option<f64>,
    pub seconds: f64,
    pub result: &'static str,
    pub reason: Option<String>,
}

/// `link / stream`, to three decimals (None for no bytes).
pub fn ratio(link: u64, stream: u64) -> Option<f64> {
    (stream > 0).then(|| (link as f64 / stream as f64 * 1000.0).round() / 1000.0)
}

/// A progress object of `--json`.
#[derive(Debug, Clone, serde::Serialize)]
struct ProgressReport<'a> {
    time: String,
    event: &'static str,
    source: &'a str,
    target: &'a str,
    tid_beg: String,
    tid_end: String,
    bytes: u64,
    link_bytes: u64,
    ratio: Option<f64>,
    estimate: Option<u64>,
    bytes_per_second: u64,
    eta_seconds: Option<u64>,
}

/// The pass under way.
struct Current {
    tid_beg: u64,
    tid_end: u64,
    estimate: Option<u64>,
    started: Instant,
    bytes: u64,
}

struct State {
    /// Bytes of earlier passes of this command (for the overall bar).
    done_bytes: u64,
    /// The prescan's total, when there was one.
    total: Option<u64>,
    chunks: usize,
    chunk: usize,
    pass: Option<Current>,
    last_plain: Option<Instant>,
    last_json: Option<Instant>,
    plain_every: Duration,
    /// The target's TID as far as we know: its last acknowledgement, or
    /// where the first pass started from.
    target_tid: Option<u64>,
    idle_since: Option<Instant>,
    last_idle_line: Option<Instant>,
    run_started: Instant,
}

pub struct Reporter {
    bar: Mutex<Option<ProgressBar>>,
    out: Output,
    source: String,
    target: String,
    /// A line (or JSON object) per pass; false for the remote halves of a
    /// copy, whose orchestrator reports the passes.
    pass_lines: bool,
    /// A stream: heartbeats are silent.
    streaming: bool,
    /// One of `run`'s many pairs: every message says when and which pair.
    tagged: bool,
    state: Mutex<State>,
    /// Our stdout was closed: no more JSON.
    stdout_closed: AtomicBool,
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
            "{spinner} {msg}{bytes}/{total_bytes} {binary_bytes_per_sec} [{wide_bar}] eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.enable_steady_tick(Duration::from_millis(250));
    b
}

/// Seconds since `t`, to the millisecond.
pub fn since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Bytes per second and the time left, from what a pass did so far.
fn rate_and_eta(bytes: u64, estimate: Option<u64>, elapsed: Duration) -> (u64, Option<Duration>) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { (bytes as f64 / secs) as u64 } else { 0 };
    let eta = estimate.filter(|&e| rate > 0 && e >= bytes).map(|e| Duration::from_secs((e - bytes) / rate));
    (rate, eta)
}

impl Reporter {
    /// A reporter for a transfer (or a comparison) from `source` to `target`.
    pub fn new(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(out, source, target, true, false, false)
    }

    /// A reporter for a stream: heartbeats are silent.
    pub fn for_stream(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(out, source, target, true, true, false)
    }

    /// A reporter for one pair of `run`, whose lines mix with the other
    /// pairs': every message is timestamped and names the pair.
    pub fn for_job(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(out, source, target, true, true, true)
    }

    /// A reporter for a remote half (`-2`): messages only; the orchestrator on
    /// the other end reports the passes.
    pub fn for_remote_half(out: Output, source: String, target: String) -> Arc<Reporter> {
        Self::build(Output { bars: false, json: false, ..out }, source, target, false, false, false)
    }

    fn build(
        out: Output,
        source: String,
        target: String,
        pass_lines: bool,
        streaming: bool,
        tagged: bool,
    ) -> Arc<Reporter> {
        Arc::new(Reporter {
            bar: Mutex::new(None),
            out,
            source,
            target,
            pass_lines,
            streaming,
            tagged,
            state: Mutex::new(State {
                done_bytes: 0,
                total: None,
                chunks: 0,
                chunk: 0,
                pass: None,
                last_plain: None,
                last_json: None,
                plain_every: plain_every(),
                target_tid: None,
                idle_since: None,
                last_idle_line: None,
                run_started: Instant::now(),
            }),
            stdout_closed: AtomicBool::new(false),
        })
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints a line above the bar (or plainly on stderr).
    pub fn line(&self, s: &str) {
        match &*self.bar() {
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

    /// Takes the bar away (before the final error, or at the end).
    pub fn finish(&self) {
        if let Some(b) = self.bar().take() {
            b.finish_and_clear();
        }
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

    /// The TID the target is known to be at.
    pub fn target_tid(&self) -> Option<u64> {
        self.lock().target_tid
    }

    /// Reports a pass, or how a run ended.
    pub fn report(&self, r: &PassReport) {
        if self.out.json {
            self.json(r);
        } else if !self.out.quiet {
            let rate = if r.seconds > 0.0 { r.bytes as f64 / r.seconds / 1e6 } else { 0.0 };
            let range = match (&r.tid_beg, &r.tid_end) {
                (Some(b), Some(e)) => format!(" {b}..{e},"),
                (None, Some(e)) => format!(" to {e},"),
                _ => String::new(),
            };
            let link = match r.ratio {
                Some(q) if r.link_bytes != r.bytes => format!(" ({} on the link, ratio {q:.3})", r.link_bytes),
                _ => String::new(),
            };
            self.line(&format!(
                "{} {} -> {}: {}{range} {} records, {} bytes{link} in {:.1} s ({rate:.1} MB/s)",
                r.time, r.source, r.target, r.result, r.records, r.bytes, r.seconds
            ));
        }
    }

    /// The line (or object) of a stream or copy stopped by a signal.
    pub fn stopped(&self, signal: &str) {
        let at = self.target_tid().map_or_else(|| "its last synced TID".to_string(), |t| format!("TID {}", tid(t)));
        if self.out.json {
            self.json(&serde_json::json!({
                "time": timestamp(),
                "event": "stopped",
                "source": self.source,
                "target": self.target,
                "signal": signal,
                "tid_end": self.target_tid().map(tid),
            }));
        }
        let what = if signal == "SIGINT" { "interrupted".to_string() } else { format!("stopped by {signal}") };
        self.message(
            Level::Warn,
            &format!("{} {} -> {}: {what}; the target stays at {at}", timestamp(), self.source, self.target),
        );
    }

    fn failure(&self, reason: &str, refused: bool) -> PassReport {
        PassReport {
            time: timestamp(),
            event: "failed",
            source: self.source.clone(),
            target: self.target.clone(),
            tid_beg: None,
            tid_end: self.target_tid().map(tid),
            records: 0,
            bytes: 0,
            link_bytes: 0,
            ratio: None,
            seconds: since(self.lock().run_started),
            result: if refused { "refused" } else { "failed" },
            reason: Some(reason.to_string()),
        }
    }

    fn pass_started(&self, tid_beg: u64, tid_end: u64, estimate: Option<u64>) {
        let mut s = self.lock();
        if s.target_tid.is_none() {
            s.target_tid = Some(tid_beg.saturating_sub(1));
        }
        s.chunk += 1;
        s.pass = Some(Current { tid_beg, tid_end, estimate, started: Instant::now(), bytes: 0 });
        if !self.out.bars || (self.streaming && tid_beg > tid_end) {
            return;
        }
        let mut bar = self.bar();
        let b = bar.get_or_insert_with(|| new_bar(self.out.forced));
        b.set_length(s.total.unwrap_or(s.done_bytes + estimate.unwrap_or(0)));
        b.set_position(s.done_bytes);
        b.set_message(if s.chunks > 1 {
            format!("chunk {}/{} ", s.chunk.min(s.chunks), s.chunks)
        } else {
            String::new()
        });
    }

    fn progress(&self, bytes: u64, link_bytes: Option<u64>) {
        let link = link_bytes.unwrap_or(bytes);
        let mut s = self.lock();
        let done = s.done_bytes;
        let Some(p) = s.pass.as_mut() else { return };
        p.bytes = bytes;
        if let Some(b) = &*self.bar() {
            b.set_position(done + bytes);
            return;
        }
        let now = Instant::now();
        let elapsed = p.started.elapsed();
        let estimate = p.estimate;
        let (rate, eta) = rate_and_eta(bytes, estimate, elapsed);
        let (tid_beg, tid_end) = (p.tid_beg, p.tid_end);
        if self.out.json {
            if s.last_json.is_none_or(|t| now - t >= JSON_EVERY) && elapsed >= JSON_EVERY {
                s.last_json = Some(now);
                drop(s);
                self.json(&ProgressReport {
                    time: timestamp(),
                    event: "progress",
                    source: &self.source,
                    target: &self.target,
                    tid_beg: tid(tid_beg),
                    tid_end: tid(tid_end),
                    bytes,
                    link_bytes: link,
                    ratio: ratio(link, bytes),
                    estimate,
                    bytes_per_second: rate,
                    eta_seconds: eta.map(|d| d.as_secs()),
                });
            }
        } else if !self.out.quiet && elapsed >= s.plain_every && s.last_plain.is_none_or(|t| now - t >= s.plain_every) {
            s.last_plain = Some(now);
            drop(s);
            let of = estimate.map(|e| format!(" of about {}", HumanBytes(e))).unwrap_or_default();
            let eta = eta.map(|d| format!(", {} left", HumanDuration(d))).unwrap_or_default();
            let on_link = if link != bytes { format!(" ({} on the link)", HumanBytes(link)) } else { String::new() };
            self.line(&format!(
                "{} {} -> {}: {}{of} sent{on_link}, {}/s{eta}",
                timestamp(),
                self.source,
                self.target,
                HumanBytes(bytes),
                HumanBytes(rate)
            ));
        }
    }

    fn pass_done(&self, p: &Pass) {
        let (quiet_idle, idle_line) = {
            let mut s = self.lock();
            s.done_bytes += p.bytes;
            s.pass = None;
            s.target_tid = Some(p.tid_end);
            if p.idle && self.streaming {
                let now = Instant::now();
                let since_idle = *s.idle_since.get_or_insert(now);
                let due = now - since_idle >= IDLE_EVERY && s.last_idle_line.is_none_or(|t| now - t >= IDLE_EVERY);
                if due {
                    s.last_idle_line = Some(now);
                }
                (true, due.then(|| now - since_idle))
            } else {
                s.idle_since = None;
                (false, None)
            }
        };
        if !self.pass_lines {
            return;
        }
        if let Some(d) = idle_line {
            self.message(
                Level::Info,
                &format!(
                    "{} {} -> {}: still idle for {}, last acknowledged TID {}",
                    timestamp(),
                    self.source,
                    self.target,
                    HumanDuration(d),
                    tid(p.tid_end)
                ),
            );
        }
        if quiet_idle {
            return;
        }
        self.report(&PassReport {
            time: timestamp(),
            event: "pass",
            source: self.source.clone(),
            target: self.target.clone(),
            tid_beg: Some(tid(p.tid_beg.min(p.tid_end))),
            tid_end: Some(tid(p.tid_end)),
            records: p.records,
            bytes: p.bytes,
            link_bytes: p.link_bytes.unwrap_or(p.bytes),
            ratio: ratio(p.link_bytes.unwrap_or(p.bytes), p.bytes),
            seconds: (p.seconds * 1000.0).round() / 1000.0,
            result: "synced",
            reason: None,
        });
    }
}

/// True when `text` begins with a [`timestamp`] ("2026-12-03T12:00:00Z "):
/// a line that already says when (and which pair).
fn starts_with_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() > 21
        && b[..20].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[20] == b' '
}

impl Observer for Reporter {
    fn event(&self, e: &Event) {
        match e {
            Event::Message { level, text } if self.tagged && !starts_with_timestamp(text) => {
                self.message(*level, &format!("{} {} -> {}: {text}", timestamp(), self.source, self.target));
            }
            Event::Message { level, text } => {
                self.message(*level, text);
            }
            Event::Prescan { total, chunks } => {
                let mut s = self.lock();
                s.total = Some(s.done_bytes + total);
                s.chunks = *chunks;
                s.chunk = 0;
                if let Some(b) = &*self.bar() {
                    b.set_length(s.done_bytes + total);
                }
            }
            Event::PassStarted { tid_beg, tid_end, estimate } => self.pass_started(*tid_beg, *tid_end, *estimate),
            Event::Progress { bytes, link_bytes } => self.progress(*bytes, *link_bytes),
            Event::PassDone(p) => self.pass_done(p),
            Event::LostLink { error, retry_in, .. } => {
                let pair = format!("{} -> {}", self.source, self.target);
                self.message(Level::Warn, &format!("{} {pair}: Lost Link: {error}", timestamp()));
                if let Some(d) = retry_in {
                    self.message(Level::Warn, &format!("{} {pair}: retrying in {} s", timestamp(), d.as_secs()));
                }
            }
            Event::Stalled { secs } => {
                self.message(
                    Level::Warn,
                    &format!(
                        "{} {} -> {}: stall: no progress for {secs} s (--stall-timeout); ending this run",
                        timestamp(),
                        self.source,
                        self.target
                    ),
                );
            }
            Event::Failed { reason, refused } => {
                // The error itself is printed once, by main; machines get the object.
                if self.out.json {
                    self.json(&self.failure(reason, *refused));
                }
            }
            Event::RunStarted { .. } => self.lock().run_started = Instant::now(),
            Event::Stopped { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_says_when_is_told_from_one_that_does_not() {
        assert!(starts_with_timestamp(&format!("{} [j] a -> b: Lost Link", timestamp())));
        assert!(starts_with_timestamp("2026-12-03T12:00:00Z x"));
        for t in ["Prescan 1 chunks", "2026-12-03 12:00:00 x", "2026-12-03T12:00:00Z", "2026-12-03T12:00:0xZ y"] {
            assert!(!starts_with_timestamp(t), "{t}");
        }
    }

    #[test]
    fn rate_and_eta_from_a_pass_so_far() {
        assert_eq!(rate_and_eta(100, Some(400), Duration::from_secs(10)), (10, Some(Duration::from_secs(30))));
        assert_eq!(rate_and_eta(0, Some(400), Duration::from_secs(10)), (0, None), "no rate yet: no ETA");
        assert_eq!(rate_and_eta(500, Some(400), Duration::from_secs(10)), (50, None), "past the estimate");
        assert_eq!(rate_and_eta(500, None, Duration::ZERO), (0, None));
    }

    fn out(json: bool) -> Output {
        Output { bars: false, forced: false, quiet: false, json, verbose: 0 }
    }

    #[test]
    fn the_target_tid_follows_the_passes() {
        let r = Reporter::for_stream(out(false), "m".into(), "s".into());
        r.event(&Event::PassStarted { tid_beg: 0x11, tid_end: 0x20, estimate: None });
        assert_eq!(r.target_tid(), Some(0x10), "before any ack: where the first pass started from");
        let pass =
            Pass { tid_beg: 0x11, tid_end: 0x20, records: 3, bytes: 10, seconds: 0.1, idle: false, link_bytes: None };
        r.event(&Event::PassDone(pass.clone()));
        assert_eq!(r.target_tid(), Some(0x20));
        r.event(&Event::PassDone(Pass { idle: true, tid_beg: 0x21, ..pass }));
        assert_eq!(r.target_tid(), Some(0x20));
    }
}
