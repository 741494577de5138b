//! `ovrun backup` when things go wrong, each case ending with a catalog whose newest point equals
//! the disk, no leftovers, and a next run that succeeds: a lost bitmap and an invalid checkpoint
//! (full backup in the same run), a 500 from the engine, a locked VM, the data connection cut
//! mid-transfer, the process killed with SIGKILL mid-transfer, a full backup directory, a VM
//! name with spaces and unicode, and SIGTERM while waiting for another run's catalog lock (exit
//! 4 at once, not 3 after the wait).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, raw_copy, same_content, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config, verify_ok};
use crate::support::tmpfs::Tmpfs;

/// The newest point of `vm_dir` equals `disk` now, and nothing but points is in the folder.
fn newest_equals(vm_dir: &Path, alias: &str, disk: &Path) {
    let points = manifests(vm_dir);
    let newest = points.last().expect("a point");
    let entry = newest["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["alias"] == alias)
        .expect("disk");
    let file = vm_dir.join(entry["file"].as_str().expect("file"));
    assert!(
        same_content(&file, disk),
        "the newest point of {alias} equals the disk"
    );
    let vm = newest["vm"].as_str().expect("vm");
    let catalog = ovbackup::run::catalog::Catalog::open(vm_dir.parent().expect("parent"), vm)
        .expect("catalog");
    assert_eq!(
        catalog.leftovers().expect("leftovers"),
        Vec::<PathBuf>::new()
    );
}

fn kinds(vm_dir: &Path) -> Vec<String> {
    manifests(vm_dir)
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn failing_backup(config: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["backup", "--config", config.to_str().expect("utf-8")];
    args.extend(extra);
    tokio::task::block_in_place(|| ovrun(&args))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_bitmap_or_an_invalid_checkpoint_makes_a_full_backup_in_the_same_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    let os = sim.disk_id("web01_os").await;
    backup_ok(&config, &[]);

    sim.admin("lose-bitmap", json!({"disk": os})).await;
    sim.admin(
        "guest-write",
        json!({"disk": os, "offset": 0, "length": MIB, "pattern": 0x61}),
    )
    .await;
    let log = backup_ok(&config, &[]);
    assert!(
        log.contains("incremental backup not possible"),
        "the log says why:\n{log}"
    );
    assert_eq!(kinds(&vm_dir), ["full", "full"]);
    let now = dir.path().join("now.raw");
    raw_copy(&sim.disk_file(&os), &now);
    newest_equals(&vm_dir, "web01_os", &now);

    let vm = sim.vm("web 01").await;
    let last = manifests(&vm_dir).last().expect("point")["checkpoint"].clone();
    sim.admin(
        "checkpoint-state",
        json!({"vm": vm["id"], "checkpoint": last, "state": "invalid"}),
    )
    .await;
    let log = backup_ok(&config, &[]);
    assert!(log.contains("marked checkpoint"), "{log}");
    assert_eq!(kinds(&vm_dir), ["full", "full", "full"]);
    backup_ok(&config, &[]);
    assert_eq!(kinds(&vm_dir), ["full", "full", "full", "incremental"]);
    verify_ok(&config);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_errors_and_locks_leave_no_point_and_the_next_run_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    let os = sim.disk_id("web01_os").await;
    backup_ok(&config, &[]);

    // A 500 on a read is retried; a 500 when creating a transfer fails the run cleanly.
    sim.admin(
        "faults",
        json!({"method": "GET", "path": "/ovirt-engine/api/vms/*/backups/*", "status": 500}),
    )
    .await;
    backup_ok(&config, &[]);
    sim.admin("faults", json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers", "status": 500,
                               "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}}))
        .await;
    let (code, log) = failing_backup(&config, &[]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("Internal Engine Error"), "{log}");
    assert_eq!(
        kinds(&vm_dir),
        ["full", "incremental"],
        "no point from the failed run"
    );
    let vm = sim.vm("web 01").await;
    let backups = sim
        .get(&format!("{}/backups", vm["href"].as_str().expect("href")))
        .await;
    assert!(
        backups["backup"]
            .as_array()
            .expect("list")
            .iter()
            .all(|b| b["phase"] == "succeeded"),
        "the failed run finalized its backup: {backups}"
    );

    // A locked VM is waited for, then reported by name.
    sim.admin(
        "lock",
        json!({"kind": "vm", "id": vm["id"], "locked": true}),
    )
    .await;
    let (code, log) = failing_backup(&config, &["--engine-lock-wait", "2"]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("VM web 01 is still image_locked"), "{log}");
    sim.admin(
        "lock",
        json!({"kind": "vm", "id": vm["id"], "locked": false}),
    )
    .await;
    backup_ok(&config, &[]);
    assert_eq!(kinds(&vm_dir), ["full", "incremental", "incremental"]);
    let now = dir.path().join("now.raw");
    raw_copy(&sim.disk_file(&os), &now);
    newest_equals(&vm_dir, "web01_os", &now);
    let status: Value = serde_json::from_str(
        &std::fs::read_to_string(vm_dir.join(".status.json")).expect("status"),
    )
    .expect("JSON");
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("image_locked"))
    );
    verify_ok(&config);
    sim.running.shutdown().await;
}

/// Starts `ovrun backup` (one connection) and returns once its first image file holds more
/// than 1 MiB: data is being written (and its local writer is connected).
async fn backup_moving_data(config: &Path, vm_dir: &Path, stderr: Stdio) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args([
            "backup",
            "--config",
            config.to_str().expect("utf-8"),
            "--workers",
            "1",
        ])
        .stderr(stderr)
        .spawn()
        .expect("ovrun");
    for _ in 0..300 {
        let started = std::fs::read_dir(vm_dir)
            .map(|d| {
                d.filter_map(Result::ok).any(|e| {
                    e.path().extension().is_some_and(|x| x == "qcow2")
                        && e.metadata().is_ok_and(|m| m.len() > MIB)
                })
            })
            .unwrap_or(false);
        if started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// A VM with a 256 MiB disk full of data, so a transfer lasts long enough to be cut or killed.
fn big_seed(name: &str) -> Value {
    json!({
        "storage_domains": [{"name": "data"}],
        "vms": [{"name": name, "disks": [
            {"name": "big", "size_mib": 256, "data": [{"offset_mib": 0, "length_mib": 256, "pattern": 7}]}
        ]}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_connection_or_a_killed_run_leaves_no_point_and_the_next_run_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), big_seed("big01")).await;
    let config = runner_config(&sim, dir.path(), "big01");
    let vm_dir = dir.path().join("backup/big01");
    let disk = sim.disk_id("big").await;

    sim.admin("cut", json!({"after_bytes": 16 * MIB})).await;
    let (code, log) = failing_backup(&config, &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        manifests(&vm_dir).is_empty(),
        "no point from a cut transfer"
    );

    // SIGKILL while the data moves: files without a manifest, a backup left running.
    let mut child = backup_moving_data(&config, &vm_dir, Stdio::null()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(manifests(&vm_dir).is_empty(), "a killed run made no point");
    let writers = || {
        let out = Command::new("pgrep")
            .args(["-f", &format!("qemu-nbd.*{}", vm_dir.display())])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for _ in 0..100 {
        if writers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        writers(),
        "",
        "the killed run's local qemu-nbd went with it"
    );

    let log = backup_ok(&config, &[]);
    assert!(log.contains("left by a run that did not finish"), "{log}");
    assert!(log.contains("left running by an earlier ovrun"), "{log}");
    assert_eq!(kinds(&vm_dir), ["full"]);
    let now = dir.path().join("now.raw");
    raw_copy(&sim.disk_file(&disk), &now);
    newest_equals(&vm_dir, "big", &now);
    verify_ok(&config);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backup_directory_fails_cleanly_and_a_unicode_name_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "wéb 01 ✓ db";
    let sim = Sim::start(&dir.path().join("prod"), big_seed(name)).await;
    let config = runner_config(&sim, dir.path(), name);
    let backup_dir = dir.path().join("backup");
    let tmpfs = Tmpfs::mount(&backup_dir, "64m");
    let (code, log) = failing_backup(&config, &[]);
    drop(tmpfs);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("No space left on device"),
        "the log says why:\n{log}"
    );

    backup_ok(&config, &[]);
    let vm_dir = backup_dir.join(name);
    assert_eq!(kinds(&vm_dir), ["full"]);
    let disk = sim.disk_id("big").await;
    let now = dir.path().join("now.raw");
    raw_copy(&sim.disk_file(&disk), &now);
    newest_equals(&vm_dir, "big", &now);
    verify_ok(&config);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finalizes_the_engines_backup_and_leaves_no_point() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), big_seed("big02")).await;
    let config = runner_config(&sim, dir.path(), "big02");
    let vm_dir = dir.path().join("backup/big02");
    let child = backup_moving_data(&config, &vm_dir, Stdio::piped()).await;
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("exit");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stopped by a signal:\n{log}");
    assert!(manifests(&vm_dir).is_empty(), "no point from a stopped run");
    let vm = sim.vm("big02").await;
    let backups = sim
        .get(&format!("{}/backups", vm["href"].as_str().expect("href")))
        .await;
    let phases: Vec<&str> = backups["backup"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|b| b["phase"].as_str())
        .collect();
    assert_eq!(
        phases,
        ["succeeded"],
        "the stopped run finalized its backup"
    );
    let disk = sim.disk_id("big").await;
    assert_eq!(sim.get(&format!("/disks/{disk}")).await["status"], "ok");
    backup_ok(&config, &[]);
    verify_ok(&config);
    sim.running.shutdown().await;
}

/// Every backup the engine has for VM `name` succeeded (none left running), and its disks are
/// unlocked.
async fn engine_backups_all_finalized(sim: &Sim, name: &str) {
    let vm = sim.vm(name).await;
    let backups = sim
        .get(&format!("{}/backups", vm["href"].as_str().expect("href")))
        .await;
    assert!(
        backups["backup"]
            .as_array()
            .expect("list")
            .iter()
            .all(|b| b["phase"] == "succeeded"),
        "{backups}"
    );
    for alias in ["web01_os", "web01_data"] {
        let disk = sim.disk_id(alias).await;
        assert_eq!(sim.get(&format!("/disks/{disk}")).await["status"], "ok");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_or_a_lost_answer_on_a_finalize_is_retried_and_the_backup_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    let os = sim.disk_id("web01_os").await;
    let cases = [
        ("/ovirt-engine/api/vms/*/backups/*/finalize", false),
        ("/ovirt-engine/api/imagetransfers/*/finalize", false),
        // The engine finalizes, but its answer is lost: the retry is refused (409, already
        // finalizing), and the phase shows the finalize went through.
        ("/ovirt-engine/api/vms/*/backups/*/finalize", true),
        ("/ovirt-engine/api/imagetransfers/*/finalize", true),
    ];
    for (index, (path, lose_answer)) in cases.into_iter().enumerate() {
        sim.admin(
            "faults",
            json!({"method": "POST", "path": path, "status": 500, "lose_answer": lose_answer,
                   "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}}),
        )
        .await;
        sim.admin(
            "guest-write",
            json!({"disk": os, "offset": index as u64 * MIB, "length": MIB, "pattern": 0x41 + index}),
        )
        .await;
        let log = backup_ok(&config, &[]);
        assert!(log.contains("trying again"), "{path}: retried:\n{log}");
        engine_backups_all_finalized(&sim, "web 01").await;
    }
    assert_eq!(
        kinds(&vm_dir),
        ["full", "incremental", "incremental", "incremental"]
    );
    let now = dir.path().join("now.raw");
    raw_copy(&sim.disk_file(&os), &now);
    newest_equals(&vm_dir, "web01_os", &now);
    verify_ok(&config);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_the_wait_for_a_busy_vms_catalog() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    backup_ok(&config, &[]);
    // Another run holds the VM's catalog lock.
    let held = std::fs::File::open(vm_dir.join(ovbackup::run::catalog::LOCK_FILE)).expect("lock");
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["backup", "--config", config.to_str().expect("utf-8")])
        .args(["--lock-wait", "3600"])
        .env("OVRUN_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ovrun");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    while !log.contains("holds VM web 01's catalog; waiting") {
        let line = tokio::task::block_in_place(|| lines.next())
            .expect("ovrun says it waits before it ends")
            .expect("a line");
        log.push_str(&line);
        log.push('\n');
    }
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = tokio::task::block_in_place(|| child.wait()).expect("exit");
    log.extend(lines.map_while(Result::ok).map(|l| l + "\n"));
    assert_eq!(status.code(), Some(4), "stopped, not busy:\n{log}");
    assert_eq!(manifests(&vm_dir).len(), 1, "no new point");
    drop(held);
    backup_ok(&config, &[]);
    verify_ok(&config);
    sim.running.shutdown().await;
}
