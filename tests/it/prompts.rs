//! The slave-creation question at a terminal: asked before any bar, once, on our own terminal even for a remote target.

use crate::terminal::{on_pty, slow_master};
use crate::util::{Env, fake_ssh, ok, sync_end_tid};

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const QUESTION: &str = "Do you want to create a new slave PFS?";

#[test]
fn the_question_comes_before_the_bar_and_is_not_repeated() {
    let e = Env::new();
    slow_master(&e);
    let Some(o) = on_pty(&e, "$HM -b 1m copy m p1", Some((QUESTION, "y"))) else { return };
    ok(&o);
    let t = text(&o);
    let q = t.find(QUESTION).unwrap_or_else(|| panic!("no question in:\n{t}"));
    let bar = t.find("eta ").unwrap_or_else(|| panic!("no bar in:\n{t}"));
    assert!(q < bar, "the bar was drawn before the question:\n{t}");
    assert!(!t[..q].contains("\x1b[2K"), "something was redrawn over the question:\n{t}");
    assert_eq!(t.matches("does not exist.").count(), 1, "the question's first line was repeated:\n{t}");
    assert_eq!(sync_end_tid(&e, &e.path("p1")), sync_end_tid(&e, &e.path("m")));
}

#[test]
fn a_missing_remote_slave_is_asked_about_on_the_local_terminal() {
    let e = Env::new();
    slow_master(&e);
    let rsh = format!("HAMMER_RSH={} FAKE_SSH_LOG={}", fake_ssh().display(), e.path("ssh.log").display());
    let target = e.path("r1");
    let Some(o) =
        on_pty(&e, &format!("{rsh} $HM --remote-cmd $HM copy m backup:{}", target.display()), Some((QUESTION, "y")))
    else {
        return;
    };
    ok(&o);
    let t = text(&o);
    assert!(t.contains(&format!("PFS slave backup:{} does not exist.", target.display())), "{t}");
    assert!(t.contains(QUESTION), "{t}");
    assert!(!t.contains("no terminal to ask"), "the remote's refusal was shown although we asked:\n{t}");
    assert_eq!(sync_end_tid(&e, &target), sync_end_tid(&e, &e.path("m")));

    let declined = e.path("r2");
    let Some(o) =
        on_pty(&e, &format!("{rsh} $HM --remote-cmd $HM copy m backup:{}", declined.display()), Some((QUESTION, "n")))
    else {
        return;
    };
    assert_eq!(o.status.code(), Some(3), "a declined prompt is a refusal:\n{}", text(&o));
    assert!(text(&o).contains("the slave PFS was not created"), "{}", text(&o));
    assert!(!declined.exists());
}
