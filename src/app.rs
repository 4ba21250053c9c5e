//! Runs one parsed command line: the dispatch from `cli::Command` to the modules that do the work.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::{Config, CreatePolicy, Terminal};
use crate::endpoint::Endpoint;
use crate::error::{Stdout, usage};
use crate::event::Observer;
use crate::exit::Status;
use crate::mirror::write::Create;
use crate::progress::Reporter;
use crate::prompt::{ask, have_terminal};
use crate::store::Access;
use crate::transport::{self, Role, STDIN_READ_AHEAD};

/// Runs the command; the caller prints the error and maps it to an exit status.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    crate::ioctl::mapped::fix_malloc_threshold();
    let cfg = Config::from_cli(&cli.global, Terminal::probe())?;
    let g = &cli.global;
    let half = match &cli.command {
        Command::Read { .. } => Some("read"),
        Command::ReadStream { .. } => Some("read-stream"),
        Command::Write { .. } => Some("write"),
        Command::Watch { .. } => Some("watch"),
        Command::Status { .. } => Some("status"),
        _ => None,
    };
    if let Some(name) = half {
        crate::state::refuse_outside_orchestration(g, name)?;
    }
    match &cli.command {
        Command::Dump => {
            let stats = crate::mirror::dump::dump(io::stdin().lock(), io::BufWriter::new(Stdout))?;
            if g.verbose > 0 {
                eprintln!("Mirror-dump: {} records, {} bytes", stats.records, stats.bytes);
            }
            Ok(Status::Success)
        }
        Command::Read { pfs, begin_tid } => cmd_read(&cfg, pfs, *begin_tid, false),
        Command::ReadStream { pfs, begin_tid } => cmd_read(&cfg, pfs, *begin_tid, true),
        Command::Write { pfs } => cmd_write(&cfg, pfs),
        Command::Copy { source, targets } => cmd_copy(&cfg, g, source, targets, false),
        Command::Stream { source, targets, prune: None, .. } => cmd_copy(&cfg, g, source, targets, true),
        Command::Stream { source, targets, prune: Some(rules), prune_every } => {
            let path = crate::retention::cmd::check_auto_prune(&endpoint(source)?)?.to_path_buf();
            let auto = crate::retention::cmd::AutoPrune::new(
                &path,
                rules.clone(),
                std::time::Duration::from_secs(*prune_every),
            );
            *AUTO_PRUNE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(auto));
            cmd_copy(&cfg, g, source, targets, true)
        }
        Command::Snapshot { pfs, note } => {
            done(crate::retention::cmd::snapshot(pfs, note.as_deref(), g.json, &mut Stdout))
        }
        Command::Snapls { pfs } => done(crate::retention::cmd::snapls(pfs, g.json, &mut Stdout)),
        Command::Snaprm { pfs, tids } => done(crate::retention::cmd::snaprm(pfs, tids, &mut Stdout)),
        Command::Prune { pfs, keep, dry_run, force_below_targets, forget_target } => {
            let a = crate::retention::cmd::PruneArgs {
                keep: keep.as_ref(),
                dry_run: *dry_run,
                force_below_targets: *force_below_targets,
                forget: forget_target,
                json: g.json,
                quiet: cfg.output.quiet,
            };
            done(crate::retention::cmd::prune(pfs, &a, &mut Stdout))
        }
        Command::Compact { pfs } => done(crate::retention::cmd::compact(pfs, cfg.output.quiet)),
        Command::PfsMaster { pfs, options } => done(crate::pfscmd::create(pfs, false, options, &mut *said(&cfg))),
        Command::PfsSlave { pfs, options } => done(crate::pfscmd::create(pfs, true, options, &mut *said(&cfg))),
        Command::PfsStatus { pfs } => {
            let ok = crate::pfscmd::status(pfs, g.json, &mut Stdout)?;
            Ok(if ok { Status::Success } else { Status::Failure })
        }
        Command::PfsUpdate { pfs, options } => done(crate::pfscmd::update(pfs, options, &mut *said(&cfg))),
        Command::PfsUpgrade { pfs } => done(crate::pfscmd::change_mode(pfs, true, &mut *said(&cfg))),
        Command::PfsDowngrade { pfs } => done(crate::pfscmd::change_mode(pfs, false, &mut *said(&cfg))),
        Command::PfsDestroy { pfs } => {
            done(crate::pfscmd::destroy(pfs, g.yes, &ask, have_terminal(), &mut *said(&cfg)))
        }
        Command::Import { dir, pfs } => cmd_import(&cfg, dir, pfs),
        Command::SshRemote { role, prefix } => {
            crate::state::refuse_outside_orchestration(g, "ssh-remote")?;
            let original = std::env::var_os("SSH_ORIGINAL_COMMAND");
            let argv = crate::remote::check(*role, prefix, original.as_deref())?;
            let inner = <Cli as clap::Parser>::try_parse_from(&argv).map_err(|e| usage(format!("ssh-remote: {e}")))?;
            run(inner)
        }
        Command::Completions { shell } => {
            crate::completions::print(*shell, &mut Stdout).context("writing the completion script")?;
            Ok(Status::Success)
        }
        Command::Help { command } => crate::help::print(command.as_deref(), &mut Stdout).map(|()| Status::Success),
        Command::Run => {
            crate::fleet::run::run(&crate::fleet::run::config_path(g.config.as_ref()), g, Terminal::probe())?;
            Ok(Status::Success)
        }
        Command::Config { action: crate::cli::ConfigAction::Check } => {
            let path = crate::fleet::run::config_path(g.config.as_ref());
            let fleet = crate::fleet::config::load(&path, g, Terminal::probe())?;
            for w in &fleet.warnings {
                eprintln!("hammer-mirror: warning: {w}");
            }
            crate::fleet::check(&fleet, &path, &mut Stdout)?;
            Ok(Status::Success)
        }
        Command::Verify { a, b, as_of } => cmd_verify(&cfg, g, a, b, *as_of),
        Command::Scrub { pfs } => cmd_scrub(&cfg, pfs),
        Command::Repair { pfs, from } => cmd_repair(&cfg, pfs, from),
        Command::Export { pfs, dir, as_of, keep_going } => cmd_export(&cfg, pfs, dir, as_of.as_deref(), *keep_going),
        Command::Watch { dir, pfs } => crate::watch::command(&cfg, g, dir, pfs),
        Command::Status { check, warn, crit, pair } => {
            let thresholds = match (check, warn, crit) {
                (true, Some(w), Some(c)) if w > c => {
                    return Err(usage(format!("status --check: --warn ({w} s) is above --crit ({c} s)")));
                }
                (true, Some(w), Some(c)) => Some((*w as f64, *c as f64)),
                _ => None,
            };
            let dir = crate::state::file::dir(g.state_dir.as_deref());
            let config = crate::state::status::config_pairs(g);
            let req = crate::state::status::Request {
                dir: dir.as_deref(),
                pair: pair.as_deref(),
                json: g.json,
                check: thresholds,
                config,
            };
            crate::state::status::command(&req, &mut Stdout)
        }
    }
}

fn done(r: anyhow::Result<()>) -> anyhow::Result<Status> {
    r.map(|()| Status::Success)
}

fn endpoint(arg: &std::ffi::OsStr) -> anyhow::Result<Endpoint> {
    crate::endpoint::parse(arg).map_err(|e| usage(e.to_string()))
}

fn cmd_verify(
    cfg: &Config,
    g: &crate::cli::GlobalOpts,
    a: &std::ffi::OsStr,
    b: &std::ffi::OsStr,
    as_of: Option<u64>,
) -> anyhow::Result<Status> {
    let (ea, eb) = (endpoint(a)?, endpoint(b)?);
    let reporter = Reporter::new(crate::config::Output { bars: false, ..cfg.output }, ea.to_string(), eb.to_string());
    let obs: Arc<dyn Observer> = reporter.clone();
    let report = match crate::verify::verify(&ea, &eb, as_of, &cfg.ssh, &obs) {
        Ok(r) => {
            crate::state::record_verify(g, &ea, &eb, &r);
            r
        }
        Err(e) => {
            let e = e.context(format!("verify {ea} {eb}"));
            if cfg.output.json {
                reporter.json(&serde_json::json!({
                    "time": crate::log::timestamp(),
                    "event": "verify",
                    "a": ea.to_string(),
                    "b": eb.to_string(),
                    "result": "failed",
                    "reason": crate::error::reason(&e),
                }));
            }
            return Err(e);
        }
    };
    if cfg.output.json {
        writeln!(Stdout, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(Stdout, "{}", crate::verify::text(&report))?;
    }
    Ok(if report.identical { Status::Success } else { Status::Failure })
}

fn cmd_import(cfg: &Config, dir: &Path, path: &Path) -> anyhow::Result<Status> {
    let store = crate::pfs::open_store(path, Access::Write).context("import")?;
    if crate::ioctl::Pfs::get_pseudofs(&store)?.is_slave() {
        return Err(crate::error::refused(format!(
            "import: {} is a slave: only mirror-write changes it (pfs-upgrade makes it a master)",
            path.display()
        )));
    }
    let t = Instant::now();
    let st = crate::store::import::import(&store, dir)
        .with_context(|| format!("import {} into {}", dir.display(), path.display()))?;
    if !cfg.output.quiet {
        eprintln!(
            "Imported {} into {} as TID 0x{:016x}: {} files, {} directories, {} symlinks, {} unchanged, {} removed, {} records changed, {} bytes read in {:.2} s",
            dir.display(),
            path.display(),
            st.tid,
            st.files,
            st.dirs,
            st.symlinks,
            st.unchanged,
            st.removed,
            st.changed_records,
            st.bytes_read,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(Status::Success)
}

fn cmd_scrub(cfg: &Config, path: &Path) -> anyhow::Result<Status> {
    use crate::store::scrub;
    let store = crate::pfs::open_store(path, Access::Read).context("scrub")?;
    let r = scrub::scrub(&store).with_context(|| format!("scrub {}", path.display()))?;
    drop(store);
    // A slave remembers its damaged records, so that the next pass from its
    // master repairs them (when this process may write it).
    let mut recorded = false;
    if !r.damaged_records().is_empty()
        && let Ok(w) = crate::pfs::open_store(path, Access::Write)
    {
        let found: Vec<_> = r.damaged_records().into_iter().map(|(k, intact, _)| (k, intact)).collect();
        recorded = w.record_damage(&found).unwrap_or(false);
    }
    let mb_s = r.bytes as f64 / 1e6 / r.seconds.max(1e-6);
    if cfg.output.json {
        let mut v = serde_json::to_value(&r)?;
        v["time"] = crate::log::timestamp().into();
        v["event"] = "scrub".into();
        v["pfs"] = path.display().to_string().into();
        v["damaged"] = r.damaged().into();
        v["mb_per_s"] = ((mb_s * 10.0).round() / 10.0).into();
        println!("{v}");
    } else {
        for f in &r.findings {
            println!("damaged: {}", scrub::describe(f));
        }
        if r.more > 0 {
            println!("damaged: and {} more (only the first {} are listed)", r.more, scrub::MAX_FINDINGS);
        }
        if !cfg.output.quiet {
            eprintln!(
                "Scrubbed {}: {} pages, {} records, {} index entries, {} blobs, {} bytes in {:.2} s ({mb_s:.1} MB/s): {}",
                path.display(),
                r.pages,
                r.records,
                r.index_entries,
                r.blobs,
                r.bytes,
                r.seconds,
                if r.damaged() == 0 { "no damage".to_string() } else { format!("{} damaged", r.damaged()) }
            );
        }
    }
    if r.damaged() > 0 {
        let how = if recorded {
            format!(
                "the next copy or stream from its master repairs the records, or hammer-mirror repair {} --from <replica>",
                path.display()
            )
        } else {
            format!("repair it from a replica: hammer-mirror repair {} --from <replica>", path.display())
        };
        eprintln!("hammer-mirror: scrub: {}: {} damaged ({how})", path.display(), r.damaged());
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

fn cmd_repair(cfg: &Config, path: &Path, from: &Path) -> anyhow::Result<Status> {
    use crate::store::{repair, scrub};
    let found = {
        let store = crate::pfs::open_store(path, Access::Read).context("repair")?;
        scrub::scrub(&store).with_context(|| format!("repair: scrub {}", path.display()))?
    };
    if found.damaged() == 0 {
        if !cfg.output.quiet {
            eprintln!("Repair {}: scrub finds no damage; nothing to repair", path.display());
        }
        return Ok(Status::Success);
    }
    let target = crate::pfs::open_store(path, Access::Write).context("repair")?;
    let src = crate::pfs::open_store(from, Access::Read).context("repair: the replica")?;
    let done = repair::repair(&target, &src, &found)
        .with_context(|| format!("repair {} from {}", path.display(), from.display()))?;
    for line in &done.rewritten {
        println!("repaired: {line}");
    }
    for line in &done.left {
        println!("not repaired: {line}");
    }
    let after = scrub::scrub(&target).with_context(|| format!("repair: scrub {} again", path.display()))?;
    if !cfg.output.quiet {
        eprintln!(
            "Repair {} from {}: {} records rewritten, {} index entries and blobs fixed; scrub now finds {}",
            path.display(),
            from.display(),
            done.rewritten.len(),
            done.index_fixes,
            if after.damaged() == 0 { "no damage".to_string() } else { format!("{} damaged", after.damaged()) }
        );
    }
    if after.damaged() > 0 {
        for f in &after.findings {
            println!("damaged: {}", scrub::describe(f));
        }
        eprintln!(
            "hammer-mirror: repair: {}: {} damaged things remain (listed above)",
            path.display(),
            after.damaged()
        );
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

fn cmd_export(cfg: &Config, path: &Path, dir: &Path, as_of: Option<&str>, keep_going: bool) -> anyhow::Result<Status> {
    let store = crate::pfs::open_store(path, Access::Read).context("export")?;
    let asof = match as_of {
        Some(s) => crate::retention::cmd::resolve_as_of(&store, path, s)?,
        None => crate::store::export::default_asof(&store)?,
    };
    let pfsd = crate::ioctl::Pfs::get_pseudofs(&store)?;
    if pfsd.is_slave() && asof > pfsd.sync_end_tid {
        // Above it lies at most a pass the slave has not acknowledged: never shown.
        return Err(usage(format!(
            "export: {} is a slave whose history ends at its sync-end-tid {}; --as-of cannot go beyond it",
            path.display(),
            crate::log::tid(pfsd.sync_end_tid)
        )));
    }
    let created = !dir.exists();
    let st = match crate::store::export::export(&store, dir, asof, keep_going) {
        Ok(st) => st,
        Err(e) => {
            // A failed export leaves no half tree behind in a directory it made.
            if created {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(anyhow::Error::new(e).context(format!("export {} to {}", path.display(), dir.display())));
        }
    };
    for w in &st.warnings {
        eprintln!("Warning: {w}");
    }
    if !cfg.output.quiet {
        eprintln!(
            "Exported {} as of 0x{asof:016x} to {}: {} files, {} directories, {} symlinks, {} other, {} bytes",
            path.display(),
            dir.display(),
            st.files,
            st.dirs,
            st.symlinks,
            st.special,
            st.bytes
        );
    }
    if !st.warnings.is_empty() {
        // Like rsync's partial-transfer status: the tree is there, but not all of it.
        eprintln!(
            "hammer-mirror: export incomplete: {} objects were skipped (see the warnings above)",
            st.warnings.len()
        );
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

/// Signal flags: `stop` is set by SIGINT and SIGTERM, `interrupted` by SIGINT only.
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub interrupted: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers; with `ignore_hup`, SIGHUP no longer ends the
    /// process (nohup-proof).
    pub fn install(ignore_hup: bool) -> anyhow::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s = Signals { stop: Arc::new(AtomicBool::new(false)), interrupted: Arc::new(AtomicBool::new(false)) };
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&s.stop)).context("installing signal handlers")?;
            // A store waiting for another writer's lock gives up at once.
            signal_hook::flag::register(sig, crate::store::lock_wait_signal_flag())
                .context("installing signal handlers")?;
        }
        signal_hook::flag::register(SIGINT, Arc::clone(&s.interrupted)).context("installing signal handlers")?;
        if ignore_hup {
            signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false))).context("ignoring SIGHUP")?;
        }
        Ok(s)
    }
}

fn cmd_copy(
    cfg: &Config,
    g: &crate::cli::GlobalOpts,
    source: &std::ffi::OsStr,
    targets: &[std::ffi::OsString],
    streaming: bool,
) -> anyhow::Result<Status> {
    let src = endpoint(source)?;
    let mut dsts = Vec::with_capacity(targets.len());
    for t in targets {
        let dst = endpoint(t)?;
        crate::orchestrate::check_pair(&src, &dst)?;
        if dsts.contains(&dst) {
            return Err(usage(format!("the target {dst} is given twice")));
        }
        dsts.push(dst);
    }
    let sig = Signals::install(streaming)?;
    let monitor = crate::state::monitor(g, if streaming { "stream" } else { "copy" })?;
    if let [dst] = &dsts[..] {
        return run_pair(cfg, &src, dst, streaming, &sig, &monitor);
    }
    // Several targets: one conversation each, in parallel, each with its own
    // lines (a bar per target would fight over the terminal; a question
    // would be asked by several at once, so a missing slave needs -y).
    let mut each = cfg.clone();
    each.output.bars = false;
    if each.create == CreatePolicy::Ask {
        each.create = CreatePolicy::Refuse;
    }
    let results: Vec<anyhow::Result<Status>> = std::thread::scope(|scope| {
        let runs: Vec<_> =
            dsts.iter().map(|dst| scope.spawn(|| run_pair(&each, &src, dst, streaming, &sig, &monitor))).collect();
        runs.into_iter().map(|r| r.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a copy thread panicked")))).collect()
    });
    // The worst of the targets: a refusal, then a failure, then an interrupt.
    let mut worst = Status::Success;
    for r in results {
        let status = match r {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hammer-mirror: {e:#}");
                crate::exit::status_of(&e)
            }
        };
        worst = crate::exit::worst(worst, status);
    }
    Ok(worst)
}

/// `stream --prune`: what prunes the source after acknowledged passes (set
/// by `run` for the stream's threads, one per target, to share).
static AUTO_PRUNE: std::sync::Mutex<Option<Arc<crate::retention::cmd::AutoPrune>>> = std::sync::Mutex::new(None);

/// One source to one target: a copy, or a stream until stopped or refused.
fn run_pair(
    cfg: &Config,
    src: &Endpoint,
    dst: &Endpoint,
    streaming: bool,
    sig: &Signals,
    monitor: &Arc<crate::state::observer::Monitor>,
) -> anyhow::Result<Status> {
    let (s, d) = (src.to_string(), dst.to_string());
    let reporter = if streaming { Reporter::for_stream(cfg.output, s, d) } else { Reporter::new(cfg.output, s, d) };
    let state = monitor.pair(None, crate::state::name(src), crate::state::name(dst), reporter.clone());
    let mut obs = crate::state::observer::tee(reporter.clone(), Some(Arc::clone(&state)));
    if let Some(auto) = AUTO_PRUNE.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        obs = crate::retention::cmd::PruneOnPass::wrap(obs, auto);
    }
    let r = run_pair_with(cfg, src, dst, streaming, sig, &reporter, &obs, &state);
    state.flush();
    r
}

#[allow(clippy::too_many_arguments)]
fn run_pair_with(
    cfg: &Config,
    src: &Endpoint,
    dst: &Endpoint,
    streaming: bool,
    sig: &Signals,
    reporter: &Arc<Reporter>,
    obs: &Arc<dyn Observer>,
    state: &crate::state::observer::PairObserver,
) -> anyhow::Result<Status> {
    let started = Instant::now();
    let result = if streaming {
        reporter.message(
            crate::log::Level::Info,
            &format!(
                "{} stream {src} -> {dst}: started (pid {}, passes at least {} s apart, stall timeout {})",
                crate::log::timestamp(),
                std::process::id(),
                cfg.read.delay.as_secs(),
                cfg.stall_timeout.map_or_else(|| "off".to_string(), |d| format!("{} s", d.as_secs()))
            ),
        );
        crate::orchestrate::stream(cfg, obs, src, dst, &sig.stop).map(|()| None)
    } else {
        crate::orchestrate::copy(cfg, obs, src, dst, &sig.stop).map(Some)
    };
    reporter.finish();
    if let Ok(Some(o)) = &result
        && let (Some(tid), Endpoint::Remote(_), Endpoint::Remote(_)) = (o.acked_tid, src, dst)
    {
        // Both halves ran remotely: the acknowledgement is the run's outcome.
        let pass = crate::event::Pass {
            tid_beg: tid,
            tid_end: tid,
            records: 0,
            bytes: o.bytes,
            seconds: crate::progress::since(started),
            idle: o.bytes == 0,
            link_bytes: None,
        };
        crate::event::Observer::event(state, &crate::event::Event::PassDone(pass));
    }
    if sig.interrupted.load(Ordering::Relaxed) || sig.stop.load(Ordering::Relaxed) {
        state.finish(crate::state::Phase::Stopped);
    } else if matches!(result, Ok(Some(_))) {
        state.finish(crate::state::Phase::Done);
    }
    if sig.interrupted.load(Ordering::Relaxed) {
        reporter.stopped("SIGINT");
        return Ok(Status::Interrupted);
    }
    if sig.stop.load(Ordering::Relaxed) {
        reporter.stopped("SIGTERM");
        if !streaming {
            return Ok(Status::Terminated);
        }
    }
    let what = if streaming { "stream" } else { "copy" };
    match result {
        Err(e) => Err(e.context(format!("{what} {src} to {dst}"))),
        Ok(Some(o)) if matches!((src, dst), (Endpoint::Remote(_), Endpoint::Remote(_))) => {
            // Both halves ran remotely: no pass events reached us; report the run.
            reporter.report(&crate::progress::PassReport {
                time: crate::log::timestamp(),
                event: "pass",
                source: src.to_string(),
                target: dst.to_string(),
                tid_beg: None,
                tid_end: o.acked_tid.map(crate::log::tid),
                records: 0,
                bytes: o.bytes,
                link_bytes: o.bytes,
                ratio: crate::progress::ratio(o.bytes, o.bytes),
                seconds: crate::progress::since(started),
                result: "synced",
                reason: None,
            });
            Ok(Status::Success)
        }
        Ok(_) => Ok(Status::Success),
    }
}

/// Where a PFS command's confirmation goes: stdout, or nowhere with `-q`.
fn said(cfg: &Config) -> Box<dyn io::Write> {
    if cfg.output.quiet { Box::new(io::sink()) } else { Box::new(Stdout) }
}

fn cmd_read(cfg: &Config, path: &Path, begin_tid: Option<u64>, streaming: bool) -> anyhow::Result<Status> {
    if io::stdout().is_terminal() {
        return Err(usage(
            "refusing to write a binary mirror stream to a terminal; pipe it into `hammer-mirror write <pfs>` or a file",
        ));
    }
    let pfs =
        crate::pfs::open(path, Access::Read).map_err(|e| crate::mirror::in_half(e.into(), "mirror-read", path))?;
    let opts = crate::mirror::read::ReadOpts { streaming, begin_tid, ..cfg.read.clone() };
    let sig = Signals::install(false)?;
    let (stdin, stdout) = transport::stdio().context("duplicating stdin/stdout")?;
    let link = transport::stack(stdin, stdout, Role::Source, &cfg.link).context("setting up the link")?;
    let reporter = half_reporter(cfg, path.display().to_string(), "stdout".into());
    let r = crate::mirror::read::read_reopening(pfs, &opts, link.tx, link.rx, reporter.as_ref(), &sig.stop);
    reporter.finish();
    r?;
    Ok(Status::Success)
}

/// The reporter of a half run on its own: a remote half of copy (`-2`)
/// only speaks up with messages; its orchestrator reports the passes.
fn half_reporter(cfg: &Config, source: String, target: String) -> Arc<Reporter> {
    if cfg.read.two_way {
        Reporter::for_remote_half(cfg.output, source, target)
    } else {
        Reporter::new(cfg.output, source, target)
    }
}

fn cmd_write(cfg: &Config, path: &Path) -> anyhow::Result<Status> {
    let create = match cfg.create {
        CreatePolicy::Yes => Create::Yes,
        CreatePolicy::Ask => Create::Ask(&ask),
        CreatePolicy::Refuse => Create::Refuse,
    };
    let sig = Signals::install(false)?;
    let (stdin, stdout) = transport::stdio().context("duplicating stdin/stdout")?;
    // Keep draining the pipe (ssh) while the store waits for the disk.
    let link_opts = transport::LinkOpts { read_ahead: Some(STDIN_READ_AHEAD), ..cfg.link.clone() };
    let link = transport::stack(stdin, stdout, Role::Target, &link_opts).context("setting up the link")?;
    // In two-way mode stdout is the stream back to the source.
    let (back, mut text): (Box<dyn Write + Send>, Box<dyn Write>) =
        if cfg.write.two_way { (link.tx, Box::new(io::sink())) } else { (Box::new(io::sink()), Box::new(Stdout)) };
    let reporter = half_reporter(cfg, "stdin".into(), path.display().to_string());
    let opener = crate::pfs::PathOpener(path.to_path_buf());
    let r = crate::mirror::write::write(
        &opener,
        &cfg.write,
        create,
        link.rx,
        back,
        &mut *text,
        reporter.as_ref(),
        &sig.stop,
    );
    reporter.finish();
    r?;
    Ok(Status::Success)
}
