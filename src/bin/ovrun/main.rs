//! `ovrun`: the executor the compiled units invoke. `main` parses the arguments (clap, [`args`])
//! and calls [`run`], which hands each subcommand to its handler in [`commands`] (they read the
//! runner config and the clock once and call the library, `ovbackup::run`); [`exit`] is the one
//! mapping from the library's errors to exit codes.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

mod args;
mod commands;
mod exit;
mod history;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::args::{CertCommand, Cli, Command};
use crate::commands::{
    backup_command, cert_fetch_command, config_command, due_command, each_config, merge_command,
    prune_command, restore_command, runner_configs, status_command, verify_command,
};
use crate::exit::{Failure, SUCCESS, USAGE_OR_CONFIG};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE_OR_CONFIG } else { 0 });
        }
    };
    run(cli).unwrap_or_else(|failure| ExitCode::from(failure.report(None)))
}

/// Runs the command line's command.
///
/// # Errors
/// The command failed; the [`Failure`] says how to exit.
fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let code = match cli.command {
        Command::Due { config, at } => due_command(&config, at),
        Command::Backup(args) => backup_command(&args),
        Command::Restore(args) => restore_command(&args),
        Command::Merge(args) => merge_command(&args),
        Command::Config {
            config,
            point,
            format,
        } => config_command(&config, point.as_deref(), format),
        Command::Prune(args) => each_config(args.config, args.config_dir, |path| {
            prune_command(path, args.dry_run, Duration::from_secs(args.lock_wait))
        }),
        Command::Verify(args) => each_config(args.config, args.config_dir, |path| {
            verify_command(path, Duration::from_secs(args.lock_wait))
        }),
        Command::Status(args) => {
            let mut configs = args.configs.clone();
            if let Some(dir) = &args.config_dir {
                configs.extend(runner_configs(dir)?);
            }
            status_command(&configs, &args)
        }
        Command::History {
            configs,
            format,
            limit,
        } => history::history_command(&configs, format, limit),
        Command::Cert {
            command: CertCommand::Fetch(args),
        } => cert_fetch_command(&args.config, args.engine, args.out),
        Command::SelfDescription(what) => what
            .run(Cli::command())
            .map(|()| SUCCESS)
            .map_err(|e| Failure::failed(e.to_string())),
    }?;
    Ok(ExitCode::from(code))
}
