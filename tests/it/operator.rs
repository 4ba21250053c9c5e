//! What an administrator reads: verify of a slave that is behind, log lines under nohup, JSON Lines, stop and interrupt lines.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Env, ok, show, stderr, stdout, sync_end_tid, wait_for};

fn import(e: &Env, m: &std::path::Path, files: &[(&str, &str)]) {
    crate::util::write_tree(&e.path("m.tree"), files);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
}

#[test]
fn verify_says_when_the_master_has_newer_transactions() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    ok(&e.run(["-y", "copy", "m", "s"]));
    let o = e.run(["verify", "m", "s"]);
    ok(&o);
    assert!(!stdout(&o).contains("newer"), "an up-to-date slave is not behind:\n{}", show(&o));
    import(&e, &m, &[("b", "2")]);
    import(&e, &m, &[("c", "3")]);
    let o = e.run(["verify", "m", "s"]);
    ok(&o);
    let out = stdout(&o);
    let newest = sync_end_tid(&e, &m);
    assert!(
        out.contains(&format!("m has 2 newer transactions (up to {newest}, the oldest made ")),
        "the master's newer history is named:\n{}",
        show(&o)
    );
    assert!(out.contains("that s does not have yet"), "{}", show(&o));
    assert!(out.contains(&format!("m and s are identical as of {}", sync_end_tid(&e, &e.path("s")))), "{}", show(&o));
    let o = e.run(["--json", "verify", "m", "s"]);
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["event"], "verify");
    assert_eq!(j["result"], "identical");
    assert_eq!(j["newer"]["transactions"], 2);
    assert_eq!(j["newer"]["side"], "m");
    assert!(j["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn verify_prints_an_object_when_it_cannot_compare() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    let o = e.run(["--json", "verify", "m", "nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["result"], "failed");
    assert_eq!(j["reason"], "verify m nosuch: mirror-read: nosuch: no such PFS");
    assert!(j["time"].is_string());
}

/// A master large enough that `-b 1m` keeps a pass going for a few seconds.
fn slow(e: &Env) -> std::path::PathBuf {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::create_dir_all(e.path("m.tree")).unwrap();
    std::fs::write(e.path("m.tree/big"), data).unwrap();
    let m = e.path("m");
    ok(&e.run(["pfs-master", "m"]));
    ok(&e.run(["import", "m.tree", "m"]));
    m
}

#[test]
fn json_lines_carry_progress_during_a_pass_and_one_object_per_pass() {
    let e = Env::new();
    slow(&e);
    let o = e.run(["--json", "-b", "1m", "-y", "copy", "m", "s"]);
    ok(&o);
    let objs: Vec<serde_json::Value> =
        stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    for j in &objs {
        assert!(j["time"].as_str().is_some_and(|t| t.ends_with('Z')), "no time in {j}");
        for key in ["tid_beg", "tid_end"] {
            if let Some(t) = j[key].as_str() {
                assert!(t.starts_with("0x") && t.len() == 18, "{key} {t} in {j}");
            }
        }
    }
    let progress: Vec<_> = objs.iter().filter(|j| j["event"] == "progress").collect();
    let passes: Vec<_> = objs.iter().filter(|j| j["event"] == "pass").collect();
    assert!(!progress.is_empty(), "no progress object during a 3 s pass:\n{}", show(&o));
    assert!(progress.iter().all(|j| j["bytes_per_second"].as_u64().unwrap() > 0), "{}", show(&o));
    assert_eq!(passes.len(), 1, "{}", show(&o));
    assert_eq!(passes[0]["result"], "synced");
    assert!(passes[0]["reason"].is_null(), "null, not an empty string, for what is absent");
    assert!(passes[0]["tid_beg"].as_str() <= passes[0]["tid_end"].as_str());
}

#[test]
fn off_a_terminal_a_long_pass_logs_progress_lines() {
    let e = Env::new();
    slow(&e);
    let o = e.cmd().env("HAMMER_MIRROR_LOG_EVERY", "1").args(["-b", "1m", "-y", "copy", "m", "s"]).output().unwrap();
    ok(&o);
    let err = stderr(&o);
    let lines: Vec<_> = err.lines().filter(|l| l.contains(" m -> s: ") && l.contains(" sent, ")).collect();
    assert!(!lines.is_empty(), "no progress line:\n{err}");
    assert!(lines[0].contains(" of about 2.88 MiB sent, ") && lines[0].contains(" left"), "{}", lines[0]);
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

fn stream(e: &Env, extra: &[&str]) -> std::process::Child {
    e.cmd()
        .args(["-y", "-i", "0", "--stall-timeout", "4"])
        .args(extra)
        .args(["stream", "m", "s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn a_stream_logs_its_start_each_pass_once_and_its_stop_and_keeps_heartbeats_silent() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let child = stream(&e, &[]);
    wait_for("the first pass", &|| e.path("s").exists() && sync_end_tid(&e, &e.path("s")) == sync_end_tid(&e, &m));
    import(&e, &m, &[("b", "2")]);
    wait_for("the second pass", &|| sync_end_tid(&e, &e.path("s")) == sync_end_tid(&e, &m));
    // A stall timeout of 4 s means a heartbeat pass every second: wait for a few.
    std::thread::sleep(Duration::from_secs(4));
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].contains(" stream m -> s: started (pid "), "no start line first:\n{err}");
    let passes: Vec<_> = lines.iter().filter(|l| l.contains(" m -> s: synced ")).collect();
    assert_eq!(passes.len(), 2, "one line per pass, heartbeats silent:\n{err}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!(" m -> s: stopped by SIGTERM; the target stays at TID {}", sync_end_tid(&e, &m))),
        "no stop line last:\n{err}"
    );
}

#[test]
fn an_interrupted_copy_says_where_the_target_stays() {
    let e = Env::new();
    slow(&e);
    let child = e.cmd().args(["-b", "100k", "-y", "copy", "m", "s"]).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the copy to start", &|| e.path("s").exists());
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", show(&o));
    let err = stderr(&o);
    let said: Vec<_> = err.lines().filter(|l| l.contains("interrupted; the target stays at TID 0x")).collect();
    assert_eq!(said.len(), 1, "one line, naming the TID:\n{err}");
    assert!(!err.contains("hammer-mirror: "), "no error beside it:\n{err}");
}
