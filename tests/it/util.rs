//! Test helpers: a temp dir per test and the real binary, run with a scrubbed environment; the fake ssh,
//! condition waits, signals and process state, and an allocation meter.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `hammer-mirror` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hammer-mirror")
}

/// tests/fixtures/fake-ssh: a stand-in for ssh that runs the remote command
/// locally, through a shell, as sshd would (see its header for its knobs).
pub fn fake_ssh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ssh")
}

/// How long a condition wait gives up after: a bound for a stuck run on a loaded machine, not a timing.
pub const WAIT_BOUND: Duration = Duration::from_secs(90);

/// Polls `f` until it holds (true) or [`WAIT_BOUND`] has passed (false).
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > WAIT_BOUND {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Polls `f` until it holds; fails the test, naming `what`, after [`WAIT_BOUND`].
#[track_caller]
pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    assert!(wait_until(f), "timed out after {WAIT_BOUND:?} waiting for {what}");
}

/// Sends `sig` to `pid`; a process that has already ended is no error.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// True while `pid` runs (a zombie, ended but not yet reaped, does not).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
                && !Path::new("/proc/self").exists()
        }
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with this test's environment: no HAMMER_* variables from the
    /// user, a short writer-lock wait, and no terminal on stdin.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("HAMMER_") {
                c.env_remove(&k);
            }
        }
        c.env("HAMMER_MIRROR_LOCK_WAIT", "1").current_dir(self.dir.path()).stdin(Stdio::null());
        // Pair state stays in the test's directory (as root it would go to /var/lib).
        c.env("HAMMER_MIRROR_STATE_DIR", self.path("state"));
        c
    }

    /// Runs `hammer-mirror args...`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).output().expect("run hammer-mirror")
    }

    /// Runs a shell pipeline in the test dir, with `$HM` set to the binary.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; {script}"))
            .env("HM", bin())
            .env("HAMMER_MIRROR_LOCK_WAIT", "1")
            .env("HAMMER_MIRROR_STATE_DIR", self.path("state"))
            .env_remove("HAMMER_RSH")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run bash")
    }

    /// Makes a master PFS holding `tree` (created from `files`: path → contents).
    pub fn master_with(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let tree = self.path(&format!("{name}.tree"));
        write_tree(&tree, files);
        let pfs = self.path(name);
        ok(&self.run([OsStr::new("pfs-master"), pfs.as_os_str()]));
        ok(&self.run([OsStr::new("import"), tree.as_os_str(), pfs.as_os_str()]));
        pfs
    }
}

pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (p, contents) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    std::fs::create_dir_all(root).unwrap();
}

pub fn show(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn ok(o: &Output) -> &Output {
    assert!(o.status.success(), "command failed:\n{}", show(o));
    o
}

#[track_caller]
pub fn fails(o: &Output, code: i32, stderr_has: &str) {
    assert_eq!(o.status.code(), Some(code), "wrong status:\n{}", show(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(stderr_has), "stderr lacks {stderr_has:?}:\n{}", show(o));
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `pfs-status --json` of one PFS.
pub fn status_json(env: &Env, pfs: &Path) -> serde_json::Value {
    let o = env.run([OsStr::new("--json"), OsStr::new("pfs-status"), pfs.as_os_str()]);
    ok(&o);
    serde_json::from_slice(&o.stdout).expect("pfs-status --json is JSON")
}

pub fn sync_end_tid(env: &Env, pfs: &Path) -> String {
    status_json(env, pfs)["sync_end_tid"].as_str().unwrap().to_string()
}

/// Meters the heap each thread holds, for [`peak_heap`]: the test binary's allocator.
struct Meter;

thread_local! {
    /// (metering, bytes held now, most bytes held) of this thread.
    static METER: std::cell::Cell<(bool, isize, isize)> = const { std::cell::Cell::new((false, 0, 0)) };
}

fn meter(delta: isize) {
    let _ = METER.try_with(|m| {
        let (on, now, peak) = m.get();
        if on {
            m.set((on, now + delta, peak.max(now + delta)));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the meter
// only counts, in a thread-local cell that allocates nothing.
unsafe impl std::alloc::GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        meter(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        meter(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        meter(layout.size() as isize);
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        meter(new_size as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static METERED: Meter = Meter;

/// Runs `f` and returns what it returned with the most heap (Rust allocations
/// on this thread, in bytes) that it held at any moment. An allocation that
/// could not be bounded shows here even when the kernel would have let it
/// through untouched.
pub fn peak_heap<R>(f: impl FnOnce() -> R) -> (R, usize) {
    METER.with(|m| m.set((true, 0, 0)));
    let r = f();
    let (_, _, peak) = METER.with(|m| m.replace((false, 0, 0)));
    (r, peak.max(0) as usize)
}
