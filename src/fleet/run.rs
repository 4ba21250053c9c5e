//! `run`: one process streams every pair of the configuration, each on its own, and reloads on SIGHUP.
//!
//! Every (job, target) pair is a `stream` of its own on a thread: its own
//! two-way conversation, acknowledgements, backoff and stall watchdog, so a
//! slow or dead target never delays another. What they share: a gate of
//! `max_concurrent` permits (a pass holds one from its first record to its
//! acknowledgement; a pass from a local source), a bandwidth budget over all
//! local sources, shared fairly, and one ssh ControlMaster per host (in a
//! private directory, closed on exit). SIGHUP reads the file again: pairs
//! that are gone or changed stop cleanly, new and changed ones start, the
//! rest run on; a file that no longer parses is reported and ignored.
//! SIGTERM and SIGINT stop every pair and `run` exits 0.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::config::{Fleet, Pair};
use crate::cli::GlobalOpts;
use crate::config::Terminal;
use crate::endpoint::Endpoint;
use crate::gate::Gate;
use crate::log::{Level, timestamp};
use crate::progress::Reporter;
use crate::transport::bwlimit::Budget;

/// A running pair.
struct Running {
    pair: Pair,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// Its state (the monitor forgets it when a reload removes the pair).
    state: Arc<crate::state::observer::PairObserver>,
}

/// What every pair shares.
struct Shared {
    gate: Option<Arc<Gate>>,
    budget: Option<Arc<Budget>>,
    /// The ControlMaster sockets' directory.
    control: tempfile::TempDir,
    /// Opens each host's ControlMaster before its streams connect.
    masters: Arc<super::masters::Masters>,
    /// The automatic prune of each local source, shared by its targets' pairs.
    #[allow(clippy::type_complexity)]
    prunes: std::sync::Mutex<HashMap<(PathBuf, String, u64), Arc<crate::retention::cmd::AutoPrune>>>,
    /// ssh of each remote host seen, to close its master at the end.
    hosts: std::sync::Mutex<HashMap<String, (Vec<OsString>, crate::endpoint::Remote)>>,
    /// State files, metrics and hooks of every pair, with a `job` label.
    monitor: Arc<crate::state::observer::Monitor>,
}

fn key(p: &Pair) -> (String, String, String) {
    (p.job.clone(), p.source.to_string(), p.target.to_string())
}

/// The pair's configuration with what `run` adds: the shared gate and
/// budget, a ControlMaster per host, no bar (many pairs share one stderr).
fn configure(p: &Pair, shared: &Shared) -> crate::config::Config {
    let mut c = p.config.clone();
    c.output.bars = false;
    c.read.gate = shared.gate.clone();
    c.link.budget = shared.budget.clone();
    // One connection per host, shared by its jobs, unless the user's own -o
    // options say otherwise (ssh takes the first value of an option).
    if c.ssh.options.iter().any(|o| o.to_string_lossy().to_ascii_lowercase().starts_with("controlmaster")) {
        return c;
    }
    let path = shared.control.path().join("cm-%C");
    for o in
        ["ControlMaster=auto".to_string(), format!("ControlPath={}", path.display()), "ControlPersist=60".to_string()]
    {
        c.ssh.options.push(OsString::from(o));
    }
    c.ssh.before_connect = Some(shared.masters.clone());
    c
}

fn remember_hosts(p: &Pair, c: &crate::config::Config, shared: &Shared) {
    let mut hosts = shared.hosts.lock().unwrap_or_else(|e| e.into_inner());
    for e in [&p.source, &p.target] {
        if let Endpoint::Remote(r) = e {
            hosts.entry(r.destination()).or_insert_with(|| (crate::ssh::control_argv(&c.ssh, r, "exit"), r.clone()));
        }
    }
}

fn start(p: Pair, shared: &Shared) -> Running {
    let c = configure(&p, shared);
    remember_hosts(&p, &c, shared);
    let stop = Arc::new(AtomicBool::new(false));
    let (thread_stop, src, dst, job) = (Arc::clone(&stop), p.source.clone(), p.target.clone(), p.job.clone());
    let reporter = Reporter::for_job(c.output, format!("[{job}] {src}"), dst.to_string());
    let state = shared.monitor.pair(Some(&job), crate::state::name(&src), crate::state::name(&dst), reporter.clone());
    let mut obs = crate::state::observer::tee(reporter.clone(), Some(Arc::clone(&state)));
    if let (Some((rules, every)), Endpoint::Local(path)) = (&p.prune, &src) {
        // One per source (and rules): its targets' passes share its interval.
        let key = (path.clone(), format!("{rules:?}"), *every);
        let auto =
            Arc::clone(shared.prunes.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert_with(|| {
                Arc::new(crate::retention::cmd::AutoPrune::new(path, rules.clone(), Duration::from_secs(*every)))
            }));
        obs = crate::retention::cmd::PruneOnPass::wrap(obs, auto);
    }
    let thread = std::thread::Builder::new()
        .name(format!("{job} {dst}"))
        .spawn(move || {
            reporter.message(Level::Info, &format!("{} [{job}] stream {src} -> {dst}: started", timestamp()));
            match crate::orchestrate::stream(&c, &obs, &src, &dst, &thread_stop) {
                Ok(()) => reporter.stopped("SIGTERM"),
                // A refusal ends this pair only; the others go on.
                Err(e) => {
                    reporter.message(Level::Error, &format!("hammer-mirror: [{job}] stream {src} to {dst}: {e:#}"));
                }
            }
        })
        .expect("starting a stream thread");
    Running { pair: p, stop, thread, state }
}

/// What becomes of stopped pairs' state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// `run` ends: their files say stopped.
    Keep,
    /// A reload restarts them: the new pair takes their file on.
    Restart,
    /// Gone from the configuration: their files go too.
    Forget,
}

/// Stops the pairs.
fn stop_all(running: Vec<Running>, monitor: &crate::state::observer::Monitor, then: Then) {
    for r in &running {
        r.stop.store(true, Ordering::Relaxed);
    }
    for r in running {
        let _ = r.thread.join();
        r.state.finish(crate::state::Phase::Stopped);
        r.state.flush();
        if then != Then::Keep {
            monitor.remove(&r.state, then == Then::Forget);
        }
    }
}

/// Runs the configuration at `path` until SIGTERM or SIGINT.
pub fn run(path: &Path, base: &GlobalOpts, term: Terminal) -> anyhow::Result<()> {
    let fleet = super::config::load(path, base, term)?;
    let hup = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
        signal_hook::flag::register(sig, crate::store::lock_wait_signal_flag())
            .context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing signal handlers")?;
    let shared = Shared {
        gate: fleet.max_concurrent.map(|n| Arc::new(Gate::new(n))),
        budget: fleet.bandwidth.map(Budget::new),
        control: tempfile::Builder::new()
            .prefix("hammer-mirror-ssh.")
            .tempdir()
            .context("making the ssh control directory")?,
        masters: Default::default(),
        prunes: Default::default(),
        hosts: Default::default(),
        monitor: crate::state::monitor(base, "run")?,
    };
    say(&fleet, path, "running");
    let mut running: Vec<Running> = fleet.pairs.into_iter().map(|p| start(p, &shared)).collect();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if !hup.swap(false, Ordering::Relaxed) {
            continue;
        }
        match super::config::load(path, base, term) {
            Err(e) => eprintln!(
                "{} hammer-mirror: reload of {} failed, keeping the running configuration: {e:#}",
                timestamp(),
                path.display()
            ),
            Ok(new) => {
                say(&new, path, "reloaded");
                running = reload(running, new.pairs, &shared);
            }
        }
    }
    stop_all(running, &shared.monitor, Then::Keep);
    close_masters(&shared);
    eprintln!("{} hammer-mirror: run of {} stopped", timestamp(), path.display());
    Ok(())
}

fn say(f: &Fleet, path: &Path, what: &str) {
    for w in &f.warnings {
        eprintln!("{} hammer-mirror: warning: {w}", timestamp());
    }
    let limits = match (f.max_concurrent, f.bandwidth) {
        (None, None) => String::new(),
        (m, b) => format!(
            " ({}{})",
            m.map_or(String::new(), |m| format!("at most {m} passes at once")),
            b.map_or(String::new(), |b| format!("{}{} bytes/s in all", if m.is_some() { ", " } else { "" }, b))
        ),
    };
    eprintln!(
        "{} hammer-mirror: {what} {}: {} jobs, {} streams{limits}",
        timestamp(),
        path.display(),
        f.jobs,
        f.pairs.len()
    );
}

/// Stops the pairs that are gone or changed, starts the new and the changed ones.
fn reload(running: Vec<Running>, pairs: Vec<Pair>, shared: &Shared) -> Vec<Running> {
    let wanted: HashMap<_, _> = pairs.iter().map(|p| (key(p), p.opts.clone())).collect();
    let (keep, go): (Vec<Running>, Vec<Running>) =
        running.into_iter().partition(|r| wanted.get(&key(&r.pair)).is_some_and(|o| *o == r.pair.opts));
    for r in &go {
        eprintln!("{} hammer-mirror: stopping [{}] {} -> {}", timestamp(), r.pair.job, r.pair.source, r.pair.target);
    }
    // A changed pair keeps its state (it restarts); a removed one is forgotten.
    let (changed, removed): (Vec<Running>, Vec<Running>) =
        go.into_iter().partition(|r| wanted.contains_key(&key(&r.pair)));
    stop_all(changed, &shared.monitor, Then::Restart);
    stop_all(removed, &shared.monitor, Then::Forget);
    let kept: Vec<_> = keep.iter().map(|r| key(&r.pair)).collect();
    let mut all = keep;
    for p in pairs.into_iter().filter(|p| !kept.contains(&key(p))) {
        all.push(start(p, shared));
    }
    all
}

/// Closes the ControlMaster of every host (`ssh -O exit`).
fn close_masters(shared: &Shared) {
    let hosts = shared.hosts.lock().unwrap_or_else(|e| e.into_inner());
    for (argv, _) in hosts.values() {
        if let Some((prog, args)) = argv.split_first() {
            let _ = duct::cmd(prog, args).stdin_null().stdout_null().stderr_null().unchecked().run();
        }
    }
}

/// The default configuration file, or `--config`.
pub fn config_path(given: Option<&PathBuf>) -> PathBuf {
    given.cloned().unwrap_or_else(|| PathBuf::from(super::config::DEFAULT_PATH))
}
