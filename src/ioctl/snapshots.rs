//! Driving HAMMERIOC_ADD/DEL/GET_SNAPSHOT: batches of `HAMMER_SNAPS_PER_IOCTL`, the `index`/`count` protocol, errors by TID.
//!
//! The kernel's rules (`hammer_ioc_add_snapshot()`, `_del_snapshot()`,
//! `_get_snapshot()` in `sys/vfs/hammer/hammer_ioctl.c`):
//!
//! * ADD and DEL work on `snaps[index..count]` and return 0 with the errno
//!   in `head.error` and `index` at the failing entry: EEXIST when the TID
//!   already has a snapshot (ADD never replaces a note), ENOENT when it has
//!   none (DEL). `count > 16` or `index > count` is EINVAL from the ioctl.
//! * GET wants `index` 0 and returns up to 16 snapshots after
//!   `snaps[count - 1].tid` (from the lowest key when `count` is 0), in the
//!   order of the signed B-tree key, setting `HAMMER_IOC_SNAPSHOT_EOF` when
//!   the scan ran out. The caller passes the result back to continue and
//!   "must still sort the aggregate results".
//!
//! The ioctl itself is a closure, so that the tests can put a fake kernel
//! that follows these rules in its place.

use std::io;
use std::path::Path;

use super::sys::{HAMMER_IOC_SNAPSHOT_EOF, HAMMER_SNAPS_PER_IOCTL, hammer_ioc_snapshot, hammer_snapshot_data};
use super::{MAX_SNAPSHOTS, PfsError, Result};
use crate::hammerfs::SnapshotData;

fn to_c(s: &SnapshotData) -> hammer_snapshot_data {
    hammer_snapshot_data { tid: s.tid, ts: s.ts, label: s.label, ..hammer_snapshot_data::ZERO }
}

fn from_c(s: &hammer_snapshot_data) -> SnapshotData {
    SnapshotData { tid: s.tid, ts: s.ts, label: s.label }
}

/// Which of ADD and DEL, and what its per-TID refusal means.
#[derive(Clone, Copy)]
pub enum Change {
    Add,
    Delete,
}

impl Change {
    fn op(self) -> &'static str {
        match self {
            Change::Add => "HAMMERIOC_ADD_SNAPSHOT",
            Change::Delete => "HAMMERIOC_DEL_SNAPSHOT",
        }
    }

    /// The error for `errno` in `head.error` at the entry of `tid`.
    fn refusal(self, path: &Path, errno: i32, tid: u64) -> PfsError {
        match (self, errno) {
            (Change::Add, libc::EEXIST) => PfsError::SnapshotExists { path: path.to_path_buf(), tid },
            (Change::Delete, libc::ENOENT) => PfsError::NoSuchSnapshot { path: path.to_path_buf(), tid },
            _ => PfsError::io(path, self.op(), io::Error::from_raw_os_error(errno)),
        }
    }
}

/// ADD or DEL of `snaps` (for DEL only the TIDs matter), 16 per ioctl.
pub fn change(
    path: &Path,
    what: Change,
    snaps: &[SnapshotData],
    mut ioctl: impl FnMut(&mut hammer_ioc_snapshot) -> io::Result<()>,
) -> Result<()> {
    let op = what.op();
    for chunk in snaps.chunks(HAMMER_SNAPS_PER_IOCTL) {
        let mut arg = hammer_ioc_snapshot { count: chunk.len() as u32, ..Default::default() };
        for (c, s) in arg.snaps.iter_mut().zip(chunk) {
            *c = to_c(s);
        }
        loop {
            let before = arg.index;
            ioctl(&mut arg).map_err(|e| PfsError::io(path, op, e))?;
            let at = arg.index as usize;
            if at > chunk.len() {
                return Err(PfsError::invalid(path, op, format!("the kernel returned index {at} of {}", chunk.len())));
            }
            if arg.head.error != 0 {
                let tid = chunk.get(at).map_or(0, |s| s.tid);
                return Err(what.refusal(path, arg.head.error, tid));
            }
            if at == chunk.len() {
                break;
            }
            if arg.index == before {
                return Err(PfsError::invalid(path, op, format!("the kernel stopped at entry {at} without an error")));
            }
        }
    }
    Ok(())
}

/// GET: every snapshot, one per TID, sorted by TID (unsigned).
pub fn list(
    path: &Path,
    mut ioctl: impl FnMut(&mut hammer_ioc_snapshot) -> io::Result<()>,
) -> Result<Vec<SnapshotData>> {
    const OP: &str = "HAMMERIOC_GET_SNAPSHOT";
    let mut out: Vec<SnapshotData> = Vec::new();
    let mut arg = hammer_ioc_snapshot::default();
    loop {
        ioctl(&mut arg).map_err(|e| PfsError::io(path, OP, e))?;
        if arg.head.error != 0 {
            return Err(PfsError::io(path, OP, io::Error::from_raw_os_error(arg.head.error)));
        }
        let n = arg.count as usize;
        let Some(batch) = arg.snaps.get(..n) else {
            return Err(PfsError::invalid(path, OP, format!("the kernel returned {n} snapshots in one batch")));
        };
        // Each batch starts after the last key of the one before.
        if let (Some(prev), Some(first)) = (out.last(), batch.first())
            && first.tid as i64 <= prev.tid as i64
        {
            return Err(PfsError::invalid(
                path,
                OP,
                format!("the kernel went back from TID 0x{:016x} to 0x{:016x}", prev.tid, first.tid),
            ));
        }
        out.extend(batch.iter().map(from_c));
        if out.len() > MAX_SNAPSHOTS {
            return Err(PfsError::invalid(path, OP, format!("the PFS has more than {MAX_SNAPSHOTS} snapshots")));
        }
        let last_key = out.last().map(|s| s.tid as i64);
        if arg.head.flags & HAMMER_IOC_SNAPSHOT_EOF != 0 || n == 0 || last_key == Some(i64::MAX) {
            break;
        }
        // Continue after snaps[count - 1], which the kernel left in place.
        arg.head = Default::default();
        arg.index = 0;
    }
    out.sort_by_key(|s| s.tid);
    out.dedup_by_key(|s| s.tid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    /// The kernel's three ioctls over a B-tree of snapshot keys, as hammer_ioctl.c does them.
    #[derive(Default)]
    struct Kernel {
        snaps: RefCell<BTreeMap<i64, hammer_snapshot_data>>,
        calls: RefCell<Vec<(u32, u32)>>,
    }

    impl Kernel {
        fn add(&self, a: &mut hammer_ioc_snapshot) -> io::Result<()> {
            self.calls.borrow_mut().push((a.index, a.count));
            if a.count as usize > HAMMER_SNAPS_PER_IOCTL || a.index > a.count {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let mut m = self.snaps.borrow_mut();
            a.head.error = 0;
            while a.index < a.count {
                let s = a.snaps[a.index as usize];
                if m.contains_key(&(s.tid as i64)) {
                    a.head.error = libc::EEXIST;
                    break;
                }
                m.insert(s.tid as i64, s);
                a.index += 1;
            }
            Ok(())
        }

        fn del(&self, a: &mut hammer_ioc_snapshot) -> io::Result<()> {
            self.calls.borrow_mut().push((a.index, a.count));
            if a.count as usize > HAMMER_SNAPS_PER_IOCTL || a.index > a.count {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let mut m = self.snaps.borrow_mut();
            a.head.error = 0;
            while a.index < a.count {
                if m.remove(&(a.snaps[a.index as usize].tid as i64)).is_none() {
                    a.head.error = libc::ENOENT;
                    break;
                }
                a.index += 1;
            }
            Ok(())
        }

        fn get(&self, a: &mut hammer_ioc_snapshot) -> io::Result<()> {
            self.calls.borrow_mut().push((a.index, a.count));
            if a.index != 0 || a.count as usize > HAMMER_SNAPS_PER_IOCTL {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let from = if a.count == 0 { i64::MIN } else { a.snaps[a.count as usize - 1].tid as i64 + 1 };
            let m = self.snaps.borrow();
            let mut it = m.range(from..).peekable();
            a.count = 0;
            while (a.count as usize) < HAMMER_SNAPS_PER_IOCTL {
                let Some((_, s)) = it.next() else { break };
                a.snaps[a.count as usize] = *s;
                a.count += 1;
            }
            if it.peek().is_none() {
                a.head.flags |= HAMMER_IOC_SNAPSHOT_EOF;
            }
            a.head.error = 0;
            Ok(())
        }
    }

    fn snap(tid: u64) -> SnapshotData {
        SnapshotData::new(tid, tid.wrapping_mul(10), format!("note {tid:x}").as_bytes())
    }

    const PATH: &str = "/mnt/pfs";

    #[test]
    fn adds_in_batches_of_sixteen_and_lists_everything_in_unsigned_order() {
        let k = Kernel::default();
        // TIDs with the top bit set sort first by the kernel's signed key.
        let snaps: Vec<_> = (1..=40u64).map(|i| snap(if i % 3 == 0 { i | 1 << 63 } else { i })).collect();
        change(Path::new(PATH), Change::Add, &snaps, |a| k.add(a)).unwrap();
        assert_eq!(*k.calls.borrow(), [(0, 16), (0, 16), (0, 8)]);
        k.calls.borrow_mut().clear();
        let got = list(Path::new(PATH), |a| k.get(a)).unwrap();
        let mut want = snaps.clone();
        want.sort_by_key(|s| s.tid);
        assert_eq!(got, want);
        assert_eq!(got[0].label_str(), "note 1");
        assert_eq!(*k.calls.borrow(), [(0, 0), (0, 16), (0, 16)], "restarts after the last entry");
    }

    #[test]
    fn exactly_a_batch_needs_one_more_call_only_without_eof() {
        let k = Kernel::default();
        let snaps: Vec<_> = (1..=16).map(snap).collect();
        change(Path::new(PATH), Change::Add, &snaps, |a| k.add(a)).unwrap();
        assert_eq!(list(Path::new(PATH), |a| k.get(a)).unwrap().len(), 16);
        assert_eq!(k.calls.borrow().len(), 2, "the kernel saw the end: EOF after one GET");
        assert_eq!(list(Path::new(PATH), |a| k.get(a)).unwrap().len(), 16);
        assert!(list(Path::new(PATH), |a| Kernel::default().get(a)).unwrap().is_empty());
    }

    #[test]
    fn an_existing_tid_stops_the_add_and_keeps_the_ones_before() {
        let k = Kernel::default();
        change(Path::new(PATH), Change::Add, &[snap(5)], |a| k.add(a)).unwrap();
        let replaced = SnapshotData::new(5, 0, b"other note");
        let err = change(Path::new(PATH), Change::Add, &[snap(4), replaced, snap(6)], |a| k.add(a)).unwrap_err();
        assert_eq!(err.to_string(), "/mnt/pfs: there is already a snapshot at TID 0x0000000000000005");
        let tids: Vec<_> =
            list(Path::new(PATH), |a| k.get(a)).unwrap().iter().map(|s| (s.tid, s.label_str())).collect();
        assert_eq!(tids, [(4, "note 4".into()), (5, "note 5".into())], "the note is not replaced");
    }

    #[test]
    fn deleting_a_missing_tid_is_an_error_naming_it() {
        let k = Kernel::default();
        change(Path::new(PATH), Change::Add, &[snap(1), snap(2)], |a| k.add(a)).unwrap();
        let err = change(Path::new(PATH), Change::Delete, &[snap(1), snap(3), snap(2)], |a| k.del(a)).unwrap_err();
        assert!(matches!(err, PfsError::NoSuchSnapshot { tid: 3, .. }), "{err:?}");
        assert_eq!(err.to_string(), "/mnt/pfs: no snapshot at TID 0x0000000000000003");
        let left: Vec<_> = list(Path::new(PATH), |a| k.get(a)).unwrap().iter().map(|s| s.tid).collect();
        assert_eq!(left, [2], "1 went, 2 stayed behind the error");
    }

    #[test]
    fn kernel_errors_and_nonsense_are_reported() {
        let path = Path::new(PATH);
        let err =
            change(path, Change::Add, &[snap(1)], |_| Err(io::Error::from_raw_os_error(libc::EPERM))).unwrap_err();
        assert!(err.to_string().starts_with("/mnt/pfs: HAMMERIOC_ADD_SNAPSHOT failed"), "{err}");
        let err = change(path, Change::Add, &[snap(1)], |a| {
            a.head.error = libc::EIO;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, PfsError::Io { op: "HAMMERIOC_ADD_SNAPSHOT", .. }), "{err:?}");
        let err = change(path, Change::Delete, &[snap(1)], |_| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "/mnt/pfs: HAMMERIOC_DEL_SNAPSHOT: the kernel stopped at entry 0 without an error");
        let err = list(path, |a| {
            a.count = 17;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "/mnt/pfs: HAMMERIOC_GET_SNAPSHOT: the kernel returned 17 snapshots in one batch");
        let err = list(path, |a| {
            a.count = 1;
            a.snaps[0] = to_c(&snap(9));
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("went back from TID 0x0000000000000009 to 0x0000000000000009"), "{err}");
    }

    #[test]
    fn duplicate_tids_are_listed_once() {
        // Two live records at one key (a master's snapshot, mirrored, and the
        // slave's own of the same TID) come back side by side.
        let got = list(Path::new(PATH), |a| {
            a.count = 3;
            a.snaps[0] = to_c(&snap(7));
            a.snaps[1] = to_c(&SnapshotData::new(7, 1, b"the slave's"));
            a.snaps[2] = to_c(&snap(1 << 40));
            a.head.flags |= HAMMER_IOC_SNAPSHOT_EOF;
            Ok(())
        })
        .unwrap();
        assert_eq!(got.iter().map(|s| s.tid).collect::<Vec<_>>(), [7, 1 << 40]);
    }
}
