//! Exit statuses (0/1/2/3/130) and the one place that maps an error to one.

use std::process::ExitCode;

use crate::error::{MirrorError, kind};

/// The exit statuses of the command-line contract (see the man page, EXIT STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// A safety check refused the operation; retrying cannot fix it.
    Refused = 3,
    /// SIGINT.
    Interrupted = 130,
    /// A copy stopped by SIGTERM (128 + 15; a stream exits 0 then).
    Terminated = 143,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        ExitCode::from(s as u8)
    }
}

/// The exit status for an error: the first typed cause in its chain decides.
pub fn status_of(err: &anyhow::Error) -> Status {
    // A store refusal (append-only history) that no half turned into a MirrorError yet.
    if err
        .chain()
        .any(|c| matches!(c.downcast_ref::<crate::ioctl::PfsError>(), Some(crate::ioctl::PfsError::Refused { .. })))
    {
        return Status::Refused;
    }
    if crate::error::is_refusal(err) {
        return Status::Refused;
    }
    match kind(err) {
        Some(MirrorError::Usage(_)) => Status::Usage,
        _ => Status::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{refused, usage};
    use anyhow::Context;

    #[test]
    fn typed_causes_pick_the_status() {
        assert_eq!(status_of(&refused("no").context("mirror-write /x")), Status::Refused);
        assert_eq!(status_of(&usage("bad")), Status::Usage);
        let e: anyhow::Error = Err::<(), _>(std::io::Error::other("x")).context("y").unwrap_err();
        assert_eq!(status_of(&e), Status::Failure);
        assert_eq!(status_of(&MirrorError::Stalled { secs: 1 }.into()), Status::Failure);
    }
}
