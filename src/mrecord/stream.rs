//! Reading and writing mirror streams over any `Read`/`Write`, batched in 512 KiB as hammer does.
//!
//! [`RecordReader`] reads whole records into one buffer with as few `read()`
//! calls as the transport allows, checks each head's `rec_size` before it
//! waits for the payload, verifies every CRC, and tells a clean end of stream
//! at a record boundary from a truncated record. It never reads past the
//! record it needs to return, so a two-way conversation cannot deadlock on
//! read-ahead. [`RecordWriter`] encodes records and writes pre-encoded batches
//! unchanged.

use std::io::{self, ErrorKind, Read, Write};

use super::{DecodeError, HEAD_SIZE, Head, MAX_REC_SIZE, Record, SERIALBUF_SIZE, decode, doalign};

/// Why reading a stream failed; every variant names the stream byte offset.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("truncated stream at byte {offset}: record needs {need} bytes, stream ended after {have}")]
    Truncated { offset: u64, have: usize, need: usize },
    #[error("malformed record at byte {offset}")]
    Malformed {
        offset: u64,
        #[source]
        source: DecodeError,
    },
    #[error("reading the stream at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl StreamError {
    /// The stream offset the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            StreamError::Truncated { offset, .. }
            | StreamError::Malformed { offset, .. }
            | StreamError::Io { offset, .. } => *offset,
        }
    }
}

/// A run of consecutive, validated bulk records (REC/PASS/SKIP), exactly as
/// they appeared on the wire, ready for `mirror_write`.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The raw bytes, pads included.
    pub bytes: &'a [u8],
    /// How many records `bytes` holds.
    pub records: usize,
    /// Stream offset of the first byte.
    pub offset: u64,
}

/// Reads records from a stream. See the module documentation.
pub struct RecordReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    /// End of valid bytes in `buf`.
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    eof: bool,
    /// The largest batch [`Self::next_batch`] returns.
    batch_limit: usize,
    /// The buffer's size while in use (it is allocated on the first read,
    /// and given back by [`Self::release_idle`]).
    cap: usize,
}

impl<R: Read> RecordReader<R> {
    /// A reader whose batches hold at most 512 KiB, as hammer's.
    pub fn new(inner: R) -> Self {
        Self::with_batch_limit(inner, SERIALBUF_SIZE)
    }

    /// A reader whose batches hold at most `limit` bytes (at least one
    /// maximal record). Memory use is about twice the limit.
    pub fn with_batch_limit(inner: R, limit: usize) -> Self {
        let batch_limit = limit.max(doalign(MAX_REC_SIZE));
        // A full batch, one maximal record behind it, and read-ahead room.
        let cap = batch_limit + doalign(MAX_REC_SIZE) + SERIALBUF_SIZE;
        RecordReader { inner, buf: Vec::new(), cap, start: 0, end: 0, offset: 0, eof: false, batch_limit }
    }

    /// Stream offset of the next unread record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Makes sure `n` bytes from `from` (an index into `buf`, >= start) are
    /// buffered. Returns false when the stream ended before that.
    fn fill_to(&mut self, from: usize, n: usize) -> Result<bool, StreamError> {
        while self.end < from + n {
            if self.eof {
                return Ok(false);
            }
            // make_room() at the top of every public read keeps this true.
            debug_assert!(from + n <= self.buf.len());
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(StreamError::Io { offset: self.offset + (self.end - self.start) as u64, source: e });
                }
            }
        }
        Ok(true)
    }

    /// Gives the buffer's memory back when nothing is buffered (between the
    /// passes of a stream, which may be hours apart); the next read takes
    /// it again. A stream's idle target then holds no batch buffer.
    pub fn release_idle(&mut self) {
        if self.start == self.end {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Compacts the buffer when fewer than `room` bytes are left after `start`.
    fn make_room(&mut self, room: usize) {
        if self.buf.len() < self.cap {
            // Allocated on first use, or again after release_idle (nothing is buffered then).
            debug_assert_eq!(self.start, self.end);
            self.buf = vec![0; self.cap];
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.start < room {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads and checks the head at `pos` (a buffer index >= start whose
    /// stream offset is `off`). `Ok(None)`: clean end of stream at `pos`.
    fn head_at(&mut self, pos: usize, off: u64) -> Result<Option<(Head, usize)>, StreamError> {
        if !self.fill_to(pos, HEAD_SIZE)? {
            let have = self.end - pos;
            if have == 0 {
                return Ok(None);
            }
            return Err(StreamError::Truncated { offset: off, have, need: HEAD_SIZE });
        }
        let head = Head::decode(&self.buf[pos..]);
        let total = head.check().map_err(|source| StreamError::Malformed { offset: off, source })?;
        Ok(Some((head, total)))
    }

    /// Ensures the whole record (aligned length `total`) at `pos` is buffered.
    fn body_at(&mut self, pos: usize, off: u64, total: usize) -> Result<(), StreamError> {
        if self.fill_to(pos, total)? {
            Ok(())
        } else {
            Err(StreamError::Truncated { offset: off, have: self.end - pos, need: total })
        }
    }

    /// Reads the next record. `Ok(None)` is a clean end of stream at a record
    /// boundary; end of stream inside a record is [`StreamError::Truncated`].
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, StreamError> {
        self.make_room(doalign(MAX_REC_SIZE));
        let off = self.offset;
        let start = self.start;
        let Some((_, total)) = self.head_at(start, off)? else {
            return Ok(None);
        };
        self.body_at(start, off, total)?;
        self.start += total;
        self.offset += total as u64;
        let (rec, _) =
            decode(&self.buf[start..start + total]).map_err(|source| StreamError::Malformed { offset: off, source })?;
        Ok(Some(rec))
    }

    /// Peeks at the type word of the next record without consuming it.
    /// `Ok(None)` at a clean end of stream.
    pub fn peek_type(&mut self) -> Result<Option<u32>, StreamError> {
        self.make_room(doalign(MAX_REC_SIZE));
        let (start, off) = (self.start, self.offset);
        Ok(self.head_at(start, off)?.map(|(h, _)| h.rtype))
    }

    /// Reads consecutive bulk records (REC, PASS, SKIP) totalling at most
    /// the batch limit, like `read_mrecords()`: it stops before a record of
    /// any other type (left for [`Self::next_record`]), before a record that
    /// would overflow the limit, and at end of stream. An empty batch means
    /// the next record is not a bulk record, or the stream ended. Like hammer
    /// it waits for the peer while a run of bulk records goes on: the sender
    /// never waits for us in the middle of one.
    pub fn next_batch(&mut self) -> Result<Batch<'_>, StreamError> {
        let max = self.batch_limit;
        self.make_room(max + doalign(MAX_REC_SIZE));
        let first = self.start;
        let first_off = self.offset;
        let mut pos = first;
        let mut records = 0;
        loop {
            let off = first_off + (pos - first) as u64;
            let Some((head, total)) = self.head_at(pos, off)? else {
                break;
            };
            if !head.is_bulk() || pos + total - first > max {
                break;
            }
            self.body_at(pos, off, total)?;
            decode(&self.buf[pos..pos + total]).map_err(|source| StreamError::Malformed { offset: off, source })?;
            pos += total;
            records += 1;
        }
        self.start = pos;
        self.offset += (pos - first) as u64;
        Ok(Batch { bytes: &self.buf[first..pos], records, offset: first_off })
    }
}

/// Writes records to a stream through a 512 KiB buffer.
pub struct RecordWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(inner: W) -> Self {
        RecordWriter { inner, buf: Vec::with_capacity(SERIALBUF_SIZE), written: 0 }
    }

    /// Bytes handed to the writer so far (buffered or written).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Buffers one record; the buffer is written out when it reaches 512 KiB
    /// and by [`Self::flush`].
    pub fn write_record(&mut self, rec: &Record<'_>) -> io::Result<()> {
        rec.encode_to_vec(&mut self.buf);
        self.written += rec.encoded_len() as u64;
        if self.buf.len() >= SERIALBUF_SIZE {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes already-encoded records (a `mirror_read` buffer) without copying them.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush_buf()?;
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out everything buffered and flushes the transport. Call before
    /// waiting for the peer's answer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.inner.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BaseElm, LeafElm, rtype};
    use super::*;
    use crate::hammerfs::{HAMMER_RECTYPE_DATA, leaf_data_crc};

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn rec_bytes(n: usize, dlen: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let data = vec![i as u8; dlen];
            let leaf = LeafElm {
                base: BaseElm { obj_id: i as i64, rec_type: HAMMER_RECTYPE_DATA, create_tid: 5, ..Default::default() },
                data_offset: 1,
                data_len: dlen as i32,
                data_crc: leaf_data_crc(HAMMER_RECTYPE_DATA, &data),
                ..Default::default()
            };
            Record::rec(leaf, &data).encode_to_vec(&mut v);
        }
        v
    }

    #[test]
    fn batches_stop_at_control_records_and_size() {
        let mut v = rec_bytes(100, 16000);
        Record::Sync.encode_to_vec(&mut v);
        Record::Term.encode_to_vec(&mut v);
        for step in [1, 7, 4096, usize::MAX] {
            let mut r = RecordReader::new(Trickle { data: &v, step });
            let mut total = 0;
            loop {
                let b = r.next_batch().unwrap();
                assert!(b.bytes.len() <= SERIALBUF_SIZE);
                if b.records == 0 {
                    break;
                }
                total += b.records;
            }
            assert_eq!(total, 100);
            assert_eq!(r.next_record().unwrap(), Some(Record::Sync));
            assert_eq!(r.next_record().unwrap(), Some(Record::Term));
            assert_eq!(r.next_record().unwrap(), None);
        }
    }

    #[test]
    fn truncation_is_told_from_clean_eof() {
        let v = rec_bytes(3, 10);
        for cut in 1..v.len() {
            let mut r = RecordReader::new(&v[..cut]);
            let mut err = None;
            loop {
                match r.next_record() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            if cut % 96 == 0 {
                assert!(err.is_none(), "cut {cut} is a boundary");
            } else {
                let e = err.unwrap_or_else(|| panic!("cut {cut} must fail"));
                assert!(matches!(e, StreamError::Truncated { .. }), "{e}");
                assert_eq!(e.offset(), (cut / 96 * 96) as u64);
            }
        }
    }

    #[test]
    fn oversize_rec_size_fails_before_reading_payload() {
        let mut v = Vec::new();
        Record::Sync.encode_to_vec(&mut v);
        v[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = RecordReader::new(&v[..16]);
        let e = anyhow::Error::new(r.next_record().unwrap_err());
        assert_eq!(format!("{e:#}"), "malformed record at byte 0: illegal rec_size 4294967295 (must be 16..=65856)");
    }

    #[test]
    fn errors_carry_offsets() {
        let mut v = rec_bytes(2, 8);
        let at = v.len();
        let mut s = Vec::new();
        Record::Sync.encode_to_vec(&mut s);
        s[20] ^= 0xff;
        v.extend_from_slice(&s);
        let mut r = RecordReader::new(&v[..]);
        let b = r.next_batch().unwrap();
        assert_eq!(b.records, 2);
        let e = r.next_record().unwrap_err();
        assert_eq!(e.offset(), at as u64);
        assert!(format!("{:#}", anyhow::Error::new(e)).contains("bad record CRC"));
    }

    #[test]
    fn writer_round_trips_through_reader() {
        let raw = rec_bytes(10, 100);
        let mut w = RecordWriter::new(Vec::new());
        w.write_record(&Record::Update { tid: 9 }).unwrap();
        w.write_raw(&raw).unwrap();
        w.write_record(&Record::Idle).unwrap();
        w.flush().unwrap();
        let out = w.get_ref().clone();
        assert_eq!(w.bytes_written(), out.len() as u64);
        let mut r = RecordReader::new(&out[..]);
        assert_eq!(r.next_record().unwrap(), Some(Record::Update { tid: 9 }));
        let b = r.next_batch().unwrap();
        assert_eq!(b.bytes, &raw[..]);
        assert_eq!(r.peek_type().unwrap(), Some(rtype::IDLE));
        assert_eq!(r.next_record().unwrap(), Some(Record::Idle));
    }
}
