//! Whether a compiled bundle means what its policy means, read back as systemd, cron, sh and
//! compose read it: every unit line is a section, a comment or a known `Key=`; every command
//! line's argv and every path are the policy's; every cron line is a comment, an environment
//! line or a schedule line whose command is one the policy asked for; the compose file's
//! values are the policy's. Shared by the property test (`injection.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/plan_check.rs` includes this file and `artifact_syntax.rs`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use ovbackup::plan::compile::{
    BuildOptions, Bundle, metrics_file, status_page_dir, systemd_escape,
};
use ovbackup::plan::model::{Engine, Policy, VmPolicy};
use ovbackup::plan::runner::{RunnerConfig, default_password_file, runner_config};
use serde_json::Value;

use super::artifact_syntax::{
    UnitLine, cron_fields, cron_unescape, dag_call_arguments, exec_argv, expand_specifiers,
    python_literal, sh_tokens, unit_lines,
};

/// Keys the unit templates write, by section.
const UNIT_KEYS: [(&str, &[&str]); 4] = [
    ("Unit", &["Description", "Wants", "After", "OnSuccess"]),
    (
        "Service",
        &[
            "Type",
            "ExecStart",
            "LoadCredential",
            "Environment",
            "TimeoutStartSec",
            "KillMode",
            "TimeoutStopSec",
            "NoNewPrivileges",
            "PrivateTmp",
            "PrivateNetwork",
            "ProtectSystem",
            "ReadWritePaths",
            "ProtectHome",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "RestrictSUIDSGID",
            "RestrictRealtime",
            "RestrictNamespaces",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "SystemCallArchitectures",
            "RestrictAddressFamilies",
            "UMask",
            "Nice",
            "IOSchedulingClass",
            "StandardOutput",
        ],
    ),
    (
        "Timer",
        &["OnCalendar", "Persistent", "AccuracySec", "Unit"],
    ),
    ("Install", &["WantedBy"]),
];

/// Checks every file of `bundle` against the policy it was compiled from.
///
/// # Errors
/// The first file that holds something the policy did not mean, and what.
pub fn check_meaning(
    policy: &Policy,
    options: &BuildOptions,
    bundle: &Bundle,
) -> Result<(), String> {
    let enabled: Vec<&VmPolicy> = policy.vms.iter().filter(|vm| vm.enabled).collect();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for vm in &enabled {
        expected.insert(format!("runner/{}.json", vm.name));
        check_runner(
            policy,
            vm,
            options,
            &bundle[&format!("runner/{}.json", vm.name)],
        )
        .map_err(|e| format!("runner/{}.json: {e}", vm.name))?;
        if options.targets.systemd {
            for (path, content) in vm_units(policy, vm, options) {
                let text = bundle.get(&path).ok_or(format!("{path} is missing"))?;
                check_unit(text, &content).map_err(|e| format!("{path}: {e}"))?;
                expected.insert(path);
            }
        }
    }
    if options.targets.systemd {
        let path = "systemd/ovrun-maintenance.service".to_owned();
        check_unit(&bundle[&path], &maintenance_unit(policy, options))
            .map_err(|e| format!("{path}: {e}"))?;
        expected.insert(path);
        expected.insert("systemd/ovrun-maintenance.timer".into());
        let path = "systemd/ovrun-status.service".to_owned();
        check_unit(&bundle[&path], &status_unit(options)).map_err(|e| format!("{path}: {e}"))?;
        expected.insert(path);
        expected.insert("systemd/ovrun-status.timer".into());
    }
    if options.targets.cron || options.targets.compose {
        check_cron(policy, &enabled, options, &bundle["cron/ovbackup"])
            .map_err(|e| format!("cron/ovbackup: {e}"))?;
        expected.insert("cron/ovbackup".into());
    }
    if options.targets.compose {
        check_compose(policy, &enabled, options, bundle)?;
        for file in ["docker-compose.yaml", "Dockerfile", ".env.example"] {
            expected.insert(format!("compose/{file}"));
        }
    }
    if options.targets.prometheus {
        let path = "prometheus/ovbackup.rules.yml";
        check_rules(&enabled, &bundle[path]).map_err(|e| format!("{path}: {e}"))?;
        expected.insert(path.into());
    }
    if options.targets.airflow {
        check_airflow(&enabled, options, bundle, &mut expected)?;
    }
    expected.insert("MANIFEST".into());
    let written: BTreeSet<String> = bundle.keys().cloned().collect();
    if written != expected {
        return Err(format!("files {written:?}, expected {expected:?}"));
    }
    Ok(())
}

fn check_runner(
    policy: &Policy,
    vm: &VmPolicy,
    options: &BuildOptions,
    text: &str,
) -> Result<(), String> {
    let config: RunnerConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if config != runner_config(policy, vm, &options.config_dir) {
        return Err("differs from runner_config".into());
    }
    let same = |what: &str, got: &str, want: &str| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what} {got:?}, policy {want:?}"))
        }
    };
    same("vm", &config.vm, &vm.name)?;
    same("backup_host", &config.backup_host, &vm.backup_host)?;
    let backups = config.max_concurrent_backups.to_string();
    same(
        "max_concurrent_backups",
        &backups,
        &policy.source.max_concurrent_jobs.to_string(),
    )?;
    same(
        "backup_directory",
        &config.backup_directory,
        &policy.backup_directory,
    )?;
    same(
        "checkpoints_file",
        &config.checkpoints_file,
        &policy.checkpoints_file,
    )?;
    check_access(&config.source, &policy.source, "source", options)?;
    if let (Some(got), Some(want)) = (&config.target, &policy.target) {
        check_access(got, want, "target", options)?;
        same(
            "max_concurrent_restores",
            &config.max_concurrent_restores.to_string(),
            &want.max_concurrent_jobs.to_string(),
        )?;
    }
    if let Some(restore) = &config.restore {
        same(
            "vm_name",
            &restore.vm_name,
            &format!("{}{}", vm.name, policy.restore.vm_name_suffix),
        )?;
        same(
            "cluster",
            &restore.target_cluster_name,
            &policy.restore.target_cluster_name,
        )?;
        let domain = policy
            .restore
            .target_storage_domain_name
            .clone()
            .unwrap_or_default();
        same("domain", &restore.target_storage_domain_name, &domain)?;
    }
    Ok(())
}

fn check_access(
    got: &ovbackup::plan::runner::EngineAccess,
    want: &Engine,
    side: &str,
    options: &BuildOptions,
) -> Result<(), String> {
    let file = password_file(want, side, options);
    if got.url != want.url
        || got.user != want.user
        || got.ca_file != want.cert_path
        || got.password_file != file
    {
        return Err(format!("{side} engine {got:?}, policy {want:?}"));
    }
    Ok(())
}

fn password_file(engine: &Engine, side: &str, options: &BuildOptions) -> String {
    engine
        .password_file
        .clone()
        .unwrap_or_else(|| default_password_file(&options.config_dir, side))
}

/// What a unit must say: its description, its command lines' argv, its credentials' paths and
/// its writable paths.
#[derive(Debug, Default)]
struct UnitMeaning {
    description: String,
    exec: Vec<Vec<String>>,
    credentials: Vec<String>,
    writable: Vec<String>,
}

fn config_path(options: &BuildOptions, vm: &str) -> String {
    format!("{}/runner/{vm}.json", options.config_dir)
}

fn vm_units(policy: &Policy, vm: &VmPolicy, options: &BuildOptions) -> Vec<(String, UnitMeaning)> {
    let escaped = systemd_escape(&vm.name);
    let config = config_path(options, &vm.name);
    let source = password_file(&policy.source, "source", options);
    let mut units = vec![
        (
            format!("systemd/ovrun-backup-{escaped}.service"),
            UnitMeaning {
                description: format!("oVirt backup (VM {})", vm.name),
                exec: vec![vec![
                    options.ovrun.clone(),
                    "backup".into(),
                    "--config".into(),
                    config.clone(),
                ]],
                credentials: vec![format!("source-password:{source}")],
                writable: vec![policy.backup_directory.clone()],
            },
        ),
        (
            format!("systemd/ovrun-backup-{escaped}.timer"),
            UnitMeaning {
                description: format!("Backup schedule (VM {})", vm.name),
                ..UnitMeaning::default()
            },
        ),
    ];
    if vm.auto_restore {
        let target = policy
            .target
            .as_ref()
            .map(|t| password_file(t, "target", options))
            .unwrap_or_default();
        units.push((
            format!("systemd/ovrun-restore-{escaped}.service"),
            UnitMeaning {
                description: format!("oVirt restore of VM {} into the DR engine", vm.name),
                exec: vec![vec![
                    options.ovrun.clone(),
                    "restore".into(),
                    "--config".into(),
                    config,
                ]],
                credentials: vec![
                    format!("source-password:{source}"),
                    format!("target-password:{target}"),
                ],
                writable: vec![policy.backup_directory.clone()],
            },
        ));
    }
    units
}

fn maintenance_unit(policy: &Policy, options: &BuildOptions) -> UnitMeaning {
    let dir = format!("{}/runner", options.config_dir);
    let command = |verb: &str| {
        vec![
            options.ovrun.clone(),
            verb.into(),
            "--config-dir".into(),
            dir.clone(),
        ]
    };
    UnitMeaning {
        description: "Prune and verify every VM's oVirt backups".into(),
        exec: vec![command("prune"), command("verify")],
        credentials: Vec::new(),
        writable: vec![policy.backup_directory.clone()],
    }
}

/// The status command's argv (unit and cron line alike): the metrics of every VM, and the page
/// when one is asked for.
pub fn status_argv(options: &BuildOptions) -> Vec<String> {
    let mut argv = vec![
        options.ovrun.clone(),
        "status".into(),
        "--config-dir".into(),
        format!("{}/runner", options.config_dir),
        "--metrics".into(),
        metrics_file(options),
    ];
    if let Some(page) = &options.status_page {
        argv.extend(["--format", "html", "--output", page].map(str::to_owned));
    }
    argv
}

/// The status unit: the metrics of every VM, written where node_exporter reads them.
fn status_unit(options: &BuildOptions) -> UnitMeaning {
    let mut description = "Write the oVirt backups' status metrics for the alert rules".to_owned();
    let mut writable = vec![options.metrics_dir.clone()];
    if options.status_page.is_some() {
        description.push_str(" and the status page");
        writable.extend(status_page_dir(options).map(str::to_owned));
    }
    UnitMeaning {
        description,
        exec: vec![status_argv(options)],
        credentials: Vec::new(),
        writable,
    }
}

fn check_unit(text: &str, meaning: &UnitMeaning) -> Result<(), String> {
    let known: BTreeMap<&str, &[&str]> = UNIT_KEYS.into_iter().collect();
    let mut section = String::new();
    let mut found = UnitMeaning::default();
    for line in unit_lines(text)? {
        match line {
            UnitLine::Section(name) if known.contains_key(name.as_str()) => section = name,
            UnitLine::Section(name) => return Err(format!("unknown section [{name}]")),
            UnitLine::Assignment(key, value) => {
                if !known
                    .get(section.as_str())
                    .is_some_and(|keys| keys.contains(&key.as_str()))
                {
                    return Err(format!("unknown line {key}={value} in [{section}]"));
                }
                match key.as_str() {
                    "Description" => found.description = expand_specifiers(&value)?,
                    "ExecStart" => found.exec.push(exec_argv(&value)?),
                    "LoadCredential" => found.credentials.push(expand_specifiers(&value)?),
                    "ReadWritePaths" => found.writable.extend(exec_argv(&value)?),
                    _ => {}
                }
            }
        }
    }
    let same = found.description == meaning.description
        && found.exec == meaning.exec
        && found.credentials == meaning.credentials
        && found.writable == meaning.writable;
    if same {
        Ok(())
    } else {
        Err(format!("reads back as {found:?}, meant {meaning:?}"))
    }
}

/// The shell tokens (quoted words marked with a leading `'`) of one VM's cron command.
pub fn cron_tokens(vm: &VmPolicy, options: &BuildOptions) -> Vec<String> {
    let lock = format!("'/run/lock/ovrun-{}.lock", systemd_escape(&vm.name));
    let ovrun = format!("'{}", options.ovrun);
    let config = format!("'{}", config_path(options, &vm.name));
    let log = format!("'{}/{}.log", options.log_dir, vm.name);
    let run = |verb: &str| -> Vec<String> {
        [
            "flock", "-n", &lock, &ovrun, verb, "--config", &config, ">>", &log, "2>&1",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let mut tokens = run("backup");
    if vm.auto_restore {
        tokens.push("&&".into());
        tokens.extend(run("restore"));
    }
    tokens
}

/// The shell tokens of the maintenance cron command.
pub fn maintenance_tokens(options: &BuildOptions) -> Vec<String> {
    let ovrun = format!("'{}", options.ovrun);
    let dir = format!("'{}/runner", options.config_dir);
    let mut tokens = vec![
        ovrun.clone(),
        "prune".into(),
        "--config-dir".into(),
        dir.clone(),
        "&&".into(),
    ];
    tokens.extend([ovrun, "verify".into(), "--config-dir".into(), dir]);
    tokens
}

/// The shell tokens of the status metrics' cron command.
pub fn status_tokens(options: &BuildOptions) -> Vec<String> {
    let mut tokens = vec![
        format!("'{}", options.ovrun),
        "status".into(),
        "--config-dir".into(),
        format!("'{}/runner", options.config_dir),
        "--metrics".into(),
        format!("'{}", metrics_file(options)),
    ];
    if let Some(page) = &options.status_page {
        tokens.extend(["--format".into(), "html".into(), "--output".into()]);
        tokens.push(format!("'{page}"));
    }
    tokens.push(">/dev/null".into());
    tokens
}

fn check_cron(
    policy: &Policy,
    vms: &[&VmPolicy],
    options: &BuildOptions,
    text: &str,
) -> Result<(), String> {
    let _ = policy;
    let mut wanted: BTreeMap<Vec<String>, bool> = vms
        .iter()
        .map(|vm| (cron_tokens(vm, options), false))
        .collect();
    wanted.insert(maintenance_tokens(options), false);
    wanted.insert(status_tokens(options), false);
    let zones: BTreeSet<String> = vms
        .iter()
        .filter_map(|vm| vm.schedule.timezone.clone())
        .collect();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = environment_line(trimmed) {
            let fine = match name {
                "SHELL" => value == "/bin/sh",
                "PATH" => !value.contains(' '),
                "CRON_TZ" => zones.contains(value),
                _ => false,
            };
            if !fine {
                return Err(format!("unexpected environment line {line:?}"));
            }
            continue;
        }
        let (_, user, command) = cron_fields(line).ok_or(format!("not a cron line: {line:?}"))?;
        if user != "root" {
            return Err(format!("user {user:?} in {line:?}"));
        }
        let tokens = sh_tokens(&cron_unescape(command)?)?;
        match wanted.get_mut(&tokens) {
            Some(seen) => *seen = true,
            None => return Err(format!("a command the policy did not ask for: {tokens:?}")),
        }
    }
    match wanted.iter().find(|(_, seen)| !**seen) {
        Some((tokens, _)) => Err(format!("no line runs {tokens:?}")),
        None => Ok(()),
    }
}

fn environment_line(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    is_name.then_some((name, value))
}

fn check_compose(
    policy: &Policy,
    vms: &[&VmPolicy],
    options: &BuildOptions,
    bundle: &Bundle,
) -> Result<(), String> {
    let yaml = &bundle["compose/docker-compose.yaml"];
    let doc: Value = serde_norway::from_str(yaml).map_err(|e| format!("compose YAML: {e}"))?;
    let mut strings = Vec::new();
    collect_strings(&doc, &mut strings);
    let fixed = [
        "${OVBACKUP_SOURCE:-../..}",
        "${TZ:-UTC}",
        "${LOG_DIR:-./logs}",
        "${SOURCE_PASSWORD_FILE:-./secrets/source.password}",
        "${TARGET_PASSWORD_FILE:-./secrets/target.password}",
    ];
    for s in &strings {
        if !fixed.contains(&s.as_str()) && s.replace("$$", "").contains('$') {
            return Err(format!("compose value {s:?} interpolates"));
        }
    }
    let service = &doc["services"]["scheduler"];
    let volume = |v: &Value, key: &str| {
        v[key]
            .as_str()
            .map(|s| s.replace("$$", "$"))
            .unwrap_or_default()
    };
    let volumes: Vec<(String, String)> = service["volumes"]
        .as_array()
        .ok_or("no volumes")?
        .iter()
        .map(|v| (volume(v, "source"), volume(v, "target")))
        .collect();
    let restores = vms.iter().any(|vm| vm.auto_restore);
    let engines: Vec<(&str, &Engine)> = std::iter::once(("source", &policy.source))
        .chain(
            policy
                .target
                .iter()
                .filter(|_| restores)
                .map(|t| ("target", t)),
        )
        .collect();
    let bd = policy.backup_directory.clone();
    let mut want = vec![
        (bd.clone(), bd),
        ("../runner".into(), format!("{}/runner", options.config_dir)),
        ("../cron/ovbackup".into(), "/etc/cron.d/ovbackup".into()),
        ("${LOG_DIR:-./logs}".into(), options.log_dir.clone()),
        (options.metrics_dir.clone(), options.metrics_dir.clone()),
    ];
    want.extend(status_page_dir(options).map(|dir| (dir.to_owned(), dir.to_owned())));
    want.extend(
        engines
            .iter()
            .filter_map(|(_, e)| e.cert_path.clone().map(|c| (c.clone(), c))),
    );
    if volumes != want {
        return Err(format!("compose volumes {volumes:?}, meant {want:?}"));
    }
    let secrets: Vec<String> = service["secrets"]
        .as_array()
        .ok_or("no secrets")?
        .iter()
        .map(|s| volume(s, "target"))
        .collect();
    let want: Vec<String> = engines
        .iter()
        .map(|(side, e)| password_file(e, side, options))
        .collect();
    if secrets != want {
        return Err(format!("compose secrets {secrets:?}, meant {want:?}"));
    }
    let dockerfile = &bundle["compose/Dockerfile"];
    let copy = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("COPY --from=build "))
        .ok_or("no COPY of ovrun")?;
    let copy: Vec<String> = serde_json::from_str(copy).map_err(|e| format!("COPY: {e}"))?;
    if copy
        != [
            "/src/target/release/ovrun".to_owned(),
            options.ovrun.clone(),
        ]
    {
        return Err(format!("Dockerfile COPY {copy:?}"));
    }
    Ok(())
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The alert rules: YAML whose per-VM rules name exactly the enabled VMs, each in its `vm`
/// label (as Prometheus's templating prints it) and in its expression's selector.
fn check_rules(enabled: &[&VmPolicy], text: &str) -> Result<(), String> {
    let rules: serde_json::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let mut named = BTreeSet::new();
    for rule in rules["groups"].as_array().into_iter().flatten() {
        for rule in rule["rules"].as_array().into_iter().flatten() {
            let Some(label) = rule["labels"]["vm"].as_str() else {
                continue;
            };
            let vm = label.replace("{{ \"{{\" }}", "{{");
            let quoted = vm
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let selector = format!("{{vm=\"{quoted}\"}}");
            if !rule["expr"].as_str().is_some_and(|e| e.contains(&selector)) {
                return Err(format!("{} of {vm:?} does not select it", rule["alert"]));
            }
            named.insert(vm);
        }
    }
    let want: BTreeSet<String> = enabled.iter().map(|vm| vm.name.clone()).collect();
    if named != want {
        return Err(format!("rules for {named:?}, expected {want:?}"));
    }
    Ok(())
}

/// A DAG file's arguments, string literals read as Python reads them, by name.
fn dag_arguments(path: &str, text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let read = |value: &String| {
        if value.starts_with(['"', '\'']) {
            python_literal(value)
        } else {
            Ok(value.clone())
        }
    };
    dag_call_arguments(text)
        .and_then(|arguments| {
            arguments
                .into_iter()
                .map(|(name, values)| {
                    Ok((name, values.iter().map(read).collect::<Result<_, _>>()?))
                })
                .collect()
        })
        .map_err(|e| format!("{path}: {e}"))
}

/// Each VM's DAG file and each backup host's maintenance DAG file call the factory with the
/// policy's names and paths exactly; the Airflow target's other files are there.
fn check_airflow(
    enabled: &[&VmPolicy],
    options: &BuildOptions,
    bundle: &Bundle,
    expected: &mut BTreeSet<String>,
) -> Result<(), String> {
    use ovbackup::plan::airflow::{STATIC_FILES, backup_host, host_ids, safe_ids};
    let runner = |vm: &VmPolicy| format!("{}/runner/{}.json", options.config_dir, vm.name);
    let hosts = host_ids(enabled);
    let ids = safe_ids(enabled.iter().map(|vm| vm.name.as_str()));
    for (vm, id) in enabled.iter().zip(ids) {
        let path = format!("airflow/dags/ovbackup_{id}.py");
        let text = bundle.get(&path).ok_or(format!("{path} is missing"))?;
        let arguments = dag_arguments(&path, text)?;
        for (name, meant) in [
            ("dag_id", format!("ovbackup_{id}")),
            ("vm", vm.name.clone()),
            ("ovrun", options.ovrun.clone()),
            ("config", runner(vm)),
            ("queue", hosts[backup_host(vm)].clone()),
        ] {
            if arguments.get(name) != Some(&vec![meant.clone()]) {
                return Err(format!(
                    "{path}: {name} is {:?}, meant {meant:?}",
                    arguments.get(name)
                ));
            }
        }
        expected.insert(path);
    }
    for (host, id) in &hosts {
        let path = format!("airflow/dags/ovmaintenance_{id}.py");
        let text = bundle.get(&path).ok_or(format!("{path} is missing"))?;
        let arguments = dag_arguments(&path, text)?;
        let meant: Vec<String> = enabled
            .iter()
            .filter(|vm| backup_host(vm) == host)
            .map(|vm| runner(vm))
            .collect();
        if arguments.get("configs") != Some(&meant) {
            return Err(format!(
                "{path}: configs {:?}, meant {meant:?}",
                arguments.get("configs")
            ));
        }
        expected.insert(path);
    }
    expected.extend(STATIC_FILES.iter().map(|(path, _)| (*path).to_owned()));
    for file in ["pools.json", "docker-compose.yaml", "Dockerfile"] {
        expected.insert(format!("airflow/{file}"));
    }
    Ok(())
}
