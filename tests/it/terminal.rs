//! On and off a terminal: progress bars, plain log lines, the slave-creation prompt (a pty from script(1)).

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crate::util::{Env, bin, ok, stderr, wait_for};

/// Runs `cmd` (a shell line; `$HM` is the binary) on a pseudo-terminal made
/// by util-linux `script`; with `answer = (question, keys)`, types `keys`
/// once `question` has appeared on the terminal. None (with the reason
/// printed) where `script` is missing.
pub(crate) fn on_pty(e: &Env, cmd: &str, answer: Option<(&str, &str)>) -> Option<Output> {
    if !e.sh("command -v script").status.success() {
        eprintln!("skipped: script(1) from util-linux is not installed");
        return None;
    }
    let mut child = Command::new("script")
        .args(["-qefc", cmd, "/dev/null"])
        .env("HM", bin())
        .env("HAMMER_MIRROR_LOCK_WAIT", "1")
        .env("COLUMNS", "100")
        .env_remove("HAMMER_RSH")
        .current_dir(e.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1)");
    let mut keyboard = child.stdin.take().unwrap();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (mut out, screen) = (child.stdout.take().unwrap(), Arc::clone(&screen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    if let Some((question, keys)) = answer {
        let shown = || String::from_utf8_lossy(&screen.lock().unwrap()).contains(question);
        wait_for(&format!("the question {question:?} on the terminal"), shown);
        keyboard.write_all(keys.as_bytes()).unwrap();
    }
    drop(keyboard);
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stdout = std::mem::take(&mut *screen.lock().unwrap());
    Some(Output { status, stdout, stderr: err })
}

/// A master of 3 MB: at -b 1m a copy lasts about three seconds, long enough for the bar to draw.
pub(crate) fn slow_master(e: &Env) {
    std::fs::create_dir(e.path("tree")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(e.path("tree/f"), data).unwrap();
    ok(&e.run(["pfs-master", "m"]));
    ok(&e.run(["import", "tree", "m"]));
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_bar_with_rate_and_eta_and_messages_above_it() {
    let e = Env::new();
    slow_master(&e);
    let Some(o) = on_pty(&e, "$HM -b 1m -y copy m s", None) else { return };
    ok(&o);
    let t = text(&o);
    assert!(t.contains("eta "), "no ETA in:\n{t}");
    assert!(t.contains("/2.88 MiB"), "no total from the prescan in:\n{t}");
    assert!(t.contains("KiB/s"), "no rate in:\n{t}");
    assert!(t.contains("\x1b[2K"), "the bar is not redrawn in place:\n{t}");
    // The bar appears once the transfer starts (after the prescan), and
    // messages are printed on their own line above it, the bar cleared first.
    let bar_at = t.find("eta ").unwrap();
    assert!(t.find("Prescan 1 chunks").unwrap() < bar_at, "the prescan message came before the bar:\n{t}");
    let pass_at = t.find(" m -> s: synced 0x").expect("a pass line");
    assert!(
        t[..pass_at].rfind("\x1b[2K").is_some_and(|i| pass_at - i < 30),
        "pass line not printed above the bar:\n{t}"
    );
}

#[test]
fn off_a_terminal_there_are_only_plain_lines() {
    let e = Env::new();
    slow_master(&e);
    let o = e.run(["-y", "copy", "m", "s"]);
    ok(&o);
    let err = stderr(&o);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "control characters off a terminal: {err:?}");
    let pass: Vec<_> = err.lines().filter(|l| l.contains(" m -> s: synced 0x")).collect();
    assert_eq!(pass.len(), 1, "one line per pass:\n{err}");
    // A timestamp first: YYYY-MM-DDTHH:MM:SS.
    assert_eq!(pass[0].as_bytes()[4], b'-', "{}", pass[0]);
    assert_eq!(pass[0].as_bytes()[10], b'T', "{}", pass[0]);
}

#[test]
fn never_and_quiet_draw_no_bar_on_a_terminal() {
    let e = Env::new();
    slow_master(&e);
    let Some(o) = on_pty(&e, "$HM --progress never -b 4m -y copy m s", None) else { return };
    ok(&o);
    let t = text(&o);
    assert!(!t.contains("eta ") && !t.contains("\x1b[2K"), "bar drawn with --progress never:\n{t}");
    assert!(t.contains(": synced 0x"), "{t}");

    let Some(o) = on_pty(&e, "$HM -q -b 4m -y copy m s2", None) else { return };
    ok(&o);
    let t = text(&o);
    assert!(!t.contains("eta ") && !t.contains("synced"), "-q printed progress:\n{t}");
}

#[test]
fn progress_always_draws_off_a_terminal() {
    let e = Env::new();
    slow_master(&e);
    let o = e.run(["--progress", "always", "-b", "1m", "-y", "copy", "m", "s"]);
    ok(&o);
    let err = stderr(&o);
    assert!(err.contains("eta ") && err.contains("\x1b[2K"), "no bar with --progress always:\n{err}");
}

#[test]
fn the_prompt_is_answered_on_the_terminal_not_from_the_stream() {
    let e = Env::new();
    slow_master(&e);
    let question = "Do you want to create a new slave PFS?";
    let Some(o) = on_pty(&e, "$HM read m | $HM write s", Some((question, "y"))) else { return };
    ok(&o);
    let t = text(&o);
    assert!(t.contains(question), "{t}");
    assert!(t.contains("Source can update synctid to 0x"), "{t}");
    assert_eq!(crate::util::sync_end_tid(&e, &e.path("s")), crate::util::sync_end_tid(&e, &e.path("m")));

    let Some(o) = on_pty(&e, "$HM read m | $HM write s2", Some((question, "n"))) else { return };
    assert_eq!(o.status.code(), Some(3), "a declined prompt is a refusal:\n{}", text(&o));
    assert!(text(&o).contains("the slave PFS was not created"), "{}", text(&o));
    assert!(!e.path("s2").exists(), "the declined slave was created");
}
