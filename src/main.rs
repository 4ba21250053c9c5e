//! The `hammer-mirror` binary: parse the command line, run it, print the one error, exit.

#![deny(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use hammer_mirror::cli::Cli;
use hammer_mirror::{error, exit};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // `copy -h:/x s` would otherwise print the help (`-h`) and exit 0.
    if let Some(e) = hammer_mirror::endpoint::dash_host_operand(&Cli::command(), &args) {
        eprintln!("hammer-mirror: {e}");
        return exit::Status::Usage.into();
    }
    let cli = Cli::parse_from(args);
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
