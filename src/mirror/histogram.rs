//! The prescan (`generate_histogram`): split a bulk transfer into acknowledged TID chunks of about `-S` bytes.
//!
//! A NODATA mirror-read over the whole range counts, per TID, the bytes the
//! real read will send (hammer's accounting: record sizes, data counted at
//! the create TID); the TIDs are then merged, in order, into chunks of at
//! least `-S` bytes (default 4 GiB). Each chunk is mirrored and acknowledged
//! on its own, so a lost link costs at most one chunk.
//!
//! Unlike cmd_mirror.c, which spreads the range over 1 Mi equal TID buckets,
//! chunks are cut at exact TIDs: the store's TIDs are nanosecond clock
//! values, and a first copy's range starts at 1, so equal buckets would put
//! a whole history into one bucket. Past 1 Mi distinct TIDs the counts fall
//! back to hammer's buckets over the TIDs actually seen, in 128-bit
//! arithmetic (hammer's 64-bit product overflows for ranges above 2^44).

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context;

use crate::ioctl::{HEAD_ERROR, MIRROR_NODATA, MirrorRw, Pfs};
use crate::mrecord::{self, Record, SERIALBUF_SIZE, doalign, rtype};

/// `HIST_COUNT`.
pub const HIST_COUNT: usize = 1024 * 1024;

/// The chunk boundaries: `chunks[0].tid` is the first TID of the range, and
/// chunk `k` (1-based) covers `(chunks[k-1].tid, chunks[k].tid]` with about
/// `chunks[k-1].bytes` bytes. The last entry's TID is the end of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub chunks: Vec<Chunk>,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub tid: u64,
    pub bytes: u64,
}

impl Histogram {
    /// `histmax`: the number of chunks.
    pub fn max_index(&self) -> usize {
        self.chunks.len() - 1
    }
}

/// The bucket of `tid` in `[beg, end]` (`beg < end`), with hammer's rule
/// that a TID exactly on a bucket boundary belongs to the bucket before.
fn bucket(tid: u64, beg: u64, end: u64) -> usize {
    let range = (end - beg) as u128;
    let mut i = ((tid - beg) as u128 * HIST_COUNT as u128 / range) as usize;
    let tidx = beg as u128 + i as u128 * range / HIST_COUNT as u128;
    if tid as u128 == tidx && i > 0 {
        i -= 1;
    }
    i.min(HIST_COUNT - 1)
}

/// Bytes per TID, exact until there are too many distinct TIDs.
enum Counts {
    Exact(HashMap<u64, u64>),
    Buckets { lo: u64, bytes: Vec<u64> },
}

impl Counts {
    fn add(&mut self, tid: u64, len: u64, end: u64) {
        match self {
            Counts::Exact(map) => {
                *map.entry(tid).or_default() += len;
                if map.len() > HIST_COUNT {
                    let lo = map.keys().copied().min().unwrap_or(tid);
                    let mut bytes = vec![0u64; HIST_COUNT];
                    for (&t, &b) in map.iter() {
                        bytes[bucket(t, lo, end)] += b;
                    }
                    *self = Counts::Buckets { lo, bytes };
                }
            }
            Counts::Buckets { lo, bytes } => bytes[if tid <= *lo { 0 } else { bucket(tid, *lo, end) }] += len,
        }
    }

    /// `(last TID, bytes)` per TID or bucket, in TID order.
    fn into_sorted(self, end: u64) -> Vec<(u64, u64)> {
        match self {
            Counts::Exact(map) => {
                let mut v: Vec<_> = map.into_iter().collect();
                v.sort_unstable();
                v
            }
            Counts::Buckets { lo, bytes } => {
                let range = (end - lo) as u128;
                let bucket_end = |i: usize| (lo as u128 + (i as u128 + 1) * range / HIST_COUNT as u128) as u64;
                bytes.iter().enumerate().filter(|(_, b)| **b > 0).map(|(i, b)| (bucket_end(i), *b)).collect()
            }
        }
    }
}

/// Adds one prescan record's bytes, as `generate_histogram` counts them.
fn account(rec: &Record<'_>, beg: u64, end: u64, counts: &mut Counts, total: &mut u64) {
    let (t, leaf) = match rec {
        Record::Rec { rtype: t, leaf, .. } => (*t, leaf),
        Record::Pass { leaf } => (rtype::PASS, leaf),
        _ => return,
    };
    let size = doalign(rec.rec_size()) as u64;
    let data = doalign(leaf.data_len.max(0) as usize) as u64;
    let tid = leaf.base.delete_tid;
    if tid != 0 && tid >= beg && tid <= end {
        let len = if t == rtype::REC { size.saturating_sub(data) } else { size };
        counts.add(tid, len, end);
        *total += len;
    }
    let tid = leaf.base.create_tid;
    if tid != 0 && tid >= beg && tid <= end {
        let len = if t == rtype::REC_NODATA { size + data } else { size };
        counts.add(tid, len, end);
        *total += len;
    }
}

/// Merges per-TID byte counts (sorted by TID) into chunks of at least
/// `splitup` bytes, each ending at a TID that had changes.
pub fn reduce(per_tid: &[(u64, u64)], beg: u64, end: u64, splitup: u64, total: u64) -> Histogram {
    let mut chunks = vec![Chunk { tid: beg, bytes: 0 }];
    for &(tid, bytes) in per_tid {
        let last = chunks.last_mut().expect("not empty");
        last.bytes += bytes;
        if last.bytes >= splitup && tid < end {
            chunks.push(Chunk { tid, bytes: 0 });
        }
    }
    if chunks.len() > 1 && chunks.last().is_some_and(|c| c.bytes == 0) {
        // Nothing after the last cut: that chunk would be empty.
        chunks.pop();
    }
    chunks.push(Chunk { tid: end, bytes: u64::MAX });
    Histogram { chunks, total }
}

/// Runs the prescan of `base`'s TID range on `pfs`. `first` prints hammer's
/// messages ("Prescan to break up bulk transfer", "Prescan N chunks, ...").
pub fn generate(
    pfs: &dyn Pfs,
    base: &MirrorRw,
    splitup: u64,
    verbose: u8,
    first: bool,
    log: &mut dyn Write,
) -> anyhow::Result<Histogram> {
    let (beg, end) = (base.tid_beg, base.tid_end);
    if beg >= end {
        return Ok(Histogram {
            chunks: vec![Chunk { tid: beg, bytes: 0 }, Chunk { tid: end, bytes: u64::MAX }],
            total: 0,
        });
    }
    if first {
        write!(log, "Prescan to break up bulk transfer")?;
        if verbose > 1 {
            write!(log, " ({}MB chunks)", splitup / (1024 * 1024))?;
        }
        writeln!(log)?;
    }
    let mut m = base.clone();
    m.flags |= MIRROR_NODATA;
    let mut counts = Counts::Exact(HashMap::new());
    let mut buf = vec![0u8; SERIALBUF_SIZE];
    let (mut total, mut accum) = (0u64, 0u64);
    let path = pfs.path().display().to_string();
    loop {
        let n = pfs.mirror_read(&mut m, &mut buf).with_context(|| format!("Mirror-read {path} failed"))?;
        if m.flags & HEAD_ERROR != 0 {
            anyhow::bail!("Mirror-read {path} fatal error {}", m.error);
        }
        let before = total;
        for rec in mrecord::records(&buf[..n]) {
            let rec = rec.with_context(|| format!("Mirror-read {path}: prescan"))?;
            account(&rec, beg, end, &mut counts, &mut total);
        }
        accum += total - before;
        if verbose > 1 && first && accum > splitup {
            write!(log, ".")?;
            accum = 0;
        }
        if n == 0 {
            break;
        }
        m.key_beg = m.key_cur;
    }
    let hist = reduce(&counts.into_sorted(end), beg, end, splitup, total);
    if first {
        if verbose > 1 {
            writeln!(log)?;
        }
        let res = hist.max_index();
        write!(log, "Prescan {res} chunks, total {} MBytes (", total / (1024 * 1024))?;
        for (i, c) in hist.chunks.iter().take(res.min(3)).enumerate() {
            write!(log, "{}{}", if i > 0 { ", " } else { "" }, c.bytes)?;
        }
        if res > 3 {
            write!(log, ", ...")?;
        }
        writeln!(log, ")")?;
    }
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_tids_belong_to_the_previous_bucket() {
        assert_eq!(bucket(100, 100, 100 + HIST_COUNT as u64), 0);
        assert_eq!(bucket(101, 100, 100 + HIST_COUNT as u64), 0);
        assert_eq!(bucket(102, 100, 100 + HIST_COUNT as u64), 1);
        assert_eq!(bucket(100 + HIST_COUNT as u64, 100, 100 + HIST_COUNT as u64), HIST_COUNT - 1);
        // Nanosecond TIDs a day apart do not overflow.
        let beg = 1_700_000_000_000_000_000u64;
        assert_eq!(bucket(beg + 86_400_000_000_000, beg, beg + 86_400_000_000_000), HIST_COUNT - 1);
    }

    #[test]
    fn reduce_cuts_chunks_at_the_split_size() {
        let per_tid = [(10, 10), (20, 10), (30, 10), (40, 1)];
        let h = reduce(&per_tid, 5, 40, 15, 31);
        assert_eq!(
            h.chunks,
            vec![Chunk { tid: 5, bytes: 20 }, Chunk { tid: 20, bytes: 11 }, Chunk { tid: 40, bytes: u64::MAX }]
        );
        assert_eq!(h.max_index(), 2);
        // A cut right at the last change leaves no empty chunk behind.
        let h = reduce(&[(10, 20), (20, 20)], 5, 30, 15, 40);
        assert_eq!(h.chunks.iter().map(|c| c.tid).collect::<Vec<_>>(), vec![5, 10, 30]);
    }

    #[test]
    fn too_many_tids_fall_back_to_buckets() {
        let end = 10 * HIST_COUNT as u64;
        let mut c = Counts::Exact(HashMap::new());
        for t in 0..=HIST_COUNT as u64 {
            c.add(1000 + t * 3, 1, end);
        }
        assert!(matches!(c, Counts::Buckets { .. }));
        let v = c.into_sorted(end);
        assert_eq!(v.iter().map(|x| x.1).sum::<u64>(), HIST_COUNT as u64 + 1);
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
