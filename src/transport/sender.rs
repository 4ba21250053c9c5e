//! The link thread of a framed link: a half's writes are compressed and sent on a thread of their own.
//!
//! [`Sender`] copies each write into one of a few recycled buffers and
//! queues it; the thread joins what is queued behind each other (up to
//! [`super::frame::JOIN`] bytes: whole batches), compresses it into one
//! frame and writes it to the link, so that compressing overlaps the
//! half's reading of its PFS, and the time the thread waits for the half is
//! kept apart from the time it is busy (what `auto` measures). `flush`
//! returns once everything before it is on the link. An error of the link
//! is returned by the next write or flush, with its kind (a vanished peer
//! stays a vanished peer).

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::frame::{FrameWriter, JOIN};

/// Buffers queued at most (each at most [`JOIN`] bytes).
const DEPTH: usize = 4;

enum Msg {
    Data(Vec<u8>),
    Flush(SyncSender<()>),
}

pub struct Sender {
    tx: Option<SyncSender<Msg>>,
    free: Receiver<Vec<u8>>,
    error: Arc<Mutex<Option<(io::ErrorKind, String)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    pub fn new<W: Write + Send + 'static>(mut fw: FrameWriter<W>) -> io::Result<Sender> {
        let (tx, rx) = sync_channel::<Msg>(DEPTH);
        let (free_tx, free) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let error = Arc::new(Mutex::new(None));
        let err = Arc::clone(&error);
        let thread = std::thread::Builder::new().name("link-tx".into()).spawn(move || {
            let fail = |e: io::Error| {
                *err.lock().unwrap_or_else(|p| p.into_inner()) = Some((e.kind(), e.to_string()));
            };
            let mut pending: Option<Msg> = None;
            loop {
                let msg = match pending.take() {
                    Some(m) => m,
                    None => match rx.recv() {
                        Ok(m) => m,
                        Err(_) => return,
                    },
                };
                match msg {
                    Msg::Flush(ack) => {
                        if let Err(e) = fw.flush() {
                            fail(e);
                            return;
                        }
                        let _ = ack.send(());
                    }
                    Msg::Data(mut data) => {
                        // Join what is already queued behind it.
                        while data.len() < JOIN {
                            match rx.try_recv() {
                                Ok(Msg::Data(mut more)) if data.len() + more.len() <= JOIN => {
                                    data.extend_from_slice(&more);
                                    more.clear();
                                    let _ = free_tx.try_send(more);
                                }
                                Ok(m) => {
                                    pending = Some(m);
                                    break;
                                }
                                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                            }
                        }
                        if let Err(e) = fw.frame(&data) {
                            fail(e);
                            return;
                        }
                        data.clear();
                        let _ = free_tx.try_send(data);
                    }
                }
            }
        })?;
        Ok(Sender { tx: Some(tx), free, error, thread: Some(thread) })
    }

    /// The link's error, once the thread met one.
    fn error(&self) -> io::Error {
        match &*self.error.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((kind, text)) => io::Error::new(*kind, text.clone()),
            None => io::Error::new(io::ErrorKind::BrokenPipe, "the link thread ended"),
        }
    }

    fn send(&self, m: Msg) -> io::Result<()> {
        match &self.tx {
            Some(tx) => tx.send(m).map_err(|_| self.error()),
            None => Err(self.error()),
        }
    }
}

impl Write for Sender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(JOIN);
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v.extend_from_slice(&buf[..n]);
        // A big buffer is not kept around for a small write.
        if v.capacity() > 4 * n.max(64 << 10) {
            v.shrink_to(n);
        }
        self.send(Msg::Data(v))?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let (ack_tx, ack) = sync_channel(1);
        self.send(Msg::Flush(ack_tx))?;
        ack.recv().map_err(|_| self.error())
    }
}

impl Drop for Sender {
    /// Everything written goes out before the link is let go.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
