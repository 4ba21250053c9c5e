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
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

use super::{Progress, check_peer, pfs_header, read_peer_pfsd};
use crate::exit::Refused;
use crate::ioctl::{MirrorRw, Pfs, SynctidOp};
use crate::mrecord::{PSEUDOFS_VERSION, Record, RecordReader, RecordWriter, rtype, uuid_from_wire};
use crate::store::Access;

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

/// Runs the target half on the PFS at `target` until the source ends the
/// stream. `input` is the stream from the source; `back` carries our PFSD
/// and UPDATEs (two-way); `stdout` gets "Source can update synctid to ..."
/// in one-way mode.
#[allow(clippy::too_many_arguments)]
pub fn write(
    target: &Path,
    opts: &WriteOpts,
    create: Create<'_>,
    input: impl Read,
    back: impl Write,
    stdout: &mut dyn Write,
    log: &mut dyn Write,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> anyhow::Result<WriteSummary> {
    let fs = target.display().to_string();
    let mut r = RecordReader::with_batch_limit(input, WRITE_BATCH);
    let mut w = RecordWriter::new(back);
    let mut summary = WriteSummary::default();
    let mut pfs: Option<Box<dyn Pfs>> = None;

    loop {
        // The source's first PFSD: who it is.
        let first = r.next_record().context("validate_mrec_header")?;
        let src = match first {
            None => break, // end of stream at a pass boundary
            Some(Record::Term) => {
                summary.terminated = true;
                break;
            }
            Some(Record::Pfsd { pfsd, .. }) => pfsd,
            Some(other) => bail!(
                "validate_mrec_header: did not get expected PFSD record type (got {})",
                rtype::name(other.type_word())
            ),
        };
        if pfs.is_none() {
            if !crate::pfs::exists(target) {
                create_slave(target, &src.shared_uuid, &create, log)?;
            }
            pfs = Some(crate::pfs::open(target, Access::Write).with_context(|| format!("mirror-write {fs}"))?);
        }
        let pfs = pfs.as_mut().expect("opened above");

        let ours = pfs_header(pfs.as_ref(), "mirror-write")?;
        if opts.two_way {
            w.write_record(&Record::Pfsd { version: PSEUDOFS_VERSION, pfsd: ours }).context("answering the source")?;
            w.flush().context("answering the source")?;
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
        super::guard::check_pass_end(ours.sync_end_tid, tid_end)
            .map_err(|r| Refused(format!("Mirror-write {fs}: refused: {r}")))?;
        let mut m = MirrorRw::for_write(tid_beg, tid_end);
        m.pfs_id = pfs.pfs_id();
        m.shared_uuid = range.shared_uuid;
        let pass_start = r.offset();
        let mut records = 0u64;
        progress.pass_started(tid_beg, tid_end, None);
        loop {
            let batch = r.next_batch().with_context(|| format!("Mirror-write {fs}"))?;
            if batch.records == 0 {
                break;
            }
            let offset = batch.offset;
            records += batch.records as u64;
            for (_, head, body) in crate::mrecord::heads(batch.bytes) {
                if head.rtype & rtype::TYPE_MASK == rtype::REC_BADCRC {
                    let leaf = crate::mrecord::LeafElm::decode(&body[crate::mrecord::HEAD_SIZE..]);
                    writeln!(
                        log,
                        "Mirror-write {fs}: warning: source reported a data CRC error in obj={:016x} key={:016x}; record not applied",
                        leaf.base.obj_id as u64, leaf.base.key as u64
                    )?;
                    summary.bad_crc += 1;
                }
            }
            pfs.mirror_write(&mut m, batch.bytes)
                .with_context(|| format!("Mirror-write {fs} failed (batch at stream byte {offset})"))?;
            progress.bytes(r.offset() - pass_start);
            if stop.load(Ordering::Relaxed) {
                bail!("Mirror-write {fs}: interrupted; the target stays at its last synced TID");
            }
        }
        let term = r.next_record().with_context(|| format!("Mirror-write {fs}"))?;
        match term {
            Some(Record::Term) => {
                writeln!(log, "Mirror-write: received termination request")?;
                summary.terminated = true;
                break;
            }
            Some(Record::Sync) => {
                update_pfs_snapshot(pfs.as_mut(), tid_end, opts.verbose, log)?;
                pfs.synctid(SynctidOp::Sync2).with_context(|| format!("Mirror-write {fs}: synctid"))?;
                if opts.verbose >= 2 {
                    writeln!(log, "Mirror-write {fs}: succeeded")?;
                }
                summary.synced_tid = Some(tid_end);
            }
            Some(Record::Idle) => {}
            None => {
                return Err(anyhow::Error::new(crate::exit::PeerClosed).context(format!(
                    "Mirror-write {fs}: Did not get termination sync record (stream ended at byte {}); \
                     the target stays at its last synced TID",
                    r.offset()
                )));
            }
            Some(other) => bail!(
                "Mirror-write {fs}: Did not get termination sync record, or rec_size is wrong rt={}",
                other.type_word()
            ),
        }
        summary.passes += 1;
        summary.bytes = r.offset();
        progress.pass_done(tid_end, records, r.offset() - pass_start);
        if opts.two_way {
            w.write_record(&Record::Update { tid: tid_end }).context("answering the source")?;
            w.flush().context("answering the source")?;
        } else {
            writeln!(stdout, "Source can update synctid to 0x{tid_end:016x}")?;
            stdout.flush()?;
        }
    }
    summary.bytes = r.offset();
    Ok(summary)
}

/// `update_pfs_snapshot`: moves the target's `sync_end_tid` to `tid`.
fn update_pfs_snapshot(pfs: &mut dyn Pfs, tid: u64, verbose: u8, log: &mut dyn Write) -> anyhow::Result<()> {
    let fs = pfs.path().display().to_string();
    let mut pfsd = pfs.get_pseudofs().context("update_pfs_snapshot (read)")?;
    if pfsd.sync_end_tid != tid {
        pfsd.sync_end_tid = tid;
        pfs.set_pseudofs(&pfsd).with_context(|| format!("update_pfs_snapshot (rewrite) {fs}"))?;
        if verbose >= 2 {
            writeln!(log, "Mirror-write: Completed, updated snapshot to {tid:016x}")?;
        }
    }
    Ok(())
}

/// `create_pfs`: a missing target becomes a new slave of the source's shared uuid.
fn create_slave(target: &Path, shared: &[u8; 16], create: &Create<'_>, log: &mut dyn Write) -> anyhow::Result<()> {
    let fs = target.display();
    match create {
        Create::Yes => writeln!(log, "PFS slave {fs} does not exist. Auto create new slave PFS!")?,
        Create::Refuse => bail!(Refused(format!(
            "PFS slave {fs} does not exist and there is no terminal to ask; pass -y to create it"
        ))),
        Create::Ask(ask) => {
            if !ask(&format!("PFS slave {fs} does not exist.\nDo you want to create a new slave PFS?"))? {
                bail!(Refused("Aborting operation: the slave PFS was not created".into()));
            }
        }
    }
    let mut pfsd = crate::pfs::init_pfsd(true);
    pfsd.shared_uuid = *shared;
    crate::pfs::create_store(target, &pfsd)
        .with_context(|| format!("Failed to create PFS {fs} (shared-uuid={})", uuid_from_wire(shared)))?;
    Ok(())
}
