//! Golden vectors: the records DragonFly's own C structures produce, against our encoder and decoder.
//!
//! `tests/fixtures/golden/*.bin` are written by `scripts/hammer-abi/golden.c`
//! (regenerate and check with `scripts/hammer-abi/regen.sh`). The field values
//! below are the ones of golden.c's tables (`LEAVES`, `SKIPS`, `pfsd_vals`);
//! the two must change together. Each fixture is rebuilt here with
//! `Record::encode_to_vec` and compared byte for byte, then decoded with
//! `mrecord::decode` and compared field by field.

use std::path::PathBuf;

use hammer_mirror::hammerfs::{
    HAMMER_LOCALIZE_INODE, HAMMER_LOCALIZE_MISC, HAMMER_OBJTYPE_DIRECTORY, HAMMER_OBJTYPE_REGFILE, HAMMER_RECTYPE_DATA,
    HAMMER_RECTYPE_DIRENTRY, HAMMER_RECTYPE_INODE, InodeData, crc32, leaf_data_crc,
};
use hammer_mirror::mrecord::{
    self, BaseElm, LeafElm, PseudofsData, Record, RecordReader, decode, rtype, set_c_str, uuid_to_wire,
};

const PFS_ID: u32 = 5;
const TID_BEG: u64 = 0xc0ff_ee00_0000_1000;
const TID_END: u64 = 0xc0ff_ee00_ffff_f000;
const SRC_SYNC_END: u64 = 0xc0ff_ee01_2345_6000;

const fn lo(t: u32) -> u32 {
    (PFS_ID << 16) | t
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// golden.c's `pattern()`.
fn pattern(seed: u8, len: i32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| i.wrapping_mul(0x9d).wrapping_add((i >> 8).wrapping_mul(0x3b)).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

/// A leaf as it sits on the source's disk, its data, and whether the data
/// fails its CRC there.
struct DiskLeaf {
    leaf: LeafElm,
    data: Vec<u8>,
    media_bad: bool,
}

/// golden.c's `LEAVES` table.
fn leaf_vals(name: &str) -> DiskLeaf {
    #[rustfmt::skip]
    let (obj_id, key, create_tid, delete_tid, rec_type, localization, create_ts, delete_ts, data_offset, data_len,
        seed, media_bad): (i64, i64, u64, u64, u16, u32, u32, u32, u64, i32, u8, bool) = match name {
        "rec_0" => (-0x0000_0001_0000_0001, i64::MIN, 0xc0ff_ee00_0000_1010, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC),
            0x65a1_b2c3, 0, 0, 0, 0x00, false),
        "rec_1" => (-0x0123_4567_89ab_cdef, -0x4000, 0xc0ff_ee00_0000_1111, 0xc0ff_ee00_0000_2222, HAMMER_RECTYPE_DATA,
            lo(HAMMER_LOCALIZE_MISC), 0x65a1_b2c4, 0x65a1_b2d5, 0xb000_0000_0001_2340, 1, 0x11, false),
        "rec_15" => (-0x0123_4567_89ab_cdef, -0x3fff, 0xc0ff_ee00_0000_15a5, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC),
            0x65a1_b2c5, 0, 0xb000_0000_0001_2380, 15, 0x15, false),
        "rec_16" => (-0x0123_4567_89ab_cdef, -0x3ff0, 0xc0ff_ee00_0000_1616, 0xffff_ffff_ffff_fff0, HAMMER_RECTYPE_DATA,
            lo(HAMMER_LOCALIZE_MISC), 0x65a1_b2c6, 0x7fff_ffff, 0xb000_0000_0001_23c0, 16, 0x16, false),
        "rec_17" => (-2, i64::MAX, TID_END, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC), 0xffff_fffe, 0,
            0xb000_0000_0001_2400, 17, 0x17, false),
        "rec_65536" => (-0x0123_4567_89ab_cdef, 0x10_0000, 0xc0ff_ee00_0000_6553, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC),
            0x65a1_b2c7, 0, 0xa000_0000_0040_0000, 65536, 0x65, false),
        "rec_nodata" => (-0x55, -0x10, 0xc0ff_ee00_0000_5555, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC), 0x65a1_b2c8, 0,
            0xb000_0000_0002_0000, 100, 0x55, false),
        "rec_badcrc" => (-0x0123_4567_89ab_cdef, 0x8000, 0xc0ff_ee00_0000_bad0, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC),
            0x65a1_b2c9, 0, 0xb000_0000_0003_0000, 24, 0xba, true),
        "pass" => (-0x0123_4567_89ab_cdef, 0x4000, 0xc0ff_ee00_0000_0fff, 0xc0ff_ef00_0000_0000, HAMMER_RECTYPE_DATA,
            lo(HAMMER_LOCALIZE_MISC), 0x65a1_b2ca, 0x65a1_b2cb, 0xa000_0000_0080_0000, 4096, 0xaa, false),
        "inode" => (-0x0123_4567_89ab_cdef, 0, 0xc0ff_ee00_0000_1001, 0, HAMMER_RECTYPE_INODE, lo(HAMMER_LOCALIZE_INODE),
            0x65a1_b2cc, 0, 0xb000_0000_0004_0000, 128, 0x01, false),
        "future" => (-0x0123_4567_89ab_cdef, 0x1_0000, TID_END + 1, 0, HAMMER_RECTYPE_DATA, lo(HAMMER_LOCALIZE_MISC), 0x65a1_b2cd,
            0, 0xb000_0000_0005_0000, 8, 0xf0, false),
        other => panic!("no leaf {other}"),
    };
    let data = pattern(seed, data_len);
    let mut leaf = LeafElm {
        base: BaseElm {
            obj_id,
            key,
            create_tid,
            delete_tid,
            rec_type,
            obj_type: HAMMER_OBJTYPE_REGFILE,
            btype: mrecord::BTYPE_RECORD,
            localization,
        },
        create_ts,
        delete_ts,
        data_offset,
        data_len,
        data_crc: leaf_data_crc(rec_type, &data),
    };
    if media_bad {
        leaf.data_crc ^= 0x0bad_c0de;
    }
    DiskLeaf { leaf, data, media_bad }
}

/// golden.c's `SKIPS` table.
fn skip_vals(name: &str) -> (BaseElm, BaseElm) {
    assert_eq!(name, "skip");
    (
        BaseElm {
            obj_id: -0x0123_4567_89ab_cdef,
            key: 0x20_0000,
            create_tid: 0xc0ff_ee00_0000_0001,
            delete_tid: 0,
            rec_type: HAMMER_RECTYPE_DATA,
            obj_type: 0,
            btype: b'L',
            localization: lo(HAMMER_LOCALIZE_MISC),
        },
        BaseElm {
            obj_id: -0x100,
            key: i64::MAX,
            create_tid: 0,
            delete_tid: 0xc0ff_ee00_0000_0002,
            rec_type: HAMMER_RECTYPE_DIRENTRY,
            obj_type: HAMMER_OBJTYPE_DIRECTORY,
            btype: b'I',
            localization: lo(HAMMER_LOCALIZE_MISC),
        },
    )
}

/// golden.c's `pfsd_vals()`.
fn pfsd_vals(sync_end_tid: u64) -> PseudofsData {
    let uuid = |s: &str| uuid_to_wire(&uuid::Uuid::parse_str(s).unwrap());
    let mut p = PseudofsData {
        sync_low_tid: 0xc0ff_ee00_0000_0100,
        sync_beg_tid: TID_BEG,
        sync_end_tid,
        sync_beg_ts: 0x0005_f1d2_c3b4_a596,
        sync_end_ts: 0x0005_f1d2_c3b4_a5ff,
        shared_uuid: uuid("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
        unique_uuid: uuid("c0ffee00-1234-4567-89ab-cdef01234567"),
        reserved01: -1,
        mirror_flags: mrecord::PFSD_SLAVE,
        reserved02: 0x0002_0003,
        reserved03: 0x0004_0005,
        reserved04: 3600,
        prune_min: 7 * 24 * 60 * 60,
        prune_max: 0x7fff_ffff,
        ..Default::default()
    };
    set_c_str(&mut p.label, b"golden PFS #5 \"label\"");
    set_c_str(&mut p.snapshots, b"/var/hammer/golden");
    for (i, c) in p.reserved.chunks_exact_mut(4).enumerate() {
        c.copy_from_slice(&(0x5eed_0000u32 | i as u32).to_le_bytes());
    }
    p
}

/// What the kernel's MIRROR_READ makes of a leaf (hammer_ioc_mirror_read()):
/// nothing, a PASS, or a REC; owned, to be borrowed by [`Expected::record`].
enum Expected {
    Pass(LeafElm),
    Rec { rtype: u32, leaf: LeafElm, data: Vec<u8> },
    Skip(BaseElm, BaseElm),
}

impl Expected {
    fn record(&self) -> Record<'_> {
        match self {
            Expected::Pass(leaf) => Record::Pass { leaf: *leaf },
            Expected::Rec { rtype, leaf, data } => Record::Rec { rtype: *rtype, leaf: *leaf, data },
            Expected::Skip(beg, end) => Record::Skip { beg: *beg, end: *end },
        }
    }
}

fn kernel(name: &str, nodata: bool) -> Option<Expected> {
    if name.starts_with("skip") {
        let (beg, end) = skip_vals(name);
        return Some(Expected::Skip(beg, end));
    }
    let DiskLeaf { mut leaf, data, media_bad } = leaf_vals(name);
    if leaf.base.create_tid > TID_END {
        return None;
    }
    if leaf.base.create_tid < TID_BEG {
        return Some(Expected::Pass(leaf));
    }
    let mut data_len = if leaf.data_offset != 0 { leaf.data_len as usize } else { 0 };
    let mut t = rtype::REC;
    if data_len > 0 && nodata {
        data_len = 0;
        t |= rtype::NODATA;
    }
    if data_len > 0 && media_bad {
        t |= rtype::CRC_ERROR | rtype::DATA_CRC_BAD;
    }
    if leaf.base.delete_tid > TID_END {
        leaf.base.delete_tid = 0;
    }
    Some(Expected::Rec { rtype: t, leaf, data: data[..data_len].to_vec() })
}

fn encode(r: &Record<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    r.encode_to_vec(&mut v);
    v
}

/// The fixture is exactly `expected` encoded, and decodes back to it.
fn check(file: &str, expected: &Record<'_>) {
    let bytes = fixture(file);
    assert_eq!(encode(expected), bytes, "{file}: our encoding differs from DragonFly's");
    let (decoded, used) = decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(used, bytes.len(), "{file}");
    assert_eq!(&decoded, expected, "{file}");
}

#[test]
fn kernel_records_match() {
    for (file, name, nodata) in [
        ("rec_0.bin", "rec_0", false),
        ("rec_1.bin", "rec_1", false),
        ("rec_15.bin", "rec_15", false),
        ("rec_16.bin", "rec_16", false),
        ("rec_17.bin", "rec_17", false),
        ("rec_65536.bin", "rec_65536", false),
        ("rec_nodata.bin", "rec_nodata", true),
        ("rec_badcrc.bin", "rec_badcrc", false),
        ("pass.bin", "pass", false),
        ("skip.bin", "skip", false),
    ] {
        let e = kernel(name, nodata).unwrap();
        check(file, &e.record());
    }
}

#[test]
fn kernel_record_details() {
    // Sizes and pads: rec_size = 80 + data bytes, padded to 8.
    for (file, rec_size, total) in [
        ("rec_0.bin", 80, 80),
        ("rec_1.bin", 81, 88),
        ("rec_15.bin", 95, 96),
        ("rec_16.bin", 96, 96),
        ("rec_17.bin", 97, 104),
        ("rec_65536.bin", 80 + 65536, 80 + 65536),
        ("rec_nodata.bin", 80, 80),
        ("rec_badcrc.bin", 104, 104),
        ("pass.bin", 80, 80),
        ("skip.bin", 96, 96),
    ] {
        let b = fixture(file);
        assert_eq!(b.len(), total, "{file}");
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), rec_size, "{file}");
        assert!(b[rec_size as usize..].iter().all(|&x| x == 0), "{file}: pad is not zero");
    }
    // The kernel clears a delete_tid beyond the window in a REC, not in a PASS.
    let Ok((Record::Rec { leaf, .. }, _)) = decode(&fixture("rec_16.bin")) else { panic!("rec_16") };
    assert_eq!(leaf.base.delete_tid, 0);
    let Ok((Record::Pass { leaf }, _)) = decode(&fixture("pass.bin")) else { panic!("pass") };
    assert_eq!(leaf.base.delete_tid, 0xc0ff_ef00_0000_0000);
    // The CRC-errored record keeps the kernel's full type word.
    assert_eq!(u32::from_le_bytes(fixture("rec_badcrc.bin")[12..16].try_into().unwrap()), 0xc000_0001);
    assert_eq!(u32::from_le_bytes(fixture("rec_nodata.bin")[12..16].try_into().unwrap()), 0x1000_0001);
}

#[test]
fn userland_records_match() {
    check("pfsd.bin", &Record::Pfsd { version: 1, pfsd: pfsd_vals(SRC_SYNC_END) });
    check("update.bin", &Record::Update { tid: TID_END });
    check("sync.bin", &Record::Sync);
    check("idle.bin", &Record::Idle);
    check("term.bin", &Record::Term);
    // write_mrecord() sends the first 8 payload bytes of the union generate_mrec_header() filled.
    assert_eq!(&fixture("sync.bin")[16..], &[1, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn stream_reads_as_one_mirror_read_batch() {
    let bulk: Vec<Expected> = ["inode", "rec_1", "rec_17", "pass", "future", "rec_badcrc", "skip", "rec_0"]
        .into_iter()
        .filter_map(|n| kernel(n, false))
        .collect();
    let mut expected = vec![
        Record::Pfsd { version: 1, pfsd: pfsd_vals(SRC_SYNC_END) },
        Record::Pfsd { version: 1, pfsd: pfsd_vals(TID_END) },
    ];
    expected.extend(bulk.iter().map(Expected::record));
    expected.extend([Record::Sync, Record::Term]);
    assert_eq!(expected.len(), 11, "the future record is filtered out");

    let bytes = fixture("stream.bin");
    let mut ours = Vec::new();
    for r in &expected {
        r.encode_to_vec(&mut ours);
    }
    assert_eq!(ours, bytes, "stream.bin: our encoding differs from DragonFly's");

    let mut reader = RecordReader::new(&bytes[..]);
    let mut n = 0;
    while let Some(r) = reader.next_record().unwrap() {
        assert_eq!(r, expected[n], "record {n}");
        n += 1;
    }
    assert_eq!(n, expected.len());
    assert_eq!(reader.offset(), bytes.len() as u64);

    // The inode's data CRC covers only its first 112 bytes.
    let Record::Rec { leaf, data, .. } = expected[2] else { panic!("inode") };
    assert_eq!(leaf.base.rec_type, HAMMER_RECTYPE_INODE);
    assert_eq!(leaf.data_crc, crc32(&data[..InodeData::CRC_SIZE]));
}

#[test]
fn dump_txt_lists_the_bulk_records() {
    let text = String::from_utf8(fixture("dump.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 14, "two lines per REC/PASS/SKIP: {text}");
    assert_eq!(lines[0], "Record obj=fedcba9876543211 key=0000000000000000 rt=01 ot=02");
    assert_eq!(lines[1], "       tids c0ffee0000001001:0000000000000000 data=128");
    // hammer prints " (BAD CRC)" only for a type word of exactly 0x80000001; the kernel sends 0xc0000001.
    assert!(!text.contains("BAD CRC"));
}
