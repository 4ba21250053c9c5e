//! DragonFly's HAMMER ioctl ABI: the `#[repr(C)]` argument structs, the request numbers, their asserted layouts, and one safe function per ioctl.
//!
//! Logic-free transcriptions of `sys/vfs/hammer/hammer_ioctl.h`,
//! `hammer_disk.h`, `hammer_btree.h`, `sys/sys/uuid.h` and
//! `sys/sys/ioccom.h` (`scripts/hammer-abi/hammer_abi.h` names the commits),
//! with the C names and the C comments quoted. Their x86_64 layout is
//! asserted at compile time and checked in the tests against what the C
//! compiler makes of the C definitions (`tests/fixtures/abi.txt`, printed by
//! `scripts/hammer-abi/abi_check.c`). What the fields mean to this crate, and
//! the conversions, are in [`super::kernel`].
//!
//! This is one of the two modules that may use `unsafe` (the other is
//! [`super::mapped`]): one `ioctl(2)` call per safe wrapper below. Their
//! soundness rests on the asserted layouts and on the user pointers
//! (`ondisk`, `ubuf`) being private fields that only the constructors here
//! set, from borrowed buffers of the right size.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::mem::{align_of, offset_of, size_of};
use std::os::fd::AsRawFd;

use crate::mrecord::PSEUDOFS_VERSION;

// ---------------------------------------------------------------------------
// Structs

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

/// `struct hammer_ioc_pseudofs_rw` (`hammer_ioctl.h`): the argument of
/// GET/SET/UPG/DGD/RMR/WAI_PSEUDOFS. `ondisk` is a user pointer to a
/// `hammer_pseudofs_data` borrowed for `'a`, set only by [`Self::new`].
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
    fn with_buffer(ubuf: *mut c_void, size: c_int) -> Self {
        hammer_ioc_mirror_rw {
            head: hammer_ioc_head::default(),
            key_beg: hammer_base_elm::default(),
            key_end: hammer_base_elm::default(),
            key_cur: hammer_base_elm::default(),
            tid_beg: 0,
            tid_end: 0,
            ubuf,
            count: 0,
            size,
            pfs_id: 0,
            reserved01: 0,
            shared_uuid: uuid::NIL,
            _ubuf: PhantomData,
        }
    }

    /// A MIRROR_READ into `buf` (at most `i32::MAX` bytes of it are used);
    /// every other field zero.
    pub fn reading(buf: &'a mut [u8]) -> Self {
        let size = buf.len().min(c_int::MAX as usize) as c_int;
        Self::with_buffer(buf.as_mut_ptr().cast(), size)
    }

    /// A MIRROR_WRITE of the records in `buf`; every other field zero. The
    /// kernel only reads through `ubuf` for this request (copyin), so a
    /// shared borrow is enough.
    pub fn writing(buf: &'a [u8]) -> Self {
        let size = buf.len().min(c_int::MAX as usize) as c_int;
        Self::with_buffer(buf.as_ptr().cast_mut().cast(), size)
    }

    /// `count`: bytes the kernel filled (read) or consumed (write).
    pub fn count(&self) -> c_int {
        self.count
    }

    /// `size`: the buffer length handed to the kernel.
    pub fn size(&self) -> c_int {
        self.size
    }
}

/// `struct hammer_ioc_version` (`hammer_ioctl.h`): HAMMERIOC_GET_VERSION.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hammer_ioc_version {
    pub head: hammer_ioc_head,
    pub cur_version: u32,
    pub min_version: u32,
    pub wip_version: u32,
    pub max_version: u32,
    pub description: [u8; 64],
}

impl Default for hammer_ioc_version {
    fn default() -> Self {
        hammer_ioc_version {
            head: hammer_ioc_head::default(),
            cur_version: 0,
            min_version: 0,
            wip_version: 0,
            max_version: 0,
            description: [0; 64],
        }
    }
}

/// `struct hammer_snapshot_data` (`hammer_disk.h`): "Snapshot meta-data {
/// Objid = HAMMER_OBJID_ROOT, Key = tid, rectype = SNAPSHOT }."
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct hammer_snapshot_data {
    /// "the snapshot TID itself (== key)"
    pub tid: u64,
    /// "real-time when snapshot was made"
    pub ts: u64,
    pub reserved01: u64,
    pub reserved02: u64,
    /// "user-supplied description"
    pub label: [u8; 64],
    pub reserved03: [u64; 4],
}

impl hammer_snapshot_data {
    pub const ZERO: hammer_snapshot_data =
        hammer_snapshot_data { tid: 0, ts: 0, reserved01: 0, reserved02: 0, label: [0; 64], reserved03: [0; 4] };
}

/// `HAMMER_SNAPS_PER_IOCTL`.
pub const HAMMER_SNAPS_PER_IOCTL: usize = 16;
/// `HAMMER_IOC_SNAPSHOT_EOF`: "no more keys".
pub const HAMMER_IOC_SNAPSHOT_EOF: i32 = 0x0008;

/// `struct hammer_ioc_snapshot` (`hammer_ioctl.h`): the argument of
/// ADD/DEL/GET_SNAPSHOT. "ADD and DEL start at snap->index. If an error
/// occurs the index will point at the errored record. snap->index must be
/// set to 0 for GET."
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct hammer_ioc_snapshot {
    pub head: hammer_ioc_head,
    pub reserved01: c_int,
    pub index: u32,
    pub count: u32,
    pub snaps: [hammer_snapshot_data; HAMMER_SNAPS_PER_IOCTL],
}

impl Default for hammer_ioc_snapshot {
    fn default() -> Self {
        hammer_ioc_snapshot {
            head: hammer_ioc_head::default(),
            reserved01: 0,
            index: 0,
            count: 0,
            snaps: [hammer_snapshot_data::ZERO; HAMMER_SNAPS_PER_IOCTL],
        }
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
    "hammer_ioc_version" => hammer_ioc_version { size 104, align 4;
        head @ 0, cur_version @ 24, min_version @ 28, wip_version @ 32, max_version @ 36, description @ 40 }
    "hammer_snapshot_data" => hammer_snapshot_data { size 128, align 8;
        tid @ 0, ts @ 8, reserved01 @ 16, reserved02 @ 24, label @ 32, reserved03 @ 96 }
    "hammer_ioc_snapshot" => hammer_ioc_snapshot { size 2088, align 8;
        head @ 0, reserved01 @ 24, index @ 28, count @ 32, snaps @ 40 }
}

// ---------------------------------------------------------------------------
// Request numbers (sys/sys/ioccom.h)

/// `IOCPARM_MASK`: "parameter length, at most 13 bits".
pub const IOCPARM_MASK: u64 = 0x1fff;
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
pub const HAMMERIOC_GET_VERSION: u64 = iowr(b'h', 13, size_of::<hammer_ioc_version>());
pub const HAMMERIOC_ADD_SNAPSHOT: u64 = iowr(b'h', 18, size_of::<hammer_ioc_snapshot>());
pub const HAMMERIOC_DEL_SNAPSHOT: u64 = iowr(b'h', 19, size_of::<hammer_ioc_snapshot>());
pub const HAMMERIOC_GET_SNAPSHOT: u64 = iowr(b'h', 20, size_of::<hammer_ioc_snapshot>());

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
/// to `size` bytes starting at `count` = 0. The callers only use these on a
/// file [`super::kernel::KernelPfs::open`] checked to be a directory or
/// regular file, on which no other system assigns these numbers (Linux
/// answers ENOTTY).
macro_rules! hammer_ioctl {
    ($(#[$doc:meta])* fn $name:ident($request:ident, $arg:ty)) => {
        $(#[$doc])*
        pub fn $name(fd: &File, arg: &mut $arg) -> io::Result<()> {
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
hammer_ioctl!(
    /// HAMMERIOC_GET_VERSION: the filesystem's version (`cur_version` 0 on input).
    fn ioc_get_version(HAMMERIOC_GET_VERSION, hammer_ioc_version)
);
hammer_ioctl!(
    /// HAMMERIOC_ADD_SNAPSHOT: add `snaps[index..count]` to the fd's PFS.
    fn ioc_add_snapshot(HAMMERIOC_ADD_SNAPSHOT, hammer_ioc_snapshot)
);
hammer_ioctl!(
    /// HAMMERIOC_DEL_SNAPSHOT: delete the snapshots of `snaps[index..count]`.
    fn ioc_del_snapshot(HAMMERIOC_DEL_SNAPSHOT, hammer_ioc_snapshot)
);
hammer_ioctl!(
    /// HAMMERIOC_GET_SNAPSHOT: up to 16 snapshots after `snaps[count - 1].tid`.
    fn ioc_get_snapshot(HAMMERIOC_GET_SNAPSHOT, hammer_ioc_snapshot)
);

/// `tests/fixtures/abi.txt`, printed by scripts/hammer-abi/abi_check.c.
#[cfg(test)]
pub fn abi_txt() -> std::collections::HashMap<&'static str, u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(HAMMERIOC_GET_VERSION, 0xC068_680D);
        assert_eq!(HAMMERIOC_ADD_SNAPSHOT, 0xC828_6812);
        assert_eq!(HAMMERIOC_DEL_SNAPSHOT, 0xC828_6813);
        assert_eq!(HAMMERIOC_GET_SNAPSHOT, 0xC828_6814);
        // wire.md §1: the _IOR GET_INFO (hammer_ioc_info, 296 bytes).
        assert_eq!(ioc(IOC_OUT, b'h', 16, 296), 0x4128_6810);
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
            ("HAMMERIOC_GET_VERSION", HAMMERIOC_GET_VERSION),
            ("HAMMERIOC_ADD_SNAPSHOT", HAMMERIOC_ADD_SNAPSHOT),
            ("HAMMERIOC_DEL_SNAPSHOT", HAMMERIOC_DEL_SNAPSHOT),
            ("HAMMERIOC_GET_SNAPSHOT", HAMMERIOC_GET_SNAPSHOT),
        ] {
            assert_eq!(Some(&ours), abi.get(name), "{name}");
        }
        assert_eq!(abi["HAMMER_SNAPS_PER_IOCTL"], HAMMER_SNAPS_PER_IOCTL as u64);
        assert_eq!(abi["HAMMER_IOC_SNAPSHOT_EOF"], HAMMER_IOC_SNAPSHOT_EOF as u64);
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
    fn mirror_rw_buffers_are_described_by_their_borrow() {
        let mut buf = vec![0u8; 100];
        let r = hammer_ioc_mirror_rw::reading(&mut buf);
        assert_eq!((r.count(), r.size(), r.tid_beg, r.head), (0, 100, 0, hammer_ioc_head::default()));
        let w = hammer_ioc_mirror_rw::writing(&buf[..40]);
        assert_eq!((w.count(), w.size()), (0, 40));
        let mut d = hammer_pseudofs_data::zeroed();
        let p = hammer_ioc_pseudofs_rw::new(-1, &mut d);
        assert_eq!((p.pfs_id, p.bytes, p.version, p.head), (-1, 292, 1, hammer_ioc_head::default()));
    }
}
