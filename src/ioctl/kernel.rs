//! DragonFly's HAMMER ioctls: `#[repr(C)]` ABI structs, request numbers, safe wrappers, and [`KernelPfs`].
//!
//! [`KernelPfs`] is the kernel implementation of [`Pfs`]. The structs are
//! transcriptions of `sys/vfs/hammer/hammer_ioctl.h`, `hammer_disk.h`,
//! `hammer_btree.h` and `sys/sys/uuid.h` (see `scripts/hammer-abi/hammer_abi.h`
//! for the commits). Their x86_64 layout is asserted at compile time and
//! checked against what the C compiler makes of the C definitions
//! (`tests/fixtures/abi.txt`, printed by `scripts/hammer-abi/abi_check.c`).
//! The `ioctl(2)` calls below are the crate's only system calls made through
//! `unsafe`; their soundness rests on those layouts and on the user pointers
//! (`ondisk`, `ubuf`) being private fields that only borrowed buffers of the
//! right size can fill.
//!
//! On a system without HAMMER the request numbers mean nothing to the kernel:
//! [`KernelPfs::open`] only issues them on directories and regular files,
//! where Linux answers ENOTTY, reported as "not a HAMMER filesystem".

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{HEAD_ERROR, HEAD_INTR, MirrorRw, Pfs, PfsError, Result, SynctidOp};
use crate::mrecord::{BaseElm, PSEUDOFS_VERSION, PseudofsData};

// ---------------------------------------------------------------------------
// ABI structs

/// `struct uuid` (`sys/sys/uuid.h`): "A DCE 1.1 compatible source
/// representation of UUIDs." In memory, and so on the wire, the first three
/// fields are host-endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct uuid {
    pub time_low: u32,
    pub time_mid: u16,
    pub time_hi_and_version: u16,
    pub clock_seq_hi_and_reserved: u8,
    pub clock_seq_low: u8,
    pub node: [u8; 6],
}

impl uuid {
    /// The nil uuid (all zero).
    pub const NIL: uuid = uuid {
        time_low: 0,
        time_mid: 0,
        time_hi_and_version: 0,
        clock_seq_hi_and_reserved: 0,
        clock_seq_low: 0,
        node: [0; 6],
    };

    /// The struct whose memory is the 16 wire bytes `b` (see `mrecord::uuid_to_wire`).
    pub fn from_wire(b: &[u8; 16]) -> uuid {
        uuid {
            time_low: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            time_mid: u16::from_ne_bytes([b[4], b[5]]),
            time_hi_and_version: u16::from_ne_bytes([b[6], b[7]]),
            clock_seq_hi_and_reserved: b[8],
            clock_seq_low: b[9],
            node: [b[10], b[11], b[12], b[13], b[14], b[15]],
        }
    }

    /// The struct's memory: its wire bytes.
    pub fn to_wire(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.time_low.to_ne_bytes());
        b[4..6].copy_from_slice(&self.time_mid.to_ne_bytes());
        b[6..8].copy_from_slice(&self.time_hi_and_version.to_ne_bytes());
        b[8] = self.clock_seq_hi_and_reserved;
        b[9] = self.clock_seq_low;
        b[10..16].copy_from_slice(&self.node);
        b
    }
}

/// `struct hammer_base_elm` (`hammer_btree.h`): "Common base for all B-Tree
/// element types (40 bytes)".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct hammer_base_elm {
    /// "00 object record is associated with"
    pub obj_id: i64,
    /// "08 indexing key (offset or namekey)"
    pub key: i64,
    /// "10 transaction id for record creation"
    pub create_tid: u64,
    /// "18 transaction id for record update/del"
    pub delete_tid: u64,
    /// "20 _RECTYPE_"
    pub rec_type: u16,
    /// "22 _OBJTYPE_ (restricted)"
    pub obj_type: u8,
    /// "23 B-Tree element type"
    pub btype: u8,
    /// "24 B-Tree localization parameter"
    pub localization: u32,
}

impl From<&BaseElm> for hammer_base_elm {
    fn from(b: &BaseElm) -> Self {
        hammer_base_elm {
            obj_id: b.obj_id,
            key: b.key,
            create_tid: b.create_tid,
            delete_tid: b.delete_tid,
            rec_type: b.rec_type,
            obj_type: b.obj_type,
            btype: b.btype,
            localization: b.localization,
        }
    }
}

impl From<&hammer_base_elm> for BaseElm {
    fn from(b: &hammer_base_elm) -> Self {
        BaseElm {
            obj_id: b.obj_id,
            key: b.key,
            create_tid: b.create_tid,
            delete_tid: b.delete_tid,
            rec_type: b.rec_type,
            obj_type: b.obj_type,
            btype: b.btype,
            localization: b.localization,
        }
    }
}

/// `struct hammer_ioc_head` (`hammer_ioctl.h`): "Common HAMMER ioctl header.
/// Global flags are stored in the upper 16 bits."
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct hammer_ioc_head {
    pub flags: i32,
    pub error: i32,
    pub reserved01: [i32; 4],
}

/// `struct hammer_pseudofs_data` (`hammer_disk.h`), `__packed`: "We need to
/// pack this structure making it equally sized on both 32-bit and 64-bit
/// machines as it is part of struct hammer_ioc_mrecord_pfs which is send over
/// the wire in hammer mirror operations."
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub struct hammer_pseudofs_data {
    /// "full history beyond this point"
    pub sync_low_tid: u64,
    /// "earliest tid w/ full history avail"
    pub sync_beg_tid: u64,
    /// "current synchronizatoin point"
    pub sync_end_tid: u64,
    /// "real-time of last completed sync"
    pub sync_beg_ts: u64,
    /// "initiation of current sync cycle"
    pub sync_end_ts: u64,
    /// "shared uuid (match required)"
    pub shared_uuid: uuid,
    /// "unique uuid of this master/slave"
    pub unique_uuid: uuid,
    /// "reserved for future master_id"
    pub reserved01: i32,
    /// "misc flags"
    pub mirror_flags: i32,
    /// "filesystem space label"
    pub label: [u8; 64],
    /// "softlink dir for pruning"
    pub snapshots: [u8; 64],
    /// "was prune_{time,freq}"
    pub reserved02: i32,
    /// "was reblock_{time,freq}"
    pub reserved03: i32,
    /// "was snapshot_freq"
    pub reserved04: i32,
    /// "do not prune recent history"
    pub prune_min: i32,
    /// "do not retain history beyond here"
    pub prune_max: i32,
    pub reserved: [i32; 16],
}

impl hammer_pseudofs_data {
    pub const fn zeroed() -> Self {
        hammer_pseudofs_data {
            sync_low_tid: 0,
            sync_beg_tid: 0,
            sync_end_tid: 0,
            sync_beg_ts: 0,
            sync_end_ts: 0,
            shared_uuid: uuid::NIL,
            unique_uuid: uuid::NIL,
            reserved01: 0,
            mirror_flags: 0,
            label: [0; 64],
            snapshots: [0; 64],
            reserved02: 0,
            reserved03: 0,
            reserved04: 0,
            prune_min: 0,
            prune_max: 0,
            reserved: [0; 16],
        }
    }
}

impl From<&PseudofsData> for hammer_pseudofs_data {
    fn from(p: &PseudofsData) -> Self {
        let mut reserved = [0i32; 16];
        for (r, c) in reserved.iter_mut().zip(p.reserved.chunks_exact(4)) {
            *r = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        }
        hammer_pseudofs_data {
            sync_low_tid: p.sync_low_tid,
            sync_beg_tid: p.sync_beg_tid,
            sync_end_tid: p.sync_end_tid,
            sync_beg_ts: p.sync_beg_ts,
            sync_end_ts: p.sync_end_ts,
            shared_uuid: uuid::from_wire(&p.shared_uuid),
            unique_uuid: uuid::from_wire(&p.unique_uuid),
            reserved01: p.reserved01,
            mirror_flags: p.mirror_flags as i32,
            label: p.label,
            snapshots: p.snapshots,
            reserved02: p.reserved02,
            reserved03: p.reserved03,
            reserved04: p.reserved04,
            prune_min: p.prune_min,
            prune_max: p.prune_max,
            reserved,
        }
    }
}

impl From<&hammer_pseudofs_data> for PseudofsData {
    fn from(d: &hammer_pseudofs_data) -> Self {
        // Fields of a packed struct are copied out by value, never borrowed.
        let (shared, unique, res) = (d.shared_uuid, d.unique_uuid, d.reserved);
        let mut reserved = [0u8; 64];
        for (c, r) in reserved.chunks_exact_mut(4).zip(res) {
            c.copy_from_slice(&r.to_ne_bytes());
        }
        PseudofsData {
            sync_low_tid: d.sync_low_tid,
            sync_beg_tid: d.sync_beg_tid,
            sync_end_tid: d.sync_end_tid,
            sync_beg_ts: d.sync_beg_ts,
            sync_end_ts: d.sync_end_ts,
            shared_uuid: shared.to_wire(),
            unique_uuid: unique.to_wire(),
            reserved01: d.reserved01,
            mirror_flags: d.mirror_flags as u32,
            label: d.label,
            snapshots: d.snapshots,
            reserved02: d.reserved02,
            reserved03: d.reserved03,
            reserved04: d.reserved04,
            prune_min: d.prune_min,
            prune_max: d.prune_max,
            reserved,
        }
    }
}

/// `struct hammer_ioc_pseudofs_rw` (`hammer_ioctl.h`): the argument of
/// GET/SET/UPG/DGD/RMR/WAI_PSEUDOFS. `ondisk` is a user pointer to a
/// `hammer_pseudofs_data` borrowed for `'a`.
#[repr(C)]
#[derive(Debug)]
pub struct hammer_ioc_pseudofs_rw<'a> {
    pub head: hammer_ioc_head,
    pub pfs_id: c_int,
    /// Must be at least `sizeof(struct hammer_pseudofs_data)`.
    pub bytes: u32,
    pub version: u32,
    pub reserved01: u32,
    ondisk: *mut hammer_pseudofs_data,
    _ondisk: PhantomData<&'a mut hammer_pseudofs_data>,
}

impl<'a> hammer_ioc_pseudofs_rw<'a> {
    /// As `clrpfs()` in sbin/hammer sets it up: head zeroed, `bytes` =
    /// 292, `version` = 1, `ondisk` = `pfsd`.
    pub fn new(pfs_id: i32, pfsd: &'a mut hammer_pseudofs_data) -> Self {
        hammer_ioc_pseudofs_rw {
            head: hammer_ioc_head::default(),
            pfs_id,
            bytes: size_of::<hammer_pseudofs_data>() as u32,
            version: PSEUDOFS_VERSION,
            reserved01: 0,
            ondisk: pfsd,
            _ondisk: PhantomData,
        }
    }
}

/// `enum hammer_synctid_op` as the C `int` it is.
pub type hammer_synctid_op = c_int;

/// `struct hammer_ioc_synctid` (`hammer_ioctl.h`): HAMMERIOC_SYNCTID.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct hammer_ioc_synctid {
    pub head: hammer_ioc_head,
    pub op: hammer_synctid_op,
    pub tid: u64,
}

/// `struct hammer_ioc_mirror_rw` (`hammer_ioctl.h`): the argument of
/// MIRROR_READ/WRITE. `ubuf`/`count`/`size` describe a buffer borrowed for
/// `'a` and are set only by [`Self::reading`] and [`Self::writing`].
#[repr(C)]
#[derive(Debug)]
pub struct hammer_ioc_mirror_rw<'a> {
    pub head: hammer_ioc_head,
    /// "start forward scan"
    pub key_beg: hammer_base_elm,
    /// "stop forward scan"
    pub key_end: hammer_base_elm,
    /// "interruption point"
    pub key_cur: hammer_base_elm,
    /// "filter modification range"
    pub tid_beg: u64,
    /// "filter modification range"
    pub tid_end: u64,
    /// "user buffer"
    ubuf: *mut c_void,
    /// "current size"
    count: c_int,
    /// "max size"
    size: c_int,
    /// "PFS id being read/written"
    pub pfs_id: c_int,
    pub reserved01: c_int,
    /// "validator for safety"
    pub shared_uuid: uuid,
    _ubuf: PhantomData<&'a [u8]>,
}

impl<'a> hammer_ioc_mirror_rw<'a> {
    fn with_buffer(m: &MirrorRw, ubuf: *mut c_void, size: c_int) -> Self {
        hammer_ioc_mirror_rw {
            head: hammer_ioc_head { flags: m.flags as i32, error: m.error, reserved01: [0; 4] },
            key_beg: (&m.key_beg).into(),
            key_end: (&m.key_end).into(),
            key_cur: (&m.key_cur).into(),
            tid_beg: m.tid_beg,
            tid_end: m.tid_end,
            ubuf,
            count: 0,
            size,
            pfs_id: m.pfs_id,
            reserved01: 0,
            shared_uuid: uuid::from_wire(&m.shared_uuid),
            _ubuf: PhantomData,
        }
    }

    /// A MIRROR_READ into `buf` (at most `i32::MAX` bytes of it are used).
    pub fn reading(m: &MirrorRw, buf: &'a mut [u8]) -> Self {
        let size = buf.len().min(c_int::MAX as usize) as c_int;
        Self::with_buffer(m, buf.as_mut_ptr().cast(), size)
    }

    /// A MIRROR_WRITE of the records in `buf`. The kernel only reads through
    /// `ubuf` for this request (copyin), so a shared borrow is enough.
    pub fn writing(m: &MirrorRw, buf: &'a [u8]) -> Self {
        let size = buf.len().min(c_int::MAX as usize) as c_int;
        Self::with_buffer(m, buf.as_ptr().cast_mut().cast(), size)
    }

    /// `count`: bytes the kernel filled (read) or consumed (write).
    pub fn count(&self) -> c_int {
        self.count
    }

    /// `size`: the buffer length handed to the kernel.
    pub fn size(&self) -> c_int {
        self.size
    }

    /// Copies what the kernel reports back into `m`: head flags and error,
    /// and `key_cur`.
    pub fn copy_back(&self, m: &mut MirrorRw) {
        m.flags = self.head.flags as u32;
        m.error = self.head.error;
        m.key_cur = (&self.key_cur).into();
    }
}

/// Asserts the x86_64 layout of every ABI struct at compile time (values of
/// wire.md §2) and lists it for the comparison with `abi.txt` in the tests.
macro_rules! abi_layout {
    ($($name:literal => $t:ty { size $size:literal, align $align:literal; $($f:ident @ $off:literal),* $(,)? })*) => {
        #[cfg(target_pointer_width = "64")]
        const _: () = {
            $(
                assert!(size_of::<$t>() == $size);
                assert!(align_of::<$t>() == $align);
                $( assert!(offset_of!($t, $f) == $off); )*
            )*
        };

        /// `(name, value)` in the form abi_check.c prints, from the Rust definitions.
        #[cfg(test)]
        fn rust_layout() -> Vec<(String, usize)> {
            let mut v = Vec::new();
            $(
                v.push((format!("sizeof.{}", $name), size_of::<$t>()));
                v.push((format!("alignof.{}", $name), align_of::<$t>()));
                $( v.push((format!("offsetof.{}.{}", $name, stringify!($f)), offset_of!($t, $f))); )*
            )*
            v
        }
    };
}

abi_layout! {
    "uuid" => uuid { size 16, align 4;
        time_low @ 0, time_mid @ 4, time_hi_and_version @ 6, clock_seq_hi_and_reserved @ 8,
        clock_seq_low @ 9, node @ 10 }
    "hammer_base_elm" => hammer_base_elm { size 40, align 8;
        obj_id @ 0, key @ 8, create_tid @ 16, delete_tid @ 24, rec_type @ 32, obj_type @ 34, btype @ 35,
        localization @ 36 }
    "hammer_ioc_head" => hammer_ioc_head { size 24, align 4;
        flags @ 0, error @ 4, reserved01 @ 8 }
    "hammer_pseudofs_data" => hammer_pseudofs_data { size 292, align 1;
        sync_low_tid @ 0, sync_beg_tid @ 8, sync_end_tid @ 16, sync_beg_ts @ 24, sync_end_ts @ 32,
        shared_uuid @ 40, unique_uuid @ 56, reserved01 @ 72, mirror_flags @ 76, label @ 80, snapshots @ 144,
        reserved02 @ 208, reserved03 @ 212, reserved04 @ 216, prune_min @ 220, prune_max @ 224, reserved @ 228 }
    "hammer_ioc_pseudofs_rw" => hammer_ioc_pseudofs_rw<'static> { size 48, align 8;
        head @ 0, pfs_id @ 24, bytes @ 28, version @ 32, reserved01 @ 36, ondisk @ 40 }
    "hammer_ioc_synctid" => hammer_ioc_synctid { size 40, align 8;
        head @ 0, op @ 24, tid @ 32 }
    "hammer_ioc_mirror_rw" => hammer_ioc_mirror_rw<'static> { size 200, align 8;
        head @ 0, key_beg @ 24, key_end @ 64, key_cur @ 104, tid_beg @ 144, tid_end @ 152, ubuf @ 160,
        count @ 168, size @ 172, pfs_id @ 176, reserved01 @ 180, shared_uuid @ 184 }
}

// ---------------------------------------------------------------------------
// Request numbers (sys/sys/ioccom.h)

/// `IOCPARM_MASK`: "parameter length, at most 13 bits".
pub const IOCPARM_MASK: u64 = 0x1fff;
/// `IOC_VOID`: "no parameters".
pub const IOC_VOID: u64 = 0x2000_0000;
/// `IOC_OUT`: "copy out parameters".
pub const IOC_OUT: u64 = 0x4000_0000;
/// `IOC_IN`: "copy in parameters".
pub const IOC_IN: u64 = 0x8000_0000;
/// `IOC_INOUT`.
pub const IOC_INOUT: u64 = IOC_IN | IOC_OUT;

/// `_IOC(inout, group, num, len)`.
pub const fn ioc(inout: u64, group: u8, num: u8, len: usize) -> u64 {
    inout | ((len as u64 & IOCPARM_MASK) << 16) | ((group as u64) << 8) | num as u64
}

/// `_IOWR(group, num, t)` with `len = sizeof(t)`.
pub const fn iowr(group: u8, num: u8, len: usize) -> u64 {
    ioc(IOC_INOUT, group, num, len)
}

/// `_IOR(group, num, t)` with `len = sizeof(t)`.
pub const fn ior(group: u8, num: u8, len: usize) -> u64 {
    ioc(IOC_OUT, group, num, len)
}

const PFS_RW: usize = size_of::<hammer_ioc_pseudofs_rw<'static>>();
const MIRROR_RW: usize = size_of::<hammer_ioc_mirror_rw<'static>>();

pub const HAMMERIOC_SYNCTID: u64 = iowr(b'h', 4, size_of::<hammer_ioc_synctid>());
pub const HAMMERIOC_SET_PSEUDOFS: u64 = iowr(b'h', 5, PFS_RW);
pub const HAMMERIOC_GET_PSEUDOFS: u64 = iowr(b'h', 6, PFS_RW);
pub const HAMMERIOC_MIRROR_READ: u64 = iowr(b'h', 7, MIRROR_RW);
pub const HAMMERIOC_MIRROR_WRITE: u64 = iowr(b'h', 8, MIRROR_RW);
pub const HAMMERIOC_UPG_PSEUDOFS: u64 = iowr(b'h', 9, PFS_RW);
pub const HAMMERIOC_DGD_PSEUDOFS: u64 = iowr(b'h', 10, PFS_RW);
pub const HAMMERIOC_RMR_PSEUDOFS: u64 = iowr(b'h', 11, PFS_RW);
pub const HAMMERIOC_WAI_PSEUDOFS: u64 = iowr(b'h', 12, PFS_RW);

// ---------------------------------------------------------------------------
// One safe function per ioctl

fn check(rc: c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Defines a safe wrapper around one HAMMER ioctl whose argument is `$arg`.
///
/// Soundness: `arg` is an exclusive borrow of a `#[repr(C)]` struct whose
/// layout is the kernel's (asserted above), of exactly the size encoded in
/// the request number, so the kernel's copyin/copyout of the struct stays in
/// bounds. The user pointers inside (`ondisk`, `ubuf`) are private fields set
/// only from borrowed buffers that outlive the struct: `ondisk` to a whole
/// `hammer_pseudofs_data` (the kernel copies exactly its 292 bytes), `ubuf`
/// to `size` bytes starting at `count` = 0. The wrappers are private and only
/// called on a file [`KernelPfs::open`] checked to be a directory or regular
/// file, on which no other system assigns these numbers.
macro_rules! hammer_ioctl {
    ($(#[$doc:meta])* fn $name:ident($request:ident, $arg:ty)) => {
        $(#[$doc])*
        fn $name(fd: &File, arg: &mut $arg) -> io::Result<()> {
            // SAFETY: see the macro's documentation: `arg` is a valid, exclusively
            // borrowed argument of the size and layout `$request` encodes.
            check(unsafe { libc::ioctl(fd.as_raw_fd(), $request as _, std::ptr::from_mut(arg)) })
        }
    };
}

hammer_ioctl!(
    /// HAMMERIOC_SYNCTID: flush per `arg.op`, return the TID in `arg.tid`.
    fn ioc_synctid(HAMMERIOC_SYNCTID, hammer_ioc_synctid)
);
hammer_ioctl!(
    /// HAMMERIOC_SET_PSEUDOFS: store `*arg.ondisk` for `arg.pfs_id`.
    fn ioc_set_pseudofs(HAMMERIOC_SET_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_GET_PSEUDOFS: fill `*arg.ondisk` (`pfs_id` -1: the fd's PFS).
    fn ioc_get_pseudofs(HAMMERIOC_GET_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_MIRROR_READ: fill `ubuf` with REC/PASS/SKIP records.
    fn ioc_mirror_read(HAMMERIOC_MIRROR_READ, hammer_ioc_mirror_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_MIRROR_WRITE: apply the REC/PASS/SKIP records in `ubuf`.
    fn ioc_mirror_write(HAMMERIOC_MIRROR_WRITE, hammer_ioc_mirror_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_UPG_PSEUDOFS: slave to master.
    fn ioc_upg_pseudofs(HAMMERIOC_UPG_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_DGD_PSEUDOFS: master to slave.
    fn ioc_dgd_pseudofs(HAMMERIOC_DGD_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_RMR_PSEUDOFS: destroy the PFS's records.
    fn ioc_rmr_pseudofs(HAMMERIOC_RMR_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);
hammer_ioctl!(
    /// HAMMERIOC_WAI_PSEUDOFS: sleep until the PFS passes `ondisk->sync_end_tid`.
    fn ioc_wai_pseudofs(HAMMERIOC_WAI_PSEUDOFS, hammer_ioc_pseudofs_rw<'_>)
);

// ---------------------------------------------------------------------------
// KernelPfs

/// A PFS of a mounted HAMMER filesystem, reached through ioctls on `file`.
#[derive(Debug)]
pub struct KernelPfs {
    /// The path it was opened by (for messages).
    path: PathBuf,
    /// The PFS root, or for a `@@PFS%05d` softlink its parent directory (any
    /// HAMMER vnode serves once `pfs_id` is known).
    file: File,
    pfs_id: i32,
}

/// `path` without trailing slashes (but "/" stays), as getpfs()'s strtrl().
fn trim_trailing_slashes(path: &Path) -> PathBuf {
    let mut b = path.as_os_str().as_bytes();
    while b.len() > 1 && b.ends_with(b"/") {
        b = &b[..b.len() - 1];
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// The PFS id a softlink's text names: `@@PFS%d` or `@@%jx:%d` (the form a
/// HAMMER mount shows), as getpfs() reads them with sscanf().
fn link_pfs_id(text: &[u8]) -> Option<i32> {
    fn int_prefix(b: &[u8]) -> Option<i32> {
        let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
        let digits = b[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        std::str::from_utf8(&b[..sign + digits]).ok()?.parse().ok()
    }
    if let Some(rest) = text.strip_prefix(b"@@PFS") {
        return int_prefix(rest);
    }
    let rest = text.strip_prefix(b"@@")?;
    let rest = rest.strip_prefix(b"0x").or_else(|| rest.strip_prefix(b"0X")).unwrap_or(rest);
    let hex = rest.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if hex == 0 {
        return None;
    }
    int_prefix(rest[hex..].strip_prefix(b":")?)
}

/// getdir(): the directory holding `path` ("." for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// True for the errors a file that is not on HAMMER answers a HAMMER ioctl with.
fn not_hammer_errno(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| n == libc::ENOTTY || n == libc::ENOTSUP || n == libc::EOPNOTSUPP)
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

impl KernelPfs {
    /// Opens the PFS at `path` as sbin/hammer's getpfs() does: a `@@PFS%05d`
    /// (or `@@0x%016jx:%05d`) softlink names its PFS id and is reached
    /// through its parent directory; anything else is opened and asked for
    /// its PFS (GET_PSEUDOFS with pfs_id -1).
    pub fn open(path: &Path) -> Result<KernelPfs, PfsError> {
        let not_hammer = || PfsError::NotHammer { path: path.to_path_buf() };
        let trimmed = trim_trailing_slashes(path);
        let linked = match trimmed.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::read_link(&trimmed).ok().and_then(|t| link_pfs_id(t.as_os_str().as_bytes()))
            }
            _ => None,
        };
        let (target, pfs_id) = match linked {
            Some(id) => (parent_dir(&trimmed), id),
            None => (trimmed, -1),
        };

        // O_NONBLOCK: a FIFO must not block the open; it is refused below.
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&target).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PfsError::NotFound { path: path.to_path_buf() }
            } else {
                PfsError::io(path, "open", e)
            }
        })?;
        let ft = file.metadata().map_err(|e| PfsError::io(path, "stat", e))?.file_type();
        if !ft.is_dir() && !ft.is_file() {
            return Err(not_hammer());
        }

        let mut pfsd = hammer_pseudofs_data::zeroed();
        let mut arg = hammer_ioc_pseudofs_rw::new(pfs_id, &mut pfsd);
        match ioc_get_pseudofs(&file, &mut arg) {
            Ok(()) => {}
            Err(e) if not_hammer_errno(&e) => return Err(not_hammer()),
            // Autodetection cannot be out of range on HAMMER: EINVAL comes from elsewhere.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && pfs_id == -1 => return Err(not_hammer()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Err(PfsError::invalid(path, "HAMMERIOC_GET_PSEUDOFS", format!("PFS id {pfs_id} out of range")));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(PfsError::NotFound { path: path.to_path_buf() });
            }
            Err(e) => return Err(PfsError::io(path, "HAMMERIOC_GET_PSEUDOFS", e)),
        }
        let pfs_id = arg.pfs_id;
        Ok(KernelPfs { path: path.to_path_buf(), file, pfs_id })
    }

    fn err(&self, op: &'static str, e: io::Error) -> PfsError {
        if not_hammer_errno(&e) {
            PfsError::NotHammer { path: self.path.clone() }
        } else if e.raw_os_error() == Some(libc::ENOENT) {
            PfsError::NotFound { path: self.path.clone() }
        } else {
            PfsError::io(&self.path, op, e)
        }
    }

    fn interrupted(&self, op: &'static str) -> PfsError {
        PfsError::io(&self.path, op, io::Error::from_raw_os_error(libc::EINTR))
    }

    /// One of the PFS ioctls whose only input is the PFS id.
    fn pfs_op(
        &self,
        op: &'static str,
        ioctl: fn(&File, &mut hammer_ioc_pseudofs_rw<'_>) -> io::Result<()>,
    ) -> Result<()> {
        let mut pfsd = hammer_pseudofs_data::zeroed();
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut pfsd);
        ioctl(&self.file, &mut arg).map_err(|e| self.err(op, e))?;
        if arg.head.flags as u32 & HEAD_INTR != 0 {
            return Err(self.interrupted(op));
        }
        Ok(())
    }
}

impl Pfs for KernelPfs {
    fn path(&self) -> &Path {
        &self.path
    }

    fn pfs_id(&self) -> i32 {
        self.pfs_id
    }

    fn get_pseudofs(&self) -> Result<PseudofsData> {
        let mut pfsd = hammer_pseudofs_data::zeroed();
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut pfsd);
        ioc_get_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_GET_PSEUDOFS", e))?;
        Ok(PseudofsData::from(&pfsd))
    }

    fn set_pseudofs(&mut self, pfsd: &PseudofsData) -> Result<()> {
        let mut d = hammer_pseudofs_data::from(pfsd);
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut d);
        ioc_set_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_SET_PSEUDOFS", e))
    }

    /// The kernel's wait has no timeout: it returns when the PFS moves past
    /// `pfsd.sync_end_tid` (true) or a signal interrupts it (false).
    fn wait_pseudofs(&self, pfsd: &PseudofsData, _timeout: Option<Duration>) -> Result<bool> {
        let mut d = hammer_pseudofs_data::from(pfsd);
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut d);
        ioc_wai_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_WAI_PSEUDOFS", e))?;
        Ok(arg.head.flags as u32 & HEAD_INTR == 0)
    }

    fn mirror_read(&self, m: &mut MirrorRw, buf: &mut [u8]) -> Result<usize> {
        let mut arg = hammer_ioc_mirror_rw::reading(m, buf);
        ioc_mirror_read(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_MIRROR_READ", e))?;
        arg.copy_back(m);
        match usize::try_from(arg.count()) {
            Ok(n) if n <= arg.size() as usize => Ok(n),
            _ => Err(PfsError::invalid(
                &self.path,
                "HAMMERIOC_MIRROR_READ",
                format!("kernel returned count {} for a buffer of {}", arg.count(), arg.size()),
            )),
        }
    }

    fn mirror_write(&mut self, m: &mut MirrorRw, buf: &[u8]) -> Result<()> {
        // hammer_ioc_mirror_write() refuses larger buffers with EINVAL.
        if buf.len() > 0x7000_0000 {
            return Err(PfsError::invalid(
                &self.path,
                "mirror-write",
                format!("batch of {} bytes is larger than the kernel accepts", buf.len()),
            ));
        }
        let mut arg = hammer_ioc_mirror_rw::writing(m, buf);
        ioc_mirror_write(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_MIRROR_WRITE", e))?;
        arg.copy_back(m);
        if m.flags & HEAD_ERROR != 0 {
            let k = &m.key_cur;
            return Err(PfsError::invalid(
                &self.path,
                "mirror-write",
                format!(
                    "the kernel refused the record at batch byte {}: {} (errno {}); applied up to \
                     obj={:016x} key={:016x} rt={:02x} localization={:08x} create_tid={:016x}",
                    arg.count(),
                    errno_text(m.error),
                    m.error,
                    k.obj_id as u64,
                    k.key as u64,
                    k.rec_type,
                    k.localization,
                    k.create_tid
                ),
            ));
        }
        Ok(())
    }

    fn synctid(&mut self, op: SynctidOp) -> Result<u64> {
        let mut arg = hammer_ioc_synctid { op: op as hammer_synctid_op, ..Default::default() };
        ioc_synctid(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_SYNCTID", e))?;
        Ok(arg.tid)
    }

    fn upgrade(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_UPG_PSEUDOFS", ioc_upg_pseudofs)
    }

    fn downgrade(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_DGD_PSEUDOFS", ioc_dgd_pseudofs)
    }

    fn destroy(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_RMR_PSEUDOFS", ioc_rmr_pseudofs)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::hammerfs::{HAMMER_LOCALIZE_MASK, HAMMER_XBUFSIZE};
    use crate::mrecord::{set_c_str, uuid_to_wire};

    /// `tests/fixtures/abi.txt`, printed by scripts/hammer-abi/abi_check.c.
    fn abi_txt() -> HashMap<&'static str, u64> {
        include_str!("../../tests/fixtures/abi.txt")
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').expect("name value");
                let v = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => v.parse(),
                };
                (k, v.expect("a number"))
            })
            .collect()
    }

    #[test]
    fn request_numbers_match_wire_md() {
        assert_eq!(HAMMERIOC_SYNCTID, 0xC028_6804);
        assert_eq!(HAMMERIOC_SET_PSEUDOFS, 0xC030_6805);
        assert_eq!(HAMMERIOC_GET_PSEUDOFS, 0xC030_6806);
        assert_eq!(HAMMERIOC_MIRROR_READ, 0xC0C8_6807);
        assert_eq!(HAMMERIOC_MIRROR_WRITE, 0xC0C8_6808);
        assert_eq!(HAMMERIOC_UPG_PSEUDOFS, 0xC030_6809);
        assert_eq!(HAMMERIOC_DGD_PSEUDOFS, 0xC030_680A);
        assert_eq!(HAMMERIOC_RMR_PSEUDOFS, 0xC030_680B);
        assert_eq!(HAMMERIOC_WAI_PSEUDOFS, 0xC030_680C);
        // wire.md §1: GET_VERSION (hammer_ioc_version, 104 bytes) and the _IOR GET_INFO (296 bytes).
        assert_eq!(iowr(b'h', 13, 104), 0xC068_680D);
        assert_eq!(ior(b'h', 16, 296), 0x4128_6810);
        assert_eq!(ioc(IOC_VOID, b'h', 1, 0), 0x2000_6801);
        // The length is masked to 13 bits, as _IOC does.
        assert_eq!(iowr(b'h', 1, 0x2000 + 8), iowr(b'h', 1, 8));
    }

    #[test]
    fn request_numbers_match_the_c_helper() {
        let abi = abi_txt();
        for (name, ours) in [
            ("HAMMERIOC_SYNCTID", HAMMERIOC_SYNCTID),
            ("HAMMERIOC_SET_PSEUDOFS", HAMMERIOC_SET_PSEUDOFS),
            ("HAMMERIOC_GET_PSEUDOFS", HAMMERIOC_GET_PSEUDOFS),
            ("HAMMERIOC_MIRROR_READ", HAMMERIOC_MIRROR_READ),
            ("HAMMERIOC_MIRROR_WRITE", HAMMERIOC_MIRROR_WRITE),
            ("HAMMERIOC_UPG_PSEUDOFS", HAMMERIOC_UPG_PSEUDOFS),
            ("HAMMERIOC_DGD_PSEUDOFS", HAMMERIOC_DGD_PSEUDOFS),
            ("HAMMERIOC_RMR_PSEUDOFS", HAMMERIOC_RMR_PSEUDOFS),
            ("HAMMERIOC_WAI_PSEUDOFS", HAMMERIOC_WAI_PSEUDOFS),
        ] {
            assert_eq!(Some(&ours), abi.get(name), "{name}");
        }
        assert_eq!(abi["HAMMER_IOC_HEAD_ERROR"], u64::from(HEAD_ERROR));
        assert_eq!(abi["HAMMER_IOC_HEAD_INTR"], u64::from(HEAD_INTR));
        assert_eq!(abi["HAMMER_IOC_MIRROR_NODATA"], u64::from(super::super::MIRROR_NODATA));
        assert_eq!(abi["HAMMER_IOC_PSEUDOFS_VERSION"], u64::from(PSEUDOFS_VERSION));
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn struct_layouts_match_the_c_compiler() {
        let abi = abi_txt();
        let layout = rust_layout();
        assert!(layout.len() > 60);
        for (name, ours) in layout {
            assert_eq!(abi.get(name.as_str()), Some(&(ours as u64)), "{name}");
        }
    }

    #[test]
    fn mrecord_sizes_match_the_c_compiler() {
        use crate::mrecord as r;
        let abi = abi_txt();
        for (name, ours) in [
            ("sizeof.hammer_ioc_mrecord_head", r::HEAD_SIZE),
            ("HAMMER_MREC_CRCOFF", r::CRC_OFF),
            ("HAMMER_HEAD_ALIGN", r::HEAD_ALIGN),
            ("HAMMER_XBUFSIZE", HAMMER_XBUFSIZE),
            ("sizeof.hammer_ioc_mrecord_rec", r::REC_SIZE),
            ("sizeof.hammer_ioc_mrecord_skip", r::SKIP_SIZE),
            ("sizeof.hammer_ioc_mrecord_update", r::UPDATE_SIZE),
            ("sizeof.hammer_ioc_mrecord_pfs", r::PFSD_SIZE),
            ("sizeof.hammer_ioc_mrecord_any", r::MRECORD_ANY_SIZE),
            ("sizeof.hammer_base_elm", BaseElm::SIZE),
            ("sizeof.hammer_btree_leaf_elm", r::LeafElm::SIZE),
            ("sizeof.hammer_pseudofs_data", PseudofsData::SIZE),
        ] {
            assert_eq!(abi[name], ours as u64, "{name}");
        }
        assert_eq!(abi["HAMMER_IOC_MIRROR_SIGNATURE"], u64::from(r::SIGNATURE));
        assert_eq!(abi["HAMMER_IOC_MIRROR_SIGNATURE_REV"], u64::from(r::SIGNATURE_REV));
        assert_eq!(abi["HAMMER_MREC_TYPE_REC_BADCRC"], u64::from(r::rtype::REC_BADCRC));
        assert_eq!(abi["HAMMER_MREC_TYPE_REC_NODATA"], u64::from(r::rtype::REC_NODATA));
    }

    #[test]
    fn open_on_a_regular_file_is_not_hammer() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = KernelPfs::open(f.path()).unwrap_err();
        assert!(matches!(err, PfsError::NotHammer { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("{}: not a HAMMER filesystem", f.path().display()));
    }

    #[test]
    fn open_on_a_directory_or_pfs_softlink_is_not_hammer() {
        let dir = tempfile::tempdir().unwrap();
        let err = KernelPfs::open(dir.path()).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: not a HAMMER filesystem", dir.path().display()));

        // The link's target does not exist: the ioctl goes to the parent directory.
        let link = dir.path().join("pfs");
        std::os::unix::fs::symlink("@@PFS00003", &link).unwrap();
        let with_slash = PathBuf::from(format!("{}/", link.display()));
        let err = KernelPfs::open(&with_slash).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: not a HAMMER filesystem", with_slash.display()));

        let missing = dir.path().join("missing");
        assert!(matches!(KernelPfs::open(&missing), Err(PfsError::NotFound { .. })));
    }

    #[test]
    fn pfs_softlink_text_is_parsed_like_sscanf() {
        assert_eq!(link_pfs_id(b"@@PFS00003"), Some(3));
        assert_eq!(link_pfs_id(b"@@PFS65535"), Some(65535));
        assert_eq!(link_pfs_id(b"@@0x00000001061a8ba0:00005"), Some(5));
        assert_eq!(link_pfs_id(b"@@-1:00007"), None);
        assert_eq!(link_pfs_id(b"@@PFS"), None);
        assert_eq!(link_pfs_id(b"/some/dir"), None);
        assert_eq!(trim_trailing_slashes(Path::new("a/b//")), PathBuf::from("a/b"));
        assert_eq!(trim_trailing_slashes(Path::new("/")), PathBuf::from("/"));
        assert_eq!(parent_dir(Path::new("pfs")), PathBuf::from("."));
        assert_eq!(parent_dir(Path::new("/pfs")), PathBuf::from("/"));
    }

    fn sample_pfsd() -> PseudofsData {
        let mut p = PseudofsData {
            sync_low_tid: 0x0102_0304_0506_0708,
            sync_beg_tid: 0xc0ff_ee00_0000_1000,
            sync_end_tid: u64::MAX - 1,
            sync_beg_ts: 0x1111,
            sync_end_ts: 0x2222,
            shared_uuid: uuid_to_wire(&::uuid::Uuid::parse_str("3f2504e0-4f89-11d3-9a0c-0305e82c3301").unwrap()),
            unique_uuid: uuid_to_wire(&::uuid::Uuid::parse_str("c0ffee00-1234-4567-89ab-cdef01234567").unwrap()),
            reserved01: -1,
            mirror_flags: 0x8000_0001,
            reserved02: 2,
            reserved03: -3,
            reserved04: 4,
            prune_min: 86400,
            prune_max: i32::MAX,
            ..Default::default()
        };
        set_c_str(&mut p.label, b"label");
        set_c_str(&mut p.snapshots, b"/snaps");
        for (i, b) in p.reserved.iter_mut().enumerate() {
            *b = i as u8 ^ 0xa5;
        }
        p
    }

    #[test]
    fn pseudofs_data_round_trips() {
        let p = sample_pfsd();
        let c = hammer_pseudofs_data::from(&p);
        let (beg, flags, uu) = (c.sync_beg_tid, c.mirror_flags, c.shared_uuid);
        assert_eq!(beg, p.sync_beg_tid);
        assert_eq!(flags, 0x8000_0001u32 as i32);
        // The uuid struct holds the uuid's fields as numbers.
        assert_eq!((uu.time_low, uu.time_mid, uu.time_hi_and_version), (0x3f25_04e0, 0x4f89, 0x11d3));
        assert_eq!(
            (uu.clock_seq_hi_and_reserved, uu.clock_seq_low, uu.node),
            (0x9a, 0x0c, [3, 5, 0xe8, 0x2c, 0x33, 1])
        );
        assert_eq!(PseudofsData::from(&c), p);
        assert_eq!(PseudofsData::from(&hammer_pseudofs_data::zeroed()), PseudofsData::default());
    }

    #[test]
    fn mirror_rw_round_trips() {
        let mut m = MirrorRw::for_read(0x10, 0x20);
        m.flags = super::super::MIRROR_NODATA;
        m.pfs_id = 5;
        m.shared_uuid = sample_pfsd().shared_uuid;
        m.key_cur = BaseElm { obj_id: -5, key: i64::MIN, localization: 0x0005_0002, ..Default::default() };
        let mut buf = vec![0u8; 100];
        let c = hammer_ioc_mirror_rw::reading(&m, &mut buf);
        assert_eq!((c.head.flags, c.tid_beg, c.tid_end, c.pfs_id), (1, 0x10, 0x20, 5));
        assert_eq!((c.count(), c.size()), (0, 100));
        assert_eq!(c.key_end.localization, HAMMER_LOCALIZE_MASK);
        assert_eq!(c.shared_uuid.to_wire(), m.shared_uuid);
        let mut back = MirrorRw::for_read(0, 0);
        c.copy_back(&mut back);
        assert_eq!((back.flags, back.error, back.key_cur), (m.flags, m.error, m.key_cur));

        let base = BaseElm {
            obj_id: -1,
            key: 7,
            create_tid: 8,
            delete_tid: 9,
            rec_type: 0x10,
            obj_type: 2,
            btype: b'R',
            localization: 0x0001_0002,
        };
        assert_eq!(BaseElm::from(&hammer_base_elm::from(&base)), base);

        let w = hammer_ioc_mirror_rw::writing(&m, &buf[..40]);
        assert_eq!((w.count(), w.size()), (0, 40));
    }

    #[test]
    fn uuid_struct_is_the_wire_bytes() {
        let u = ::uuid::Uuid::parse_str("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        let c = uuid::from_wire(&uuid_to_wire(&u));
        let (d1, d2, d3, d4) = u.as_fields();
        assert_eq!((c.time_low, c.time_mid, c.time_hi_and_version), (d1, d2, d3));
        assert_eq!([c.clock_seq_hi_and_reserved, c.clock_seq_low], d4[..2]);
        assert_eq!(c.node, d4[2..]);
        assert_eq!(c.to_wire(), uuid_to_wire(&u));
    }
}
