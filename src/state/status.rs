//! `status [--json] [PAIR]` and `status --check --warn DUR --crit DUR [PAIR]`: every pair on this host from the state directory, for a person, a machine or Nagios.
//!
//! Each pair's file is read as its process last wrote it; a process that
//! is gone while the file says it runs makes the pair *stale*. When nobody
//! runs the pair and its source is a local PFS, the master is read again
//! (its TID now; for a store, the first TID the target lacks and the
//! prescan's byte count), so a finished `copy` shows the lag its master has
//! built up since. With a `run` configuration (`--config`, or the default
//! file when it exists), its pairs that have no state yet are listed too.
//!
//! `--check` follows the Nagios plugin conventions: one line, `OK`,
//! `WARNING`, `CRITICAL` or `UNKNOWN`, with perfdata, and exit status 0, 1,
//! 2 or 3. A pair is critical when stale, refused, failed, never
//! acknowledged or lagging by `--crit`; warning when stopped or lagging by
//! `--warn`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{PairState, Phase, VerifyResult, file, now, tid_time};
use crate::endpoint::Endpoint;
use crate::exit::Status;

/// A `run` configuration file and its pairs (job, source, target).
pub type Configured = (PathBuf, Vec<(String, String, String)>);

/// What `status` was asked.
pub struct Request<'a> {
    pub dir: Option<&'a Path>,
    pub pair: Option<&'a str>,
    pub json: bool,
    /// `--check` with its thresholds in seconds.
    pub check: Option<(f64, f64)>,
    /// The `run` configuration whose pairs are listed even without state.
    pub config: Option<Configured>,
}

/// A pair as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub state: PairState,
    /// The process that runs the pair is there.
    pub alive: bool,
    /// Its process is gone while the file says it runs.
    pub stale: bool,
    pub state_file: Option<PathBuf>,
    pub last_verify: Option<VerifyResult>,
    /// Listed by the configuration, never run.
    pub never_ran: bool,
}

fn matches(s: &PairState, pat: &str) -> bool {
    // A local path may be given relative to here.
    let abs = std::path::absolute(pat).map(|p| p.display().to_string()).unwrap_or_default();
    s.target == pat
        || (!pat.contains(':') && (s.target == abs || s.source == abs))
        || s.source == pat
        || s.job.as_deref() == Some(pat)
        || s.job.as_ref().is_some_and(|j| format!("{j}/{}", s.target) == pat)
}

/// Reads the master again when nobody runs the pair (see the module documentation).
fn refresh(s: &mut PairState, now: f64) {
    let Some(acked) = s.acked_tid else { return };
    let Ok(Endpoint::Local(path)) = crate::endpoint::parse(std::ffi::OsStr::new(&s.source)) else { return };
    let store = crate::pfs::open_store(&path, crate::store::Access::Read).ok();
    let kernel;
    let pfs: &dyn crate::ioctl::Pfs = match &store {
        Some(st) => st,
        None => match crate::pfs::open(&path, crate::store::Access::Read) {
            Ok(p) => {
                kernel = p;
                kernel.as_ref()
            }
            Err(_) => return,
        },
    };
    let Ok(d) = pfs.get_pseudofs() else { return };
    let master = d.sync_end_tid;
    s.master_tid = Some(master);
    if master <= acked {
        s.synced_at = Some(now);
        s.behind_since = None;
        s.lag_bytes = Some(0);
        return;
    }
    let first = store.as_ref().and_then(|st| st.first_tid_after(acked).ok().flatten()).and_then(|t| tid_time(t, now));
    if let Some(t) = first {
        s.behind_since = Some(s.synced_at.map_or(t, |x| t.max(x)));
    } else if s.behind_since.is_none() {
        s.behind_since = s.synced_at;
    }
    let base = crate::ioctl::MirrorRw::for_read(acked + 1, master);
    if let Ok(h) = crate::mirror::histogram::generate(pfs, &base, u64::MAX, 0, false, &mut std::io::sink()) {
        s.lag_bytes = Some(h.total);
    }
}

/// The pairs of the `run` configuration: `--config`, or the default file when it exists.
pub fn config_pairs(g: &crate::cli::GlobalOpts) -> Option<Configured> {
    let path = match &g.config {
        Some(p) => p.clone(),
        None => {
            let p = PathBuf::from(crate::fleet::config::DEFAULT_PATH);
            if !p.exists() {
                return None;
            }
            p
        }
    };
    match crate::fleet::config::load(&path, g, crate::config::Terminal::default()) {
        Ok(f) => {
            let pairs =
                f.pairs.iter().map(|p| (p.job.clone(), super::name(&p.source), super::name(&p.target))).collect();
            Some((path, pairs))
        }
        Err(e) => {
            eprintln!(
                "hammer-mirror: warning: {e:#}; the pairs of {} that have no state are not listed",
                path.display()
            );
            None
        }
    }
}

/// Every pair of the state directory (and of the configuration), matching `pair`.
pub fn rows(req: &Request<'_>) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let now = now();
    let (states, errors) = match req.dir {
        Some(d) => file::read_all(d)?,
        None => (Vec::new(), Vec::new()),
    };
    let mut rows = Vec::new();
    for (path, mut s) in states {
        if req.pair.is_some_and(|p| !matches(&s, p)) {
            continue;
        }
        let alive = file::alive(&s);
        let stale = !alive && s.phase.running();
        if !(alive && s.phase.connected()) {
            refresh(&mut s, now);
        }
        s.lag_seconds = s.lag_at(now, alive);
        let last_verify = file::read_verify(&path);
        rows.push(Row { state: s, alive, stale, state_file: Some(path), last_verify, never_ran: false });
    }
    if let Some((_, pairs)) = &req.config {
        for (job, source, target) in pairs {
            let known = rows
                .iter()
                .any(|r| r.state.job.as_deref() == Some(job) && &r.state.source == source && &r.state.target == target);
            let mut s = PairState::new(Some(job.clone()), source.clone(), target.clone(), "run");
            if known || req.pair.is_some_and(|p| !matches(&s, p)) {
                continue;
            }
            s.pid = 0;
            s.pid_start = None;
            s.phase = Phase::Stopped;
            rows.push(Row {
                state: s,
                alive: false,
                stale: false,
                state_file: None,
                last_verify: None,
                never_ran: true,
            });
        }
    }
    Ok((rows, errors))
}

/// Seconds as a person reads them: `0 s`, `42 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn human_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn human_rate(b: u64) -> String {
    if b >= 1_000_000 {
        format!("{:.1} MB/s", b as f64 / 1e6)
    } else if b >= 1000 {
        format!("{:.1} kB/s", b as f64 / 1e3)
    } else {
        format!("{b} B/s")
    }
}

fn phase_text(r: &Row, now: f64) -> String {
    let s = &r.state;
    if r.never_ran {
        return "not started".into();
    }
    if r.stale {
        return format!("STALE (pid {} gone, was {})", s.pid, s.phase.name());
    }
    match (s.phase, s.retry_at) {
        (Phase::WaitingForRetry, Some(t)) => format!("waiting-for-retry ({})", human_secs(t - now)),
        (Phase::Sending, _) => match &s.current {
            Some(c) => match c.estimate {
                Some(e) if e > 0 => format!("sending {}%", (c.bytes.min(e) * 100 / e)),
                _ => "sending".into(),
            },
            None => "sending".into(),
        },
        (p, _) => p.name().into(),
    }
}

/// The table a person reads at a glance.
pub fn table(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    let now = now();
    let mut lines =
        vec![["PAIR".to_string(), "PHASE".into(), "LAG".into(), "LAST ACK".into(), "RATE".into(), "LAST ERROR".into()]];
    for r in rows {
        let s = &r.state;
        let pair = match &s.job {
            Some(j) => format!("[{j}] {} -> {}", s.source, s.target),
            None => format!("{} -> {}", s.source, s.target),
        };
        let lag = match s.lag_seconds {
            Some(l) => human_secs(l),
            None if s.acked_tid.is_none() => "never synced".into(),
            None => "-".into(),
        };
        let ack = s.acked_at.map_or("-".into(), |t| format!("{} ago", human_secs(now - t)));
        let rate = s.last_pass.as_ref().map_or("-".into(), |p| human_rate(p.bytes_per_second));
        let err = match &s.last_error {
            Some(e) if s.failing() => format!("{} ago, {}: {}", human_secs(now - e.at), e.phase, e.message),
            _ => "-".into(),
        };
        lines.push([pair, phase_text(r, now), lag, ack, rate, err]);
    }
    let widths: Vec<usize> = (0..5).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    for l in &lines {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            line.push_str(&format!("{:<w$}  ", l[i]));
        }
        line.push_str(&l[5]);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A Nagios state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Health {
    fn word(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::Warning => "WARNING",
            Health::Critical => "CRITICAL",
            Health::Unknown => "UNKNOWN",
        }
    }

    /// The exit status (the plugin convention's 0/1/2/3 are these statuses' numbers).
    pub fn status(self) -> Status {
        match self {
            Health::Ok => Status::Success,
            Health::Warning => Status::Failure,
            Health::Critical => Status::Usage,
            Health::Unknown => Status::Refused,
        }
    }
}

/// One pair's health and why.
pub fn judge(r: &Row, warn: f64, crit: f64) -> (Health, String) {
    let s = &r.state;
    let name = format!("{} -> {}", s.source, s.target);
    let lag = s.lag_seconds;
    let lag_text = lag.map_or(String::new(), |l| format!(", lag {}", human_secs(l)));
    if r.never_ran {
        return (Health::Critical, format!("{name}: never ran"));
    }
    if r.stale {
        return (Health::Critical, format!("{name}: stale, pid {} gone (was {}){lag_text}", s.pid, s.phase.name()));
    }
    if matches!(s.phase, Phase::Refused | Phase::Failed) {
        let why = s.last_error.as_ref().map_or(String::new(), |e| format!(": {}", e.message));
        return (Health::Critical, format!("{name}: {}{why}", s.phase.name()));
    }
    let Some(l) = lag else {
        return (Health::Critical, format!("{name}: the target never acknowledged a pass"));
    };
    if l >= crit {
        return (Health::Critical, format!("{name}: lag {} (critical at {})", human_secs(l), human_secs(crit)));
    }
    if l >= warn {
        return (Health::Warning, format!("{name}: lag {} (warning at {})", human_secs(l), human_secs(warn)));
    }
    if s.phase == Phase::Stopped {
        return (Health::Warning, format!("{name}: stopped{lag_text}"));
    }
    (Health::Ok, format!("{name}: {}{lag_text}", s.phase.name()))
}

/// The plugin's line and health.
pub fn check_line(rows: &[Row], errors: &[String], warn: f64, crit: f64, what: &str) -> (Health, String) {
    if rows.is_empty() {
        let why = errors.first().map_or(String::new(), |e| format!(" ({e})"));
        return (Health::Unknown, format!("HAMMER-MIRROR UNKNOWN - no pair state for {what}{why}"));
    }
    let judged: Vec<(Health, String)> = rows.iter().map(|r| judge(r, warn, crit)).collect();
    let worst = judged.iter().map(|(h, _)| *h).max().unwrap_or(Health::Unknown);
    let bad: Vec<&str> = judged.iter().filter(|(h, _)| *h == worst).map(|(_, t)| t.as_str()).collect();
    let ok = judged.iter().filter(|(h, _)| *h == Health::Ok).count();
    let summary = if worst == Health::Ok {
        if rows.len() == 1 { bad[0].to_string() } else { format!("{} pairs in sync", rows.len()) }
    } else {
        format!("{}; {ok} of {} pairs OK", bad.join("; "), rows.len())
    };
    let max_lag = rows.iter().filter_map(|r| r.state.lag_seconds).fold(0.0f64, f64::max);
    (worst, format!("HAMMER-MIRROR {} - {summary} | lag={max_lag:.0}s;{warn:.0};{crit:.0};0", worst.word()))
}

/// Runs `status`.
pub fn command(req: &Request<'_>, out: &mut dyn Write) -> anyhow::Result<Status> {
    let what = req.pair.map_or_else(
        || format!("any pair in {}", req.dir.map_or("(no state directory)".into(), |d| d.display().to_string())),
        |p| format!("{p} in {}", req.dir.map_or("(no state directory)".into(), |d| d.display().to_string())),
    );
    if let Some((warn, crit)) = req.check {
        let (health, line) = match rows(req) {
            Ok((rows, errors)) => check_line(&rows, &errors, warn, crit, &what),
            Err(e) => (Health::Unknown, format!("HAMMER-MIRROR UNKNOWN - {e:#}")),
        };
        writeln!(out, "{line}")?;
        return Ok(health.status());
    }
    let (rows, errors) = rows(req)?;
    for e in &errors {
        eprintln!("hammer-mirror: warning: {e}");
    }
    if req.json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else if rows.is_empty() {
        writeln!(out, "no pair state for {what}")?;
    } else {
        table(&rows, out)?;
    }
    if req.pair.is_some() && rows.is_empty() {
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(phase: Phase, lag: Option<f64>) -> Row {
        let mut s = PairState::new(None, "/m".into(), "/s".into(), "stream");
        s.phase = phase;
        s.lag_seconds = lag;
        s.acked_tid = lag.map(|_| 1);
        Row { state: s, alive: true, stale: false, state_file: None, last_verify: None, never_ran: false }
    }

    #[test]
    fn nagios_states_follow_lag_and_phase() {
        let j = |r: &Row| judge(r, 60.0, 3600.0).0;
        assert_eq!(j(&row(Phase::Idle, Some(0.0))), Health::Ok);
        assert_eq!(j(&row(Phase::Sending, Some(61.0))), Health::Warning);
        assert_eq!(j(&row(Phase::WaitingForRetry, Some(4000.0))), Health::Critical);
        assert_eq!(j(&row(Phase::Refused, Some(0.0))), Health::Critical);
        assert_eq!(j(&row(Phase::Idle, None)), Health::Critical, "never acknowledged");
        assert_eq!(j(&row(Phase::Stopped, Some(1.0))), Health::Warning);
        let mut stale = row(Phase::Idle, Some(0.0));
        stale.stale = true;
        assert_eq!(j(&stale), Health::Critical, "stale is never healthy");
        let (h, line) =
            check_line(&[row(Phase::Idle, Some(0.0)), row(Phase::Sending, Some(100.0))], &[], 60.0, 3600.0, "x");
        assert_eq!(h, Health::Warning);
        assert!(line.starts_with("HAMMER-MIRROR WARNING - /m -> /s: lag 100 s"), "{line}");
        assert!(line.ends_with("| lag=100s;60;3600;0"), "{line}");
        assert_eq!(check_line(&[], &[], 1.0, 2.0, "x").0, Health::Unknown);
        assert_eq!(Health::Critical.status() as i32, 2);
        assert_eq!(Health::Unknown.status() as i32, 3);
    }

    #[test]
    fn durations_read_for_people() {
        assert_eq!(human_secs(0.4), "0 s");
        assert_eq!(human_secs(119.0), "119 s");
        assert_eq!(human_secs(600.0), "10 min");
        assert_eq!(human_secs(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(human_secs(2.0 * 86400.0 + 4.0 * 3600.0), "2 d 4 h");
    }
}
