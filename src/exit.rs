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

/// The worse of two statuses (several targets end with the worst of theirs):
/// a refusal, then a failure, then an interrupt or stop, then success.
pub fn worst(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::Success => 0,
        Status::Interrupted | Status::Terminated => 1,
        Status::Failure => 2,
        Status::Usage => 3,
        Status::Refused => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The exit status for an error: the first typed cause in its chain decides.
pub fn status_of(err: &anyhow::Error) -> Status {
    // A store refusal (append-only history, a planted lock file) counts too.
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
