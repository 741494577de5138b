//! One handler per subcommand: each reads what it needs, calls the library and gives an
//! [`Outcome`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ovbackup::plan::retention::Keep;
use ovbackup::plan::runner::{EngineAccess, RunnerConfig};
use ovbackup::plan::schedule::due;
use ovbackup::run::catalog::{Catalog, CatalogError, RunKind};
use ovbackup::run::merge::{self};
use ovbackup::run::{backup, restore};

use crate::args::{
    BackupArgs, EngineSide, MergeArgs, ReportFormat, RestoreArgs, StatusArgs, StatusFormat,
};
use crate::exit::{BUSY, FAILED, Failure, INTERRUPTED, NOT_DUE, Outcome, SUCCESS, run_code};
use crate::history;

/// A progress bar on a terminal, unless the log is JSON.
pub(crate) fn progress_bar() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var("OVRUN_LOG_FORMAT").as_deref() != Ok("json")
}

/// Runs `command` for the one runner config given, or for every `*.json` in the folder (sorted),
/// one after another: a failing VM is reported and does not stop the others; the code is the
/// worst ([`worse`]).
pub(crate) fn each_config(
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
pub(crate) fn runner_configs(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
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
pub(crate) fn worse(a: u8, b: u8) -> u8 {
    let rank = |code: u8| match code {
        SUCCESS => 0,
        BUSY => 1,
        INTERRUPTED => 2,
        FAILED => 3,
        _ => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

pub(crate) fn open_catalog(config: &RunnerConfig) -> Result<Catalog, CatalogError> {
    Catalog::open(Path::new(&config.backup_directory), &config.vm)
}

pub(crate) fn verify_command(path: &Path, lock_wait: Duration) -> Outcome {
    let config = load(path)?;
    let catalog = open_catalog(&config)?;
    // A backup being written must not look like damage.
    let _lock = catalog.lock(lock_wait)?;
    let entry = history::begin(&catalog, RunKind::Verify);
    let report = ovbackup::run::verify::verify(&catalog);
    history::end_verify(&catalog, entry, &report);
    let report = report?;
    println!("{report}");
    Ok(if report.is_clean() { SUCCESS } else { FAILED })
}

/// `ovrun status` for the runner configs at `paths` (`--config` and those of `--config-dir`).
pub(crate) fn status_command(paths: &[PathBuf], args: &StatusArgs) -> Outcome {
    use ovbackup::run::status;
    let now = args.now.unwrap_or_else(Utc::now);
    let mut statuses = Vec::new();
    let mut pages = Vec::new();
    let mut cas = Vec::new();
    for path in paths {
        let config = load(path)?;
        let (vm, restores) = vm_status(&config)?;
        let calendar = config
            .calendar(config.zone())
            .map_err(schedule_error(path))?;
        let vm = vm.with_next_due(&calendar);
        // Only the page shows the schedule (a year of it is walked for its longest gap).
        if args.format == StatusFormat::Html {
            let schedule =
                status::ScheduleFacts::of(&config, &calendar, now).map_err(schedule_error(path))?;
            pages.push(status::PageVm {
                status: vm.clone(),
                schedule,
                restores,
            });
        }
        statuses.push(vm);
        cas.extend(ca_expiries(&config));
    }
    let report = match args.format {
        StatusFormat::Json => status::json(&statuses),
        StatusFormat::Human => status::human(&statuses, now),
        StatusFormat::Html => status::html(&pages, now),
    };
    // The metrics first: a page that cannot be written must not silence the alerts.
    if let Some(path) = &args.metrics {
        let text = status::prometheus(&statuses) + &status::ca_expiry(&cas);
        status::write_metrics(&text, path)
            .map_err(|e| Failure::failed(format!("writing {}: {e}", path.display())))?;
    }
    match &args.output {
        Some(path) => write_report(path, &report)?,
        None => print!("{report}"),
    }
    Ok(SUCCESS)
}

/// Writes a report where `--output` says: atomically (a web server serving it never sends half
/// a page) and readable by all (the server runs as another user).
fn write_report(path: &Path, report: &str) -> Result<(), Failure> {
    ovbackup::fsutil::write_atomic_readable(path, report.as_bytes()).map_err(|e| {
        Failure::failed(format!(
            "writing {}: {e}\nhelp: --output names a file in a folder that exists and \
             ovrun may write",
            path.display()
        ))
    })
}

/// A VM's status, with its last restore, and its restore log (oldest first) when it has
/// restore settings.
fn vm_status(
    config: &RunnerConfig,
) -> Result<
    (
        ovbackup::run::status::VmStatus,
        Option<Vec<restore::LogEntry>>,
    ),
    Failure,
> {
    let status = ovbackup::run::status::collect(&open_catalog(config)?)?;
    let Some(settings) = &config.restore else {
        return Ok((status, None));
    };
    let log = restore::RestoreLog::new(Path::new(&settings.restore_log_directory), &config.vm);
    let entries = log.entries();
    Ok((status.with_restores(&entries), Some(entries)))
}

/// A configuration failure naming the runner config at `path` whose schedule cannot be read.
fn schedule_error(path: &Path) -> impl Fn(ovbackup::plan::cron::CronProblem) -> Failure + '_ {
    move |p| Failure::config(format!("{}: schedule: {}", path.display(), p.message))
}

/// When each CA the config trusts expires (a CA that cannot be read has no sample: the
/// metrics-stale and backup alerts cover an engine ovrun cannot reach).
fn ca_expiries(config: &RunnerConfig) -> Vec<ovbackup::run::status::CaExpiry> {
    let sides = [
        ("source", Some(&config.source)),
        ("target", config.target.as_ref()),
    ];
    let files = sides
        .into_iter()
        .filter_map(|(side, access)| Some((side, access?.ca_file.clone()?)));
    files
        .filter_map(|(side, file)| {
            let pem = fs_err::read_to_string(&file).ok()?;
            let not_after = ovbackup::run::cert::inspect(&pem).ok()?.not_after;
            Some(ovbackup::run::status::CaExpiry {
                side,
                file,
                not_after,
            })
        })
        .collect()
}

pub(crate) fn cert_fetch_command(path: &Path, engine: EngineSide, out: Option<PathBuf>) -> Outcome {
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
pub(crate) fn cert_destination<'a>(
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
pub(crate) fn print_ca(info: &ovbackup::run::cert::CaInfo, out: &Path, first_contact: bool) {
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
pub(crate) fn warn_if_ca_expires(config: &RunnerConfig) {
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

pub(crate) fn prune_command(path: &Path, dry_run: bool, lock_wait: Duration) -> Outcome {
    let config = load(path)?;
    let zone = config.zone();
    let catalog = open_catalog(&config)?;
    let _lock = catalog.lock(lock_wait)?;
    // A dry run changes nothing, and is no run of the history.
    let entry = (!dry_run).then(|| history::begin(&catalog, RunKind::Prune));
    let verdict = catalog.prune(&config.retention, zone, Utc::now(), dry_run);
    if let Some(entry) = entry {
        history::end_prune(&catalog, entry, &verdict);
    }
    let verdict = verdict?;
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
/// plain text otherwise, coloured only on a terminal (cron appends to log files) and never with
/// `NO_COLOR` set; `RUST_LOG` filters (default `info`).
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    if std::env::var("OVRUN_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The backup's options from its command line.
pub(crate) fn backup_options(args: &BackupArgs) -> backup::Options {
    backup::Options {
        force_full: args.full,
        workers: args.workers,
        lock_wait: Duration::from_secs(args.lock_wait),
        engine_lock_wait: Duration::from_secs(args.engine_lock_wait),
        progress: progress_bar(),
        ..backup::Options::default()
    }
}

pub(crate) fn backup_command(args: &BackupArgs) -> Outcome {
    init_logging();
    let options = backup_options(args);
    let path = args.config.as_path();
    let config = load(path)?;
    if config.due_guard.is_some() && !args.now && !options.force_full {
        let at = args.at.unwrap_or_else(Utc::now);
        let verdict = due_verdict(&config, path, at)?;
        if !verdict.due {
            tracing::info!(vm = %config.vm, "not due, skipped: {} (--now runs it anyway)", verdict.why);
            record_skip(&config, at, &verdict.why);
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

/// Records a start the schedule does not want in the VM's history (when it has a folder); a
/// failure to is a warning.
pub(crate) fn record_skip(config: &RunnerConfig, at: DateTime<Utc>, why: &str) {
    let dir = Path::new(&config.backup_directory);
    if let Err(e) = ovbackup::run::history::record_skip(dir, &config.vm, at, why) {
        tracing::warn!("the skipped start was not recorded in the run history: {e}");
    }
}

/// Logs the point a backup wrote.
pub(crate) fn log_backup(m: &ovbackup::run::catalog::Manifest) {
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

pub(crate) fn restore_command(args: &RestoreArgs) -> Outcome {
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

pub(crate) fn restore_point(
    path: &Path,
    options: &backup::Options,
    request: &restore::Request,
) -> Outcome {
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
pub(crate) fn report_restore(outcome: restore::Outcome) {
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

pub(crate) fn config_command(path: &Path, point: Option<&str>, format: ReportFormat) -> Outcome {
    use ovbackup::run::config_view;
    let config = load(path)?;
    let points = open_catalog(&config)?.points()?;
    let point = config_view::chosen(&points, point).map_err(Failure::failed)?;
    match format {
        ReportFormat::Json => print!("{}", config_view::json(point)),
        ReportFormat::Human => print!("{}", config_view::human(point)),
    }
    Ok(SUCCESS)
}

pub(crate) fn merge_command(args: &MergeArgs) -> Outcome {
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
pub(crate) fn run_stoppable<T>(
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

pub(crate) async fn stop_signal() {
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
pub(crate) fn https_only(access: &EngineAccess) -> Result<(), Failure> {
    ovbackup::run::engine::check_url(&access.url)
        .map(drop)
        .map_err(|e| Failure::config(e.to_string()))
}

/// Reads a runner config; every problem with it is a configuration problem (exit 2).
pub(crate) fn load(path: &Path) -> Result<RunnerConfig, Failure> {
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
pub(crate) fn due_verdict(
    config: &RunnerConfig,
    path: &Path,
    at: DateTime<Utc>,
) -> Result<ovbackup::plan::schedule::Due, Failure> {
    let zone = config.zone();
    let calendar = config.calendar(zone).map_err(schedule_error(path))?;
    let superset = config.guard_calendar(zone).map_err(schedule_error(path))?;
    Ok(due(&calendar, superset.as_ref(), at))
}

pub(crate) fn due_command(path: &Path, at: Option<DateTime<Utc>>) -> Outcome {
    let config = load(path)?;
    let verdict = due_verdict(&config, path, at.unwrap_or_else(Utc::now))?;
    println!("VM {}: {}", config.vm, verdict.why);
    Ok(if verdict.due { SUCCESS } else { NOT_DUE })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::USAGE_OR_CONFIG;

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
