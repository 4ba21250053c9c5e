//! [`KernelPfs`]: the [`Pfs`] operations on a PFS of a mounted HAMMER filesystem, through DragonFly's ioctls.
//!
//! The ABI itself (structs, request numbers, the `ioctl(2)` wrappers) is
//! [`super::sys`]; this module is the logic around it: how sbin/hammer finds
//! a PFS from a path, the conversions between the crate's types and the C
//! structs, and the kernel's error conventions. There is no `unsafe` here.
//!
//! On a system without HAMMER the request numbers mean nothing to the kernel:
//! [`KernelPfs::open`] only issues them on directories and regular files,
//! where Linux answers ENOTTY, reported as "not a HAMMER filesystem".

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::snapshots::{self, Change};
use super::sys::{
    self, hammer_base_elm, hammer_ioc_head, hammer_ioc_mirror_rw, hammer_ioc_pseudofs_rw, hammer_ioc_synctid,
    hammer_pseudofs_data, hammer_synctid_op, uuid,
};
use super::{HEAD_ERROR, HEAD_INTR, MirrorRw, Pfs, PfsError, Result, SynctidOp, wait};
use crate::hammerfs::SnapshotData;
use crate::mrecord::{BaseElm, PseudofsData};

// ---------------------------------------------------------------------------
// Conversions between the crate's types and the C structs

/// The struct whose memory is the 16 wire bytes `b` (see `mrecord::uuid_to_wire`).
fn c_uuid(b: &[u8; 16]) -> uuid {
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
fn wire_uuid(u: &uuid) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&u.time_low.to_ne_bytes());
    b[4..6].copy_from_slice(&u.time_mid.to_ne_bytes());
    b[6..8].copy_from_slice(&u.time_hi_and_version.to_ne_bytes());
    b[8] = u.clock_seq_hi_and_reserved;
    b[9] = u.clock_seq_low;
    b[10..16].copy_from_slice(&u.node);
    b
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
            shared_uuid: c_uuid(&p.shared_uuid),
            unique_uuid: c_uuid(&p.unique_uuid),
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
            shared_uuid: wire_uuid(&shared),
            unique_uuid: wire_uuid(&unique),
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

/// Fills the MIRROR_READ/WRITE argument `arg` (whose buffer is already set)
/// from `m`.
fn mirror_args(arg: &mut hammer_ioc_mirror_rw<'_>, m: &MirrorRw) {
    arg.head = hammer_ioc_head { flags: m.flags as i32, error: m.error, reserved01: [0; 4] };
    arg.key_beg = (&m.key_beg).into();
    arg.key_end = (&m.key_end).into();
    arg.key_cur = (&m.key_cur).into();
    arg.tid_beg = m.tid_beg;
    arg.tid_end = m.tid_end;
    arg.pfs_id = m.pfs_id;
    arg.shared_uuid = c_uuid(&m.shared_uuid);
}

/// Copies what the kernel reports back into `m`: head flags and error, and `key_cur`.
fn mirror_results(arg: &hammer_ioc_mirror_rw<'_>, m: &mut MirrorRw) {
    m.flags = arg.head.flags as u32;
    m.error = arg.head.error;
    m.key_cur = (&arg.key_cur).into();
}

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
    /// `file` is the softlink's parent directory, not inside the PFS.
    via_link: bool,
    pfs_id: i32,
}

/// The first HAMMER version with snapshot records ("New snapshot management
/// (DragonFly 2.5+)", `hammer_ioc_get_version()`).
const SNAPSHOT_VERSION: u32 = 3;

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
        let via_link = linked.is_some();
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
        match sys::ioc_get_pseudofs(&file, &mut arg) {
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
        Ok(KernelPfs { path: path.to_path_buf(), file, via_link, pfs_id })
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

    /// Runs `f` on a file inside the PFS and checks that the filesystem has
    /// snapshot records. The snapshot ioctls act on the PFS of the inode
    /// they are issued on (`ip->obj_localization`), not on a PFS id, so a
    /// softlink's parent directory will not do: the link is followed to the
    /// PFS root, as `hammer snapls <softlink>` does with open(2).
    fn in_pfs<T>(&self, op: &'static str, f: impl FnOnce(&File) -> Result<T>) -> Result<T> {
        let opened;
        let file = if self.via_link {
            opened = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&self.path).map_err(|e| {
                PfsError::invalid(&self.path, op, format!("cannot open the PFS root through its softlink: {e}"))
            })?;
            let mut pfsd = hammer_pseudofs_data::zeroed();
            let mut arg = hammer_ioc_pseudofs_rw::new(-1, &mut pfsd);
            sys::ioc_get_pseudofs(&opened, &mut arg).map_err(|e| self.err("HAMMERIOC_GET_PSEUDOFS", e))?;
            if arg.pfs_id != self.pfs_id {
                return Err(PfsError::invalid(
                    &self.path,
                    op,
                    format!("the softlink leads to PFS #{}, not to PFS #{}", arg.pfs_id, self.pfs_id),
                ));
            }
            &opened
        } else {
            &self.file
        };
        let mut version = sys::hammer_ioc_version::default();
        sys::ioc_get_version(file, &mut version).map_err(|e| self.err("HAMMERIOC_GET_VERSION", e))?;
        if version.cur_version < SNAPSHOT_VERSION {
            return Err(PfsError::invalid(
                &self.path,
                op,
                format!(
                    "HAMMER version {} keeps no snapshots (version {SNAPSHOT_VERSION} does: hammer version-upgrade)",
                    version.cur_version
                ),
            ));
        }
        f(file)
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

impl wait::TidWatch for KernelPfs {
    fn current_tid(&self) -> Result<u64> {
        Ok(self.get_pseudofs()?.sync_end_tid)
    }

    /// WAI_PSEUDOFS. It returns 0 both when the PFS moved and when a signal
    /// ended the sleep (the kernel drops tsleep's EINTR), so the caller
    /// looks again either way.
    fn block(&self, pfsd: &PseudofsData) -> Result<()> {
        let mut d = hammer_pseudofs_data::from(pfsd);
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut d);
        sys::ioc_wai_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_WAI_PSEUDOFS", e))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
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
        sys::ioc_get_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_GET_PSEUDOFS", e))?;
        Ok(PseudofsData::from(&pfsd))
    }

    fn set_pseudofs(&mut self, pfsd: &PseudofsData) -> Result<()> {
        let mut d = hammer_pseudofs_data::from(pfsd);
        let mut arg = hammer_ioc_pseudofs_rw::new(self.pfs_id, &mut d);
        sys::ioc_set_pseudofs(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_SET_PSEUDOFS", e))
    }

    /// Bounded by polling GET_PSEUDOFS, since the kernel's own wait has no
    /// timeout and a signal does not reliably end it: see [`super::wait`].
    fn wait_pseudofs(&self, pfsd: &PseudofsData, timeout: Option<Duration>) -> Result<bool> {
        wait::wait_past(self, pfsd, timeout)
    }

    fn mirror_read(&self, m: &mut MirrorRw, buf: &mut [u8]) -> Result<usize> {
        let mut arg = hammer_ioc_mirror_rw::reading(buf);
        mirror_args(&mut arg, m);
        sys::ioc_mirror_read(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_MIRROR_READ", e))?;
        mirror_results(&arg, m);
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
        let mut arg = hammer_ioc_mirror_rw::writing(buf);
        mirror_args(&mut arg, m);
        sys::ioc_mirror_write(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_MIRROR_WRITE", e))?;
        mirror_results(&arg, m);
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
        sys::ioc_synctid(&self.file, &mut arg).map_err(|e| self.err("HAMMERIOC_SYNCTID", e))?;
        Ok(arg.tid)
    }

    fn upgrade(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_UPG_PSEUDOFS", sys::ioc_upg_pseudofs)
    }

    fn downgrade(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_DGD_PSEUDOFS", sys::ioc_dgd_pseudofs)
    }

    fn destroy(&mut self) -> Result<()> {
        self.pfs_op("HAMMERIOC_RMR_PSEUDOFS", sys::ioc_rmr_pseudofs)
    }

    fn add_snapshots(&mut self, snaps: &[SnapshotData]) -> Result<()> {
        self.in_pfs("HAMMERIOC_ADD_SNAPSHOT", |f| {
            snapshots::change(&self.path, Change::Add, snaps, |arg| sys::ioc_add_snapshot(f, arg))
        })
    }

    fn delete_snapshots(&mut self, tids: &[u64]) -> Result<()> {
        let snaps: Vec<SnapshotData> = tids.iter().map(|&tid| SnapshotData::new(tid, 0, b"")).collect();
        self.in_pfs("HAMMERIOC_DEL_SNAPSHOT", |f| {
            snapshots::change(&self.path, Change::Delete, &snaps, |arg| sys::ioc_del_snapshot(f, arg))
        })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotData>> {
        self.in_pfs("HAMMERIOC_GET_SNAPSHOT", |f| snapshots::list(&self.path, |arg| sys::ioc_get_snapshot(f, arg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hammerfs::{HAMMER_LOCALIZE_MASK, HAMMER_XBUFSIZE};
    use crate::mrecord::{PSEUDOFS_VERSION, set_c_str, uuid_to_wire};
    use sys::abi_txt;

    #[test]
    fn constants_match_the_c_helper() {
        let abi = abi_txt();
        assert_eq!(abi["HAMMER_IOC_HEAD_ERROR"], u64::from(HEAD_ERROR));
        assert_eq!(abi["HAMMER_IOC_HEAD_INTR"], u64::from(HEAD_INTR));
        assert_eq!(abi["HAMMER_IOC_MIRROR_NODATA"], u64::from(super::super::MIRROR_NODATA));
        assert_eq!(abi["HAMMER_IOC_PSEUDOFS_VERSION"], u64::from(PSEUDOFS_VERSION));
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
        let mut c = hammer_ioc_mirror_rw::reading(&mut buf);
        mirror_args(&mut c, &m);
        assert_eq!((c.head.flags, c.tid_beg, c.tid_end, c.pfs_id), (1, 0x10, 0x20, 5));
        assert_eq!((c.count(), c.size()), (0, 100));
        assert_eq!(c.key_end.localization, HAMMER_LOCALIZE_MASK);
        assert_eq!(wire_uuid(&c.shared_uuid), m.shared_uuid);
        let mut back = MirrorRw::for_read(0, 0);
        mirror_results(&c, &mut back);
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
    }

    #[test]
    fn uuid_struct_is_the_wire_bytes() {
        let u = ::uuid::Uuid::parse_str("01234567-89ab-cdef-0123-456789abcdef").unwrap();
        let c = c_uuid(&uuid_to_wire(&u));
        let (d1, d2, d3, d4) = u.as_fields();
        assert_eq!((c.time_low, c.time_mid, c.time_hi_and_version), (d1, d2, d3));
        assert_eq!([c.clock_seq_hi_and_reserved, c.clock_seq_low], d4[..2]);
        assert_eq!(c.node, d4[2..]);
        assert_eq!(wire_uuid(&c), uuid_to_wire(&u));
    }
}
