//! Regression tests for defects found in review: a closed stdout, one-way read-stream resends, ssh prompts under a bar.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hammer_mirror::mrecord::{Record, records};

use crate::util::{Env, fake_ssh, ok, show, sync_end_tid, wait_for};

/// Runs `cmd` with its stdout a pipe whose reader is already gone (as
/// `cmd | true` once `true` has exited), within `limit`.
fn with_closed_stdout(mut cmd: Command, limit: Duration) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = cmd.stdout(writer).stderr(Stdio::piped()).spawn().unwrap();
    finish_within(child, limit)
}

fn finish_within(mut child: Child, limit: Duration) -> Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("still running after {limit:?}:\n{}", show(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[track_caller]
fn quiet_success(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{}", show(o));
    assert_eq!(o.status.code(), Some(0), "{}", show(o));
}

#[test]
fn a_closed_stdout_ends_output_commands_quietly_and_never_stops_a_copy() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("b/c", "2")]);
    for (args, stall) in
        [(vec!["-y", "--json", "copy", "m", "s"], "300"), (vec!["-y", "--json", "copy", "m", "s0"], "0")]
    {
        let mut c = e.cmd();
        c.args(["--stall-timeout", stall]).args(&args);
        let o = with_closed_stdout(c, Duration::from_secs(60));
        quiet_success(&o);
        let slave = e.path(args[3]);
        assert_eq!(sync_end_tid(&e, &slave), sync_end_tid(&e, &m), "the copy went on: {}", show(&o));
    }
    let mut c = e.cmd();
    c.args(["completions", "zsh"]);
    quiet_success(&with_closed_stdout(c, Duration::from_secs(30)));
    let mut c = e.cmd();
    c.args(["pfs-status", "m", "s"]);
    let o = with_closed_stdout(c, Duration::from_secs(30));
    quiet_success(&o);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{}", show(&o));
    // dump of a stream whose output nobody reads.
    let stream = e.cmd().args(["read", "m"]).output().unwrap();
    ok(&stream);
    std::fs::write(e.path("stream"), &stream.stdout).unwrap();
    let mut c = e.cmd();
    c.arg("dump").stdin(std::fs::File::open(e.path("stream")).unwrap());
    quiet_success(&with_closed_stdout(c, Duration::from_secs(30)));
}

/// The REC records of each pass of a one-way stream (a pass ends with SYNC or IDLE).
fn recs_per_pass(stream: &[u8]) -> Vec<usize> {
    let mut passes = Vec::new();
    let mut n = 0;
    for rec in records(stream) {
        match rec {
            Ok(Record::Rec { .. }) => n += 1,
            Ok(Record::Sync) => {
                passes.push(n);
                n = 0;
            }
            Ok(Record::Idle) => n = 0,
            Ok(_) => {}
            Err(_) => break, // the writer is mid-batch
        }
    }
    passes
}

#[test]
fn one_way_read_stream_sends_each_change_once() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("b", "2"), ("c", "3")]);
    let out = std::fs::File::create(e.path("stream")).unwrap();
    let child = e.cmd().args(["-i", "0", "read-stream"]).arg(&m).stdout(out).stderr(Stdio::piped()).spawn().unwrap();
    let passes = || recs_per_pass(&std::fs::read(e.path("stream")).unwrap());
    wait_for("the first pass", &|| passes().len() == 1);
    let first = passes()[0];
    for (i, name) in ["d", "e", "f"].iter().enumerate() {
        crate::util::write_tree(&e.path("m.tree"), &[(name, "new")]);
        ok(&e.run([std::ffi::OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
        wait_for("the next pass", &|| passes().len() == i + 2);
    }
    let mut child = child;
    child.kill().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let _ = child.wait();
    let p = passes();
    assert_eq!(p.len(), 4, "{p:?}\n{err}");
    // Each later pass carries one new file (its inode, direntry, data, and
    // the directory's new inode version), never the whole PFS again.
    for (i, &n) in p[1..].iter().enumerate() {
        assert!(n < first && n == p[1], "pass {} sent {n} records after a first pass of {first}: {p:?}", i + 2);
    }
}

#[test]
fn ssh_never_prompts_for_a_password_under_a_progress_bar() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    if !e.sh("command -v script").status.success() {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return;
    }
    let run = |progress: &str, log: &str| {
        let cmd = format!(
            "HAMMER_RSH={} FAKE_SSH_LOG={log} $HM --progress {progress} --remote-cmd $HM -y copy m backup:{}",
            fake_ssh().display(),
            e.path(log).with_extension("pfs").display()
        );
        let o = e.sh(&format!("script -qefc '{cmd}' /dev/null < /dev/null"));
        ok(&o);
        std::fs::read_to_string(e.path(log)).unwrap()
    };
    // stdin is a terminal in both; only the bar makes the difference.
    assert!(run("always", "bar.log").lines().any(|l| l == "BatchMode=yes"), "a bar is drawn: BatchMode");
    assert!(!run("never", "plain.log").lines().any(|l| l == "BatchMode=yes"), "no bar, a terminal: ssh may ask");
}
