//! The two halves of mirroring (read, write) and the stream tools built on them (dump).
//!
//! Both halves are transport-agnostic: they take a `Write` for the stream
//! they send and a `Read` for the one they receive, so the same code serves
//! stdin/stdout (a remote peer), one end of a socketpair (a local half of
//! copy) and in-memory pipes (tests). They print nothing: hammer's messages
//! and their progress are [`crate::event::Event`]s handed to an observer.
//! They depend on `mrecord` and the `ioctl::Pfs` trait only; the write half
//! gets an [`crate::ioctl::Opener`] for a target that may not exist yet.

pub mod cycle;
pub mod dump;
pub mod histogram;
pub mod read;
pub mod resume;
pub mod write;

use std::io::{self, Read};

use anyhow::bail;

use crate::error::{peer_gone, refused};
use crate::ioctl::Pfs;
use crate::mrecord::{PSEUDOFS_VERSION, PseudofsData, Record, RecordReader, StreamError, rtype};

/// `generate_mrec_header`: the PFS's description, as sent in a PFSD record.
pub fn pfs_header(pfs: &dyn Pfs) -> anyhow::Result<PseudofsData> {
    Ok(pfs.get_pseudofs()?)
}

/// Names the half and its PFS in an error: "mirror-read <pfs>: ...", or
/// only "mirror-read: ..." when the cause already names the PFS (a
/// [`crate::ioctl::PfsError`] starts with its path).
pub fn in_half(e: anyhow::Error, half: &str, path: &std::path::Path) -> anyhow::Error {
    let names_it = e.chain().any(|c| c.downcast_ref::<crate::ioctl::PfsError>().is_some_and(|p| p.path() == path));
    if names_it { e.context(half.to_string()) } else { e.context(format!("{half} {}", path.display())) }
}

/// True for the I/O errors that only say the other end of the link is gone.
fn link_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// An error writing to the peer: a vanished peer becomes
/// [`crate::error::MirrorError::PeerGone`] here, at the edge, so that the
/// orchestrator can rank it below the peer's own error.
pub fn send_error(e: io::Error, to: &str) -> anyhow::Error {
    if link_gone(&e) {
        peer_gone(format!("the {to} closed the link ({e})"))
    } else {
        anyhow::Error::new(e).context(format!("sending to the {to}"))
    }
}

/// An error reading the peer's stream: truncation and vanished peers become PeerGone.
pub fn recv_error(e: StreamError, from: &str) -> anyhow::Error {
    let gone = match &e {
        StreamError::Truncated { .. } => true,
        StreamError::Io { source, .. } => link_gone(source),
        StreamError::Malformed { .. } => false,
    };
    if gone {
        // The I/O error says how (a compressed link names the frame it ended in).
        let how = match &e {
            StreamError::Io { source, .. } => format!(" ({source})"),
            _ => String::new(),
        };
        peer_gone(format!("the {from} closed the link: {e}{how}"))
    } else {
        anyhow::Error::new(e).context(format!("reading from the {from}"))
    }
}

/// Reads the peer's PFSD and checks it against our PFS (same shared uuid;
/// on the target, that it is a slave), as hammer's `validate_mrec_header`.
/// `Ok(None)`: the peer sent TERM.
pub fn read_peer_pfsd<R: Read>(
    pfs: &dyn Pfs,
    r: &mut RecordReader<R>,
    is_target: bool,
) -> anyhow::Result<Option<PseudofsData>> {
    let peer = if is_target { "source" } else { "target" };
    let ours = pfs_header(pfs)?;
    let rec = r.next_record().map_err(|e| recv_error(e, peer))?;
    let (version, theirs) = match rec {
        None => return Err(peer_gone(format!("the {peer} ended the stream before sending its PFS description"))),
        Some(Record::Term) => return Ok(None),
        Some(Record::Pfsd { version, pfsd }) => (version, pfsd),
        Some(other) => bail!(
            "the {peer} sent a {} record where its PFS description (PFSD) was expected",
            rtype::name(other.type_word())
        ),
    };
    if version != PSEUDOFS_VERSION {
        return Err(refused(format!(
            "version mismatch: the {peer} speaks PFSD version {version}, this hammer-mirror {PSEUDOFS_VERSION}"
        )));
    }
    check_peer(pfs, &ours, &theirs, is_target)?;
    Ok(Some(theirs))
}

/// The safety checks of `validate_mrec_header`: the same shared uuid, and a
/// slave as target. Refusals exit with status 3. The messages keep
/// hammer's wording, for the scripts that look for it.
pub fn check_peer(pfs: &dyn Pfs, ours: &PseudofsData, theirs: &PseudofsData, is_target: bool) -> anyhow::Result<()> {
    if theirs.shared_uuid != ours.shared_uuid {
        return Err(refused(format!(
            "source and target have different shared-uuid's! ({} has {}, its peer {})",
            pfs.path().display(),
            crate::mrecord::uuid_from_wire(&ours.shared_uuid),
            crate::mrecord::uuid_from_wire(&theirs.shared_uuid)
        )));
    }
    if is_target && !ours.is_slave() {
        return Err(refused(format!(
            "target must be in slave mode ({} is a master; make a slave with pfs-slave, or pfs-downgrade it)",
            pfs.path().display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
