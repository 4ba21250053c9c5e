//! The HAMMER mirror stream format: record types, B-tree elements, PFS data, encode/decode and CRCs.
//!
//! Everything here is pure: byte slices in, typed values out (and back). The
//! layouts are DragonFly x86_64's (`sys/vfs/hammer/hammer_ioctl.h`,
//! `hammer_btree.h`, `hammer_disk.h`): little-endian host structs, records
//! padded to `HAMMER_HEAD_ALIGN` (8) bytes, `rec_crc` = CRC-32 (ISO-HDLC, what
//! HAMMER's `crc32()` computes) over the bytes from `HAMMER_MREC_CRCOFF` (8) to
//! `rec_size`. Streaming over `Read`/`Write` lives in [`stream`]. What the
//! records hold (record types, localization, CRCs, data layouts) is
//! [`crate::hammerfs`]'s.

pub mod stream;

use std::cmp::Ordering;
use std::fmt;

pub use stream::{Batch, RecordReader, RecordWriter, StreamError};

use crate::hammerfs::{self, HAMMER_LOCALIZE_MASK, HAMMER_RECTYPE_MAX, HAMMER_XBUFSIZE};

/// `HAMMER_IOC_MIRROR_SIGNATURE`.
pub const SIGNATURE: u32 = 0x4dd9_7272;
/// `HAMMER_IOC_MIRROR_SIGNATURE_REV`: the signature as read on a host of the other byte order.
pub const SIGNATURE_REV: u32 = 0x7272_d94d;
/// `HAMMER_MREC_HEADSIZE`.
pub const HEAD_SIZE: usize = 16;
/// `HAMMER_MREC_CRCOFF`: `rec_crc` covers the record from this offset on.
pub const CRC_OFF: usize = 8;
/// `HAMMER_HEAD_ALIGN`.
pub const HEAD_ALIGN: usize = 8;
/// `sizeof(union hammer_ioc_mrecord_any)` on x86_64.
pub const MRECORD_ANY_SIZE: usize = 320;
/// The largest `rec_size` a reader accepts (`read_mrecords()`'s bound).
pub const MAX_REC_SIZE: usize = MRECORD_ANY_SIZE + HAMMER_XBUFSIZE;
/// `SERIALBUF_SIZE` of cmd_mirror.c: the batch size of mirror reads and writes.
pub const SERIALBUF_SIZE: usize = 512 * 1024;

/// `sizeof(struct hammer_ioc_mrecord_rec)`: head + B-tree leaf.
pub const REC_SIZE: usize = 80;
/// `sizeof(struct hammer_ioc_mrecord_skip)`.
pub const SKIP_SIZE: usize = 96;
/// `sizeof(struct hammer_ioc_mrecord_pfs)` with the packed 292-byte `hammer_pseudofs_data`.
pub const PFSD_SIZE: usize = 316;
/// `sizeof(struct hammer_ioc_mrecord_update)`: UPDATE, and SYNC/IDLE/TERM as hammer writes them.
pub const UPDATE_SIZE: usize = 24;

/// `HAMMER_IOC_PSEUDOFS_VERSION`.
pub const PSEUDOFS_VERSION: u32 = 1;

/// `HAMMER_HEAD_DOALIGN`: round up to the record alignment.
pub const fn doalign(n: usize) -> usize {
    (n + HEAD_ALIGN - 1) & !(HEAD_ALIGN - 1)
}

/// Record types (`HAMMER_MREC_TYPE_*`) and type flags (`HAMMER_MRECF_*`).
pub mod rtype {
    pub const RESERVED: u32 = 0;
    pub const REC: u32 = 1;
    pub const PFSD: u32 = 2;
    pub const UPDATE: u32 = 3;
    pub const SYNC: u32 = 4;
    pub const SKIP: u32 = 5;
    pub const PASS: u32 = 6;
    pub const TERM: u32 = 7;
    pub const IDLE: u32 = 8;
    pub const REC_BADCRC: u32 = REC | CRC_ERROR;
    pub const REC_NODATA: u32 = REC | NODATA;
    pub const LOMASK: u32 = 0x0000_00ff;
    pub const TYPE_MASK: u32 = 0x8000_00ff;
    pub const CRC_ERROR: u32 = 0x8000_0000;
    pub const DATA_CRC_BAD: u32 = 0x4000_0000;
    pub const RECD_CRC_BAD: u32 = 0x2000_0000;
    pub const NODATA: u32 = 0x1000_0000;

    /// A short name for messages.
    pub fn name(t: u32) -> &'static str {
        match t & LOMASK {
            REC if t & CRC_ERROR != 0 => "REC_BADCRC",
            REC if t & NODATA != 0 => "REC_NODATA",
            REC => "REC",
            PFSD => "PFSD",
            UPDATE => "UPDATE",
            SYNC => "SYNC",
            SKIP => "SKIP",
            PASS => "PASS",
            TERM => "TERM",
            IDLE => "IDLE",
            _ => "unknown",
        }
    }
}

/// `HAMMER_BTREE_TYPE_RECORD`: the `btype` of leaf records.
pub const BTYPE_RECORD: u8 = b'R';
/// `HAMMER_MIN_OBJID` / `HAMMER_MIN_KEY`.
pub const MIN_KEY: i64 = i64::MIN;
/// `HAMMER_MAX_OBJID` / `HAMMER_MAX_KEY`.
pub const MAX_KEY: i64 = i64::MAX;
/// `HAMMER_MAX_TID`.
pub const MAX_TID: u64 = u64::MAX;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// `struct hammer_base_elm`: a B-tree key (40 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BaseElm {
    pub obj_id: i64,
    pub key: i64,
    pub create_tid: u64,
    pub delete_tid: u64,
    pub rec_type: u16,
    pub obj_type: u8,
    pub btype: u8,
    pub localization: u32,
}

impl BaseElm {
    pub const SIZE: usize = 40;

    /// `hammer_key_beg_init()`: the lowest key userland scans from.
    pub fn key_beg_init() -> Self {
        BaseElm {
            localization: 0,
            obj_id: MIN_KEY,
            key: MIN_KEY,
            create_tid: 1,
            delete_tid: 0,
            rec_type: 0,
            obj_type: 0,
            btype: 0,
        }
    }

    /// `hammer_key_end_init()`: the highest key userland scans to.
    pub fn key_end_init() -> Self {
        BaseElm {
            localization: HAMMER_LOCALIZE_MASK,
            obj_id: MAX_KEY,
            key: MAX_KEY,
            create_tid: MAX_TID,
            delete_tid: 0,
            rec_type: HAMMER_RECTYPE_MAX,
            obj_type: 0,
            btype: 0,
        }
    }

    pub fn decode(b: &[u8]) -> Self {
        let b = &b[..Self::SIZE];
        BaseElm {
            obj_id: u64_at(b, 0) as i64,
            key: u64_at(b, 8) as i64,
            create_tid: u64_at(b, 16),
            delete_tid: u64_at(b, 24),
            rec_type: u16_at(b, 32),
            obj_type: b[34],
            btype: b[35],
            localization: u32_at(b, 36),
        }
    }

    pub fn encode(&self, b: &mut [u8]) {
        let b = &mut b[..Self::SIZE];
        put_u64(b, 0, self.obj_id as u64);
        put_u64(b, 8, self.key as u64);
        put_u64(b, 16, self.create_tid);
        put_u64(b, 24, self.delete_tid);
        put_u16(b, 32, self.rec_type);
        b[34] = self.obj_type;
        b[35] = self.btype;
        put_u32(b, 36, self.localization);
    }

    /// `hammer_btree_cmp()`: order by localization, obj_id, rec_type, key,
    /// create_tid (a create_tid of 0 sorts as +infinity). delete_tid and the
    /// type bytes are not part of the key.
    pub fn btree_cmp(&self, other: &BaseElm) -> Ordering {
        fn tid_rank(t: u64) -> (bool, u64) {
            (t == 0, t)
        }
        self.localization
            .cmp(&other.localization)
            .then(self.obj_id.cmp(&other.obj_id))
            .then(self.rec_type.cmp(&other.rec_type))
            .then(self.key.cmp(&other.key))
            .then(tid_rank(self.create_tid).cmp(&tid_rank(other.create_tid)))
    }
}

/// `struct hammer_btree_leaf_elm`: a B-tree leaf record (64 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeafElm {
    pub base: BaseElm,
    pub create_ts: u32,
    pub delete_ts: u32,
    pub data_offset: u64,
    pub data_len: i32,
    pub data_crc: u32,
}

impl LeafElm {
    pub const SIZE: usize = 64;

    pub fn decode(b: &[u8]) -> Self {
        let b = &b[..Self::SIZE];
        LeafElm {
            base: BaseElm::decode(b),
            create_ts: u32_at(b, 40),
            delete_ts: u32_at(b, 44),
            data_offset: u64_at(b, 48),
            data_len: u32_at(b, 56) as i32,
            data_crc: u32_at(b, 60),
        }
    }

    pub fn encode(&self, b: &mut [u8]) {
        let b = &mut b[..Self::SIZE];
        self.base.encode(b);
        put_u32(b, 40, self.create_ts);
        put_u32(b, 44, self.delete_ts);
        put_u64(b, 48, self.data_offset);
        put_u32(b, 56, self.data_len as u32);
        put_u32(b, 60, self.data_crc);
    }
}

/// `HAMMER_PFSD_SLAVE`.
pub const PFSD_SLAVE: u32 = 0x0000_0001;
/// `HAMMER_PFSD_DELETED`.
pub const PFSD_DELETED: u32 = 0x8000_0000;

/// `struct hammer_pseudofs_data` (packed, 292 bytes): a PFS's description.
///
/// The uuids are kept as their 16 wire bytes (DragonFly's `uuid_t`, whose first
/// three fields are host-endian); see [`uuid_from_wire`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PseudofsData {
    pub sync_low_tid: u64,
    pub sync_beg_tid: u64,
    pub sync_end_tid: u64,
    pub sync_beg_ts: u64,
    pub sync_end_ts: u64,
    pub shared_uuid: [u8; 16],
    pub unique_uuid: [u8; 16],
    pub reserved01: i32,
    pub mirror_flags: u32,
    pub label: [u8; 64],
    pub snapshots: [u8; 64],
    pub reserved02: i32,
    pub reserved03: i32,
    pub reserved04: i32,
    pub prune_min: i32,
    pub prune_max: i32,
    pub reserved: [u8; 64],
}

impl Default for PseudofsData {
    fn default() -> Self {
        PseudofsData {
            sync_low_tid: 0,
            sync_beg_tid: 0,
            sync_end_tid: 0,
            sync_beg_ts: 0,
            sync_end_ts: 0,
            shared_uuid: [0; 16],
            unique_uuid: [0; 16],
            reserved01: 0,
            mirror_flags: 0,
            label: [0; 64],
            snapshots: [0; 64],
            reserved02: 0,
            reserved03: 0,
            reserved04: 0,
            prune_min: 0,
            prune_max: 0,
            reserved: [0; 64],
        }
    }
}

impl fmt::Debug for PseudofsData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PseudofsData")
            .field("sync_beg_tid", &format_args!("{:#018x}", self.sync_beg_tid))
            .field("sync_end_tid", &format_args!("{:#018x}", self.sync_end_tid))
            .field("shared_uuid", &uuid_from_wire(&self.shared_uuid))
            .field("unique_uuid", &uuid_from_wire(&self.unique_uuid))
            .field("mirror_flags", &format_args!("{:#x}", self.mirror_flags))
            .field("label", &self.label_str())
            .finish_non_exhaustive()
    }
}

/// Reads a NUL-terminated C string out of a fixed array.
pub fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Writes `s` into a fixed C array, NUL-terminated (truncating like snprintf).
pub fn set_c_str(dst: &mut [u8; 64], s: &[u8]) {
    *dst = [0; 64];
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s[..n]);
}

/// The DragonFly `uuid_t` wire bytes of a uuid (host-endian first three fields).
pub fn uuid_to_wire(u: &uuid::Uuid) -> [u8; 16] {
    u.to_bytes_le()
}

/// The uuid held in DragonFly `uuid_t` wire bytes.
pub fn uuid_from_wire(b: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes_le(*b)
}

impl PseudofsData {
    pub const SIZE: usize = 292;

    pub fn is_slave(&self) -> bool {
        self.mirror_flags & PFSD_SLAVE != 0
    }

    pub fn label_str(&self) -> String {
        c_str(&self.label)
    }

    pub fn snapshots_str(&self) -> String {
        c_str(&self.snapshots)
    }

    pub fn decode(b: &[u8]) -> Self {
        let b = &b[..Self::SIZE];
        let mut p = PseudofsData {
            sync_low_tid: u64_at(b, 0),
            sync_beg_tid: u64_at(b, 8),
            sync_end_tid: u64_at(b, 16),
            sync_beg_ts: u64_at(b, 24),
            sync_end_ts: u64_at(b, 32),
            reserved01: u32_at(b, 72) as i32,
            mirror_flags: u32_at(b, 76),
            reserved02: u32_at(b, 208) as i32,
            reserved03: u32_at(b, 212) as i32,
            reserved04: u32_at(b, 216) as i32,
            prune_min: u32_at(b, 220) as i32,
            prune_max: u32_at(b, 224) as i32,
            ..Default::default()
        };
        p.shared_uuid.copy_from_slice(&b[40..56]);
        p.unique_uuid.copy_from_slice(&b[56..72]);
        p.label.copy_from_slice(&b[80..144]);
        p.snapshots.copy_from_slice(&b[144..208]);
        p.reserved.copy_from_slice(&b[228..292]);
        p
    }

    pub fn encode(&self, b: &mut [u8]) {
        let b = &mut b[..Self::SIZE];
        put_u64(b, 0, self.sync_low_tid);
        put_u64(b, 8, self.sync_beg_tid);
        put_u64(b, 16, self.sync_end_tid);
        put_u64(b, 24, self.sync_beg_ts);
        put_u64(b, 32, self.sync_end_ts);
        b[40..56].copy_from_slice(&self.shared_uuid);
        b[56..72].copy_from_slice(&self.unique_uuid);
        put_u32(b, 72, self.reserved01 as u32);
        put_u32(b, 76, self.mirror_flags);
        b[80..144].copy_from_slice(&self.label);
        b[144..208].copy_from_slice(&self.snapshots);
        put_u32(b, 208, self.reserved02 as u32);
        put_u32(b, 212, self.reserved03 as u32);
        put_u32(b, 216, self.reserved04 as u32);
        put_u32(b, 220, self.prune_min as u32);
        put_u32(b, 224, self.prune_max as u32);
        b[228..292].copy_from_slice(&self.reserved);
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        self.encode(&mut b);
        b
    }
}

/// Which of the three REC variants a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecKind {
    /// `HAMMER_MREC_TYPE_REC`: leaf and its data.
    Data,
    /// `HAMMER_MREC_TYPE_REC_NODATA`: leaf only (the histogram prescan).
    NoData,
    /// `HAMMER_MREC_TYPE_REC_BADCRC`: the source could not read the data intact.
    BadCrc,
}

/// One mirror-stream record. Bulk data is borrowed from the buffer it was decoded from.
// A short-lived decoded view, never stored in bulk: boxing the PFSD would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// REC, REC_NODATA or REC_BADCRC. `rtype` is the full type word as sent
    /// (flag bits included) so that it re-encodes byte for byte.
    Rec { rtype: u32, leaf: LeafElm, data: &'a [u8] },
    /// PASS: a record the target should already have (leaf only).
    Pass { leaf: LeafElm },
    /// SKIP: a key range with no change in the TID range.
    Skip { beg: BaseElm, end: BaseElm },
    /// PFSD: a PFS description (`hammer_ioc_mrecord_pfs`).
    Pfsd { version: u32, pfsd: PseudofsData },
    /// UPDATE: the target's acknowledgement of `tid`.
    Update { tid: u64 },
    /// SYNC: end of a batch that carried work.
    Sync,
    /// IDLE: end of a batch with nothing to do.
    Idle,
    /// TERM: end of the whole stream.
    Term,
}

/// The payload hammer leaves in SYNC/IDLE/TERM (stale `pfs.version` = 1, `reserved01` = 0).
const CONTROL_PAYLOAD: [u8; 8] = [1, 0, 0, 0, 0, 0, 0, 0];

impl Record<'_> {
    /// A plain REC carrying `data`.
    pub fn rec(leaf: LeafElm, data: &[u8]) -> Record<'_> {
        Record::Rec { rtype: rtype::REC, leaf, data }
    }

    /// The full type word written in the head.
    pub fn type_word(&self) -> u32 {
        match self {
            Record::Rec { rtype, .. } => *rtype,
            Record::Pass { .. } => rtype::PASS,
            Record::Skip { .. } => rtype::SKIP,
            Record::Pfsd { .. } => rtype::PFSD,
            Record::Update { .. } => rtype::UPDATE,
            Record::Sync => rtype::SYNC,
            Record::Idle => rtype::IDLE,
            Record::Term => rtype::TERM,
        }
    }

    /// `rec_size`: head + payload, without the alignment pad.
    pub fn rec_size(&self) -> usize {
        match self {
            Record::Rec { data, .. } => REC_SIZE + data.len(),
            Record::Pass { .. } => REC_SIZE,
            Record::Skip { .. } => SKIP_SIZE,
            Record::Pfsd { .. } => PFSD_SIZE,
            Record::Update { .. } | Record::Sync | Record::Idle | Record::Term => UPDATE_SIZE,
        }
    }

    /// Bytes the record occupies in a stream (`HAMMER_HEAD_DOALIGN(rec_size)`).
    pub fn encoded_len(&self) -> usize {
        doalign(self.rec_size())
    }

    /// Encodes the record, CRC and zero pad included, into the front of `out`
    /// and returns the bytes used. `out` must hold [`Self::encoded_len`] bytes.
    pub fn encode_into(&self, out: &mut [u8]) -> usize {
        let size = self.rec_size();
        let total = doalign(size);
        let out = &mut out[..total];
        match self {
            Record::Rec { leaf, data, .. } => {
                leaf.encode(&mut out[HEAD_SIZE..REC_SIZE]);
                out[REC_SIZE..size].copy_from_slice(data);
            }
            Record::Pass { leaf } => leaf.encode(&mut out[HEAD_SIZE..REC_SIZE]),
            Record::Skip { beg, end } => {
                beg.encode(&mut out[16..56]);
                end.encode(&mut out[56..96]);
            }
            Record::Pfsd { version, pfsd } => {
                put_u32(out, 16, *version);
                put_u32(out, 20, 0);
                pfsd.encode(&mut out[24..PFSD_SIZE]);
            }
            Record::Update { tid } => put_u64(out, 16, *tid),
            Record::Sync | Record::Idle | Record::Term => out[16..24].copy_from_slice(&CONTROL_PAYLOAD),
        }
        out[size..].fill(0);
        put_u32(out, 0, SIGNATURE);
        put_u32(out, 8, size as u32);
        put_u32(out, 12, self.type_word());
        let crc = hammerfs::crc32(&out[CRC_OFF..size]);
        put_u32(out, 4, crc);
        total
    }

    /// Appends the encoded record to `v`.
    pub fn encode_to_vec(&self, v: &mut Vec<u8>) {
        let start = v.len();
        v.resize(start + self.encoded_len(), 0);
        self.encode_into(&mut v[start..]);
    }
}

/// The fixed 16-byte record head (`struct hammer_ioc_mrecord_head`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub signature: u32,
    pub rec_crc: u32,
    pub rec_size: u32,
    pub rtype: u32,
}

impl Head {
    pub fn decode(b: &[u8]) -> Self {
        Head { signature: u32_at(b, 0), rec_crc: u32_at(b, 4), rec_size: u32_at(b, 8), rtype: u32_at(b, 12) }
    }

    /// Checks signature and size bounds; returns the aligned length on success.
    pub fn check(&self) -> Result<usize, DecodeError> {
        match self.signature {
            SIGNATURE => {}
            SIGNATURE_REV => return Err(DecodeError::ByteSwapped),
            other => return Err(DecodeError::BadSignature(other)),
        }
        let size = self.rec_size as usize;
        if !(HEAD_SIZE..=MAX_REC_SIZE).contains(&size) {
            return Err(DecodeError::BadRecSize(self.rec_size));
        }
        Ok(doalign(size))
    }

    /// True for the record types the MIRROR_WRITE ioctl consumes (REC, PASS, SKIP).
    pub fn is_bulk(&self) -> bool {
        matches!(self.rtype & rtype::LOMASK, rtype::REC | rtype::PASS | rtype::SKIP)
    }
}

/// Why a record could not be decoded. Offsets are added by the stream reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record too short: {have} of {need} bytes")]
    Short { have: usize, need: usize },
    #[error("bad signature {0:#010x} (expected {SIGNATURE:#010x}); not a HAMMER mirror stream")]
    BadSignature(u32),
    #[error(
        "stream written on a host of the other byte order (signature {SIGNATURE_REV:#010x}); HAMMER streams are not portable across byte orders"
    )]
    ByteSwapped,
    #[error("illegal rec_size {0} (must be 16..={MAX_REC_SIZE})")]
    BadRecSize(u32),
    #[error("bad record CRC {found:#010x}, computed {computed:#010x}")]
    BadCrc { found: u32, computed: u32 },
    #[error("{name} record has rec_size {size}, expected {expected}")]
    WrongSize { name: &'static str, size: u32, expected: usize },
    #[error("REC record: data_len {data_len} does not fit rec_size {size}")]
    BadDataLen { data_len: i32, size: u32 },
    #[error("data CRC mismatch in record obj={obj_id:016x} key={key:016x} (leaf says {expected:#010x})")]
    BadDataCrc { obj_id: i64, key: i64, expected: u32 },
    #[error("unknown record type {0:#010x}")]
    UnknownType(u32),
}

/// `hammer_crc_test_leaf()`: whether `leaf.data_crc` is the CRC-32 (volume
/// version <= 6) or the CRC-32C (version >= 7) of `data`
/// ([`hammerfs::data_crc_matches`]); no data needs no CRC.
pub fn leaf_data_crc_ok(leaf: &LeafElm, data: &[u8]) -> bool {
    if data.is_empty() {
        return leaf.data_crc == 0 || leaf.data_len == 0;
    }
    hammerfs::data_crc_matches(leaf.base.rec_type, data, leaf.data_crc)
}

/// Decodes one complete record at the front of `b` (which holds at least the
/// aligned record). Verifies signature, size bounds, `rec_crc`, per-type sizes
/// and, for REC records with data, the leaf data CRC. Returns the record and
/// the bytes it occupies.
pub fn decode(b: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    if b.len() < HEAD_SIZE {
        return Err(DecodeError::Short { have: b.len(), need: HEAD_SIZE });
    }
    let head = Head::decode(b);
    let total = head.check()?;
    if b.len() < total {
        return Err(DecodeError::Short { have: b.len(), need: total });
    }
    let size = head.rec_size as usize;
    let computed = hammerfs::crc32(&b[CRC_OFF..size]);
    if computed != head.rec_crc {
        return Err(DecodeError::BadCrc { found: head.rec_crc, computed });
    }
    decode_body(&head, &b[..size]).map(|r| (r, total))
}

/// Decodes one record like [`decode`] but without checking `rec_crc`, as the
/// kernel's MIRROR_WRITE does: for buffers whose CRCs a [`RecordReader`]
/// already verified.
pub fn decode_unverified(b: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    if b.len() < HEAD_SIZE {
        return Err(DecodeError::Short { have: b.len(), need: HEAD_SIZE });
    }
    let head = Head::decode(b);
    let total = head.check()?;
    if b.len() < total {
        return Err(DecodeError::Short { have: b.len(), need: total });
    }
    decode_body(&head, &b[..head.rec_size as usize]).map(|r| (r, total))
}

/// Decodes a record whose head was already checked and whose CRC was verified.
fn decode_body<'a>(head: &Head, rec: &'a [u8]) -> Result<Record<'a>, DecodeError> {
    let size = head.rec_size;
    let exact = |name: &'static str, expected: usize| {
        if rec.len() == expected { Ok(()) } else { Err(DecodeError::WrongSize { name, size, expected }) }
    };
    let t = head.rtype;
    match t & rtype::LOMASK {
        rtype::REC => {
            if rec.len() < REC_SIZE {
                return Err(DecodeError::WrongSize { name: rtype::name(t), size, expected: REC_SIZE });
            }
            let leaf = LeafElm::decode(&rec[HEAD_SIZE..]);
            if t & rtype::CRC_ERROR != 0 || t & rtype::NODATA != 0 {
                // Passed through as the source sent it; the write half decides.
                return Ok(Record::Rec { rtype: t, leaf, data: &rec[REC_SIZE..] });
            }
            let dlen = leaf.data_len;
            if dlen < 0 || dlen as usize > HAMMER_XBUFSIZE || REC_SIZE + dlen as usize > rec.len() {
                return Err(DecodeError::BadDataLen { data_len: dlen, size });
            }
            let data = &rec[REC_SIZE..REC_SIZE + dlen as usize];
            if !data.is_empty() && leaf.data_offset != 0 && !leaf_data_crc_ok(&leaf, data) {
                return Err(DecodeError::BadDataCrc {
                    obj_id: leaf.base.obj_id,
                    key: leaf.base.key,
                    expected: leaf.data_crc,
                });
            }
            Ok(Record::Rec { rtype: t, leaf, data })
        }
        rtype::PASS => {
            exact("PASS", REC_SIZE)?;
            Ok(Record::Pass { leaf: LeafElm::decode(&rec[HEAD_SIZE..]) })
        }
        rtype::SKIP => {
            exact("SKIP", SKIP_SIZE)?;
            Ok(Record::Skip { beg: BaseElm::decode(&rec[16..56]), end: BaseElm::decode(&rec[56..96]) })
        }
        rtype::PFSD => {
            exact("PFSD", PFSD_SIZE)?;
            Ok(Record::Pfsd { version: u32_at(rec, 16), pfsd: PseudofsData::decode(&rec[24..]) })
        }
        rtype::UPDATE => {
            exact("UPDATE", UPDATE_SIZE)?;
            Ok(Record::Update { tid: u64_at(rec, 16) })
        }
        rtype::SYNC => exact("SYNC", UPDATE_SIZE).map(|()| Record::Sync),
        rtype::IDLE => exact("IDLE", UPDATE_SIZE).map(|()| Record::Idle),
        rtype::TERM => exact("TERM", UPDATE_SIZE).map(|()| Record::Term),
        _ => Err(DecodeError::UnknownType(t)),
    }
}

/// Walks the heads of a buffer of whole records that was already validated:
/// `(offset, head, record bytes)` for each, without decoding bodies.
pub fn heads(buf: &[u8]) -> impl Iterator<Item = (usize, Head, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + HEAD_SIZE > buf.len() {
            return None;
        }
        let head = Head::decode(&buf[off..]);
        let total = head.check().ok()?;
        let end = (off + head.rec_size as usize).min(buf.len());
        let item = (off, head, &buf[off..end]);
        off += total;
        Some(item)
    })
}

/// Iterates over the records of a buffer that was already validated (by
/// [`RecordReader::next_batch`] or by a PFS's `mirror_read`). Stops at the
/// first record that does not decode, returning its error.
pub fn records(buf: &[u8]) -> impl Iterator<Item = Result<Record<'_>, DecodeError>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off >= buf.len() {
            return None;
        }
        match decode(&buf[off..]) {
            Ok((r, n)) => {
                off += n;
                Some(Ok(r))
            }
            Err(e) => {
                off = buf.len();
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hammerfs::{HAMMER_RECTYPE_DATA, crc32, iscsi_crc32, leaf_data_crc};

    fn leaf(data: &[u8]) -> LeafElm {
        LeafElm {
            base: BaseElm {
                obj_id: 0x1234,
                key: -5,
                create_tid: 0x100,
                delete_tid: 0,
                rec_type: HAMMER_RECTYPE_DATA,
                obj_type: 2,
                btype: BTYPE_RECORD,
                localization: 0x0003_0002,
            },
            create_ts: 7,
            delete_ts: 0,
            data_offset: if data.is_empty() { 0 } else { 0x8000_0000_0000_1000 },
            data_len: data.len() as i32,
            data_crc: leaf_data_crc(HAMMER_RECTYPE_DATA, data),
        }
    }

    #[test]
    fn doalign_rounds_to_eight() {
        assert_eq!(doalign(0), 0);
        assert_eq!(doalign(1), 8);
        assert_eq!(doalign(24), 24);
        assert_eq!(doalign(85), 88);
        assert_eq!(doalign(316), 320);
    }

    #[test]
    fn sync_record_bytes_match_wire_md_example() {
        let mut b = [0u8; 24];
        assert_eq!(Record::Sync.encode_into(&mut b), 24);
        assert_eq!(&b[0..4], &[0x72, 0x72, 0xd9, 0x4d]);
        assert_eq!(&b[8..16], &[24, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&b[16..24], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(u32_at(&b, 4), crc32(&b[8..24]));
    }

    #[test]
    fn every_record_type_round_trips() {
        let data: Vec<u8> = (0..17u8).collect();
        let mut pfsd = PseudofsData { sync_beg_tid: 1, sync_end_tid: 0x99, ..Default::default() };
        set_c_str(&mut pfsd.label, b"label");
        let recs = [
            Record::rec(leaf(&data), &data),
            Record::rec(leaf(&[]), &[]),
            Record::Rec { rtype: rtype::REC_NODATA, leaf: leaf(&data), data: &[] },
            Record::Rec { rtype: rtype::REC_BADCRC | rtype::DATA_CRC_BAD, leaf: leaf(&data), data: &data },
            Record::Pass { leaf: leaf(&[]) },
            Record::Skip { beg: BaseElm::key_beg_init(), end: BaseElm::key_end_init() },
            Record::Pfsd { version: 1, pfsd },
            Record::Update { tid: 0xdead_beef },
            Record::Sync,
            Record::Idle,
            Record::Term,
        ];
        for r in recs {
            let mut v = Vec::new();
            r.encode_to_vec(&mut v);
            assert_eq!(v.len() % 8, 0);
            let (back, n) = decode(&v).unwrap();
            assert_eq!(n, v.len());
            assert_eq!(back, r);
        }
    }

    #[test]
    fn decode_errors_are_specific() {
        let mut v = Vec::new();
        Record::Sync.encode_to_vec(&mut v);
        assert_eq!(decode(&v[..10]).unwrap_err(), DecodeError::Short { have: 10, need: 16 });
        let mut bad = v.clone();
        bad[20] ^= 1;
        assert!(matches!(decode(&bad), Err(DecodeError::BadCrc { .. })));
        let mut swapped = v.clone();
        swapped[0..4].copy_from_slice(&SIGNATURE.to_be_bytes());
        assert_eq!(decode(&swapped).unwrap_err(), DecodeError::ByteSwapped);
        let mut sig = v.clone();
        sig[0] = 0;
        assert!(matches!(decode(&sig), Err(DecodeError::BadSignature(_))));
        let mut big = v.clone();
        big[8..12].copy_from_slice(&(MAX_REC_SIZE as u32 + 1).to_le_bytes());
        assert!(matches!(decode(&big), Err(DecodeError::BadRecSize(_))));
        let mut unknown = Vec::new();
        Record::Sync.encode_to_vec(&mut unknown);
        unknown[12] = 9;
        let crc = crc32(&unknown[8..24]);
        unknown[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&unknown).unwrap_err(), DecodeError::UnknownType(9));
    }

    #[test]
    fn bad_data_crc_is_refused() {
        let data = [1u8, 2, 3];
        let mut l = leaf(&data);
        l.data_crc ^= 1;
        let mut v = Vec::new();
        Record::rec(l, &data).encode_to_vec(&mut v);
        assert!(matches!(decode(&v), Err(DecodeError::BadDataCrc { .. })));
        // A CRC-32C data CRC (volume version 7) is accepted.
        l.data_crc = iscsi_crc32(&data);
        v.clear();
        Record::rec(l, &data).encode_to_vec(&mut v);
        assert!(decode(&v).is_ok());
    }

    #[test]
    fn btree_cmp_orders_like_hammer() {
        let a = BaseElm { localization: 1, obj_id: 5, rec_type: 1, key: 0, create_tid: 3, ..Default::default() };
        let mut b = a;
        b.create_tid = 0;
        assert_eq!(a.btree_cmp(&b), Ordering::Less, "create_tid 0 is +infinity");
        b = a;
        b.obj_id = -1;
        assert_eq!(a.btree_cmp(&b), Ordering::Greater);
        b = a;
        b.delete_tid = 99;
        assert_eq!(a.btree_cmp(&b), Ordering::Equal);
        assert_eq!(BaseElm::key_beg_init().btree_cmp(&BaseElm::key_end_init()), Ordering::Less);
    }

    #[test]
    fn uuid_wire_form_is_host_endian() {
        let u = uuid::Uuid::parse_str("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        assert_eq!(
            uuid_to_wire(&u),
            [0x67, 0x45, 0x23, 0x01, 0xab, 0x89, 0xef, 0xcd, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        assert_eq!(uuid_from_wire(&uuid_to_wire(&u)), u);
    }
}
