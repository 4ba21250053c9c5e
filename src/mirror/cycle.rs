//! The cycle file (`-c`): where a mirror-read resumes, in `sbin/hammer/cycle.c`'s 48-byte format.
//!
//! The file is a raw `struct hammer_base_elm` (40 bytes, little-endian)
//! followed by a `hammer_tid_t` (8 bytes), no header. Unlike cycle.c, which
//! truncates and rewrites in place, the file is replaced atomically (written
//! beside it, synced, renamed), so a crash never leaves half a resume point.

use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;

use crate::event::{Observer, Say};
use crate::mrecord::BaseElm;

/// What `hammer_get_cycle` finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Cycle {
    /// No file: start from the beginning.
    Missing,
    /// A file too short to hold a key (an old format): cycle.c removes it.
    Cleared,
    /// The key, and the TID when the file holds one (cycle.c warns "malformed" without it).
    Found { key: BaseElm, tid: Option<u64> },
}

/// Reads a cycle file; `obs` gets hammer's messages.
pub fn read(path: &Path, obs: &dyn Observer) -> anyhow::Result<Cycle> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Cycle::Missing),
        Err(e) => return Err(e).with_context(|| format!("cycle file {}", path.display())),
    };
    if bytes.len() < BaseElm::SIZE {
        obs.info(format!("cycle-file {}: clearing old version", path.display()));
        std::fs::remove_file(path).with_context(|| format!("removing cycle file {}", path.display()))?;
        return Ok(Cycle::Cleared);
    }
    let key = BaseElm::decode(&bytes);
    let tid = bytes.get(40..48).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if tid.is_none() {
        obs.warn(format!("cycle-file {}: Warning, malformed", path.display()));
    }
    Ok(Cycle::Found { key, tid })
}

/// Writes a cycle file atomically.
pub fn write(path: &Path, key: &BaseElm, tid: u64) -> anyhow::Result<()> {
    let mut buf = [0u8; 48];
    key.encode(&mut buf[..40]);
    buf[40..].copy_from_slice(&tid.to_le_bytes());
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let ctx = || format!("writing cycle file {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(ctx)?;
    tmp.write_all(&buf).with_context(ctx)?;
    tmp.as_file().sync_all().with_context(ctx)?;
    tmp.persist(path).map_err(|e| e.error).with_context(ctx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_old_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cyc");
        let log = crate::event::Record::default();
        assert_eq!(read(&p, &log).unwrap(), Cycle::Missing);
        let key = BaseElm { obj_id: 0x1234, localization: 1, ..BaseElm::key_beg_init() };
        write(&p, &key, 0x55).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 48);
        assert_eq!(read(&p, &log).unwrap(), Cycle::Found { key, tid: Some(0x55) });
        std::fs::write(&p, [0u8; 12]).unwrap();
        assert_eq!(read(&p, &log).unwrap(), Cycle::Cleared);
        assert!(!p.exists());
        std::fs::write(&p, [0u8; 44]).unwrap();
        assert!(matches!(read(&p, &log).unwrap(), Cycle::Found { tid: None, .. }));
        let log = log.text();
        assert!(log.contains("clearing old version") && log.contains("Warning, malformed"), "{log}");
    }
}
