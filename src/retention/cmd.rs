//! The retention commands as the user sees them: snapshot, snapls, snaprm, prune, compact, and `export --as-of NOTE`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;

use super::Rules;
use crate::error::usage;
use crate::hammerfs::SnapshotData;
use crate::ioctl::{Pfs, SynctidOp};
use crate::log::{iso8601, tid as fmt_tid};
use crate::store::prune::{self, Plan, Policy};
use crate::store::{Access, Store};

/// The longest note a snapshot keeps (HAMMER's 64-byte label, NUL-terminated).
pub const NOTE_MAX: usize = 63;

fn snap_time(s: &SnapshotData) -> String {
    iso8601(UNIX_EPOCH + Duration::from_micros(s.ts))
}

/// `snapshot <pfs> [note]`: prints the TID.
pub fn snapshot(path: &Path, note: Option<&str>, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let note = note.unwrap_or("");
    if note.len() > NOTE_MAX {
        return Err(usage(format!("snapshot: the note is {} bytes; at most {NOTE_MAX} fit", note.len())));
    }
    if note.contains('\0') {
        return Err(usage("snapshot: the note contains a NUL byte"));
    }
    let mut pfs = crate::pfs::open(path, Access::Write).context("snapshot")?;
    let pfsd = pfs.get_pseudofs().context("snapshot")?;
    // A slave's state is what it acknowledged; a master's, its last TID.
    let tid = if pfsd.is_slave() { pfsd.sync_end_tid } else { pfs.synctid(SynctidOp::Sync2).context("snapshot")? };
    let now = crate::log::unix_now();
    let snap = SnapshotData::new(tid, (now * 1e6) as u64, note.as_bytes());
    pfs.add_snapshots(&[snap]).with_context(|| format!("snapshot {}", path.display()))?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"event": "snapshot", "pfs": path.display().to_string(), "tid": fmt_tid(tid), "time": snap_time(&snap), "note": note})
        )?;
    } else {
        writeln!(out, "{}", fmt_tid(tid))?;
    }
    Ok(())
}

/// `snapls <pfs>`.
pub fn snapls(path: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let pfs = crate::pfs::open(path, Access::Read).context("snapls")?;
    let snaps = pfs.snapshots().with_context(|| format!("snapls {}", path.display()))?;
    if json {
        for s in &snaps {
            writeln!(
                out,
                "{}",
                serde_json::json!({"event": "snapshot", "pfs": path.display().to_string(), "tid": fmt_tid(s.tid), "time": snap_time(s), "note": s.label_str()})
            )?;
        }
    } else {
        writeln!(out, "Snapshots on {}\t{} snapshots", path.display(), snaps.len())?;
        writeln!(out, "Transaction ID\t\tTimestamp\t\tNote")?;
        for s in &snaps {
            writeln!(out, "{}\t{}\t\"{}\"", fmt_tid(s.tid), snap_time(s), s.label_str())?;
        }
    }
    Ok(())
}

/// `snaprm <pfs> <tid>...`: all of them or none.
pub fn snaprm(path: &Path, tids: &[u64], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pfs = crate::pfs::open(path, Access::Write).context("snaprm")?;
    let have = pfs.snapshots().with_context(|| format!("snaprm {}", path.display()))?;
    for &t in tids {
        if have.binary_search_by_key(&t, |s| s.tid).is_err() {
            anyhow::bail!(
                "snaprm {}: no snapshot at TID {} (snapls lists them); nothing was deleted",
                path.display(),
                fmt_tid(t)
            );
        }
    }
    pfs.delete_snapshots(tids).with_context(|| format!("snaprm {}", path.display()))?;
    for &t in tids {
        writeln!(out, "Deleted snapshot {}", fmt_tid(t))?;
    }
    Ok(())
}

/// `export --as-of`: a TID, or the note of exactly one snapshot; refused
/// when a prune took that TID's state apart.
pub fn resolve_as_of(store: &Store, path: &Path, s: &str) -> anyhow::Result<u64> {
    let t = as_of_tid(store, path, s)?;
    if let Err(from) = prune::whole_at(store, t).context("export")? {
        return Err(usage(format!(
            "export: {} no longer holds TID {} whole: a prune kept every TID from {} and the ones \
             `prune --dry-run` lists below it",
            path.display(),
            fmt_tid(t),
            fmt_tid(from)
        )));
    }
    Ok(t)
}

fn as_of_tid(store: &Store, path: &Path, s: &str) -> anyhow::Result<u64> {
    if let Ok(t) = crate::cli::parse_tid(s) {
        return Ok(t);
    }
    let snaps = store.snapshots().context("export")?;
    let hits: Vec<u64> = snaps.iter().filter(|x| x.label_str() == s).map(|x| x.tid).collect();
    match hits[..] {
        [t] => Ok(t),
        [] => Err(usage(format!(
            "export: --as-of {s:?} is neither a TID nor the note of a snapshot of {} (snapls lists them)",
            path.display()
        ))),
        _ => Err(usage(format!(
            "export: --as-of {s:?}: {} snapshots of {} have that note ({}); give the TID",
            hits.len(),
            path.display(),
            hits.iter().map(|&t| fmt_tid(t)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The options of `prune`.
pub struct PruneArgs<'a> {
    pub keep: Option<&'a Rules>,
    pub dry_run: bool,
    pub force_below_targets: bool,
    pub forget: &'a [String],
    pub json: bool,
    pub quiet: bool,
}

/// `prune <pfs>`.
pub fn prune(path: &Path, a: &PruneArgs<'_>, out: &mut dyn Write) -> anyhow::Result<()> {
    // Read-only: the removal takes the writer lock batch by batch.
    let store = crate::pfs::open_store(path, Access::Read).context("prune")?;
    for u in a.forget {
        let uuid =
            uuid::Uuid::try_parse(u).map_err(|_| usage(format!("prune: --forget-target {u:?} is not a uuid")))?;
        let known = prune::targets(&store).context("prune")?.iter().any(|t| t.uuid == uuid.to_bytes_le());
        if !known {
            return Err(usage(format!("prune: {} knows no target {uuid}", path.display())));
        }
        if a.dry_run {
            if !a.quiet {
                eprintln!("Would forget target {uuid} of {} (a dry run forgets nothing)", path.display());
            }
            continue;
        }
        let w = Store::open(path, Access::Write).context("prune")?;
        prune::forget_target(&w, &uuid.to_bytes_le()).with_context(|| format!("prune {}", path.display()))?;
        if !a.quiet {
            eprintln!("Forgot target {uuid} of {}", path.display());
        }
    }
    let policy = Policy {
        rules: a.keep.cloned(),
        force_below_targets: a.force_below_targets,
        now: crate::log::unix_now() as u64,
    };
    let plan = prune::plan(&store, &policy).with_context(|| format!("prune {}", path.display()))?;
    let mut done = None;
    if !a.dry_run {
        let t = std::time::Instant::now();
        let o = prune::apply(&store, &plan).with_context(|| format!("prune {}", path.display()))?;
        done = Some((o, t.elapsed()));
    }
    let targets = prune::targets(&store).with_context(|| format!("prune {}", path.display()))?;
    report(path, &plan, &targets, a, done.as_ref().map(|(o, _)| o.commits), out)?;
    if let Some(t) = &plan.overridden
        && !a.quiet
        && !a.dry_run
    {
        eprintln!(
            "hammer-mirror: warning: prune {}: --force-below-targets: {} acknowledged only {}; its next pass is a full sweep",
            path.display(),
            t.name(),
            fmt_tid(t.tid)
        );
    }
    if let (Some((o, elapsed)), false) = (done, a.quiet) {
        eprintln!(
            "Pruned {}: {} records, {} bytes removed in {} commits, {:.2} s",
            path.display(),
            o.records,
            o.bytes,
            o.commits,
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// What a prune keeps and removes: lines, or one JSON object.
fn report(
    path: &Path,
    p: &Plan,
    targets: &[prune::Target],
    a: &PruneArgs<'_>,
    commits: Option<u64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let held = p.held_by.as_ref().map(|t| {
        serde_json::json!({"uuid": crate::mrecord::uuid_from_wire(&t.uuid).to_string(), "label": t.label, "tid": fmt_tid(t.tid)})
    });
    if a.json {
        let kept: Vec<_> = p
            .kept
            .iter()
            .map(|(t, w)| {
                let mut o = serde_json::json!({"tid": fmt_tid(*t), "why": w.as_str()});
                if let prune::Why::Snapshot(n) = w {
                    o["note"] = n.clone().into();
                }
                o
            })
            .collect();
        let o = serde_json::json!({
            "event": "prune",
            "time": crate::log::timestamp(),
            "pfs": path.display().to_string(),
            "dry_run": a.dry_run,
            "rules": a.keep.map(|r| r.to_string()),
            "current": fmt_tid(p.current),
            "kept": kept,
            "kept_from": fmt_tid(p.horizon),
            "kept_from_why": p.horizon_why.as_str(),
            "held_back_by": held,
            "targets": targets.iter().map(|t| serde_json::json!({
                "uuid": crate::mrecord::uuid_from_wire(&t.uuid).to_string(),
                "label": t.label,
                "tid": fmt_tid(t.tid),
                "time": iso8601(UNIX_EPOCH + Duration::from_secs(t.time)),
            })).collect::<Vec<_>>(),
            "records_removed": p.records,
            "bytes_removed": p.bytes,
            "commits": commits,
        });
        writeln!(out, "{o}")?;
        return Ok(());
    }
    if a.quiet {
        return Ok(());
    }
    let verb = if a.dry_run { "would keep" } else { "keeps" };
    writeln!(out, "Prune {} {verb}:", path.display())?;
    for (t, w) in &p.kept {
        match w {
            prune::Why::Snapshot(n) => writeln!(out, "    {}  snapshot \"{n}\"", fmt_tid(*t))?,
            w => writeln!(out, "    {}  {}", fmt_tid(*t), w.as_str())?,
        }
    }
    let from = match (&p.held_by, &p.horizon_why) {
        (Some(t), _) => format!("held back by {}, which acknowledged it", t.name()),
        (None, prune::Why::Current) => "the current state".to_string(),
        (None, w) => format!("{} and everything after it", w.as_str()),
    };
    writeln!(out, "    {}  and every TID after it ({from})", fmt_tid(p.horizon))?;
    let verb = if a.dry_run { "would go" } else { "go" };
    writeln!(out, "{} records, {} bytes {verb}", p.records, p.bytes)?;
    for t in targets {
        writeln!(
            out,
            "{} acknowledged {} at {}",
            t.name(),
            fmt_tid(t.tid),
            iso8601(UNIX_EPOCH + Duration::from_secs(t.time))
        )?;
    }
    Ok(())
}

/// `compact <pfs>`.
pub fn compact(path: &Path, quiet: bool) -> anyhow::Result<()> {
    crate::pfs::open_store(path, Access::Read).context("compact")?;
    let t = std::time::Instant::now();
    let c = crate::store::compact::compact(path).with_context(|| format!("compact {}", path.display()))?;
    if !quiet {
        eprintln!(
            "Compacted {}: {} -> {} bytes in {:.2} s",
            path.display(),
            c.before,
            c.after,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `stream --prune`: prunes the local master after an acknowledged pass,
/// at most once per `every`, on a thread of its own (the stream goes on).
pub struct AutoPrune {
    path: std::path::PathBuf,
    rules: Rules,
    every: Duration,
    last: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AutoPrune {
    pub fn new(path: &Path, rules: Rules, every: Duration) -> AutoPrune {
        AutoPrune { path: path.to_path_buf(), rules, every, last: Default::default(), running: Default::default() }
    }

    /// A pass was acknowledged: prune if the interval has passed (messages
    /// go to `say`). True when a prune started.
    pub fn after_pass(&self, say: std::sync::Arc<dyn Fn(crate::log::Level, String) + Send + Sync>) -> bool {
        use std::sync::atomic::Ordering;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.every) || self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        let (path, rules, running) = (self.path.clone(), self.rules.clone(), self.running.clone());
        let last_run = std::sync::Arc::clone(&self.last);
        std::thread::spawn(move || {
            let r = (|| -> anyhow::Result<Option<prune::Outcome>> {
                // Another writer now (an import, watch): at a later pass.
                if Store::open_writer_now(&path)?.is_none() {
                    return Ok(None);
                }
                let store = Store::open(&path, Access::Read)?;
                let policy =
                    Policy { rules: Some(rules), force_below_targets: false, now: crate::log::unix_now() as u64 };
                let plan = prune::plan(&store, &policy)?;
                let o = prune::apply(&store, &plan)?;
                if let Some(t) = &plan.held_by {
                    say(
                        crate::log::Level::Info,
                        format!(
                            "prune {}: history from {} is held back by {}",
                            path.display(),
                            fmt_tid(t.tid),
                            t.name()
                        ),
                    );
                }
                Ok(Some(o))
            })();
            running.store(false, Ordering::Release);
            match r {
                Ok(Some(o)) => say(
                    crate::log::Level::Info,
                    format!("prune {}: {} records, {} bytes removed", path.display(), o.records, o.bytes),
                ),
                Ok(None) => {
                    // Not pruned: the next acknowledged pass tries again.
                    *last_run.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    say(
                        crate::log::Level::Info,
                        format!("prune {}: the PFS is busy (another writer); pruning at a later pass", path.display()),
                    )
                }
                Err(e) => say(crate::log::Level::Warn, format!("prune {}: {e:#}", path.display())),
            }
        });
        drop(last);
        true
    }
}

/// Passes events on, and prunes the source after each acknowledged pass
/// with work (`stream --prune`, `prune` in `run`'s configuration).
pub struct PruneOnPass {
    inner: std::sync::Arc<dyn crate::event::Observer>,
    auto: std::sync::Arc<AutoPrune>,
}

impl PruneOnPass {
    pub fn wrap(
        inner: std::sync::Arc<dyn crate::event::Observer>,
        auto: std::sync::Arc<AutoPrune>,
    ) -> std::sync::Arc<dyn crate::event::Observer> {
        std::sync::Arc::new(PruneOnPass { inner, auto })
    }
}

impl crate::event::Observer for PruneOnPass {
    fn event(&self, e: &crate::event::Event) {
        self.inner.event(e);
        if let crate::event::Event::PassDone(p) = e
            && !p.idle
        {
            let inner = std::sync::Arc::clone(&self.inner);
            let _started = self.auto.after_pass(std::sync::Arc::new(move |level, text| {
                inner.event(&crate::event::Event::message(level, text))
            }));
        }
    }
}

/// `stream --prune` needs the source here: the usage error otherwise.
pub fn check_auto_prune(src: &crate::endpoint::Endpoint) -> anyhow::Result<&Path> {
    match src {
        crate::endpoint::Endpoint::Local(p) => Ok(p),
        other => Err(usage(format!(
            "stream --prune: the source {other} is on another host; run `hammer-mirror prune` there (or a stream with --prune from it)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, mpsc};

    #[test]
    fn an_automatic_prune_runs_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        drop(Store::create(&path, &crate::pfs::init_pfsd(false), 1).unwrap());
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let say: Arc<dyn Fn(crate::log::Level, String) + Send + Sync> =
            Arc::new(move |_, text| drop(tx.lock().unwrap().send(text)));
        let hourly = AutoPrune::new(&path, Rules::parse("1d:all").unwrap(), Duration::from_secs(3600));
        assert!(hourly.after_pass(Arc::clone(&say)));
        let said = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(said.contains("records") && said.contains("removed"), "{said}");
        assert!(!hourly.after_pass(Arc::clone(&say)), "within the hour: no second prune");
        let always = AutoPrune::new(&path, Rules::parse("1d:all").unwrap(), Duration::ZERO);
        assert!(always.after_pass(Arc::clone(&say)));
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(always.after_pass(Arc::clone(&say)), "no interval: the next pass prunes again");
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
    }
}
