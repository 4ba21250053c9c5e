//! The `hammer-mirror` binary: parse the command line, run it, print the one error, exit.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use hammer_mirror::cli::Cli;
use hammer_mirror::{error, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match hammer_mirror::app::run(cli) {
        Ok(status) => status.into(),
        // The reader of our output went away (`pfs-status ... | head -1`): as
        // ripgrep does, end quietly.
        Err(err) if error::is_stdout_closed(&err) => exit::Status::Success.into(),
        Err(err) => {
            eprintln!("hammer-mirror: {err:#}");
            exit::status_of(&err).into()
        }
    }
}
