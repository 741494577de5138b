//! What the three binaries (`ovplan`, `ovrun`, `ovsim`) share on their command line: the
//! `completions` and `man` subcommands, which describe the binary's own clap command (shell
//! completion scripts through `clap_complete`, manual pages through `clap_mangen`), and the
//! parser of the RFC 3339 instants that `--at` and `--from` take.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap_complete::Shell;

/// The subcommands every binary has about itself; each binary flattens them into its own
/// subcommands (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SelfDescription {
    /// Print a shell completion script (bash, zsh, fish...), e.g. `completions bash >
    /// /usr/share/bash-completion/completions/NAME`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff), e.g. `man > NAME.1`; with --dir, write one page for the
    /// command and one for each subcommand (`NAME-SUBCOMMAND.1`) into that folder.
    Man {
        /// The folder to write every page into (e.g. /usr/local/share/man/man1).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl SelfDescription {
    /// Prints (or writes) what was asked for about `command`, the binary's whole clap command
    /// (`Cli::command()`).
    ///
    /// # Errors
    /// Standard output or the man folder cannot be written.
    pub fn run(&self, command: clap::Command) -> std::io::Result<()> {
        match self {
            Self::Completions { shell } => {
                let mut command = command;
                let name = command.get_name().to_owned();
                let mut script = Vec::new();
                clap_complete::generate(*shell, &mut command, name, &mut script);
                std::io::stdout().lock().write_all(&script)
            }
            Self::Man { dir: Some(dir) } => clap_mangen::generate_to(command, dir),
            Self::Man { dir: None } => {
                let mut page = Vec::new();
                clap_mangen::Man::new(command).render(&mut page)?;
                std::io::stdout().lock().write_all(&page)
            }
        }
    }
}

/// An RFC 3339 instant, as a clap `value_parser` for options such as `--at` and `--from`; clap
/// reports a bad one as a usage error (exit 2) naming the option.
///
/// # Errors
/// `text` is not an RFC 3339 instant.
pub fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("not an RFC 3339 instant: {e}\nhelp: write e.g. 2026-01-31T02:00:00+01:00")
        })
}
