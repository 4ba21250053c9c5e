//! Resume inside one TID: a first copy of a single-TID PFS killed at a random point (the whole copy, the remote
//! target or the remote source) and run again sends only what the target lacks, shows no half TID meanwhile, and
//! ends `verify`-identical. The kill comes when the slave file has grown to a random fraction (a tenth to nine
//! tenths) of a complete one, so the point does not depend on the machine's speed. HAMMER_MIRROR_RESUME_ITERATIONS
//! (default 2 per kind) and HAMMER_MIRROR_RESUME_MB (default 96) make it longer; the figure is for 1024.

use std::ffi::OsStr;
use std::process::{Child, Stdio};

use nix::sys::signal::Signal;

use crate::util::{Env, bin, fake_ssh, ok, show, signal, sync_end_tid, wait_for, wait_until};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A master holding one TID: an import of `mb` MiB of incompressible files.
fn single_tid_master(e: &Env, mb: u64) -> std::path::PathBuf {
    let tree = e.path("m.tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for f in 0..mb.div_ceil(4) {
        let data: Vec<u8> = (0..4u64 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(tree.join(format!("f{f:03}")), data).unwrap();
    }
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    ok(&e.run([OsStr::new("import"), tree.as_os_str(), m.as_os_str()]));
    m
}

/// Where the copy runs its target or source: here, or through the fake ssh on "backup".
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// SIGKILL the copy itself (both halves are threads in it).
    Copy,
    /// SIGKILL the remote target (the fake ssh execs it).
    RemoteTarget,
    /// SIGKILL the remote source.
    RemoteSource,
}

fn copy(e: &Env, src: &str, dst: &str, json: bool, limit: Option<&str>) -> Child {
    let _ = std::fs::remove_file(e.path("pids"));
    let mut c = e.cmd();
    c.env("HAMMER_RSH", fake_ssh()).env("FAKE_SSH_PIDS", e.path("pids")).args(["--remote-cmd", bin(), "-y"]);
    if let Some(b) = limit {
        c.args(["-b", b]);
    }
    if json {
        c.arg("--json");
    }
    c.args(["copy", src, dst]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The stream bytes of every acknowledged pass of a `--json` copy.
fn bytes_sent(o: &std::process::Output) -> u64 {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["event"] == "pass")
        .map(|j| j["bytes"].as_u64().unwrap())
        .sum()
}

fn wait(mut c: Child) -> std::process::Output {
    assert!(wait_until(|| c.try_wait().unwrap().is_some()), "the copy did not end");
    c.wait_with_output().unwrap()
}

#[test]
fn a_killed_single_tid_first_copy_resumes_where_it_stopped() {
    let e = Env::new();
    let mb = env_or("HAMMER_MIRROR_RESUME_MB", 96);
    let m = single_tid_master(&e, mb);
    let master = m.to_str().unwrap().to_string();
    // The whole stream, sent once without interruption.
    let o = wait(copy(&e, &master, e.path("ref").to_str().unwrap(), true, None));
    ok(&o);
    let full = bytes_sent(&o);
    assert!(full > mb << 20, "{full} bytes for {mb} MiB:\n{}", show(&o));
    let complete = std::fs::metadata(e.path("ref")).unwrap().len();
    let mut seed = env_or("HAMMER_MIRROR_RESUME_SEED", 0x5eed) | 1;
    let mut fractions = Vec::new();
    let iterations = env_or("HAMMER_MIRROR_RESUME_ITERATIONS", 2);
    for kind in [Kill::Copy, Kill::RemoteTarget, Kill::RemoteSource] {
        for i in 0..iterations {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (complete as f64 * (0.1 + 0.8 * (seed % 1000) as f64 / 1000.0)) as u64;
            let name = format!("s-{kind:?}-{i}");
            let s = e.path(&name);
            let (src, dst) = match kind {
                Kill::Copy => (master.clone(), s.display().to_string()),
                Kill::RemoteTarget => (master.clone(), format!("backup:{}", s.display())),
                Kill::RemoteSource => (format!("backup:{master}"), s.display().to_string()),
            };
            // -b keeps the copy going for a few seconds, so the kill lands inside it.
            let child = copy(&e, &src, &dst, false, Some("32m"));
            let size = || std::fs::metadata(&s).map_or(0, |m| m.len());
            wait_for("the slave to grow", &|| size() >= at);
            match kind {
                Kill::Copy => signal(child.id(), Signal::SIGKILL),
                Kill::RemoteTarget | Kill::RemoteSource => {
                    let pids = std::fs::read_to_string(e.path("pids")).unwrap_or_default();
                    let remote: u32 = pids.lines().next().and_then(|p| p.trim().parse().ok()).expect("a remote side");
                    signal(remote, Signal::SIGKILL);
                }
            }
            let cut = wait(child);
            // No half TID: the slave is at its creation TID, and shows nothing more.
            assert_eq!(sync_end_tid(&e, &s), "0x0000000000000001", "{kind:?} {i}:\n{}", show(&cut));
            let shown = e.path(&format!("{name}.export"));
            let o = e.run([OsStr::new("-q"), OsStr::new("export"), s.as_os_str(), shown.as_os_str()]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("holds no root directory as of 0x0000000000000001"), "{kind:?} {i}: {}", show(&o));
            // The rerun sends what the target lacks.
            let o = wait(copy(&e, &src, &dst, true, None));
            ok(&o);
            let sent = bytes_sent(&o);
            fractions.push(sent as f64 / full as f64);
            assert_eq!(sync_end_tid(&e, &s), sync_end_tid(&e, &m), "{kind:?} {i}:\n{}", show(&o));
            ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
            eprintln!(
                "{kind:?} {i}: killed at {at} of {complete} store bytes; the rerun sent {sent} of {full} stream bytes"
            );
        }
    }
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    assert!(mean < 0.6, "the reruns sent {:.0} % of the stream on average: {fractions:?}", mean * 100.0);
}
