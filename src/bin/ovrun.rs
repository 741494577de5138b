//! `ovrun`: the executor the compiled units invoke. Parses arguments, reads the runner config
//! and the clock once, calls the library, maps the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use ovbackup::host;
use ovbackup::plan::runner::RunnerConfig;
use ovbackup::plan::schedule::{Calendar, due};
use ovbackup::run::backup;
use ovbackup::run::catalog::CatalogError;

/// Exit codes (also in the README): 0 success (or due); `due`: 1 not due; `backup`: 1 the
/// backup failed (nothing was recorded as a point), 3 another `ovrun` holds the VM, 4 stopped by
/// a signal (the engine's backup was finalized); every command: 2 usage, configuration or I/O
/// error.
const NOT_DUE: u8 = 1;
const FAILED: u8 = 1;
const USAGE_OR_CONFIG: u8 = 2;
const BUSY: u8 = 3;
const INTERRUPTED: u8 = 4;

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
    /// Back up the VM now: full or incremental as the policy says, into the backup directory.
    Backup {
        /// The VM's runner config (written by `ovplan build`).
        #[arg(long)]
        config: PathBuf,
        /// Take a full backup whatever the policy says.
        #[arg(long)]
        full: bool,
        /// Parallel connections per disk.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Seconds to wait for another ovrun working on the same VM.
        #[arg(long, default_value_t = 60)]
        lock_wait: u64,
        /// Seconds to wait for a VM or disk locked on the engine.
        #[arg(long, default_value_t = 600)]
        engine_lock_wait: u64,
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
        Command::Backup {
            config,
            full,
            workers,
            lock_wait,
            engine_lock_wait,
        } => {
            init_logging();
            let options = backup::Options {
                force_full: full,
                workers,
                lock_wait: Duration::from_secs(lock_wait),
                engine_lock_wait: Duration::from_secs(engine_lock_wait),
                ..backup::Options::default()
            };
            backup_command(&config, options)
        }
    }
}

/// Log lines on standard error: JSON when `OVRUN_LOG_FORMAT=json` (the compiled units set it),
/// plain text otherwise; `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("OVRUN_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn backup_command(path: &PathBuf, options: backup::Options) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("starting the runtime: {e}")),
    };
    let stop = options.stop.clone();
    let outcome = runtime.block_on(async {
        tokio::spawn(async move {
            stop_signal().await;
            tracing::warn!(
                "stopping: finalizing the engine's backup first (a second signal stops at once)"
            );
            stop.store(true, Ordering::Relaxed);
            stop_signal().await;
            tracing::error!("stopped at once: the engine's backup may need finalizing by hand");
            std::process::exit(i32::from(INTERRUPTED));
        });
        backup::run(&config, &options).await
    });
    match outcome {
        Ok(outcome) => {
            let m = &outcome.manifest;
            let bytes: u64 = m.disks.iter().map(|d| d.bytes_transferred).sum();
            tracing::info!(
                vm = %m.vm,
                point = %m.point,
                kind = %m.kind,
                bytes_transferred = bytes,
                "backup point {} ({}) written: {}",
                m.point,
                m.kind,
                backup::human_bytes(bytes)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("backup of {} failed: {e}", config.vm);
            ExitCode::from(match e {
                backup::BackupError::Catalog(CatalogError::Busy { .. }) => BUSY,
                backup::BackupError::Interrupted => INTERRUPTED,
                backup::BackupError::Config(_) => USAGE_OR_CONFIG,
                _ => FAILED,
            })
        }
    }
}

async fn stop_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
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
