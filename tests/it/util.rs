//! Test helpers: a temp dir per test and the real binary, run with a scrubbed environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
        let mut c = Command::new(env!("CARGO_BIN_EXE_hammer-mirror"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("HAMMER_") {
                c.env_remove(&k);
            }
        }
        c.env("HAMMER_MIRROR_LOCK_WAIT", "1").current_dir(self.dir.path()).stdin(Stdio::null());
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
            .env("HM", env!("CARGO_BIN_EXE_hammer-mirror"))
            .env("HAMMER_MIRROR_LOCK_WAIT", "1")
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

/// The fake ssh of tests/fixtures (see its header).
pub fn fake_ssh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-ssh")
}

/// Polls `f` until it holds; fails after 90 s naming `what`.
#[track_caller]
pub fn wait_for(what: &str, f: &dyn Fn() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < std::time::Duration::from_secs(90), "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
