//! `watch`: records a live directory into a master PFS continuously, one TID per quiet period, at the cost of the changes.
//!
//! At start (and after anything that could have lost an event: a queue
//! overflow, a new link to a file whose other names are unknown) the whole
//! tree is imported, as `import` does, while each directory gets an inotify
//! watch just before it is listed ([`notify`]). From then on the events
//! mark the names that changed ([`crate::store::import::Changes`]); when the
//! tree has been quiet for `--settle` (or `--max-delay` after the first
//! change, under constant churn) those names, and every other name of the
//! linked files they reach ([`links`]), are imported as one new TID, which
//! writes exactly the records a full import would. Each recording opens the
//! PFS for writing and closes it again, so other writers (snapshots,
//! pfs-update) get their turn. `--poll` rescans the whole tree periodically
//! instead, where notifications do not exist ([`fstype`]).

#[cfg(any(target_os = "linux", target_os = "android"))]
mod fresh;
pub mod fstype;
pub mod links;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod notify;
pub mod settle;
mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::error::{refused, usage};
use crate::ioctl::{Pfs, PfsError};
use crate::store::import::{Changes, ImportStats, import_changes};
use crate::store::{Access, Store};
use links::Links;
use settle::Settle;
use walk::Walk;

/// How `watch` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Quiet period after the last change before it is recorded.
    pub settle: Duration,
    /// The longest a change waits to be recorded under constant churn.
    pub max_delay: Duration,
    /// Rescan the whole tree this often instead of watching it.
    pub poll: Option<Duration>,
    pub quiet: bool,
    pub json: bool,
    pub verbose: u8,
}

/// How many names may wait to be recorded before they are recorded at once
/// (the memory of the pending changes stays bounded).
const MAX_PENDING_NAMES: usize = 100_000;

/// What one recording did.
enum Recorded {
    Done {
        unstable: Vec<PathBuf>,
    },
    /// Another process holds the PFS's writer lock: the changes are given back.
    Busy(Changes),
}

/// The `watch` command: [`run`] until SIGTERM (exit 0) or SIGINT (130);
/// SIGHUP is ignored (nohup-proof).
pub fn command(
    cfg: &crate::config::Config,
    g: &crate::cli::GlobalOpts,
    dir: &Path,
    pfs: &Path,
) -> anyhow::Result<crate::exit::Status> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::Arc;
    let opts = Options {
        settle: Duration::from_millis(g.settle),
        max_delay: Duration::from_millis(g.max_delay),
        poll: g.poll.map(Duration::from_secs),
        quiet: cfg.output.quiet,
        json: cfg.output.json,
        verbose: cfg.output.verbose,
    };
    let (stop, interrupted) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(SIGINT, Arc::clone(&interrupted)).context("installing signal handlers")?;
    signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false))).context("ignoring SIGHUP")?;
    run(dir, pfs, &opts, &stop)?;
    let (status, name) = if interrupted.load(Ordering::Relaxed) {
        (crate::exit::Status::Interrupted, "SIGINT")
    } else {
        (crate::exit::Status::Success, "SIGTERM")
    };
    if !opts.quiet {
        eprintln!("{} watch {} -> {}: stopped by {name}", crate::log::timestamp(), dir.display(), pfs.display());
    }
    Ok(status)
}

/// Checks `dir` and `pfs`, then records until `stop` is set; what is pending
/// then is recorded before it returns.
pub fn run(dir: &Path, pfs: &Path, opts: &Options, stop: &AtomicBool) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(usage(format!("watch: {}: not a directory", dir.display()))),
        Err(e) => return Err(usage(format!("watch: {}: {e}", dir.display()))),
    }
    let dir = std::path::absolute(dir).with_context(|| format!("watch: {}", dir.display()))?;
    // Kept open: the PFS's environment stays mapped between recordings.
    let store = crate::pfs::open_store(pfs, Access::Read).context("watch")?;
    if store.get_pseudofs()?.is_slave() {
        return Err(refused(format!(
            "watch: {} is a slave: only mirror-write changes it (pfs-upgrade makes it a master)",
            pfs.display()
        )));
    }
    let mut rec = Recorder::new(&dir, pfs, opts);
    if opts.poll.is_none() {
        match fstype::of(&dir) {
            fstype::Notifies::No(kind) => {
                return Err(refused(format!(
                    "watch: {} is on a {kind} filesystem: changes made there by other machines raise no \
                     notifications here; use --poll SECONDS to rescan it periodically instead",
                    dir.display()
                )));
            }
            fstype::Notifies::Local(kind) => rec.say(
                crate::log::Level::Warn,
                &format!(
                    "warning: {} is on a {kind} filesystem: only changes made through this machine are \
                     notified (--poll SECONDS rescans periodically)",
                    dir.display()
                ),
            ),
            fstype::Notifies::Yes => {}
        }
    }
    rec.keep = Some(store);
    let r = match opts.poll {
        Some(every) => rec.poll(every, stop),
        None => rec.watch(stop),
    };
    drop(rec.keep.take());
    r
}

struct Recorder<'o> {
    dir: PathBuf,
    pfs: PathBuf,
    opts: &'o Options,
    links: Links,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    watches: Option<notify::Watches>,
    generation: u64,
    /// Mounts already warned about.
    warned: std::collections::HashSet<PathBuf>,
    json_closed: std::cell::Cell<bool>,
    /// The PFS open read-only, so that its environment stays mapped between
    /// recordings (reopened when `compact` replaced the file).
    keep: Option<Store>,
}

impl<'o> Recorder<'o> {
    fn new(dir: &Path, pfs: &Path, opts: &'o Options) -> Recorder<'o> {
        Recorder {
            dir: dir.to_path_buf(),
            pfs: pfs.to_path_buf(),
            opts,
            links: Links::default(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            watches: None,
            generation: 0,
            warned: Default::default(),
            json_closed: Default::default(),
            keep: None,
        }
    }

    /// A line on stderr, unless `-q` drops it.
    fn say(&self, level: crate::log::Level, text: &str) {
        if !self.opts.quiet || level.kept_by_quiet() {
            eprintln!("{text}");
        }
    }

    fn prefix(&self) -> String {
        format!("{} watch {} -> {}", crate::log::timestamp(), self.dir.display(), self.pfs.display())
    }

    /// The PFS's own files, relative to the tree when they are in it.
    fn own_files(&self) -> Vec<PathBuf> {
        let pfs = std::path::absolute(&self.pfs).unwrap_or_else(|_| self.pfs.clone());
        let mut lock = pfs.as_os_str().to_os_string();
        lock.push("-lock");
        [pfs, PathBuf::from(lock)]
            .into_iter()
            .filter_map(|p| p.strip_prefix(&self.dir).ok().map(Path::to_path_buf))
            .collect()
    }

    /// Records `changes` as one TID (a full import when they are all); `why`
    /// says why a full scan is made.
    fn record(&mut self, changes: Changes, why: &str) -> anyhow::Result<Recorded> {
        let mut changes = changes;
        let mut why = why;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.watches.as_mut().is_some_and(|w| w.fresh.take_suspect()) && !changes.is_all() {
            // Kept through a busy PFS: the changes given back are all.
            changes = Changes::all();
            why = "a new name went before it was read: it may have been a hard link";
        }
        let full = changes.is_all();
        if !full {
            self.links.expand(&self.dir, &mut changes);
        }
        // The kept environment is of a file `compact` replaced: close it
        // first (this process must not open the new file beside it).
        if self.keep.as_ref().is_some_and(Store::replaced) {
            self.keep = None;
        }
        let store = match Store::open(&self.pfs, Access::Write) {
            Ok(s) => s,
            Err(PfsError::Busy { .. }) => return Ok(Recorded::Busy(changes)),
            Err(e) => return Err(anyhow::Error::new(e).context("watch")),
        };
        self.generation += 1;
        let t = Instant::now();
        let mut walk = Walk::new(&self.dir, &self.links, self.generation, full);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            walk.watches = self.watches.as_mut();
        }
        let r = import_changes(&store, &self.dir, &changes, &mut walk);
        drop(store);
        if self.keep.is_none() {
            self.keep = Store::open(&self.pfs, Access::Read).ok();
        }
        let st = match r {
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "watch: recording {} into {} (it stays at its last TID)",
                    self.dir.display(),
                    self.pfs.display()
                )));
            }
            Ok(None) => {
                debug_assert!(walk.rescan);
                return self.record(Changes::all(), "a new link to a file whose other names are not known");
            }
            Ok(Some(st)) => st,
        };
        let Walk { removed, examined_known, multi, unstable, mounts, .. } = walk;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let watch_error = walk.watch_error;
        // Learn what this walk saw.
        if full {
            self.links.clear();
        } else {
            for r in &removed {
                self.links.remove_below(r);
            }
            for q in &examined_known {
                self.links.remove(q);
            }
        }
        for (rel, inode, _) in &multi {
            self.links.insert(rel, *inode);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(w) = self.watches.as_mut() {
            if full {
                w.forget_below(Path::new(""), self.generation);
            } else {
                for r in &removed {
                    w.forget_below(r, self.generation);
                }
            }
        }
        for m in mounts {
            let abs = self.dir.join(&m);
            if self.warned.insert(m)
                && let Some(w) = walk::mount_warning(&abs)
            {
                self.say(crate::log::Level::Warn, &format!("warning: {w}"));
            }
        }
        self.report(&st, full, why, changes.len(), t.elapsed());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(e) = watch_error {
            return Err(anyhow::Error::new(e).context(format!("watch {}", self.dir.display())));
        }
        Ok(Recorded::Done { unstable })
    }

    fn report(&self, st: &ImportStats, full: bool, why: &str, names: usize, took: Duration) {
        let recorded = st.changed_records > 0;
        if !recorded && !full {
            if self.opts.verbose > 0 {
                self.say(crate::log::Level::Debug, &format!("{}: {names} names examined, no change", self.prefix()));
            }
            return;
        }
        let tid = if recorded { format!("TID {}", crate::log::tid(st.tid)) } else { "no change".to_string() };
        let line = if full {
            format!(
                "{}: full scan ({why}), {tid}: {} files, {} directories, {} symlinks, {} unchanged, {} removed, \
                 {} records changed, {} bytes read in {:.3} s",
                self.prefix(),
                st.files,
                st.dirs,
                st.symlinks,
                st.unchanged,
                st.removed,
                st.changed_records,
                st.bytes_read,
                took.as_secs_f64()
            )
        } else {
            format!(
                "{}: {tid}: {names} names examined, {} removed, {} records changed, {} bytes read in {:.3} s",
                self.prefix(),
                st.removed,
                st.changed_records,
                st.bytes_read,
                took.as_secs_f64()
            )
        };
        self.say(crate::log::Level::Info, &line);
        if st.unstable > 0 {
            self.say(
                crate::log::Level::Warn,
                &format!(
                    "{}: {} names changed while they were read and keep their recorded version until they are quiet",
                    self.prefix(),
                    st.unstable
                ),
            );
        }
        if self.opts.json {
            let obj = serde_json::json!({
                "time": crate::log::timestamp(),
                "event": "watch",
                "dir": self.dir.display().to_string(),
                "pfs": self.pfs.display().to_string(),
                "scan": if full { "full" } else { "changes" },
                "reason": if full { Some(why) } else { None },
                "tid": crate::log::tid(st.tid),
                "recorded": recorded,
                "names": if full { None } else { Some(names) },
                "records": st.changed_records,
                "removed": st.removed,
                "bytes_read": st.bytes_read,
                "unstable": st.unstable,
                "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
            });
            // A closed stdout stops the JSON quietly; the recording goes on.
            if !self.json_closed.get() {
                use std::io::Write;
                if writeln!(crate::error::Stdout, "{obj}").is_err() {
                    self.json_closed.set(true);
                }
            }
        }
    }

    /// `--poll`: a full import every `every`, until stopped.
    fn poll(&mut self, every: Duration, stop: &AtomicBool) -> anyhow::Result<()> {
        self.say(
            crate::log::Level::Info,
            &format!(
                "{}: started (pid {}, a full scan every {} s)",
                self.prefix(),
                std::process::id(),
                every.as_secs()
            ),
        );
        let mut why = "start";
        loop {
            if let Recorded::Busy(_) = self.record(Changes::all(), why)? {
                self.busy();
            }
            why = "--poll";
            let next = Instant::now() + every;
            while Instant::now() < next {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
            }
        }
    }

    fn busy(&self) {
        self.say(
            crate::log::Level::Warn,
            &format!("{}: the PFS is busy (another process writes to it): recording later", self.prefix()),
        );
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn watch(&mut self, _stop: &AtomicBool) -> anyhow::Result<()> {
        Err(usage("watch: filesystem notifications are not implemented on this system; use --poll SECONDS"))
    }

    /// inotify: the initial full import, then the changes, until stopped.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn watch(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        self.watches = Some(notify::Watches::new(self.own_files()).context("watch")?);
        if let Recorded::Busy(_) = self.record(Changes::all(), "start")? {
            return Err(anyhow::anyhow!(
                "watch: {}: PFS is busy: another process is writing to it (HAMMER_MIRROR_LOCK_WAIT)",
                self.pfs.display()
            ));
        }
        let o = self.opts;
        self.say(
            crate::log::Level::Info,
            &format!(
                "{}: watching {} directories (pid {}, settle {} ms, max delay {} ms)",
                self.prefix(),
                self.watches.as_ref().map_or(0, notify::Watches::len),
                std::process::id(),
                o.settle.as_millis(),
                o.max_delay.as_millis()
            ),
        );
        let mut pending = Changes::default();
        let mut settle = Settle::new(o.settle, o.max_delay);
        let mut events_since = 0usize;
        loop {
            if stop.load(Ordering::Relaxed) {
                // What happened before the signal is in the queue.
                let w = self.watches.as_mut().expect("watching");
                if w.read(&mut pending).context("watch: reading events")?.marked > 0 {
                    settle.note(Instant::now());
                }
                if settle.pending() {
                    match self.record(std::mem::take(&mut pending), "")? {
                        Recorded::Done { .. } => {}
                        Recorded::Busy(_) => self.say(
                            crate::log::Level::Warn,
                            &format!(
                                "{}: the PFS stayed busy: the last changes are not recorded (the next start rescans)",
                                self.prefix()
                            ),
                        ),
                    }
                }
                return Ok(());
            }
            let now = Instant::now();
            let wait = settle.due().map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
            let wait = wait.min(Duration::from_secs(1));
            let w = self.watches.as_mut().expect("watching");
            {
                let mut fds = [nix::poll::PollFd::new(w.fd(), nix::poll::PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                match nix::poll::poll(&mut fds, ms) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(std::io::Error::from(e)).context("watch: waiting for events"),
                }
            }
            let r = w.read(&mut pending).context("watch: reading events")?;
            if r.marked > 0 || r.overflow {
                settle.note(Instant::now());
                events_since += r.marked;
            }
            if r.root_gone {
                return Err(anyhow::anyhow!(
                    "watch: {} was removed or moved away; {} keeps what was recorded last",
                    self.dir.display(),
                    self.pfs.display()
                ));
            }
            if r.overflow {
                self.say(
                    crate::log::Level::Warn,
                    &format!(
                        "{}: the kernel's event queue overflowed (fs.inotify.max_queued_events = {}): \
                         events were lost, so the whole tree is read again",
                        self.prefix(),
                        std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
                            .map_or_else(|_| "?".into(), |s| s.trim().to_string())
                    ),
                );
                pending = Changes::all();
            }
            let crowded = events_since > MAX_PENDING_NAMES && pending.len() > MAX_PENDING_NAMES;
            if !(settle.is_due(Instant::now()) || crowded) {
                continue;
            }
            let why = if pending.is_all() { "events were lost" } else { "" };
            events_since = 0;
            match self.record(std::mem::take(&mut pending), why)? {
                Recorded::Done { unstable } => {
                    settle.reset();
                    for u in unstable {
                        pending.mark(&u);
                        settle.note(Instant::now());
                    }
                }
                Recorded::Busy(mut back) => {
                    self.busy();
                    // Back in, with what came meanwhile; tried again a settle period later.
                    back.merge(std::mem::take(&mut pending));
                    pending = back;
                    settle.reset();
                    settle.note(Instant::now());
                }
            }
        }
    }
}
