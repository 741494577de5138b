//! `ovrun`: the executor the compiled units invoke. Parses arguments, reads the runner config
//! and the clock once, calls the library, maps the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use ovbackup::host;
use ovbackup::plan::runner::RunnerConfig;
use ovbackup::plan::schedule::{Calendar, due};

/// Exit codes: 0 success (or due), 1 not due, 2 usage, configuration or I/O error.
const NOT_DUE: u8 = 1;
const USAGE_OR_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ovrun",
    version,
    about = "Back up and restore oVirt VMs as their compiled policy says"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 when a start at that instant is due by the VM's schedule, 1 when not (says why).
    Due {
        /// The VM's runner config (written by `ovplan build`).
        #[arg(long)]
        config: PathBuf,
        /// The start's instant (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE_OR_CONFIG } else { 0 });
        }
    };
    match cli.command {
        Command::Due { config, at } => due_command(&config, at.as_deref()),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE_OR_CONFIG)
}

fn load(path: &PathBuf) -> Result<RunnerConfig, String> {
    let text = fs_err::read_to_string(path).map_err(|e| {
        format!("{e}\nhelp: give the runner config `ovplan build` wrote for the VM")
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a runner config: {e}\nhelp: rebuild the bundle with `ovplan build`",
            path.display()
        )
    })
}

fn due_command(path: &PathBuf, at: Option<&str>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let at: DateTime<Utc> = match at {
        None => Utc::now(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => return fail(format!("--at `{text}` is not an RFC 3339 instant: {e}")),
        },
    };
    let zone = host::schedule_zone(config.timezone.as_deref());
    let calendars = config.schedule().and_then(|s| Ok((s, config.guard()?)));
    let (schedule, guard) = match calendars {
        Ok(found) => found,
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    let built = Calendar::new(&schedule, zone)
        .and_then(|c| Ok((c, guard.map(|g| Calendar::new(&g, zone)).transpose()?)));
    let (calendar, superset) = match built {
        Ok(found) => found,
        Err(problem) => return fail(format!("{}: schedule: {}", path.display(), problem.message)),
    };
    let verdict = due(&calendar, superset.as_ref(), at);
    println!("VM {}: {}", config.vm, verdict.why);
    if verdict.due {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_DUE)
    }
}
