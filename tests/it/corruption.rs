//! Bad streams fed to `write`: each is refused with a specific message, exit status 1, and the target unchanged.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use crate::util::{Env, ok, show};
use hammer_mirror::mrecord::{self, Record, SIGNATURE_REV, doalign};

/// A master with two imports, a slave synced to the first, and the one-way
/// stream of the second increment.
struct Case {
    e: Env,
    stream: Vec<u8>,
}

fn case() -> Case {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("d/b", &"2".repeat(40_000))]);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    crate::util::write_tree(&e.path("m.tree"), &[("c", "3"), ("d/e", &"4".repeat(70_000))]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let tid = crate::util::sync_end_tid(&e, &s);
    let o = e.run([OsStr::new("-B"), OsStr::new("read"), m.as_os_str(), OsStr::new(&tid)]);
    ok(&o);
    Case { e, stream: o.stdout }
}

impl Case {
    fn write(&self, bytes: &[u8]) -> Output {
        let mut c = self
            .e
            .cmd()
            .args(["write", "s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let _ = stdin.write_all(bytes);
        drop(stdin);
        c.wait_with_output().unwrap()
    }

    /// The slave's state: sync_end_tid and its export.
    fn state(&self) -> (String, String) {
        let tid = crate::util::sync_end_tid(&self.e, &self.e.path("s"));
        let dir = self.e.path(&format!("x{}", rand_name()));
        ok(&self.e.run([OsStr::new("export"), OsStr::new("s"), dir.as_os_str()]));
        let listing = crate::util::stdout(
            &self.e.sh(&format!("cd {} && find . -type f -exec md5sum {{}} + | sort", dir.display())),
        );
        (tid, listing)
    }

    /// Record boundaries of the valid stream.
    fn bounds(&self) -> Vec<usize> {
        let mut b = vec![0];
        let mut off = 0;
        for r in mrecord::records(&self.stream) {
            off += r.unwrap().encoded_len();
            b.push(off);
        }
        b
    }
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[track_caller]
fn refused(c: &Case, before: &(String, String), bytes: &[u8], want: &str) {
    let o = c.write(bytes);
    assert_eq!(o.status.code(), Some(1), "{want}:\n{}", show(&o));
    assert!(crate::util::stderr(&o).contains(want), "stderr lacks {want:?}:\n{}", show(&o));
    assert_eq!(&c.state(), before, "the target changed after: {want}");
}

fn re_crc(rec: &mut [u8]) {
    let size = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
    let crc = hammer_mirror::hammerfs::crc32(&rec[8..size]);
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn truncations_at_every_boundary_and_inside_records() {
    let c = case();
    let before = c.state();
    let bounds = c.bounds();
    let n = bounds.len();
    // Every boundary before the SYNC (a stream that ends there never synced).
    for &cut in &bounds[1..n - 2] {
        let o = c.write(&c.stream[..cut]);
        assert_eq!(o.status.code(), Some(1), "cut at {cut}:\n{}", show(&o));
        assert_eq!(c.state(), before, "cut at {cut}");
    }
    // Inside records.
    for w in bounds.windows(2).take(n - 2) {
        let cut = w[0] + (w[1] - w[0]) / 2;
        let o = c.write(&c.stream[..cut]);
        assert_eq!(o.status.code(), Some(1), "cut at {cut}:\n{}", show(&o));
        assert!(crate::util::stderr(&o).contains("truncated stream at byte"), "{}", show(&o));
    }
    assert_eq!(c.state(), before);
    // The whole stream still applies afterwards.
    ok(&c.write(&c.stream));
    assert_ne!(c.state(), before);
}

#[test]
fn flipped_bits_are_caught_by_the_crcs() {
    let c = case();
    let mut before = c.state();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = c.stream.clone();
        let at = (seed % bad.len() as u64) as usize;
        bad[at] ^= 1 << (seed % 8);
        let o = c.write(&bad);
        let bounds = c.bounds();
        if at >= bounds[bounds.len() - 2] {
            // A flip in the final TERM: the pass before it may have synced.
            assert_ne!(o.status.code(), Some(0), "{}", show(&o));
            before = c.state();
            continue;
        }
        if o.status.success() {
            // Only a flip in alignment padding (not covered by any CRC) may pass.
            let pad = c.bounds().windows(2).any(|w| {
                let size = u32::from_le_bytes(c.stream[w[0] + 8..w[0] + 12].try_into().unwrap()) as usize;
                at >= w[0] + size && at < w[1]
            });
            assert!(pad, "a flip at {at} was applied:\n{}", show(&o));
            before = c.state();
            continue;
        }
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert_eq!(c.state(), before);
    }
}

#[test]
fn structural_corruptions_each_get_their_own_message() {
    let c = case();
    let before = c.state();
    let b = c.bounds();
    let rec = |i: usize| c.stream[b[i]..b[i + 1]].to_vec();
    let splice = |i: usize, new: &[u8]| [&c.stream[..b[i]], new, &c.stream[b[i + 1]..]].concat();
    // Records 0 and 1 are the PFSDs; bulk records follow; the last two are SYNC and TERM.
    let first_bulk = 2;
    let last_bulk = b.len() - 4;
    assert!(last_bulk > first_bulk + 1, "the stream needs several bulk records");

    // Reordered bulk records.
    let swapped =
        [&c.stream[..b[first_bulk]], &rec(first_bulk + 1)[..], &rec(first_bulk)[..], &c.stream[b[first_bulk + 2]..]]
            .concat();
    refused(&c, &before, &swapped, "out of order");
    // A duplicated record.
    let dup = [&c.stream[..b[first_bulk + 1]], &rec(first_bulk)[..], &c.stream[b[first_bulk + 1]..]].concat();
    refused(&c, &before, &dup, "out of order");
    // A PFSD from a host of the other byte order.
    let mut swapped_pfsd = rec(0);
    swapped_pfsd[0..4].copy_from_slice(&SIGNATURE_REV.to_le_bytes());
    refused(&c, &before, &splice(0, &swapped_pfsd), "stream written on a host of the other byte order");
    // An oversize rec_size.
    let mut big = rec(first_bulk);
    big[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    refused(&c, &before, &splice(first_bulk, &big), "illegal rec_size 1073741824");
    // A REC whose data_len is larger than the record (with a valid head CRC).
    let data_rec = (first_bulk..=last_bulk)
        .find(|&i| matches!(mrecord::decode(&rec(i)).unwrap().0, Record::Rec { data, .. } if !data.is_empty()))
        .expect("a REC with data");
    let mut long = rec(data_rec);
    let dl = u32::from_le_bytes(long[72..76].try_into().unwrap());
    long[72..76].copy_from_slice(&(dl + 8).to_le_bytes());
    re_crc(&mut long);
    refused(&c, &before, &splice(data_rec, &long), "does not fit rec_size");
    // A REC from outside the announced TID range (create_tid beyond tid_end).
    let mut late = rec(data_rec);
    let tid = u64::from_le_bytes(late[32..40].try_into().unwrap());
    late[32..40].copy_from_slice(&(tid + 1_000_000_000).to_le_bytes());
    re_crc(&mut late);
    refused(&c, &before, &splice(data_rec, &late), "outside the announced TID range");
    // Data that does not match its data CRC (head CRC fixed up).
    let mut bad_data = rec(data_rec);
    // The first data byte: an inode's CRC does not cover its last 16 bytes (mtime, atime).
    bad_data[mrecord::REC_SIZE] ^= 0xff;
    re_crc(&mut bad_data);
    refused(&c, &before, &splice(data_rec, &bad_data), "data CRC mismatch");
    // An unknown record type in the bulk.
    let mut unknown = rec(first_bulk);
    unknown[12] = 0x42;
    re_crc(&mut unknown);
    refused(&c, &before, &splice(first_bulk, &unknown), "unknown record type");
    // A stream without its SYNC (ends after the bulk).
    refused(&c, &before, &c.stream[..b[b.len() - 3]], "inside a pass (no SYNC); the target stays at TID 0x");
    let _ = (doalign(1), Path::new("."));
}
