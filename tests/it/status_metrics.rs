//! The metrics the alert rules read (issue 15) from real runs: `ovbackup_next_due_timestamp_seconds`
//! after a backup, `ovbackup_verify_problems` after
//! a clean and a damaging verify, `ovbackup_last_restore_failed` after a restore that failed,
//! and `ovbackup_ca_not_after_timestamp_seconds` of the engine's CA, as `ovrun status
//! --metrics` writes them, also for every runner config of a folder (`--config-dir`, what a
//! metrics timer runs); tests/it/alerts.rs checks the rules that read these names.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{backup_ok, ovrun, runner_config};

/// `ovrun status --metrics` for `config`: the metrics file's text.
fn metrics(config: &Path, dir: &Path) -> String {
    let file = dir.join("ovbackup.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["status", "--config"])
        .arg(config)
        .arg("--metrics")
        .arg(&file)
        .output()
        .expect("ovrun status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&file).expect("metrics")
}

/// The value of the sample of `name` whose labels contain `labels`.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_restore_and_ca_metrics_come_from_real_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    backup_ok(&config, &[]);
    let path = config.to_str().expect("utf-8");
    let (code, _) = tokio::task::block_in_place(|| ovrun(&["verify", "--config", path]));
    assert_eq!(code, 0);
    let text = metrics(&config, dir.path());
    assert_eq!(
        sample(&text, "ovbackup_verify_problems", "vm=\"web 01\""),
        Some(0.0)
    );
    let ca = sample(
        &text,
        "ovbackup_ca_not_after_timestamp_seconds",
        "side=\"source\"",
    );
    assert!(
        ca.is_some_and(|at| at > chrono::Utc::now().timestamp() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ovbackup_last_restore_failed", "vm="),
        None,
        "no restore yet"
    );
    // The runner config's schedule is daily at 02:00 UTC: next due is the first 02:00 after
    // the last success started.
    let success = sample(
        &text,
        "ovbackup_last_success_timestamp_seconds",
        "vm=\"web 01\"",
    )
    .expect("a success");
    let due = sample(
        &text,
        "ovbackup_next_due_timestamp_seconds",
        "vm=\"web 01\"",
    )
    .expect("next due");
    let day = 86_400.0;
    let expected = (success - 2.0 * 3600.0).div_euclid(day) * day + day + 2.0 * 3600.0;
    assert_eq!(due, expected, "{text}");

    // A page that cannot be written (its folder is missing) fails the run, but the metrics
    // were written first: the alerts keep their data.
    let fresh = dir.path().join("fresh.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["status", "--config"])
        .arg(&config)
        .arg("--metrics")
        .arg(&fresh)
        .args(["--format", "html", "--output"])
        .arg(dir.path().join("no such folder/index.html"))
        .output()
        .expect("ovrun status");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such folder"),
        "names the page"
    );
    assert_eq!(
        std::fs::read_to_string(&fresh).expect("metrics written"),
        text
    );

    // Damage: a point's image cut short; a restore whose DR cluster does not exist.
    let vm_dir = dir.path().join("backup/web 01");
    let image = std::fs::read_dir(&vm_dir)
        .expect("folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with(".qcow2"))
        .expect("an image");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .expect("image");
    file.set_len(4096).expect("cut");
    let (code, _) = tokio::task::block_in_place(|| ovrun(&["verify", "--config", path]));
    assert_eq!(code, 1, "damage found");
    let mut with_restore: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("JSON");
    with_restore["target"] = with_restore["source"].clone();
    with_restore["restore"] = json!({
        "vm_name": "web 01_dr", "target_cluster_name": "nowhere",
        "target_storage_domain_name": "data", "disk_interface": "virtio_scsi",
        "timeout_minutes": 1, "auto_start_restored_vm": false, "replace_existing_vm": false,
        "backup_old_vm": false, "restore_log_directory": dir.path().join("restore_logs"),
    });
    std::fs::write(&config, with_restore.to_string()).expect("config");
    let (code, _) = tokio::task::block_in_place(|| ovrun(&["restore", "--config", path]));
    assert_ne!(code, 0, "the restore fails");
    let text = metrics(&config, dir.path());
    assert_eq!(
        sample(&text, "ovbackup_verify_problems", "vm=\"web 01\""),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "ovbackup_last_restore_failed", "vm=\"web 01\""),
        Some(1.0)
    );
    sim.running.shutdown().await;
}
