//! Compression frames on the ssh link (`--compress`): the frame format, its bounded decoder, the encoder and `auto`'s level choice.
//!
//! Only a link to our own remote half is framed, and only when both ends
//! were told so (the remote half's hidden `--link-compress`): the halves and
//! the mirror stream itself never see a frame. Each direction starts with
//! an 8-byte hello ([`HELLO`]), then carries frames:
//!
//! ```text
//! flag u8 (0 raw, 1 zstd, 2 lz4) | 3 zero bytes | stored_len u32 LE | raw_len u32 LE | stored_len bytes
//! ```
//!
//! A frame is one write of the sending half (whole record batches), or
//! several queued ones joined, at most [`MAX_RAW`] bytes. A compressed frame
//! is always smaller than its raw bytes: one that does not shrink is sent
//! raw. The decoder trusts nothing: a flag it does not know, a length over
//! [`MAX_RAW`], a compressed frame that does not decode to exactly its
//! `raw_len`, or a link that ends inside a frame is an error naming the
//! link byte offset, and it never allocates more than two frames' worth.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The first bytes of each direction of a framed link.
pub const HELLO: [u8; 8] = *b"HMLINK1\n";
/// The size of a frame header.
pub const HEADER: usize = 12;
/// The largest frame payload (raw or stored) a decoder accepts.
pub const MAX_RAW: usize = 4 << 20;
/// Writes queued behind each other are joined into frames of up to this many bytes.
pub const JOIN: usize = 2 << 20;

/// Frames smaller than this are compressed and decompressed without a kept
/// context (zstd's are a few MiB with their tables).
const SMALL: usize = 64 << 10;

const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;
const FLAG_LZ4: u8 = 2;

/// The level of `--compress zstd`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The highest zstd level accepted (zstd's own maximum).
pub const MAX_ZSTD_LEVEL: i32 = 19;

/// `--compress`: what the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// zstd at a level that follows the link (remote endpoints); none locally.
    #[default]
    Auto,
    Zstd(i32),
    Lz4,
    None,
}

impl Compress {
    /// Parses `auto`, `zstd`, `zstd:LEVEL` (1..=19), `lz4` or `none`.
    pub fn parse(s: &str) -> Result<Compress, String> {
        match s {
            "auto" => Ok(Compress::Auto),
            "zstd" => Ok(Compress::Zstd(DEFAULT_ZSTD_LEVEL)),
            "lz4" => Ok(Compress::Lz4),
            "none" => Ok(Compress::None),
            _ => {
                if let Some(l) = s.strip_prefix("zstd:") {
                    match l.parse::<i32>() {
                        Ok(n) if (1..=MAX_ZSTD_LEVEL).contains(&n) => return Ok(Compress::Zstd(n)),
                        _ => {
                            return Err(format!(
                                "invalid zstd level '{l}' in '{s}': expected a number from 1 to {MAX_ZSTD_LEVEL}"
                            ));
                        }
                    }
                }
                Err(format!(
                    "invalid compression '{s}': expected auto, zstd, zstd:LEVEL (1-{MAX_ZSTD_LEVEL}), lz4 or none"
                ))
            }
        }
    }

    /// The word that names it on a command line (`--link-compress` of the remote half).
    pub fn word(self) -> String {
        match self {
            Compress::Auto => "auto".into(),
            Compress::Zstd(l) => format!("zstd:{l}"),
            Compress::Lz4 => "lz4".into(),
            Compress::None => "none".into(),
        }
    }
}

/// Byte counts of a link, both directions: what the halves wrote and read
/// (stream bytes) and what crossed the link (link bytes, hellos and headers included).
#[derive(Debug, Default)]
pub struct LinkStats {
    pub stream_out: AtomicU64,
    pub link_out: AtomicU64,
    pub stream_in: AtomicU64,
    pub link_in: AtomicU64,
}

impl LinkStats {
    pub fn new() -> Arc<LinkStats> {
        Arc::new(LinkStats::default())
    }
    fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn bad(at: u64, what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("compressed link: bad frame at link byte {at}: {what}"))
}

/// Reads a framed link and hands on the stream it carries.
pub struct FrameReader<R> {
    inner: R,
    /// Link bytes consumed so far.
    at: u64,
    hello: bool,
    out: Vec<u8>,
    pos: usize,
    stored: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    stats: Option<Arc<LinkStats>>,
    ended: bool,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, stats: Option<Arc<LinkStats>>) -> Self {
        FrameReader {
            inner,
            at: 0,
            hello: false,
            out: Vec::new(),
            pos: 0,
            stored: Vec::new(),
            zstd: None,
            stats,
            ended: false,
        }
    }

    /// Fills `buf` from the link; false when the link ended before the
    /// first byte. Ending after it is a truncated frame.
    fn fill(&mut self, buf_len: usize, into_stored: bool, what: &str) -> io::Result<bool> {
        let start = self.at;
        let mut got = 0;
        while got < buf_len {
            let dst = if into_stored { &mut self.stored[got..buf_len] } else { &mut self.out[got..buf_len] };
            match self.inner.read(dst) {
                Ok(0) if got == 0 && what != "payload" => return Ok(false),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "compressed link: the link ended inside a frame's {what} at link byte {}: {buf_len} bytes announced at byte {start}, {got} arrived",
                            start + got as u64
                        ),
                    ));
                }
                Ok(n) => {
                    got += n;
                    self.at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(s) = &self.stats {
            LinkStats::add(&s.link_in, buf_len);
        }
        Ok(true)
    }

    /// Reads the next frame into `out`; false at a clean end of the link.
    fn next_frame(&mut self) -> io::Result<bool> {
        if !self.hello {
            self.stored.resize(HELLO.len(), 0);
            if !self.fill(HELLO.len(), true, "hello")? {
                return Ok(false);
            }
            if self.stored[..] != HELLO {
                let looks = if self.stored[..4] == crate::mrecord::SIGNATURE.to_le_bytes()
                    || self.stored[..4] == crate::mrecord::SIGNATURE_REV.to_le_bytes()
                {
                    "an uncompressed mirror stream: the peer does not frame the link (is it a hammer-mirror that was given --link-compress?)"
                } else {
                    "not a compressed link"
                };
                return Err(bad(0, format!("expected the hello {:?}, got {:02x?}: {looks}", HELLO, &self.stored[..])));
            }
            self.hello = true;
        }
        let at = self.at;
        self.stored.resize(HEADER, 0);
        if !self.fill(HEADER, true, "header")? {
            return Ok(false);
        }
        let h = &self.stored[..HEADER];
        let flag = h[0];
        let stored = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize;
        let raw = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")) as usize;
        if h[1..4] != [0, 0, 0] {
            return Err(bad(at, format!("reserved header bytes {:02x?} are not zero", &h[1..4])));
        }
        if !matches!(flag, FLAG_RAW | FLAG_ZSTD | FLAG_LZ4) {
            return Err(bad(at, format!("flag {flag:#04x} is none of raw (0), zstd (1), lz4 (2)")));
        }
        if raw == 0 || raw > MAX_RAW {
            return Err(bad(at, format!("raw length {raw} is outside 1..={MAX_RAW}")));
        }
        if flag == FLAG_RAW && stored != raw {
            return Err(bad(at, format!("a raw frame stores {stored} bytes but announces {raw}")));
        }
        if flag != FLAG_RAW && (stored == 0 || stored >= raw) {
            return Err(bad(at, format!("a compressed frame stores {stored} bytes for {raw}: it must shrink")));
        }
        self.pos = 0;
        if flag == FLAG_RAW {
            self.out.resize(raw, 0);
            self.fill(raw, false, "payload")?;
        } else {
            self.stored.resize(stored, 0);
            self.fill(stored, true, "payload")?;
            self.out.resize(raw, 0);
            let n = if flag == FLAG_ZSTD {
                // Small frames (acknowledgements, heartbeats) keep no context.
                let mut temp;
                let d = if raw < SMALL {
                    self.zstd = None;
                    temp = zstd::bulk::Decompressor::new()?;
                    &mut temp
                } else {
                    match &mut self.zstd {
                        Some(d) => d,
                        None => self.zstd.insert(zstd::bulk::Decompressor::new()?),
                    }
                };
                d.decompress_to_buffer(&self.stored[..], &mut self.out[..])
                    .map_err(|e| bad(at, format!("zstd data does not decode into {raw} bytes: {e}")))?
            } else {
                lz4_flex::block::decompress_into(&self.stored, &mut self.out)
                    .map_err(|e| bad(at, format!("lz4 data does not decode into {raw} bytes: {e}")))?
            };
            if n != raw {
                return Err(bad(at, format!("decodes into {n} bytes, not the {raw} announced")));
            }
        }
        if let Some(s) = &self.stats {
            LinkStats::add(&s.stream_in, raw);
        }
        Ok(true)
    }
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.out.len() {
            if self.ended || !self.next_frame()? {
                self.ended = true;
                // Give the buffers back: an ended link holds nothing.
                self.out = Vec::new();
                self.stored = Vec::new();
                self.pos = 0;
                return Ok(0);
            }
            // A small frame (an acknowledgement, a heartbeat) needs no big buffer kept.
            if self.out.capacity() > 4 * self.out.len().max(SMALL) {
                self.out.shrink_to(self.out.len());
            }
            if self.stored.capacity() > 4 * self.stored.len().max(SMALL) {
                self.stored.shrink_to(self.stored.len());
            }
        }
        let k = buf.len().min(self.out.len() - self.pos);
        buf[..k].copy_from_slice(&self.out[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

/// How a frame is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Raw,
    Zstd(i32),
    Lz4,
}

/// `auto`'s rungs: raw, then zstd levels.
const RUNGS: [Method; 6] =
    [Method::Raw, Method::Zstd(1), Method::Zstd(3), Method::Zstd(6), Method::Zstd(9), Method::Zstd(12)];

/// `auto`'s level choice. Each rung (raw, then zstd levels) is judged by the
/// stream bytes it would move per second, from what the link thread measures
/// per frame: compressing time (the compressor's speed `C`), link bytes per
/// stream byte (the ratio `r`) and the time blocked writing to the link.
/// Time spent waiting for the half does not count, so a slow producer does
/// not look like a slow link.
///
/// When the thread is mostly blocked on the link, the link is the
/// bottleneck: its speed `S` (link bytes per busy second) is measured over
/// the window, and a rung is worth `min(C, S / r)`. A higher level is then
/// tried for a few frames, which measures its `C` and `r` exactly (neither
/// depends on the buffers between us and the link), and taken when it is
/// worth 5 % more; raw is never worth more there (`S < S / r`). When the
/// thread is mostly compressing, the compressor is the bottleneck: a lower
/// rung is tried, down to raw, and its measured rate decides. A rung that
/// lost waits twice as many windows before its next try (at most 16).
#[derive(Debug)]
pub struct Adapt {
    cur: usize,
    trial: Option<usize>,
    win: Window,
    /// The current rung's last window.
    last: Window,
    /// The current rung on the frames of a paired trial.
    shadow: Window,
    /// The link's speed in link bytes per second, while it was the bottleneck.
    link_speed: Option<f64>,
    /// Windows to wait before trying down (index 0) or up (1) again, and the current wait.
    backoff: [u32; 2],
    wait: [u32; 2],
}

/// What a run of frames on one rung measured.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    frames: u32,
    raw: u64,
    link: u64,
    compress: Duration,
    blocked: Duration,
}

impl Window {
    fn busy(&self) -> f64 {
        (self.compress + self.blocked).as_secs_f64().max(1e-6)
    }
    /// Stream bytes per busy second, as measured.
    fn rate(&self) -> f64 {
        self.raw as f64 / self.busy()
    }
    fn link_bound(&self) -> bool {
        self.blocked.as_secs_f64() > LINK_BOUND * self.busy()
    }
    /// Stream bytes per second on a link of `speed` link bytes per second.
    fn worth(&self, speed: f64) -> f64 {
        let c = if self.compress.is_zero() { f64::INFINITY } else { self.raw as f64 / self.compress.as_secs_f64() };
        let r = self.link as f64 / (self.raw as f64).max(1.0);
        c.min(speed / r.max(1e-6))
    }
}

const WINDOW: u32 = 12;
const TRIAL: u32 = 4;
/// The share of busy time blocked on the link above which the link is the bottleneck.
const LINK_BOUND: f64 = 0.25;

impl Default for Adapt {
    fn default() -> Self {
        Adapt {
            cur: 1,
            trial: None,
            win: Window::default(),
            last: Window::default(),
            shadow: Window::default(),
            link_speed: None,
            backoff: [1, 1],
            wait: [0, 0],
        }
    }
}

impl Adapt {
    /// The method of the next frame.
    pub fn method(&self) -> Method {
        RUNGS[self.trial.unwrap_or(self.cur)]
    }

    /// The rung it stays on (between trials).
    pub fn settled(&self) -> Method {
        RUNGS[self.cur]
    }

    /// During a trial of a higher level on a bottleneck link: the current
    /// rung, at which each trial frame is compressed too, so that both are
    /// judged on the same bytes (small differences in ratio count).
    pub fn paired(&self) -> Option<Method> {
        match (self.trial, self.link_speed) {
            (Some(t), Some(_)) if t > self.cur && self.cur > 0 => Some(RUNGS[self.cur]),
            _ => None,
        }
    }

    /// What the current rung did with a paired trial's frame (before its [`Adapt::record`]).
    pub fn record_shadow(&mut self, raw: usize, link: usize, compress: Duration) {
        let w = &mut self.shadow;
        w.frames += 1;
        w.raw += raw as u64;
        w.link += link as u64;
        w.compress += compress;
    }

    /// Learns how the last frame went: `raw` stream bytes sent as `link`
    /// bytes, `compress` time compressing, `blocked` time writing.
    pub fn record(&mut self, raw: usize, link: usize, compress: Duration, blocked: Duration) {
        let w = &mut self.win;
        w.frames += 1;
        w.raw += raw as u64;
        w.link += link as u64;
        w.compress += compress;
        w.blocked += blocked;
        match self.trial {
            None if w.frames >= WINDOW => {
                let w = std::mem::take(&mut self.win);
                self.last = w;
                let up = Some(self.cur + 1).filter(|&i| i < RUNGS.len());
                let down = self.cur.checked_sub(1);
                let dir = if w.link_bound() {
                    let s = w.link as f64 / w.busy();
                    self.link_speed = Some(self.link_speed.map_or(s, |old| (old + s) / 2.0));
                    up.map(|u| (u, 1))
                } else {
                    down.map(|d| (d, 0))
                };
                if let Some((to, d)) = dir {
                    if self.wait[d] == 0 {
                        self.trial = Some(to);
                    } else {
                        self.wait[d] -= 1;
                    }
                }
            }
            Some(t) if w.frames >= TRIAL => {
                let tried = std::mem::take(&mut self.win);
                let shadow = std::mem::take(&mut self.shadow);
                let dir = usize::from(t > self.cur);
                let better = match (dir, self.link_speed) {
                    // Up on a bottleneck link: judged on the same link speed,
                    // against the current rung on the same frames when paired.
                    (1, Some(s)) if shadow.frames == tried.frames => tried.worth(s) > shadow.worth(s) * 1.001,
                    (1, Some(s)) => tried.worth(s) > self.last.worth(s) * 1.05,
                    _ => tried.rate() > self.last.rate() * 1.05,
                };
                if better {
                    self.cur = t;
                    self.backoff = [1, 1];
                    self.wait = [0, 0];
                } else {
                    self.backoff[dir] = (self.backoff[dir] * 2).min(16);
                    self.wait[dir] = self.backoff[dir];
                }
                self.trial = None;
            }
            _ => {}
        }
    }
}

/// The compression policy of an encoder.
#[derive(Debug)]
pub enum Policy {
    Fixed(Method),
    Auto(Box<Adapt>),
}

impl Policy {
    /// The policy for a `--compress` choice on a framed link.
    pub fn of(c: Compress) -> Policy {
        match c {
            Compress::Auto => Policy::Auto(Box::default()),
            Compress::Zstd(l) => Policy::Fixed(Method::Zstd(l)),
            Compress::Lz4 => Policy::Fixed(Method::Lz4),
            Compress::None => Policy::Fixed(Method::Raw),
        }
    }
}

/// Writes frames: each `write` becomes one frame (of at most [`JOIN`] bytes).
pub struct FrameWriter<W> {
    inner: W,
    policy: Policy,
    hello: bool,
    /// zstd contexts by level: the current one, and the one `auto` tries.
    zstd: Vec<(i32, zstd::bulk::Compressor<'static>)>,
    buf: Vec<u8>,
    /// What the current rung would have sent, during `auto`'s paired trials.
    shadow: Vec<u8>,
    stats: Option<Arc<LinkStats>>,
}

/// zstd's worker threads for the higher levels (zstdmt): jobs of 512 KiB
/// of a joined frame are compressed in parallel.
fn workers(level: i32) -> u32 {
    if level < 6 {
        return 0;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

impl<W: Write> FrameWriter<W> {
    pub fn new(inner: W, policy: Policy, stats: Option<Arc<LinkStats>>) -> Self {
        FrameWriter { inner, policy, hello: false, zstd: Vec::new(), buf: Vec::new(), shadow: Vec::new(), stats }
    }

    fn compressor(&mut self, level: i32) -> io::Result<&mut zstd::bulk::Compressor<'static>> {
        let i = match self.zstd.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                let n = workers(level);
                // Without worker threads in this libzstd, stay single-threaded.
                if n > 0 && c.set_parameter(zstd::zstd_safe::CParameter::NbWorkers(n)).is_ok() {
                    let _ = c.set_parameter(zstd::zstd_safe::CParameter::JobSize(512 << 10));
                }
                if self.zstd.len() >= 2 {
                    self.zstd.remove(0);
                }
                self.zstd.push((level, c));
                self.zstd.len() - 1
            }
        };
        Ok(&mut self.zstd[i].1)
    }

    /// Compresses `data` into `self.buf` as one frame (header included).
    fn encode(&mut self, data: &[u8], method: Method) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.encode_into(data, method, &mut buf);
        self.buf = buf;
        r
    }

    /// Compresses `data` into `buf` as one frame (header included).
    fn encode_into(&mut self, data: &[u8], method: Method, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        buf.resize(HEADER + data.len(), 0);
        let stored = match method {
            Method::Raw => None,
            // Output that would not fit in fewer bytes than the input is an
            // error here: the frame goes raw.
            Method::Zstd(l) if data.len() < SMALL => {
                // No context is kept for a small frame.
                zstd::bulk::Compressor::new(l)?.compress_to_buffer(data, &mut buf[HEADER..HEADER + data.len() - 1]).ok()
            }
            Method::Zstd(l) => {
                self.compressor(l)?.compress_to_buffer(data, &mut buf[HEADER..HEADER + data.len() - 1]).ok()
            }
            Method::Lz4 => {
                // lz4_flex wants room for its worst case.
                buf.resize(HEADER + lz4_flex::block::get_maximum_output_size(data.len()), 0);
                lz4_flex::block::compress_into(data, &mut buf[HEADER..]).ok()
            }
        };
        let (flag, len) = match (method, stored) {
            (Method::Zstd(_), Some(n)) if n > 0 && n < data.len() => (FLAG_ZSTD, n),
            (Method::Lz4, Some(n)) if n > 0 && n < data.len() => (FLAG_LZ4, n),
            _ => {
                buf.truncate(HEADER + data.len());
                buf[HEADER..].copy_from_slice(data);
                (FLAG_RAW, data.len())
            }
        };
        buf[0] = flag;
        buf[1..4].fill(0);
        buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        buf[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        buf.truncate(HEADER + len);
        Ok(())
    }

    /// Sends `data` as one frame.
    pub fn frame(&mut self, data: &[u8]) -> io::Result<()> {
        debug_assert!(!data.is_empty() && data.len() <= MAX_RAW);
        let t = Instant::now();
        if !self.hello {
            self.inner.write_all(&HELLO)?;
            self.hello = true;
            if let Some(s) = &self.stats {
                LinkStats::add(&s.link_out, HELLO.len());
            }
        }
        let method = match &self.policy {
            Policy::Fixed(m) => *m,
            Policy::Auto(a) => a.method(),
        };
        if data.len() < SMALL {
            // A pass's end or an idle stream's heartbeat: the contexts go
            // (an idle stream holds little memory); big frames make them again.
            self.zstd.clear();
        }
        self.encode(data, method)?;
        let compressing = t.elapsed();
        // A paired trial: the same frame at the current rung, for comparison.
        let shadow = match &self.policy {
            Policy::Auto(a) => a.paired(),
            Policy::Fixed(_) => None,
        };
        let shadow = match shadow {
            Some(m) => {
                let t = Instant::now();
                let mut b = std::mem::take(&mut self.shadow);
                self.encode_into(data, m, &mut b)?;
                let r = (b.len(), t.elapsed());
                b.clear();
                self.shadow = b;
                Some(r)
            }
            None => {
                self.shadow = Vec::new();
                None
            }
        };
        let w = Instant::now();
        // Counted as it goes: on a slow link a frame takes seconds, and the
        // stall watchdog sees the bytes move.
        let mut off = 0;
        while off < self.buf.len() {
            match self.inner.write(&self.buf[off..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the link took no bytes")),
                Ok(n) => {
                    off += n;
                    if let Some(s) = &self.stats {
                        LinkStats::add(&s.link_out, n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let blocked = w.elapsed();
        if let Some(s) = &self.stats {
            LinkStats::add(&s.stream_out, data.len());
        }
        if let Policy::Auto(a) = &mut self.policy {
            if let Some((link, compress)) = shadow {
                a.record_shadow(data.len(), link, compress);
            }
            a.record(data.len(), self.buf.len(), compressing, blocked);
        }
        // A big buffer is not kept for small frames (an idle stream's acknowledgements).
        if self.buf.capacity() > 4 * self.buf.len().max(SMALL) {
            self.buf = Vec::new();
        }
        Ok(())
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(JOIN);
        self.frame(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
