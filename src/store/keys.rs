//! How store records are laid out in LMDB: sortable 28-byte B-tree keys, leaf values, the TID index.
//!
//! A record key is HAMMER's `(localization, obj_id, rec_type, key,
//! create_tid)` in big-endian, sign-flipped form so that LMDB's byte order is
//! `hammer_btree_cmp` order (only the low 16 localization bits are stored: a
//! store file holds one PFS). The value holds the other leaf fields and the
//! data, or its first bytes with the rest in the blob table under the same
//! key (see [`inline_len`]). The TID index maps `tid ‖ record key` to its
//! checksum, one entry per non-zero create_tid and delete_tid, so that a scan
//! for changes since a TID touches only the changed records.
//!
//! Checksums (layout 3): HAMMER's `data_crc` covers a record's data but not
//! its leaf fields, and not an inode's mtime and atime; so a value carries,
//! after the leaf fields, `leaf_sum` (CRC-32C of the key, the leaf fields and
//! `data_sum`) and `data_sum` (CRC-32C of the key and the whole data, blob
//! included, so that a blob under the wrong key is caught too). A TID index
//! entry's value is the CRC-32C of its key. Every read checks what it uses:
//! [`decode_leaf`] the leaf, [`check_data`] the data.

use crate::hammerfs::HAMMER_LOCALIZE_MASK;
use crate::mrecord::{BTYPE_RECORD, BaseElm, LeafElm};

/// Bytes in a record key.
pub const KEY_LEN: usize = 28;
/// Bytes in a TID index key.
pub const TID_KEY_LEN: usize = 8 + KEY_LEN;
/// Bytes of leaf fields in a record value.
pub const LEAF_FIELDS: usize = 34;
/// Bytes in front of the data in a record value: the leaf fields, `leaf_sum`, `data_sum`.
pub const VALUE_HEAD: usize = LEAF_FIELDS + 8;
/// Bytes of a TID index entry's value (its checksum).
pub const TID_VALUE_LEN: usize = 4;

/// What is wrong with a stored record or index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The value is too short, or says it holds more data than its length.
    Shape,
    /// The key or leaf fields do not match `leaf_sum`.
    Leaf,
    /// The data (value and blob) does not match `data_sum`.
    Data,
    /// The data does not match the leaf's HAMMER `data_crc`.
    DataCrc,
    /// The data's length is not the leaf's (a blob missing or of the wrong size).
    DataLen,
    /// A TID index entry does not match its checksum, or has the wrong size.
    Index,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::Shape => "the record's value is malformed",
            Damage::Leaf => "the record's key or leaf fields fail their checksum",
            Damage::Data => "the record's data fails its checksum",
            Damage::DataCrc => "the record's data fails HAMMER's data CRC",
            Damage::DataLen => "the record's data is missing or of the wrong length",
            Damage::Index => "a TID index entry fails its checksum",
        })
    }
}

fn sum(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p))
}

/// The `leaf_sum` a value `v` (at least [`VALUE_HEAD`] long) under key `k` should carry.
fn leaf_sum(k: &[u8], v: &[u8]) -> u32 {
    sum(&[k, &v[..LEAF_FIELDS], &v[LEAF_FIELDS + 4..VALUE_HEAD]])
}

/// The `data_sum` of `data` under key `k`.
pub fn data_sum(k: &[u8], data: &[u8]) -> u32 {
    sum(&[k, data])
}

fn stored_u32(v: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(v[at..at + 4].try_into().expect("4 bytes"))
}

/// Checks a value's shape and `leaf_sum`, and returns its leaf fields.
pub fn check_value(k: &[u8], v: &[u8]) -> Result<ValueHead, Damage> {
    let h = ValueHead::decode(v).ok_or(Damage::Shape)?;
    if k.len() != KEY_LEN {
        return Err(Damage::Shape);
    }
    if stored_u32(v, LEAF_FIELDS) != leaf_sum(k, v) {
        return Err(Damage::Leaf);
    }
    if h.data_len < 0 || (h.data_len as usize) < v.len() - VALUE_HEAD {
        return Err(Damage::Shape);
    }
    Ok(h)
}

/// Writes `h` into the value `v` of key `k` and seals it again (a new `leaf_sum`).
pub fn set_head(k: &[u8], v: &mut [u8], h: &ValueHead) {
    h.encode(&mut v[..LEAF_FIELDS]);
    let s = leaf_sum(k, v);
    v[LEAF_FIELDS..LEAF_FIELDS + 4].copy_from_slice(&s.to_le_bytes());
}

/// Checks a record's whole `data` against the `data_sum` of its value `v`
/// and against the leaf's HAMMER `data_crc`.
pub fn check_data(k: &[u8], v: &[u8], leaf: &LeafElm, data: &[u8]) -> Result<(), Damage> {
    if data.len() != leaf.data_len as usize {
        return Err(Damage::DataLen);
    }
    if stored_u32(v, LEAF_FIELDS + 4) != data_sum(k, data) {
        return Err(Damage::Data);
    }
    if !crate::mrecord::leaf_data_crc_ok(leaf, data) {
        return Err(Damage::DataCrc);
    }
    Ok(())
}

/// The value of the TID index entry `t`.
pub fn tid_value(t: &[u8]) -> [u8; TID_VALUE_LEN] {
    crc32c::crc32c(t).to_le_bytes()
}

/// Checks a TID index entry.
pub fn check_tid_entry(t: &[u8], v: &[u8]) -> Result<(), Damage> {
    if t.len() != TID_KEY_LEN || v != tid_value(t) { Err(Damage::Index) } else { Ok(()) }
}

/// A value of the `meta` table as stored: `v` and the CRC-32C of `key ‖ v`.
pub fn seal_meta(key: &str, v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() + 4);
    out.extend_from_slice(v);
    out.extend_from_slice(&sum(&[key.as_bytes(), v]).to_le_bytes());
    out
}

/// The value a sealed `meta` entry holds, or None when its checksum fails.
pub fn open_meta<'v>(key: &str, v: &'v [u8]) -> Option<&'v [u8]> {
    let n = v.len().checked_sub(4)?;
    (stored_u32(v, n) == sum(&[key.as_bytes(), &v[..n]])).then_some(&v[..n])
}

pub type Key = [u8; KEY_LEN];

const SIGN: u64 = 1 << 63;

/// The sortable key of a B-tree element (create_tid 0 sorts last, as in HAMMER).
pub fn encode_key(b: &BaseElm) -> Key {
    let mut k = [0u8; KEY_LEN];
    k[0..2].copy_from_slice(&((b.localization & HAMMER_LOCALIZE_MASK) as u16).to_be_bytes());
    k[2..10].copy_from_slice(&((b.obj_id as u64) ^ SIGN).to_be_bytes());
    k[10..12].copy_from_slice(&b.rec_type.to_be_bytes());
    k[12..20].copy_from_slice(&((b.key as u64) ^ SIGN).to_be_bytes());
    let tid = if b.create_tid == 0 { u64::MAX } else { b.create_tid };
    k[20..28].copy_from_slice(&tid.to_be_bytes());
    k
}

/// The B-tree element of a key, localized to PFS `pfs_id`. delete_tid and
/// the type bytes are not part of the key (see [`decode_leaf`]).
pub fn decode_key(k: &[u8], pfs_id: u32) -> BaseElm {
    let be = |r: std::ops::Range<usize>| u64::from_be_bytes(k[r].try_into().expect("8 bytes"));
    BaseElm {
        localization: (pfs_id << 16) | u16::from_be_bytes([k[0], k[1]]) as u32,
        obj_id: (be(2..10) ^ SIGN) as i64,
        rec_type: u16::from_be_bytes([k[10], k[11]]),
        key: (be(12..20) ^ SIGN) as i64,
        create_tid: be(20..28),
        delete_tid: 0,
        obj_type: 0,
        btype: BTYPE_RECORD,
    }
}

/// The smallest key greater than `k` (the 224-bit big-endian successor).
pub fn successor(k: &Key) -> Option<Key> {
    let mut s = *k;
    for byte in s.iter_mut().rev() {
        if *byte == 0xff {
            *byte = 0;
        } else {
            *byte += 1;
            return Some(s);
        }
    }
    None
}

/// Leaf fields stored in a record value (everything but the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueHead {
    pub delete_tid: u64,
    pub create_ts: u32,
    pub delete_ts: u32,
    pub data_offset: u64,
    pub data_len: i32,
    pub data_crc: u32,
    pub obj_type: u8,
    pub btype: u8,
}

impl ValueHead {
    pub fn of_leaf(l: &LeafElm) -> Self {
        ValueHead {
            delete_tid: l.base.delete_tid,
            create_ts: l.create_ts,
            delete_ts: l.delete_ts,
            data_offset: l.data_offset,
            data_len: l.data_len,
            data_crc: l.data_crc,
            obj_type: l.base.obj_type,
            btype: l.base.btype,
        }
    }

    /// Writes the leaf fields into `v[..LEAF_FIELDS]` (see [`set_head`] to seal them).
    pub fn encode(&self, v: &mut [u8]) {
        v[0..8].copy_from_slice(&self.delete_tid.to_le_bytes());
        v[8..12].copy_from_slice(&self.create_ts.to_le_bytes());
        v[12..16].copy_from_slice(&self.delete_ts.to_le_bytes());
        v[16..24].copy_from_slice(&self.data_offset.to_le_bytes());
        v[24..28].copy_from_slice(&self.data_len.to_le_bytes());
        v[28..32].copy_from_slice(&self.data_crc.to_le_bytes());
        v[32] = self.obj_type;
        v[33] = self.btype;
    }

    /// None when the value is too short to be a record (a corrupt store).
    pub fn decode(v: &[u8]) -> Option<Self> {
        if v.len() < VALUE_HEAD {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(v[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(v[o..o + 8].try_into().expect("8 bytes"));
        Some(ValueHead {
            delete_tid: u64_at(0),
            create_ts: u32_at(8),
            delete_ts: u32_at(12),
            data_offset: u64_at(16),
            data_len: u32_at(24) as i32,
            data_crc: u32_at(28),
            obj_type: v[32],
            btype: v[33],
        })
    }
}

/// How many of a record's `len` data bytes its value keeps; the rest goes
/// to the blob table under the same key.
///
/// LMDB keeps a value larger than about 2 KiB on pages of its own, behind a
/// 16-byte header, so a 16 KiB block stored with the leaf fields in front
/// would take five 4 KiB pages, a quarter more than its size. Keeping its
/// first 16 bytes with the leaf fields lets the other 16368 fill exactly
/// four. Small data (up to 1 KiB) stays whole in the value; data whose
/// split would leave more than that in front goes whole to the blob table.
/// Readers do not depend on this rule: the value's length says how much of
/// the data it holds.
pub fn inline_len(len: usize) -> usize {
    const PAGE: usize = 4096;
    const OVERFLOW_HEADER: usize = 16;
    const MAX_INLINE: usize = 1024;
    if len <= MAX_INLINE {
        return len;
    }
    let pages = (len + OVERFLOW_HEADER) / PAGE;
    let front = len - (pages * PAGE).saturating_sub(OVERFLOW_HEADER).min(len);
    if pages == 0 || front > MAX_INLINE { 0 } else { front }
}

/// The value of a record under key `k`: leaf fields, checksums, then the
/// first `inline_len` bytes of the data (the caller stores the rest in the
/// blob table).
pub fn encode_value(k: &[u8], l: &LeafElm, data: &[u8]) -> Vec<u8> {
    let front = &data[..inline_len(data.len())];
    let mut v = vec![0u8; VALUE_HEAD + front.len()];
    v[LEAF_FIELDS + 4..VALUE_HEAD].copy_from_slice(&data_sum(k, data).to_le_bytes());
    v[VALUE_HEAD..].copy_from_slice(front);
    set_head(k, &mut v, &ValueHead::of_leaf(l));
    v
}

/// The full leaf of a stored record and the part of its data that the value
/// holds (all of it when it is `data_len` long; the rest is in the blob
/// table), once its key and leaf fields pass their checksum.
pub fn decode_leaf<'v>(k: &[u8], v: &'v [u8], pfs_id: u32) -> Result<(LeafElm, &'v [u8]), Damage> {
    let h = check_value(k, v)?;
    let data = &v[VALUE_HEAD..];
    let mut base = decode_key(k, pfs_id);
    base.delete_tid = h.delete_tid;
    base.obj_type = h.obj_type;
    base.btype = h.btype;
    let leaf = LeafElm {
        base,
        create_ts: h.create_ts,
        delete_ts: h.delete_ts,
        data_offset: h.data_offset,
        data_len: h.data_len,
        data_crc: h.data_crc,
    };
    Ok((leaf, data))
}

/// The TID index key of `tid` for record key `k`.
pub fn tid_key(tid: u64, k: &Key) -> [u8; TID_KEY_LEN] {
    let mut t = [0u8; TID_KEY_LEN];
    t[..8].copy_from_slice(&tid.to_be_bytes());
    t[8..].copy_from_slice(k);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn blocks_fill_whole_pages() {
        assert_eq!(inline_len(0), 0);
        assert_eq!(inline_len(1024), 1024);
        assert_eq!(inline_len(16384), 16, "a 16 KiB block: 16 bytes in the value, 16368 on four pages");
        assert_eq!(inline_len(65536), 16);
        for len in 0..=65536usize {
            let front = inline_len(len);
            assert!(front <= len, "{len}");
            if front == len {
                assert!(len <= 1024, "{len} bytes kept whole in the value");
            } else if front > 0 {
                assert!(front <= 1024 && (len - front + 16).is_multiple_of(4096), "{len}: {front} in front");
            } else {
                assert!(len > 1024, "{len}");
            }
        }
    }

    fn elm(loc: u32, obj: i64, rt: u16, key: i64, tid: u64) -> BaseElm {
        BaseElm { localization: loc, obj_id: obj, rec_type: rt, key, create_tid: tid, ..Default::default() }
    }

    #[test]
    fn byte_order_is_btree_order() {
        let elms = [
            elm(1, i64::MIN, 0, 0, 1),
            elm(1, -1, 0, 0, 1),
            elm(1, 0, 0, 0, 1),
            elm(1, 1, 1, i64::MIN, 5),
            elm(1, 1, 1, -3, 5),
            elm(1, 1, 1, 7, 5),
            elm(1, 1, 1, 7, 6),
            elm(1, 1, 1, 7, 0),
            elm(1, 1, 0x10, 0, 1),
            elm(2, 0, 0, 0, 1),
        ];
        for a in &elms {
            for b in &elms {
                assert_eq!(encode_key(a).cmp(&encode_key(b)), a.btree_cmp(b), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(elms[0].btree_cmp(&elms[9]), Ordering::Less);
    }

    #[test]
    fn keys_and_values_round_trip() {
        let l = LeafElm {
            base: BaseElm {
                localization: 0x0005_0002,
                obj_id: -77,
                rec_type: 0x11,
                key: 0x1234_0000_0000,
                create_tid: 9,
                delete_tid: 12,
                obj_type: 2,
                btype: BTYPE_RECORD,
            },
            create_ts: 1,
            delete_ts: 2,
            data_offset: 3,
            data_len: 3,
            data_crc: 4,
        };
        let k = encode_key(&l.base);
        let v = encode_value(&k, &l, b"abc");
        let (back, data) = decode_leaf(&k, &v, 5).unwrap();
        assert_eq!(back, l);
        assert_eq!(data, b"abc");
        assert_eq!(decode_leaf(&k, &v[..10], 5), Err(Damage::Shape));
    }

    #[test]
    fn every_bit_of_a_record_is_checked() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let l = LeafElm {
            base: BaseElm {
                obj_id: 9,
                rec_type: 0x10,
                key: 3000,
                create_tid: 7,
                btype: BTYPE_RECORD,
                ..Default::default()
            },
            data_len: data.len() as i32,
            data_crc: crate::hammerfs::leaf_data_crc(0x10, &data),
            ..Default::default()
        };
        let k = encode_key(&l.base);
        let v = encode_value(&k, &l, &data);
        let check = |k: &[u8], v: &[u8], data: &[u8]| {
            let (leaf, _) = decode_leaf(k, v, 0)?;
            check_data(k, v, &leaf, data)
        };
        assert_eq!(check(&k, &v, &data), Ok(()));
        for bit in 0..KEY_LEN * 8 {
            let mut k2 = k;
            k2[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(check(&k2, &v, &data), Err(Damage::Leaf), "key bit {bit}");
        }
        for bit in 0..v.len() * 8 {
            let mut v2 = v.clone();
            v2[bit / 8] ^= 1 << (bit % 8);
            let want = if bit / 8 < VALUE_HEAD { Damage::Leaf } else { Damage::Data };
            assert!(check(&k, &v2, &data).is_err_and(|d| d == want || d == Damage::Shape), "value bit {bit}");
        }
        for byte in [0, 1500, 2999] {
            let mut d2 = data.clone();
            d2[byte] ^= 0x40;
            assert_eq!(check(&k, &v, &d2), Err(Damage::Data), "data byte {byte}");
        }
        assert_eq!(check(&k, &v, &data[..2000]), Err(Damage::DataLen));
        let t = tid_key(7, &k);
        assert_eq!(check_tid_entry(&t, &tid_value(&t)), Ok(()));
        let mut t2 = t;
        t2[3] ^= 1;
        assert_eq!(check_tid_entry(&t2, &tid_value(&t)), Err(Damage::Index));
        let m = seal_meta("pfsd", b"xyz");
        assert_eq!(open_meta("pfsd", &m), Some(&b"xyz"[..]));
        assert_eq!(open_meta("last_tid", &m), None);
    }

    #[test]
    fn successor_carries() {
        let mut k = [0u8; KEY_LEN];
        k[27] = 0xff;
        let s = successor(&k).unwrap();
        assert_eq!(s[26], 1);
        assert_eq!(s[27], 0);
        assert!(successor(&[0xff; KEY_LEN]).is_none());
    }
}
