//! HAMMER's on-disk format, as pure functions: record and object types, localization, CRCs, block sizes, inode/direntry/snapshot data, directory name keys.
//!
//! The crate's one copy of this knowledge; [`crate::mrecord`] (the mirror
//! stream, and the B-tree elements and PFS data it carries), the kernel ABI
//! and the userspace store all take it from here. Everything mirrors DragonFly
//! BSD's `sys/vfs/hammer` sources:
//!
//! * `hammer_disk.h` — record/object types, `struct hammer_inode_data`
//!   (128 bytes), `struct hammer_direntry_data`, `struct
//!   hammer_snapshot_data`, capability flags, buffer sizes.
//! * `hammer_btree.h` / `hammer_disk.h` — `HAMMER_LOCALIZE_*`.
//! * `hammer_crc.h`, `sys/libkern/crc32.c`, `icrc32.c` — the two CRCs and
//!   what a leaf's `data_crc` covers.
//! * `hammer_subs.c` — `hammer_directory_namekey()` (ALG0 and ALG1),
//!   `hammer_guid_to_uuid()` / `hammer_to_unix_xid()`, `hammer_blocksize()`,
//!   `hammer_get_obj_type()`.
//! * `hammer_vnops.c` — symlink storage (inline vs FIX record), data record
//!   sizing in `hammer_vop_strategy_write()`, `va_bytes` in getattr.
//! * `hammer_ioctl.c` — where snapshot records live (`hammer_ioc_add_snapshot`).
//!
//! All multi-byte fields are little-endian (HAMMER uses host order and only
//! runs on little-endian machines). There is no I/O and no `unsafe` here, and
//! no dependency on the rest of the crate.

// ---------------------------------------------------------------------------
// Buffer sizes (hammer_disk.h)
// ---------------------------------------------------------------------------

/// `HAMMER_BUFSIZE`: data block size for file offsets below `HAMMER_XDEMARC`.
pub const HAMMER_BUFSIZE: usize = 16384;
/// `HAMMER_XBUFSIZE`: data block size for file offsets at/after `HAMMER_XDEMARC`.
pub const HAMMER_XBUFSIZE: usize = 65536;
/// `HAMMER_HBUFSIZE` (`HAMMER_BUFSIZE / 2`): files no larger than this get a
/// single 16-byte-aligned data record instead of a full block.
pub const HAMMER_HBUFSIZE: usize = HAMMER_BUFSIZE / 2;
/// `HAMMER_XDEMARC`: file offset (1 MiB) at which blocks switch from 16K to 64K.
pub const HAMMER_XDEMARC: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------
// Record types (hammer_disk.h)
// ---------------------------------------------------------------------------

pub const HAMMER_RECTYPE_UNKNOWN: u16 = 0x0000;
/// Inode record (key 0, localization INODE).
pub const HAMMER_RECTYPE_INODE: u16 = 0x0001;
/// File data record; key = file offset + data_len (the end offset).
pub const HAMMER_RECTYPE_DATA: u16 = 0x0010;
/// Directory entry record; key = namekey (+ collision iterator).
pub const HAMMER_RECTYPE_DIRENTRY: u16 = 0x0011;
/// Database record (HAMMER_OBJTYPE_DBFILE); key = file offset.
pub const HAMMER_RECTYPE_DB: u16 = 0x0012;
/// Extended attributes.
pub const HAMMER_RECTYPE_EXT: u16 = 0x0013;
/// Fixed attribute (e.g. long symlink target, key `HAMMER_FIXKEY_SYMLINK`).
pub const HAMMER_RECTYPE_FIX: u16 = 0x0014;
/// PFS management (`hammer_pseudofs_data`, stored on the real root inode).
pub const HAMMER_RECTYPE_PFS: u16 = 0x0015;
/// Snapshot management (`hammer_snapshot_data`, key = snapshot TID).
pub const HAMMER_RECTYPE_SNAPSHOT: u16 = 0x0016;
/// `hammer cleanup` configuration (not mirrored).
pub const HAMMER_RECTYPE_CONFIG: u16 = 0x0017;
pub const HAMMER_RECTYPE_MAX: u16 = 0xFFFF;
/// `HAMMER_RECTYPE_INODE + 1`: first record type that is not the inode.
pub const HAMMER_RECTYPE_ENTRY_START: u16 = HAMMER_RECTYPE_INODE + 1;
/// `HAMMER_RECTYPE_EXT`: first record type that survives truncation/clean.
pub const HAMMER_RECTYPE_CLEAN_START: u16 = HAMMER_RECTYPE_EXT;

/// Key of the `HAMMER_RECTYPE_FIX` record holding a long symlink target.
pub const HAMMER_FIXKEY_SYMLINK: i64 = 1;

// ---------------------------------------------------------------------------
// Object types (hammer_disk.h)
// ---------------------------------------------------------------------------

pub const HAMMER_OBJTYPE_UNKNOWN: u8 = 0;
pub const HAMMER_OBJTYPE_DIRECTORY: u8 = 1;
pub const HAMMER_OBJTYPE_REGFILE: u8 = 2;
pub const HAMMER_OBJTYPE_DBFILE: u8 = 3;
pub const HAMMER_OBJTYPE_FIFO: u8 = 4;
pub const HAMMER_OBJTYPE_CDEV: u8 = 5;
pub const HAMMER_OBJTYPE_BDEV: u8 = 6;
pub const HAMMER_OBJTYPE_SOFTLINK: u8 = 7;
/// Pseudo filesystem object (never created by the vnops).
pub const HAMMER_OBJTYPE_PSEUDOFS: u8 = 8;
pub const HAMMER_OBJTYPE_SOCKET: u8 = 9;

/// Object id of the root directory of every PFS (and of the real root).
pub const HAMMER_OBJID_ROOT: i64 = 1;

// ---------------------------------------------------------------------------
// Localization (hammer_disk.h / hammer_btree.h)
// ---------------------------------------------------------------------------

/// Inode records (and, with `DIR_LOCAL_INO`, directory entries).
pub const HAMMER_LOCALIZE_INODE: u32 = 0x0000_0001;
/// Everything that is not an inode (data, FIX, PFS, old-style dirents).
pub const HAMMER_LOCALIZE_MISC: u32 = 0x0000_0002;
pub const HAMMER_LOCALIZE_MASK: u32 = 0x0000_FFFF;
/// The PFS id lives in the top 16 bits of a localization.
pub const HAMMER_LOCALIZE_PSEUDOFS_MASK: u32 = 0xFFFF_0000;

/// `pfs_to_lo()`: the localization base of PFS `pfs_id`.
pub const fn pfs_to_localization(pfs_id: u16) -> u32 {
    (pfs_id as u32) << 16
}

/// `lo_to_pfs()`: the PFS id encoded in a localization.
pub const fn localization_to_pfs(localization: u32) -> u16 {
    ((localization & HAMMER_LOCALIZE_PSEUDOFS_MASK) >> 16) as u16
}

/// `hammer_dir_localization()` (hammer.h): the localization type a
/// directory's DIRENTRY records use, from the directory inode's `cap_flags`.
/// Add it to the PFS localization base (`pfs_to_localization`).
pub const fn dir_entry_localization_type(dir_cap_flags: u8) -> u32 {
    if dir_cap_flags & HAMMER_INODE_CAP_DIR_LOCAL_INO != 0 { HAMMER_LOCALIZE_INODE } else { HAMMER_LOCALIZE_MISC }
}

// ---------------------------------------------------------------------------
// Inode capability flags (hammer_disk.h)
// ---------------------------------------------------------------------------

/// Directory: which namekey algorithm its entries use.
pub const HAMMER_INODE_CAP_DIRHASH_MASK: u8 = 0x03;
pub const HAMMER_INODE_CAP_DIRHASH_ALG0: u8 = 0x00;
pub const HAMMER_INODE_CAP_DIRHASH_ALG1: u8 = 0x01;
pub const HAMMER_INODE_CAP_DIRHASH_ALG2: u8 = 0x02;
pub const HAMMER_INODE_CAP_DIRHASH_ALG3: u8 = 0x03;
/// Directory entries use INODE localization instead of MISC.
pub const HAMMER_INODE_CAP_DIR_LOCAL_INO: u8 = 0x04;

/// `cap_flags` HAMMER gives a new directory on a version >= 6 filesystem
/// (`hammer_create_inode()`; version >= 2 adds DIR_LOCAL_INO, >= 6 adds ALG1).
pub const NEW_DIRECTORY_CAP_FLAGS: u8 = HAMMER_INODE_CAP_DIR_LOCAL_INO | HAMMER_INODE_CAP_DIRHASH_ALG1;

/// `cap_flags` for a new directory given the filesystem version.
pub const fn new_directory_cap_flags(fs_version: u32) -> u8 {
    let mut flags = 0;
    if fs_version >= 2 {
        flags |= HAMMER_INODE_CAP_DIR_LOCAL_INO;
    }
    if fs_version >= 6 {
        flags |= HAMMER_INODE_CAP_DIRHASH_ALG1;
    }
    flags
}

// ---------------------------------------------------------------------------
// CRCs (sys/libkern/crc32.c, icrc32.c; hammer_crc.h)
// ---------------------------------------------------------------------------

/// HAMMER's `crc32()` (sys/libkern/crc32.c, Gary Brown table, poly
/// 0xEDB88320, init/xorout ~0): CRC-32/ISO-HDLC. Mirror records' `rec_crc`
/// and directory keys always use this one, even on version 7 filesystems
/// (only on-media CRCs switched to iSCSI CRC32C in version 7).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// HAMMER's `iscsi_crc32()` (CRC-32C), used for data CRCs from volume version 7 on.
pub fn iscsi_crc32(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The bytes of a record's data that its leaf `data_crc` covers
/// (`hammer_crc_get_leaf()`): all of it, except for an inode, whose mtime and
/// atime are updated in place ([`InodeData::CRC_SIZE`]).
pub fn data_crc_span(rec_type: u16, data: &[u8]) -> &[u8] {
    if rec_type == HAMMER_RECTYPE_INODE && data.len() == InodeData::SIZE { &data[..InodeData::CRC_SIZE] } else { data }
}

/// The leaf `data_crc` HAMMER (volume version 6 and below) stores for `data`
/// (0 for no data). The store writes this form; version 7 targets accept it too.
pub fn leaf_data_crc(rec_type: u16, data: &[u8]) -> u32 {
    if data.is_empty() { 0 } else { crc32(data_crc_span(rec_type, data)) }
}

/// `hammer_crc_test_leaf()` for non-empty `data`: `crc` is the CRC-32 of
/// version <= 6 or the CRC-32C of version >= 7.
pub fn data_crc_matches(rec_type: u16, data: &[u8], crc: u32) -> bool {
    let span = data_crc_span(rec_type, data);
    crc32(span) == crc || iscsi_crc32(span) == crc
}

// ---------------------------------------------------------------------------
// Directory name keys (hammer_subs.c: hammer_directory_namekey)
// ---------------------------------------------------------------------------

/// The low 32 bits of a directory key form the collision space: on a
/// collision HAMMER increments the whole 64-bit key by one
/// (`hammer_ip_add_directory`) and lookups scan `[namekey, namekey +
/// max_iterations]` inclusive (`hammer_vop_nresolve`).
pub const NAMEKEY_COLLISION_MASK: i64 = 0x0000_0000_FFFF_FFFF;
/// `*max_iterationsp` for ALG0 directories.
pub const DIRHASH_ALG0_MAX_ITERATIONS: u32 = 0xFFFF_FFFF;
/// `*max_iterationsp` for ALG1 directories (the default on version 6/7).
pub const DIRHASH_ALG1_MAX_ITERATIONS: u32 = 0x00FF_FFFF;
/// Iteration space of the default (ALG1) algorithm.
pub const NAMEKEY_MAX_ITERATIONS: u32 = DIRHASH_ALG1_MAX_ITERATIONS;

/// ALG0 (original) namekey:
/// `key = (crc32(name) & 0x7FFFFFFF) << 32; if key == 0 { key = 1 << 32 }`.
pub fn directory_namekey_alg0(name: &[u8]) -> i64 {
    let mut key = i64::from(crc32(name) & 0x7FFF_FFFF) << 32;
    if key == 0 {
        key |= 0x1_0000_0000;
    }
    key
}

/// ALG1 namekey (filesystem version 6+):
///
/// * bits 32..62 (`m32`): the wrapping 32-bit sum of `crc32` of every
///   non-empty segment of the name split at `.`, `-`, `_` and `~`, masked
///   with `0x7FFFFFFF`;
/// * bits 16..31 (`l16`): the high 16 bits of `c ^ (c << 16)` with
///   `c = crc32(whole name)`, i.e. `(c >> 16) ^ (c & 0xFFFF)`;
/// * bits 0..15: zero (iteration space);
/// * if bits 32..63 end up zero, bit 32 is set.
pub fn directory_namekey_alg1(name: &[u8]) -> i64 {
    let mut m32: u32 = 0;
    let mut j = 0;
    for (i, &c) in name.iter().enumerate() {
        if matches!(c, b'.' | b'-' | b'_' | b'~') {
            if i != j {
                m32 = m32.wrapping_add(crc32(&name[j..i]));
            }
            j = i + 1;
        }
    }
    if name.len() != j {
        m32 = m32.wrapping_add(crc32(&name[j..]));
    }
    m32 &= 0x7FFF_FFFF;
    let mut key = i64::from(m32) << 32;

    let c = crc32(name);
    let l16 = (c ^ (c << 16)) & 0xFFFF_0000;
    key |= i64::from(l16);

    if key as u64 & 0xFFFF_FFFF_0000_0000 == 0 {
        key |= 0x1_0000_0000;
    }
    key
}

/// The namekey HAMMER gives `name` in a directory created on a current
/// (version 6/7) filesystem: ALG1.
pub fn directory_namekey(name: &[u8]) -> i64 {
    directory_namekey_alg1(name)
}

/// `hammer_directory_namekey()` dispatch on a directory's `cap_flags`:
/// returns `(key, max_iterations)`, or `None` for ALG2/ALG3 (HAMMER panics).
pub fn directory_namekey_for(dir_cap_flags: u8, name: &[u8]) -> Option<(i64, u32)> {
    match dir_cap_flags & HAMMER_INODE_CAP_DIRHASH_MASK {
        HAMMER_INODE_CAP_DIRHASH_ALG0 => Some((directory_namekey_alg0(name), DIRHASH_ALG0_MAX_ITERATIONS)),
        HAMMER_INODE_CAP_DIRHASH_ALG1 => Some((directory_namekey_alg1(name), DIRHASH_ALG1_MAX_ITERATIONS)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// uid/gid <-> uuid (hammer_subs.c)
// ---------------------------------------------------------------------------

/// Byte offset of `uuid->node[2]` inside a 16-byte `uuid_t`
/// (time_low 4 + time_mid 2 + time_hi 2 + clock_seq 2 + node[0..2]).
pub const UUID_XID_OFFSET: usize = 12;

/// `hammer_guid_to_uuid()`: a zeroed uuid with the id stored as a
/// little-endian u32 at `node[2]` (bytes 12..16).
pub fn uid_to_uuid_bytes(id: u32) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid[UUID_XID_OFFSET..UUID_XID_OFFSET + 4].copy_from_slice(&id.to_le_bytes());
    uuid
}

/// `hammer_to_unix_xid()`: the little-endian u32 at bytes 12..16; the other
/// bytes are ignored.
pub fn uuid_bytes_to_uid(uuid: &[u8; 16]) -> u32 {
    u32::from_le_bytes([uuid[12], uuid[13], uuid[14], uuid[15]])
}

// ---------------------------------------------------------------------------
// Times (hammer_subs.c)
// ---------------------------------------------------------------------------

/// `hammer_timespec_to_time()`: inode times are microseconds since the epoch.
pub const fn unix_to_hammer_time(secs: u64, nsecs: u32) -> u64 {
    secs * 1_000_000 + (nsecs / 1000) as u64
}

/// `hammer_time_to_timespec()`: `(seconds, nanoseconds)`.
pub const fn hammer_time_to_unix(xtime: u64) -> (u64, u32) {
    (xtime / 1_000_000, (xtime % 1_000_000) as u32 * 1000)
}

// ---------------------------------------------------------------------------
// Object type <-> unix file type (hammer_subs.c: hammer_get_obj_type)
// ---------------------------------------------------------------------------

const S_IFMT: u32 = 0o170000;
const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFBLK: u32 = 0o060000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFSOCK: u32 = 0o140000;

/// `hammer_get_obj_type()` applied to the file-type bits of a unix mode.
pub const fn obj_type_from_unix_mode(st_mode: u32) -> u8 {
    match st_mode & S_IFMT {
        S_IFDIR => HAMMER_OBJTYPE_DIRECTORY,
        S_IFREG => HAMMER_OBJTYPE_REGFILE,
        S_IFIFO => HAMMER_OBJTYPE_FIFO,
        S_IFSOCK => HAMMER_OBJTYPE_SOCKET,
        S_IFCHR => HAMMER_OBJTYPE_CDEV,
        S_IFBLK => HAMMER_OBJTYPE_BDEV,
        S_IFLNK => HAMMER_OBJTYPE_SOFTLINK,
        _ => HAMMER_OBJTYPE_UNKNOWN,
    }
}

/// Inverse of [`obj_type_from_unix_mode`] (`hammer_get_vnode_type()`):
/// the `S_IFMT` bits, or 0 for unknown/DBFILE/PSEUDOFS.
pub const fn unix_file_type_bits(obj_type: u8) -> u32 {
    match obj_type {
        HAMMER_OBJTYPE_DIRECTORY => S_IFDIR,
        HAMMER_OBJTYPE_REGFILE => S_IFREG,
        HAMMER_OBJTYPE_FIFO => S_IFIFO,
        HAMMER_OBJTYPE_SOCKET => S_IFSOCK,
        HAMMER_OBJTYPE_CDEV => S_IFCHR,
        HAMMER_OBJTYPE_BDEV => S_IFBLK,
        HAMMER_OBJTYPE_SOFTLINK => S_IFLNK,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------
// struct hammer_inode_data (hammer_disk.h)
// ---------------------------------------------------------------------------

/// `HAMMER_INODE_DATA_VERSION`.
pub const HAMMER_INODE_DATA_VERSION: u16 = 1;
/// `HAMMER_INODE_BASESYMLEN`: symlink targets up to this many bytes live in
/// `ext` (inline); longer ones in a FIX record.
pub const HAMMER_INODE_BASESYMLEN: usize = 24;

/// Byte offsets of the fields of `struct hammer_inode_data`.
pub mod inode_off {
    pub const VERSION: usize = 0;
    pub const MODE: usize = 2;
    pub const UFLAGS: usize = 4;
    pub const RMAJOR: usize = 8;
    pub const RMINOR: usize = 12;
    pub const CTIME: usize = 16;
    pub const PARENT_OBJ_ID: usize = 24;
    pub const UID: usize = 32;
    pub const GID: usize = 48;
    pub const OBJ_TYPE: usize = 64;
    pub const CAP_FLAGS: usize = 65;
    pub const RESERVED01: usize = 66;
    pub const RESERVED02: usize = 68;
    pub const NLINKS: usize = 72;
    pub const SIZE: usize = 80;
    /// `ext` union: `symlink[24]`, or (older headers) `obj { reserved06[16];
    /// parent_obj_localization; integrity_crc; }`.
    pub const EXT: usize = 88;
    /// `ext.obj.parent_obj_localization` (older headers only).
    pub const EXT_PARENT_OBJ_LOCALIZATION: usize = 104;
    /// `ext.obj.integrity_crc` (older headers only).
    pub const EXT_INTEGRITY_CRC: usize = 108;
    pub const MTIME: usize = 112;
    pub const ATIME: usize = 120;
}

/// `struct hammer_inode_data`, the data of a `HAMMER_RECTYPE_INODE` record.
///
/// Times are microseconds since the epoch. `mode` holds only the permission
/// bits (07777); the file type is `obj_type`. `uid`/`gid` are uuids built by
/// [`uid_to_uuid_bytes`]. `nlinks` counts directory entries referencing the
/// object (1 for a directory, no "."/".." counting); `size` is the file
/// length, the symlink target length, or 0 for a directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InodeData {
    pub version: u16,
    pub mode: u16,
    pub uflags: u32,
    pub rmajor: u32,
    pub rminor: u32,
    pub ctime: u64,
    pub parent_obj_id: i64,
    pub uid: [u8; 16],
    pub gid: [u8; 16],
    pub obj_type: u8,
    pub cap_flags: u8,
    /// Named `reserved02` in pre-2016 headers.
    pub reserved01: u16,
    /// Named `reserved03` ("reserved for possible future birthtime") in pre-2016 headers.
    pub reserved02: u32,
    pub nlinks: u64,
    pub size: u64,
    /// The `ext` union (`symlink[HAMMER_INODE_BASESYMLEN]`).
    pub ext: [u8; 24],
    pub mtime: u64,
    pub atime: u64,
}

impl InodeData {
    /// `sizeof(struct hammer_inode_data)`.
    pub const SIZE: usize = 128;
    /// `HAMMER_INODE_CRCSIZE` = `offsetof(mtime)`: the leaf `data_crc` of an
    /// inode record covers only these bytes (mtime/atime are updated in place).
    pub const CRC_SIZE: usize = inode_off::MTIME;

    pub fn encode(&self) -> [u8; 128] {
        use inode_off as o;
        let mut b = [0u8; 128];
        b[o::VERSION..o::VERSION + 2].copy_from_slice(&self.version.to_le_bytes());
        b[o::MODE..o::MODE + 2].copy_from_slice(&self.mode.to_le_bytes());
        b[o::UFLAGS..o::UFLAGS + 4].copy_from_slice(&self.uflags.to_le_bytes());
        b[o::RMAJOR..o::RMAJOR + 4].copy_from_slice(&self.rmajor.to_le_bytes());
        b[o::RMINOR..o::RMINOR + 4].copy_from_slice(&self.rminor.to_le_bytes());
        b[o::CTIME..o::CTIME + 8].copy_from_slice(&self.ctime.to_le_bytes());
        b[o::PARENT_OBJ_ID..o::PARENT_OBJ_ID + 8].copy_from_slice(&self.parent_obj_id.to_le_bytes());
        b[o::UID..o::UID + 16].copy_from_slice(&self.uid);
        b[o::GID..o::GID + 16].copy_from_slice(&self.gid);
        b[o::OBJ_TYPE] = self.obj_type;
        b[o::CAP_FLAGS] = self.cap_flags;
        b[o::RESERVED01..o::RESERVED01 + 2].copy_from_slice(&self.reserved01.to_le_bytes());
        b[o::RESERVED02..o::RESERVED02 + 4].copy_from_slice(&self.reserved02.to_le_bytes());
        b[o::NLINKS..o::NLINKS + 8].copy_from_slice(&self.nlinks.to_le_bytes());
        b[o::SIZE..o::SIZE + 8].copy_from_slice(&self.size.to_le_bytes());
        b[o::EXT..o::EXT + 24].copy_from_slice(&self.ext);
        b[o::MTIME..o::MTIME + 8].copy_from_slice(&self.mtime.to_le_bytes());
        b[o::ATIME..o::ATIME + 8].copy_from_slice(&self.atime.to_le_bytes());
        b
    }

    /// Decodes exactly `SIZE` bytes (HAMMER rejects inode records whose
    /// `data_len` is not `sizeof(struct hammer_inode_data)`).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        use inode_off as o;
        if bytes.len() != Self::SIZE {
            return None;
        }
        Some(InodeData {
            version: le_u16(bytes, o::VERSION),
            mode: le_u16(bytes, o::MODE),
            uflags: le_u32(bytes, o::UFLAGS),
            rmajor: le_u32(bytes, o::RMAJOR),
            rminor: le_u32(bytes, o::RMINOR),
            ctime: le_u64(bytes, o::CTIME),
            parent_obj_id: le_u64(bytes, o::PARENT_OBJ_ID) as i64,
            uid: array16(bytes, o::UID),
            gid: array16(bytes, o::GID),
            obj_type: bytes[o::OBJ_TYPE],
            cap_flags: bytes[o::CAP_FLAGS],
            reserved01: le_u16(bytes, o::RESERVED01),
            reserved02: le_u32(bytes, o::RESERVED02),
            nlinks: le_u64(bytes, o::NLINKS),
            size: le_u64(bytes, o::SIZE),
            ext: {
                let mut e = [0u8; 24];
                e.copy_from_slice(&bytes[o::EXT..o::EXT + 24]);
                e
            },
            mtime: le_u64(bytes, o::MTIME),
            atime: le_u64(bytes, o::ATIME),
        })
    }

    /// The bytes the inode record's leaf `data_crc` covers.
    pub fn crc_bytes(encoded: &[u8; 128]) -> &[u8] {
        &encoded[..Self::CRC_SIZE]
    }

    /// The unix uid (`hammer_to_unix_xid(&uid)`).
    pub fn unix_uid(&self) -> u32 {
        uuid_bytes_to_uid(&self.uid)
    }

    /// The unix gid (`hammer_to_unix_xid(&gid)`).
    pub fn unix_gid(&self) -> u32 {
        uuid_bytes_to_uid(&self.gid)
    }

    pub fn set_unix_uid(&mut self, uid: u32) {
        self.uid = uid_to_uuid_bytes(uid);
    }

    pub fn set_unix_gid(&mut self, gid: u32) {
        self.gid = uid_to_uuid_bytes(gid);
    }

    /// Whether a symlink of this inode keeps its target inline in `ext`
    /// (`size <= HAMMER_INODE_BASESYMLEN`) rather than in a FIX record.
    pub fn symlink_is_inline(&self) -> bool {
        self.obj_type == HAMMER_OBJTYPE_SOFTLINK && self.size as usize <= HAMMER_INODE_BASESYMLEN
    }

    /// The inline symlink target (`ext.symlink[..size]`, not NUL-terminated),
    /// or `None` if this is not a softlink or the target is in a FIX record.
    pub fn symlink_inline(&self) -> Option<&[u8]> {
        if self.symlink_is_inline() { Some(&self.ext[..self.size as usize]) } else { None }
    }

    /// Stores `target` inline and sets `size` as `hammer_vop_nsymlink` does.
    /// Returns false (and changes nothing) if `target` is longer than
    /// `HAMMER_INODE_BASESYMLEN`; the caller must then write a
    /// `HAMMER_RECTYPE_FIX` / `HAMMER_FIXKEY_SYMLINK` record and set `size`.
    pub fn set_symlink_inline(&mut self, target: &[u8]) -> bool {
        if target.len() > HAMMER_INODE_BASESYMLEN {
            return false;
        }
        self.ext = [0u8; 24];
        self.ext[..target.len()].copy_from_slice(target);
        self.size = target.len() as u64;
        true
    }

    /// `ext.obj.parent_obj_localization` (only meaningful for PFS roots on
    /// older filesystems; the field was dropped from newer headers).
    pub fn ext_parent_obj_localization(&self) -> u32 {
        u32::from_le_bytes([self.ext[16], self.ext[17], self.ext[18], self.ext[19]])
    }

    /// Directory-entry namekey algorithm of this (directory) inode.
    pub fn dirhash_alg(&self) -> u8 {
        self.cap_flags & HAMMER_INODE_CAP_DIRHASH_MASK
    }
}

// ---------------------------------------------------------------------------
// struct hammer_direntry_data (hammer_disk.h)
// ---------------------------------------------------------------------------

/// `HAMMER_ENTRY_NAME_OFF` = `offsetof(struct hammer_direntry_data, name[0])`.
pub const HAMMER_ENTRY_NAME_OFF: usize = 16;

/// `HAMMER_ENTRY_SIZE(nlen)`: the record data length of an entry with an
/// `nlen`-byte name.
pub const fn hammer_entry_size(name_len: usize) -> usize {
    HAMMER_ENTRY_NAME_OFF + name_len
}

/// `struct hammer_direntry_data` (`hammer_entry_data` in older headers), the
/// data of a `HAMMER_RECTYPE_DIRENTRY` record. The name is not NUL-terminated;
/// its length is `data_len - HAMMER_ENTRY_NAME_OFF`. The target's object type
/// is in the B-tree leaf's `obj_type`, not here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirEntryData {
    /// Object id of the referenced inode.
    pub obj_id: i64,
    /// The referenced inode's `obj_localization` (PFS base, low 16 bits 0).
    pub localization: u32,
    /// Named `reserved02` in pre-2016 headers; always 0.
    pub reserved01: u32,
    pub name: Vec<u8>,
}

impl DirEntryData {
    pub fn encoded_len(&self) -> usize {
        hammer_entry_size(self.name.len())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(&self.obj_id.to_le_bytes());
        b.extend_from_slice(&self.localization.to_le_bytes());
        b.extend_from_slice(&self.reserved01.to_le_bytes());
        b.extend_from_slice(&self.name);
        b
    }

    /// Decodes a whole record data block; the name is everything after
    /// `HAMMER_ENTRY_NAME_OFF`.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HAMMER_ENTRY_NAME_OFF {
            return None;
        }
        Some(DirEntryData {
            obj_id: le_u64(bytes, 0) as i64,
            localization: le_u32(bytes, 8),
            reserved01: le_u32(bytes, 12),
            name: bytes[HAMMER_ENTRY_NAME_OFF..].to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------
// struct hammer_snapshot_data (hammer_disk.h; records: hammer_ioctl.c)
// ---------------------------------------------------------------------------

/// `struct hammer_snapshot_data`: "Snapshot meta-data { Objid =
/// HAMMER_OBJID_ROOT, Key = tid, rectype = SNAPSHOT }. [...] Snapshot records
/// are mirrored but may be independently managed once they are laid down on
/// a slave." The record sits at [`snapshot_record_key`]; its data is this
/// (128 bytes, the reserved fields zero).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SnapshotData {
    /// "the snapshot TID itself (== key)"
    pub tid: u64,
    /// "real-time when snapshot was made": microseconds since the epoch, as
    /// `hammer snap` sets it (`time(NULL) * 1000000`).
    pub ts: u64,
    /// "user-supplied description", NUL-terminated unless 64 bytes long.
    pub label: [u8; 64],
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotData")
            .field("tid", &format_args!("{:#018x}", self.tid))
            .field("ts", &self.ts)
            .field("label", &self.label_str())
            .finish()
    }
}

impl SnapshotData {
    /// `sizeof(struct hammer_snapshot_data)`.
    pub const SIZE: usize = 128;
    /// Offset of `label` (after tid, ts, reserved01, reserved02).
    const LABEL_OFF: usize = 32;

    /// A snapshot of `tid` made at `ts` (µs) with the note `label`,
    /// truncated to 63 bytes as `snprintf` into the 64-byte array does.
    pub fn new(tid: u64, ts: u64, label: &[u8]) -> Self {
        let mut l = [0u8; 64];
        let n = label.len().min(63);
        l[..n].copy_from_slice(&label[..n]);
        SnapshotData { tid, ts, label: l }
    }

    /// The note up to its NUL (lossy UTF-8).
    pub fn label_str(&self) -> String {
        let end = self.label.iter().position(|&c| c == 0).unwrap_or(self.label.len());
        String::from_utf8_lossy(&self.label[..end]).into_owned()
    }

    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.tid.to_le_bytes());
        b[8..16].copy_from_slice(&self.ts.to_le_bytes());
        b[Self::LABEL_OFF..Self::LABEL_OFF + 64].copy_from_slice(&self.label);
        b
    }

    /// Decodes a record's data; None unless it is exactly 128 bytes. The
    /// reserved fields are ignored.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::SIZE {
            return None;
        }
        let mut label = [0u8; 64];
        label.copy_from_slice(&bytes[Self::LABEL_OFF..Self::LABEL_OFF + 64]);
        Some(SnapshotData { tid: le_u64(bytes, 0), ts: le_u64(bytes, 8), label })
    }
}

/// Where HAMMER keeps the snapshot of `tid` (`hammer_ioc_add_snapshot()`):
/// `(localization type, obj_id, rec_type, key)` = (INODE, the PFS root,
/// SNAPSHOT, the TID as the signed B-tree key). The localization type is
/// added to the PFS's base ([`pfs_to_localization`]).
pub const fn snapshot_record_key(tid: u64) -> (u32, i64, u16, i64) {
    (HAMMER_LOCALIZE_INODE, HAMMER_OBJID_ROOT, HAMMER_RECTYPE_SNAPSHOT, tid as i64)
}

// ---------------------------------------------------------------------------
// Data records (hammer_subs.c: hammer_blocksize; hammer_vnops.c)
// ---------------------------------------------------------------------------

/// `hammer_blocksize()`: 16K below `HAMMER_XDEMARC` (1 MiB), 64K at/after it.
pub fn data_block_size(offset: u64) -> usize {
    if offset < HAMMER_XDEMARC { HAMMER_BUFSIZE } else { HAMMER_XBUFSIZE }
}

/// `hammer_blockoff()`: offset within the block containing `offset`.
pub fn data_block_offset(offset: u64) -> usize {
    (offset as usize) & (data_block_size(offset) - 1)
}

/// Start of the block containing `offset`.
pub fn data_block_base(offset: u64) -> u64 {
    offset & !(data_block_size(offset) as u64 - 1)
}

/// `data_len` of the DATA record HAMMER writes for the block starting at
/// `block_offset` of a file of `file_size` bytes
/// (`hammer_vop_strategy_write`): a file no larger than `HAMMER_HBUFSIZE`
/// (8192) gets one record of `file_size` rounded up to 16 bytes; otherwise
/// every block, including the last partial one, is a full 16K/64K block
/// (zero padded past EOF).
pub fn data_record_len(block_offset: u64, file_size: u64) -> usize {
    if block_offset != 0 || file_size > HAMMER_HBUFSIZE as u64 {
        data_block_size(block_offset)
    } else {
        ((file_size as usize) + 15) & !15
    }
}

/// B-tree key of a DATA record: the end offset, `file_offset + data_len`
/// (`hammer_ip_add_bulk`). The record's base offset is `key - data_len`.
pub const fn data_record_key(file_offset: u64, data_len: usize) -> i64 {
    (file_offset + data_len as u64) as i64
}

/// `va_bytes` as reported by `hammer_vop_getattr` (st_blocks * 512 source).
pub fn getattr_bytes(size: u64) -> u64 {
    if size >= HAMMER_XDEMARC {
        (size + HAMMER_XBUFSIZE as u64 - 1) & !(HAMMER_XBUFSIZE as u64 - 1)
    } else if size > HAMMER_HBUFSIZE as u64 {
        (size + HAMMER_BUFSIZE as u64 - 1) & !(HAMMER_BUFSIZE as u64 - 1)
    } else {
        (size + 15) & !15
    }
}

// ---------------------------------------------------------------------------
// little-endian helpers
// ---------------------------------------------------------------------------

fn le_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn array16(b: &[u8], off: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_iso_hdlc_and_crc32c_is_castagnoli() {
        // Standard check values, as in sys/libkern/crc32.c and icrc32.c.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(iscsi_crc32(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn inode_crc_skips_mtime_and_atime() {
        let mut d = [7u8; 128];
        let c = leaf_data_crc(HAMMER_RECTYPE_INODE, &d);
        d[inode_off::ATIME] = 0;
        d[inode_off::MTIME] = 0;
        assert_eq!(leaf_data_crc(HAMMER_RECTYPE_INODE, &d), c);
        assert!(data_crc_matches(HAMMER_RECTYPE_INODE, &d, c));
        d[inode_off::EXT] = 0;
        assert_ne!(leaf_data_crc(HAMMER_RECTYPE_INODE, &d), c);
        // Any other record type, or an inode of another size, is covered whole.
        assert_ne!(leaf_data_crc(HAMMER_RECTYPE_DATA, &d), leaf_data_crc(HAMMER_RECTYPE_DATA, &[7u8; 128]));
        assert_eq!(leaf_data_crc(HAMMER_RECTYPE_INODE, &d[..100]), crc32(&d[..100]));
        assert_eq!(leaf_data_crc(HAMMER_RECTYPE_DATA, &[]), 0);
        assert!(data_crc_matches(HAMMER_RECTYPE_DATA, b"abc", iscsi_crc32(b"abc")));
        assert!(!data_crc_matches(HAMMER_RECTYPE_DATA, b"abc", 0));
    }

    #[test]
    fn alg0_known_values() {
        // crc32("a") = 0xe8b7be43 -> & 0x7fffffff = 0x68b7be43.
        assert_eq!(directory_namekey_alg0(b"a"), 0x68b7_be43_0000_0000);
        assert_eq!(directory_namekey_alg0(b"hello"), 0x3610_a686_0000_0000);
        // crc32("") == 0 -> forced to 1 << 32.
        assert_eq!(directory_namekey_alg0(b""), 0x1_0000_0000);
        // Low 32 bits are always the (empty) iteration space.
        assert_eq!(directory_namekey_alg0(b"README") & NAMEKEY_COLLISION_MASK, 0);
    }

    #[test]
    fn alg1_known_values() {
        // "a": one segment, m32 = 0xe8b7be43 & 0x7fffffff = 0x68b7be43;
        // l16 = (0xe8b7be43 ^ 0xbe430000) & 0xffff0000 = 0x56f40000.
        assert_eq!(directory_namekey_alg1(b"a"), 0x68b7_be43_56f4_0000);
        // ".": no segments -> m32 = 0 -> bit 32 forced; crc32(".") = 0x0ed4e242,
        // l16 = (0x0ed4e242 ^ 0xe2420000) & 0xffff0000 = 0xec960000.
        assert_eq!(directory_namekey_alg1(b"."), 0x1_ec96_0000);
        assert_eq!(directory_namekey_alg1(b""), 0x1_0000_0000);
        // Multi-segment names (sum of per-segment crcs), cross-checked with an
        // independent implementation over zlib.crc32.
        assert_eq!(directory_namekey_alg1(b"hello.txt"), 0x5248_05cb_dcdb_0000);
        assert_eq!(directory_namekey_alg1(b"foo.bar.baz"), 0x7b96_f663_bc57_0000);
        assert_eq!(directory_namekey_alg1(b"a-b_c~d"), 0x7a0d_d877_fbaf_0000);
        assert_eq!(directory_namekey_alg1(b"x.tar.gz"), 0x56e5_e1a8_b865_0000);
        assert_eq!(directory_namekey_alg1(b"README"), 0x77cd_4175_36b8_0000);
    }

    #[test]
    fn alg1_properties() {
        for name in [&b"a"[..], b"hello.txt", b"...", b"~", b"some-long_file.name~"] {
            let k = directory_namekey_alg1(name);
            assert!(k > 0, "keys are positive");
            assert_eq!(k & 0xFFFF, 0, "low 16 bits are the iteration space");
            assert_ne!(k as u64 & 0xFFFF_FFFF_0000_0000, 0);
        }
        // Separators only split: the same segments give the same m32.
        let a = directory_namekey_alg1(b"foo.bar") as u64 >> 32;
        let b = directory_namekey_alg1(b"foo-bar") as u64 >> 32;
        let c = directory_namekey_alg1(b"foo..bar") as u64 >> 32;
        assert_eq!(a, b);
        assert_eq!(a, c);
        // Default is ALG1.
        assert_eq!(directory_namekey(b"hello.txt"), directory_namekey_alg1(b"hello.txt"));
    }

    #[test]
    fn namekey_dispatch() {
        assert_eq!(directory_namekey_for(0, b"a"), Some((directory_namekey_alg0(b"a"), 0xFFFF_FFFF)));
        assert_eq!(
            directory_namekey_for(NEW_DIRECTORY_CAP_FLAGS, b"a"),
            Some((directory_namekey_alg1(b"a"), 0x00FF_FFFF))
        );
        assert_eq!(directory_namekey_for(HAMMER_INODE_CAP_DIRHASH_ALG2, b"a"), None);
        assert_eq!(new_directory_cap_flags(1), 0);
        assert_eq!(new_directory_cap_flags(2), HAMMER_INODE_CAP_DIR_LOCAL_INO);
        assert_eq!(new_directory_cap_flags(7), 0x05);
        assert_eq!(dir_entry_localization_type(0x05), HAMMER_LOCALIZE_INODE);
        assert_eq!(dir_entry_localization_type(0x00), HAMMER_LOCALIZE_MISC);
    }

    #[test]
    fn uid_uuid_mapping() {
        let u = uid_to_uuid_bytes(0x1234_5678);
        assert_eq!(u, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x78, 0x56, 0x34, 0x12]);
        assert_eq!(uuid_bytes_to_uid(&u), 0x1234_5678);
        assert_eq!(uid_to_uuid_bytes(0), [0u8; 16]);
        // Other bytes are ignored when reading back.
        let mut v = [0xAAu8; 16];
        v[12..16].copy_from_slice(&1001u32.to_le_bytes());
        assert_eq!(uuid_bytes_to_uid(&v), 1001);
    }

    fn sample_inode() -> InodeData {
        let mut ino = InodeData {
            version: HAMMER_INODE_DATA_VERSION,
            mode: 0o755,
            uflags: 0x11,
            rmajor: 3,
            rminor: 4,
            ctime: 0x0102_0304_0506_0708,
            parent_obj_id: -2,
            obj_type: HAMMER_OBJTYPE_DIRECTORY,
            cap_flags: NEW_DIRECTORY_CAP_FLAGS,
            reserved01: 0xBEEF,
            reserved02: 0xDEAD_BEEF,
            nlinks: 1,
            size: 0,
            mtime: 0x1112_1314_1516_1718,
            atime: 0x2122_2324_2526_2728,
            ..Default::default()
        };
        ino.set_unix_uid(1000);
        ino.set_unix_gid(20);
        for (i, b) in ino.ext.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        ino
    }

    #[test]
    fn inode_round_trip_and_offsets() {
        let ino = sample_inode();
        let b = ino.encode();
        assert_eq!(b.len(), InodeData::SIZE);
        assert_eq!(InodeData::decode(&b), Some(ino.clone()));
        assert_eq!(InodeData::decode(&b[..127]), None);

        assert_eq!(&b[0..2], &1u16.to_le_bytes());
        assert_eq!(&b[2..4], &0o755u16.to_le_bytes());
        assert_eq!(&b[16..24], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[24..32], &(-2i64).to_le_bytes());
        assert_eq!(&b[44..48], &1000u32.to_le_bytes()); // uid node[2]
        assert_eq!(&b[60..64], &20u32.to_le_bytes()); // gid node[2]
        assert_eq!(b[64], HAMMER_OBJTYPE_DIRECTORY);
        assert_eq!(b[65], 0x05);
        assert_eq!(&b[72..80], &1u64.to_le_bytes());
        assert_eq!(b[88], 1);
        assert_eq!(b[111], 24);
        assert_eq!(&b[112..120], &0x1112_1314_1516_1718u64.to_le_bytes());
        assert_eq!(&b[120..128], &0x2122_2324_2526_2728u64.to_le_bytes());
        assert_eq!(InodeData::CRC_SIZE, 112);
        assert_eq!(InodeData::crc_bytes(&b).len(), 112);
        assert_eq!(ino.unix_uid(), 1000);
        assert_eq!(ino.unix_gid(), 20);
        assert_eq!(ino.dirhash_alg(), HAMMER_INODE_CAP_DIRHASH_ALG1);
        // ext.obj.parent_obj_localization sits at ext[16..20] = bytes 104..108.
        assert_eq!(ino.ext_parent_obj_localization(), u32::from_le_bytes([17, 18, 19, 20]));
    }

    #[test]
    fn symlink_inline() {
        let mut ino = InodeData { obj_type: HAMMER_OBJTYPE_SOFTLINK, ..Default::default() };
        assert!(ino.set_symlink_inline(b"../target"));
        assert_eq!(ino.size, 9);
        assert_eq!(ino.symlink_inline(), Some(&b"../target"[..]));
        let exactly24 = [b'x'; 24];
        assert!(ino.set_symlink_inline(&exactly24));
        assert_eq!(ino.symlink_inline(), Some(&exactly24[..]));
        let round = InodeData::decode(&ino.encode()).unwrap();
        assert_eq!(round.symlink_inline(), Some(&exactly24[..]));
        // 25 bytes go to a FIX record.
        assert!(!ino.set_symlink_inline(&[b'y'; 25]));
        ino.size = 25;
        assert_eq!(ino.symlink_inline(), None);
        let dir = InodeData { obj_type: HAMMER_OBJTYPE_DIRECTORY, ..Default::default() };
        assert_eq!(dir.symlink_inline(), None);
    }

    #[test]
    fn direntry_round_trip() {
        let d = DirEntryData {
            obj_id: 0x0000_0001_0203_0405,
            localization: pfs_to_localization(3),
            reserved01: 0,
            name: b"hello.txt".to_vec(),
        };
        let b = d.encode();
        assert_eq!(b.len(), 16 + 9);
        assert_eq!(b.len(), hammer_entry_size(9));
        assert_eq!(&b[0..8], &0x0000_0001_0203_0405i64.to_le_bytes());
        assert_eq!(&b[8..12], &0x0003_0000u32.to_le_bytes());
        assert_eq!(&b[HAMMER_ENTRY_NAME_OFF..], b"hello.txt");
        assert_eq!(DirEntryData::decode(&b), Some(d));
        assert_eq!(DirEntryData::decode(&b[..15]), None);
        assert_eq!(DirEntryData::decode(&b[..16]).unwrap().name, Vec::<u8>::new());
        assert_eq!(localization_to_pfs(0x0003_0001), 3);
    }

    #[test]
    fn snapshot_data_round_trips_in_the_c_layout() {
        let s = SnapshotData::new(0x0000_0001_0203_0405, 1_700_000_000_000_000, b"before upgrade");
        let b = s.encode();
        assert_eq!(b.len(), SnapshotData::SIZE);
        assert_eq!(&b[0..8], &0x0000_0001_0203_0405u64.to_le_bytes());
        assert_eq!(&b[8..16], &1_700_000_000_000_000u64.to_le_bytes());
        assert_eq!(&b[16..32], &[0; 16], "reserved01/02");
        assert_eq!(&b[32..46], b"before upgrade");
        assert_eq!(&b[46..128], &[0; 82][..], "rest of the label and reserved03");
        assert_eq!(SnapshotData::decode(&b), Some(s));
        assert_eq!(SnapshotData::decode(&b[..127]), None);
        assert_eq!(s.label_str(), "before upgrade");
        assert_eq!(SnapshotData::new(1, 0, &[b'x'; 80]).label_str(), "x".repeat(63));
        assert_eq!(snapshot_record_key(u64::MAX), (1, 1, 0x16, -1), "the key is the TID, signed");
    }

    #[test]
    fn data_blocks() {
        assert_eq!(data_block_size(0), 16384);
        assert_eq!(data_block_size(HAMMER_XDEMARC - 1), 16384);
        assert_eq!(data_block_size(HAMMER_XDEMARC), 65536);
        assert_eq!(data_block_base(HAMMER_XDEMARC + 70000), HAMMER_XDEMARC + 65536);
        assert_eq!(data_block_offset(16384 + 5), 5);
        // Small file: one record rounded to 16 bytes.
        assert_eq!(data_record_len(0, 0), 0);
        assert_eq!(data_record_len(0, 1), 16);
        assert_eq!(data_record_len(0, 8192), 8192);
        // Larger file: full blocks, including the last partial one.
        assert_eq!(data_record_len(0, 8193), 16384);
        assert_eq!(data_record_len(16384, 20000), 16384);
        assert_eq!(data_record_len(HAMMER_XDEMARC, HAMMER_XDEMARC + 1), 65536);
        assert_eq!(data_record_key(0, 16), 16);
        assert_eq!(data_record_key(HAMMER_XDEMARC, 65536), (HAMMER_XDEMARC + 65536) as i64);
        assert_eq!(getattr_bytes(1), 16);
        assert_eq!(getattr_bytes(8193), 16384);
        assert_eq!(getattr_bytes(HAMMER_XDEMARC + 1), HAMMER_XDEMARC + 65536);
    }

    #[test]
    fn times_and_types() {
        assert_eq!(unix_to_hammer_time(1, 999_999_999), 1_999_999);
        assert_eq!(hammer_time_to_unix(1_999_999), (1, 999_999_000));
        assert_eq!(obj_type_from_unix_mode(0o040755), HAMMER_OBJTYPE_DIRECTORY);
        assert_eq!(obj_type_from_unix_mode(0o100644), HAMMER_OBJTYPE_REGFILE);
        assert_eq!(obj_type_from_unix_mode(0o120777), HAMMER_OBJTYPE_SOFTLINK);
        assert_eq!(obj_type_from_unix_mode(0o010644), HAMMER_OBJTYPE_FIFO);
        assert_eq!(obj_type_from_unix_mode(0o140755), HAMMER_OBJTYPE_SOCKET);
        assert_eq!(obj_type_from_unix_mode(0o020600), HAMMER_OBJTYPE_CDEV);
        assert_eq!(obj_type_from_unix_mode(0o060600), HAMMER_OBJTYPE_BDEV);
        for t in 1..=9u8 {
            let bits = unix_file_type_bits(t);
            if bits != 0 {
                assert_eq!(obj_type_from_unix_mode(bits), t);
            }
        }
    }
}
