//! Integration tests: the real binary, as an administrator runs it.

use std::ffi::OsStr;

use crate::util::{Env, fails, ok, stderr, stdout};

#[test]
fn help_lists_the_working_commands() {
    let e = Env::new();
    let o = e.run(["--help"]);
    ok(&o);
    let h = stdout(&o);
    for cmd in
        ["read", "read-stream", "write", "dump", "copy", "stream", "pfs-master", "pfs-status", "import", "export"]
    {
        assert!(h.contains(&format!("  {cmd} ")), "--help lacks {cmd}:\n{h}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let e = Env::new();
    fails(&e.run(["-S", "4q", "dump"]), 2, "invalid size '4q'");
    fails(&e.run(["copy", "--", "-bad:/x", "y"]), 2, "a host may not start with '-'");
    fails(&e.run(["copy", "h;x:/p", "y"]), 2, "illegal character ';' in host");
    fails(&e.run(["frobnicate"]), 2, "unrecognized subcommand");
}

#[test]
fn dump_rejects_garbage_with_the_offset() {
    let e = Env::new();
    let o = e.sh("head -c 64 /dev/zero | $HM dump");
    fails(&o, 1, "mirror-dump: malformed record at byte 0: bad signature 0x00000000");
    let o = e.sh("printf 'rr\\xd9M' | $HM dump");
    fails(&o, 1, "truncated stream at byte 0: record needs 16 bytes, stream ended after 4");
    let o = e.sh("printf 'M\\xd9rr\\x00\\x00\\x00\\x00\\x18\\x00\\x00\\x00\\x04\\x00\\x00\\x00' | $HM dump");
    fails(&o, 1, "stream written on a host of the other byte order");
}

#[test]
fn pfs_commands_create_show_update_and_destroy() {
    let e = Env::new();
    let m = e.path("m");
    let o = ok(&e.run([OsStr::new("pfs-master"), m.as_os_str(), OsStr::new("label=main")])).clone();
    assert!(stdout(&o).contains(&format!("Creating PFS#1 ({})\tsucceeded!", m.display())), "{}", stdout(&o));
    assert!(stdout(&o).contains("    operating as a MASTER"));
    let st = crate::util::status_json(&e, &m);
    assert_eq!(st["label"], "main");
    assert_eq!(st["mode"], "master");
    let uuid = st["shared_uuid"].as_str().unwrap().to_string();
    fails(&e.run([OsStr::new("pfs-master"), m.as_os_str()]), 1, "file exists");

    let s = e.path("s");
    ok(&e.run([OsStr::new("pfs-slave"), s.as_os_str(), OsStr::new(&format!("shared-uuid={uuid}"))]));
    let st = crate::util::status_json(&e, &s);
    assert_eq!(st["mode"], "slave");
    assert_eq!(st["shared_uuid"], uuid.as_str());

    ok(&e.run([OsStr::new("pfs-update"), m.as_os_str(), OsStr::new("label=renamed"), OsStr::new("prune-min=1d")]));
    let o = ok(&e.run([OsStr::new("pfs-status"), m.as_os_str()])).clone();
    assert!(stdout(&o).contains("    label=\"renamed\"\n    prune-min=1d\n"), "{}", stdout(&o));

    fails(&e.run([OsStr::new("pfs-destroy"), s.as_os_str()]), 3, "pass -y");
    assert!(s.exists());
    let o = ok(&e.run([OsStr::new("-y"), OsStr::new("pfs-destroy"), s.as_os_str()])).clone();
    assert!(stdout(&o).contains(&format!("pfs-destroy of PFS#1 ({}) succeeded!", s.display())), "{}", stdout(&o));
    assert!(!s.exists());
    // A slave changes only through mirror-write: importing into one is a refusal.
    std::fs::create_dir(e.path("t")).unwrap();
    let sl = e.path("sl");
    ok(&e.run([OsStr::new("pfs-slave"), sl.as_os_str(), OsStr::new(&format!("shared-uuid={uuid}"))]));
    fails(
        &e.run([OsStr::new("import"), e.path("t").as_os_str(), sl.as_os_str()]),
        3,
        "is a slave: only mirror-write changes it",
    );
    fails(&e.run([OsStr::new("pfs-status"), s.as_os_str()]), 1, "no such PFS");
    // -q: the confirmations are routine messages; pfs-status is the output.
    let q = e.path("q");
    for args in [
        vec![OsStr::new("pfs-master"), q.as_os_str()],
        vec![OsStr::new("pfs-update"), q.as_os_str(), OsStr::new("label=quiet")],
        vec![OsStr::new("pfs-downgrade"), q.as_os_str()],
        vec![OsStr::new("pfs-upgrade"), q.as_os_str()],
        vec![OsStr::new("-y"), OsStr::new("pfs-destroy"), q.as_os_str()],
    ] {
        let o = ok(&e.run(std::iter::once(OsStr::new("-q")).chain(args.iter().copied()))).clone();
        assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("", ""), "-q {args:?}");
    }
    assert!(!q.exists());
}

#[test]
fn read_pipe_write_then_dump() {
    let e = Env::new();
    let m = e.master_with("m", &[("a/b.txt", "hello"), ("c.txt", "world")]);
    let o = e.sh("$HM read m | $HM -y write s");
    ok(&o);
    let tid = crate::util::sync_end_tid(&e, &m);
    assert!(stdout(&o).contains(&format!("Source can update synctid to {tid}")), "{}", crate::util::show(&o));
    assert!(stderr(&o).contains("Mirror-read m succeeded"), "{}", crate::util::show(&o));
    assert_eq!(crate::util::sync_end_tid(&e, &e.path("s")), tid);
    let o = ok(&e.sh("$HM read m | $HM dump")).clone();
    let d = stdout(&o);
    assert!(d.contains("Record obj=0000000000000001 key=0000000000000000 rt=01 ot=01"), "{d}");
    assert!(d.contains("       tids "), "{d}");
}

#[test]
fn write_without_terminal_or_yes_refuses_with_status_3() {
    let e = Env::new();
    e.master_with("m", &[("f", "x")]);
    let o = e.sh("$HM read m | $HM write s");
    fails(&o, 3, "pass -y to create it");
    assert!(!e.path("s").exists());
}

#[test]
fn read_of_a_missing_pfs_fails_naming_it() {
    let e = Env::new();
    fails(&e.sh("$HM read nope > /dev/null"), 1, "no such PFS");
}

#[test]
fn copy_local_to_local_full_and_incremental() {
    let e = Env::new();
    let m = e.master_with("m", &[("a.txt", "one"), ("d/b.txt", "two")]);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m));
    crate::util::write_tree(&e.path("m.tree"), &[("new.txt", "three")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let o = ok(&e.run([OsStr::new("copy"), m.as_os_str(), s.as_os_str()])).clone();
    assert_eq!(crate::util::sync_end_tid(&e, &s), crate::util::sync_end_tid(&e, &m), "{}", crate::util::show(&o));
    ok(&e.run([OsStr::new("export"), s.as_os_str(), e.path("out").as_os_str()]));
    let d = e.sh("diff -r m.tree out");
    ok(&d);
}

#[test]
fn copy_refuses_a_master_target_with_status_3() {
    let e = Env::new();
    let m = e.master_with("m", &[("a", "1")]);
    let m2 = e.master_with("m2", &[("b", "2")]);
    let o = e.run([OsStr::new("copy"), m.as_os_str(), m2.as_os_str()]);
    assert_eq!(o.status.code(), Some(3), "{}", crate::util::show(&o));
}

#[test]
fn completions_for_each_shell() {
    let e = Env::new();
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef hammer-mirror"), ("fish", "complete -c hammer-mirror")]
    {
        let o = e.run(["completions", shell]);
        ok(&o);
        assert!(stdout(&o).contains(marker), "{shell}: {}", stdout(&o));
        assert!(stdout(&o).contains("pfs-master"), "{shell} completes subcommands");
    }
    fails(&e.run(["completions", "tcsh"]), 2, "invalid value 'tcsh'");
}

#[test]
fn dump_prints_exactly_what_hammer_prints_for_the_golden_stream() {
    let e = Env::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let o = e.sh(&format!("$HM dump < {}", dir.join("stream.bin").display()));
    ok(&o);
    let want = std::fs::read_to_string(dir.join("dump.txt")).unwrap();
    assert_eq!(stdout(&o), want, "stdout differs from the C transcription of hammer_cmd_mirror_dump");
    assert!(stderr(&o).contains("carries a source data CRC error"), "{}", crate::util::show(&o));
}

#[test]
fn verify_identical_pair_says_so_and_nothing_else() {
    let e = Env::new();
    let m = e.master_with("m", &[("a.txt", "one"), ("d/b.txt", "two")]);
    let s = e.path("s");
    ok(&e.run([OsStr::new("-y"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]));
    let t1 = crate::util::sync_end_tid(&e, &s);
    let o = e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]);
    ok(&o);
    assert_eq!(
        crate::util::stdout(&o),
        format!("{} and {} are identical as of {t1} (9 records)\n", m.display(), s.display())
    );
    assert_eq!(crate::util::stderr(&o), "", "verify of an identical pair prints nothing on stderr");

    // After a new import that the slave has not received, the default TID is
    // the slave's: still identical. Asking for the master's TID is refused.
    crate::util::write_tree(&e.path("m.tree"), &[("new.txt", "three")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let t2 = crate::util::sync_end_tid(&e, &m);
    ok(&e.run([OsStr::new("verify"), m.as_os_str(), s.as_os_str()]));
    let o = e.run([OsStr::new("verify"), OsStr::new("--as-of"), OsStr::new(&t2), m.as_os_str(), s.as_os_str()]);
    fails(&o, 1, &format!("only reaches TID {t1}; cannot compare as of {t2}"));
    // As of the first TID, the master's history equals the slave.
    ok(&e.run([OsStr::new("verify"), OsStr::new("--as-of"), OsStr::new(&t1), m.as_os_str(), s.as_os_str()]));
}

#[test]
fn verify_reports_differences_with_obj_key_and_tid_and_exits_1() {
    let e = Env::new();
    let m1 = e.master_with("m1", &[("a.txt", "one")]);
    let m2 = e.master_with("m2", &[("a.txt", "one")]);
    let o = e.run([OsStr::new("verify"), m1.as_os_str(), m2.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::show(&o));
    let out = crate::util::stdout(&o);
    // Same tree, but recorded by two masters at different TIDs: every record
    // is only in one of them.
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("difference: obj=0000000000000001 key=")
            && first.contains(" tid=")
            && first.contains("only in"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("differences"), "{out}");
    assert!(out.contains(&format!("{} and {} differ as of ", m1.display(), m2.display())), "{out}");
    assert!(crate::util::stderr(&o).contains("different shared uuids"), "{}", crate::util::show(&o));

    let o = e.run([OsStr::new("--json"), OsStr::new("verify"), m1.as_os_str(), m2.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::show(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("verify --json is JSON");
    assert_eq!(j["identical"], false);
    assert!(j["differences"].as_u64().unwrap() >= 4, "{j}");
    assert!(j["first_differences"][0]["obj_id"].as_str().is_some(), "{j}");
}

#[test]
fn copy_json_prints_one_object_per_pass() {
    let e = Env::new();
    let m = e.master_with("m", &[("a.txt", "one"), ("d/b.txt", "two")]);
    let s = e.path("s");
    let o = e.run([OsStr::new("-y"), OsStr::new("--json"), OsStr::new("copy"), m.as_os_str(), s.as_os_str()]);
    ok(&o);
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{}", crate::util::show(&o));
    let j: serde_json::Value = serde_json::from_str(lines[0]).expect("copy --json prints JSON");
    assert_eq!(j["source"], m.display().to_string());
    assert_eq!(j["target"], s.display().to_string());
    assert_eq!(j["result"], "synced");
    assert_eq!(j["tid_end"].as_str(), Some(crate::util::sync_end_tid(&e, &s).as_str()));
    assert!(j["records"].as_u64().unwrap() >= 5, "{j}");
    assert!(j["bytes"].as_u64().unwrap() > 0 && j["seconds"].as_f64().is_some(), "{j}");
    // Nothing but the object on stdout, no bar or control characters anywhere.
    assert!(!o.stderr.contains(&0x1b) && !o.stdout.contains(&0x1b), "{}", crate::util::show(&o));
}

#[test]
fn quiet_read_and_write_print_nothing_when_all_goes_well() {
    let e = Env::new();
    e.master_with("m", &[("a.txt", "one")]);
    let o = e.sh("$HM -q read m | $HM -q -y write s");
    ok(&o);
    assert_eq!(stderr(&o), "", "-q printed messages");
    // Without -q, hammer's messages are there.
    let o = e.sh("$HM read m | $HM -y write s2");
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("Mirror-read m succeeded") && err.contains("Auto create new slave PFS!"), "{err}");
}

#[test]
fn a_begin_tid_bounds_the_prescan_and_the_stream() {
    let e = Env::new();
    let big = "y".repeat(300_000);
    let m = e.master_with("m", &[("big.bin", &big)]);
    let t1 = crate::util::sync_end_tid(&e, &m);
    crate::util::write_tree(&e.path("m.tree"), &[("small.txt", "new")]);
    ok(&e.run([OsStr::new("import"), e.path("m.tree").as_os_str(), m.as_os_str()]));
    let after = format!("{:#x}", u64::from_str_radix(t1.trim_start_matches("0x"), 16).unwrap() + 1);
    let o = e.sh(&format!("$HM read m {after} > inc.stream"));
    ok(&o);
    let err = stderr(&o);
    let prescan = err.lines().find(|l| l.starts_with("Prescan 1 chunks")).unwrap_or_else(|| panic!("{err}"));
    let bytes: u64 = prescan.split('(').nth(1).unwrap().trim_end_matches(')').parse().unwrap();
    assert!(bytes < 10_000, "the prescan counted the history before the begin TID: {prescan}");
    let after_tid = u64::from_str_radix(&after[2..], 16).unwrap();
    assert!(err.contains(&format!("synced 0x{after_tid:016x}..")), "the pass starts at the begin TID: {err}");
    let size = std::fs::metadata(e.path("inc.stream")).unwrap().len();
    assert!(size < 10_000, "the increment after {t1} is {size} bytes");
}
