//! Stages 4 and 5: a validated [`Policy`] -> every file of the bundle `ovplan build` writes,
//! rendered from the templates in `templates/` (embedded) under strict undefined.
//!
//! The bundle is a sorted map of relative path -> content, the same bytes for the same input
//! (no timestamps, no host names), with `MANIFEST` (SHA-256 of every other file) last.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::{Environment, UndefinedBehavior, context};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::calendar;
use super::compose;
use super::cron::CronProblem;
use super::model::{Policy, VmPolicy};
use super::runner::{RunnerConfig, runner_config};

/// Which parts of the bundle to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// systemd services and timers.
    pub systemd: bool,
    /// One /etc/cron.d file.
    pub cron: bool,
    /// A docker-compose bundle (it uses the cron file).
    pub compose: bool,
    /// Prometheus alert rules.
    pub prometheus: bool,
    /// Airflow DAGs, pools and a CeleryExecutor compose file.
    pub airflow: bool,
}

impl Targets {
    /// Everything.
    pub const ALL: Targets = Targets {
        systemd: true,
        cron: true,
        compose: true,
        prometheus: true,
        airflow: true,
    };
}

/// Where the bundle will be installed and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// What to write.
    pub targets: Targets,
    /// The name of the policy file, for the "generated from" headers.
    pub policy_file: String,
    /// Where `ovrun` is installed.
    pub ovrun: String,
    /// Where the runner configs are installed (`<config_dir>/runner/<vm>.json`).
    pub config_dir: String,
    /// Where cron jobs log.
    pub log_dir: String,
    /// node_exporter's textfile folder, where the status timer writes `ovbackup.prom` (the name
    /// the alert rules' staleness check reads).
    pub metrics_dir: String,
    /// Where the status timer also writes the status page (`ovrun status --format html`), for a
    /// web server to serve; `None`: no page.
    pub status_page: Option<String>,
}

impl BuildOptions {
    /// The defaults, for a policy file of that name.
    pub fn new(policy_file: impl Into<String>) -> Self {
        Self {
            targets: Targets::ALL,
            policy_file: policy_file.into(),
            ovrun: "/usr/local/bin/ovrun".into(),
            config_dir: "/etc/ovbackup".into(),
            log_dir: "/var/log/ovbackup".into(),
            metrics_dir: "/var/lib/prometheus/node-exporter".into(),
            status_page: None,
        }
    }
}

/// Why a policy could not be compiled (a bug: validation refuses what would cause these).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A template failed to render.
    #[error("template {template} failed to render: {source}")]
    Render {
        /// Which.
        template: &'static str,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
    /// A build option that would not reach the bundle's files exactly as given.
    #[error("--{option} `{value}` cannot be used: {why}", value = value.escape_debug())]
    Option {
        /// Which option.
        option: &'static str,
        /// Its value.
        value: String,
        /// Why not.
        why: &'static str,
    },
    /// A cron expression validation let through.
    #[error("VM `{vm}`: {problem}", problem = problem.message)]
    Cron {
        /// Which VM.
        vm: String,
        /// What.
        problem: CronProblem,
    },
}

/// The bundle: relative path -> content, in path order.
pub type Bundle = BTreeMap<String, String>;

const TEMPLATES: [(&str, &str); 17] = [
    (
        "systemd/backup.service",
        include_str!("../../templates/systemd/backup.service.j2"),
    ),
    (
        "systemd/backup.timer",
        include_str!("../../templates/systemd/backup.timer.j2"),
    ),
    (
        "systemd/restore.service",
        include_str!("../../templates/systemd/restore.service.j2"),
    ),
    (
        "systemd/maintenance.service",
        include_str!("../../templates/systemd/maintenance.service.j2"),
    ),
    (
        "systemd/maintenance.timer",
        include_str!("../../templates/systemd/maintenance.timer.j2"),
    ),
    (
        "systemd/status.service",
        include_str!("../../templates/systemd/status.service.j2"),
    ),
    (
        "systemd/status.timer",
        include_str!("../../templates/systemd/status.timer.j2"),
    ),
    (
        "cron/ovbackup",
        include_str!("../../templates/cron/ovbackup.j2"),
    ),
    (
        "compose/docker-compose.yaml",
        include_str!("../../templates/compose/docker-compose.yaml.j2"),
    ),
    (
        "compose/Dockerfile",
        include_str!("../../templates/compose/Dockerfile.j2"),
    ),
    (
        "compose/env.example",
        include_str!("../../templates/compose/env.example.j2"),
    ),
    (
        "prometheus/ovbackup.rules.yml",
        include_str!("../../templates/prometheus/ovbackup.rules.yml.j2"),
    ),
    (
        "airflow/vm_dag.py",
        include_str!("../../templates/airflow/vm_dag.py.j2"),
    ),
    (
        "airflow/maintenance_dag.py",
        include_str!("../../templates/airflow/maintenance_dag.py.j2"),
    ),
    (
        "airflow/Dockerfile",
        include_str!("../../templates/airflow/Dockerfile.j2"),
    ),
    (
        "airflow/docker-compose.yaml",
        include_str!("../../templates/airflow/docker-compose.yaml.j2"),
    ),
    ("MANIFEST", ""),
];

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    for (name, source) in TEMPLATES.iter().filter(|(_, s)| !s.is_empty()) {
        env.add_template(name, source)
            .expect("embedded templates parse (tested)");
    }
    env
}

/// Compiles a policy into its bundle.
///
/// # Errors
/// Only when validation let through what cannot be compiled (a bug).
pub fn compile(policy: &Policy, options: &BuildOptions) -> Result<Bundle, CompileError> {
    check_options(options)?;
    let env = environment();
    let render = |template: &'static str, ctx: minijinja::Value| {
        env.get_template(template)
            .and_then(|t| t.render(ctx))
            .map_err(|source| CompileError::Render { template, source })
    };
    let enabled: Vec<&VmPolicy> = policy.vms.iter().filter(|vm| vm.enabled).collect();
    // Each VM's files depend on that VM alone, so they are made in parallel.
    let per_vm: Vec<Bundle> = enabled
        .par_iter()
        .map(|vm| vm_files(policy, vm, options, &render))
        .collect::<Result<_, _>>()?;
    let mut bundle: Bundle = per_vm.into_iter().flatten().collect();
    shared_files(&mut bundle, policy, &enabled, options, &render)?;
    let manifest = manifest(&bundle);
    bundle.insert("MANIFEST".into(), manifest);
    Ok(bundle)
}

/// Renders a template (embedded, by name) with a context.
pub(crate) type Render<'a> =
    dyn Fn(&'static str, minijinja::Value) -> Result<String, CompileError> + Sync + 'a;

/// The units all VMs share, their paths in the bundle and their templates: the daily prune and
/// verify, and the status metrics every five minutes.
const HOST_UNITS: [(&str, &str); 4] = [
    (
        "systemd/ovrun-maintenance.service",
        "systemd/maintenance.service",
    ),
    (
        "systemd/ovrun-maintenance.timer",
        "systemd/maintenance.timer",
    ),
    ("systemd/ovrun-status.service", "systemd/status.service"),
    ("systemd/ovrun-status.timer", "systemd/status.timer"),
];

/// The compose bundle's files: their paths in the bundle and their templates.
const COMPOSE_FILES: [(&str, &str); 3] = [
    ("compose/docker-compose.yaml", "compose/docker-compose.yaml"),
    ("compose/Dockerfile", "compose/Dockerfile"),
    ("compose/.env.example", "compose/env.example"),
];

/// The alert rules: their path in the bundle and their template.
const ALERT_RULES: [(&str, &str); 1] = [(
    "prometheus/ovbackup.rules.yml",
    "prometheus/ovbackup.rules.yml",
)];

/// The alert rules' context: the rules as YAML ([`super::alerts`]) and the grace they use.
fn alert_context(
    policy: &Policy,
    enabled: &[&VmPolicy],
    options: &BuildOptions,
) -> Result<minijinja::Value, CompileError> {
    let file = super::alerts::rules(policy, enabled)
        .map_err(|(vm, problem)| CompileError::Cron { vm, problem })?;
    Ok(context! {
        policy_file => &options.policy_file,
        grace => super::alerts::human_duration(super::alerts::GRACE),
        body => super::alerts::to_yaml(&file),
    })
}

/// The files all VMs share, per target: the maintenance units, the cron file (which the
/// compose bundle runs too), the compose bundle and the alert rules.
fn shared_files(
    bundle: &mut Bundle,
    policy: &Policy,
    enabled: &[&VmPolicy],
    options: &BuildOptions,
    render: &Render<'_>,
) -> Result<(), CompileError> {
    let mut add = |files: &[(&str, &'static str)], ctx: minijinja::Value| {
        for (path, template) in files {
            bundle.insert((*path).to_owned(), render(template, ctx.clone())?);
        }
        Ok::<_, CompileError>(())
    };
    if options.targets.systemd {
        add(&HOST_UNITS, common(options, policy))?;
    }
    if options.targets.cron || options.targets.compose {
        add(
            &[("cron/ovbackup", "cron/ovbackup")],
            cron_file(enabled, options),
        )?;
    }
    if options.targets.compose {
        add(&COMPOSE_FILES, compose_context(policy, enabled, options))?;
    }
    if options.targets.prometheus {
        add(&ALERT_RULES, alert_context(policy, enabled, options)?)?;
    }
    if options.targets.airflow {
        airflow_files(bundle, policy, enabled, options, render)?;
    }
    Ok(())
}

/// The Airflow target's files: a DAG per VM and per backup host, the DAG factory and the
/// timetable plugin, the pools, and the compose file with its workers' image.
fn airflow_files(
    bundle: &mut Bundle,
    policy: &Policy,
    enabled: &[&VmPolicy],
    options: &BuildOptions,
    render: &Render<'_>,
) -> Result<(), CompileError> {
    use super::airflow;
    let runner_dir = runner_dir(options);
    let paths = airflow::Paths {
        ovrun: &options.ovrun,
        runner_dir: &runner_dir,
    };
    let header = |ctx: minijinja::Value| context! { policy_file => &options.policy_file, ..ctx };
    let dags: Vec<(String, String)> = airflow::vm_dags(policy, enabled, paths)
        .par_iter()
        .map(|dag| {
            let ctx = header(minijinja::Value::from(minijinja::value::Serde(dag)));
            Ok((dag.path.clone(), render("airflow/vm_dag.py", ctx)?))
        })
        .collect::<Result<_, CompileError>>()?;
    bundle.extend(dags);
    for dag in airflow::maintenance_dags(enabled, paths) {
        let ctx = header(minijinja::Value::from(minijinja::value::Serde(&dag)));
        bundle.insert(dag.path.clone(), render("airflow/maintenance_dag.py", ctx)?);
    }
    for (path, content) in airflow::STATIC_FILES {
        bundle.insert(path.to_owned(), content.to_owned());
    }
    bundle.insert("airflow/pools.json".into(), airflow::pools(policy, enabled));
    let ctx = context! {
        policy_file => &options.policy_file,
        airflow_version => airflow::AIRFLOW_VERSION,
        ovrun_json => json_string(&options.ovrun),
        body => airflow_compose_body(policy, enabled, options),
    };
    for (path, template) in AIRFLOW_DEPLOYMENT {
        bundle.insert(path.to_owned(), render(template, ctx.clone())?);
    }
    Ok(())
}

/// The Airflow compose file and its workers' image: their paths and templates.
const AIRFLOW_DEPLOYMENT: [(&str, &str); 2] = [
    ("airflow/docker-compose.yaml", "airflow/docker-compose.yaml"),
    ("airflow/Dockerfile", "airflow/Dockerfile"),
];

/// The compose file's YAML: a worker per backup host with the files its VMs' configs name.
fn airflow_compose_body(policy: &Policy, enabled: &[&VmPolicy], options: &BuildOptions) -> String {
    use super::airflow_compose::{Worker, WorkerFiles, compose_file, to_yaml};
    let sides = engine_sides(policy, enabled);
    let (mounts, secrets) = compose_secrets(&sides, options);
    let files = WorkerFiles {
        backup_directory: policy.backup_directory.clone(),
        runner_dir: runner_dir(options),
        ca_files: sides
            .iter()
            .filter_map(|(_, engine)| engine.cert_path.clone())
            .collect(),
        secrets: mounts,
    };
    let workers: Vec<Worker> = super::airflow::host_ids(enabled)
        .into_values()
        .map(|id| Worker { id })
        .collect();
    to_yaml(&compose_file(&workers, &files, secrets))
}

/// The options reach units, cron lines and compose values as the policy's strings do, so they
/// are held to the same rules: no control character, absolute paths in normal form, and no
/// `$` in `ovrun`'s path (systemd does not expand the executable's path, so `$$` would stay).
fn check_options(options: &BuildOptions) -> Result<(), CompileError> {
    let refuse = |option, value: &String, why| {
        Err(CompileError::Option {
            option,
            value: value.clone(),
            why,
        })
    };
    if options.policy_file.chars().any(char::is_control) {
        return refuse(
            "policy-file",
            &options.policy_file,
            "it holds a control character",
        );
    }
    let page = options.status_page.iter().map(|page| ("status-page", page));
    let paths = [
        ("ovrun", &options.ovrun),
        ("config-dir", &options.config_dir),
        ("log-dir", &options.log_dir),
        ("metrics-dir", &options.metrics_dir),
    ];
    for (option, value) in paths.into_iter().chain(page) {
        if value.chars().any(char::is_control) {
            return refuse(option, value, "it holds a control character");
        }
        if !value.starts_with('/') {
            return refuse(option, value, "it is not an absolute path");
        }
        if let Some(why) = super::safety::unusable(value) {
            return refuse(option, value, why);
        }
    }
    if options.ovrun.contains('$') {
        return refuse("ovrun", &options.ovrun, "it holds `$`");
    }
    Ok(())
}

/// One VM's runner config and, for the systemd target, its units.
fn vm_files(
    policy: &Policy,
    vm: &VmPolicy,
    options: &BuildOptions,
    render: &Render<'_>,
) -> Result<Bundle, CompileError> {
    let mut files = Bundle::new();
    let config = runner_config(policy, vm, &options.config_dir);
    let mut json = serde_json::to_string_pretty(&config).expect("runner configs serialize");
    json.push('\n');
    files.insert(format!("runner/{}.json", vm.name), json);
    if options.targets.systemd {
        systemd_units(&mut files, vm, &config, options, render)?;
    }
    Ok(files)
}

/// `sha256sum` format, so `sha256sum -c MANIFEST` checks an installed bundle.
fn manifest(bundle: &Bundle) -> String {
    let entries: Vec<(&String, &String)> = bundle.iter().collect();
    entries
        .par_iter()
        .map(|(path, content)| {
            format!(
                "{}  {path}\n",
                hex::encode(Sha256::digest(content.as_bytes()))
            )
        })
        .collect::<Vec<String>>()
        .concat()
}

fn common(options: &BuildOptions, policy: &Policy) -> minijinja::Value {
    context! {
        policy_file => &options.policy_file,
        ovrun_arg => systemd_word(&options.ovrun),
        runner_dir_arg => systemd_quote(&runner_dir(options)),
        backup_directory_arg => systemd_quote(&policy.backup_directory),
        metrics_dir_arg => systemd_quote(&options.metrics_dir),
        metrics_file_arg => systemd_quote(&metrics_file(options)),
        page_arg => options.status_page.as_deref().map(systemd_quote),
        page_dir_arg => status_page_dir(options).map(systemd_quote),
    }
}

/// The folder of the status page, which the status unit may write (the page is written
/// through a temporary file beside it).
pub fn status_page_dir(options: &BuildOptions) -> Option<&str> {
    let (dir, _) = options.status_page.as_deref()?.rsplit_once('/')?;
    Some(if dir.is_empty() { "/" } else { dir })
}

fn runner_dir(options: &BuildOptions) -> String {
    format!("{}/runner", options.config_dir)
}

/// The textfile the status timer writes: its name is the one the alert rules' staleness check
/// reads ([`super::alerts`]).
pub fn metrics_file(options: &BuildOptions) -> String {
    format!("{}/{}", options.metrics_dir, super::alerts::METRICS_FILE)
}

fn config_path(options: &BuildOptions, vm: &str) -> String {
    format!("{}/{vm}.json", runner_dir(options))
}

fn systemd_units(
    bundle: &mut Bundle,
    vm: &VmPolicy,
    config: &RunnerConfig,
    options: &BuildOptions,
    render: &Render<'_>,
) -> Result<(), CompileError> {
    let escaped = systemd_escape(&vm.name);
    let backup_unit = format!("ovrun-backup-{escaped}.service");
    let restore_unit = format!("ovrun-restore-{escaped}.service");
    let ctx = unit_context(vm, config, options, &backup_unit, &restore_unit)?;
    bundle.insert(
        format!("systemd/{backup_unit}"),
        render("systemd/backup.service", ctx.clone())?,
    );
    bundle.insert(
        format!("systemd/ovrun-backup-{escaped}.timer"),
        render("systemd/backup.timer", ctx.clone())?,
    );
    if vm.auto_restore {
        bundle.insert(
            format!("systemd/{restore_unit}"),
            render("systemd/restore.service", ctx)?,
        );
    }
    Ok(())
}

/// What a VM's unit templates fill in: `%` doubled where systemd expands specifiers, paths
/// and arguments quoted as systemd reads them.
fn unit_context(
    vm: &VmPolicy,
    config: &RunnerConfig,
    options: &BuildOptions,
    backup_unit: &str,
    restore_unit: &str,
) -> Result<minijinja::Value, CompileError> {
    let (on_calendar, guarded) =
        calendar::systemd(&vm.schedule).map_err(|problem| CompileError::Cron {
            vm: vm.name.clone(),
            problem,
        })?;
    Ok(context! {
        policy_file => &options.policy_file,
        ovrun_arg => systemd_word(&options.ovrun),
        vm_unit_text => vm.name.replace('%', "%%"),
        config_arg => systemd_quote(&config_path(options, &vm.name)),
        backup_directory_arg => systemd_quote(&config.backup_directory),
        source_password_file => config.source.password_file.replace('%', "%%"),
        target_password_file => config.target.as_ref().map(|t| t.password_file.replace('%', "%%")),
        timeout_minutes => config.restore.as_ref().map(|r| r.timeout_minutes),
        restore_unit => vm.auto_restore.then_some(restore_unit),
        backup_unit => backup_unit,
        on_calendar => on_calendar,
        guarded => guarded || config.due_guard.is_some(),
        schedule_text => config.schedule.to_json().to_string().replace('%', "%%"),
    })
}

#[derive(Serialize)]
struct CronGroup {
    zone: Option<String>,
    entries: Vec<CronEntry>,
}

#[derive(Serialize)]
struct CronEntry {
    vm_text: String,
    schedule_text: String,
    guarded: bool,
    lines: Vec<String>,
    command: String,
}

/// The cron file's status command: the metrics, and the page when one is asked for.
fn status_command(options: &BuildOptions) -> String {
    let ovrun = shell_quote(&options.ovrun);
    let runner = shell_quote(&runner_dir(options));
    let metrics = shell_quote(&metrics_file(options));
    let page = options
        .status_page
        .as_deref()
        .map_or(String::new(), |page| {
            format!(" --format html --output {}", shell_quote(page))
        });
    format!("{ovrun} status --config-dir {runner} --metrics {metrics}{page} >/dev/null")
}

fn cron_file(vms: &[&VmPolicy], options: &BuildOptions) -> minijinja::Value {
    let groups = cron_groups(vms, options);
    let ovrun = shell_quote(&options.ovrun);
    let runner = shell_quote(&runner_dir(options));
    context! {
        policy_file => &options.policy_file,
        groups => minijinja::Value::from(minijinja::value::Serde(&groups)),
        user => "root",
        maintenance_line => "0 12 * * *",
        maintenance_command => cron_escape(&format!("{ovrun} prune --config-dir {runner} && {ovrun} verify --config-dir {runner}")),
        status_line => "*/5 * * * *",
        status_command => cron_escape(&status_command(options)),
    }
}

/// The VMs' entries grouped by time zone, the host's zone (`None`) first: any `CRON_TZ=` line
/// changes the zone for the lines after it.
fn cron_groups(vms: &[&VmPolicy], options: &BuildOptions) -> Vec<CronGroup> {
    let mut groups: BTreeMap<Option<String>, Vec<CronEntry>> = BTreeMap::new();
    for vm in vms {
        let (lines, guarded) = calendar::cron(&vm.schedule);
        let entry = CronEntry {
            vm_text: vm.name.clone(),
            schedule_text: super::normalize::schedule_json(&vm.schedule).to_string(),
            guarded,
            lines,
            command: cron_command(vm, options),
        };
        groups
            .entry(vm.schedule.timezone.clone())
            .or_default()
            .push(entry);
    }
    groups
        .into_iter()
        .map(|(zone, entries)| CronGroup { zone, entries })
        .collect()
}

fn cron_command(vm: &VmPolicy, options: &BuildOptions) -> String {
    let lock = shell_quote(&format!(
        "/run/lock/ovrun-{}.lock",
        systemd_escape(&vm.name)
    ));
    let ovrun = shell_quote(&options.ovrun);
    let config = shell_quote(&config_path(options, &vm.name));
    let log = shell_quote(&format!("{}/{}.log", options.log_dir, vm.name));
    let mut command = format!("flock -n {lock} {ovrun} backup --config {config} >> {log} 2>&1");
    if vm.auto_restore {
        let _ = write!(
            command,
            " && flock -n {lock} {ovrun} restore --config {config} >> {log} 2>&1"
        );
    }
    cron_escape(&command)
}

/// The compose file's volumes and secrets, and the `.env.example` entries of its secrets.
fn compose_context(policy: &Policy, vms: &[&VmPolicy], options: &BuildOptions) -> minijinja::Value {
    let sides = engine_sides(policy, vms);
    let file = compose_file(policy, &sides, options);
    let secret_variables: Vec<(&str, String)> = sides
        .iter()
        .map(|(side, _)| (*side, secret_variable(side)))
        .collect();
    context! {
        policy_file => &options.policy_file,
        ovrun_json => json_string(&options.ovrun),
        body => compose::to_yaml(&file),
        secrets => secret_variables,
    }
}

/// The engines the VMs use: the source, and the target when some VM restores into it.
fn engine_sides<'p>(
    policy: &'p Policy,
    vms: &[&VmPolicy],
) -> Vec<(&'static str, &'p super::model::Engine)> {
    let restores = vms.iter().any(|vm| vm.auto_restore);
    std::iter::once(("source", &policy.source))
        .chain(
            policy
                .target
                .iter()
                .filter(|_| restores)
                .map(|t| ("target", t)),
        )
        .collect()
}

fn secret_variable(side: &str) -> String {
    format!("{}_PASSWORD_FILE", side.to_uppercase())
}

fn compose_file(
    policy: &Policy,
    sides: &[(&'static str, &super::model::Engine)],
    options: &BuildOptions,
) -> compose::ComposeFile {
    use compose::{Build, ComposeFile, Service};
    let (mounts, secrets) = compose_secrets(sides, options);
    let service = Service {
        build: Build {
            context: ".",
            dockerfile: "Dockerfile",
            additional_contexts: BTreeMap::from([("source", "${OVBACKUP_SOURCE:-../..}")]),
        },
        image: "ovbackup/ovrun:local",
        restart: "unless-stopped",
        init: true,
        environment: BTreeMap::from([("TZ", "${TZ:-UTC}")]),
        volumes: compose_volumes(policy, sides, options),
        secrets: mounts,
    };
    ComposeFile {
        name: "ovbackup",
        services: BTreeMap::from([("scheduler", service)]),
        secrets,
    }
}

/// The scheduler's bind mounts: the backup directory, the runner configs, the cron file, the
/// logs, the metrics' textfile folder, the status page's folder (when asked for), and each
/// engine's CA file at its own path.
fn compose_volumes(
    policy: &Policy,
    sides: &[(&'static str, &super::model::Engine)],
    options: &BuildOptions,
) -> Vec<compose::Volume> {
    use compose::{Volume, compose_escape};
    let same = |path: &str| (compose_escape(path), compose_escape(path));
    let (backup_source, backup_target) = same(&policy.backup_directory);
    let (metrics_source, metrics_target) = same(&options.metrics_dir);
    let page = status_page_dir(options).map(|dir| {
        let (source, target) = same(dir);
        Volume::bind(source, target, false)
    });
    let mut volumes = vec![
        Volume::bind(backup_source, backup_target, false),
        Volume::bind(
            "../runner".into(),
            compose_escape(&runner_dir(options)),
            true,
        ),
        Volume::bind(
            "../cron/ovbackup".into(),
            "/etc/cron.d/ovbackup".into(),
            true,
        ),
        Volume::bind(
            "${LOG_DIR:-./logs}".into(),
            // Where the cron lines append (`--log-dir`).
            compose_escape(&options.log_dir),
            false,
        ),
        // The status line's textfile, for the host's node_exporter.
        Volume::bind(metrics_source, metrics_target, false),
    ];
    // The status page's folder, for the host's web server.
    volumes.extend(page);
    for (_, engine) in sides {
        if let Some(ca) = &engine.cert_path {
            let (source, target) = same(ca);
            volumes.push(Volume::bind(source, target, true));
        }
    }
    volumes
}

/// Each engine's password as a compose secret (a file named by an `.env` variable), mounted
/// read-only where the runner config expects it.
fn compose_secrets(
    sides: &[(&'static str, &super::model::Engine)],
    options: &BuildOptions,
) -> (
    Vec<compose::SecretMount>,
    BTreeMap<String, compose::SecretFile>,
) {
    use compose::{SecretFile, SecretMount, compose_escape};
    let mut mounts = Vec::new();
    let mut secrets = BTreeMap::new();
    for (side, engine) in sides {
        let path = engine
            .password_file
            .clone()
            .unwrap_or_else(|| super::runner::default_password_file(&options.config_dir, side));
        let name = format!("{side}_password");
        mounts.push(SecretMount {
            source: name.clone(),
            target: compose_escape(&path),
            mode: 0o400,
        });
        let file = format!("${{{}:-./secrets/{side}.password}}", secret_variable(side));
        secrets.insert(name, SecretFile { file });
    }
    (mounts, secrets)
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A unit-name component escaped exactly as `systemd-escape` does: `/` becomes `-`; ASCII
/// letters, digits, `:`, `_` and `.` (but a leading `.`) stay; every other byte is `\xNN`.
pub fn systemd_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, byte) in text.bytes().enumerate() {
        let keep =
            byte.is_ascii_alphanumeric() || matches!(byte, b':' | b'_') || (byte == b'.' && i > 0);
        match byte {
            b'/' => out.push('-'),
            _ if keep => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}

/// One argument of an `ExecStart=` line: double-quoted, with systemd's specifier (`%`) and
/// variable (`$`) characters doubled.
pub fn systemd_quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// One `ExecStart=` word: as it is when systemd would read it back unchanged, else quoted.
pub fn systemd_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._:+,=@-".contains(&b));
    if plain {
        text.to_owned()
    } else {
        systemd_quote(text)
    }
}

/// One shell word, single-quoted.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A cron command: an unescaped `%` ends the command (cron feeds the rest to its standard
/// input), so each is written `\%`, which cron reads back as `%`. Cron has no escape for `\`
/// itself: a `\` before a `%` would make it `\\%`, which cron reads as `\\` and an unescaped
/// `%`. Such a `\` can only stand inside a single-quoted shell word (the `\` of `'\''` is
/// followed by `'`, and the fixed parts have none), so `''` (an empty quoted string to the
/// shell) is put between them.
fn cron_escape(command: &str) -> String {
    command.replace("\\%", "\\''%").replace('%', "\\%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_systemd_escape() {
        assert_eq!(systemd_escape("web 01/é.x"), "web\\x2001-\\xc3\\xa9.x");
        assert_eq!(
            systemd_escape(".hidden-name_ok:1"),
            "\\x2ehidden\\x2dname_ok:1"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(systemd_quote("/a b/100%$x\"y"), "\"/a b/100%%$$x\\\"y\"");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(cron_escape("date +%s"), "date +\\%s");
        assert_eq!(cron_escape("'a\\%b'"), "'a\\''\\%b'");
        assert_eq!(systemd_word("/usr/local/bin/ovrun"), "/usr/local/bin/ovrun");
        assert_eq!(systemd_word("/opt/my ovrun"), "\"/opt/my ovrun\"");
    }
}
