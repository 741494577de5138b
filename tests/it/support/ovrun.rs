//! Running `ovrun` against `ovsim`: runner configs as `ovplan build` writes them, the binary
//! run with JSON logs, and what a successful backup leaves (its manifests).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::engine::Sim;

/// A runner config for `web 01` on `sim`, backing up into `dir/backup`.
pub fn runner_config(sim: &Sim, dir: &Path, vm: &str) -> PathBuf {
    let password = dir.join("source.password");
    std::fs::write(
        &password,
        format!("{}\n", sim.running.users["admin@internal"]),
    )
    .expect("pw");
    let config = json!({
        "format": 1,
        "vm": vm,
        "source": {
            "url": sim.running.api_url(),
            "user": "admin@internal",
            "password_file": password,
            "password_credential": "source-password",
            "ca_file": sim.running.pki.ca_cert,
        },
        "target": null,
        "backup_directory": dir.join("backup"),
        "checkpoints_file": dir.join("backup/checkpoints.json"),
        "schedule": {"type": "simple", "pattern": "daily", "time": "02:00", "timezone": "UTC"},
        "timezone": "UTC",
        "due_guard": null,
        "backup": {
            "incremental_enabled": true,
            "full_backup_frequency": "never",
            "full_backup_day": "sunday",
            "anchor_date": "2024-01-01",
            "max_incremental_chain_length": 10,
            "force_full_backup_days": 0
        },
        "retention": {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "max_backup_age_days": 0},
        "restore": null
    });
    let path = dir.join("runner.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON")).expect("config");
    path
}

/// Runs `ovrun ARGS`; exit code and standard error.
pub fn ovrun(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(args)
        .env("OVRUN_LOG_FORMAT", "json")
        .output()
        .expect("ovrun runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ovrun backup --config CONFIG` in a blocking section; must succeed.
pub fn backup_ok(config: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "--config", config.to_str().expect("utf-8")];
    args.extend(extra);
    let (code, log) = tokio::task::block_in_place(|| ovrun(&args));
    assert_eq!(code, 0, "ovrun backup failed:\n{log}");
    log
}

/// `ovrun verify --config CONFIG` accepts the catalog.
pub fn verify_ok(config: &Path) {
    let (code, log) = tokio::task::block_in_place(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
            .args(["verify", "--config", config.to_str().expect("utf-8")])
            .output()
            .expect("ovrun verify");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    });
    assert_eq!(code, 0, "ovrun verify found damage:\n{log}");
    assert!(log.contains("no damage found"), "{log}");
}

/// The manifests in the VM's folder, oldest first.
pub fn manifests(vm_dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(vm_dir)
        .expect("VM folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".manifest.json")))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p).expect("manifest")).expect("JSON")
        })
        .collect()
}

/// The password every test config names: no listener may ever see it.
pub const SECRET: &str = "s3cret-never-in-clear";

/// A runner config for VM `vm` whose engines (source and target) are at `url`, trusting `ca`,
/// backing up into `dir/backup`; its password file holds [`SECRET`].
pub fn config_for(dir: &Path, vm: &str, url: &str, ca: Option<&Path>) -> PathBuf {
    let password = dir.join("engine.password");
    std::fs::write(&password, format!("{SECRET}\n")).expect("password");
    let engine = json!({
        "url": url,
        "user": "admin@internal",
        "password_file": password,
        "password_credential": "engine-password",
        "ca_file": ca,
    });
    let config = json!({
        "format": 1,
        "vm": vm,
        "source": engine,
        "target": engine,
        "backup_directory": dir.join("backup"),
        "checkpoints_file": dir.join("backup/checkpoints.json"),
        "schedule": {"type": "simple", "pattern": "daily", "time": "02:00", "timezone": "UTC"},
        "timezone": "UTC",
        "due_guard": null,
        "backup": {
            "incremental_enabled": true,
            "full_backup_frequency": "never",
            "full_backup_day": "sunday",
            "anchor_date": "2024-01-01",
            "max_incremental_chain_length": 10,
            "force_full_backup_days": 0
        },
        "retention": {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "max_backup_age_days": 0},
        "restore": {
            "vm_name": format!("{vm}_dr"),
            "target_cluster_name": "DR",
            "target_storage_domain_name": "data",
            "disk_interface": "virtio_scsi",
            "timeout_minutes": 10,
            "auto_start_restored_vm": false,
            "replace_existing_vm": false,
            "backup_old_vm": false,
            "restore_log_directory": dir.join("restore_logs"),
        }
    });
    std::fs::create_dir_all(dir.join("backup")).expect("backup directory");
    let path = dir.join(format!("{vm}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON")).expect("config");
    path
}
