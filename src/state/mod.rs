//! Persistent pair state: what every `copy`, `stream` and `run` pair keeps in the state directory, and how lag is derived from it.
//!
//! Each pair (job, source, target) has one small JSON file,
//! `pair-<hash>.json`, rewritten atomically (a temporary file in the same
//! directory, then `rename`) by the process that runs the pair: on every
//! change of phase, every acknowledged pass (heartbeats included), and at
//! most once a second during a pass. It is readable at any moment by
//! `status`. The process's pid (and, where `/proc` exists, its start time)
//! is in the file: a process that is gone while its file says it runs is
//! *stale*, never healthy. `verify` leaves its result beside it
//! (`pair-<hash>.verify.json`), so it never races with a running stream.
//!
//! Every figure comes from the target's acknowledgement ([`crate::event::Event::PassDone`]):
//! the acknowledged TID, when it came, and when the target was last known
//! to hold everything the master had. The observer that maintains the
//! state is [`observer`]; `status` is [`status`], Prometheus [`metrics`],
//! the user's commands [`hooks`].

pub mod file;
pub mod hooks;
pub mod metrics;
pub mod observer;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The layout version of a state file.
pub const VERSION: u32 = 1;

/// What a pair is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A run is starting: ssh, the first PFSD exchange.
    Connecting,
    /// A pass is under way.
    Sending,
    /// Connected, the target holds what the master had at the last pass.
    Idle,
    /// The link was lost; the next attempt starts at `retry_at`.
    WaitingForRetry,
    /// A side refused (exit 3): retrying cannot fix it; the process stopped.
    Refused,
    /// A copy failed.
    Failed,
    /// Stopped at the user's request (a signal, or a `run` reload).
    Stopped,
    /// A copy finished: the target acknowledged.
    Done,
}

impl Phase {
    /// Whether a process should still be running the pair in this phase.
    pub fn running(self) -> bool {
        matches!(self, Phase::Connecting | Phase::Sending | Phase::Idle | Phase::WaitingForRetry)
    }

    /// Whether a process in this phase follows its master (connected to both sides).
    pub fn connected(self) -> bool {
        matches!(self, Phase::Sending | Phase::Idle)
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Sending => "sending",
            Phase::Idle => "idle",
            Phase::WaitingForRetry => "waiting-for-retry",
            Phase::Refused => "refused",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
            Phase::Done => "done",
        }
    }
}

/// The last acknowledged pass that carried data (heartbeats do not replace it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastPass {
    /// When the target acknowledged it (Unix seconds).
    pub at: f64,
    #[serde(with = "tidhex")]
    pub tid_beg: Option<u64>,
    #[serde(with = "tidhex")]
    pub tid_end: Option<u64>,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: u64,
}

/// The last error, and the phase the pair was in when it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    pub at: f64,
    pub phase: String,
    pub message: String,
    pub refused: bool,
}

/// The pass under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    pub started: f64,
    #[serde(with = "tidhex")]
    pub tid_beg: Option<u64>,
    #[serde(with = "tidhex")]
    pub tid_end: Option<u64>,
    pub bytes: u64,
    pub estimate: Option<u64>,
}

/// A pair's state file (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairState {
    pub version: u32,
    /// The `run` job, when the pair comes from a configuration file.
    pub job: Option<String>,
    pub source: String,
    pub target: String,
    /// `copy`, `stream` or `run`.
    pub command: String,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), to tell a reused pid.
    pub pid_start: Option<u64>,
    /// When this process took the pair on, and when it last wrote the file (Unix seconds).
    pub started: f64,
    pub updated: f64,
    pub phase: Phase,
    /// `waiting-for-retry`: when the next attempt starts.
    pub retry_at: Option<f64>,
    /// The TID the target holds (acknowledged, or told in its PFSD).
    #[serde(with = "tidhex")]
    pub acked_tid: Option<u64>,
    /// When the target last acknowledged a pass (heartbeats included).
    pub acked_at: Option<f64>,
    /// The master's TID as last seen.
    #[serde(with = "tidhex")]
    pub master_tid: Option<u64>,
    /// The last moment the target was known to hold everything the master had.
    pub synced_at: Option<f64>,
    /// The first moment the master was seen ahead of the target since then.
    pub behind_since: Option<f64>,
    /// Seconds of changes the target lacks, as of `updated` (0: in sync).
    pub lag_seconds: Option<f64>,
    /// Bytes the target lacks (the prescan's estimate), as of `updated`.
    pub lag_bytes: Option<u64>,
    pub last_pass: Option<LastPass>,
    pub current: Option<Current>,
    /// Acknowledged passes that carried data, and their stream bytes (kept across runs of the pair).
    pub passes: u64,
    pub pass_bytes: u64,
    /// Lost links that were retried, and stalls the watchdog ended.
    pub retries: u64,
    pub stalls: u64,
    /// Failed runs, by the phase they failed in.
    pub failures: BTreeMap<String, u64>,
    /// Failed runs since the last acknowledged pass.
    pub retries_since_success: u64,
    pub last_error: Option<LastError>,
}

/// `verify`'s result for a pair (`pair-<hash>.verify.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub at: f64,
    pub identical: bool,
    #[serde(with = "tidhex")]
    pub as_of: Option<u64>,
    pub differences: u64,
}

impl PairState {
    pub fn new(job: Option<String>, source: String, target: String, command: &str) -> PairState {
        let now = now();
        PairState {
            version: VERSION,
            job,
            source,
            target,
            command: command.to_string(),
            pid: std::process::id(),
            pid_start: file::pid_start(std::process::id()),
            started: now,
            updated: now,
            phase: Phase::Connecting,
            retry_at: None,
            acked_tid: None,
            acked_at: None,
            master_tid: None,
            synced_at: None,
            behind_since: None,
            lag_seconds: None,
            lag_bytes: None,
            last_pass: None,
            current: None,
            passes: 0,
            pass_bytes: 0,
            retries: 0,
            stalls: 0,
            failures: BTreeMap::new(),
            retries_since_success: 0,
            last_error: None,
        }
    }

    /// Takes over what a previous run of the same pair left: the history
    /// that outlives a process (acknowledgement, counters, last pass and
    /// error), not what describes the process.
    pub fn carry_over(&mut self, old: PairState) {
        self.acked_tid = old.acked_tid;
        self.acked_at = old.acked_at;
        self.master_tid = old.master_tid;
        self.synced_at = old.synced_at;
        self.behind_since = old.behind_since;
        self.lag_bytes = old.lag_bytes;
        self.last_pass = old.last_pass;
        self.passes = old.passes;
        self.pass_bytes = old.pass_bytes;
        self.retries = old.retries;
        self.stalls = old.stalls;
        self.failures = old.failures;
        self.retries_since_success = old.retries_since_success;
        self.last_error = old.last_error;
    }

    /// The target holds everything the master was last seen with.
    pub fn in_sync(&self) -> bool {
        matches!((self.acked_tid, self.master_tid), (Some(a), Some(m)) if a >= m)
    }

    /// Failing: the last run ended in an error and no pass was acknowledged since.
    pub fn failing(&self) -> bool {
        self.retries_since_success > 0 || matches!(self.phase, Phase::Failed | Phase::Refused)
    }

    /// Seconds of changes the target lacks at `now`, from what this file
    /// says; `alive` is whether the process that runs the pair is there (a
    /// live stream sees every change of its master at once).
    pub fn lag_at(&self, now: f64, alive: bool) -> Option<f64> {
        self.acked_tid?;
        let since = if self.in_sync() {
            if alive && self.phase.connected() {
                return Some(0.0);
            }
            // Nobody watches the master (no process, or no link): only
            // known in sync until then.
            self.synced_at?
        } else {
            self.behind_since.or(self.synced_at)?
        };
        Some((now - since).max(0.0))
    }
}

/// The monitor of a `copy`, `stream` or `run` process, from the global
/// options: state directory, metrics file, hooks, and the metrics server
/// (`--metrics-listen`, started here).
pub fn monitor(g: &crate::cli::GlobalOpts, command: &'static str) -> anyhow::Result<Arc<observer::Monitor>> {
    let hook = |o: &Option<String>| -> anyhow::Result<Option<Vec<std::ffi::OsString>>> {
        o.as_deref().map(hooks::parse).transpose().map_err(crate::error::usage)
    };
    let opts = observer::Options {
        dir: if g.no_state { None } else { file::dir(g.state_dir.as_deref()) },
        metrics_file: g.metrics_file.clone(),
        hooks: hooks::Hooks {
            on_failure: hook(&g.on_failure)?,
            on_recover: hook(&g.on_recover)?,
            after_pass: hook(&g.after_pass)?,
            timeout: std::time::Duration::from_secs(g.hook_timeout),
        },
    };
    let m = observer::Monitor::new(opts, command);
    if let Some(addr) = &g.metrics_listen {
        metrics::serve(addr, &m)?;
    }
    Ok(m)
}

/// How a state file names an endpoint: a local path made absolute (the
/// same pair whatever directory it is run from, and readable again by
/// `status` from anywhere), a remote one as given.
pub fn name(e: &crate::endpoint::Endpoint) -> String {
    match e {
        crate::endpoint::Endpoint::Local(p) => {
            std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()
        }
        r => r.to_string(),
    }
}

/// The options that only an orchestrating command (copy, stream, run) takes, given elsewhere: refused.
pub fn refuse_outside_orchestration(g: &crate::cli::GlobalOpts, command: &str) -> anyhow::Result<()> {
    let given = [
        ("--on-failure", g.on_failure.is_some()),
        ("--on-recover", g.on_recover.is_some()),
        ("--after-pass", g.after_pass.is_some()),
        ("--metrics-file", g.metrics_file.is_some()),
        ("--metrics-listen", g.metrics_listen.is_some()),
    ];
    match given.iter().find(|(_, on)| *on) {
        Some((opt, _)) => Err(crate::error::usage(format!(
            "{command}: {opt} is refused here: hooks and metrics belong to the orchestrating copy, stream or run"
        ))),
        None => Ok(()),
    }
}

/// Records `verify`'s result beside the state of the pair it compared
/// (either way round), when that pair has a state file.
pub fn record_verify(
    g: &crate::cli::GlobalOpts,
    a: &crate::endpoint::Endpoint,
    b: &crate::endpoint::Endpoint,
    r: &crate::verify::Report,
) {
    let (a, b) = (name(a), name(b));
    let Some(dir) = (if g.no_state { None } else { file::dir(g.state_dir.as_deref()) }) else { return };
    let Ok((states, _)) = file::read_all(&dir) else { return };
    let v = VerifyResult {
        at: now(),
        identical: r.identical,
        as_of: crate::cli::parse_tid(&r.as_of).ok(),
        differences: r.differences,
    };
    for (path, s) in states {
        if (s.source == a && s.target == b) || (s.source == b && s.target == a) {
            let _ = file::write_verify(&path, &v);
        }
    }
}

/// Now, in Unix seconds.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The time a TID was made, when it is one of HAMMER's (and the store's):
/// nanoseconds since the epoch, from 2001 up to a day from now.
pub fn tid_time(tid: u64, now: f64) -> Option<f64> {
    let t = tid as f64 / 1e9;
    (t > 978_307_200.0 && t < now + 86_400.0).then_some(t)
}

/// TIDs as `0x` + 16 hex digits in JSON, as everywhere else.
mod tidhex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&crate::log::tid(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => crate::cli::parse_tid(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PairState {
        PairState::new(None, "/m".into(), "/s".into(), "stream")
    }

    #[test]
    fn lag_is_zero_only_while_a_live_process_sees_the_target_in_sync() {
        let mut s = state();
        assert_eq!(s.lag_at(100.0, true), None, "never acknowledged: unknown");
        s.acked_tid = Some(10);
        s.master_tid = Some(10);
        s.synced_at = Some(40.0);
        s.phase = Phase::Idle;
        assert_eq!(s.lag_at(100.0, true), Some(0.0));
        assert_eq!(s.lag_at(100.0, false), Some(60.0), "stale: in sync only as of synced_at");
        s.phase = Phase::WaitingForRetry;
        assert_eq!(s.lag_at(100.0, true), Some(60.0), "no link: the master may have moved since");
        s.phase = Phase::Idle;
        s.master_tid = Some(12);
        s.behind_since = Some(90.0);
        assert_eq!(s.lag_at(100.0, true), Some(10.0), "behind: since the master moved ahead");
        s.behind_since = None;
        assert_eq!(s.lag_at(100.0, true), Some(60.0));
    }

    #[test]
    fn state_files_round_trip_with_hex_tids() {
        let mut s = state();
        s.acked_tid = Some(0x1234);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"acked_tid\":\"0x0000000000001234\""), "{j}");
        assert!(j.contains("\"phase\":\"connecting\""), "{j}");
        assert_eq!(serde_json::from_str::<PairState>(&j).unwrap(), s);
    }

    #[test]
    fn tid_times_are_nanoseconds_of_this_century() {
        assert_eq!(tid_time(1, 2e9), None);
        assert_eq!(tid_time(1_700_000_000_000_000_000, 1.8e9), Some(1.7e9));
        assert_eq!(tid_time(1_900_000_000_000_000_000, 1.8e9), None, "in the future");
    }
}
