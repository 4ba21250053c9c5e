//! `copy` and `stream`: wire a source and a target (local threads or ssh children) and survive lost links.
//!
//! The two sides meet on one `UnixStream::pair()`: a local side runs its
//! half on a thread over its end, a remote side is an ssh child whose stdin
//! and stdout are that end. No fork, no re-exec, no shell. The conversation
//! is always two-way (`-2`), so a pass only counts when the target
//! acknowledged it. `stream` restarts after a lost link, waiting
//! `--retry-delay` (default 15 s + `-i`, as hammer) and doubling up to
//! `--max-retry-delay`; the wait resets after a pass that synced. A refusal
//! (exit status 3 from either side) stops it instead.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::child::{Child, Exit, LineSink};
use crate::endpoint::{Endpoint, Remote};
use crate::exit::{Refused, Status, status_of};
use crate::mirror::Progress;
use crate::mirror::read::{ReadOpts, ReadSummary};
use crate::mirror::write::{Create, WriteOpts, WriteSummary};
use crate::ssh::{self, SshOpts, Verb};
use crate::store::Access;

/// Everything copy and stream need, derived from the command line.
pub struct Config {
    pub ssh: SshOpts,
    pub read: ReadOpts,
    pub write: WriteOpts,
    /// `-y`: create a missing local slave.
    pub yes: bool,
    /// `-b` for a local source.
    pub bandwidth: Option<u64>,
    /// End a run that shows no progress for this long.
    pub stall_timeout: Option<Duration>,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Where hammer's messages and child stderr lines go (above the progress bar).
    pub log: LineSink,
    /// Progress of local halves.
    pub progress: Arc<dyn Progress + Send>,
}

/// The outcome of one run of both sides.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// The TID the target acknowledged last, when a local side saw it.
    pub acked_tid: Option<u64>,
    pub passes: u64,
    pub bytes: u64,
}

/// When the local halves last showed life, and whether a pass is under way.
#[derive(Default)]
struct Activity {
    last_ms: AtomicU64,
    in_pass: AtomicBool,
    epoch: OnceLock<Instant>,
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Forwards progress (or drops it) and records activity for the watchdog.
struct Watch {
    inner: Option<Arc<dyn Progress + Send>>,
    act: Arc<Activity>,
}

impl Progress for Watch {
    fn prescan(&self, total: u64, chunks: usize) {
        self.act.touch();
        if let Some(p) = &self.inner {
            p.prescan(total, chunks);
        }
    }
    fn pass_started(&self, b: u64, e: u64, est: Option<u64>) {
        self.act.touch();
        self.act.in_pass.store(true, Ordering::Relaxed);
        if let Some(p) = &self.inner {
            p.pass_started(b, e, est);
        }
    }
    fn bytes(&self, n: u64) {
        self.act.touch();
        if let Some(p) = &self.inner {
            p.bytes(n);
        }
    }
    fn pass_done(&self, tid: u64, records: u64, bytes: u64) {
        self.act.touch();
        self.act.in_pass.store(false, Ordering::Relaxed);
        if let Some(p) = &self.inner {
            p.pass_done(tid, records, bytes);
        }
    }
}

/// One running side.
#[allow(clippy::large_enum_variant)] // two of them per run
enum Side {
    Source(JoinHandle<anyhow::Result<ReadSummary>>),
    Target(JoinHandle<anyhow::Result<WriteSummary>>),
    Remote(Child, &'static str),
}

/// Socket buffers of 4 MiB make a local socketpair ~3x faster than the default.
fn widen(s: &UnixStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(s, sockopt::SndBuf, &(4 << 20));
    let _ = setsockopt(s, sockopt::RcvBuf, &(4 << 20));
}

fn fd(s: &UnixStream) -> anyhow::Result<OwnedFd> {
    Ok(s.try_clone().context("duplicating a socket")?.into())
}

fn spawn_remote(cfg: &Config, r: &Remote, verb: Verb, end: &UnixStream, role: &'static str) -> anyhow::Result<Side> {
    let argv = ssh::argv(&cfg.ssh, r, verb);
    let child = Child::spawn(&argv, fd(end)?, fd(end)?, &r.host, Arc::clone(&cfg.log))
        .with_context(|| format!("starting the {role} on {}", r.host))?;
    Ok(Side::Remote(child, role))
}

/// Explains a remote side's exit status.
fn remote_result(exit: &Exit, role: &str, host: &str, cfg: &Config) -> anyhow::Result<()> {
    let last = exit.stderr.last().cloned().unwrap_or_default();
    match exit.code() {
        0 => Ok(()),
        3 => Err(anyhow!(Refused(format!("the {role} on {host} refused: {last}")))),
        255 => {
            let text = exit.stderr.join("\n");
            let kind = ssh::classify(&text);
            Err(anyhow!(
                "ssh to {host} failed: {}{}",
                kind.advice(),
                if last.is_empty() { String::new() } else { format!(": {last}") }
            ))
        }
        127 => Err(anyhow!(
            "the {role} on {host}: {} was not found on the remote host (exit 127); set --remote-cmd to its path: {last}",
            cfg.ssh.remote_cmd.to_string_lossy()
        )),
        n => Err(anyhow!("the {role} on {host} failed with exit status {n}: {last}")),
    }
}

/// Runs source and target once, until the stream ends or a side fails.
/// `stop` ends a streaming run cleanly.
pub fn run_once(
    cfg: &Config,
    src: &Endpoint,
    dst: &Endpoint,
    streaming: bool,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    let (a, b) = UnixStream::pair().context("creating the socketpair")?;
    widen(&a);
    widen(&b);
    // Local halves stop when the run stops: at the user's request, or when the other side ended.
    let run_stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();

    // One local half reports progress: the source when it is local, else the
    // target. Both feed the watchdog.
    let act = Arc::new(Activity::default());
    act.touch();
    let watch = |report: bool| -> Arc<dyn Progress + Send> {
        Arc::new(Watch { inner: report.then(|| Arc::clone(&cfg.progress)), act: Arc::clone(&act) })
    };
    let src_local = matches!(src, Endpoint::Local(_));
    let (src_progress, dst_progress) = (watch(src_local), watch(!src_local));
    // Our own reader sends heartbeat passes; a stock one is silent while idle.
    let reader_beats = src_local || !cfg.ssh.stock_remote();
    let local_side = src_local || matches!(dst, Endpoint::Local(_));
    let (a_ctl, b_ctl) = (a.try_clone()?, b.try_clone()?);
    let source = match src {
        Endpoint::Remote(r) => {
            spawn_remote(cfg, r, if streaming { Verb::ReadStream } else { Verb::Read }, &a, "source")?
        }
        Endpoint::Local(path) => {
            let path = path.clone();
            let mut opts = cfg.read.clone();
            opts.two_way = true;
            opts.streaming = streaming;
            let (rd, wr) = (a.try_clone()?, a.try_clone()?);
            let (log, progress, rs, tx, bw) =
                (Arc::clone(&cfg.log), src_progress, Arc::clone(&run_stop), done_tx.clone(), cfg.bandwidth);
            Side::Source(std::thread::spawn(move || {
                let r = (|| {
                    let pfs = crate::pfs::open(&path, Access::Read)
                        .with_context(|| format!("Cannot access PFS {}", path.display()))?;
                    let mut logw = crate::progress::LogWriter::new(log);
                    let out: Box<dyn Write> = match bw {
                        Some(rate) => Box::new(crate::mirror::bwlimit::BwLimit::new(wr, rate)),
                        None => Box::new(wr),
                    };
                    crate::mirror::read::read(pfs.as_ref(), &opts, out, rd, &mut logw, progress.as_ref(), &rs)
                        .map_err(|e| e.context(format!("mirror-read {}", path.display())))
                })();
                let _ = tx.send("source");
                r
            }))
        }
    };
    let target = match dst {
        Endpoint::Remote(r) => spawn_remote(cfg, r, Verb::Write, &b, "target")?,
        Endpoint::Local(path) => {
            let path = path.clone();
            let opts = WriteOpts { two_way: true, ..cfg.write.clone() };
            let (rd, wr) = (b.try_clone()?, b.try_clone()?);
            let (log, progress, rs, tx, yes) =
                (Arc::clone(&cfg.log), dst_progress, Arc::clone(&run_stop), done_tx.clone(), cfg.yes);
            Side::Target(std::thread::spawn(move || {
                let r = {
                    let mut logw = crate::progress::LogWriter::new(log);
                    let create = if yes {
                        Create::Yes
                    } else if crate::prompt::have_terminal() {
                        Create::Ask(&crate::prompt::ask)
                    } else {
                        Create::Refuse
                    };
                    // The socket's 4 MiB buffer reads ahead too; a little more
                    // keeps the source busy through the store's fsyncs.
                    let rd = crate::mirror::readahead::ReadAhead::new(rd, 1 << 20, 4)
                        .context("starting the read-ahead thread")?;
                    crate::mirror::write::write(
                        &path,
                        &opts,
                        create,
                        rd,
                        wr,
                        &mut io::sink(),
                        &mut logw,
                        progress.as_ref(),
                        &rs,
                    )
                    .map_err(|e| e.context(format!("mirror-write {}", path.display())))
                };
                let _ = tx.send("target");
                r
            }))
        }
    };
    // The children and threads hold their own ends now.
    drop(a);
    drop(b);
    drop(done_tx);

    // Wait until one side ends (or the user stops us); then give the other
    // a moment to finish on its own before stopping it.
    let sides = [&source, &target];
    let mut stalled = false;
    let remote_done = || sides.iter().any(|s| matches!(s, Side::Remote(c, _) if c.finished()));
    loop {
        if stop.load(Ordering::Relaxed) {
            run_stop.store(true, Ordering::Relaxed);
            break;
        }
        if let Some(limit) = cfg.stall_timeout.filter(|_| local_side) {
            let watched = reader_beats || act.in_pass.load(Ordering::Relaxed);
            if watched && act.idle() > limit {
                (cfg.log)(&format!(
                    "{} stall: no progress for {} s (--stall-timeout); ending this run",
                    timestamp(),
                    limit.as_secs()
                ));
                stalled = true;
                run_stop.store(true, Ordering::Relaxed);
                // Unblock local halves stuck in read() or write() on the link.
                let _ = a_ctl.shutdown(std::net::Shutdown::Both);
                let _ = b_ctl.shutdown(std::net::Shutdown::Both);
                for s in &sides {
                    if let Side::Remote(c, _) = s {
                        c.kill();
                    }
                }
                break;
            }
        }
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) if remote_done() => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(100)),
            Err(mpsc::RecvTimeoutError::Timeout) if remote_done() => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    if streaming {
        // A stream pass cannot go on without both sides: a local reader
        // waiting for new TIDs would otherwise only notice at its next write.
        run_stop.store(true, Ordering::Relaxed);
    }
    let grace = Instant::now() + Duration::from_secs(if stop.load(Ordering::Relaxed) { 10 } else { 30 });
    let all_done = |s: &[&Side]| {
        s.iter().all(|x| match x {
            Side::Remote(c, _) => c.finished(),
            Side::Source(h) => h.is_finished(),
            Side::Target(h) => h.is_finished(),
        })
    };
    // The control clones keep the socket ends open: once a side is gone,
    // close its end for good so that the other side sees EOF at once.
    let release_finished = || {
        for (side, end) in [(&source, &a_ctl), (&target, &b_ctl)] {
            let done = match side {
                Side::Remote(c, _) => c.finished(),
                Side::Source(h) => h.is_finished(),
                Side::Target(h) => h.is_finished(),
            };
            if done {
                let _ = end.shutdown(std::net::Shutdown::Both);
            }
        }
    };
    release_finished();
    while !all_done(&sides) && Instant::now() < grace {
        release_finished();
        if stop.load(Ordering::Relaxed) {
            run_stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !all_done(&sides) {
        run_stop.store(true, Ordering::Relaxed);
        let _ = a_ctl.shutdown(std::net::Shutdown::Both);
        let _ = b_ctl.shutdown(std::net::Shutdown::Both);
        for s in sides {
            if let Side::Remote(c, _) = s {
                c.kill();
            }
        }
    }

    let mut outcome = RunOutcome::default();
    // (rank, error): a refusal explains everything else, and a remote side's
    // own failure explains the local side's broken pipe.
    let mut errors: Vec<(u8, anyhow::Error)> = Vec::new();
    for side in [source, target] {
        match side {
            Side::Source(h) => match h.join().map_err(|_| anyhow!("the source thread panicked"))? {
                Ok(s) => {
                    outcome.acked_tid = s.acked_tid.or(outcome.acked_tid);
                    outcome.passes = outcome.passes.max(s.passes);
                    outcome.bytes = outcome.bytes.max(s.bytes);
                    if !streaming && s.acked_tid.is_none() && !s.interrupted {
                        errors.push((2, anyhow!("the target did not acknowledge the copy")));
                    }
                }
                Err(e) => errors.push((2, e)),
            },
            Side::Target(h) => match h.join().map_err(|_| anyhow!("the target thread panicked"))? {
                Ok(s) => {
                    outcome.acked_tid = outcome.acked_tid.or(s.synced_tid);
                    outcome.passes = outcome.passes.max(s.passes);
                    outcome.bytes = outcome.bytes.max(s.bytes);
                }
                Err(e) => errors.push((2, e)),
            },
            Side::Remote(c, role) => {
                let host = c.label().to_string();
                let exit = c.wait()?;
                if let Err(e) = remote_result(&exit, role, &host, cfg) {
                    errors.push((1, e));
                }
            }
        }
    }
    errors.sort_by_key(|(rank, e)| {
        if status_of(e) == Status::Refused {
            0
        } else if crate::exit::is_peer_gone(e) {
            3
        } else {
            *rank
        }
    });
    match errors.into_iter().next() {
        Some((_, e)) if stalled => Err(e.context("the link stalled")),
        Some((_, e)) => Err(e),
        None if stalled => Err(anyhow!("the link stalled")),
        None => Ok(outcome),
    }
}

/// `copy`: one run; exit 0 only when the target acknowledged.
pub fn copy(cfg: &Config, src: &Endpoint, dst: &Endpoint, stop: &Arc<AtomicBool>) -> anyhow::Result<RunOutcome> {
    run_once(cfg, src, dst, false, stop)
}

/// `stream`: run, and after a lost link wait and run again, until stopped or refused.
pub fn stream(cfg: &Config, src: &Endpoint, dst: &Endpoint, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut delay = cfg.retry_delay;
    loop {
        let started = Instant::now();
        let r = run_once(cfg, src, dst, true, stop);
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match &r {
            Err(e) if status_of(e) == Status::Refused => return r.map(|_| ()),
            Err(e) => (cfg.log)(&format!("{} Lost Link: {e:#}", timestamp())),
            Ok(_) => (cfg.log)(&format!("{} Lost Link: the peer ended the stream", timestamp())),
        }
        // A run that synced something was a healthy link: start the backoff over.
        if r.as_ref().is_ok_and(|o| o.passes > 0) || started.elapsed() > cfg.max_retry_delay {
            delay = cfg.retry_delay;
        }
        (cfg.log)(&format!("{} retrying in {} s", timestamp(), delay.as_secs()));
        crate::mirror::read::sleep_unless(delay, stop);
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        delay = (delay * 2).min(cfg.max_retry_delay.max(cfg.retry_delay));
    }
}

/// An ISO 8601 UTC timestamp for log lines.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
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

/// Checks endpoints before anything runs.
pub fn check_pair(src: &Endpoint, dst: &Endpoint) -> anyhow::Result<()> {
    if src == dst {
        bail!(crate::exit::Usage(format!("source and target are the same PFS ({src})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601() {
        let t = timestamp();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }
}
