//! Questions to the operator: only on a terminal (never on the stream pipe), skipped by -y.

use anyhow::Context;

/// A terminal is there to answer a question. Under nohup, cron or systemd
/// there is no controlling terminal and this is false.
pub fn have_terminal() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

/// Asks a yes/no question on the terminal (dialoguer reads /dev/tty when
/// stdin is a pipe, so the mirror stream is never read as an answer). The
/// lines before the question's last are printed once; dialoguer redraws
/// only the last, with the answer.
pub fn ask(question: &str) -> anyhow::Result<bool> {
    let (intro, last) = question.rsplit_once('\n').unwrap_or(("", question));
    if !intro.is_empty() {
        eprintln!("{intro}");
    }
    dialoguer::Confirm::new()
        .with_prompt(last)
        .default(false)
        .interact()
        .context("reading the answer from the terminal")
}
