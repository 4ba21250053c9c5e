//! Read-ahead for the write half: a thread keeps draining the incoming stream while the store commits.
//!
//! `write` applies a batch and then waits for the disk (LMDB's fsyncs). With
//! the stream on a pipe from ssh, nobody reads during that wait, so ssh
//! stalls, and its encryption, which could have overlapped the fsync,
//! happens afterwards instead. [`ReadAhead`] reads on its own thread into a
//! few buffers (`depth` × `chunk` bytes at most, recycled; small while the
//! link carries little)
//! and hands them over in order; each `read` of the input is handed on as it
//! came, so a short message (a SYNC at the end of a pass) is not held back
//! waiting for more. Errors and end of file arrive after the data before them.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The size of a buffer while reads are small.
const SMALL: usize = 64 << 10;

/// What the thread hands over: a buffer and how much of it is data, or the end.
enum Piece {
    Data(Vec<u8>, usize),
    End(io::Result<()>),
}

pub struct ReadAhead {
    full: Receiver<Piece>,
    empty: SyncSender<Vec<u8>>,
    cur: Option<(Vec<u8>, usize)>,
    pos: usize,
    ended: Option<io::Result<()>>,
}

impl ReadAhead {
    /// Starts reading `input` ahead, `depth` buffers of `chunk` bytes.
    pub fn new<R: Read + Send + 'static>(mut input: R, chunk: usize, depth: usize) -> io::Result<Self> {
        let depth = depth.max(1);
        let (full_tx, full) = sync_channel(depth);
        let (empty, empty_rx) = sync_channel::<Vec<u8>>(depth);
        for _ in 0..depth {
            empty.send(Vec::new()).expect("room for every buffer");
        }
        std::thread::Builder::new().name("read-ahead".into()).spawn(move || {
            // A buffer shrinks to SMALL while reads are small (an idle stream
            // between passes, for hours) and grows back when data flows, so
            // an idle link holds little memory.
            let small = chunk.min(SMALL);
            let mut want = small;
            // Ends when the input ends or when the consumer is gone.
            while let Ok(mut buf) = empty_rx.recv() {
                if buf.len() != want {
                    buf.resize(want, 0);
                    buf.shrink_to(want);
                }
                let piece = loop {
                    match input.read(&mut buf) {
                        Ok(0) => break Piece::End(Ok(())),
                        Ok(n) => {
                            want = if n * 2 >= buf.len() { chunk } else { small };
                            break Piece::Data(buf, n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => break Piece::End(Err(e)),
                    }
                };
                let last = matches!(piece, Piece::End(_));
                if full_tx.send(piece).is_err() || last {
                    return;
                }
            }
        })?;
        Ok(ReadAhead { full, empty, cur: None, pos: 0, ended: None })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((buf, n)) = &self.cur {
                if self.pos < *n {
                    let k = out.len().min(n - self.pos);
                    out[..k].copy_from_slice(&buf[self.pos..self.pos + k]);
                    self.pos += k;
                    return Ok(k);
                }
                let (buf, _) = self.cur.take().expect("checked above");
                // The thread may have ended; then the buffer is simply dropped.
                let _ = self.empty.try_send(buf);
            }
            if let Some(end) = &self.ended {
                return match end {
                    Ok(()) => Ok(0),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
            }
            match self.full.recv() {
                Ok(Piece::Data(buf, n)) => {
                    self.cur = Some((buf, n));
                    self.pos = 0;
                }
                Ok(Piece::End(r)) => self.ended = Some(r),
                Err(_) => self.ended = Some(Err(io::Error::other("the read-ahead thread ended"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data in reads of the given sizes, then an optional error.
    struct Scripted {
        data: Vec<u8>,
        sizes: Vec<usize>,
        fail: bool,
    }

    impl Read for Scripted {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return if self.fail { Err(io::Error::new(io::ErrorKind::BrokenPipe, "link lost")) } else { Ok(0) };
            }
            let want = if self.sizes.is_empty() { self.data.len() } else { self.sizes.remove(0) };
            let k = want.min(out.len()).min(self.data.len());
            out[..k].copy_from_slice(&self.data[..k]);
            self.data.drain(..k);
            Ok(k)
        }
    }

    #[test]
    fn passes_every_byte_in_order_then_the_end() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let sizes = vec![1, 5000, 3, 70_000, 17];
        let mut r = ReadAhead::new(Scripted { data: data.clone(), sizes, fail: false }, 4096, 3).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0, "the end stays the end");
    }

    #[test]
    fn an_error_comes_after_the_data_before_it() {
        let mut r = ReadAhead::new(Scripted { data: vec![9; 10_000], sizes: vec![], fail: true }, 1024, 2).unwrap();
        let mut got = vec![0u8; 10_000];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, vec![9; 10_000]);
        let e = r.read(&mut [0u8; 10]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("link lost"));
    }

    #[test]
    fn a_short_message_is_not_held_back() {
        // The writer side of a pipe sends 3 bytes and keeps it open: the
        // reader must get them without waiting for a full buffer.
        let (rx, mut tx) = std::io::pipe().unwrap();
        let mut r = ReadAhead::new(rx, 1 << 20, 2).unwrap();
        std::io::Write::write_all(&mut tx, b"abc").unwrap();
        let mut got = [0u8; 3];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");
        drop(tx);
        assert_eq!(r.read(&mut [0u8; 1]).unwrap(), 0);
    }
}
