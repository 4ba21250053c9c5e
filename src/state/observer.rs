//! The state observer: turns each pair's events into its state file, the process's metrics and the user's hooks.
//!
//! One [`Monitor`] serves a process (a `copy` or `stream` with one or more
//! targets, or `run` with every pair of its configuration); each pair gets
//! a [`PairObserver`], teed with the pair's reporter. Only
//! [`Event::PassDone`] (the target's acknowledgement) moves the
//! acknowledged TID, and the target counts as in sync only when it
//! acknowledged the master's TID of the pass (the last chunk of a prescan).
//! Files are written by the monitor's own thread, so that a pass never
//! waits for them; writing never fails the run: an unwritable state
//! directory or metrics file is said once, as a warning.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::hooks::{HookEvent, Hooks, Runner};
use super::{Current, LastError, LastPass, PairState, Phase, file, now};
use crate::event::{Event, Observer, Pass};
use crate::log::Level;

/// How the process monitors its pairs (from the global options).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The state directory; None: no state files.
    pub dir: Option<PathBuf>,
    /// `--metrics-file`.
    pub metrics_file: Option<PathBuf>,
    pub hooks: Hooks,
}

/// State files during a pass are rewritten at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A pair as its observer keeps it.
struct Track {
    s: PairState,
    /// Prescan chunks whose pass has not started yet.
    chunks_left: usize,
    /// When the pass under way started (the master was at its end TID then).
    pass_started_at: f64,
    last_write: Option<Instant>,
}

/// One pair's cell, shared by its observer and the monitor's writer.
pub struct Cell {
    path: Option<PathBuf>,
    /// The pair's ownership lock (see [`file::own`]), held while the cell lives.
    _owner: Option<nix::fcntl::Flock<std::fs::File>>,
    track: Mutex<Track>,
    /// Hears the writer's warnings (the pair's reporter).
    log: Arc<dyn Observer>,
}

impl Cell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pair's state as of now.
    pub fn snapshot(&self) -> PairState {
        let mut s = self.lock().s.clone();
        s.lag_seconds = s.lag_at(now(), true);
        s
    }
}

/// What the writer thread has to do.
#[derive(Default)]
struct Queue {
    /// Cells whose state file is out of date.
    cells: Vec<Arc<Cell>>,
    metrics: bool,
    /// The writer is writing what it took.
    busy: bool,
    stop: bool,
}

/// What the observers and the writer thread share.
struct Inner {
    opts: Options,
    cells: Mutex<Vec<Arc<Cell>>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    warned_state: AtomicBool,
    warned_metrics: AtomicBool,
}

impl Inner {
    fn cells(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Cell>>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn metrics_text(&self) -> String {
        let states: Vec<(PairState, bool)> = self.cells().iter().map(|c| (c.snapshot(), true)).collect();
        super::metrics::encode(&states)
    }

    /// Asks the writer for `cell`'s file (if any) and, with `metrics`, the metrics file.
    fn dirty(&self, cell: Option<&Arc<Cell>>, metrics: bool) {
        let mut q = self.queue();
        if let Some(c) = cell
            && c.path.is_some()
            && !q.cells.iter().any(|x| Arc::ptr_eq(x, c))
        {
            q.cells.push(Arc::clone(c));
        }
        q.metrics |= metrics && self.opts.metrics_file.is_some();
        self.wake.notify_all();
    }

    /// Waits until everything asked so far is written.
    fn flush(&self) {
        let mut q = self.queue();
        while !q.cells.is_empty() || q.metrics || q.busy {
            q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn write_cell(&self, c: &Cell) {
        let Some(p) = &c.path else { return };
        let s = c.lock().s.clone();
        if let Err(e) = file::write(p, &s)
            && !self.warned_state.swap(true, Ordering::Relaxed)
        {
            c.log.event(&Event::message(
                Level::Warn,
                format!("hammer-mirror: warning: {e:#} (status will not show this pair; see --state-dir)"),
            ));
        }
    }

    fn write_metrics(&self) {
        let Some(path) = &self.opts.metrics_file else { return };
        if let Err(e) = file::write_atomic(path, self.metrics_text().as_bytes())
            && !self.warned_metrics.swap(true, Ordering::Relaxed)
        {
            eprintln!("{} hammer-mirror: warning: --metrics-file: {e:#}", crate::log::timestamp());
        }
    }

    /// The writer thread: files are written here, off the halves' threads,
    /// so that a pass never waits for them.
    fn writer(self: Arc<Self>) {
        loop {
            let (cells, metrics) = {
                let mut q = self.queue();
                while q.cells.is_empty() && !q.metrics && !q.stop {
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                if q.cells.is_empty() && !q.metrics {
                    return;
                }
                q.busy = true;
                (std::mem::take(&mut q.cells), std::mem::take(&mut q.metrics))
            };
            for c in &cells {
                self.write_cell(c);
            }
            // Before flush returns: a cell let go of holds its pair's lock no more.
            drop(cells);
            if metrics {
                self.write_metrics();
            }
            let mut q = self.queue();
            q.busy = false;
            self.wake.notify_all();
        }
    }
}

/// See the module documentation.
pub struct Monitor {
    inner: Arc<Inner>,
    command: &'static str,
    hooks: Option<Runner>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.inner.flush();
        self.inner.queue().stop = true;
        self.inner.wake.notify_all();
    }
}

impl Monitor {
    pub fn new(opts: Options, command: &'static str) -> Arc<Monitor> {
        let mut unwritable = false;
        if let Some(d) = &opts.dir
            && let Err(e) = file::ensure_dir(d)
        {
            eprintln!(
                "{} hammer-mirror: warning: {e:#}; status will not show this process's pairs",
                crate::log::timestamp()
            );
            unwritable = true;
        }
        let hooks = opts.hooks.any().then(|| Runner::start(opts.hooks.clone()));
        let inner = Arc::new(Inner {
            opts,
            cells: Mutex::new(Vec::new()),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            warned_state: AtomicBool::new(unwritable),
            warned_metrics: AtomicBool::new(false),
        });
        let w = Arc::clone(&inner);
        std::thread::Builder::new().name("state".into()).spawn(move || w.writer()).expect("starting the state writer");
        Arc::new(Monitor { inner, command, hooks })
    }

    /// Takes on a pair; `log` hears the monitor's warnings (the pair's reporter).
    pub fn pair(
        self: &Arc<Self>,
        job: Option<&str>,
        source: String,
        target: String,
        log: Arc<dyn Observer>,
    ) -> Arc<PairObserver> {
        let mut path = self.inner.opts.dir.as_ref().map(|d| file::pair_path(d, job, &source, &target));
        let mut owner = None;
        if let Some(p) = &path {
            match file::own(p) {
                Ok(Some(l)) => owner = Some(l),
                Ok(None) => {
                    let by = file::read(p).ok().flatten().map_or(String::new(), |s| format!(" (pid {})", s.pid));
                    log.event(&Event::message(
                        Level::Warn,
                        format!(
                            "hammer-mirror: warning: {source} -> {target}: another process{by} keeps this pair's \
                             state; this one's is not recorded"
                        ),
                    ));
                    path = None;
                }
                // Not lockable (an unwritable directory): the writes will say so.
                Err(_) => {}
            }
        }
        let mut s = PairState::new(job.map(str::to_string), source, target, self.command);
        if let Some(p) = &path
            && let Ok(Some(old)) = file::read(p)
        {
            s.carry_over(old);
        }
        let cell = Arc::new(Cell {
            path,
            _owner: owner,
            track: Mutex::new(Track { s, chunks_left: 0, pass_started_at: now(), last_write: None }),
            log: Arc::clone(&log),
        });
        self.inner.cells().push(Arc::clone(&cell));
        let o = Arc::new(PairObserver { monitor: Arc::clone(self), cell, log });
        o.write(&mut o.cell.lock(), true);
        o
    }

    /// Forgets a pair that `run` no longer runs, and with `delete` its
    /// files (removed from the configuration; a changed pair keeps them).
    pub fn remove(&self, o: &PairObserver, delete: bool) {
        self.inner.flush();
        self.inner.cells().retain(|c| !Arc::ptr_eq(c, &o.cell));
        if delete && let Some(p) = &o.cell.path {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(file::verify_path(p));
            let _ = std::fs::remove_file(file::owner_path(p));
        }
        self.inner.dirty(None, true);
        self.inner.flush();
    }

    /// Every pair's state, as of now.
    pub fn snapshots(&self) -> Vec<PairState> {
        self.inner.cells().iter().map(|c| c.snapshot()).collect()
    }

    /// The metrics of every pair of this process, in Prometheus's text format.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// Waits until the files are written and the hooks fired so far have run.
    pub fn flush(&self) {
        self.inner.flush();
        if let Some(r) = &self.hooks {
            r.flush();
        }
    }
}

/// A pair's observer (see the module documentation).
pub struct PairObserver {
    monitor: Arc<Monitor>,
    cell: Arc<Cell>,
    log: Arc<dyn Observer>,
}

impl PairObserver {
    /// Brings the state up to date and asks the writer for its file, and
    /// with `changed` for the metrics file.
    fn write(&self, t: &mut Track, changed: bool) {
        let now = now();
        t.s.updated = now;
        t.s.lag_seconds = t.s.lag_at(now, true);
        t.last_write = Some(Instant::now());
        self.monitor.inner.dirty(Some(&self.cell), changed);
    }

    fn hook(&self, t: &Track, event: HookEvent) {
        if let Some(r) = &self.monitor.hooks {
            r.fire(event, &t.s, &self.log);
        }
    }

    /// The process ends its work on the pair in `phase` (a copy that
    /// succeeded: done; a signal: stopped), unless an event said more.
    pub fn finish(&self, phase: Phase) {
        let mut t = self.cell.lock();
        if t.s.phase.running() {
            t.s.phase = phase;
            t.s.current = None;
            t.s.retry_at = None;
            self.write(&mut t, true);
        }
    }

    /// Waits until the pair's files are written and its hooks have run (a copy ends after them).
    pub fn flush(&self) {
        self.monitor.flush();
    }

    fn failed(&self, t: &mut Track, message: &str, refused: bool, phase: Phase) {
        let was_failing = t.s.failing();
        let in_phase = t.s.phase.name().to_string();
        *t.s.failures.entry(in_phase.clone()).or_insert(0) += 1;
        t.s.retries_since_success += 1;
        t.s.last_error = Some(LastError { at: now(), phase: in_phase, message: message.to_string(), refused });
        t.s.phase = phase;
        t.s.current = None;
        if !was_failing {
            self.hook(t, HookEvent::Failure);
        }
    }

    fn pass_done(&self, t: &mut Track, p: &Pass) {
        let at = now();
        let was_failing = t.s.failing();
        t.s.acked_tid = Some(p.tid_end);
        t.s.acked_at = Some(at);
        t.s.master_tid = Some(t.s.master_tid.map_or(p.tid_end, |m| m.max(p.tid_end)));
        if !p.idle {
            t.s.passes += 1;
            t.s.pass_bytes += p.bytes;
            t.s.last_pass = Some(LastPass {
                at,
                tid_beg: Some(p.tid_beg.min(p.tid_end)),
                tid_end: Some(p.tid_end),
                records: p.records,
                bytes: p.bytes,
                seconds: (p.seconds * 1000.0).round() / 1000.0,
                bytes_per_second: if p.seconds > 0.0 { (p.bytes as f64 / p.seconds) as u64 } else { 0 },
            });
        }
        if t.chunks_left == 0 && t.s.in_sync() {
            t.s.synced_at = Some(t.pass_started_at);
            t.s.behind_since = None;
            t.s.lag_bytes = Some(0);
        } else {
            t.s.lag_bytes = t.s.lag_bytes.map(|b| b.saturating_sub(p.bytes));
        }
        t.s.retries_since_success = 0;
        t.s.phase = Phase::Idle;
        t.s.current = None;
        t.s.retry_at = None;
        if was_failing {
            self.hook(t, HookEvent::Recover);
        }
        if !p.idle {
            self.hook(t, HookEvent::Pass);
        }
    }
}

impl Observer for PairObserver {
    fn event(&self, e: &Event) {
        let mut t = self.cell.lock();
        let changed = match e {
            Event::RunStarted { .. } => {
                t.s.phase = Phase::Connecting;
                t.s.retry_at = None;
                t.s.current = None;
                t.chunks_left = 0;
                true
            }
            Event::Prescan { total, chunks } => {
                t.chunks_left = *chunks;
                t.s.lag_bytes = Some(*total);
                false
            }
            Event::PassStarted { tid_beg, tid_end, estimate } => {
                let at = now();
                t.pass_started_at = at;
                t.chunks_left = t.chunks_left.saturating_sub(1);
                t.s.master_tid = Some(t.s.master_tid.map_or(*tid_end, |m| m.max(*tid_end)));
                if tid_beg >= tid_end {
                    // A heartbeat, or nothing to do.
                    if t.s.phase == Phase::Connecting {
                        t.s.phase = Phase::Idle;
                        true
                    } else {
                        return;
                    }
                } else {
                    if t.s.acked_tid.is_none() {
                        // Where the target told us it is (its PFSD).
                        t.s.acked_tid = Some(tid_beg - 1);
                    }
                    if t.s.behind_since.is_none() {
                        // The master moved ahead at the latest when it made
                        // this TID, and at the latest now.
                        let made = super::tid_time(*tid_end, at).unwrap_or(at).min(at);
                        t.s.behind_since = Some(t.s.synced_at.map_or(made, |s| made.max(s)));
                    }
                    t.s.phase = Phase::Sending;
                    t.s.current = Some(Current {
                        started: at,
                        tid_beg: Some(*tid_beg),
                        tid_end: Some(*tid_end),
                        bytes: 0,
                        estimate: *estimate,
                    });
                    // The state file says so; the metrics change little
                    // (`up` was 1 already) until the acknowledgement.
                    false
                }
            }
            Event::Progress { bytes, .. } => {
                let Some(c) = t.s.current.as_mut() else { return };
                c.bytes = *bytes;
                if t.last_write.is_some_and(|w| w.elapsed() < PROGRESS_EVERY) {
                    return;
                }
                self.write(&mut t, false);
                return;
            }
            Event::PassDone(p) => {
                self.pass_done(&mut t, p);
                true
            }
            Event::Message { .. } => return,
            Event::LostLink { reason, retry_in, .. } => {
                if let Some(d) = retry_in {
                    t.s.retries += 1;
                    t.s.retry_at = Some(now() + d.as_secs_f64());
                }
                self.failed(&mut t, reason, false, Phase::WaitingForRetry);
                true
            }
            Event::Stalled { .. } => {
                t.s.stalls += 1;
                true
            }
            Event::Stopped { .. } => {
                t.s.phase = Phase::Stopped;
                t.s.current = None;
                t.s.retry_at = None;
                true
            }
            Event::Failed { reason, refused } => {
                let phase = if *refused { Phase::Refused } else { Phase::Failed };
                self.failed(&mut t, reason, *refused, phase);
                true
            }
        };
        self.write(&mut t, changed);
    }
}

/// Hands every event to the pair's reporter, then to its state observer.
pub fn tee(reporter: Arc<dyn Observer>, state: Option<Arc<PairObserver>>) -> Arc<dyn Observer> {
    match state {
        None => reporter,
        Some(s) => Arc::new(crate::event::Fanout(vec![reporter, s])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Ignore;

    fn pass(tid_beg: u64, tid_end: u64, bytes: u64, idle: bool) -> Event {
        Event::PassDone(Pass { tid_beg, tid_end, records: 1, bytes, seconds: 0.5, idle, link_bytes: None })
    }

    fn setup() -> (tempfile::TempDir, Arc<Monitor>, Arc<PairObserver>) {
        let d = tempfile::tempdir().unwrap();
        let m = Monitor::new(Options { dir: Some(d.path().join("state")), ..Options::default() }, "stream");
        let o = m.pair(None, "/m".into(), "/s".into(), Arc::new(Ignore));
        (d, m, o)
    }

    fn on_disk(d: &tempfile::TempDir, o: &PairObserver) -> PairState {
        o.flush();
        file::read(&file::pair_path(&d.path().join("state"), None, "/m", "/s")).unwrap().unwrap()
    }

    #[test]
    fn only_the_last_chunk_of_a_prescan_puts_the_target_in_sync() {
        let (d, _m, o) = setup();
        o.event(&Event::RunStarted { attempt: 1 });
        assert_eq!(on_disk(&d, &o).phase, Phase::Connecting);
        o.event(&Event::Prescan { total: 300, chunks: 2 });
        o.event(&Event::PassStarted { tid_beg: 1, tid_end: 50, estimate: Some(100) });
        let s = on_disk(&d, &o);
        assert_eq!((s.phase, s.acked_tid, s.lag_bytes), (Phase::Sending, Some(0), Some(300)));
        o.event(&pass(1, 50, 100, false));
        let s = on_disk(&d, &o);
        assert_eq!((s.acked_tid, s.lag_bytes, s.synced_at), (Some(50), Some(200), None), "a chunk is not the end");
        o.event(&Event::PassStarted { tid_beg: 51, tid_end: 90, estimate: Some(200) });
        o.event(&pass(51, 90, 200, false));
        let s = on_disk(&d, &o);
        assert_eq!((s.acked_tid, s.master_tid, s.lag_bytes), (Some(90), Some(90), Some(0)));
        assert!(s.synced_at.is_some() && s.behind_since.is_none());
        assert_eq!((s.passes, s.pass_bytes, s.phase), (2, 300, Phase::Idle));
        assert_eq!(s.lag_seconds, Some(0.0));
        // A heartbeat is an acknowledgement, not a pass.
        o.event(&Event::PassStarted { tid_beg: 90, tid_end: 90, estimate: None });
        o.event(&pass(90, 90, 0, true));
        assert_eq!(on_disk(&d, &o).passes, 2);
    }

    #[test]
    fn failures_count_by_phase_and_carry_over_to_the_next_run_of_the_pair() {
        let (d, m, o) = setup();
        o.event(&Event::RunStarted { attempt: 1 });
        o.event(&Event::LostLink {
            error: "e".into(),
            reason: "ssh to h failed".into(),
            retry_in: Some(Duration::from_secs(20)),
        });
        let s = on_disk(&d, &o);
        assert_eq!(s.phase, Phase::WaitingForRetry);
        assert!(s.retry_at.is_some_and(|t| t > now() + 10.0));
        assert_eq!((s.retries, s.retries_since_success, s.failures.get("connecting")), (1, 1, Some(&1)));
        assert_eq!(s.last_error.as_ref().map(|e| e.message.as_str()), Some("ssh to h failed"));
        o.event(&Event::Stalled { secs: 5 });
        o.finish(Phase::Stopped);
        // The process lets go of the pair (and its lock) as it ends.
        m.remove(&o, false);
        drop(o);
        drop(m);
        let m = Monitor::new(Options { dir: Some(d.path().join("state")), ..Options::default() }, "copy");
        let o = m.pair(None, "/m".into(), "/s".into(), Arc::new(Ignore));
        let s = on_disk(&d, &o);
        assert_eq!((s.retries, s.stalls, s.retries_since_success, s.phase), (1, 1, 1, Phase::Connecting));
        assert_eq!(s.command, "copy");
        o.event(&Event::PassStarted { tid_beg: 1, tid_end: 9, estimate: None });
        o.event(&pass(1, 9, 10, false));
        let s = on_disk(&d, &o);
        assert_eq!((s.retries_since_success, s.failing()), (0, false));
        assert!(s.last_error.is_some(), "the last error stays, for the record");
    }
}
