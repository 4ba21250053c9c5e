//! The `help` command: the long help of the program or of one command, on stdout.
//!
//! clap's own `help` subcommand cannot describe itself (`help --help` is
//! "unrecognized subcommand"), so `help` is an ordinary command of ours.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::MirrorError::{self, Usage};

/// The text `help [command]` prints: what `[command] --help` prints.
pub fn text(command: Option<&str>) -> Result<String, MirrorError> {
    let mut cli = Cli::command();
    cli.build();
    let cmd = match command {
        None => &mut cli,
        Some(name) => match cli.find_subcommand_mut(name) {
            Some(sub) => sub,
            None => return Err(Usage(format!("help: no command '{name}' (hammer-mirror --help lists them)"))),
        },
    };
    Ok(cmd.render_long_help().to_string())
}

/// Prints `text(command)`; a reader that went away is no error.
pub fn print(command: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = text(command)?;
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_of_a_command_is_its_long_help() {
        let t = text(Some("mirror-copy")).unwrap();
        assert!(t.starts_with("Mirror a PFS to one or more slaves once"), "{t}");
        assert!(t.contains("Usage: hammer-mirror copy [OPTIONS] <SOURCE> <TARGET>"), "{t}");
        assert!(text(None).unwrap().contains("Commands:"));
        assert_eq!(
            text(Some("frobnicate")).unwrap_err().to_string(),
            "help: no command 'frobnicate' (hammer-mirror --help lists them)"
        );
    }
}
