//! --compress through the binary: copy, stream and verify over a fake ssh and a real sshd in every mode, negotiation (stock hammer, an older remote, ssh-remote), -b on link bytes, JSON link bytes, and damaged framed links.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::util::{Env, bin, fails, fake_ssh, ok, show, signal, stderr, stdout, sync_end_tid, wait_for};

/// `hammer-mirror` with the fake ssh and this binary as the remote command.
fn hm(e: &Env) -> Command {
    let mut c = e.cmd();
    c.env("HAMMER_RSH", fake_ssh()).env("FAKE_SSH_LOG", e.path("ssh.log")).args(["--remote-cmd", bin()]);
    c
}

/// The argv of each fake ssh call.
fn calls(e: &Env) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(e.path("ssh.log")).unwrap_or_default();
    log.split("--end--\n").filter(|c| !c.is_empty()).map(|c| c.lines().map(String::from).collect()).collect()
}

/// The words after `-2` up to the verb, as the remote half got them.
fn remote_words(call: &[String]) -> Vec<String> {
    let at = call.iter().position(|w| w == "-2").expect("-2 in the remote command");
    call[at + 1..].iter().take_while(|w| !w.starts_with("mirror-")).cloned().collect()
}

/// A master of a few hundred KiB: text that compresses and seeded noise that does not.
fn mixed_master(e: &Env, name: &str) -> PathBuf {
    let tree = e.path(&format!("{name}.tree"));
    std::fs::create_dir_all(tree.join("d")).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..12 {
        std::fs::write(tree.join(format!("d/text{i}")), format!("compressible line {i}\n").repeat(3000)).unwrap();
        let noise: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(tree.join(format!("noise{i}")), noise).unwrap();
    }
    let pfs = e.path(name);
    ok(&e.run([OsStr::new("pfs-master"), pfs.as_os_str()]));
    ok(&e.run([OsStr::new("import"), tree.as_os_str(), pfs.as_os_str()]));
    pfs
}

fn same(e: &Env, a: &Path, b: &Path) {
    assert_eq!(sync_end_tid(e, a), sync_end_tid(e, b));
    ok(&e.run([OsStr::new("verify"), a.as_os_str(), b.as_os_str()]));
}

fn pass_json(o: &std::process::Output) -> serde_json::Value {
    let out = stdout(o);
    let line =
        out.lines().find(|l| l.contains("\"event\":\"pass\"")).unwrap_or_else(|| panic!("a pass object:\n{}", show(o)));
    serde_json::from_str(line).unwrap()
}

#[test]
fn copy_both_ways_equals_the_source_in_every_mode() {
    let e = Env::new();
    let m = mixed_master(&e, "m");
    for (i, mode) in ["auto", "zstd", "zstd:19", "lz4", "none"].iter().enumerate() {
        // Local source, remote target.
        let s = e.path(&format!("to{i}"));
        let o = hm(&e)
            .args(["-y", "--json", "--compress", mode, "copy"])
            .arg(&m)
            .arg(format!("h:{}", s.display()))
            .output()
            .unwrap();
        ok(&o);
        same(&e, &m, &s);
        let words = remote_words(calls(&e).last().unwrap());
        let p = pass_json(&o);
        let (bytes, link) = (p["bytes"].as_u64().unwrap(), p["link_bytes"].as_u64().unwrap());
        if *mode == "none" {
            assert!(!words.contains(&"--link-compress".to_string()), "{words:?}");
            assert_eq!(link, bytes, "{p}");
            assert_eq!(p["ratio"], 1.0);
        } else {
            let want = if *mode == "zstd" { "zstd:3" } else { mode };
            assert_eq!(words[..2], ["--link-compress", want], "{mode}");
            // Half the tree is text: every method but a raw auto shrinks it.
            if *mode != "auto" {
                assert!(link * 10 < bytes * 8, "{mode}: {link} link bytes for {bytes}: {p}");
            }
            assert!(p["ratio"].as_f64().unwrap() <= 1.01, "{p}");
        }
        // Remote source, local target: the link is decoded here.
        let s = e.path(&format!("from{i}"));
        let o = hm(&e)
            .args(["-y", "--json", "--compress", mode, "copy"])
            .arg(format!("h:{}", m.display()))
            .arg(&s)
            .output()
            .unwrap();
        ok(&o);
        same(&e, &m, &s);
        let p = pass_json(&o);
        if *mode != "none" && *mode != "auto" {
            assert!(p["link_bytes"].as_u64().unwrap() * 10 < p["bytes"].as_u64().unwrap() * 8, "{mode}: {p}");
        }
    }
    // Remote to remote: both halves frame their link to each other.
    let s = e.path("r2r");
    let o = hm(&e)
        .args(["-y", "--compress", "lz4", "copy"])
        .arg(format!("h:{}", m.display()))
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap();
    ok(&o);
    same(&e, &m, &s);
    // Local to local: nothing to frame, and nothing is started.
    let s = e.path("local");
    ok(&hm(&e).args(["-y", "--compress", "zstd", "copy"]).arg(&m).arg(&s).output().unwrap());
    same(&e, &m, &s);
}

#[test]
fn an_incremental_copy_and_fanout_and_verify_work_compressed() {
    let e = Env::new();
    let m = mixed_master(&e, "m");
    let (a, b) = (e.path("a"), e.path("b"));
    let targets = [format!("h:{}", a.display()), format!("h2:{}", b.display())];
    ok(&hm(&e).args(["-y", "--compress", "zstd:5", "copy"]).arg(&m).args(&targets).output().unwrap());
    same(&e, &m, &a);
    same(&e, &m, &b);
    std::fs::write(e.path("m.tree/d/text3"), "changed\n".repeat(5000)).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    ok(&hm(&e).args(["--compress", "lz4", "copy"]).arg(&m).args(&targets).output().unwrap());
    same(&e, &m, &a);
    same(&e, &m, &b);
    // verify with the remote side's reader compressing.
    let o = hm(&e).args(["--json", "--compress", "zstd", "verify"]).arg(&m).arg(&targets[0]).output().unwrap();
    ok(&o);
    assert!(stdout(&o).contains("\"identical\":true"), "{}", show(&o));
    assert!(calls(&e).last().unwrap().contains(&"--link-compress".to_string()));
}

#[test]
fn a_compressed_stream_keeps_the_target_up_to_date_and_survives_a_killed_link() {
    let e = Env::new();
    let m = mixed_master(&e, "m");
    let s = e.path("s");
    let pids = e.path("pids");
    let child = hm(&e)
        .env("FAKE_SSH_PIDS", &pids)
        .args(["-y", "-i", "0", "--retry-delay", "1", "--compress", "zstd", "stream"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t1 = sync_end_tid(&e, &m);
    wait_for("the first pass", || s.exists() && sync_end_tid(&e, &s) == t1);
    let pid: u32 = std::fs::read_to_string(&pids).unwrap().lines().next().unwrap().trim().parse().unwrap();
    signal(pid, Signal::SIGKILL);
    wait_for("a second ssh", || std::fs::read_to_string(&pids).unwrap().lines().count() >= 2);
    std::fs::write(e.path("m.tree/later"), "new\n".repeat(10_000)).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let t2 = sync_end_tid(&e, &m);
    wait_for("the new TID on the slave", || sync_end_tid(&e, &s) == t2);
    signal(child.id(), Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    same(&e, &m, &s);
}

#[test]
fn stock_hammer_gets_no_compression_and_an_explicit_one_is_a_usage_error() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    // A directory named hammer holding a wrapper: the remote command is "…/hammer".
    let dir = e.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let hammer = dir.join("hammer");
    std::fs::write(&hammer, format!("#!/bin/sh\nexec {} \"$@\"\n", bin())).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&hammer).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&hammer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = e.path("s");
    let stock = |c: &mut Command| {
        c.env("HAMMER_RSH", fake_ssh()).env("FAKE_SSH_LOG", e.path("ssh.log")).args(["--remote-cmd"]).arg(&hammer);
    };
    let mut c = e.cmd();
    stock(&mut c);
    ok(&c.args(["-y", "copy"]).arg(&m).arg(format!("h:{}", s.display())).output().unwrap());
    assert!(!calls(&e)[0].contains(&"--link-compress".to_string()), "{:?}", calls(&e)[0]);
    same(&e, &m, &s);
    for mode in ["zstd", "lz4", "zstd:7"] {
        let mut c = e.cmd();
        stock(&mut c);
        let o = c.args(["-y", "--compress", mode, "copy"]).arg(&m).arg(format!("h:{}", s.display())).output().unwrap();
        fails(&o, 2, &format!("--compress {mode} needs hammer-mirror on the remote side"));
    }
}

#[test]
fn a_remote_that_does_not_know_link_compress_fails_naming_both_sides() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    // An older hammer-mirror: clap's answer to an option it does not know.
    let old = e.path("old-hammer-mirror");
    std::fs::write(
        &old,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --link-compress ] && {{ echo \"error: unexpected argument '--link-compress' found\" >&2; echo >&2; echo \"Usage: hammer-mirror [OPTIONS] <COMMAND>\" >&2; exit 2; }}; done\nexec {} \"$@\"\n",
            bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let old_cmd = |c: &mut Command| {
        c.env("HAMMER_RSH", fake_ssh()).arg("--remote-cmd").arg(&old);
    };
    let s = e.path("s");
    for (src, dst) in [
        (m.display().to_string(), format!("h:{}", s.display())),
        (format!("h:{}", m.display()), s.display().to_string()),
    ] {
        let mut c = e.cmd();
        old_cmd(&mut c);
        let o = c.args(["-y", "copy", &src, &dst]).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "a refusal: retrying cannot help\n{}", show(&o));
        let err = stderr(&o);
        assert!(err.contains("does not know --link-compress"), "{err}");
        assert!(err.contains(&old.display().to_string()) && err.contains("older than this hammer-mirror"), "{err}");
        assert!(err.contains("--compress auto") && err.contains("--compress none"), "{err}");
        assert!(!s.exists() || sync_end_tid(&e, &s) == "0x0000000000000001", "nothing was applied");
    }
    // A stream stops on it instead of retrying forever.
    let mut c = e.cmd();
    old_cmd(&mut c);
    let o = c.args(["-y", "--retry-delay", "1", "stream"]).arg(&m).arg(format!("h:{}", s.display())).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    // --compress none talks to it as before.
    let mut c = e.cmd();
    old_cmd(&mut c);
    ok(&c.args(["-y", "--compress", "none", "copy"]).arg(&m).arg(format!("h:{}", s.display())).output().unwrap());
    same(&e, &m, &s);
}

#[test]
fn ssh_remote_allows_link_compress_for_both_roles() {
    let e = Env::new();
    let m = mixed_master(&e, "m");
    let s = e.path("s");
    let forced = |role: &str| format!("{} ssh-remote {role} {}", bin(), e.dir.path().display());
    ok(&hm(&e)
        .env("FAKE_SSH_FORCED", forced("write"))
        .args(["-y", "--compress", "zstd", "copy"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap());
    same(&e, &m, &s);
    let s2 = e.path("s2");
    ok(&hm(&e)
        .env("FAKE_SSH_FORCED", forced("read"))
        .args(["-y", "--compress", "lz4", "copy"])
        .arg(format!("h:{}", m.display()))
        .arg(&s2)
        .output()
        .unwrap());
    same(&e, &m, &s2);
}

#[test]
fn bandwidth_limits_link_bytes_after_compression() {
    let e = Env::new();
    // 3 MiB of text: at -b 256k uncompressed it would take 12 s; compressed it is a few KiB.
    let m = e.master_with("m", &[("big", &"the same line again and again\n".repeat(110_000))]);
    let s = e.path("s");
    let t = Instant::now();
    let o = hm(&e)
        .args(["-y", "--json", "-b", "256k", "--compress", "zstd", "copy"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap();
    ok(&o);
    let secs = t.elapsed();
    same(&e, &m, &s);
    let p = pass_json(&o);
    assert!(p["bytes"].as_u64().unwrap() > 3 << 20, "{p}");
    assert!(p["link_bytes"].as_u64().unwrap() < 256 << 10, "{p}");
    assert!(secs < Duration::from_secs(6), "the limit counts link bytes: {secs:?}");
    // And it still limits them: noise does not compress.
    let mut x = 88172645463325252u64;
    let noise: Vec<u8> = (0..(600 << 10))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(e.path("m.tree/noise"), noise).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let t = Instant::now();
    ok(&hm(&e)
        .args(["-b", "256k", "--compress", "zstd", "copy"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap());
    assert!(t.elapsed() >= Duration::from_millis(1800), "600 KiB of noise at 256 KiB/s: {:?}", t.elapsed());
    same(&e, &m, &s);
}

#[test]
fn a_bad_compress_value_is_a_usage_error() {
    let e = Env::new();
    for (v, want) in [("gzip", "expected auto, zstd"), ("zstd:0", "from 1 to 19"), ("zstd:20", "from 1 to 19")] {
        let o = e.run(["--compress", v, "copy", "a", "b"]);
        fails(&o, 2, want);
    }
}

/// A framed one-way stream of `m`, as a remote reader told `--link-compress` sends it.
fn framed(e: &Env, m: &Path, how: &str, out: &str) -> Vec<u8> {
    ok(&e.sh(&format!("$HM --link-compress {how} read {} > {out}", m.display())));
    std::fs::read(e.path(out)).unwrap()
}

#[test]
fn damaged_framed_links_fail_with_the_link_offset_and_leave_the_target_at_its_last_tid() {
    let e = Env::new();
    let m = mixed_master(&e, "m");
    let s = e.path("s");
    let t0 = {
        // A first pass, then the damaged second one must leave s here.
        ok(&e.sh(&format!(
            "$HM --link-compress zstd read {} | $HM -y --link-compress zstd write {}",
            m.display(),
            s.display()
        )));
        sync_end_tid(&e, &s)
    };
    assert_eq!(t0, sync_end_tid(&e, &m));
    std::fs::write(e.path("m.tree/more"), "more text\n".repeat(20_000)).unwrap();
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let good = framed(&e, &m, "zstd", "good.z");
    // The first frame header is at byte 8, its payload after 12 more.
    let first_len = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let second = 8 + 12 + first_len;
    let mut flag = good.clone();
    flag[second] = 9;
    let mut huge = good.clone();
    huge[second + 8..second + 12].copy_from_slice(&(64u32 << 20).to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("truncated", good[..second + 100].to_vec(), "the link ended inside a frame".into()),
        ("bad flag", flag, format!("bad frame at link byte {second}: flag 0x09")),
        ("oversized", huge, format!("bad frame at link byte {second}: raw length 67108864 is outside")),
        ("raw stream", std::fs::read(e.path("m")).map(|_| Vec::new()).unwrap(), String::new()),
    ];
    for (what, bytes, want) in cases {
        if what == "raw stream" {
            // An unframed stream where frames are expected.
            ok(&e.sh(&format!("$HM read {} > raw.stream", m.display())));
            let o = e.sh(&format!("$HM --link-compress zstd write {} < raw.stream", s.display()));
            assert_ne!(o.status.code(), Some(0), "{}", show(&o));
            assert!(
                stderr(&o).contains("an uncompressed mirror stream: the peer does not frame the link"),
                "{}",
                show(&o)
            );
            assert_eq!(sync_end_tid(&e, &s), t0, "{what}");
            continue;
        }
        std::fs::write(e.path("bad.z"), &bytes).unwrap();
        let o = e.sh(&format!("$HM --link-compress zstd write {} < bad.z", s.display()));
        assert_ne!(o.status.code(), Some(0), "{what}: {}", show(&o));
        assert!(stderr(&o).contains(&want), "{what}: {}", show(&o));
        assert_eq!(sync_end_tid(&e, &s), t0, "{what}: the target stays at its last committed TID");
    }
    // The good one still applies.
    let o = e.sh(&format!("$HM --link-compress zstd write {} < good.z", s.display()));
    ok(&o);
    same(&e, &m, &s);
}

#[test]
fn through_a_real_sshd_every_mode_copies_and_auto_reports_its_link_bytes() {
    let e = Env::new();
    let Some(d) = crate::sshd::start_sshd(&e) else { return };
    let m = mixed_master(&e, "m");
    for (i, mode) in ["auto", "zstd:1", "lz4", "none"].iter().enumerate() {
        let s = e.path(&format!("s{i}"));
        let o = crate::sshd::hm(&e, &d)
            .args(["-y", "--json", "--compress", mode, "copy"])
            .arg(&m)
            .arg(format!("127.0.0.1:{}", s.display()))
            .output()
            .unwrap();
        ok(&o);
        same(&e, &m, &s);
        let p = pass_json(&o);
        assert!(p["link_bytes"].as_u64().unwrap() <= p["bytes"].as_u64().unwrap() + 4096, "{mode}: {p}");
        let back = e.path(&format!("b{i}"));
        ok(&crate::sshd::hm(&e, &d)
            .args(["-y", "--compress", mode, "copy"])
            .arg(format!("127.0.0.1:{}", m.display()))
            .arg(&back)
            .output()
            .unwrap());
        same(&e, &m, &back);
    }
}

#[test]
fn json_progress_carries_link_bytes_and_the_ratio() {
    let e = Env::new();
    // 6 MiB of text and 3 MiB of noise: about 3.2 MB on the link at 1 MiB/s,
    // beyond what the link thread queues, so progress comes during the pass.
    let tree = e.path("m.tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..6 {
        std::fs::write(tree.join(format!("text{i}")), format!("a line of text {i}\n").repeat(65_000)).unwrap();
        let noise: Vec<u8> = (0..(512 << 10))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(tree.join(format!("noise{i}")), noise).unwrap();
    }
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    ok(&e.run([OsStr::new("import"), tree.as_os_str(), m.as_os_str()]));
    let s = e.path("s");
    let o = hm(&e)
        .args(["-y", "--json", "-b", "1m", "--compress", "zstd", "copy"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap();
    ok(&o);
    let out = stdout(&o);
    let progress: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.contains("\"event\":\"progress\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!progress.is_empty(), "{}", show(&o));
    for p in &progress {
        let (bytes, link) = (p["bytes"].as_u64().unwrap(), p["link_bytes"].as_u64().unwrap());
        assert!(link > 0 && link < bytes, "{p}");
        assert!(p["ratio"].as_f64().unwrap() < 1.0, "{p}");
    }
    let p = pass_json(&o);
    assert!(p["ratio"].as_f64().unwrap() < 0.5, "two thirds of the tree are text: {p}");
}

#[test]
fn frames_still_on_their_way_to_a_slow_link_are_not_a_stall() {
    let e = Env::new();
    // 3 MiB of noise at 512 KiB/s: the half has handed over its last batch
    // seconds before the link thread has sent it; the watchdog (2 s) must
    // see the link bytes move.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..(3 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::create_dir_all(e.path("m.tree")).unwrap();
    std::fs::write(e.path("m.tree/noise"), noise).unwrap();
    let m = e.path("m");
    ok(&e.run([OsStr::new("pfs-master"), m.as_os_str()]));
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let s = e.path("s");
    let o = hm(&e)
        .args(["-y", "-b", "512k", "--stall-timeout", "2", "--compress", "zstd", "copy"])
        .arg(&m)
        .arg(format!("h:{}", s.display()))
        .output()
        .unwrap();
    ok(&o);
    same(&e, &m, &s);
}
