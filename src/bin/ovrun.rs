//! `ovrun`: the executor the compiled units invoke. Parses arguments, reads the runner config
//! and the clock once, calls the library, maps the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use ovbackup::host;
use ovbackup::plan::retention::Keep;
use ovbackup::plan::runner::RunnerConfig;
use ovbackup::plan::schedule::{Calendar, due};
use ovbackup::run::catalog::{Catalog, CatalogError};
use ovbackup::run::{backup, restore};

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
enum CertCommand {
    /// Download an engine's CA from its PKI resource URL, print its fingerprint and expiry, and
    /// write it (atomically) where the runner config's `ca_file` says. With a CA file already
    /// there, the download is verified with it (renewal); else it is a first contact: compare
    /// the fingerprint with `openssl x509 -noout -fingerprint -sha256 -in
    /// /etc/pki/ovirt-engine/ca.pem` on the engine.
    Fetch {
        /// A runner config naming the engine.
        #[arg(long)]
        config: PathBuf,
        /// `source` (production) or `target` (DR).
        #[arg(long, value_parser = ["source", "target"])]
        engine: String,
        /// Write here instead of the config's `ca_file`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
        /// Back up even when this start is not due by the schedule: the compiled timers of some
        /// schedules (monthly on the last day, n-th weekday) fire on a superset of days, and
        /// `ovrun backup` skips the extra starts (exit 0) unless told this is a manual run.
        #[arg(long)]
        now: bool,
        /// The start's instant for the due check (RFC 3339); default now. For tests and drills.
        #[arg(long, hide = true)]
        at: Option<String>,
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
    /// Check the VM's backup points: every image (qemu-img check), chain links, sizes and
    /// checksums against the manifests. Exit 1 and a list on any damage.
    Verify {
        /// The VM's runner config.
        #[arg(long)]
        config: PathBuf,
        /// Seconds to wait for another ovrun working on the same VM.
        #[arg(long, default_value_t = 60)]
        lock_wait: u64,
    },
    /// Per VM: the last point and its age, chain length, sizes, the last failure.
    Status {
        /// Runner configs (one per VM; repeat).
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// `human` or `json`.
        #[arg(long, default_value = "human", value_parser = ["human", "json"])]
        format: String,
        /// Also write Prometheus text format here (node_exporter's textfile collector).
        #[arg(long)]
        metrics: Option<PathBuf>,
    },
    /// The engines' CA certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Restore a backup point into the DR engine as a VM (policy.md section 5). Without --point
    /// or --at: the newest point, unless the restore log says it was restored already under
    /// that name (the automatic DR unit runs this after each backup).
    Restore {
        /// The VM's runner config (written by `ovplan build`).
        #[arg(long)]
        config: PathBuf,
        /// The point's id (as `ovrun status` and the manifests name it).
        #[arg(long, conflicts_with = "at")]
        point: Option<String>,
        /// The newest point taken at or before this instant (RFC 3339).
        #[arg(long)]
        at: Option<String>,
        /// The VM's name in DR instead of the configured one.
        #[arg(long)]
        name: Option<String>,
        /// Check the DR engine and say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore the newest point even if it was restored already.
        #[arg(long)]
        force: bool,
        /// Parallel connections per disk.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Seconds to wait for another ovrun working on the same VM.
        #[arg(long, default_value_t = 600)]
        lock_wait: u64,
    },
    /// Write the chain of a point's disk as one qcow2 image, in one pass (a portable copy).
    Merge {
        /// The VM's runner config.
        #[arg(long)]
        config: PathBuf,
        /// The point's id.
        #[arg(long)]
        point: String,
        /// The disk's alias (needed when the point has several disks).
        #[arg(long)]
        disk: Option<String>,
        /// The image to write.
        #[arg(long)]
        out: PathBuf,
        /// Compress the image's clusters (smaller, slower to write and to read).
        #[arg(long)]
        compress: bool,
    },
    /// Apply the VM's retention to its backup points (policy.md section 4).
    Prune {
        /// The VM's runner config.
        #[arg(long)]
        config: PathBuf,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for another ovrun working on the same VM.
        #[arg(long, default_value_t = 60)]
        lock_wait: u64,
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
            now,
            at,
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
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var("OVRUN_LOG_FORMAT").as_deref() != Ok("json"),
                ..backup::Options::default()
            };
            backup_command(&config, options, now, at.as_deref())
        }
        Command::Restore {
            config,
            point,
            at,
            name,
            dry_run,
            force,
            workers,
            lock_wait,
        } => {
            init_logging();
            let selector = match (point, at) {
                (Some(point), _) => restore::Selector::Point(point),
                (None, Some(at)) => match DateTime::parse_from_rfc3339(&at) {
                    Ok(at) => restore::Selector::At(at.with_timezone(&Utc)),
                    Err(e) => return fail(format!("--at `{at}` is not an RFC 3339 instant: {e}")),
                },
                (None, None) => restore::Selector::Newest,
            };
            let request = restore::Request {
                selector,
                name,
                dry_run,
                force,
            };
            let options = backup::Options {
                workers,
                lock_wait: Duration::from_secs(lock_wait),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var("OVRUN_LOG_FORMAT").as_deref() != Ok("json"),
                ..backup::Options::default()
            };
            restore_command(&config, &options, &request)
        }
        Command::Merge {
            config,
            point,
            disk,
            out,
            compress,
        } => merge_command(&config, &point, disk.as_deref(), &out, compress),
        Command::Prune {
            config,
            dry_run,
            lock_wait,
        } => prune_command(&config, dry_run, Duration::from_secs(lock_wait)),
        Command::Verify { config, lock_wait } => {
            verify_command(&config, Duration::from_secs(lock_wait))
        }
        Command::Status {
            configs,
            format,
            metrics,
        } => status_command(&configs, &format, metrics.as_deref()),
        Command::Cert {
            command:
                CertCommand::Fetch {
                    config,
                    engine,
                    out,
                },
        } => cert_fetch_command(&config, &engine, out),
    }
}

fn open_catalog(config: &RunnerConfig) -> Result<Catalog, CatalogError> {
    Catalog::open(std::path::Path::new(&config.backup_directory), &config.vm)
}

fn verify_command(path: &PathBuf, lock_wait: Duration) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let checked = open_catalog(&config).and_then(|catalog| {
        // A backup being written must not look like damage.
        let _lock = catalog.lock(lock_wait)?;
        ovbackup::run::verify::verify(&catalog)
    });
    match checked {
        Ok(report) => {
            println!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(FAILED)
            }
        }
        Err(e @ CatalogError::Busy { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(BUSY)
        }
        Err(e) => fail(e.to_string()),
    }
}

fn status_command(paths: &[PathBuf], format: &str, metrics: Option<&std::path::Path>) -> ExitCode {
    use ovbackup::run::status;
    let mut statuses = Vec::new();
    for path in paths {
        let collected = load(path).and_then(|config| {
            open_catalog(&config)
                .and_then(|c| status::collect(&c))
                .map_err(|e| e.to_string())
        });
        match collected {
            Ok(one) => statuses.push(one),
            Err(message) => return fail(message),
        }
    }
    match format {
        "json" => print!("{}", status::json(&statuses)),
        _ => print!("{}", status::human(&statuses, Utc::now())),
    }
    if let Some(path) = metrics
        && let Err(e) = status::write_metrics(&status::prometheus(&statuses), path)
    {
        return fail(format!("writing {}: {e}", path.display()));
    }
    ExitCode::SUCCESS
}

fn cert_fetch_command(path: &PathBuf, engine: &str, out: Option<PathBuf>) -> ExitCode {
    use ovbackup::run::cert;
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let access = if engine == "source" {
        Some(&config.source)
    } else {
        config.target.as_ref()
    };
    let Some(access) = access else {
        return fail(format!(
            "{} has no {engine} engine (only auto_restore VMs name the target)",
            path.display()
        ));
    };
    let Some(out) = out.or_else(|| access.ca_file.clone().map(PathBuf::from)) else {
        return fail(format!(
            "{} names no ca_file for the {engine} engine: give --out",
            path.display()
        ));
    };
    let trust = if out.exists() {
        cert::Trust::Existing(out.clone())
    } else {
        cert::Trust::FirstContact
    };
    let first_contact = matches!(trust, cert::Trust::FirstContact);
    let fetched = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(cert::fetch(&access.url, trust))
                .map_err(|e| e.to_string())
        });
    let info = match fetched {
        Ok(info) => info,
        Err(message) => return fail(message),
    };
    if let Err(e) = cert::save(&info, &out) {
        return fail(e.to_string());
    }
    println!("subject:     {}", info.subject);
    println!(
        "expires:     {}",
        info.not_after.format("%Y-%m-%d %H:%M UTC")
    );
    println!("SHA-256:     {}", info.sha256_fingerprint);
    println!("written to:  {}", out.display());
    if first_contact {
        println!(
            "first contact: compare the SHA-256 fingerprint with the engine's \
             (openssl x509 -noout -fingerprint -sha256 -in /etc/pki/ovirt-engine/ca.pem)"
        );
    }
    if let Some(warning) = cert::expiry_warning(&info, Utc::now()) {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// Warns (log) when the engine's CA expires within 30 days.
fn warn_if_ca_expires(config: &RunnerConfig) {
    let Some(ca) = config.source.ca_file.as_deref() else {
        return;
    };
    let Ok(pem) = fs_err::read_to_string(ca) else {
        return;
    };
    if let Ok(info) = ovbackup::run::cert::inspect(&pem)
        && let Some(warning) = ovbackup::run::cert::expiry_warning(&info, Utc::now())
    {
        tracing::warn!("{warning}");
    }
}

fn prune_command(path: &PathBuf, dry_run: bool, lock_wait: Duration) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let zone = match config.timezone.as_deref().map(str::parse::<chrono_tz::Tz>) {
        Some(Ok(zone)) => zone,
        Some(Err(_)) => return fail(format!("{}: unknown time zone", path.display())),
        None => host::zone(),
    };
    let pruned = Catalog::open(std::path::Path::new(&config.backup_directory), &config.vm)
        .and_then(|catalog| {
            let _lock = catalog.lock(lock_wait)?;
            catalog.prune(&config.retention, zone, Utc::now(), dry_run)
        });
    let verdict = match pruned {
        Ok(verdict) => verdict,
        Err(e @ CatalogError::Busy { .. }) => {
            eprintln!("error: {e}");
            return ExitCode::from(BUSY);
        }
        Err(e) => return fail(e.to_string()),
    };
    for (id, why) in &verdict.keep {
        let why = match why {
            Keep::Newest => "the newest".to_owned(),
            Keep::Daily => "keep_daily".to_owned(),
            Keep::Weekly => "keep_weekly".to_owned(),
            Keep::Monthly => "keep_monthly".to_owned(),
            Keep::All => "no keep_* limit".to_owned(),
            Keep::NeededBy(other) => format!("{other} needs it to be restored"),
        };
        println!("{}: keep   {id} ({why})", config.vm);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for id in &verdict.delete {
        println!("{}: {verb} {id}", config.vm);
    }
    ExitCode::SUCCESS
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

fn backup_command(
    path: &PathBuf,
    options: backup::Options,
    manual: bool,
    at: Option<&str>,
) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    if config.due_guard.is_some() && !manual && !options.force_full {
        let at = match at.map(DateTime::parse_from_rfc3339).transpose() {
            Ok(at) => at.map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            Err(e) => return fail(format!("--at is not an RFC 3339 instant: {e}")),
        };
        match due_verdict(&config, path, at) {
            Ok(verdict) if !verdict.due => {
                tracing::info!(vm = %config.vm, "not due, skipped: {} (--now runs it anyway)", verdict.why);
                return ExitCode::SUCCESS;
            }
            Ok(_) => {}
            Err(message) => return fail(message),
        }
    }
    warn_if_ca_expires(&config);
    let outcome = match run_stoppable(
        &options.stop,
        "finalizing the engine's backup first",
        "the engine's backup may need finalizing by hand",
        backup::run(&config, &options),
    ) {
        Ok(outcome) => outcome,
        Err(message) => return fail(message),
    };
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
            exit_code(&e)
        }
    }
}

fn restore_command(
    path: &PathBuf,
    options: &backup::Options,
    request: &restore::Request,
) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let outcome = match run_stoppable(
        &options.stop,
        "undoing what the restore made",
        "the DR engine may hold a half-made disk or VM",
        restore::run(&config, options, request),
    ) {
        Ok(outcome) => outcome,
        Err(message) => return fail(message),
    };
    match outcome {
        Ok(restore::Outcome::Restored(entry)) => {
            tracing::info!(
                vm = %entry.vm,
                point = %entry.point,
                bytes_sent = entry.bytes,
                "point {} of {} restored in DR as {:?} ({} sent in {:.1} s{})",
                entry.point,
                entry.vm,
                entry.restored_as,
                backup::human_bytes(entry.bytes),
                entry.seconds,
                entry
                    .replaced
                    .as_deref()
                    .map(|r| format!("; the VM it replaced was {r}"))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(restore::Outcome::AlreadyRestored { point, restored_as }) => {
            tracing::info!(
                "point {point} is already restored in DR as {restored_as:?}; nothing to do \
                 (--force restores it again)"
            );
            ExitCode::SUCCESS
        }
        Ok(restore::Outcome::Planned(steps)) => {
            println!("dry run, nothing changed; a restore would:");
            for step in steps {
                println!("  - {step}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("restore of {} failed: {e}", config.vm);
            exit_code(&e)
        }
    }
}

fn exit_code(e: &backup::RunError) -> ExitCode {
    ExitCode::from(match e {
        backup::RunError::Catalog(CatalogError::Busy { .. }) => BUSY,
        backup::RunError::Catalog(CatalogError::UnsafeVm { .. }) => USAGE_OR_CONFIG,
        backup::RunError::Interrupted => INTERRUPTED,
        backup::RunError::Config(_) => USAGE_OR_CONFIG,
        _ => FAILED,
    })
}

fn merge_command(
    path: &PathBuf,
    point: &str,
    disk: Option<&str>,
    out: &std::path::Path,
    compress: bool,
) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    let catalog = match open_catalog(&config) {
        Ok(catalog) => catalog,
        Err(e) => return fail(e.to_string()),
    };
    // Held while reading: retention after a backup must not remove the chain meanwhile.
    let _lock = match catalog.lock(Duration::from_secs(600)) {
        Ok(lock) => lock,
        Err(e @ CatalogError::Busy { .. }) => {
            eprintln!("error: {e}");
            return ExitCode::from(BUSY);
        }
        Err(e) => return fail(e.to_string()),
    };
    let points = match catalog.points() {
        Ok(points) => points,
        Err(e) => return fail(e.to_string()),
    };
    let manifest = match restore::select(&points, &restore::Selector::Point(point.to_owned())) {
        Ok(manifest) => manifest,
        Err(e) => return fail(e.to_string()),
    };
    let chain = Catalog::chain(&points, &manifest.point);
    if chain.first().is_none_or(|first| first.parent.is_some()) {
        eprintln!(
            "error: point {point}'s chain is broken (a parent point is missing; run `ovrun \
             verify`): it cannot be merged"
        );
        return ExitCode::from(FAILED);
    }
    let entry = match (disk, manifest.disks.as_slice()) {
        (None, [only]) => only,
        (None, disks) => {
            let aliases: Vec<&str> = disks.iter().map(|d| d.alias.as_str()).collect();
            return fail(format!(
                "point {point} has {} disks: name one with --disk ({})",
                disks.len(),
                aliases.join(", ")
            ));
        }
        (Some(alias), disks) => match disks.iter().find(|d| d.alias == alias) {
            Some(entry) => entry,
            None => return fail(format!("point {point} has no disk {alias:?}")),
        },
    };
    let top = match catalog.qemu_path(&entry.file) {
        Ok(top) => top,
        Err(e) => return fail(e.to_string()),
    };
    match restore::merge(&top, out, compress) {
        Ok(()) => {
            println!(
                "{}: point {point} of {} (disk {}) as one qcow2 image",
                out.display(),
                config.vm,
                entry.alias
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: merging point {point}: {e}");
            exit_code(&e)
        }
    }
}

/// Runs `work` on a new runtime; a first SIGTERM or Ctrl-C sets `stop` (the work winds down:
/// `first`), a second exits at once (`second` says what may be left).
///
/// # Errors
/// The runtime cannot start.
fn run_stoppable<T>(
    stop: &Arc<AtomicBool>,
    first: &'static str,
    second: &'static str,
    work: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("starting the runtime: {e}"))?;
    let stop = stop.clone();
    Ok(runtime.block_on(async {
        tokio::spawn(async move {
            stop_signal().await;
            tracing::warn!("stopping: {first} (a second signal stops at once)");
            stop.store(true, Ordering::Relaxed);
            stop_signal().await;
            tracing::error!("stopped at once: {second}");
            std::process::exit(i32::from(INTERRUPTED));
        });
        work.await
    }))
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

/// Whether a start at `at` is due by the VM's schedule and the unit's guard.
fn due_verdict(
    config: &RunnerConfig,
    path: &std::path::Path,
    at: DateTime<Utc>,
) -> Result<ovbackup::plan::schedule::Due, String> {
    let zone = host::schedule_zone(config.timezone.as_deref());
    let (schedule, guard) = config
        .schedule()
        .and_then(|s| Ok((s, config.guard()?)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let calendar = Calendar::new(&schedule, zone)
        .map_err(|p| format!("{}: schedule: {}", path.display(), p.message))?;
    let superset = guard
        .map(|g| Calendar::new(&g, zone))
        .transpose()
        .map_err(|p| format!("{}: schedule: {}", path.display(), p.message))?;
    Ok(due(&calendar, superset.as_ref(), at))
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
    let verdict = match due_verdict(&config, path, at) {
        Ok(verdict) => verdict,
        Err(message) => return fail(message),
    };
    println!("VM {}: {}", config.vm, verdict.why);
    if verdict.due {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_DUE)
    }
}
