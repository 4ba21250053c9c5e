//! Append-only history: the pure checks that keep a slave's acknowledged past (TIDs up to its `sync_end_tid`) immutable.
//!
//! A slave has acknowledged every TID up to its `sync_end_tid`: its content
//! as of any of those TIDs is a backup and must never change. A legitimate
//! source never asks for such a change; a compromised or buggy one must not
//! be able to make one. Each check here takes the slave's `sync_end_tid` and
//! what the stream asks for, and says whether the request stays above the
//! acknowledged past, is a no-op, or must be refused ([`Refusal`], exit
//! status 3: retrying cannot fix it). They depend only on `mrecord`, so that
//! both the write half (for any target) and the store's MIRROR_WRITE (for
//! each record) use them.
//!
//! The DragonFly kernel checks none of this (`hammer_mirror.c` trusts the
//! stream's TIDs, and `update_pfs_snapshot` sets any `sync_end_tid`).

use crate::mrecord::BaseElm;

/// Why a stream was refused: what it asked for, naming the record and both TIDs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} (the acknowledged past is append-only history: a slave never changes what it held as of its sync-end-tid)"
)]
pub struct Refusal(pub String);

fn rec(what: &str, b: &BaseElm) -> String {
    format!("{what} obj={:016x} key={:016x} rt={:02x}", b.obj_id as u64, b.key as u64, b.rec_type)
}

/// A pass announcing `tid_end` (its second PFSD, which its SYNC commits)
/// must not end below the slave's `sync_end_tid`: that would move the slave
/// backwards and let the pass rewrite acknowledged TIDs.
pub fn check_pass_end(sync_end_tid: u64, tid_end: u64) -> Result<(), Refusal> {
    if tid_end < sync_end_tid {
        return Err(Refusal(format!(
            "the source's pass ends at TID {tid_end:#018x}, below this slave's sync-end-tid {sync_end_tid:#018x} \
             (a one-way read split into prescan chunks starts below it: use copy, -B, a cycle file or a begin TID)"
        )));
    }
    Ok(())
}

/// The lowest create_tid a new record may have: the source's announced
/// `sync_beg_tid` (below it the slave may have pruned the record, the
/// kernel's rule) but never at or below the slave's `sync_end_tid`
/// (`tid_beg` comes from the peer).
pub fn creation_floor(tid_beg: u64, sync_end_tid: u64) -> u64 {
    tid_beg.max(sync_end_tid.saturating_add(1))
}

/// A REC for a record the slave does not hold: `Ok(true)` to create it,
/// `Ok(false)` to leave it out (created before the source's `tid_beg`, as
/// the kernel does), a refusal when it would appear in acknowledged history.
pub fn check_new_record(b: &BaseElm, tid_beg: u64, sync_end_tid: u64) -> Result<bool, Refusal> {
    if b.create_tid < tid_beg {
        return Ok(false);
    }
    if b.create_tid < creation_floor(tid_beg, sync_end_tid) {
        return Err(Refusal(format!(
            "{} is new to this slave but created at TID {:#018x}, at or before its sync-end-tid {sync_end_tid:#018x}",
            rec("REC", b),
            b.create_tid
        )));
    }
    Ok(true)
}

/// A REC or PASS for a record the slave holds with `held_delete_tid` (0:
/// live) that carries `b.delete_tid`: `Ok(true)` to set the new delete_tid,
/// `Ok(false)` for nothing to do, a refusal when the change would show at
/// or below `sync_end_tid` (a deletion there, a deletion moved into or out
/// of it, or an undeletion).
pub fn check_delete(what: &str, b: &BaseElm, held_delete_tid: u64, sync_end_tid: u64) -> Result<bool, Refusal> {
    let new = b.delete_tid;
    if new == 0 || new == held_delete_tid {
        return Ok(false);
    }
    if new <= sync_end_tid || (held_delete_tid != 0 && held_delete_tid <= sync_end_tid) {
        let held = if held_delete_tid == 0 {
            "holds it live".to_string()
        } else {
            format!("holds it deleted at TID {held_delete_tid:#018x}")
        };
        return Err(Refusal(format!(
            "{} would be deleted at TID {new:#018x}, at or before this slave's sync-end-tid {sync_end_tid:#018x} \
             (the slave {held})",
            rec(what, b)
        )));
    }
    Ok(true)
}

/// The sweep marks records the source no longer has deleted at the pass's
/// `tid_end`; refused for a live record when `tid_end` is acknowledged.
pub fn check_sweep(b: &BaseElm, tid_end: u64, sync_end_tid: u64) -> Result<(), Refusal> {
    if tid_end <= sync_end_tid {
        return Err(Refusal(format!(
            "the stream omits {}, which would be deleted at the pass's end TID {tid_end:#018x}, at or before this \
             slave's sync-end-tid {sync_end_tid:#018x}",
            rec("the live record", b)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elm(create: u64, delete: u64) -> BaseElm {
        BaseElm {
            obj_id: 0x1234,
            key: 0x4000,
            rec_type: 0x10,
            create_tid: create,
            delete_tid: delete,
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_never_ends_below_the_acknowledged_tid() {
        assert!(check_pass_end(100, 100).is_ok(), "a pass re-sending the acknowledged TID is harmless");
        assert!(check_pass_end(100, 101).is_ok());
        let e = check_pass_end(100, 99).unwrap_err().to_string();
        assert!(e.contains("0x0000000000000063") && e.contains("0x0000000000000064"), "{e}");
        assert!(e.contains("append-only"), "{e}");
    }

    #[test]
    fn new_records_appear_only_after_the_acknowledged_tid() {
        assert_eq!(creation_floor(1, 100), 101);
        assert_eq!(creation_floor(500, 100), 500);
        assert_eq!(creation_floor(1, u64::MAX), u64::MAX, "no overflow");
        assert_eq!(check_new_record(&elm(101, 0), 1, 100), Ok(true));
        assert_eq!(check_new_record(&elm(50, 0), 60, 100), Ok(false), "before the source's begin TID: left out");
        let e = check_new_record(&elm(100, 0), 1, 100).unwrap_err().to_string();
        assert!(e.contains("obj=0000000000001234 key=0000000000004000 rt=10"), "{e}");
        assert!(e.contains("created at TID 0x0000000000000064"), "{e}");
        // A peer announcing a begin TID inside the acknowledged past does not open it.
        assert!(check_new_record(&elm(80, 0), 70, 100).is_err());
    }

    #[test]
    fn deletions_change_only_unacknowledged_history() {
        assert_eq!(check_delete("PASS", &elm(10, 0), 0, 100), Ok(false), "no delete_tid: nothing to do");
        assert_eq!(check_delete("PASS", &elm(10, 50), 50, 100), Ok(false), "already deleted there");
        assert_eq!(check_delete("PASS", &elm(10, 101), 0, 100), Ok(true));
        assert_eq!(check_delete("REC", &elm(10, 150), 120, 100), Ok(true), "both above: a pass still open");
        let live = check_delete("PASS", &elm(10, 11), 0, 100).unwrap_err().to_string();
        assert!(live.contains("PASS obj=") && live.contains("holds it live"), "{live}");
        assert!(live.contains("0x000000000000000b") && live.contains("0x0000000000000064"), "{live}");
        let moved_out = check_delete("REC", &elm(10, 150), 50, 100).unwrap_err().to_string();
        assert!(moved_out.contains("holds it deleted at TID 0x0000000000000032"), "{moved_out}");
        assert!(check_delete("REC", &elm(10, 60), 150, 100).is_err(), "moved into the acknowledged past");
    }

    #[test]
    fn the_sweep_stays_above_the_acknowledged_tid() {
        assert!(check_sweep(&elm(10, 0), 101, 100).is_ok());
        let e = check_sweep(&elm(10, 0), 100, 100).unwrap_err().to_string();
        assert!(e.contains("omits the live record obj=0000000000001234"), "{e}");
    }
}
