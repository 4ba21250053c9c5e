//! Questions to the operator: only on a terminal (never on the stream pipe), skipped by -y.

use anyhow::Context;

/// A terminal is there to answer a question. Under nohup, cron or systemd
/// there is no controlling terminal and this is false.
pub fn have_terminal() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

/// Asks a yes/no question on the terminal (dialoguer reads /dev/tty when
/// stdin is a pipe, so the mirror stream is never read as an answer).
pub fn ask(question: &str) -> anyhow::Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .context("reading the answer from the terminal")
}
