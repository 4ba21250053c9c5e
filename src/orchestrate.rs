//! `copy` and `stream`: wire a source and a target (local threads or ssh children) and survive lost links.
//!
//! The two sides meet on one socketpair: a local side runs its half on a
//! thread over its end (through the transport stack), a remote side is an
//! ssh child whose stdin and stdout are that end. No fork, no re-exec, no
//! shell. The conversation is always two-way (`-2`), so a pass only counts
//! when the target acknowledged it. `stream` restarts after a lost link,
//! waiting `--retry-delay` (default 15 s + `-i`, as hammer) and doubling up
//! to `--max-retry-delay`; the wait resets after a pass that synced. A
//! refusal (exit status 3 from either side) stops it instead.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::child::{Child, Exit, OnLine};
use crate::config::{Config, CreatePolicy};
use crate::endpoint::{Endpoint, Remote};
use crate::error::{MirrorError, RemoteFailure, is_refusal, reason, refused, usage};
use crate::event::{Event, Observer};
use crate::log::Level;
use crate::mirror::read::ReadSummary;
use crate::mirror::write::{Create, NO_TERMINAL_TO_ASK, WriteSummary};
use crate::side::{Ended, Side};
use crate::ssh::{self, Verb};
use crate::store::Access;
use crate::transport::frame::{Compress, LinkStats};
use crate::transport::{self, Role, SOCKET_READ_AHEAD};

/// The outcome of one run of both sides.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// The TID the target acknowledged last, when a local side saw it.
    pub acked_tid: Option<u64>,
    pub passes: u64,
    pub bytes: u64,
}

/// What a side returns: the summary of a local half; a remote one says nothing.
enum Summary {
    Read(ReadSummary),
    Write(WriteSummary),
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

/// A local half's observer: records activity for the watchdog, forwards
/// messages, and forwards progress only for the half that reports it.
struct Watch {
    inner: Arc<dyn Observer>,
    reports: bool,
    act: Arc<Activity>,
    /// The reporting half's framed link, and which way its stream goes
    /// (true: it sends it): link bytes for its progress and passes.
    link: Option<(Arc<LinkStats>, bool)>,
    /// Link bytes counted when the last pass ended.
    link_base: AtomicU64,
}

impl Watch {
    /// Link bytes of the stream's direction so far.
    fn link_now(&self) -> Option<u64> {
        self.link.as_ref().map(|(s, sends)| if *sends { &s.link_out } else { &s.link_in }.load(Ordering::Relaxed))
    }
}

impl Observer for Watch {
    fn event(&self, e: &Event) {
        self.act.touch();
        match e {
            Event::PassStarted { .. } => self.act.in_pass.store(true, Ordering::Relaxed),
            Event::PassDone(_) => self.act.in_pass.store(false, Ordering::Relaxed),
            _ => {}
        }
        if !(self.reports || matches!(e, Event::Message { .. })) {
            return;
        }
        // A framed link: the reporter hears the link bytes too.
        match (e, self.link_now()) {
            (Event::Progress { bytes, .. }, Some(now)) => {
                let link = now.saturating_sub(self.link_base.load(Ordering::Relaxed));
                self.inner.event(&Event::Progress { bytes: *bytes, link_bytes: Some(link) });
            }
            (Event::PassDone(p), Some(now)) => {
                let link = now.saturating_sub(self.link_base.swap(now, Ordering::Relaxed));
                self.inner.event(&Event::PassDone(crate::event::Pass { link_bytes: Some(link), ..p.clone() }));
            }
            _ => self.inner.event(e),
        }
    }
}

/// The level of a remote peer's stderr line. Our own remote is given `-q`
/// when we have it and then only says what matters, so every line of it is
/// shown; stock hammer has no such option, so its routine messages (fixed
/// texts of cmd_mirror.c) are told by their start.
fn remote_line_level(stock: bool, line: &str) -> Level {
    const ROUTINE: [&str; 6] = [
        "Mirror-read",
        "Prescan",
        "Mirror-write: Completed",
        "Mirror-write: received termination request",
        "Cyclefile",
        "PFS slave",
    ];
    let routine = ROUTINE.iter().any(|p| line.starts_with(p)) && !line.contains("interrupted");
    if stock && routine { Level::Info } else { Level::Warn }
}

/// Our remote half's words for a link that this side ended (its
/// `MirrorError::PeerGone` messages: `mirror::send_error`, `recv_error`,
/// the read half's missing acknowledgement, the write half's early ends).
fn is_link_symptom(line: &str) -> bool {
    const GONE: [&str; 4] = ["closed the link", "hung up before", "ended the stream", "sent nothing"];
    line.starts_with("hammer-mirror: ")
        && [": the target ", ": the source "]
            .iter()
            .any(|peer| line.split(peer).skip(1).any(|rest| GONE.iter().any(|g| rest.starts_with(g))))
}

fn fd(s: &UnixStream) -> anyhow::Result<OwnedFd> {
    Ok(s.try_clone().context("duplicating a socket")?.into())
}

fn spawn_remote(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    r: &Remote,
    verb: Verb,
    end: &UnixStream,
    role: &'static str,
    done: &mpsc::Sender<&'static str>,
) -> anyhow::Result<Side<Summary>> {
    // The remote half is told to frame its link (`--link-compress`) by
    // `ssh::argv`, from `cfg.ssh.framing()`; our local half does the same.
    if let Some(b) = &cfg.ssh.before_connect {
        b.before_connect(&cfg.ssh, r);
    }
    let argv = ssh::argv(&cfg.ssh, r, verb);
    let (obs, host, stock, quiet) = (Arc::clone(obs), r.host.clone(), cfg.ssh.stock_remote(), cfg.output.quiet);
    // A missing remote slave is asked about here, on our terminal: its
    // "no terminal to ask" is not news then.
    let will_ask = role == "target" && cfg.create == CreatePolicy::Ask;
    let on_line: OnLine = Arc::new(move |line| {
        if will_ask && line.contains(NO_TERMINAL_TO_ASK) {
            return false;
        }
        // Our own remote saying that we closed the link is a symptom of what
        // ended it here (a local ENOSPC, a stop): not news before that cause.
        // Kept unshown, so that the run's error quotes it when it is the story.
        if !stock && is_link_symptom(line) {
            return false;
        }
        let level = remote_line_level(stock, line);
        obs.event(&Event::message(level, format!("{host}: {line}")));
        !quiet || level.kept_by_quiet()
    });
    // Its stderr closing (it exited) wakes the supervisor, which need not look often.
    let done = done.clone();
    let child = Child::spawn_then(&argv, fd(end)?, fd(end)?, &r.host, on_line, move || {
        let _ = done.send(role);
    })
    .with_context(|| format!("starting the {role} on {}", r.host))?;
    Ok(Side::remote(role, child))
}

/// Explains a remote side's exit status, with the last line it wrote (see
/// [`crate::error::RemoteFailure`]: repeated only when the user has not seen it).
fn remote_result(exit: &Exit, role: &str, host: &str, cfg: &Config) -> anyhow::Result<()> {
    let last = exit.last_line();
    let fail = |summary: String, refusal: bool| -> anyhow::Error {
        MirrorError::Remote(RemoteFailure {
            summary,
            detail: last.map(|l| l.text.clone()),
            shown: last.is_some_and(|l| l.shown),
            refusal,
        })
        .into()
    };
    if exit.code() != 0
        && let Some(c) = cfg.ssh.framing()
        && exit.stderr.iter().any(|l| l.text.contains("--link-compress"))
    {
        return Err(fail(
            format!(
                "the {role} on {host} does not know --link-compress: its {} is older than this hammer-mirror {} \
                 (which asked for --compress {}); upgrade the remote one, or give --compress none here",
                cfg.ssh.remote_cmd.to_string_lossy(),
                env!("CARGO_PKG_VERSION"),
                cfg_compress_word(c),
            ),
            true,
        ));
    }
    match exit.code() {
        0 => Ok(()),
        3 if role == "target" && last.is_some_and(|l| l.text.contains(NO_TERMINAL_TO_ASK)) => {
            Err(MirrorError::MissingSlave(format!("the target on {host}: {NO_TERMINAL_TO_ASK}; pass -y to create it"))
                .into())
        }
        3 => Err(fail(format!("the {role} on {host} refused"), true)),
        255 => {
            let text: Vec<&str> = exit.stderr.iter().map(|l| l.text.as_str()).collect();
            Err(fail(format!("ssh to {host} failed: {}", ssh::classify(&text.join("\n")).advice()), false))
        }
        127 => Err(fail(
            format!(
                "the {role} on {host}: {} was not found on the remote host (exit status 127); \
                 give its full path with --remote-cmd (a program installed under $HOME/.local/bin is not on \
                 the PATH of commands run by ssh)",
                cfg.ssh.remote_cmd.to_string_lossy()
            ),
            true,
        )),
        n => Err(fail(format!("the {role} on {host} failed with exit status {n}"), false)),
    }
}

fn cfg_compress_word(c: Compress) -> String {
    c.word()
}

/// What wraps a local half's end of the run's socketpair: framed when the
/// other side is our own remote half, told so; `stats` count its bytes.
fn local_link(cfg: &Config, peer: &Endpoint, stats: &Arc<LinkStats>) -> transport::LinkOpts {
    let frame = match peer {
        Endpoint::Remote(_) => cfg.ssh.framing(),
        Endpoint::Local(_) => None,
    };
    transport::LinkOpts { stats: frame.map(|_| Arc::clone(stats)), frame, ..cfg.link.clone() }
}

fn create_policy(p: CreatePolicy) -> Create<'static> {
    match p {
        CreatePolicy::Yes => Create::Yes,
        CreatePolicy::Ask => Create::Ask(&crate::prompt::ask),
        CreatePolicy::Refuse => Create::Refuse,
    }
}

/// Starts the source side on socket end `end`.
#[allow(clippy::too_many_arguments)]
fn start_source(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    src: &Endpoint,
    end: &UnixStream,
    streaming: bool,
    watch: Arc<dyn Observer>,
    run_stop: &Arc<AtomicBool>,
    done: &mpsc::Sender<&'static str>,
    link: transport::LinkOpts,
) -> anyhow::Result<Side<Summary>> {
    let path = match src {
        Endpoint::Remote(r) => {
            let verb = if streaming { Verb::ReadStream } else { Verb::Read };
            return spawn_remote(cfg, obs, r, verb, end, "source", done);
        }
        Endpoint::Local(path) => path.clone(),
    };
    let mut opts = cfg.read.clone();
    opts.two_way = true;
    opts.streaming = streaming;
    let (rx, tx) = (end.try_clone()?, end.try_clone()?);
    let (link_opts, stop) = (link, Arc::clone(run_stop));
    Side::local("source", done.clone(), move || {
        let _waits = crate::store::waits_end_with(Arc::clone(&stop));
        let pfs = crate::pfs::open(&path, Access::Read)
            .map_err(|e| crate::mirror::in_half(e.into(), "mirror-read", &path))?;
        let link = transport::stack(rx, tx, Role::Source, &link_opts)?;
        crate::mirror::read::read_reopening(pfs, &opts, link.tx, link.rx, watch.as_ref(), &stop).map(Summary::Read)
    })
}

/// Starts the target side on socket end `end`.
#[allow(clippy::too_many_arguments)]
fn start_target(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    dst: &Endpoint,
    end: &UnixStream,
    watch: Arc<dyn Observer>,
    run_stop: &Arc<AtomicBool>,
    done: &mpsc::Sender<&'static str>,
    link: transport::LinkOpts,
) -> anyhow::Result<Side<Summary>> {
    let path = match dst {
        Endpoint::Remote(r) => return spawn_remote(cfg, obs, r, Verb::Write, end, "target", done),
        Endpoint::Local(path) => path.clone(),
    };
    let opts = crate::mirror::write::WriteOpts { two_way: true, ..cfg.write.clone() };
    let (rx, tx) = (end.try_clone()?, end.try_clone()?);
    let link_opts = transport::LinkOpts { read_ahead: Some(SOCKET_READ_AHEAD), ..link };
    let (create, stop) = (cfg.create, Arc::clone(run_stop));
    Side::local("target", done.clone(), move || {
        let _waits = crate::store::waits_end_with(Arc::clone(&stop));
        let link = transport::stack(rx, tx, Role::Target, &link_opts)?;
        let opener = crate::pfs::PathOpener(path);
        crate::mirror::write::write(
            &opener,
            &opts,
            create_policy(create),
            link.rx,
            link.tx,
            &mut std::io::sink(),
            watch.as_ref(),
            &stop,
        )
        .map(Summary::Write)
    })
}

/// The socket ends of a run, kept to cut the link: shutting one down
/// unblocks the local half stuck in read() or write() on it, and tells the
/// other side that this one is gone.
struct Ends {
    source: UnixStream,
    target: UnixStream,
}

impl Ends {
    fn cut(&self) {
        let _ = self.source.shutdown(std::net::Shutdown::Both);
        let _ = self.target.shutdown(std::net::Shutdown::Both);
    }
}

/// A side of the run: running, or ended (joined as soon as it finished, so
/// that its result decides how long the other side may take).
enum Slot {
    Running(Side<Summary>),
    Ended(&'static str, Ended<Summary>),
    Taken,
}

impl Slot {
    /// Joins the side if it has finished.
    fn poll(&mut self) -> anyhow::Result<()> {
        if matches!(self, Slot::Running(s) if s.finished())
            && let Slot::Running(s) = std::mem::replace(self, Slot::Taken)
        {
            let role = s.role;
            *self = Slot::Ended(role, s.join()?);
        }
        Ok(())
    }

    fn ended(&self) -> bool {
        !matches!(self, Slot::Running(_))
    }

    /// Ended with its own failure (not merely because its peer went away).
    fn failed(&self) -> bool {
        match self {
            Slot::Ended(_, Ended::Local(Err(e))) => crate::error::rank(e) <= crate::error::Rank::Cause,
            Slot::Ended(_, Ended::Remote { exit, .. }) => exit.code() != 0,
            _ => false,
        }
    }

    fn kill(&self) {
        if let Slot::Running(s) = self {
            s.kill();
        }
    }

    fn is_remote_done(&self) -> bool {
        matches!(self, Slot::Ended(_, Ended::Remote { .. }))
    }
}

/// How long the supervisor of a run with a local half waits between looks.
const SUPERVISE_SLICE: Duration = Duration::from_secs(5);

/// Waits until one side ends, the user stops us, or the watchdog fires.
/// Returns whether the link stalled.
fn supervise(
    obs: &Arc<dyn Observer>,
    slots: &mut [Slot; 2],
    watchdog: Option<(Duration, Watched<'_>)>,
    stop: &AtomicBool,
    done_rx: &mpsc::Receiver<&'static str>,
) -> anyhow::Result<bool> {
    // A local half tells us when it ends (and ends soon after a stop, or
    // when its remote peer's end of the link closes), so with one the
    // looks in between can be rare: an idle stream wakes little. A remote
    // side's exit is seen only by looking.
    let local = slots.iter().any(|s| matches!(s, Slot::Running(side) if !side.is_remote()));
    let slice = match &watchdog {
        _ if !local => Duration::from_secs(1),
        Some((limit, _)) => (*limit / 4).clamp(Duration::from_millis(100), SUPERVISE_SLICE),
        None => SUPERVISE_SLICE,
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if let Some((limit, w)) = &watchdog
            && w.stalled(*limit)
        {
            obs.event(&Event::Stalled { secs: limit.as_secs() });
            return Ok(true);
        }
        let woke = done_rx.recv_timeout(slice);
        for s in slots.iter_mut() {
            s.poll()?;
        }
        if woke.is_ok() || slots.iter().any(Slot::is_remote_done) {
            return Ok(false);
        }
        if matches!(woke, Err(mpsc::RecvTimeoutError::Disconnected)) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Gives the other side a moment to finish on its own, then stops it: 30 s
/// after a side ended well (10 once the user asked us to stop), 2 s after
/// one failed (its error is the story; the other only has to notice), never
/// longer than the stall timeout.
fn wind_down(
    cfg: &Config,
    slots: &mut [Slot; 2],
    ends: &Ends,
    run_stop: &AtomicBool,
    stop: &AtomicBool,
    stalled: bool,
) -> anyhow::Result<()> {
    let kill = |slots: &[Slot; 2]| {
        run_stop.store(true, Ordering::Relaxed);
        ends.cut();
        slots.iter().for_each(Slot::kill);
    };
    if stalled {
        kill(slots);
    }
    let started = Instant::now();
    let grace = |slots: &[Slot; 2]| {
        let g = if slots.iter().any(Slot::failed) {
            Duration::from_secs(2)
        } else if stop.load(Ordering::Relaxed) {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(30)
        };
        cfg.stall_timeout.map_or(g, |l| g.min(l))
    };
    loop {
        for s in slots.iter_mut() {
            s.poll()?;
        }
        if slots.iter().all(Slot::ended) {
            return Ok(());
        }
        // The ended side's end of the link is closed for good, so that its
        // peer sees EOF at once.
        for (slot, end) in slots.iter().zip([&ends.source, &ends.target]) {
            if slot.ended() {
                let _ = end.shutdown(std::net::Shutdown::Both);
            }
        }
        if stop.load(Ordering::Relaxed) {
            run_stop.store(true, Ordering::Relaxed);
        }
        if started.elapsed() >= grace(slots) {
            kill(slots);
            // Only the running ones: a side that already ended keeps its result.
            for s in slots.iter_mut().filter(|s| !s.ended()) {
                if let Slot::Running(side) = std::mem::replace(s, Slot::Taken) {
                    let role = side.role;
                    *s = Slot::Ended(role, side.join()?);
                }
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Picks the error that explains the run: a refusal first, then a side's
/// own failure (a local one before a remote one), then a stall, then a
/// vanished peer. A copy succeeds only when a local side saw the target
/// acknowledge a TID (or, remote to remote, when both ends say so).
fn conclude(cfg: &Config, slots: [Slot; 2], streaming: bool, local: bool, stalled: bool) -> anyhow::Result<RunOutcome> {
    let mut outcome = RunOutcome::default();
    let mut errors: Vec<(crate::error::Rank, bool, anyhow::Error)> = Vec::new();
    let mut push = |e: anyhow::Error, remote: bool| errors.push((crate::error::rank(&e), remote, e));
    let mut interrupted = false;
    for slot in slots {
        let Slot::Ended(role, ended) = slot else { unreachable!("every side was joined") };
        match ended {
            Ended::Local(Ok(Summary::Read(s))) => {
                outcome.acked_tid = s.acked_tid.or(outcome.acked_tid);
                outcome.passes = outcome.passes.max(s.passes);
                outcome.bytes = outcome.bytes.max(s.bytes);
                interrupted |= s.interrupted;
            }
            Ended::Local(Ok(Summary::Write(s))) => {
                outcome.acked_tid = outcome.acked_tid.or(s.synced_tid);
                outcome.passes = outcome.passes.max(s.passes);
                outcome.bytes = outcome.bytes.max(s.bytes);
                interrupted |= s.terminated && s.passes == 0;
            }
            Ended::Local(Err(e)) => push(e, false),
            // The watchdog had it killed: the stall is the story, not our signal.
            Ended::Remote { exit, .. }
                if stalled && std::os::unix::process::ExitStatusExt::signal(&exit.status).is_some() => {}
            Ended::Remote { host, exit } => {
                if let Err(e) = remote_result(&exit, role, &host, cfg) {
                    push(e, true);
                }
            }
        }
    }
    if stalled {
        let secs = cfg.stall_timeout.map_or(0, |d| d.as_secs());
        push(MirrorError::Stalled { secs }.into(), false);
    }
    if !streaming && local && outcome.acked_tid.is_none() && !interrupted {
        push(MirrorError::NotAcknowledged("the target did not acknowledge the copy".into()).into(), false);
    }
    errors.sort_by_key(|(rank, remote, _)| (*rank, *remote));
    match errors.into_iter().next() {
        Some((_, _, e)) => Err(e),
        None => Ok(outcome),
    }
}

/// Runs source and target once, until the stream ends or a side fails.
/// `stop` ends a streaming run cleanly.
pub fn run_once(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    src: &Endpoint,
    dst: &Endpoint,
    streaming: bool,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    let (a, b) = transport::socketpair().context("creating the socketpair")?;
    // Local halves stop when the run stops: at the user's request, or when the other side ended.
    let run_stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();
    // One local half reports progress: the source when it is local, else
    // the target. Both feed the watchdog.
    let act = Arc::new(Activity::default());
    act.touch();
    let stats = LinkStats::new();
    let (src_link, dst_link) = (local_link(cfg, dst, &stats), local_link(cfg, src, &stats));
    let src_local = matches!(src, Endpoint::Local(_));
    let watch = |reports: bool, link: &transport::LinkOpts, sends: bool| -> Arc<dyn Observer> {
        Arc::new(Watch {
            inner: Arc::clone(obs),
            reports,
            act: Arc::clone(&act),
            link: link.stats.clone().map(|s| (s, sends)),
            link_base: AtomicU64::new(0),
        })
    };
    let (ws, wt) = (watch(src_local, &src_link, true), watch(!src_local, &dst_link, false));
    let framed = src_link.frame.is_some() || dst_link.frame.is_some();
    let source = start_source(cfg, obs, src, &a, streaming, ws, &run_stop, &done_tx, src_link)?;
    let target = start_target(cfg, obs, dst, &b, wt, &run_stop, &done_tx, dst_link)?;
    // The children and threads hold their own ends now; ours only cut the link.
    let ends = Ends { source: a, target: b };
    drop(done_tx);
    let mut slots = [Slot::Running(source), Slot::Running(target)];

    // Our own reader sends heartbeat passes; a stock one is silent while idle,
    // so only a pass under way can stall then. Remote-to-remote: nothing to watch.
    let reader_beats = src_local || !cfg.ssh.stock_remote();
    let local = src_local || matches!(dst, Endpoint::Local(_));
    let link = Some(stats).filter(|_| framed);
    let watchdog = cfg
        .stall_timeout
        .filter(|_| local)
        .map(|l| (l, Watched { act: &act, reader_beats, link, seen: AtomicU64::new(0) }));
    let stalled = supervise(obs, &mut slots, watchdog, stop, &done_rx)?;
    if streaming || stop.load(Ordering::Relaxed) {
        // A stream pass cannot go on without both sides: a local reader
        // waiting for new TIDs would otherwise only notice at its next write.
        run_stop.store(true, Ordering::Relaxed);
    }
    wind_down(cfg, &mut slots, &ends, &run_stop, stop, stalled)?;
    conclude(cfg, slots, streaming, local, stalled)
}

/// Whether the watchdog looks at the link: always when our reader sends
/// heartbeats, else only during a pass.
struct Watched<'a> {
    act: &'a Activity,
    reader_beats: bool,
    /// A framed link: bytes moving on it are life too (the half may be
    /// waiting for its queued frames to reach a slow link).
    link: Option<Arc<LinkStats>>,
    seen: AtomicU64,
}

impl Watched<'_> {
    fn stalled(&self, limit: Duration) -> bool {
        if let Some(s) = &self.link {
            let n = s.link_out.load(Ordering::Relaxed) + s.link_in.load(Ordering::Relaxed);
            if self.seen.swap(n, Ordering::Relaxed) != n {
                self.act.touch();
            }
        }
        (self.reader_beats || self.act.in_pass.load(Ordering::Relaxed)) && self.act.idle() > limit
    }
}

/// `copy`: one run; exit 0 only when the target acknowledged.
pub fn copy(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    src: &Endpoint,
    dst: &Endpoint,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    obs.event(&Event::RunStarted { attempt: 1 });
    let mut r = run_once(cfg, obs, src, dst, false, stop);
    if let Some(yes) = ask_for_remote_slave(cfg, dst, &r)? {
        obs.event(&Event::RunStarted { attempt: 2 });
        r = run_once(&yes, obs, src, dst, false, stop);
    }
    if let Err(e) = &r {
        obs.event(&Event::Failed { reason: reason(e), refused: is_refusal(e) });
    }
    r
}

/// When a remote target said its slave is missing and there is a terminal
/// here: asks, and returns the configuration that creates it (`-y` to the
/// remote side). A "no" is a refusal.
fn ask_for_remote_slave(
    cfg: &Config,
    dst: &Endpoint,
    r: &anyhow::Result<RunOutcome>,
) -> anyhow::Result<Option<Config>> {
    let missing = matches!(r, Err(e) if matches!(crate::error::kind(e), Some(MirrorError::MissingSlave(_))));
    if !missing || cfg.create != CreatePolicy::Ask {
        return Ok(None);
    }
    if !crate::prompt::ask(&format!("PFS slave {dst} does not exist.\nDo you want to create a new slave PFS?"))? {
        return Err(refused("Aborting operation: the slave PFS was not created"));
    }
    let mut yes = cfg.clone();
    yes.ssh.yes = true;
    Ok(Some(yes))
}

/// `stream`: run, and after a lost link wait and run again, until stopped or refused.
pub fn stream(
    cfg: &Config,
    obs: &Arc<dyn Observer>,
    src: &Endpoint,
    dst: &Endpoint,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut delay = cfg.retry.first;
    let mut cfg = std::borrow::Cow::Borrowed(cfg);
    let mut last_reopen: Option<Instant> = None;
    for attempt in 1.. {
        obs.event(&Event::RunStarted { attempt });
        let started = Instant::now();
        let mut r = run_once(&cfg, obs, src, dst, true, stop);
        if let Some(yes) = ask_for_remote_slave(&cfg, dst, &r)? {
            cfg = std::borrow::Cow::Owned(yes);
            r = run_once(&cfg, obs, src, dst, true, stop);
        }
        if stop.load(Ordering::Relaxed) {
            obs.event(&Event::Stopped { signal: "a signal" });
            return Ok(());
        }
        // A local store `compact` replaced in the middle of a pass: run again
        // at once on the new file (once a second at most), no lost link.
        if let Err(e) = &r
            && replaced_store(e)
            && last_reopen.is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            last_reopen = Some(Instant::now());
            crate::event::Say::info(
                obs.as_ref(),
                format!("{} {src} -> {dst}: {e:#}; running again on the new file", crate::log::timestamp()),
            );
            continue;
        }
        let (error, why) = match &r {
            Err(e) if is_refusal(e) => {
                obs.event(&Event::Failed { reason: reason(e), refused: true });
                return r.map(|_| ());
            }
            Err(e) => (format!("{e:#}"), reason(e)),
            Ok(_) => ("the peer ended the stream".to_string(), "the peer ended the stream".to_string()),
        };
        // A run that synced something was a healthy link: start the backoff over.
        if r.as_ref().is_ok_and(|o| o.passes > 0) || started.elapsed() > cfg.retry.max {
            delay = cfg.retry.first;
        }
        obs.event(&Event::LostLink { error, reason: why, retry_in: Some(delay) });
        crate::mirror::read::sleep_unless(delay, stop);
        if stop.load(Ordering::Relaxed) {
            obs.event(&Event::Stopped { signal: "a signal" });
            return Ok(());
        }
        delay = (delay * 2).min(cfg.retry.max);
    }
    unreachable!("the attempts never run out")
}

/// True when `e` comes from a local store file that `compact` replaced.
fn replaced_store(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref(), Some(crate::ioctl::PfsError::Replaced { .. })))
}

/// Checks endpoints before anything runs.
pub fn check_pair(src: &Endpoint, dst: &Endpoint) -> anyhow::Result<()> {
    if src == dst {
        return Err(usage(format!("source and target are the same PFS ({src})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_hammers_routine_lines_are_info_everything_else_shows() {
        assert_eq!(remote_line_level(true, "Mirror-read /pfs/a succeeded"), Level::Info);
        assert_eq!(remote_line_level(true, "Prescan 1 chunks, total 0 MBytes (0)"), Level::Info);
        assert_eq!(remote_line_level(true, "Mirror-read /pfs/a interrupted by timer at 0000000000001000"), Level::Warn);
        assert_eq!(remote_line_level(true, "mirror-write: target must be in slave mode"), Level::Warn);
        assert_eq!(remote_line_level(false, "Mirror-read /pfs/a succeeded"), Level::Warn, "our remote filters itself");
    }

    #[test]
    fn our_remote_s_vanished_peer_lines_are_symptoms_and_nothing_else_is() {
        for line in [
            "hammer-mirror: mirror-read /p: the target closed the link (Broken pipe (os error 32))",
            "hammer-mirror: mirror-write /p: the source closed the link: truncated stream at byte 9",
            "hammer-mirror: mirror-read /p: the target hung up before acknowledging the pass",
            "hammer-mirror: mirror-read /p: the target ended the stream before sending its PFS description",
            "hammer-mirror: mirror-write /p: the source sent nothing (the input ended before any PFS description)",
        ] {
            assert!(is_link_symptom(line), "{line}");
        }
        for line in [
            "hammer-mirror: mirror-write: /p: mirror-write failed: No space left on device (os error 28)",
            "hammer-mirror: mirror-write /p: reading from the source: malformed record at byte 0: illegal rec_size 5",
            "Mirror-read: the target closed the link",
            "hammer-mirror: mirror-read /the target closed the link/p: no such PFS",
        ] {
            assert!(!is_link_symptom(line), "{line}");
        }
    }
}
