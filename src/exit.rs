//! Exit statuses (0/1/2/3/130) and the one place that maps an error to one.

use std::io;
use std::process::ExitCode;

/// The exit statuses of `../shared/spec/cli.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// A safety check refused the operation; retrying cannot fix it.
    Refused = 3,
    /// SIGINT.
    Interrupted = 130,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        ExitCode::from(s as u8)
    }
}

/// An error that retrying cannot fix (shared-uuid mismatch, target not a
/// slave, PFSD version mismatch, declined prompt): exit status 3, and
/// `stream` stops instead of retrying.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A usage error found after parsing (bad endpoint, conflicting options): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit status for an error: the first typed cause in its chain decides.
pub fn status_of(err: &anyhow::Error) -> Status {
    for cause in err.chain() {
        if cause.is::<Refused>()
            || matches!(cause.downcast_ref::<crate::ioctl::PfsError>(), Some(crate::ioctl::PfsError::Refused { .. }))
        {
            return Status::Refused;
        }
        if cause.is::<Usage>() {
            return Status::Usage;
        }
    }
    Status::Failure
}

/// The peer closed the stream before the conversation ended.
#[derive(Debug, thiserror::Error)]
#[error("the peer closed the stream")]
pub struct PeerClosed;

/// True when the error only says that the other side went away (a broken
/// pipe, a reset, a stream cut short): a symptom, not a cause.
pub fn is_peer_gone(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.is::<PeerClosed>()
            || matches!(
                c.downcast_ref::<crate::mrecord::StreamError>(),
                Some(crate::mrecord::StreamError::Truncated { .. })
            )
            || c.downcast_ref::<io::Error>().is_some_and(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::UnexpectedEof
                )
            })
    })
}

/// True when the error is a broken pipe on our own output (the reader of our
/// stdout went away, e.g. `dump | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_causes_pick_the_status() {
        let e = anyhow::Error::new(Refused("no".into())).context("mirror-write /x");
        assert_eq!(status_of(&e), Status::Refused);
        let e = anyhow::Error::new(Usage("bad".into()));
        assert_eq!(status_of(&e), Status::Usage);
        let e: anyhow::Error = Err::<(), _>(io::Error::other("x")).context("y").unwrap_err();
        assert_eq!(status_of(&e), Status::Failure);
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
    }
}
