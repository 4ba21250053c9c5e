//! `--on-failure`, `--on-recover`, `--after-pass`: the user's commands, run without a shell, with the event's JSON on stdin and a timeout.
//!
//! A hook is an argument vector split like a shell line
//! (`shellword::split_line`: quotes and backslashes, no expansion; what a
//! shell would expand is refused when the option is parsed). It runs on
//! the monitor's own thread, one at a time, so a slow hook never delays a
//! pass; at most [`QUEUE`] wait, more are dropped with a warning. Its stdin
//! is one JSON object (`event`: `failure`, `recover` or `pass`, `time`,
//! `job`, `source`, `target`, and `state`: the pair's state file); its
//! stdout and stderr go to the process's stderr (never into `--json`). After `--hook-timeout` seconds its
//! process group is killed. A hook that fails is logged, never more: the
//! stream goes on.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::PairState;
use crate::event::Observer;
use crate::log::{Level, timestamp};

/// Hooks waiting to run, at most.
pub const QUEUE: usize = 16;

/// The hooks of a process.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub on_failure: Option<Vec<OsString>>,
    pub on_recover: Option<Vec<OsString>>,
    pub after_pass: Option<Vec<OsString>>,
    pub timeout: Duration,
}

impl Hooks {
    pub fn any(&self) -> bool {
        self.on_failure.is_some() || self.on_recover.is_some() || self.after_pass.is_some()
    }
}

/// Parses a hook option's value into its argument vector.
pub fn parse(s: &str) -> Result<Vec<OsString>, String> {
    let argv = crate::shellword::split_line(s.as_bytes()).map_err(|e| format!("{s:?}: {e}"))?;
    if argv.is_empty() {
        return Err("an empty command".into());
    }
    Ok(argv)
}

/// Why a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// The pair started failing (the first failed run after a success).
    Failure,
    /// The first acknowledged pass after a failure.
    Recover,
    /// An acknowledged pass that carried data.
    Pass,
}

impl HookEvent {
    fn name(self) -> &'static str {
        match self {
            HookEvent::Failure => "failure",
            HookEvent::Recover => "recover",
            HookEvent::Pass => "pass",
        }
    }
    fn option(self) -> &'static str {
        match self {
            HookEvent::Failure => "--on-failure",
            HookEvent::Recover => "--on-recover",
            HookEvent::Pass => "--after-pass",
        }
    }
}

struct Job {
    option: &'static str,
    argv: Vec<OsString>,
    stdin: Vec<u8>,
    log: Arc<dyn Observer>,
}

/// Runs hooks on a thread of its own (see the module documentation).
pub struct Runner {
    hooks: Hooks,
    tx: SyncSender<Job>,
    /// Hooks queued or running.
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Runner {
    pub fn start(hooks: Hooks) -> Runner {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
        let (p, timeout) = (Arc::clone(&pending), hooks.timeout);
        std::thread::Builder::new()
            .name("hooks".into())
            .spawn(move || serve(rx, timeout, p))
            .expect("starting the hook thread");
        Runner { hooks, tx, pending }
    }

    /// Queues the hook for `event`, if there is one.
    pub fn fire(&self, event: HookEvent, s: &PairState, log: &Arc<dyn Observer>) {
        let argv = match event {
            HookEvent::Failure => &self.hooks.on_failure,
            HookEvent::Recover => &self.hooks.on_recover,
            HookEvent::Pass => &self.hooks.after_pass,
        };
        let Some(argv) = argv else { return };
        let mut stdin = serde_json::to_vec(&serde_json::json!({
            "event": event.name(),
            "time": timestamp(),
            "job": s.job,
            "source": s.source,
            "target": s.target,
            "state": s,
        }))
        .expect("serializable");
        stdin.push(b'\n');
        let job = Job { option: event.option(), argv: argv.clone(), stdin, log: Arc::clone(log) };
        *self.pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        if let Err(e) = self.tx.try_send(job) {
            self.done_one();
            let why =
                if matches!(e, TrySendError::Full(_)) { "too many hooks waiting" } else { "the hook thread ended" };
            log.event(&crate::event::Event::message(
                Level::Warn,
                format!("{} hammer-mirror: {} hook not run: {why}", timestamp(), event.option()),
            ));
        }
    }

    fn done_one(&self) {
        let (m, c) = &*self.pending;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        c.notify_all();
    }

    /// Waits until every hook queued so far has ended (each is bounded by its timeout).
    pub fn flush(&self) {
        let (m, c) = &*self.pending;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = c.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn serve(rx: Receiver<Job>, timeout: Duration, pending: Arc<(Mutex<usize>, Condvar)>) {
    for job in rx {
        if let Err(why) = run(&job, timeout) {
            job.log.event(&crate::event::Event::message(
                Level::Warn,
                format!(
                    "{} hammer-mirror: {} hook {}: {why}",
                    timestamp(),
                    job.option,
                    job.argv.first().map_or(String::new(), |p| p.to_string_lossy().into_owned())
                ),
            ));
        }
        let (m, c) = &*pending;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        c.notify_all();
    }
}

/// Runs one hook to its end or its timeout.
fn run(job: &Job, timeout: Duration) -> Result<(), String> {
    let (prog, args) = job.argv.split_first().ok_or("an empty command")?;
    // Its output goes to our stderr (the log), never into our stdout (--json).
    let out = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| e.to_string())?;
    let spawned = Command::new(prog).args(args).stdin(Stdio::piped()).stdout(Stdio::from(out)).process_group(0).spawn();
    let mut child = spawned.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound { "command not found".to_string() } else { e.to_string() }
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let data = job.stdin.clone();
        // A hook that does not read its stdin must not hold us up.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("failed ({st})")),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                return Err(format!("killed after {} s (--hook-timeout)", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_commands_split_like_a_shell_line_without_one() {
        assert_eq!(parse("notify -t 'lag alert' x").unwrap(), ["notify", "-t", "lag alert", "x"]);
        assert!(parse("").is_err());
        assert!(parse("mail $USER").is_err(), "a shell would expand it: refused");
        assert!(parse("a; b").is_err());
    }
}
