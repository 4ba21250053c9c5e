//! The transport stack: the one place that builds what wraps a half's byte streams (compression frames, bandwidth limit, read-ahead).
//!
//! A half reads the peer's stream from one `Read` and sends its own on one
//! `Write`. Whether those are stdin/stdout (a remote peer under ssh), one end
//! of a socketpair (a local half of copy or verify) or anything else, the
//! same [`stack`] wraps them: the source's output goes through the `-b`
//! limit, the target's input through a read-ahead thread that keeps the
//! link flowing while the store waits for the disk. On a framed ssh link
//! (`--compress`, see [`frame`]) both directions are frames: the data
//! direction is compressed on a thread of its own ([`sender`]) above the
//! `-b` limit, which so counts link bytes, and the read-ahead reads
//! decoded frames. Nothing here knows the mirror protocol.

pub mod bwlimit;
pub mod frame;
pub mod readahead;
pub mod sender;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Which half the streams belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the mirror stream, receives acknowledgements.
    Source,
    /// Receives the mirror stream, sends its PFSD and acknowledgements.
    Target,
}

/// How much the target reads ahead: `depth` buffers of `chunk` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadSize {
    pub chunk: usize,
    pub depth: usize,
}

/// On stdin: 8 MiB in 1 MiB reads (a widened pipe holds 1 MiB).
pub const STDIN_READ_AHEAD: ReadAheadSize = ReadAheadSize { chunk: 1 << 20, depth: 8 };
/// On a local socket, whose 4 MiB buffer reads ahead too: 4 MiB more keeps
/// the source busy through the store's fsyncs.
pub const SOCKET_READ_AHEAD: ReadAheadSize = ReadAheadSize { chunk: 1 << 20, depth: 4 };

/// What wraps a half's streams.
#[derive(Debug, Clone, Default)]
pub struct LinkOpts {
    /// `-b`: bytes per second the source may send.
    pub bandwidth: Option<u64>,
    /// The target's read-ahead; None reads the stream directly.
    pub read_ahead: Option<ReadAheadSize>,
    /// A bandwidth budget shared with other links (`run`).
    pub budget: Option<Arc<bwlimit::Budget>>,
    /// The link is framed (the peer is our own half, told so): how to compress.
    pub frame: Option<frame::Compress>,
    /// Counts stream and link bytes of a framed link.
    pub stats: Option<Arc<frame::LinkStats>>,
}

/// A half's two streams, wrapped.
pub struct Link {
    /// What the peer sends us.
    pub rx: Box<dyn Read + Send>,
    /// What we send the peer.
    pub tx: Box<dyn Write + Send>,
}

/// Wraps `rx` and `tx` for a half in `role` (see the module documentation).
pub fn stack(
    rx: impl Read + Send + 'static,
    tx: impl Write + Send + 'static,
    role: Role,
    o: &LinkOpts,
) -> io::Result<Link> {
    let tx: Box<dyn Write + Send> = match (role, o.bandwidth, &o.budget) {
        (Role::Source, rate, Some(b)) => Box::new(bwlimit::BwLimit::shared(tx, rate, Arc::clone(b))),
        (Role::Source, Some(rate), None) => Box::new(bwlimit::BwLimit::new(tx, rate)),
        _ => Box::new(tx),
    };
    let (tx, rx): (Box<dyn Write + Send>, Box<dyn Read + Send>) = match o.frame {
        None => (tx, Box::new(rx)),
        Some(c) => {
            let rx = Box::new(frame::FrameReader::new(rx, o.stats.clone()));
            let tx: Box<dyn Write + Send> = match role {
                Role::Source => {
                    Box::new(sender::Sender::new(frame::FrameWriter::new(tx, frame::Policy::of(c), o.stats.clone()))?)
                }
                // The answers (PFSD, UPDATE) are a few bytes a pass: the
                // fast level, on the half's own thread.
                Role::Target => {
                    let c = if c == frame::Compress::Auto { frame::Compress::Zstd(1) } else { c };
                    Box::new(frame::FrameWriter::new(tx, frame::Policy::of(c), o.stats.clone()))
                }
            };
            (tx, rx)
        }
    };
    let rx: Box<dyn Read + Send> = match (role, o.read_ahead) {
        (Role::Target, Some(s)) => Box::new(readahead::ReadAhead::new(rx, s.chunk, s.depth)?),
        _ => rx,
    };
    Ok(Link { rx, tx })
}

/// Unbuffered handles on fds 0 and 1 for the binary stream (std's stdout is
/// line-buffered, which would scan every batch for newlines). Pipes among
/// them are widened.
pub fn stdio() -> io::Result<(File, File)> {
    let dup = |fd: BorrowedFd<'_>| {
        widen_pipe(fd);
        fd.try_clone_to_owned().map(File::from)
    };
    Ok((dup(io::stdin().as_fd())?, dup(io::stdout().as_fd())?))
}

/// Gives a pipe a 1 MiB buffer (Linux's default unprivileged maximum), so
/// that a 512 KiB batch moves in one write instead of sixteen 64 KiB steps:
/// `read | write` runs about 4x faster through a wide pipe. Anything else,
/// or a refusal, is left as it is.
fn widen_pipe(fd: BorrowedFd<'_>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO) {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = fd;
}

/// A connected socketpair with 4 MiB buffers each way (about 3x faster than
/// the default for 512 KiB batches).
pub fn socketpair() -> io::Result<(UnixStream, UnixStream)> {
    use nix::sys::socket::{setsockopt, sockopt};
    let (a, b) = UnixStream::pair()?;
    for s in [&a, &b] {
        let _ = setsockopt(s, sockopt::SndBuf, &(4 << 20));
        let _ = setsockopt(s, sockopt::RcvBuf, &(4 << 20));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_wraps_only_what_the_role_needs() {
        let o = LinkOpts {
            bandwidth: Some(1 << 30),
            read_ahead: Some(ReadAheadSize { chunk: 16, depth: 2 }),
            budget: Some(bwlimit::Budget::new(1 << 30)),
            ..Default::default()
        };
        for role in [Role::Source, Role::Target] {
            let mut l = stack(&b"from the peer"[..], Vec::new(), role, &o).unwrap();
            let mut got = String::new();
            l.rx.read_to_string(&mut got).unwrap();
            assert_eq!(got, "from the peer", "{role:?}");
            l.tx.write_all(b"to the peer").unwrap();
        }
    }

    #[test]
    fn a_socketpair_carries_both_ways() {
        let (mut a, mut b) = socketpair().unwrap();
        a.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
}
