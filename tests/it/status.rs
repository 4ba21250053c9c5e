//! Monitoring through the binary: pair state after a copy and during a stream, a SIGKILLed stream shown stale,
//! `status --check`'s Nagios exit codes, the metrics file (read back by a real prometheus-node-exporter),
//! `--metrics-listen` scraped during a stream, hooks with JSON on stdin, and `run`'s jobs in status and metrics.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::{Env, alive, fake_ssh, ok, show, signal, stdout, sync_end_tid, wait_for, wait_until};

/// `status --json`: one object per pair.
fn states(e: &Env) -> Vec<serde_json::Value> {
    let o = e.run(["--json", "status"]);
    ok(&o);
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}"))).collect()
}

fn state_of(e: &Env, target: &Path) -> Option<serde_json::Value> {
    states(e).into_iter().find(|s| s["target"] == target.display().to_string())
}

fn check(e: &Env, args: &[&str]) -> (i32, String) {
    let o = e.cmd().args(["status", "--check"]).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), stdout(&o))
}

fn stream(e: &Env, extra: &[&str], src: &Path, dst: &str) -> Child {
    e.cmd()
        .args(["-q", "-y", "-i", "0", "--stall-timeout", "8"])
        .args(extra)
        .arg("stream")
        .arg(src)
        .arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) -> std::process::Output {
    signal(c.id(), Signal::SIGTERM);
    if !wait_until(|| c.try_wait().unwrap().is_some()) {
        let _ = c.kill();
    }
    c.wait_with_output().unwrap()
}

/// A port nobody listens on (the kernel's pick, released again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0): the body, when the server answered 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}

/// The value of the series `name` whose labels include `target="..."`.
fn series(text: &str, name: &str, target: &Path) -> Option<f64> {
    let want = format!("target=\"{}\"", target.display());
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&want))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

#[test]
fn a_copy_leaves_its_pair_state_and_status_shows_it() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("d/b", "22")]);
    let o = e.run(["--json", "-y", "copy", "m", "s"]);
    ok(&o);
    let pass: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let s = state_of(&e, &e.path("s")).unwrap_or_else(|| panic!("no state for s: {:?}", states(&e)));
    assert_eq!(s["source"], m.display().to_string(), "local paths are absolute: {s}");
    assert_eq!(s["phase"], "done", "{s}");
    assert_eq!(s["stale"], false);
    assert_eq!(s["acked_tid"], sync_end_tid(&e, &e.path("s")), "{s}");
    assert_eq!(s["master_tid"], sync_end_tid(&e, &m), "{s}");
    assert_eq!(s["lag_seconds"], 0.0, "in sync with its master, read again: {s}");
    assert_eq!(s["lag_bytes"], 0);
    assert_eq!(s["passes"], 1);
    assert_eq!(s["pass_bytes"], pass["bytes"], "{s}");
    assert_eq!(s["last_pass"]["bytes"], pass["bytes"]);
    assert!(s["last_error"].is_null());
    let table = stdout(ok(&e.run(["status"])));
    let row = table.lines().find(|l| l.contains(" -> ")).unwrap_or_else(|| panic!("no row:\n{table}"));
    assert!(table.starts_with("PAIR") && table.contains("LAST ERROR"), "{table}");
    assert!(
        row.contains(&format!("{} -> {}", m.display(), e.path("s").display())) && row.contains(" done "),
        "{table}"
    );

    // The master moves on: status dates the lag by the TID the target lacks.
    std::thread::sleep(Duration::from_millis(1100));
    crate::util::write_tree(&e.path("m.tree"), &[("new", "x".repeat(5000).as_str())]);
    ok(&e.run(["import", "m.tree", "m"]));
    std::thread::sleep(Duration::from_millis(1100));
    let s = state_of(&e, &e.path("s")).unwrap();
    let lag = s["lag_seconds"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&lag), "lag from the import's TID, not from the last copy: {s}");
    assert!(s["lag_bytes"].as_u64().unwrap() > 5000, "the prescan's count of what the target lacks: {s}");
    assert_ne!(s["master_tid"], s["acked_tid"]);

    // verify leaves its result beside the pair's state.
    ok(&e.run(["verify", "m", "s"]));
    let s = state_of(&e, &e.path("s")).unwrap();
    assert_eq!(s["last_verify"]["identical"], true, "{s}");
}

#[test]
fn check_follows_nagios_conventions() {
    let e = Env::new();
    e.master_with("m", &[("a", "1")]);
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h"]);
    assert_eq!(code, 3, "no state at all: UNKNOWN\n{line}");
    assert!(line.starts_with("HAMMER-MIRROR UNKNOWN - no pair state"), "{line}");
    ok(&e.run(["-y", "copy", "m", "s"]));
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h"]);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("HAMMER-MIRROR OK - ") && line.ends_with("| lag=0s;3600;7200;0\n"), "{line:?}");
    assert_eq!(line.lines().count(), 1);
    let (code, _) = check(&e, &["--warn", "1h", "--crit", "2h", "s"]);
    assert_eq!(code, 0, "PAIR given by its target, relative to here");
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h", "nosuch"]);
    assert_eq!(code, 3, "{line}");

    crate::util::write_tree(&e.path("m.tree"), &[("b", "2")]);
    ok(&e.run(["import", "m.tree", "m"]));
    std::thread::sleep(Duration::from_millis(2100));
    let (code, line) = check(&e, &["--warn", "1", "--crit", "1h"]);
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("HAMMER-MIRROR WARNING - ") && line.contains("(warning at 1 s)"), "{line}");
    let (code, line) = check(&e, &["--warn", "1", "--crit", "2s"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("HAMMER-MIRROR CRITICAL - "), "{line}");

    // A copy that fails is critical, with its error.
    let o = e.run(["-y", "copy", "m", "nodir/x/s"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h", "nodir/x/s"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains(": failed: "), "{line}");
    let o = e.run(["status", "--check", "--warn", "2h", "--crit", "1h"]);
    assert_eq!(o.status.code(), Some(2), "warn above crit is a usage error: {}", show(&o));
}

/// A second process on a running pair (a `copy` beside its `stream`) does
/// not overwrite the state of the one that runs it.
#[test]
fn a_second_process_on_a_running_pair_leaves_its_state_alone() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let child = stream(&e, &[], &m, "s");
    wait_for("the stream's first acknowledged pass in its state", || {
        state_of(&e, &e.path("s")).is_some_and(|s| s["phase"] == "idle" && s["acked_tid"].is_string())
    });
    // The stream holds the slave's writer lock: the copy fails, busy.
    let o = e.cmd().env("HAMMER_MIRROR_LOCK_WAIT", "1").args(["-y", "copy"]).arg(&m).arg("s").output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{} -> {}: another process (pid {}) keeps this pair's state",
            m.display(),
            e.path("s").display(),
            child.id()
        )),
        "{err}"
    );
    let s = state_of(&e, &e.path("s")).unwrap();
    assert_eq!((s["pid"].as_u64(), s["phase"].as_str()), (Some(child.id() as u64), Some("idle")), "{s}");
    let out = stop(child);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // Once the stream is gone, the next process keeps the pair's state again.
    let o = e.cmd().args(["-y", "copy"]).arg(&m).arg("s").output().unwrap();
    ok(&o);
    let s = state_of(&e, &e.path("s")).unwrap();
    assert_eq!(s["phase"], "done", "{s}");
}

#[test]
fn a_sigkilled_stream_is_stale_never_healthy() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let child = stream(&e, &[], &m, "s");
    let pid = child.id();
    wait_for("the stream's first acknowledged pass in its state", || {
        state_of(&e, &e.path("s")).is_some_and(|s| s["phase"] == "idle" && s["acked_tid"].is_string())
    });
    let s = state_of(&e, &e.path("s")).unwrap();
    assert_eq!((s["alive"].as_bool(), s["pid"].as_u64()), (Some(true), Some(pid as u64)), "{s}");
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h"]);
    assert_eq!(code, 0, "{line}");
    signal(pid, Signal::SIGKILL);
    let mut child = child;
    let _ = child.wait();
    wait_for("the process to be gone", || !alive(pid));
    let s = state_of(&e, &e.path("s")).unwrap();
    assert_eq!((s["stale"].as_bool(), s["alive"].as_bool()), (Some(true), Some(false)), "{s}");
    let (code, line) = check(&e, &["--warn", "1h", "--crit", "2h"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains(&format!("stale, pid {pid} gone")), "{line}");
    let table = stdout(ok(&e.run(["status"])));
    assert!(table.contains(&format!("STALE (pid {pid} gone, was idle)")), "{table}");
}

#[test]
fn the_metrics_file_has_the_pairs_series_and_node_exporter_serves_them() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1"), ("b", "bb")]);
    std::fs::create_dir(e.path("textfile")).unwrap();
    let prom = e.path("textfile/hammer-mirror.prom");
    let o = e.cmd().arg("--json").arg("--metrics-file").arg(&prom).args(["-y", "copy", "m", "s"]).output().unwrap();
    ok(&o);
    let pass: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let text = std::fs::read_to_string(&prom).unwrap();
    let s = e.path("s");
    assert_eq!(series(&text, "hammer_mirror_passes_total", &s), Some(1.0), "{text}");
    assert_eq!(series(&text, "hammer_mirror_pass_bytes_total", &s), pass["bytes"].as_f64(), "{text}");
    assert_eq!(series(&text, "hammer_mirror_up", &s), Some(0.0), "the copy has ended: {text}");
    assert_eq!(series(&text, "hammer_mirror_lag_bytes", &s), Some(0.0), "{text}");
    assert_eq!(series(&text, "hammer_mirror_retries_total", &s), Some(0.0), "{text}");
    let ack = series(&text, "hammer_mirror_last_ack_timestamp_seconds", &s).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 60.0..=now + 1.0).contains(&ack), "{ack} vs {now}");
    assert!(text.contains(&format!("source=\"{}\"", m.display())), "{text}");
    assert!(text.contains("hammer_mirror_failures_total{") && text.contains("phase=\"sending\"} 0"), "{text}");
    // A second copy counts on.
    ok(&e.cmd().arg("--metrics-file").arg(&prom).args(["-q", "copy", "m", "s"]).output().unwrap());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(series(&text, "hammer_mirror_passes_total", &s), Some(1.0), "nothing new: no pass with data: {text}");

    let exporter = Path::new("/usr/bin/prometheus-node-exporter");
    if !exporter.exists() {
        eprintln!("skipped: the node_exporter part needs {} (.ci/run installs it)", exporter.display());
        return;
    }
    let port = free_port();
    let mut ne = std::process::Command::new(exporter)
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!("--collector.textfile.directory={}", e.path("textfile").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = None;
    let found = wait_until(|| {
        body = http_get(port, "/metrics");
        body.as_deref().is_some_and(|b| b.contains("hammer_mirror_passes_total"))
    });
    let _ = ne.kill();
    let ne_out = ne.wait_with_output().unwrap();
    let body = body.unwrap_or_default();
    assert!(found, "node_exporter never served our series:\n{body}\n{}", String::from_utf8_lossy(&ne_out.stderr));
    assert!(
        !body.lines().any(|l| l == "node_textfile_scrape_error 1"),
        "node_exporter could not read the file:\n{body}"
    );
    assert_eq!(series(&body, "hammer_mirror_passes_total", &s), Some(1.0), "{body}");
    assert_eq!(series(&body, "hammer_mirror_pass_bytes_total", &s), pass["bytes"].as_f64(), "{body}");
    assert_eq!(series(&body, "hammer_mirror_up", &s), Some(0.0), "{body}");
    assert!(body.contains("# TYPE hammer_mirror_lag_seconds gauge"), "{body}");
}

#[test]
fn metrics_listen_serves_a_running_stream() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let port = free_port();
    let child = stream(&e, &["--metrics-listen", &format!("127.0.0.1:{port}")], &m, "s");
    let s = e.path("s");
    let mut body = String::new();
    let up = wait_until(|| {
        body = http_get(port, "/metrics").unwrap_or_default();
        series(&body, "hammer_mirror_up", &s) == Some(1.0)
            && series(&body, "hammer_mirror_passes_total", &s) == Some(1.0)
    });
    assert!(up, "no up stream in:\n{body}");
    assert_eq!(series(&body, "hammer_mirror_lag_seconds", &s), Some(0.0), "{body}");
    crate::util::write_tree(&e.path("m.tree"), &[("b", "2")]);
    ok(&e.run(["import", "m.tree", "m"]));
    let moved = wait_until(|| {
        body = http_get(port, "/metrics").unwrap_or_default();
        series(&body, "hammer_mirror_passes_total", &s) == Some(2.0)
    });
    assert!(moved, "the second pass is not counted:\n{body}");
    assert!(http_get(port, "/other").is_none(), "only /metrics is served");
    let o = stop(child);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(state_of(&e, &s).unwrap()["phase"], "stopped");

    // A port already taken is an error before anything runs.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = l.local_addr().unwrap().port();
    let o = e.run(["--metrics-listen", &format!("127.0.0.1:{taken}"), "-y", "copy", "m", "s2"]);
    crate::util::fails(&o, 1, &format!("--metrics-listen 127.0.0.1:{taken}: cannot listen"));
}

/// A hook that appends its stdin to `out` (a script: the hook itself runs without a shell).
fn recorder(e: &Env, name: &str) -> String {
    let script = e.path(&format!("{name}.sh"));
    std::fs::write(&script, "#!/bin/sh\ncat >> \"$1\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!("{} '{}'", script.display(), e.path(&format!("{name}.out")).display())
}

fn hook_objects(e: &Env, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(e.path(&format!("{name}.out"))).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{err}: {l}"))).collect()
}

#[test]
fn hooks_get_the_events_json_on_stdin() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let hooks = ["--after-pass", &recorder(&e, "pass"), "--on-failure", &recorder(&e, "fail"), "--on-recover"];
    let recover = recorder(&e, "recover");
    // The target's directory is missing: the copy fails.
    let o = e.cmd().args(hooks).arg(&recover).args(["-y", "copy", "m", "later/s"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let fail = hook_objects(&e, "fail");
    assert_eq!(fail.len(), 1, "{fail:?}");
    assert_eq!(fail[0]["event"], "failure");
    assert_eq!(fail[0]["target"], e.path("later/s").display().to_string());
    assert_eq!(fail[0]["state"]["phase"], "failed");
    assert!(fail[0]["state"]["last_error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", fail[0]);
    assert!(hook_objects(&e, "pass").is_empty());

    std::fs::create_dir(e.path("later")).unwrap();
    let o = e.cmd().args(hooks).arg(&recover).args(["-y", "copy", "m", "later/s"]).output().unwrap();
    ok(&o);
    let pass = hook_objects(&e, "pass");
    assert_eq!(pass.len(), 1, "{pass:?}");
    assert_eq!(pass[0]["event"], "pass");
    assert_eq!(pass[0]["state"]["acked_tid"], sync_end_tid(&e, &m));
    assert_eq!(pass[0]["state"]["last_pass"]["tid_end"], sync_end_tid(&e, &m));
    let rec = hook_objects(&e, "recover");
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(rec[0]["event"], "recover");
    assert_eq!(hook_objects(&e, "fail").len(), 1, "no new failure");

    // A hook that fails or hangs is logged; the copy goes on and succeeds.
    crate::util::write_tree(&e.path("m.tree"), &[("b", "2")]);
    ok(&e.run(["import", "m.tree", "m"]));
    let t = std::time::Instant::now();
    let o = e.run(["--after-pass", "sleep 30", "--hook-timeout", "1", "-q", "copy", "m", "later/s"]);
    ok(&o);
    assert!(t.elapsed() < Duration::from_secs(20), "the hook was not killed");
    assert!(
        crate::util::stderr(&o).contains("--after-pass hook sleep: killed after 1 s (--hook-timeout)"),
        "{}",
        show(&o)
    );
    let o = e.run(["--after-pass", "/nonexistent/hook", "-q", "-y", "copy", "m", "s2"]);
    ok(&o);
    assert!(crate::util::stderr(&o).contains("--after-pass hook /nonexistent/hook: command not found"), "{}", show(&o));

    // Never through a shell, and never inside ssh-remote.
    let o = e.run(["--on-failure", "mail $USER", "copy", "m", "s3"]);
    crate::util::fails(&o, 2, "--on-failure");
    let o = e
        .cmd()
        .env("SSH_ORIGINAL_COMMAND", "hammer-mirror -2 mirror-write x")
        .args(["--on-failure", "true", "ssh-remote", "write"])
        .arg(e.dir.path())
        .output()
        .unwrap();
    crate::util::fails(&o, 2, "ssh-remote: --on-failure is refused here");
    let o = e
        .cmd()
        .env("SSH_ORIGINAL_COMMAND", "hammer-mirror --on-failure true -2 mirror-write x")
        .args(["ssh-remote", "write"])
        .arg(e.dir.path())
        .output()
        .unwrap();
    crate::util::fails(&o, 3, "'--on-failure' is not allowed for ssh-remote write");
}

#[test]
fn a_lost_link_is_counted_and_status_shows_the_wait() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let prom = e.path("m.prom");
    let child = e
        .cmd()
        .env("HAMMER_RSH", fake_ssh())
        .env("FAKE_SSH_EXIT", "255")
        .arg("--metrics-file")
        .arg(&prom)
        .args(["--on-failure", &recorder(&e, "fail"), "--retry-delay", "30", "-q", "-y", "stream"])
        .arg(&m)
        .arg("backup:/x/s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let target = Path::new("backup:/x/s");
    wait_for("the stream to wait for a retry", || {
        states(&e).iter().any(|s| s["target"] == "backup:/x/s" && s["phase"] == "waiting-for-retry")
    });
    let s = states(&e).into_iter().find(|s| s["target"] == "backup:/x/s").unwrap();
    assert_eq!(s["retries"], 1, "{s}");
    assert_eq!(s["failures"]["connecting"], 1, "{s}");
    assert!(s["last_error"]["message"].as_str().unwrap().contains("ssh"), "{s}");
    let table = stdout(ok(&e.run(["status", "backup:/x/s"])));
    assert!(table.contains("waiting-for-retry (") && table.contains("connecting: "), "{table}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(series(&text, "hammer_mirror_retries_total", target), Some(1.0), "{text}");
    assert!(text.contains("phase=\"connecting\"} 1"), "{text}");
    assert_eq!(series(&text, "hammer_mirror_up", target), Some(0.0), "{text}");
    wait_for("the failure hook", || hook_objects(&e, "fail").len() == 1);
    let o = stop(child);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn status_lists_every_job_and_target_of_run_with_job_labels() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let conf = e.path("fleet.toml");
    std::fs::write(
        &conf,
        format!(
            "[defaults]\ninterval = 0\ncreate = true\n\n[[job]]\nname = \"web\"\nsource = \"{}\"\ntargets = [\"{}\", \"{}\"]\n",
            m.display(),
            e.path("t1").display(),
            e.path("t2").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = e
        .cmd()
        .arg("--config")
        .arg(&conf)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tm = sync_end_tid(&e, &m);
    let at = |p: &str| e.path(p).exists() && sync_end_tid(&e, &e.path(p)) == tm;
    wait_for("both targets", || at("t1") && at("t2"));
    let mut body = String::new();
    let both = wait_until(|| {
        body = http_get(port, "/metrics").unwrap_or_default();
        ["t1", "t2"].iter().all(|t| {
            body.lines().any(|l| {
                l.starts_with("hammer_mirror_passes_total{job=\"web\"")
                    && l.contains(&format!("target=\"{}\"", e.path(t).display()))
                    && l.ends_with(" 1")
            })
        })
    });
    assert!(both, "{body}");
    let o = e.cmd().arg("--config").arg(&conf).args(["--json", "status", "web"]).output().unwrap();
    ok(&o);
    let rows: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2, "{}", show(&o));
    assert!(rows.iter().all(|r| r["job"] == "web" && r["command"] == "run"), "{rows:?}");
    let o = stop(child);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // A target added to the file but not run yet is listed too.
    std::fs::write(
        &conf,
        format!(
            "[defaults]\ninterval = 0\ncreate = true\n\n[[job]]\nname = \"web\"\nsource = \"{}\"\ntargets = [\"{}\", \"{}\", \"{}\"]\n",
            m.display(),
            e.path("t1").display(),
            e.path("t2").display(),
            e.path("t3").display()
        ),
    )
    .unwrap();
    let o = e.cmd().arg("--config").arg(&conf).arg("status").output().unwrap();
    ok(&o);
    let table = stdout(&o);
    assert!(table.contains(&format!("[web] {} -> {}", m.display(), e.path("t3").display())), "{table}");
    assert!(table.contains("not started") && table.matches(" stopped ").count() == 2, "{table}");
}

#[test]
fn json_progress_comes_at_most_once_a_second_and_status_shows_the_pass_under_way() {
    let e = Env::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::create_dir_all(e.path("m.tree")).unwrap();
    std::fs::write(e.path("m.tree/big"), data).unwrap();
    ok(&e.run(["pfs-master", "m"]));
    ok(&e.run(["import", "m.tree", "m"]));
    let child = e
        .cmd()
        .args(["--json", "-b", "1m", "-y", "copy", "m", "s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the pass under way in the state file", || {
        state_of(&e, &e.path("s")).is_some_and(|s| s["phase"] == "sending" && s["current"]["bytes"].as_u64() > Some(0))
    });
    let table = stdout(ok(&e.run(["status", "s"])));
    assert!(table.contains(" sending "), "{table}");
    let o = child.wait_with_output().unwrap();
    ok(&o);
    let progress: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["event"] == "progress")
        .collect();
    assert!(progress.len() >= 2, "a 3 s pass: {}", show(&o));
    let times: Vec<&str> = progress.iter().map(|j| j["time"].as_str().unwrap()).collect();
    let mut distinct = times.clone();
    distinct.dedup();
    assert_eq!(distinct, times, "two progress objects within one second");
    assert!(progress.iter().all(|j| j["estimate"].as_u64().is_some() && j["bytes"].as_u64() > Some(0)), "{progress:?}");
}
