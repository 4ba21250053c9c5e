//! Runs one parsed command line: the dispatch from `cli::Command` to the modules that do the work.

use std::io;

use crate::cli::{Cli, Command};
use crate::exit::Status;

/// Runs the command; the caller prints the error and maps it to an exit status.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Dump => {
            let stats = crate::mirror::dump::dump(io::stdin().lock(), io::stdout().lock())?;
            if cli.global.verbose > 0 {
                eprintln!("Mirror-dump: {} records, {} bytes", stats.records, stats.bytes);
            }
            Ok(Status::Success)
        }
    }
}
