//! The state directory: where it is, the pair files' names, atomic writes, reading them back, and whether their process is alive.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{PairState, VerifyResult};

/// The state directory: `--state-dir` (or `HAMMER_MIRROR_STATE_DIR`), else
/// `/var/lib/hammer-mirror` for root, else `$XDG_STATE_HOME/hammer-mirror`,
/// else `~/.local/state/hammer-mirror`.
pub fn dir(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = given {
        return Some(d.to_path_buf());
    }
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/lib/hammer-mirror"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(&x).join("hammer-mirror"));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".local/state/hammer-mirror"))
}

/// FNV-1a, 64 bits: a stable name for a pair's file (not a secret).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The file of the pair (job, source, target) in `dir`.
pub fn pair_path(dir: &Path, job: Option<&str>, source: &str, target: &str) -> PathBuf {
    dir.join(format!("pair-{:016x}.json", fnv(&[job.unwrap_or(""), source, target])))
}

/// Where `verify` leaves its result for a pair's file.
pub fn verify_path(pair: &Path) -> PathBuf {
    pair.with_extension("verify.json")
}

/// The lock a process holds on a pair while it keeps the pair's state.
pub fn owner_path(pair: &Path) -> PathBuf {
    pair.with_extension("lock")
}

/// Takes on keeping the pair's state: an exclusive lock on its
/// [`owner_path`], held as long as the returned value lives. None when
/// another process holds it (a second `copy` or `stream` of a running pair
/// must not overwrite the state of the one that runs it).
pub fn own(pair: &Path) -> std::io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(owner_path(pair))?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// Makes the directory (and its parents), readable by a monitoring user.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then a
/// rename, so that a reader sees the old or the new content, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", tmp.path().display()))?;
    // Monitoring users read it (tempfile makes 0600).
    let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// Writes a pair's state file.
pub fn write(path: &Path, s: &PairState) -> anyhow::Result<()> {
    let mut j = serde_json::to_vec_pretty(s).expect("serializable");
    j.push(b'\n');
    write_atomic(path, &j)
}

/// State files are small; a larger file is not ours.
const MAX_FILE: u64 = 1 << 20;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&buf).map(Some).with_context(|| format!("{} is not a state file", path.display()))
}

/// Reads one pair's state file (None when there is none).
pub fn read(path: &Path) -> anyhow::Result<Option<PairState>> {
    read_json(path)
}

/// Reads the verify result beside a pair's file.
pub fn read_verify(pair: &Path) -> Option<VerifyResult> {
    read_json(&verify_path(pair)).ok().flatten()
}

/// Records `verify`'s result.
pub fn write_verify(pair: &Path, v: &VerifyResult) -> anyhow::Result<()> {
    write_atomic(&verify_path(pair), &serde_json::to_vec(v).expect("serializable"))
}

/// A state file and what it holds.
pub type Stored = (PathBuf, PairState);

/// Every pair's state in `dir`, sorted by job, source and target; files
/// that cannot be read are returned as errors (naming them).
pub fn read_all(dir: &Path) -> anyhow::Result<(Vec<Stored>, Vec<String>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e).with_context(|| format!("reading the state directory {}", dir.display())),
    };
    let (mut states, mut errors) = (Vec::new(), Vec::new());
    for e in entries {
        let e = e.with_context(|| format!("reading the state directory {}", dir.display()))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("pair-") || !name.ends_with(".json") || name.ends_with(".verify.json") {
            continue;
        }
        match read(&e.path()) {
            Ok(Some(s)) => states.push((e.path(), s)),
            Ok(None) => {}
            Err(err) => errors.push(format!("{err:#}")),
        }
    }
    states.sort_by(|(_, a), (_, b)| (&a.job, &a.source, &a.target).cmp(&(&b.job, &b.source, &b.target)));
    Ok((states, errors))
}

/// The start time of process `pid` (clock ticks since boot), where `/proc` tells it.
pub fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the fields after the parenthesised command name start at field 3.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether the process that wrote `s` still runs: `kill(pid, 0)` (EPERM:
/// someone else's process, alive), and where `/proc` tells start times, the
/// same start time (a reused pid is another process). A zombie is gone.
pub fn alive(s: &PairState) -> bool {
    use nix::errno::Errno;
    let Ok(pid) = i32::try_from(s.pid) else { return false };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
    {
        return false;
    }
    match (s.pid_start, pid_start(s.pid)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_files_are_named_by_job_source_and_target() {
        let d = Path::new("/x");
        assert_eq!(pair_path(d, None, "/m", "/s"), pair_path(d, None, "/m", "/s"));
        assert_ne!(pair_path(d, None, "/m", "/s"), pair_path(d, Some("j"), "/m", "/s"));
        assert_ne!(pair_path(d, None, "/m", "/s"), pair_path(d, None, "/m/", "s"), "parts are separated");
        assert_eq!(verify_path(&pair_path(d, None, "a", "b")).extension().unwrap(), "json");
        assert!(verify_path(&pair_path(d, None, "a", "b")).to_string_lossy().ends_with(".verify.json"));
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let mut s = PairState::new(None, "a".into(), "b".into(), "copy");
        assert!(alive(&s));
        if s.pid_start.is_some() {
            s.pid_start = s.pid_start.map(|t| t + 1);
            assert!(!alive(&s), "another start time: another process");
        }
        s.pid = i32::MAX as u32;
        assert!(!alive(&s));
    }
}
