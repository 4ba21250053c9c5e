//! The typed errors of mirroring that decide an exit status, a retry, or which of two failures explains the other.
//!
//! Library modules report their own failures as `thiserror` enums (see
//! `ioctl::PfsError`, `mrecord::StreamError`); the few kinds below carry
//! meaning for the caller: a refusal stops a `stream` and exits 3, a usage
//! error exits 2, a vanished peer is a symptom whose cause is the other
//! side's error, a stall or an unacknowledged copy is a failure of the run.
//! The halves convert link I/O errors into [`MirrorError::PeerGone`] where
//! they happen, so nobody has to guess from `io::ErrorKind`s later.

/// See the module documentation. Every message names the PFS or host it is about.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A safety check that retrying cannot fix (shared-uuid mismatch, target
    /// not a slave, version mismatch, declined prompt, missing remote
    /// program): exit status 3, and `stream` stops.
    #[error("{0}")]
    Refused(String),
    /// The remote target does not exist and the remote side had no terminal
    /// to ask on (a refusal; with a terminal here, we ask and create it).
    #[error("{0}")]
    MissingSlave(String),
    /// A usage error found after parsing: exit status 2.
    #[error("{0}")]
    Usage(String),
    /// The other side of the link went away (end of stream inside a
    /// conversation, a broken pipe, a reset). Its own error, when there is
    /// one, is the cause.
    #[error("{0}")]
    PeerGone(String),
    /// No progress for the stall timeout.
    #[error("the link stalled: no progress for {secs} s (--stall-timeout)")]
    Stalled { secs: u64 },
    /// A copy ended without the target acknowledging a TID.
    #[error("{0}")]
    NotAcknowledged(String),
    /// A remote side (an ssh child) failed or refused.
    #[error("{0}")]
    Remote(RemoteFailure),
}

/// A remote side's failure: what its exit status means, and the last line it
/// wrote on stderr. The line is part of the message only when the user has
/// not seen it already (it was shown as it came); [`reason`] always has it.
#[derive(Debug)]
pub struct RemoteFailure {
    /// "the target on backup failed with exit status 1", ...
    pub summary: String,
    pub detail: Option<String>,
    pub shown: bool,
    /// Exit status 3 (or a missing program): retrying cannot fix it.
    pub refusal: bool,
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)?;
        match &self.detail {
            Some(d) if !self.shown => write!(f, ": {d}"),
            _ => Ok(()),
        }
    }
}

/// The whole story of an error, for machines (JSON `reason`, the state
/// file): the chain as `{:#}` prints it, with a remote side's last line
/// even when it was already shown on the terminal.
pub fn reason(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err
        .chain()
        .map(|c| match c.downcast_ref::<MirrorError>() {
            Some(MirrorError::Remote(r)) => match &r.detail {
                Some(d) => format!("{}: {d}", r.summary),
                None => r.summary.clone(),
            },
            _ => c.to_string(),
        })
        .collect();
    parts.join(": ")
}

/// How much an error explains, when both sides of a run failed: the lowest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// A refusal explains everything else.
    Refusal,
    /// A side's own failure.
    Cause,
    /// A stall is what the watchdog saw, not why.
    Stall,
    /// The peer went away: a symptom of the other side's failure.
    Symptom,
    /// Nothing failed, but the copy did not end with an acknowledgement.
    Unexplained,
}

/// The first [`MirrorError`] in an error's chain.
pub fn kind(err: &anyhow::Error) -> Option<&MirrorError> {
    err.chain().find_map(|c| c.downcast_ref::<MirrorError>())
}

/// True when the error is a refusal (exit 3; `stream` stops): ours, the
/// remote's, or a store's safety check (a planted lock file, a symlinked
/// store, a stream that would rewrite acknowledged history).
pub fn is_refusal(err: &anyhow::Error) -> bool {
    if err.chain().any(|c| matches!(c.downcast_ref(), Some(crate::ioctl::PfsError::Refused { .. }))) {
        return true;
    }
    match kind(err) {
        Some(MirrorError::Refused(_) | MirrorError::MissingSlave(_)) => true,
        Some(MirrorError::Remote(r)) => r.refusal,
        _ => false,
    }
}

/// The rank of an error (see [`Rank`]).
pub fn rank(err: &anyhow::Error) -> Rank {
    if is_refusal(err) {
        return Rank::Refusal;
    }
    match kind(err) {
        Some(MirrorError::Refused(_) | MirrorError::MissingSlave(_)) => Rank::Refusal,
        Some(MirrorError::PeerGone(_)) => Rank::Symptom,
        Some(MirrorError::Stalled { .. }) => Rank::Stall,
        Some(MirrorError::NotAcknowledged(_)) => Rank::Unexplained,
        _ => Rank::Cause,
    }
}

/// Shorthands for the variants that carry a message.
pub fn refused(msg: impl Into<String>) -> anyhow::Error {
    MirrorError::Refused(msg.into()).into()
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    MirrorError::Usage(msg.into()).into()
}

pub fn peer_gone(msg: impl Into<String>) -> anyhow::Error {
    MirrorError::PeerGone(msg.into()).into()
}

/// Our own stdout was closed by its reader (`dump | head`): output commands
/// end quietly with status 0, as ripgrep does.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// True when the error says our own stdout was closed.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.is::<StdoutClosed>()
            || c.downcast_ref::<std::io::Error>().and_then(|e| e.get_ref()).is_some_and(|i| i.is::<StdoutClosed>())
    })
}

/// Our stdout, as text commands write it: a broken pipe comes back as an
/// `io::Error` carrying [`StdoutClosed`], whatever reports it later.
pub struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write(b).map_err(closed)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush().map_err(closed)
    }
}

fn closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe { std::io::Error::new(e.kind(), StdoutClosed) } else { e }
}

/// Maps a write error on stdout: a broken pipe becomes [`StdoutClosed`].
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe { StdoutClosed.into() } else { anyhow::Error::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_first_typed_cause() {
        let e = refused("target must be in slave mode").context("mirror-write /b");
        assert_eq!(rank(&e), Rank::Refusal);
        assert!(is_refusal(&e));
        assert_eq!(rank(&peer_gone("the peer closed the stream").context("x")), Rank::Symptom);
        assert_eq!(rank(&MirrorError::Stalled { secs: 5 }.into()), Rank::Stall);
        assert_eq!(rank(&anyhow::anyhow!("disk full")), Rank::Cause);
        assert!(Rank::Refusal < Rank::Cause && Rank::Cause < Rank::Stall && Rank::Stall < Rank::Symptom);
    }

    #[test]
    fn a_remote_line_already_shown_is_not_repeated_but_the_reason_has_it() {
        let r = |shown| RemoteFailure {
            summary: "the target on backup failed with exit status 1".into(),
            detail: Some("mirror-write /x: disk full".into()),
            shown,
            refusal: false,
        };
        let e = anyhow::Error::from(MirrorError::Remote(r(true))).context("copy m to backup:/x");
        assert_eq!(format!("{e:#}"), "copy m to backup:/x: the target on backup failed with exit status 1");
        assert_eq!(
            reason(&e),
            "copy m to backup:/x: the target on backup failed with exit status 1: mirror-write /x: disk full"
        );
        let e = anyhow::Error::from(MirrorError::Remote(r(false)));
        assert_eq!(format!("{e:#}"), reason(&e));
        assert_eq!(rank(&e), Rank::Cause);
        let refusal = MirrorError::Remote(RemoteFailure { refusal: true, ..r(true) });
        assert!(is_refusal(&refusal.into()));
    }

    #[test]
    fn a_closed_stdout_is_told_apart_from_a_broken_link() {
        let e = stdout_error(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_stdout_closed(&e.context("printing")));
        let link: anyhow::Error = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert!(!is_stdout_closed(&link));
        let wrapped: anyhow::Error = closed(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).into();
        assert!(is_stdout_closed(&wrapped.context("dump")));
    }
}
