//! Decoding + CRC-checking throughput of the mrecord reader (issue target: >= 2 GB/s).
//! Run: cargo run --release --example decode_bench [MiB]   (scripts/bench runs it too; the source lives in scripts/)

use std::time::Instant;

use hammer_mirror::hammerfs::{HAMMER_RECTYPE_DATA, HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_INODE, leaf_data_crc};
use hammer_mirror::mrecord::{BaseElm, LeafElm, Record, RecordReader, records};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    // A realistic mix: per file an inode (128 B), a directory entry, and data
    // records of 16 KiB below 1 MiB and 64 KiB above.
    let mut stream = Vec::with_capacity(mib << 20);
    let mut obj = 0x1000i64;
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut block = vec![0u8; 65536];
    while stream.len() < mib << 20 {
        obj += 1;
        for (rt, len) in [(HAMMER_RECTYPE_INODE, 128usize), (HAMMER_RECTYPE_DIRENTRY, 40)]
            .into_iter()
            .chain((0..4).map(|i| (HAMMER_RECTYPE_DATA, if i < 2 { 16384 } else { 65536 })))
        {
            for b in block[..len].chunks_mut(8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b.copy_from_slice(&seed.to_le_bytes()[..b.len()]);
            }
            let data = &block[..len];
            let leaf = LeafElm {
                base: BaseElm {
                    obj_id: obj,
                    rec_type: rt,
                    key: len as i64,
                    create_tid: 5,
                    localization: 0x1_0002,
                    ..Default::default()
                },
                data_offset: 1,
                data_len: len as i32,
                data_crc: leaf_data_crc(rt, data),
                ..Default::default()
            };
            Record::rec(leaf, data).encode_to_vec(&mut stream);
        }
    }
    let mut best = f64::MAX;
    let mut count = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut r = RecordReader::new(&stream[..]);
        count = 0;
        loop {
            let b = r.next_batch().expect("valid stream");
            if b.records == 0 {
                break;
            }
            count += b.records;
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let gbps = stream.len() as f64 / best / 1e9;
    println!(
        "decode+crc: {} records, {:.0} MiB in {:.3} s = {gbps:.2} GB/s (best of 5)",
        count,
        stream.len() as f64 / 1048576.0,
        best
    );
    // Also the iterator path (records()).
    let t = Instant::now();
    let n = records(&stream).count();
    println!(
        "records() iterator: {n} records in {:.3} s = {:.2} GB/s",
        t.elapsed().as_secs_f64(),
        stream.len() as f64 / t.elapsed().as_secs_f64() / 1e9
    );
}
