//! `ovrun backup` by the snapshot method end to end against `ovsim`, whose snapshots are real
//! qcow2 layers: a full and two incrementals, the guest writing between runs and while a run
//! reads its snapshot. Each point's chain equals the disk at its snapshot (the snapshot's own
//! layer chain, copied the moment it was made), each incremental moves exactly what was
//! written, and after each run the VM holds only the snapshot the next incremental needs.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, raw_copy, same_content, seed};
use crate::support::ovrun::{backup_ok, manifests, runner_config, verify_ok};

/// `runner_config` with `backup_method` set.
pub fn method_config(sim: &Sim, dir: &Path, vm: &str, method: &str) -> PathBuf {
    let path = runner_config(sim, dir, vm);
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("JSON");
    config["backup"]["backup_method"] = json!(method);
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

/// VM `vm_id`'s snapshots that are not the active one: (id, description, status).
pub async fn taken_snapshots(sim: &Sim, vm_id: &str) -> Vec<(String, String, String)> {
    let list = sim.get(&format!("/vms/{vm_id}/snapshots")).await;
    let all = list["snapshot"].as_array().cloned().unwrap_or_default();
    all.iter()
        .filter(|s| s["snapshot_type"] != "active")
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("id"), text("description"), text("snapshot_status"))
        })
        .collect()
}

/// Waits until an `ovrun` snapshot other than `known` is `ok` on VM `vm_id`; its id.
async fn new_ovrun_snapshot(sim: &Sim, vm_id: &str, known: &[String]) -> String {
    for _ in 0..600 {
        let found = taken_snapshots(sim, vm_id)
            .await
            .into_iter()
            .find(|(id, d, s)| d.starts_with("ovrun ") && s == "ok" && !known.contains(id));
        if let Some((id, _, _)) = found {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("ovrun made no snapshot");
}

/// The disk content at snapshot `snapshot`: its layer's chain, as raw.
fn at_snapshot(sim: &Sim, disk: &str, snapshot: &str, to: &Path) -> PathBuf {
    let layer = sim
        .state
        .join("disks")
        .join(format!("{disk}.snap-{snapshot}.qcow2"));
    raw_copy(&layer, to);
    to.to_owned()
}

fn disk<'a>(manifest: &'a Value, alias: &str) -> &'a Value {
    let disks = manifest["disks"].as_array().expect("disks");
    disks
        .iter()
        .find(|d| d["alias"] == alias)
        .expect("the disk is in the point")
}

/// One run whose snapshot is copied the moment it is made, and written to right after (while
/// the run reads it: the transfers start 1 s late); the copies of each disk at the snapshot.
async fn run_writing_during(
    sim: &Sim,
    config: &Path,
    vm_id: &str,
    disks: &[(&str, String)],
    copies: &Path,
) -> Vec<PathBuf> {
    let known: Vec<String> = taken_snapshots(sim, vm_id)
        .await
        .into_iter()
        .map(|s| s.0)
        .collect();
    let delay = json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers",
                       "status": 0, "delay_ms": 1000, "count": disks.len()});
    sim.admin("faults", delay).await;
    let config = config.to_owned();
    let run = tokio::task::spawn_blocking(move || backup_ok(&config, &[]));
    let snapshot = new_ovrun_snapshot(sim, vm_id, &known).await;
    let at: Vec<PathBuf> = disks
        .iter()
        .map(|(alias, id)| {
            at_snapshot(
                sim,
                id,
                &snapshot,
                &copies.join(format!("{alias}-{snapshot}.raw")),
            )
        })
        .collect();
    for (_, id) in disks {
        let write = json!({"disk": id, "offset": 12 * MIB, "length": 64 * 1024, "pattern": 0x77});
        sim.admin("guest-write", write).await;
    }
    run.await.expect("the run");
    at
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_points_equal_the_disk_at_their_snapshot_and_leave_only_the_kept_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = method_config(&sim, dir.path(), "web 01", "snapshot");
    let vm_dir = dir.path().join("backup/web 01");
    let vm_id = sim.vm("web 01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let disks = [
        ("web01_os", sim.disk_id("web01_os").await),
        ("web01_data", sim.disk_id("web01_data").await),
    ];
    let mut expected = vec![run_writing_during(&sim, &config, &vm_id, &disks, dir.path()).await];
    for round in 0..2u8 {
        let (os, data) = (&disks[0].1, &disks[1].1);
        let writes = [
            json!({"disk": os, "offset": 8 * MIB, "length": MIB, "pattern": 0x22 + round}),
            json!({"disk": os, "offset": 0, "length": MIB, "pattern": null}),
            json!({"disk": data, "offset": 4 * MIB, "length": MIB, "pattern": 0x55 + round}),
        ];
        for write in writes {
            sim.admin("guest-write", write).await;
        }
        expected.push(run_writing_during(&sim, &config, &vm_id, &disks, dir.path()).await);
        let points = manifests(&vm_dir);
        let kept = points.last().expect("a point")["method"]["snapshot"].clone();
        let left = taken_snapshots(&sim, &vm_id).await;
        assert_eq!(left.len(), 1, "only the kept snapshot is left: {left:?}");
        assert_eq!(json!(left[0].0), kept);
    }

    let points = manifests(&vm_dir);
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["full", "incremental", "incremental"]);
    for (manifest, at) in points.iter().zip(&expected) {
        assert_eq!(manifest["method"]["name"], "snapshot");
        assert_eq!(manifest["method"]["vm_was_up"], true);
        for ((alias, _), copy) in disks.iter().zip(at) {
            let file = vm_dir.join(disk(manifest, alias)["file"].as_str().expect("file"));
            assert!(
                same_content(&file, copy),
                "{alias} at {} equals its snapshot",
                manifest["point"]
            );
        }
    }
    let moved = |m: &Value, alias: &str| disk(m, alias)["bytes_transferred"].as_u64();
    assert_eq!(
        moved(&points[0], "web01_os"),
        Some(4 * MIB),
        "a full reads the data only"
    );
    // Each incremental reads its layer's data: 1 MiB written, the 64 KiB written during the
    // run before it; the 1 MiB of zeroes is zeroed locally, not read.
    assert_eq!(moved(&points[1], "web01_os"), Some(MIB + 64 * 1024));
    assert_eq!(moved(&points[2], "web01_os"), Some(MIB + 64 * 1024));
    assert_eq!(moved(&points[2], "web01_data"), Some(MIB + 64 * 1024));
    verify_ok(&config);
    sim.running.shutdown().await;
}

/// A production ovsim, a snapshot-method config for `web 01`, and the VM's id.
async fn snapshot_setup(dir: &Path) -> (Sim, PathBuf, String) {
    let sim = Sim::start(&dir.join("prod"), seed()).await;
    let config = method_config(&sim, dir, "web 01", "snapshot");
    let vm_id = sim.vm("web 01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    (sim, config, vm_id)
}

/// `ovrun backup` with `extra` arguments, expected to fail: its log.
fn backup_fails(config: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "--config", config.to_str().expect("utf-8")];
    args.extend(extra);
    let (code, log) = tokio::task::block_in_place(|| crate::support::ovrun::ovrun(&args));
    assert_ne!(code, 0, "the run was expected to fail:\n{log}");
    log
}

/// After a failure: no point and no snapshot of that run is left, the catalog verifies, and the
/// next run takes a good point with only its own snapshot left.
async fn next_run_is_good(sim: &Sim, config: &Path, vm_id: &str, kinds: &[&str]) {
    verify_ok(config);
    backup_ok(config, &[]);
    verify_ok(config);
    let vm_dir = config.parent().expect("dir").join("backup/web 01");
    let points = manifests(&vm_dir);
    let got: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(got, kinds);
    let left = taken_snapshots(sim, vm_id).await;
    assert_eq!(left.len(), 1, "only the kept snapshot: {left:?}");
    assert_eq!(
        json!(left[0].0),
        points.last().expect("point")["method"]["snapshot"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_or_failed_snapshot_fails_the_run_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, config, vm_id) = snapshot_setup(dir.path()).await;
    let refused = json!({"method": "POST", "path": "/ovirt-engine/api/vms/*/snapshots",
                         "status": 500, "fault": {"reason": "Operation Failed",
                         "detail": "[Failed to create snapshot: storage error]"}});
    sim.admin("faults", refused).await;
    let log = backup_fails(&config, &[]);
    assert!(
        log.contains("storage error"),
        "the engine's words are told:\n{log}"
    );
    assert!(taken_snapshots(&sim, &vm_id).await.is_empty());
    // Made, then gone while polled: the engine rolled it back (404). This run's snapshot,
    // found by its description, is removed before the run ends.
    let vanished = json!({"method": "GET", "path": "/ovirt-engine/api/vms/*/snapshots/*",
                          "status": 404});
    sim.admin("faults", vanished).await;
    let log = backup_fails(&config, &[]);
    assert!(log.contains("failed to make snapshot"), "{log}");
    assert!(
        taken_snapshots(&sim, &vm_id).await.is_empty(),
        "its snapshot was removed"
    );
    next_run_is_good(&sim, &config, &vm_id, &["full"]).await;
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_stuck_locked_is_named_after_a_bounded_wait_and_removed_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, config, vm_id) = snapshot_setup(dir.path()).await;
    sim.admin("hold-snapshots", json!({"hold": true})).await;
    let log = backup_fails(&config, &["--engine-lock-wait", "2"]);
    let left = taken_snapshots(&sim, &vm_id).await;
    assert_eq!(
        left.len(),
        1,
        "a locked snapshot cannot be removed: {left:?}"
    );
    let waited = format!(
        "waiting for snapshot {} of VM web 01 to be made; last seen: status locked",
        left[0].0
    );
    assert!(
        log.contains(&waited),
        "the wait is bounded and names the snapshot:\n{log}"
    );
    assert!(log.contains("the next run removes it"), "{log}");
    sim.admin("hold-snapshots", json!({"hold": false})).await;
    let log = {
        verify_ok(&config);
        backup_ok(&config, &[])
    };
    assert!(
        log.contains("no point builds on it"),
        "the leftover is removed:\n{log}"
    );
    next_run_is_good(&sim, &config, &vm_id, &["full", "incremental"]).await;
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_during_the_transfer_leaves_a_snapshot_the_next_run_removes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, config, vm_id) = snapshot_setup(dir.path()).await;
    backup_ok(&config, &[]);
    // The killed run has read its disk and is finalizing its transfer (held 3 s): the
    // transfer is open on the engine, holding the disk locked.
    let slow = json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers/*/finalize",
                      "status": 0, "delay_ms": 3000});
    sim.admin("faults", slow).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["backup", "--config", config.to_str().expect("utf-8")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ovrun starts");
    sim.until("/imagetransfers", "the killed run's transfer", |l| {
        l["image_transfer"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["phase"] == "transferring"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let (status, _) = sim
        .call(reqwest::Method::DELETE, "/ovsim/admin/faults", None)
        .await;
    assert!(status.is_success());
    let left = taken_snapshots(&sim, &vm_id).await;
    assert_eq!(left.len(), 2, "the killed run's snapshot is left: {left:?}");
    let transfers = sim.get("/imagetransfers").await;
    let open = transfers["image_transfer"].as_array().expect("list").iter();
    assert!(
        open.clone().any(|t| t["phase"] == "transferring"),
        "its transfer is open"
    );
    let log = backup_ok(&config, &[]);
    for words in [
        "ending an image transfer left open",
        "no point builds on it",
    ] {
        assert!(log.contains(words), "the next run says {words:?}:\n{log}");
    }
    next_run_is_good(
        &sim,
        &config,
        &vm_id,
        &["full", "incremental", "incremental"],
    )
    .await;
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_removal_is_retried_and_a_lost_layer_means_a_full() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, config, vm_id) = snapshot_setup(dir.path()).await;
    backup_ok(&config, &[]);
    let busy = json!({"method": "DELETE", "path": "/ovirt-engine/api/vms/*/snapshots/*",
                      "status": 409, "count": 2, "fault": {"reason": "Operation Failed",
                      "detail": "[Cannot remove Snapshot: The following disks are locked: web01_os.]"}});
    sim.admin("faults", busy).await;
    backup_ok(&config, &[]);
    assert_eq!(
        taken_snapshots(&sim, &vm_id).await.len(),
        1,
        "the older one was removed"
    );
    // Someone removes the kept snapshot: the layer above it can no longer be read alone.
    let kept = taken_snapshots(&sim, &vm_id).await[0].0.clone();
    let path = format!("/vms/{vm_id}/snapshots/{kept}");
    let (status, _) = sim.call(reqwest::Method::DELETE, &path, None).await;
    assert!(status.is_success(), "{status}");
    sim.until(
        &format!("/vms/{vm_id}/snapshots"),
        "the snapshot to go",
        |l| l["snapshot"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    let log = backup_ok(&config, &[]);
    assert!(
        log.contains(&format!("the last point's snapshot {kept} is gone")),
        "{log}"
    );
    next_run_is_good(
        &sim,
        &config,
        &vm_id,
        &["full", "incremental", "full", "incremental"],
    )
    .await;
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_transfer_removes_the_runs_snapshot_and_keeps_the_older() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, config, vm_id) = snapshot_setup(dir.path()).await;
    backup_ok(&config, &[]);
    let kept = taken_snapshots(&sim, &vm_id).await;
    let slow = json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers/*/finalize",
                      "status": 0, "delay_ms": 2000});
    sim.admin("faults", slow).await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["backup", "--config", config.to_str().expect("utf-8")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ovrun starts");
    sim.until("/imagetransfers", "the run's transfer", |l| {
        let all = l["image_transfer"].as_array().cloned().unwrap_or_default();
        all.iter().any(|t| t["phase"] == "transferring")
    })
    .await;
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("exit");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stopped by a signal:\n{log}");
    let vm_dir = dir.path().join("backup/web 01");
    assert_eq!(manifests(&vm_dir).len(), 1, "no point from the stopped run");
    assert_eq!(
        taken_snapshots(&sim, &vm_id).await,
        kept,
        "its snapshot is gone, the kept stays"
    );
    next_run_is_good(&sim, &config, &vm_id, &["full", "incremental"]).await;
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_api_incrementals_stay_exact_across_a_users_snapshot_and_its_removal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    let vm_id = sim.vm("web 01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let os = sim.disk_id("web01_os").await;
    let write = |offset: u64, pattern: u8| json!({"disk": os, "offset": offset, "length": MIB, "pattern": pattern});
    backup_ok(&config, &[]);
    // Written before the user's snapshot (in the layer below), and after it (in the top): the
    // checkpoint's bitmap must hold both.
    sim.admin("guest-write", write(8 * MIB, 0x31)).await;
    let snapshot = sim
        .post(
            &format!("/vms/{vm_id}/snapshots"),
            json!({"description": "before upgrade", "persist_memorystate": false}),
            201,
        )
        .await;
    let id = snapshot["id"].as_str().expect("id").to_owned();
    sim.wait_for(
        &format!("/vms/{vm_id}/snapshots/{id}"),
        "snapshot_status",
        "ok",
        &[],
    )
    .await;
    sim.admin("guest-write", write(16 * MIB, 0x32)).await;
    let mut expected = vec![dir.path().join("at-1.raw")];
    raw_copy(&sim.disk_file(&os), &expected[0]);
    backup_ok(&config, &[]);
    // The user removes the snapshot (its layer is merged), the guest writes again.
    let (status, _) = sim
        .call(
            reqwest::Method::DELETE,
            &format!("/vms/{vm_id}/snapshots/{id}"),
            None,
        )
        .await;
    assert!(status.is_success());
    sim.until(&format!("/vms/{vm_id}/snapshots"), "the merge", |l| {
        l["snapshot"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    sim.admin("guest-write", write(24 * MIB, 0x33)).await;
    expected.push(dir.path().join("at-2.raw"));
    raw_copy(&sim.disk_file(&os), &expected[1]);
    backup_ok(&config, &[]);
    let points = manifests(&vm_dir);
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["full", "incremental", "incremental"]);
    for (point, at) in points[1..].iter().zip(&expected) {
        let entry = disk(point, "web01_os");
        let file = vm_dir.join(entry["file"].as_str().expect("file"));
        assert!(
            same_content(&file, at),
            "{} equals the disk",
            point["point"]
        );
        assert_eq!(
            entry["bytes_transferred"].as_u64(),
            Some(if at == &expected[0] { 2 * MIB } else { MIB })
        );
    }
    sim.running.shutdown().await;
}
