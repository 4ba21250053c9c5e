//! The target half (`mirror-write`): check the source's PFSD, apply bulk records, commit on SYNC, acknowledge.
//!
//! A transcription of `hammer_cmd_mirror_write` over `Read`/`Write`. Each
//! pass is `PFSD PFSD bulk* (SYNC | IDLE | TERM)`; bulk records are applied
//! through `Pfs::mirror_write` in batches of up to 8 MiB (one store
//! transaction each), and `sync_end_tid` moves only after SYNC, once every
//! batch of the pass is durable. A missing target is created as a slave of
//! the source's shared uuid, with `-y` or after asking on the terminal, never
//! through a shell. Differences from hammer: end of stream at a pass boundary
//! is a clean end (hammer calls it a short read), and records the source
//! flagged with a bad data CRC are counted and reported.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};

use super::{check_peer, in_half, pfs_header, read_peer_pfsd, recv_error, send_error};
use crate::error::{peer_gone, refused};
use crate::event::{Event, Observer, Pass, Say};
use crate::ioctl::{MirrorRw, Opener, Pfs, SynctidOp};
use crate::log::tid;
use crate::mrecord::{PSEUDOFS_VERSION, Record, RecordReader, RecordWriter, rtype, uuid_from_wire};

/// What a target without `-y` and without a terminal says of a missing
/// slave; the orchestrator of a copy asks on its own terminal when a remote
/// target says it.
pub const NO_TERMINAL_TO_ASK: &str = "the slave PFS does not exist and there is no terminal to ask";

/// Bytes of bulk records applied per `mirror_write` call.
pub const WRITE_BATCH: usize = 8 << 20;

/// What to do when the target PFS does not exist.
pub enum Create<'a> {
    /// `-y`: create it.
    Yes,
    /// Ask this question on the terminal (never on the stream).
    Ask(&'a dyn Fn(&str) -> anyhow::Result<bool>),
    /// No terminal and no `-y`.
    Refuse,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub verbose: u8,
    /// `-2`: send our PFSD first, and UPDATE after every pass.
    pub two_way: bool,
}

/// How a write ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// Passes that ended in SYNC or IDLE.
    pub passes: u64,
    /// The last TID committed (after a SYNC).
    pub synced_tid: Option<u64>,
    /// Stream bytes read.
    pub bytes: u64,
    /// REC records the source marked with a data CRC error (not applied).
    pub bad_crc: u64,
    /// The source sent TERM.
    pub terminated: bool,
}

/// Runs the target half on `target` until the source ends the stream.
/// `input` is the stream from the source; `back` carries our PFSD and
/// UPDATEs (two-way); `stdout` gets "Source can update synctid to ..." in
/// one-way mode. Errors name the half and the PFS ("mirror-write <pfs>: ...").
#[allow(clippy::too_many_arguments)]
pub fn write(
    target: &dyn Opener,
    opts: &WriteOpts,
    create: Create<'_>,
    input: impl Read,
    back: impl Write,
    stdout: &mut dyn Write,
    obs: &dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<WriteSummary> {
    write_inner(target, opts, create, input, back, stdout, obs, stop)
        .map_err(|e| in_half(e, "mirror-write", target.path()))
}

#[allow(clippy::too_many_arguments)]
fn write_inner(
    target: &dyn Opener,
    opts: &WriteOpts,
    create: Create<'_>,
    input: impl Read,
    back: impl Write,
    stdout: &mut dyn Write,
    obs: &dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<WriteSummary> {
    let fs = target.path().display().to_string();
    let mut r = RecordReader::with_batch_limit(input, WRITE_BATCH);
    let mut w = RecordWriter::new(back);
    let mut summary = WriteSummary::default();
    let mut pfs: Option<Box<dyn Pfs>> = None;
    // A repair pass is under way: it lasts, over the chunks of the source's
    // prescan, until a pass reaches the slave's sync_end_tid.
    let mut repair_pass = false;

    loop {
        // The source's first PFSD: who it is.
        let first = r.next_record().map_err(|e| recv_error(e, "source"))?;
        let src = match first {
            // An empty input is no stream at all: say so, rather than succeed.
            None if summary.passes == 0 && pfs.is_none() => {
                return Err(peer_gone(
                    "the source sent nothing (the input ended before any PFS description); the PFS is unchanged",
                ));
            }
            None => break, // end of stream at a pass boundary
            Some(Record::Term) => {
                summary.terminated = true;
                break;
            }
            Some(Record::Pfsd { pfsd, .. }) => pfsd,
            Some(other) => bail!(
                "the source sent a {} record where its PFS description (PFSD) was expected",
                rtype::name(other.type_word())
            ),
        };
        if pfs.is_none() {
            pfs = Some(match target.open()? {
                Some(p) => p,
                None => create_slave(target, &src.shared_uuid, &create, obs)?,
            });
        }
        let pfs = pfs.as_mut().expect("opened above");

        let ours = pfs_header(pfs.as_ref())?;
        let answer = |w: &mut RecordWriter<_>, rec: &Record<'_>| -> anyhow::Result<()> {
            w.write_record(rec).and_then(|()| w.flush()).map_err(|e| send_error(e, "source"))
        };
        // A pass cut short earlier: tell our source where to resume it.
        let partial = pfs.partial_pass()?;
        if opts.two_way {
            let mut told = ours;
            // Damaged records scrub recorded: ask for the pass from the
            // oldest one's TID, so that the source sends them again.
            if partial.is_none_or(|p| p.tid_end <= ours.sync_end_tid)
                && let Some(floor) = pfs.repair_floor()?
                && floor <= ours.sync_end_tid
            {
                obs.info(format!(
                    "Mirror-write {fs}: damaged records (found by scrub): asking for a repair pass from TID {floor:016x}"
                ));
                // Two below: a pass whose begin TID equals its end is "no
                // work" to hammer's reader, and the oldest may be the newest.
                told.sync_end_tid = floor.saturating_sub(2);
                repair_pass = true;
            }
            super::resume::put(
                &mut told,
                partial.map(|p| super::resume::Resume { tid_end: p.tid_end, key: p.resume_key }),
            );
            answer(&mut w, &Record::Pfsd { version: PSEUDOFS_VERSION, pfsd: told })?;
        }
        // Refuse on the first PFSD already (hammer waits for the second): our
        // PFSD went out first, so the source sees the mismatch too.
        check_peer(pfs.as_ref(), &ours, &src, true)?;
        // The second PFSD: the TID range of this pass.
        let Some(range) = read_peer_pfsd(pfs.as_ref(), &mut r, true)? else {
            summary.terminated = true;
            break;
        };
        let (tid_beg, tid_end) = (range.sync_beg_tid, range.sync_end_tid);
        // A repair pass may come in chunks (the source's prescan) that end
        // below what the slave acknowledged: they only repair, and never
        // move its sync_end_tid back.
        if !(repair_pass && tid_end <= ours.sync_end_tid) {
            crate::history::check_pass_end(ours.sync_end_tid, tid_end).map_err(|r| refused(r.to_string()))?;
        }
        let mut m = MirrorRw::for_write(tid_beg, tid_end);
        m.pfs_id = pfs.pfs_id();
        m.shared_uuid = range.shared_uuid;
        let pass_start = r.offset();
        let started = Instant::now();
        let mut records = 0u64;
        obs.event(&Event::PassStarted { tid_beg, tid_end, estimate: None });
        // This pass resumes the partial one when it has its end and begins
        // with a SKIP to exactly where that one stopped.
        let mut may_resume = partial.filter(|p| p.tid_end == tid_end);
        loop {
            let batch = r.next_batch().map_err(|e| recv_error(e, "source"))?;
            if batch.records == 0 {
                break;
            }
            if let Some(p) = may_resume.take()
                && let Some((Record::Skip { beg, end }, _)) = crate::mrecord::decode(batch.bytes).ok()
                && beg == crate::mrecord::BaseElm::key_beg_init()
                && end.btree_cmp(&p.resume_key).is_eq()
            {
                obs.info(format!(
                    "Mirror-write {fs}: resuming the pass to {tid_end:016x} at object {:016x}",
                    p.resume_key.obj_id as u64
                ));
                pfs.resume_partial()?;
            }
            let offset = batch.offset;
            records += batch.records as u64;
            for (_, head, body) in crate::mrecord::heads(batch.bytes) {
                if head.rtype & rtype::TYPE_MASK == rtype::REC_BADCRC {
                    let leaf = crate::mrecord::LeafElm::decode(&body[crate::mrecord::HEAD_SIZE..]);
                    obs.warn(format!(
                        "Mirror-write {fs}: warning: source reported a data CRC error in obj={:016x} key={:016x}; record not applied",
                        leaf.base.obj_id as u64, leaf.base.key as u64
                    ));
                    summary.bad_crc += 1;
                }
            }
            let applied = pfs.mirror_write(&mut m, batch.bytes);
            for line in pfs.take_repaired() {
                obs.info(format!("Mirror-write {fs}: repaired: {line}"));
            }
            applied.map_err(|e| match e {
                // The store refused a change to acknowledged history: retrying cannot fix it.
                crate::ioctl::PfsError::Refused { .. } => refused(format!("{e} (records at stream byte {offset})")),
                e => anyhow::Error::new(e).context(format!("applying the records at stream byte {offset}")),
            })?;
            obs.event(&Event::Progress { bytes: r.offset() - pass_start, link_bytes: None });
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted; the target stays at TID {}", tid(ours.sync_end_tid));
            }
        }
        let term_at = r.offset();
        let term = r.next_record().map_err(|e| recv_error(e, "source"))?;
        let idle = term == Some(Record::Idle);
        match term {
            Some(Record::Term) => {
                obs.info("Mirror-write: received termination request");
                summary.terminated = true;
                break;
            }
            Some(Record::Sync) => {
                if repair_pass && tid_end < ours.sync_end_tid {
                    // A chunk of a repair pass: the slave stays where it was.
                } else {
                    update_pfs_snapshot(pfs.as_mut(), tid_end, opts.verbose, obs)?;
                    if repair_pass && ours.sync_end_tid == tid_end {
                        // The SYNC that ends a repair pass, though the TID stays.
                        let same = pfs.get_pseudofs()?;
                        pfs.set_pseudofs(&same)?;
                    }
                    repair_pass = false;
                }
                for line in pfs.take_repaired() {
                    obs.warn(format!("Mirror-write {fs}: {line}"));
                }
                pfs.synctid(SynctidOp::Sync2)?;
                if opts.verbose >= 2 {
                    obs.info(format!("Mirror-write {fs}: succeeded"));
                }
                summary.synced_tid = Some(tid_end);
            }
            Some(Record::Idle) => {}
            None => {
                return Err(peer_gone(format!(
                    "the source ended the stream at byte {term_at} inside a pass (no SYNC); the target stays at TID {}",
                    tid(ours.sync_end_tid)
                )));
            }
            Some(other) => bail!(
                "expected the end of the pass (SYNC) at stream byte {term_at}, got a {} record",
                rtype::name(other.type_word())
            ),
        }
        summary.passes += 1;
        summary.bytes = r.offset();
        obs.event(&Event::PassDone(Pass {
            tid_beg,
            tid_end,
            records,
            bytes: r.offset() - pass_start,
            seconds: started.elapsed().as_secs_f64(),
            idle,
            link_bytes: None,
        }));
        // Between passes (a stream may idle for hours) the batch buffer goes back.
        r.release_idle();
        if opts.two_way {
            answer(&mut w, &Record::Update { tid: tid_end })?;
        } else {
            writeln!(stdout, "Source can update synctid to 0x{tid_end:016x}")
                .and_then(|()| stdout.flush())
                .map_err(crate::error::stdout_error)?;
        }
    }
    summary.bytes = r.offset();
    Ok(summary)
}

/// `update_pfs_snapshot`: moves the target's `sync_end_tid` to `tid`.
fn update_pfs_snapshot(pfs: &mut dyn Pfs, tid: u64, verbose: u8, obs: &dyn Observer) -> anyhow::Result<()> {
    let mut pfsd = pfs.get_pseudofs()?;
    if pfsd.sync_end_tid != tid {
        pfsd.sync_end_tid = tid;
        pfs.set_pseudofs(&pfsd)?;
        if verbose >= 2 {
            obs.info(format!("Mirror-write: Completed, updated snapshot to {tid:016x}"));
        }
    }
    Ok(())
}

/// `create_pfs`: a missing target becomes a new slave of the source's shared uuid.
fn create_slave(
    target: &dyn Opener,
    shared: &[u8; 16],
    create: &Create<'_>,
    obs: &dyn Observer,
) -> anyhow::Result<Box<dyn Pfs>> {
    let fs = target.path().display();
    match create {
        Create::Yes => obs.info(format!("PFS slave {fs} does not exist. Auto create new slave PFS!")),
        Create::Refuse => return Err(refused(format!("{NO_TERMINAL_TO_ASK}; pass -y to create it"))),
        Create::Ask(ask) => {
            if !ask(&format!("PFS slave {fs} does not exist.\nDo you want to create a new slave PFS?"))? {
                return Err(refused("Aborting operation: the slave PFS was not created"));
            }
        }
    }
    target
        .create_slave(shared)
        .with_context(|| format!("cannot create the slave PFS (shared-uuid={})", uuid_from_wire(shared)))
}
