//! The two halves of mirroring (read, write) and the stream tools built on them (dump).
//!
//! Both halves are transport-agnostic: they take a `Write` for the stream
//! they send and a `Read` for the one they receive, so the same code serves
//! stdin/stdout (a remote peer), one end of a socketpair (a local half of
//! copy) and in-memory pipes (tests). hammer's stderr messages go to a `log`
//! writer; progress goes to a [`Progress`] observer.

pub mod bwlimit;
pub mod cycle;
pub mod dump;
pub mod guard;
pub mod histogram;
pub mod read;
pub mod readahead;
pub mod write;

use std::io::Read;

use anyhow::{Context, bail};

use crate::exit::Refused;
use crate::ioctl::Pfs;
use crate::mrecord::{PSEUDOFS_VERSION, PseudofsData, Record, RecordReader};

/// Receives progress from a half. Every method has a no-op default.
pub trait Progress: Sync {
    /// The prescan estimated `total` bytes in `chunks` chunks.
    fn prescan(&self, _total: u64, _chunks: usize) {}
    /// A pass over `[tid_beg, tid_end]` starts; `estimate` is the prescan's byte estimate.
    fn pass_started(&self, _tid_beg: u64, _tid_end: u64, _estimate: Option<u64>) {}
    /// Bytes of the current pass so far.
    fn bytes(&self, _bytes: u64) {}
    /// The pass ended with `records` records and `bytes` bytes; the target is synced to `tid`.
    fn pass_done(&self, _tid: u64, _records: u64, _bytes: u64) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// `generate_mrec_header`: the PFS's description, as sent in a PFSD record.
pub fn pfs_header(pfs: &dyn Pfs, who: &str) -> anyhow::Result<PseudofsData> {
    pfs.get_pseudofs().with_context(|| format!("{who}: not a HAMMER fs/pseudofs"))
}

/// `validate_mrec_header`: reads the peer's PFSD and checks it against our
/// PFS (same shared uuid; on the target, that it is a slave). `Ok(None)`:
/// the peer sent TERM.
pub fn read_peer_pfsd<R: Read>(
    pfs: &dyn Pfs,
    r: &mut RecordReader<R>,
    is_target: bool,
) -> anyhow::Result<Option<PseudofsData>> {
    let ours = pfs.get_pseudofs().context("mirror-write: not a HAMMER fs/pseudofs")?;
    let rec = r.next_record().context("validate_mrec_header")?;
    let (version, theirs) = match rec {
        None => return Err(anyhow::Error::new(crate::exit::PeerClosed).context("validate_mrec_header: short read")),
        Some(Record::Term) => return Ok(None),
        Some(Record::Pfsd { version, pfsd }) => (version, pfsd),
        Some(other) => bail!(
            "validate_mrec_header: did not get expected PFSD record type (got {})",
            crate::mrecord::rtype::name(other.type_word())
        ),
    };
    if version != PSEUDOFS_VERSION {
        bail!(Refused(format!(
            "validate_mrec_header: Version mismatch (peer PFSD version {version}, ours {PSEUDOFS_VERSION})"
        )));
    }
    check_peer(pfs, &ours, &theirs, is_target)?;
    Ok(Some(theirs))
}

/// The safety checks of `validate_mrec_header`: the same shared uuid, and a
/// slave as target. Refusals exit with status 3.
pub fn check_peer(pfs: &dyn Pfs, ours: &PseudofsData, theirs: &PseudofsData, is_target: bool) -> anyhow::Result<()> {
    if theirs.shared_uuid != ours.shared_uuid {
        bail!(Refused(format!(
            "mirror-write: source and target have different shared-uuid's! ({}: {}, peer: {})",
            pfs.path().display(),
            crate::mrecord::uuid_from_wire(&ours.shared_uuid),
            crate::mrecord::uuid_from_wire(&theirs.shared_uuid)
        )));
    }
    if is_target && !ours.is_slave() {
        bail!(Refused(format!(
            "mirror-write: target must be in slave mode ({} is a master; make a slave with pfs-slave, or pfs-downgrade it)",
            pfs.path().display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
