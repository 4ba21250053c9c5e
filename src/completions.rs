//! The `completions` command: clap_complete's scripts, the bash one repaired for our hyphenated name.
//!
//! clap_complete's bash script (4.6, clap-rs/clap#6421) names the state of
//! `hammer-mirror copy` `hammer__mirror__subcmd__copy` in the loop that reads
//! the words, but `hammer__subcmd__mirror__subcmd__copy` in the case arms that
//! offer the completions, so nothing after a command ever completed. The arms
//! are renamed to the loop's spelling here (a no-op once clap_complete spells
//! them alike); the other shells' scripts are clap_complete's as they are.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The name the scripts complete.
pub const BIN: &str = "hammer-mirror";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    match shell {
        Shell::Bash => repair_bash(&String::from_utf8_lossy(&out)).into_bytes(),
        _ => out,
    }
}

/// Spells the case arms' states as the word loop does.
fn repair_bash(script: &str) -> String {
    let loop_spelling = format!("{}__subcmd__", BIN.replace('-', "__"));
    let arm_spelling = format!("{}__subcmd__", BIN.replace('-', "__subcmd__"));
    script.replace(&arm_spelling, &loop_spelling)
}

/// Writes the script for `shell` to `out`; a reader that went away
/// (`completions bash | head -1`) is no error.
pub fn print(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    match out.write_all(&script(shell)).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The states the word loop assigns (`cmd="..."`) and the case arms (`    state)`).
    fn states(script: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let assigned = script
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\"")?.strip_suffix('"').map(String::from))
            .filter(|s| !s.is_empty())
            .collect();
        let arms = script
            .lines()
            .filter(|l| l.starts_with("        ") && !l.starts_with("         "))
            .filter_map(|l| l.trim().strip_suffix(')'))
            .filter(|s| s.starts_with(&BIN.replace('-', "__")))
            .map(String::from)
            .collect();
        (assigned, arms)
    }

    #[test]
    fn every_bash_state_the_loop_reaches_has_its_case_arm() {
        let script = String::from_utf8(script(Shell::Bash)).unwrap();
        let (assigned, arms) = states(&script);
        assert!(assigned.contains("hammer__mirror__subcmd__copy"), "{assigned:?}");
        let missing: Vec<_> = assigned.difference(&arms).collect();
        assert!(missing.is_empty(), "states without a case arm: {missing:?}");
        // Without the repair, clap_complete's arms are what #6421 describes.
        let mut raw = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), BIN, &mut raw);
        let (assigned, arms) = states(&String::from_utf8(raw).unwrap());
        if assigned.is_subset(&arms) {
            eprintln!("note: clap_complete now spells the bash states alike; repair_bash is a no-op");
        }
    }

    #[test]
    fn a_closed_reader_is_no_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(print(Shell::Zsh, &mut Closed).is_ok());
    }
}
