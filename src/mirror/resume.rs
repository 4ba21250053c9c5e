//! The resume token: where a target stopped inside a pass, carried in its PFSD so that our source resumes there.
//!
//! A pass that was cut short (a lost link, a kill) leaves its applied part
//! on a store slave, invisible above its `sync_end_tid`, with the key the
//! source must resume at. The target puts that in the `reserved` bytes of
//! the PFSD it answers with; stock hammer ignores them (and then the
//! partial pass is discarded and sent again). Our source, seeing a token
//! for a pass it can still send (its TIDs reach the token's end TID),
//! sends that pass again from the key on, after a SKIP over what the target
//! has, and the target, seeing exactly that, keeps what it has. The token
//! is 56 of the 64 reserved bytes: magic, version, end TID, resume key.

use crate::mrecord::{BaseElm, PseudofsData};

const MAGIC: &[u8; 4] = b"HMRS";
const VERSION: u32 = 1;
/// Bytes of `PseudofsData::reserved` the token takes.
const LEN: usize = 4 + 4 + 8 + BaseElm::SIZE;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The end TID of the cut pass (it began after the target's sync_end_tid).
    pub tid_end: u64,
    /// The first key the target does not have yet.
    pub key: BaseElm,
}

/// Writes `token` into the PFSD (or clears a stale one with `None`).
pub fn put(pfsd: &mut PseudofsData, token: Option<Resume>) {
    let r = &mut pfsd.reserved[..LEN];
    r.fill(0);
    if let Some(t) = token {
        r[0..4].copy_from_slice(MAGIC);
        r[4..8].copy_from_slice(&VERSION.to_le_bytes());
        r[8..16].copy_from_slice(&t.tid_end.to_le_bytes());
        t.key.encode(&mut r[16..LEN]);
    }
}

/// The token in a peer's PFSD, if it carries one of ours.
pub fn get(pfsd: &PseudofsData) -> Option<Resume> {
    let r = &pfsd.reserved[..LEN];
    if &r[0..4] != MAGIC || u32::from_le_bytes(r[4..8].try_into().expect("4 bytes")) != VERSION {
        return None;
    }
    let tid_end = u64::from_le_bytes(r[8..16].try_into().expect("8 bytes"));
    Some(Resume { tid_end, key: BaseElm::decode(&r[16..LEN]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_nothing_else_reads_as_one() {
        let mut p = PseudofsData::default();
        assert_eq!(get(&p), None, "all zeros is no token");
        let key =
            BaseElm { obj_id: 0x1234, key: -5, create_tid: 77, rec_type: 0x10, localization: 2, ..Default::default() };
        put(&mut p, Some(Resume { tid_end: 0xfeed, key }));
        assert_eq!(get(&p), Some(Resume { tid_end: 0xfeed, key }));
        assert!(p.reserved[LEN..].iter().all(|&b| b == 0), "the rest stays reserved");
        // Through the wire encoding of the PFSD too.
        assert_eq!(get(&PseudofsData::decode(&p.to_bytes())), Some(Resume { tid_end: 0xfeed, key }));
        put(&mut p, None);
        assert_eq!(get(&p), None);
        p.reserved[..4].copy_from_slice(MAGIC);
        p.reserved[4] = 9;
        assert_eq!(get(&p), None, "another version is not ours to read");
    }
}
