//! `ovrun`: the executor the compiled units invoke. Parses arguments, reads the runner config
//! and the clock once, calls the library, maps the outcome to an exit code.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Parser, Subcommand};
use ovbackup::host;
use ovbackup::plan::retention::Keep;
use ovbackup::plan::runner::{EngineAccess, RunnerConfig};
use ovbackup::plan::schedule::{Calendar, due};
use ovbackup::run::catalog::{Catalog, CatalogError};
use ovbackup::run::cert::CertError;
use ovbackup::run::{backup, restore};

/// Exit codes (the README's table): 0 success (or due); 1 the work failed (a backup or restore
/// failed, `verify` found damage, the engine refused or did not answer, an I/O error in the
/// backup directory), and for `due`, not due; 2 usage or configuration (the command line, the
/// runner config, the files it names, the engine URL); 3 another `ovrun` holds the VM; 4 stopped
/// by a signal. [`Failure`] and its `From` impls are the one mapping from error to code.
const SUCCESS: u8 = 0;
const NOT_DUE: u8 = 1;
const FAILED: u8 = 1;
const USAGE_OR_CONFIG: u8 = 2;
const BUSY: u8 = 3;
const INTERRUPTED: u8 = 4;

/// Why a command did not succeed: its exit code, and the message to print (`None` when it was
/// logged already).
struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// A usage or configuration problem (exit 2).
    fn config(message: impl Into<String>) -> Self {
        Self {
            code: USAGE_OR_CONFIG,
            message: Some(message.into()),
        }
    }

    /// The work failed (exit 1).
    fn failed(message: impl Into<String>) -> Self {
        Self {
            code: FAILED,
            message: Some(message.into()),
        }
    }

    /// A failure already logged, with its code.
    fn logged(code: u8) -> Self {
        Self {
            code,
            message: None,
        }
    }

    /// Prints the message (prefixed by `context`, if any) and gives the code.
    fn report(self, context: Option<&Path>) -> u8 {
        if let Some(message) = self.message {
            match context {
                Some(path) => eprintln!("error: {}: {message}", path.display()),
                None => eprintln!("error: {message}"),
            }
        }
        self.code
    }
}

/// The code of a catalog error: busy 3; I/O and unreadable manifests 1; anything else (a VM
/// name or folder the catalog refuses) is the runner config's: 2.
fn catalog_code(e: &CatalogError) -> u8 {
    match e {
        CatalogError::Busy { .. } => BUSY,
        CatalogError::Io { .. } | CatalogError::Manifest { .. } | CatalogError::Link { .. } => {
            FAILED
        }
        // UnsafeVm, Foreign: the runner config names a VM that cannot have this folder.
        _ => USAGE_OR_CONFIG,
    }
}

/// The code of a backup's or restore's error.
fn run_code(e: &backup::RunError) -> u8 {
    match e {
        backup::RunError::Catalog(e) => catalog_code(e),
        backup::RunError::Interrupted => INTERRUPTED,
        backup::RunError::Config(_) => USAGE_OR_CONFIG,
        backup::RunError::Engine(e) if e.is_config() => USAGE_OR_CONFIG,
        _ => FAILED,
    }
}

impl From<CatalogError> for Failure {
    fn from(e: CatalogError) -> Self {
        Self {
            code: catalog_code(&e),
            message: Some(e.to_string()),
        }
    }
}

impl From<backup::RunError> for Failure {
    fn from(e: backup::RunError) -> Self {
        Self {
            code: run_code(&e),
            message: Some(e.to_string()),
        }
    }
}

impl From<CertError> for Failure {
    fn from(e: CertError) -> Self {
        let code = match &e {
            CertError::ApiUrl { .. } | CertError::TrustFile { .. } => USAGE_OR_CONFIG,
            _ => FAILED,
        };
        Self {
            code,
            message: Some(e.to_string()),
        }
    }
}

/// What a command gives: an exit code (0, or 1 for "not due" and "damage found", whose
/// output says so), or a failure.
type Outcome = Result<u8, Failure>;

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
    #[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
    Verify {
        /// The VM's runner config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every VM whose runner config (`*.json`) is in this folder, one after another (the
        /// compiled maintenance units); the exit code is the worst.
        #[arg(long)]
        config_dir: Option<PathBuf>,
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
    #[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
    Prune {
        /// The VM's runner config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every VM whose runner config (`*.json`) is in this folder, one after another (the
        /// compiled maintenance units); the exit code is the worst.
        #[arg(long)]
        config_dir: Option<PathBuf>,
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
    ExitCode::from(run(cli.command).unwrap_or_else(|failure| failure.report(None)))
}

fn run(command: Command) -> Outcome {
    match command {
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
                progress: progress_bar(),
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
                (None, Some(at)) => restore::Selector::At(instant("--at", &at)?),
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
                progress: progress_bar(),
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
            config_dir,
            dry_run,
            lock_wait,
        } => each_config(config, config_dir, |path| {
            prune_command(path, dry_run, Duration::from_secs(lock_wait))
        }),
        Command::Verify {
            config,
            config_dir,
            lock_wait,
        } => each_config(config, config_dir, |path| {
            verify_command(path, Duration::from_secs(lock_wait))
        }),
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

/// A progress bar on a terminal, unless the log is JSON.
fn progress_bar() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var("OVRUN_LOG_FORMAT").as_deref() != Ok("json")
}

/// Runs `command` for the one runner config given, or for every `*.json` in the folder (sorted),
/// one after another: a failing VM is reported and does not stop the others; the code is the
/// worst ([`worse`]).
fn each_config(
    config: Option<PathBuf>,
    config_dir: Option<PathBuf>,
    command: impl Fn(&Path) -> Outcome,
) -> Outcome {
    let Some(dir) = config_dir else {
        let config = config.expect("clap requires --config without --config-dir");
        return command(&config);
    };
    let mut code = SUCCESS;
    for path in runner_configs(&dir)? {
        let one = command(&path).unwrap_or_else(|failure| failure.report(Some(&path)));
        code = worse(code, one);
    }
    Ok(code)
}

/// The runner configs in a folder: its `*.json` files, sorted.
///
/// # Errors
/// The folder cannot be read, or holds none.
fn runner_configs(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = fs_err::read_dir(dir).map_err(|e| {
        Failure::config(format!(
            "{e}\nhelp: give the folder the runner configs were installed in \
             (`runner/` of the bundle `ovplan build` wrote)"
        ))
    })?;
    let mut configs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Failure::config(format!("reading {}: {e}", dir.display())))?
            .path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            configs.push(path);
        }
    }
    if configs.is_empty() {
        return Err(Failure::config(format!(
            "{} holds no runner config (*.json)\nhelp: give the folder the runner configs were \
             installed in (`runner/` of the bundle `ovplan build` wrote)",
            dir.display()
        )));
    }
    configs.sort();
    Ok(configs)
}

/// The worse of two exit codes: a configuration problem (2) is worse than a failure or damage
/// (1), which is worse than a busy VM (3) or a stop (4), which are worse than success.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |code: u8| match code {
        SUCCESS => 0,
        BUSY => 1,
        INTERRUPTED => 2,
        FAILED => 3,
        _ => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// An RFC 3339 instant from an option's value.
fn instant(option: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Failure::config(format!("{option} `{text}` is not an RFC 3339 instant: {e}")))
}

fn open_catalog(config: &RunnerConfig) -> Result<Catalog, CatalogError> {
    Catalog::open(Path::new(&config.backup_directory), &config.vm)
}

fn verify_command(path: &Path, lock_wait: Duration) -> Outcome {
    let config = load(path)?;
    let catalog = open_catalog(&config)?;
    // A backup being written must not look like damage.
    let _lock = catalog.lock(lock_wait)?;
    let report = ovbackup::run::verify::verify(&catalog)?;
    println!("{report}");
    Ok(if report.is_clean() { SUCCESS } else { FAILED })
}

fn status_command(paths: &[PathBuf], format: &str, metrics: Option<&Path>) -> Outcome {
    use ovbackup::run::status;
    let mut statuses = Vec::new();
    for path in paths {
        let config = load(path)?;
        statuses.push(status::collect(&open_catalog(&config)?)?);
    }
    match format {
        "json" => print!("{}", status::json(&statuses)),
        _ => print!("{}", status::human(&statuses, Utc::now())),
    }
    if let Some(path) = metrics {
        status::write_metrics(&status::prometheus(&statuses), path)
            .map_err(|e| Failure::failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(SUCCESS)
}

fn cert_fetch_command(path: &Path, engine: &str, out: Option<PathBuf>) -> Outcome {
    use ovbackup::run::cert;
    let config = load(path)?;
    let access = if engine == "source" {
        Some(&config.source)
    } else {
        config.target.as_ref()
    };
    let Some(access) = access else {
        return Err(Failure::config(format!(
            "{} has no {engine} engine (only auto_restore VMs name the target)",
            path.display()
        )));
    };
    let Some(out) = out.or_else(|| access.ca_file.clone().map(PathBuf::from)) else {
        return Err(Failure::config(format!(
            "{} names no ca_file for the {engine} engine: give --out",
            path.display()
        )));
    };
    let trust = if out.exists() {
        cert::Trust::Existing(out.clone())
    } else {
        cert::Trust::FirstContact
    };
    let first_contact = matches!(trust, cert::Trust::FirstContact);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::failed(format!("starting the runtime: {e}")))?;
    let info = runtime.block_on(cert::fetch(&access.url, trust))?;
    cert::save(&info, &out)?;
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
    Ok(SUCCESS)
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

fn prune_command(path: &Path, dry_run: bool, lock_wait: Duration) -> Outcome {
    let config = load(path)?;
    let zone = match config.timezone.as_deref().map(str::parse::<chrono_tz::Tz>) {
        Some(Ok(zone)) => zone,
        Some(Err(_)) => {
            return Err(Failure::config(format!(
                "{}: unknown time zone",
                path.display()
            )));
        }
        None => host::zone(),
    };
    let catalog = open_catalog(&config)?;
    let _lock = catalog.lock(lock_wait)?;
    let verdict = catalog.prune(&config.retention, zone, Utc::now(), dry_run)?;
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
    Ok(SUCCESS)
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
    path: &Path,
    options: backup::Options,
    manual: bool,
    at: Option<&str>,
) -> Outcome {
    let config = load(path)?;
    if config.due_guard.is_some() && !manual && !options.force_full {
        let at = at.map_or_else(|| Ok(Utc::now()), |text| instant("--at", text))?;
        let verdict = due_verdict(&config, path, at)?;
        if !verdict.due {
            tracing::info!(vm = %config.vm, "not due, skipped: {} (--now runs it anyway)", verdict.why);
            return Ok(SUCCESS);
        }
    }
    https_only(&config.source)?;
    warn_if_ca_expires(&config);
    let outcome = run_stoppable(
        &options.stop,
        "finalizing the engine's backup first",
        "the engine's backup may need finalizing by hand",
        backup::run(&config, &options),
    )?;
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
                indicatif::HumanBytes(bytes)
            );
            Ok(SUCCESS)
        }
        Err(e) => {
            tracing::error!("backup of {} failed: {e}", config.vm);
            Err(Failure::logged(run_code(&e)))
        }
    }
}

fn restore_command(path: &Path, options: &backup::Options, request: &restore::Request) -> Outcome {
    let config = load(path)?;
    if let Some(target) = &config.target {
        https_only(target)?;
    }
    let outcome = run_stoppable(
        &options.stop,
        "undoing what the restore made",
        "the DR engine may hold a half-made disk or VM",
        restore::run(&config, options, request),
    )?;
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
                indicatif::HumanBytes(entry.bytes),
                entry.seconds,
                entry
                    .replaced
                    .as_deref()
                    .map(|r| format!("; the VM it replaced was {r}"))
                    .unwrap_or_default()
            );
        }
        Ok(restore::Outcome::AlreadyRestored { point, restored_as }) => {
            tracing::info!(
                "point {point} is already restored in DR as {restored_as:?}; nothing to do \
                 (--force restores it again)"
            );
        }
        Ok(restore::Outcome::Planned(steps)) => {
            println!("dry run, nothing changed; a restore would:");
            for step in steps {
                println!("  - {step}");
            }
        }
        Err(e) => {
            tracing::error!("restore of {} failed: {e}", config.vm);
            return Err(Failure::logged(run_code(&e)));
        }
    }
    Ok(SUCCESS)
}

fn merge_command(
    path: &Path,
    point: &str,
    disk: Option<&str>,
    out: &Path,
    compress: bool,
) -> Outcome {
    let config = load(path)?;
    let catalog = open_catalog(&config)?;
    // Held while reading: retention after a backup must not remove the chain meanwhile.
    let _lock = catalog.lock(Duration::from_secs(600))?;
    let points = catalog.points()?;
    let manifest = restore::select(&points, &restore::Selector::Point(point.to_owned()))?;
    let chain = Catalog::chain(&points, &manifest.point);
    if chain.first().is_none_or(|first| first.parent.is_some()) {
        return Err(Failure::failed(format!(
            "point {point}'s chain is broken (a parent point is missing; run `ovrun verify`): \
             it cannot be merged"
        )));
    }
    let entry = match (disk, manifest.disks.as_slice()) {
        (None, [only]) => only,
        (None, disks) => {
            let aliases: Vec<&str> = disks.iter().map(|d| d.alias.as_str()).collect();
            return Err(Failure::config(format!(
                "point {point} has {} disks: name one with --disk ({})",
                disks.len(),
                aliases.join(", ")
            )));
        }
        (Some(alias), disks) => disks
            .iter()
            .find(|d| d.alias == alias)
            .ok_or_else(|| Failure::config(format!("point {point} has no disk {alias:?}")))?,
    };
    let top = catalog.qemu_path(&entry.file)?;
    restore::merge(&top, out, compress).map_err(|e| Failure {
        code: run_code(&e),
        message: Some(format!("merging point {point}: {e}")),
    })?;
    println!(
        "{}: point {point} of {} (disk {}) as one qcow2 image",
        out.display(),
        config.vm,
        entry.alias
    );
    Ok(SUCCESS)
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
) -> Result<T, Failure> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::failed(format!("starting the runtime: {e}")))?;
    let stop = stop.clone();
    Ok(runtime.block_on(async {
        tokio::spawn(async move {
            stop_signal().await;
            tracing::warn!("stopping: {first} (a second signal stops at once)");
            stop.store(true, Ordering::Relaxed);
            stop_signal().await;
            tracing::error!("stopped at once: {second}");
            #[expect(
                clippy::exit,
                reason = "a second signal stops at once, mid-work, by design"
            )]
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

/// Refuses an engine URL credentials may not be sent to (not https, not an API URL) before
/// anything else is done: the runner config can be edited by hand. [`EngineClient::new`] checks
/// it again for library callers.
///
/// [`EngineClient::new`]: ovbackup::run::engine::EngineClient::new
fn https_only(access: &EngineAccess) -> Result<(), Failure> {
    ovbackup::run::engine::check_url(&access.url)
        .map(drop)
        .map_err(|e| Failure::config(e.to_string()))
}

/// Reads a runner config; every problem with it is a configuration problem (exit 2).
fn load(path: &Path) -> Result<RunnerConfig, Failure> {
    let text = fs_err::read_to_string(path).map_err(|e| {
        Failure::config(format!(
            "{e}\nhelp: give the runner config `ovplan build` wrote for the VM"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::config(format!(
            "{}: not a runner config: {e}\nhelp: rebuild the bundle with `ovplan build`",
            path.display()
        ))
    })
}

/// Whether a start at `at` is due by the VM's schedule and the unit's guard.
fn due_verdict(
    config: &RunnerConfig,
    path: &Path,
    at: DateTime<Utc>,
) -> Result<ovbackup::plan::schedule::Due, Failure> {
    let zone = host::schedule_zone(config.timezone.as_deref());
    let (schedule, guard) = config
        .schedule()
        .and_then(|s| Ok((s, config.guard()?)))
        .map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    let calendar = Calendar::new(&schedule, zone)
        .map_err(|p| Failure::config(format!("{}: schedule: {}", path.display(), p.message)))?;
    let superset = guard
        .map(|g| Calendar::new(&g, zone))
        .transpose()
        .map_err(|p| Failure::config(format!("{}: schedule: {}", path.display(), p.message)))?;
    Ok(due(&calendar, superset.as_ref(), at))
}

fn due_command(path: &Path, at: Option<&str>) -> Outcome {
    let config = load(path)?;
    let at = at.map_or_else(|| Ok(Utc::now()), |text| instant("--at", text))?;
    let verdict = due_verdict(&config, path, at)?;
    println!("VM {}: {}", config.vm, verdict.why);
    Ok(if verdict.due { SUCCESS } else { NOT_DUE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_code_of_a_folder() {
        for (codes, worst) in [
            (&[][..], SUCCESS),
            (&[SUCCESS, SUCCESS], SUCCESS),
            (&[SUCCESS, BUSY], BUSY),
            (&[BUSY, FAILED, SUCCESS], FAILED),
            (&[FAILED, USAGE_OR_CONFIG, BUSY], USAGE_OR_CONFIG),
            (&[USAGE_OR_CONFIG, SUCCESS], USAGE_OR_CONFIG),
        ] {
            assert_eq!(
                codes.iter().copied().fold(SUCCESS, worse),
                worst,
                "{codes:?}"
            );
        }
    }
}
