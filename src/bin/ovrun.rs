//! `ovrun`: the executor the compiled units invoke. `main` parses the arguments (clap) and calls
//! [`run`], which reads the runner config and the clock once, calls the library (`ovbackup::run`)
//! and gives an exit code; [`Failure`] and the [`ExitCoded`] impls are the one mapping from the
//! library's errors to exit codes.
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
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ovbackup::cli::{SelfDescription, instant};
use ovbackup::plan::retention::Keep;
use ovbackup::plan::runner::{EngineAccess, RunnerConfig};
use ovbackup::plan::schedule::due;
use ovbackup::run::catalog::{Catalog, CatalogError};
use ovbackup::run::cert::CertError;
use ovbackup::run::merge::{self, MergeError};
use ovbackup::run::{backup, restore};

/// Exit codes (the README's table): 0 success (or due); 1 the work failed (a backup or restore
/// failed, `verify` found damage, the engine refused or did not answer, an I/O error in the
/// backup directory), and for `due`, not due; 2 usage or configuration (the command line, the
/// runner config, the files it names, the engine URL); 3 another `ovrun` holds the VM; 4 stopped
/// by a signal. [`Failure`] and the [`ExitCoded`] impls are the one mapping from error to code.
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

/// A library error's exit code: with the [`Failure`] it makes, the one mapping from error to
/// exit code.
trait ExitCoded: std::fmt::Display {
    fn exit_code(&self) -> u8;
}

impl<E: ExitCoded> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            code: e.exit_code(),
            message: Some(e.to_string()),
        }
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
        backup::RunError::Panic(_) => FAILED,
        backup::RunError::Config(_) => USAGE_OR_CONFIG,
        backup::RunError::Engine(e) if e.is_config() => USAGE_OR_CONFIG,
        _ => FAILED,
    }
}

impl ExitCoded for CatalogError {
    fn exit_code(&self) -> u8 {
        catalog_code(self)
    }
}

impl ExitCoded for backup::RunError {
    fn exit_code(&self) -> u8 {
        run_code(self)
    }
}

impl ExitCoded for CertError {
    fn exit_code(&self) -> u8 {
        match self {
            CertError::ApiUrl { .. } | CertError::TrustFile { .. } => USAGE_OR_CONFIG,
            _ => FAILED,
        }
    }
}

impl ExitCoded for MergeError {
    fn exit_code(&self) -> u8 {
        match self {
            MergeError::Catalog(e) => catalog_code(e),
            MergeError::NoPoint(e) => run_code(e),
            MergeError::BrokenChain { .. } => FAILED,
            MergeError::WhichDisk { .. } | MergeError::NoDisk { .. } => USAGE_OR_CONFIG,
            MergeError::Write { source, .. } if source.is_usage() => USAGE_OR_CONFIG,
            MergeError::Write { .. } => FAILED,
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
    Fetch(CertFetchArgs),
}

#[derive(Args)]
struct CertFetchArgs {
    /// A runner config naming the engine.
    #[arg(long)]
    config: PathBuf,
    /// `source` (production) or `target` (DR).
    #[arg(long, value_enum)]
    engine: EngineSide,
    /// Write here instead of the config's `ca_file`.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Which of the runner config's engines.
#[derive(Clone, Copy, ValueEnum)]
enum EngineSide {
    Source,
    Target,
}

impl EngineSide {
    /// As the runner config names it.
    fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
        }
    }
}

/// How `ovrun status` prints.
#[derive(Clone, Copy, ValueEnum)]
enum StatusFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 when a start at that instant is due by the VM's schedule, 1 when not (says why).
    Due {
        /// The VM's runner config (written by `ovplan build`).
        #[arg(long)]
        config: PathBuf,
        /// The start's instant (RFC 3339); default now.
        #[arg(long, value_parser = instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Back up the VM now: full or incremental as the policy says, into the backup directory.
    Backup(BackupArgs),
    /// Check the VM's backup points: every image (qemu-img check), chain links, sizes and
    /// checksums against the manifests. Exit 1 and a list on any damage.
    Verify(VerifyArgs),
    /// Per VM: the last point and its age, chain length, sizes, the last failure.
    Status {
        /// Runner configs (one per VM; repeat).
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// `human` or `json`.
        #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
        format: StatusFormat,
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
    Restore(RestoreArgs),
    /// Write the chain of a point's disk as one qcow2 image, in one pass (a portable copy).
    Merge(MergeArgs),
    /// Apply the VM's retention to its backup points (policy.md section 4).
    Prune(PruneArgs),
    #[command(flatten)]
    SelfDescription(SelfDescription),
}

#[derive(Args)]
struct BackupArgs {
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
    #[arg(long, hide = true, value_parser = instant)]
    at: Option<DateTime<Utc>>,
    /// Parallel connections per disk.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Seconds to wait for another ovrun working on the same VM.
    #[arg(long, default_value_t = 60)]
    lock_wait: u64,
    /// Seconds to wait for a VM or disk locked on the engine.
    #[arg(long, default_value_t = 600)]
    engine_lock_wait: u64,
}

#[derive(Args)]
#[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
struct VerifyArgs {
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
}

#[derive(Args)]
struct RestoreArgs {
    /// The VM's runner config (written by `ovplan build`).
    #[arg(long)]
    config: PathBuf,
    /// The point's id (as `ovrun status` and the manifests name it).
    #[arg(long, conflicts_with = "at")]
    point: Option<String>,
    /// The newest point taken at or before this instant (RFC 3339).
    #[arg(long, value_parser = instant)]
    at: Option<DateTime<Utc>>,
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
}

#[derive(Args)]
struct MergeArgs {
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
}

#[derive(Args)]
#[command(group(ArgGroup::new("vms").required(true).args(["config", "config_dir"])))]
struct PruneArgs {
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
}

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
        Command::Prune(args) => each_config(args.config, args.config_dir, |path| {
            prune_command(path, args.dry_run, Duration::from_secs(args.lock_wait))
        }),
        Command::Verify(args) => each_config(args.config, args.config_dir, |path| {
            verify_command(path, Duration::from_secs(args.lock_wait))
        }),
        Command::Status {
            configs,
            format,
            metrics,
        } => status_command(&configs, format, metrics.as_deref()),
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

fn status_command(paths: &[PathBuf], format: StatusFormat, metrics: Option<&Path>) -> Outcome {
    use ovbackup::run::status;
    let mut statuses = Vec::new();
    for path in paths {
        let config = load(path)?;
        statuses.push(status::collect(&open_catalog(&config)?)?);
    }
    match format {
        StatusFormat::Json => print!("{}", status::json(&statuses)),
        StatusFormat::Human => print!("{}", status::human(&statuses, Utc::now())),
    }
    if let Some(path) = metrics {
        status::write_metrics(&status::prometheus(&statuses), path)
            .map_err(|e| Failure::failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(SUCCESS)
}

fn cert_fetch_command(path: &Path, engine: EngineSide, out: Option<PathBuf>) -> Outcome {
    use ovbackup::run::cert;
    let config = load(path)?;
    let (access, out) = cert_destination(&config, path, engine, out)?;
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
    print_ca(&info, &out, first_contact);
    if let Some(warning) = cert::expiry_warning(&info, Utc::now()) {
        eprintln!("warning: {warning}");
    }
    Ok(SUCCESS)
}

/// The engine `cert fetch` asks and the file its CA goes to (`--out`, else the config's
/// `ca_file`).
fn cert_destination<'a>(
    config: &'a RunnerConfig,
    path: &Path,
    engine: EngineSide,
    out: Option<PathBuf>,
) -> Result<(&'a EngineAccess, PathBuf), Failure> {
    let access = match engine {
        EngineSide::Source => Some(&config.source),
        EngineSide::Target => config.target.as_ref(),
    };
    let engine = engine.name();
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
    Ok((access, out))
}

/// What `cert fetch` tells the operator about the CA it wrote.
fn print_ca(info: &ovbackup::run::cert::CaInfo, out: &Path, first_contact: bool) {
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
    let zone = config.zone();
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

/// The backup's options from its command line.
fn backup_options(args: &BackupArgs) -> backup::Options {
    backup::Options {
        force_full: args.full,
        workers: args.workers,
        lock_wait: Duration::from_secs(args.lock_wait),
        engine_lock_wait: Duration::from_secs(args.engine_lock_wait),
        progress: progress_bar(),
        ..backup::Options::default()
    }
}

fn backup_command(args: &BackupArgs) -> Outcome {
    init_logging();
    let options = backup_options(args);
    let path = args.config.as_path();
    let config = load(path)?;
    if config.due_guard.is_some() && !args.now && !options.force_full {
        let verdict = due_verdict(&config, path, args.at.unwrap_or_else(Utc::now))?;
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
            log_backup(&outcome.manifest);
            Ok(SUCCESS)
        }
        Err(e) => {
            tracing::error!("backup of {} failed: {e}", config.vm);
            Err(Failure::logged(run_code(&e)))
        }
    }
}

/// Logs the point a backup wrote.
fn log_backup(m: &ovbackup::run::catalog::Manifest) {
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
}

fn restore_command(args: &RestoreArgs) -> Outcome {
    init_logging();
    let selector = match (&args.point, args.at) {
        (Some(point), _) => restore::Selector::Point(point.clone()),
        (None, Some(at)) => restore::Selector::At(at),
        (None, None) => restore::Selector::Newest,
    };
    let request = restore::Request {
        selector,
        name: args.name.clone(),
        dry_run: args.dry_run,
        force: args.force,
    };
    let options = backup::Options {
        workers: args.workers,
        lock_wait: Duration::from_secs(args.lock_wait),
        progress: progress_bar(),
        ..backup::Options::default()
    };
    restore_point(&args.config, &options, &request)
}

fn restore_point(path: &Path, options: &backup::Options, request: &restore::Request) -> Outcome {
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
        Ok(outcome) => {
            report_restore(outcome);
            Ok(SUCCESS)
        }
        Err(e) => {
            tracing::error!("restore of {} failed: {e}", config.vm);
            Err(Failure::logged(run_code(&e)))
        }
    }
}

/// Logs (or, for a dry run, prints) what a restore did.
fn report_restore(outcome: restore::Outcome) {
    match outcome {
        restore::Outcome::Restored(entry) => {
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
        restore::Outcome::AlreadyRestored { point, restored_as } => {
            tracing::info!(
                "point {point} is already restored in DR as {restored_as:?}; nothing to do \
                 (--force restores it again)"
            );
        }
        restore::Outcome::Planned(steps) => {
            println!("dry run, nothing changed; a restore would:");
            for step in steps {
                println!("  - {step}");
            }
        }
    }
}

fn merge_command(args: &MergeArgs) -> Outcome {
    let config = load(&args.config)?;
    let catalog = open_catalog(&config)?;
    let request = merge::Request {
        point: &args.point,
        disk: args.disk.as_deref(),
        out: &args.out,
        compress: args.compress,
    };
    let alias = merge::merge(&catalog, &request)?;
    println!(
        "{}: point {} of {} (disk {alias}) as one qcow2 image",
        args.out.display(),
        args.point,
        config.vm,
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
    RunnerConfig::from_json(&text).map_err(|e| {
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
    let zone = config.zone();
    let calendar = config
        .calendar(zone)
        .map_err(|p| Failure::config(format!("{}: schedule: {}", path.display(), p.message)))?;
    let superset = config
        .guard_calendar(zone)
        .map_err(|p| Failure::config(format!("{}: schedule: {}", path.display(), p.message)))?;
    Ok(due(&calendar, superset.as_ref(), at))
}

fn due_command(path: &Path, at: Option<DateTime<Utc>>) -> Outcome {
    let config = load(path)?;
    let verdict = due_verdict(&config, path, at.unwrap_or_else(Utc::now))?;
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
