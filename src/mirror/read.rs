//! The source half (`mirror-read`, `mirror-read-stream`): PFSD exchange, prescan chunks, bulk records, SYNC/IDLE/TERM.
//!
//! A transcription of `hammer_cmd_mirror_read` over `Write`/`Read` instead
//! of fds 1 and 0, with the same messages at each verbosity. Deliberate
//! differences, each because hammer's behaviour loses work or hangs:
//! * `-i` is the least time between the starts of two stream passes, not
//!   a sleep after each pass and another after an idle one, so a new TID
//!   is sent as soon as it exists once `-i` has passed;
//! * in two-way mode a `-t` timeout sends TERM instead of waiting for an
//!   UPDATE that the target never sends (hammer deadlocks there);
//! * a read continued from a cycle file sends the interrupted pass again
//!   from the first key (with its begin TID), so that the target neither
//!   marks the part already sent deleted nor misses what changed there;
//! * a completed one-way read saves `(start, tid_end)` in the cycle file, so
//!   the next run sends the next increment (hammer saves a useless key);
//! * the prescan histogram is redone for each new stream pass instead of
//!   being indexed past its end;
//! * a one-way `mirror-read-stream` starts each pass after the TID the
//!   previous one ended at (hammer sends the whole history again);
//! * a target that carries a resume token (see [`super::resume`]) gets the
//!   pass it lost the link in again from the key it names, after a SKIP
//!   over what it has, before the next pass.
//!
//! hammer's `-v` animation ("Running", the `scan obj=...` line) becomes
//! [`crate::log::Level::Debug`] messages, its routine messages `Info`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::histogram::{self, Histogram};
use super::resume::Resume;
use super::{cycle, pfs_header, read_peer_pfsd, recv_error, send_error};
use crate::error::{peer_gone, refused};
use crate::event::{Event, Observer, Pass, Say};
use crate::ioctl::{HEAD_ERROR, MirrorRw, Pfs};
use crate::log::LineWriter;
use crate::mrecord::{BaseElm, PSEUDOFS_VERSION, Record, RecordReader, RecordWriter, SERIALBUF_SIZE};

/// Options of the source half (hammer's global options that concern it).
#[derive(Debug, Clone)]
pub struct ReadOpts {
    pub verbose: u8,
    /// `-2`: the target sends its PFSD first and acknowledges every pass.
    pub two_way: bool,
    /// `mirror-read-stream`: wait for new TIDs and send them, forever.
    pub streaming: bool,
    /// `-t`: stop after this long.
    pub timeout: Option<Duration>,
    /// `-S`: prescan chunk size.
    pub splitup: u64,
    /// `-c`: the cycle file.
    pub cycle_file: Option<PathBuf>,
    /// `-i`: minimum time between stream passes.
    pub delay: Duration,
    /// `-B`: no prescan.
    pub bulk: bool,
    /// The optional `begin-tid` argument.
    pub begin_tid: Option<u64>,
    /// Passes with work hold a permit of this gate from their first record
    /// to the target's acknowledgement (`run`'s `max_concurrent`).
    pub gate: Option<std::sync::Arc<crate::gate::Gate>>,
    /// Streaming: after this long without new TIDs, send an empty pass
    /// (PFSD, PFSD, IDLE, answered by UPDATE) so that the other side can tell
    /// an idle link from a dead one. Any hammer target accepts it.
    pub heartbeat: Option<Duration>,
}

impl Default for ReadOpts {
    fn default() -> Self {
        ReadOpts {
            verbose: 0,
            two_way: false,
            streaming: false,
            timeout: None,
            splitup: crate::defaults::SPLITUP,
            cycle_file: None,
            delay: Duration::from_secs(crate::defaults::DELAY),
            bulk: false,
            begin_tid: None,
            heartbeat: None,
            gate: None,
        }
    }
}

/// How a read ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// Passes (prescan chunks and stream increments) that ended in SYNC or IDLE.
    pub passes: u64,
    /// Stream bytes written.
    pub bytes: u64,
    /// The last TID the target acknowledged (two-way mode).
    pub acked_tid: Option<u64>,
    /// Stopped by `-t`.
    pub interrupted: bool,
    /// The target sent TERM instead of its PFSD.
    pub peer_terminated: bool,
    /// Records sent as REC_BADCRC (their data is damaged on the source).
    pub bad_crc: u64,
    /// Times the store file was opened again because `compact` replaced it.
    pub reopened: u64,
}

/// Where the scan of one pass stands (for progress).
fn scan_line(m: &MirrorRw, total: u64) -> String {
    format!("\rscan obj={:016x} tids={:016x}:{:016x} {:>11}", m.key_cur.obj_id as u64, m.tid_beg, m.tid_end, total)
}

/// Runs the source half until the stream ends (one-shot: after the last
/// chunk; streaming: when `stop` is set or the peer goes away). `out` is the
/// stream to the target, `back` the target's answers (read only with `-2`).
/// Errors name the half and the PFS ("mirror-read <pfs>: ...").
pub fn read(
    pfs: &dyn Pfs,
    opts: &ReadOpts,
    out: impl Write,
    back: impl Read,
    obs: &dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<ReadSummary> {
    read_inner(Source::Borrowed(pfs), opts, out, back, obs, stop)
        .map_err(|e| super::in_half(e, "mirror-read", pfs.path()))
}

/// [`read`] of a PFS it owns: a store file that `compact` replaces while
/// the read waits for a new TID is opened again (the old one closed first),
/// and the stream goes on.
pub fn read_reopening(
    pfs: Box<dyn Pfs>,
    opts: &ReadOpts,
    out: impl Write,
    back: impl Read,
    obs: &dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<ReadSummary> {
    let path = pfs.path().to_path_buf();
    read_inner(Source::Owned(Some(pfs)), opts, out, back, obs, stop)
        .map_err(|e| super::in_half(e, "mirror-read", &path))
}

/// The PFS a read sends.
enum Source<'a> {
    Borrowed(&'a dyn Pfs),
    /// None only while a replaced store file is opened again.
    Owned(Option<Box<dyn Pfs>>),
}

impl Source<'_> {
    fn get(&self) -> &dyn Pfs {
        match self {
            Source::Borrowed(p) => *p,
            Source::Owned(p) => p.as_deref().expect("the PFS is open at the start of a pass"),
        }
    }
}

fn read_inner(
    mut source: Source<'_>,
    opts: &ReadOpts,
    out: impl Write,
    back: impl Read,
    obs: &dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<ReadSummary> {
    let path = source.get().path().to_path_buf();
    let fs = path.display().to_string();
    // hammer's -v animation, as Debug lines.
    let mut chat = LineWriter::new(|l: &str| obs.debug(l));
    let log = &mut chat;
    let start = Instant::now();
    let mut w = RecordWriter::new(out);
    let mut r = RecordReader::new(back);
    let mut summary = ReadSummary::default();
    // The scan buffer: taken for a pass with work, given back after it.
    let mut buf: Vec<u8> = Vec::new();
    // hammer's `streaming`: 1 = read-stream, 0 = one-shot, -1 = one-shot
    // running prescan chunks.
    let mut streaming: i32 = i32::from(opts.streaming);
    let mut hist: Option<(Histogram, usize)> = None;
    let mut repeat = false;
    // The begin-tid argument, until the first pass has used it.
    let mut begin_tid = opts.begin_tid;
    // One-way streaming: where the next pass starts (after the last one's end).
    let mut next_beg: Option<u64> = None;
    let mut sameline = false;
    let mut ack_warned = false;
    let mut recorded: Option<([u8; 16], u64)> = None;
    let v = opts.verbose;
    let send = |w: &mut RecordWriter<_>, rec: &Record<'_>| -> anyhow::Result<()> {
        w.write_record(rec).map_err(|e| send_error(e, "target"))
    };
    let flush = |w: &mut RecordWriter<_>| -> anyhow::Result<()> { w.flush().map_err(|e| send_error(e, "target")) };

    'again: loop {
        let pfs: &dyn Pfs = source.get();
        let mut m = MirrorRw::for_read(0, 0);
        if streaming >= 0 && v == 1 {
            write!(log, "{}Running  \x08\x08", if sameline { '\r' } else { '\n' })?;
        }
        sameline = true;
        let mut total_bytes: u64 = 0;
        let mut records: u64 = 0;

        // PFSD #1: who we are (the target checks the shared uuid).
        let own = pfs_header(pfs)?;
        send(&mut w, &Record::Pfsd { version: PSEUDOFS_VERSION, pfsd: own })?;
        flush(&mut w)?;

        // A target that kept a partial pass of ours: this pass finishes it.
        let mut resume_at: Option<Resume> = None;
        // The target's PFSD (two-way): whose acknowledgement to record.
        let mut peer = None;
        if opts.two_way {
            match read_peer_pfsd(pfs, &mut r, false)? {
                None => {
                    summary.peer_terminated = true;
                    return Ok(summary);
                }
                Some(target) => {
                    // Never trust a target that claims to be ahead of us.
                    if target.sync_end_tid > own.sync_end_tid {
                        return Err(refused(format!(
                            "the target claims sync-end-tid {:#018x}, beyond the source's {:#018x}; \
                             the target does not hold this PFS's history",
                            target.sync_end_tid, own.sync_end_tid
                        )));
                    }
                    m.tid_beg = target.sync_end_tid + 1;
                    // A target behind what this PFS pruned gets a full sweep
                    // pass (below), never the rest of a partial incremental one.
                    let stale = target.sync_end_tid < own.sync_end_tid && target.sync_end_tid < pfs.pruned_to()?;
                    resume_at = super::resume::get(&target)
                        .filter(|t| !stale && t.tid_end > target.sync_end_tid && t.tid_end <= own.sync_end_tid);
                    peer = Some(target);
                }
            }
        } else if let (true, Some((h, idx))) = (streaming != 0, &hist) {
            m.tid_beg = h.chunks[*idx].tid + 1;
        } else if let Some(b) = next_beg {
            m.tid_beg = b;
        }

        // PFSD #2: the TID range of this pass.
        let mut pfsd = pfs_header(pfs)?;
        m.tid_beg = m.tid_beg.max(pfsd.sync_beg_tid);
        m.tid_end = pfsd.sync_end_tid;
        m.pfs_id = pfs.pfs_id();
        m.shared_uuid = pfsd.shared_uuid;

        // An explicit begin TID starts the first pass, and bounds its
        // prescan. (hammer prescans from the PFS's start and then sets the
        // begin TID on every pass: the prescan reads the whole history, and
        // each chunk is sent again from the begin TID.)
        let explicit_begin = begin_tid.take();
        if let Some(t) = explicit_begin {
            m.tid_beg = t;
        }
        // A target behind what this PFS pruned may hold records whose removal
        // no incremental pass mentions: a full sweep pass sends every record,
        // and the target marks what it has beyond them deleted. Records it
        // lacks from before its sync-end-tid (those it pruned itself) it
        // leaves out, as the announced begin TID says.
        let full_sweep = match &peer {
            Some(t) if explicit_begin.is_none() && t.sync_end_tid < own.sync_end_tid => {
                let pruned = pfs.pruned_to()?;
                (t.sync_end_tid < pruned && m.tid_beg > 1).then_some((t.sync_end_tid, pruned))
            }
            _ => None,
        };
        if let Some((theirs, pruned)) = full_sweep {
            obs.info(format!(
                "Mirror-read: the target's sync-end-tid {theirs:016x} is below the history this PFS pruned \
                 (to {pruned:016x}): a full sweep pass"
            ));
            m.tid_beg = 1;
            pfsd.sync_beg_tid = theirs + 1;
            hist = None;
        }
        if hist.is_none() && !opts.bulk && resume_at.is_none() && full_sweep.is_none() {
            if v > 0 && !repeat {
                writeln!(log)?;
                sameline = false;
            }
            let h =
                histogram::generate(pfs, &m, opts.splitup, v, !repeat, &mut LineWriter::new(|l: &str| obs.info(l)))?;
            obs.event(&Event::Prescan { total: h.total, chunks: h.max_index() });
            repeat = true;
            hist = Some((h, 0));
            if streaming == 0 {
                streaming = -1;
            }
        }
        let mut estbytes = 0;
        if let (true, Some((h, idx))) = (streaming != 0, &mut hist) {
            *idx += 1;
            m.tid_end = h.chunks[*idx].tid;
            estbytes = h.chunks[*idx - 1].bytes;
            pfsd.sync_end_tid = m.tid_end;
        }
        if let Some(t) = resume_at {
            m.tid_end = t.tid_end;
            pfsd.sync_end_tid = t.tid_end;
        }
        send(&mut w, &Record::Pfsd { version: PSEUDOFS_VERSION, pfsd })?;

        if !opts.two_way
            && hist.is_none()
            && next_beg.is_none()
            && let Some(cf) = &opts.cycle_file
            && let cycle::Cycle::Found { key, tid } = cycle::read(cf, obs)?
        {
            // A continuation sends the interrupted pass again from the first
            // key: a target discards a pass that got no SYNC, and the keys
            // sent before the interruption may have changed since.
            if key != BaseElm::key_beg_init() {
                obs.info(format!(
                    "Mirror-read: continuing the pass interrupted at object {:016x} from the first key",
                    key.obj_id as u64
                ));
            }
            if let Some(t) = tid {
                m.tid_beg = t;
            }
        }
        // As in hammer, the argument wins over the cycle file's TID.
        if let Some(t) = explicit_begin {
            m.tid_beg = t;
        }
        if streaming == 0 || v >= 2 {
            let bulk = if hist.is_some() { format!(" (bulk= {estbytes})") } else { String::new() };
            obs.info(format!("Mirror-read: Mirror {:016x} to {:016x}{bulk}", m.tid_beg, m.tid_end));
        }

        let mut interrupted = false;
        let didwork = m.tid_beg < m.tid_end;
        let pass_start = Instant::now();
        let pass_beg = m.tid_beg.min(m.tid_end);
        obs.event(&Event::PassStarted {
            tid_beg: pass_beg,
            tid_end: m.tid_end,
            estimate: if hist.is_some() { Some(estbytes) } else { None },
        });
        // Held until the target acknowledges the pass.
        let mut permit = None;
        if !didwork {
            if streaming == 0 || v >= 2 {
                obs.info("Mirror-read: No work to do");
            }
            hist = None;
        } else {
            if let Some(g) = &opts.gate {
                // Queued behind other passes: not a stall.
                permit = g.acquire(
                    || obs.event(&Event::Progress { bytes: 0, link_bytes: None }),
                    || stop.load(Ordering::Relaxed),
                );
            }
            if let Some(t) = resume_at {
                // The target holds everything before the key: say so with a
                // SKIP (it checks that this is exactly where it stopped).
                obs.info(format!(
                    "Mirror-read: resuming the pass to {:016x} at object {:016x}, where the target stopped",
                    t.tid_end, t.key.obj_id as u64
                ));
                send(&mut w, &Record::Skip { beg: BaseElm::key_beg_init(), end: t.key })?;
                m.key_beg = t.key;
            }
            buf.resize(SERIALBUF_SIZE, 0);
            loop {
                let n = pfs.mirror_read(&mut m, &mut buf)?;
                if m.flags & HEAD_ERROR != 0 {
                    bail!("the scan failed with error {} ({})", m.error, std::io::Error::from_raw_os_error(m.error));
                }
                if n > 0 {
                    w.write_raw(&buf[..n]).map_err(|e| send_error(e, "target"))?;
                    for (_, head, body) in crate::mrecord::heads(&buf[..n]) {
                        records += 1;
                        if head.rtype & crate::mrecord::rtype::TYPE_MASK == crate::mrecord::rtype::REC_BADCRC {
                            let l = crate::mrecord::LeafElm::decode(&body[crate::mrecord::HEAD_SIZE..]);
                            obs.warn(format!(
                                "Mirror-read {fs}: warning: obj={:016x} rt={:02x} key={:016x} tid={:016x} has \
                                 damaged data: sent as REC_BADCRC (the target does not apply it; \
                                 repair the source from a replica: hammer-mirror repair)",
                                l.base.obj_id as u64, l.base.rec_type, l.base.key as u64, l.base.create_tid
                            ));
                            summary.bad_crc += 1;
                        }
                    }
                }
                total_bytes += n as u64;
                obs.event(&Event::Progress { bytes: total_bytes, link_bytes: None });
                if streaming != 0 && v > 0 {
                    write!(log, "{}", scan_line(&m, total_bytes))?;
                    sameline = false;
                }
                m.key_beg = m.key_cur;
                if opts.timeout.is_some_and(|t| start.elapsed() > t) {
                    obs.warn(format!("Mirror-read {fs} interrupted by timer at {:016x}", m.key_cur.obj_id as u64));
                    interrupted = true;
                    break;
                }
                if n == 0 {
                    break;
                }
            }
        }
        summary.bytes = w.bytes_written();
        if streaming != 0 && v > 0 && !sameline {
            writeln!(log)?;
            sameline = true;
        }
        if !interrupted {
            send(&mut w, if didwork { &Record::Sync } else { &Record::Idle })?;
        }
        flush(&mut w)?;
        let pass = |tid_end: u64| Pass {
            tid_beg: pass_beg,
            tid_end,
            records,
            bytes: total_bytes,
            seconds: pass_start.elapsed().as_secs_f64(),
            idle: !didwork,
            link_bytes: None,
        };

        if opts.two_way && !interrupted {
            let tid = match r.next_record().map_err(|e| recv_error(e, "target"))? {
                Some(Record::Update { tid }) => tid,
                None => return Err(peer_gone("the target hung up before acknowledging the pass")),
                Some(other) => bail!(
                    "the target answered with a {} record instead of acknowledging the pass (UPDATE)",
                    crate::mrecord::rtype::name(other.type_word())
                ),
            };
            summary.acked_tid = Some(tid);
            summary.passes += 1;
            // Heartbeats acknowledge the same TID again: recorded once.
            // Never this PFS itself (verify answers with our own PFSD) nor
            // a peer without a unique uuid: neither is a target to wait for.
            if let Some(t) = &peer
                && t.unique_uuid != own.unique_uuid
                && t.unique_uuid != [0; 16]
                && recorded != Some((t.unique_uuid, tid))
                && record_ack(pfs, t, tid, obs, &mut ack_warned)
            {
                recorded = Some((t.unique_uuid, tid));
            }
            obs.event(&Event::PassDone(pass(tid)));
            if let Some(cf) = &opts.cycle_file {
                cycle::write(cf, &BaseElm::key_beg_init(), tid)?;
                obs.info(format!("Cyclefile {} updated to 0x{tid:016x}", cf.display()));
            }
        } else if let Some(cf) = &opts.cycle_file {
            if interrupted {
                cycle::write(cf, &m.key_cur, m.tid_beg)?;
                obs.info(format!("Cyclefile {} updated for continuation", cf.display()));
            } else {
                // One-way: the stream is complete; the next run starts after it.
                cycle::write(cf, &BaseElm::key_beg_init(), m.tid_end)?;
                obs.info(format!("Cyclefile {} updated to 0x{:016x}", cf.display(), m.tid_end));
            }
        }
        if !opts.two_way && !interrupted {
            summary.passes += 1;
            obs.event(&Event::PassDone(pass(m.tid_end)));
            next_beg = Some(m.tid_end + 1);
        }
        summary.interrupted = interrupted;
        drop(permit);
        buf = Vec::new();
        r.release_idle();

        // A resumed pass ends below the source's TID: a copy goes on with the rest.
        if resume_at.is_some_and(|t| own.sync_end_tid > t.tid_end)
            && streaming == 0
            && !interrupted
            && !stop.load(Ordering::Relaxed)
        {
            continue 'again;
        }
        if streaming != 0 && !interrupted && !stop.load(Ordering::Relaxed) {
            if let Some((h, idx)) = &hist {
                if *idx != h.max_index() {
                    if v == 1 && streaming >= 0 {
                        write!(log, " (bulk incremental)")?;
                    }
                    continue 'again;
                }
                hist = None;
            }
            if v > 0 && streaming >= 0 {
                write!(log, " W")?;
            }
            // streaming < 0 (one-shot prescan chunks) ends here, with TERM.
            if streaming > 0 {
                let mut target = pfs_header(pfs)?;
                target.sync_end_tid = m.tid_end;
                match wait_for_new_tid(pfs, &target, stop, opts.heartbeat) {
                    // Between passes nothing is in flight: the stream goes on from the new file.
                    Err(e)
                        if matches!(e.downcast_ref(), Some(crate::ioctl::PfsError::Replaced { .. }))
                            && matches!(source, Source::Owned(_)) =>
                    {
                        let Source::Owned(open) = &mut source else { unreachable!("matched above") };
                        // LMDB must not have the old file open beside the new one.
                        drop(open.take());
                        match crate::pfs::open(&path, crate::store::Access::Read) {
                            Ok(p) => {
                                obs.info(format!(
                                    "Mirror-read {fs}: the store file was compacted; reading the new one"
                                ));
                                summary.reopened += 1;
                                *open = Some(p);
                                continue 'again;
                            }
                            Err(e) => obs.warn(format!("Mirror-read {fs}: cannot stream: {e:#}")),
                        }
                    }
                    Err(e) => obs.warn(format!("Mirror-read {fs}: cannot stream: {e:#}")),
                    Ok(false) => {}
                    Ok(true) => {
                        // -i is the least time between the starts of two
                        // passes (hammer waits -i after a pass ends, and once
                        // more after an idle one): a new TID goes out as soon
                        // as it exists once -i has passed.
                        let since = pass_start.elapsed();
                        if since < opts.delay {
                            if v > 0 {
                                write!(log, "\x08D")?;
                            }
                            sleep_unless(opts.delay - since, stop);
                        }
                        if v > 0 {
                            write!(log, "\x08 ")?;
                        }
                        if !stop.load(Ordering::Relaxed) {
                            continue 'again;
                        }
                    }
                }
            }
        }
        break;
    }
    send(&mut w, &Record::Term)?;
    flush(&mut w)?;
    summary.bytes = w.bytes_written();
    drop(chat);
    obs.info(format!("Mirror-read {fs} succeeded"));
    Ok(summary)
}

/// Records the target's acknowledgement in the source PFS (for prune); a
/// failure is said once per read and does not fail the pass. True when recorded.
fn record_ack(
    pfs: &dyn Pfs,
    target: &crate::mrecord::PseudofsData,
    tid: u64,
    obs: &dyn Observer,
    warned: &mut bool,
) -> bool {
    match pfs.record_ack(target, tid) {
        Ok(true) => true,
        Ok(false) => {
            obs.debug(
                "Mirror-read: the target's acknowledgement is not recorded now (a busy store records a later one)",
            );
            false
        }
        Err(e) => {
            if !*warned {
                *warned = true;
                obs.warn(format!(
                    "Mirror-read: cannot record the target's acknowledged TID {tid:016x} (prune will not know it): {e}"
                ));
            }
            false
        }
    }
}

/// WAI_PSEUDOFS, in slices so that `stop` is noticed. Ok(false) when
/// stopped; Ok(true) when a new TID came or the heartbeat interval passed.
fn wait_for_new_tid(
    pfs: &dyn Pfs,
    pfsd: &crate::mrecord::PseudofsData,
    stop: &AtomicBool,
    heartbeat: Option<Duration>,
) -> anyhow::Result<bool> {
    let start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if heartbeat.is_some_and(|h| start.elapsed() >= h) {
            return Ok(true);
        }
        // One-second slices: few wakeups for an idle stream, and `stop` is seen soon.
        if pfs.wait_pseudofs(pfsd, Some(Duration::from_secs(1)))? {
            return Ok(true);
        }
    }
}

/// Sleeps `d`, waking early when `stop` is set.
pub(crate) fn sleep_unless(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
