//! The engine's limit of concurrent backups on one backup host (issue 14): `ovrun backup`
//! takes one of `max_concurrent_backups` slots of its source engine before it changes anything
//! there, waiting its turn, never failing for it. Six real `ovrun backup` processes started at
//! once against one `ovsim` with a limit of 2 all succeed, and `ovsim` (its admin counter,
//! read with `ovsim admin peak-backups`) never saw more than two VMs backed up at once; a
//! SIGTERM to a waiting one stops it with exit 4, as other stops do. The counter counts a
//! snapshot-method run too, while its disk snapshot is downloaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ovbackup::run::catalog::{EngineSlots, SlotKind};
use serde_json::{Value, json};

use crate::support::engine::Sim;
use crate::support::ovrun::runner_config;

/// The VMs backed up at once, each with one small disk holding data.
const VMS: [&str; 7] = ["vm1", "vm2", "vm3", "vm4", "vm5", "vm6", "vm7"];

fn seed() -> Value {
    let vms: Vec<Value> = VMS
        .iter()
        .map(|name| {
            json!({"name": name, "memory_mib": 512, "disks": [
                {"name": format!("{name}_os"), "size_mib": 8,
                 "data": [{"offset_mib": 0, "length_mib": 1, "pattern": 7}]}
            ]})
        })
        .collect();
    json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "vms": vms
    })
}

/// A runner config of `vm` in `dir/<vm>.json`, backing up into the shared `dir/backup` with at
/// most two backups on the engine at once.
fn config(sim: &Sim, dir: &Path, vm: &str) -> PathBuf {
    let written = runner_config(sim, dir, vm);
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&written).expect("config")).expect("JSON");
    config["max_concurrent_backups"] = json!(2);
    let path = dir.join(format!("{vm}.json"));
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

/// `ovrun backup --config CONFIG --full` in the background, its log in `log`.
fn start_backup(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args([
            "backup",
            "--config",
            config.to_str().expect("utf-8"),
            "--full",
        ])
        .env("OVRUN_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("ovrun starts")
}

/// What `ovsim admin --state STATE ACTION` prints, as JSON.
fn admin(state: &Path, action: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ovsim"))
        .args(["admin", "--state", state.to_str().expect("utf-8"), action])
        .output()
        .expect("ovsim admin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{action}: {e}: {stdout}"))
}

/// Waits (up to two minutes: a bound, not a measure) until every log says its run waits for a
/// backup slot.
fn until_all_wait(logs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let waits = |log: &PathBuf| {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains("waiting for a backup slot"))
    };
    while !logs.iter().all(waits) {
        assert!(Instant::now() < deadline, "not every run waits: {logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn six_backups_at_once_keep_to_the_engines_limit_of_two() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("prod");
    let sim = Sim::start(&state, seed()).await;
    let configs: Vec<PathBuf> = VMS.iter().map(|vm| config(&sim, dir.path(), vm)).collect();
    let logs: Vec<PathBuf> = VMS
        .iter()
        .map(|vm| dir.path().join(format!("{vm}.log")))
        .collect();
    let reset = tokio::task::block_in_place(|| admin(&state, "reset-peak-backups"));
    assert_eq!(reset, json!({"running": 0, "peak": 0}));

    // Another job of this backup directory holds both slots: every run waits, none starts.
    let backup_dir = dir.path().join("backup");
    std::fs::create_dir_all(&backup_dir).expect("backup directory");
    let url = sim.running.api_url();
    let slots = EngineSlots::open(&backup_dir, SlotKind::Backup, &url, 2).expect("slots");
    let held = [slots.try_take(), slots.try_take()].map(|s| s.expect("take").expect("a slot"));
    let mut runs: Vec<Child> = configs
        .iter()
        .zip(&logs)
        .map(|(config, log)| start_backup(config, log))
        .collect();
    tokio::task::block_in_place(|| until_all_wait(&logs));
    let waiting = tokio::task::block_in_place(|| admin(&state, "peak-backups"));
    assert_eq!(waiting, json!({"running": 0, "peak": 0}), "no backup began");

    // A stop while waiting: exit 4, as any stop.
    let stopped = runs.pop().expect("the seventh run");
    let pid = rustix::process::Pid::from_raw(i32::try_from(stopped.id()).expect("pid"));
    rustix::process::kill_process(pid.expect("pid"), rustix::process::Signal::TERM)
        .expect("SIGTERM");
    let out = tokio::task::block_in_place(|| stopped.wait_with_output()).expect("exit");
    let stop_log = std::fs::read_to_string(&logs[6]).expect("log");
    assert_eq!(
        out.status.code(),
        Some(4),
        "stopped while waiting:\n{stop_log}"
    );

    // The slots free: the six take turns, two at a time, and all succeed.
    drop(held);
    for (mut run, log) in runs.into_iter().zip(&logs) {
        let status = tokio::task::block_in_place(|| run.wait()).expect("exit");
        let text = std::fs::read_to_string(log).expect("log");
        assert_eq!(status.code(), Some(0), "{}:\n{text}", log.display());
        assert!(text.contains("took backup slot"), "{text}");
        assert!(text.contains(&url), "the log names the engine: {text}");
    }
    let load = tokio::task::block_in_place(|| admin(&state, "peak-backups"));
    assert_eq!(load["running"], 0, "{load}");
    let peak = load["peak"].as_u64().expect("peak");
    assert!((1..=2).contains(&peak), "at most two at once: {load}");
    for vm in &VMS[..6] {
        let points = crate::support::ovrun::manifests(&backup_dir.join(vm));
        assert_eq!(points.len(), 1, "{vm} has its point");
    }
    assert!(
        crate::support::ovrun::manifests(&backup_dir.join("vm7")).is_empty(),
        "the stopped run made no point"
    );

    // The snapshot method holds no backup on the engine; its snapshot's downloads count.
    let reset = tokio::task::block_in_place(|| admin(&state, "reset-peak-backups"));
    assert_eq!(reset, json!({"running": 0, "peak": 0}));
    let mut snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(&configs[6]).expect("config")).expect("JSON");
    snapshot["backup"]["backup_method"] = json!("snapshot");
    std::fs::write(&configs[6], snapshot.to_string()).expect("config");
    let log = crate::support::ovrun::backup_ok(&configs[6], &["--full"]);
    assert!(log.contains("backup method: snapshot"), "{log}");
    let load = tokio::task::block_in_place(|| admin(&state, "peak-backups"));
    assert_eq!(
        load,
        json!({"running": 0, "peak": 1}),
        "one VM, while its disk moved"
    );
    sim.running.shutdown().await;
}
