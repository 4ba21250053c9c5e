//! One configuration for a host's whole replication: `config check` and the `run` supervisor (reload, stop).

use std::ffi::OsStr;
use std::process::Stdio;

use nix::sys::signal::Signal;

use crate::util::{Env, bin, fails, fake_ssh, ok, show, signal, stdout, sync_end_tid, wait_for};

#[test]
fn the_shipped_example_passes_config_check() {
    let e = Env::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hammer-mirror.toml.example");
    let o = e.cmd().arg("--config").arg(&example).args(["config", "check"]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains(": 2 jobs, 2 streams (max_concurrent 4, bandwidth 104857600 bytes/s in all)"), "{out}");
    assert!(
        out.contains("projects: /pfs/projects -> backup@offsite.example.org:/backup/projects (interval 10 s"),
        "{out}"
    );
    // Everything a pair runs with is in its line.
    assert!(
        out.contains(
            "retry 45..600 s, compress auto, prune 1d:all,2d:1h,30d:1d,1y:30d every 3600 s, creates a missing slave)"
        ),
        "{out}"
    );
}

#[test]
fn a_bad_configuration_names_file_line_and_key_and_exits_2() {
    let e = Env::new();
    let f = e.path("bad.toml");
    for (text, want) in [
        (
            "[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\nintervl = 3\n",
            ":5: intervl: unknown field `intervl`",
        ),
        (
            "[[job]]\nname = \"a\"\nsource = \"/p\"\ntargets = [\"/q\"]\nstall_timeout = \"x\"\n",
            ":5: stall_timeout: invalid type: string \"x\", expected u64",
        ),
        ("[global]\nbandwidth = \"0x\"\n", ":2: global.bandwidth: invalid size '0x'"),
        (
            "[[job]]\nname = \"a b\"\nsource = \"/p\"\ntargets = [\"/q\"]\n",
            ":2: job 1 (a b) name: a job name is one word",
        ),
    ] {
        std::fs::write(&f, text).unwrap();
        let o = e.cmd().arg("--config").arg(&f).args(["config", "check"]).output().unwrap();
        fails(&o, 2, &format!("hammer-mirror: config: {}{want}", f.display()));
    }
    let o = e.cmd().args(["--config", "/nonexistent/x.toml", "run"]).output().unwrap();
    fails(&o, 2, "config: cannot read /nonexistent/x.toml: No such file or directory");
}

#[test]
fn run_streams_every_job_and_reloads_on_sighup() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let n = e.master_with("n", &[("b", "2")]);
    let conf = e.path("fleet.toml");
    let write_conf = |jobs: &str| {
        std::fs::write(
            &conf,
            format!("[global]\nmax_concurrent = 1\nbandwidth = \"500m\"\n\n[defaults]\ninterval = 0\ncreate = true\n\n{jobs}"),
        )
        .unwrap()
    };
    let remote = format!("backup:{}", e.path("m-remote").display());
    write_conf(&format!(
        "[[job]]\nname = \"mjob\"\nsource = \"{}\"\ntargets = [\"{}\", \"{remote}\"]\n",
        m.display(),
        e.path("m-local").display()
    ));
    let child = e
        .cmd()
        .env("HAMMER_RSH", fake_ssh())
        .args(["--remote-cmd", bin(), "--config"])
        .arg(&conf)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let at = |p: &str, t: &str| e.path(p).exists() && sync_end_tid(&e, &e.path(p)) == t;
    let tm = sync_end_tid(&e, &m);
    wait_for("both targets of the job", &|| at("m-local", &tm) && at("m-remote", &tm));
    crate::util::write_tree(&e.path("m.tree"), &[("later", "3")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let tm = sync_end_tid(&e, &m);
    wait_for("the new TID on both targets", &|| at("m-local", &tm) && at("m-remote", &tm));

    // Reload: the remote target is dropped, a job for n is added.
    write_conf(&format!(
        "[[job]]\nname = \"mjob\"\nsource = \"{}\"\ntargets = [\"{}\"]\n\n[[job]]\nname = \"njob\"\nsource = \"{}\"\ntargets = [\"{}\"]\n",
        m.display(),
        e.path("m-local").display(),
        n.display(),
        e.path("n-local").display()
    ));
    signal(child.id(), Signal::SIGHUP);
    let tn = sync_end_tid(&e, &n);
    wait_for("the added job", &|| at("n-local", &tn));
    crate::util::write_tree(&e.path("m.tree"), &[("after-reload", "4")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let tm = sync_end_tid(&e, &m);
    wait_for("the kept pair to go on", &|| at("m-local", &tm));
    // A file that no longer parses is reported, and the running pairs go on.
    std::fs::write(&conf, "[[job]]\nbroken").unwrap();
    signal(child.id(), Signal::SIGHUP);

    signal(child.id(), Signal::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("running ") && err.contains(": 1 jobs, 2 streams (at most 1 passes at once"), "{err}");
    assert!(err.contains(&format!("stopping [mjob] {} -> {remote}", m.display())), "{err}");
    assert!(err.contains("reloaded ") && err.contains(": 2 jobs, 2 streams"), "{err}");
    assert!(err.contains("failed, keeping the running configuration"), "{err}");
    assert!(err.contains(" stopped"), "{err}");
    assert_ne!(sync_end_tid(&e, &e.path("m-remote")), tm, "the removed pair did not get the later TID");
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), e.path("m-local").as_os_str()]));
    // Many pairs share one log: every line says when, and a pair's lines name it.
    for line in err.lines() {
        let b = line.as_bytes();
        assert!(b.len() > 21 && b[4] == b'-' && b[10] == b'T' && &b[19..21] == b"Z ", "no timestamp: {line:?}\n{err}");
    }
    assert!(err.contains(&format!("[mjob] {} -> {}: PFS slave", m.display(), e.path("m-local").display())), "{err}");
}

/// 45 jobs × 2 targets: 135 stores open in one `run` (with 1 TiB maps each,
/// the address space ran out at about 120 and slaves failed with ENOMEM).
#[test]
fn run_holds_many_stores_at_once() {
    let e = Env::new();
    const JOBS: usize = 45;
    std::fs::create_dir(e.path("src")).unwrap();
    std::fs::create_dir(e.path("a")).unwrap();
    std::fs::create_dir(e.path("b")).unwrap();
    let tree = e.path("tree");
    crate::util::write_tree(&tree, &[("f", "1")]);
    for j in 0..JOBS {
        let pfs = e.path(&format!("src/j{j:02}"));
        ok(&e.run([OsStr::new("pfs-master"), pfs.as_os_str()]));
        ok(&e.run([OsStr::new("import"), tree.as_os_str(), pfs.as_os_str()]));
    }
    let conf = e.path("fleet.toml");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmax_concurrent = 4\n[defaults]\ninterval = 0\ncreate = true\n[[job]]\nname = \"many\"\nsource = \"{}/*\"\ntargets = [\"{}/\", \"{}/\"]\n",
            e.path("src").display(),
            e.path("a").display(),
            e.path("b").display()
        ),
    )
    .unwrap();
    let child =
        e.cmd().arg("--config").arg(&conf).arg("run").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let synced = |j: usize| {
        let t = sync_end_tid(&e, &e.path(&format!("src/j{j:02}")));
        ["a", "b"].iter().all(|d| {
            let p = e.path(&format!("{d}/j{j:02}"));
            p.exists() && sync_end_tid(&e, &p) == t
        })
    };
    wait_for("every target of every job", &|| (0..JOBS).all(synced));
    signal(child.id(), Signal::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("Lost Link") && !err.contains("os error"), "{err}");
}
