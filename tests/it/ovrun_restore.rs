//! `ovrun restore` end to end: a production and a DR `ovsim`, the real `ovrun` binary. Points
//! taken by `ovrun backup` are restored into DR; the DR disks' files are compared with the
//! production disks as they were when each point was taken (`qemu-img compare` of the files in
//! the two state folders), and the DR VM's name, cluster, disk interfaces and boot order are
//! read back from DR's API. Replacing, keeping the old VM, and failures that must leave DR as
//! it was are each exercised.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, raw_copy, same_content, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

/// The DR engine's inventory: one cluster and storage domain of its own, and a VM that is not
/// part of any restore.
fn dr_seed() -> Value {
    json!({
        "clusters": [{"name": "DR-Cluster"}],
        "storage_domains": [{"name": "dr-data"}],
        "vms": [{"name": "bystander", "status": "up"}]
    })
}

/// `runner_config` with the DR engine as target and a restore section; `restore` overrides.
fn restore_config(prod: &Sim, dr: &Sim, dir: &Path, restore: &Value) -> PathBuf {
    let path = runner_config(prod, dir, "web 01");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("JSON");
    let password = dir.join("target.password");
    std::fs::write(&password, &dr.running.users["admin@internal"]).expect("password");
    config["target"] = json!({
        "url": dr.running.api_url(),
        "user": "admin@internal",
        "password_file": password,
        "password_credential": "target-password",
        "ca_file": dr.running.pki.ca_cert,
    });
    let mut section = json!({
        "vm_name": "web 01_dr",
        "target_cluster_name": "DR-Cluster",
        "target_storage_domain_name": "dr-data",
        "disk_interface": "virtio_scsi",
        "timeout_minutes": 10,
        "auto_start_restored_vm": true,
        "replace_existing_vm": true,
        "backup_old_vm": false,
        "restore_log_directory": dir.join("restore_logs"),
    });
    for (key, value) in restore.as_object().expect("overrides") {
        section[key] = value.clone();
    }
    config["restore"] = section;
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON")).expect("config");
    path
}

/// `ovrun restore --config CONFIG EXTRA...`: exit code and log.
fn restore(config: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["restore", "--config", config.to_str().expect("utf-8")];
    args.extend(extra);
    tokio::task::block_in_place(|| ovrun(&args))
}

fn restore_ok(config: &Path, extra: &[&str]) -> String {
    let (code, log) = restore(config, extra);
    assert_eq!(code, 0, "ovrun restore failed:\n{log}");
    log
}

/// The VMs of an engine: (name, id, status), sorted by name.
async fn vms(sim: &Sim) -> Vec<(String, String, String)> {
    let list = sim.get("/vms").await;
    let mut all: Vec<(String, String, String)> = list["vm"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|vm| {
            let text = |key: &str| vm[key].as_str().unwrap_or_default().to_owned();
            (text("name"), text("id"), text("status"))
        })
        .collect();
    all.sort();
    all
}

/// The disk ids of an engine, sorted.
async fn disk_ids(sim: &Sim) -> Vec<String> {
    let list = sim.get("/disks").await;
    let mut ids: Vec<String> = list["disk"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The restored VM's attachments in order: (alias, interface, bootable, disk id).
async fn attachments(sim: &Sim, vm_id: &str) -> Vec<(String, String, bool, String)> {
    let list = sim.get(&format!("/vms/{vm_id}/diskattachments")).await;
    let mut found = Vec::new();
    for a in list["disk_attachment"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        let disk = sim.get(&format!("/disks/{id}")).await;
        found.push((
            disk["alias"].as_str().unwrap_or_default().to_owned(),
            a["interface"].as_str().unwrap_or_default().to_owned(),
            a["bootable"] == "true",
            id,
        ));
    }
    found
}

/// The restore log's lines.
fn log_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("restore_logs/web_01.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Asserts the DR VM `name` holds the production disks as they were in `expected`
/// (web01_os, web01_data), in production's order with production's interfaces (the points
/// recorded them), in DR-Cluster.
async fn assert_restored(dr: &Sim, name: &str, expected: &(PathBuf, PathBuf), status: &str) {
    let interfaces = ["virtio_scsi", "virtio"];
    assert_restored_on(dr, (name, status), expected, interfaces).await;
}

/// [`assert_restored`] with the disks on `interfaces`.
async fn assert_restored_on(
    dr: &Sim,
    (name, status): (&str, &str),
    expected: &(PathBuf, PathBuf),
    interfaces: [&str; 2],
) {
    let vm = dr.vm(name).await;
    assert_eq!(vm["name"], name);
    assert_eq!(vm["status"], status, "{vm}");
    assert_eq!(
        vm["memory"],
        (2048 * MIB).to_string(),
        "production's memory"
    );
    let cluster = dr
        .get(&format!(
            "/clusters/{}",
            vm["cluster"]["id"].as_str().expect("cluster")
        ))
        .await;
    assert_eq!(cluster["name"], "DR-Cluster");
    let disks = attachments(dr, vm["id"].as_str().expect("id")).await;
    let order: Vec<(&str, &str, bool)> = disks
        .iter()
        .map(|(alias, interface, boot, _)| (alias.as_str(), interface.as_str(), *boot))
        .collect();
    assert_eq!(
        order,
        [
            ("web01_os", interfaces[0], true),
            ("web01_data", interfaces[1], false)
        ]
    );
    assert!(
        same_content(&dr.disk_file(&disks[0].3), &expected.0),
        "the DR os disk equals production's at the point"
    );
    assert!(
        same_content(&dr.disk_file(&disks[1].3), &expected.1),
        "the DR data disk equals production's at the point"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn points_restore_into_dr_equal_to_production_at_their_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let config = restore_config(&prod, &dr, dir.path(), &json!({}));
    let os = prod.disk_id("web01_os").await;
    let data = prod.disk_id("web01_data").await;

    // A full and two incrementals, each with the disks' content at its time.
    let mut expected = Vec::new();
    let writes = [
        (8 * MIB, MIB, Some(0x22)),
        (40 * MIB, 3 * MIB + 4096, Some(0x33)),
    ];
    for round in 0..3 {
        let os_copy = dir.path().join(format!("os-{round}.raw"));
        let data_copy = dir.path().join(format!("data-{round}.raw"));
        raw_copy(&prod.disk_file(&os), &os_copy);
        raw_copy(&prod.disk_file(&data), &data_copy);
        expected.push((os_copy, data_copy));
        backup_ok(&config, &[]);
        if let Some((offset, length, pattern)) = writes.get(round) {
            let write = json!({"disk": os, "offset": offset, "length": length, "pattern": pattern});
            prod.admin("guest-write", write).await;
            let write = json!({"disk": data, "offset": round as u64 * MIB, "length": MIB,
                               "pattern": 0x50 + round});
            prod.admin("guest-write", write).await;
        }
    }
    let points = manifests(&dir.path().join("backup/web 01"));
    let ids: Vec<String> = points
        .iter()
        .map(|p| p["point"].as_str().expect("point").to_owned())
        .collect();
    assert_eq!(points[2]["kind"], "incremental");

    // A dry run changes nothing and says what it would do.
    let before = (vms(&dr).await, disk_ids(&dr).await);
    let (code, _) = restore(&config, &["--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!((vms(&dr).await, disk_ids(&dr).await), before);

    // The newest point: a new VM, started.
    restore_ok(&config, &[]);
    assert_restored(&dr, "web 01_dr", &expected[2], "up").await;
    let first_vm = dr.vm("web 01_dr").await["id"].clone();
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["result"], "ok");
    assert_eq!(lines[0]["point"], ids[2].as_str());
    assert_eq!(
        lines[0]["disks"][0]["checksum"], points[2]["disks"][0]["content"]["checksum"],
        "the DR engine's checksum is the point's"
    );
    // Only data crossed, in whole 64 KiB clusters, nothing of the zero ranges: os 4 MiB seeded,
    // 1 MiB and 3 MiB + 4 KiB (one cluster) written; data 2 MiB written.
    assert_eq!(lines[0]["bytes"].as_u64(), Some(10 * MIB + 64 * 1024));

    // Again: the newest point is already there, nothing changes.
    let log = restore_ok(&config, &[]);
    assert!(log.contains("already restored"), "{log}");
    assert_eq!(dr.vm("web 01_dr").await["id"], first_vm);

    // An older point by id replaces the VM (removed, backup_old_vm off).
    restore_ok(&config, &["--point", &ids[0]]);
    assert_restored(&dr, "web 01_dr", &expected[0], "up").await;
    let names: Vec<String> = vms(&dr).await.into_iter().map(|v| v.0).collect();
    assert_eq!(names, ["bystander", "web 01_dr"], "the old VM is gone");
    assert_eq!(disk_ids(&dr).await.len(), 2, "its disks went with it");

    // With backup_old_vm the replaced VM is kept under a new name, down.
    let config = restore_config(
        &prod,
        &dr,
        dir.path(),
        &json!({"backup_old_vm": true,
                                                               "auto_start_restored_vm": false}),
    );
    let replaced = dr.vm("web 01_dr").await["id"].clone();
    restore_ok(&config, &["--point", &ids[1]]);
    assert_restored(&dr, "web 01_dr", &expected[1], "down").await;
    let kept: Vec<(String, String, String)> = vms(&dr)
        .await
        .into_iter()
        .filter(|v| v.0.starts_with("web 01_dr-old-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].1, replaced.as_str().expect("id"));
    assert_eq!(kept[0].2, "down");

    // `ovrun merge`: the chain of the newest point as one standalone image.
    let merged = dir.path().join("merged.qcow2");
    let (code, log) = tokio::task::block_in_place(|| {
        ovrun(&[
            "merge",
            "--config",
            config.to_str().expect("utf-8"),
            "--point",
            &ids[2],
            "--disk",
            "web01_os",
            "--out",
            merged.to_str().expect("utf-8"),
        ])
    });
    assert_eq!(code, 0, "{log}");
    assert!(same_content(&merged, &expected[2].0));
    let info = crate::support::engine::sh(
        "qemu-img",
        &["info", "--output=json", merged.to_str().unwrap()],
    );
    assert!(!info.contains("backing-filename"), "standalone: {info}");

    prod.running.shutdown().await;
    dr.running.shutdown().await;
}

/// DR's VMs and disks, to compare before and after a failed restore.
type DrState = (Vec<(String, String, String)>, Vec<String>);

/// Makes DR answer the next `method path` call (after `after` pass) with `status` and `detail`.
async fn refuse_next(dr: &Sim, method: &str, path: &str, after: u32, status: u16, detail: &str) {
    let fault = json!({"method": method, "path": path, "after": after, "status": status,
                       "fault": {"reason": "Operation Failed", "detail": detail}});
    dr.admin("faults", fault).await;
}

/// `ovrun restore --force` fails (exit 1), its log says `says`, and DR is as it was.
async fn fails_leaving_dr_as_it_was(dr: &Sim, config: &Path, before: &DrState, says: &str) {
    let (code, log) = restore(config, &["--force"]);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains(says), "{log}");
    assert_eq!(&(vms(dr).await, disk_ids(dr).await), before, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_leaves_dr_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let config = restore_config(&prod, &dr, dir.path(), &json!({}));
    backup_ok(&config, &[]);
    restore_ok(&config, &[]);
    let before = (vms(&dr).await, disk_ids(&dr).await);
    assert_eq!(before.0.len(), 2);

    // The second disk's upload refused after the first disk was uploaded: both new disks go.
    refuse_next(
        &dr,
        "POST",
        "/ovirt-engine/api/imagetransfers",
        1,
        500,
        "no host",
    )
    .await;
    fails_leaving_dr_as_it_was(&dr, &config, &before, "disk web01_os restored").await;

    // VM creation refused after the disks were uploaded and the old VM moved aside: the disks
    // are removed, the old VM has its name back and runs again.
    refuse_next(&dr, "POST", "/ovirt-engine/api/vms", 0, 500, "injected").await;
    fails_leaving_dr_as_it_was(&dr, &config, &before, "injected").await;

    // The running VM of that name stopped, then its rename refused: it is started again.
    refuse_next(
        &dr,
        "PUT",
        "/ovirt-engine/api/vms/*",
        0,
        409,
        "VM is locked",
    )
    .await;
    fails_leaving_dr_as_it_was(&dr, &config, &before, "VM is locked").await;

    // A disk whose upload does not hash to the point's checksum (here the manifest's is
    // changed): the transfer is cancelled before finalizing and the disk removed.
    let vm_dir = dir.path().join("backup/web 01");
    let manifest_file = std::fs::read_dir(&vm_dir)
        .expect("VM folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .expect("a manifest");
    let original = std::fs::read_to_string(&manifest_file).expect("manifest");
    let mut changed: Value = serde_json::from_str(&original).expect("JSON");
    changed["disks"][1]["content"]["checksum"] = json!("0".repeat(64));
    std::fs::write(&manifest_file, changed.to_string()).expect("manifest");
    fails_leaving_dr_as_it_was(&dr, &config, &before, "the upload is discarded").await;
    std::fs::write(&manifest_file, original).expect("manifest");

    // The failures are in the log, after the first success; the next restore works.
    let results: Vec<Value> = log_lines(dir.path())
        .iter()
        .map(|l| l["result"].clone())
        .collect();
    assert_eq!(results, ["ok", "failed", "failed", "failed", "failed"]);
    restore_ok(&config, &["--force"]);
    assert_eq!(vms(&dr).await.len(), 2);

    prod.running.shutdown().await;
    dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_or_a_lost_answer_on_a_transfer_finalize_or_cancel_is_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let config = restore_config(&prod, &dr, dir.path(), &json!({}));
    backup_ok(&config, &[]);
    let at_backup = (dir.path().join("os.raw"), dir.path().join("data.raw"));
    raw_copy(
        &prod.disk_file(&prod.disk_id("web01_os").await),
        &at_backup.0,
    );
    raw_copy(
        &prod.disk_file(&prod.disk_id("web01_data").await),
        &at_backup.1,
    );

    // One 500 on an upload's finalize, then one whose answer is lost after the engine
    // finalized: both restores succeed.
    for lose_answer in [false, true] {
        let fault = json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers/*/finalize",
                           "status": 500, "lose_answer": lose_answer,
                           "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}});
        dr.admin("faults", fault).await;
        let log = restore_ok(&config, &["--force"]);
        assert!(log.contains("trying again"), "retried:\n{log}");
        assert_restored(&dr, "web 01_dr", &at_backup, "up").await;
    }
    let before = (vms(&dr).await, disk_ids(&dr).await);
    assert_eq!(before.0.len(), 2, "the bystander and the restored VM");

    // An upload that does not hash to the point's checksum is cancelled; one 500 on the
    // cancel is retried, so its disk goes at once and DR is as it was.
    let vm_dir = dir.path().join("backup/web 01");
    let manifest_file = std::fs::read_dir(&vm_dir)
        .expect("VM folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .expect("a manifest");
    let original = std::fs::read_to_string(&manifest_file).expect("manifest");
    let mut changed: Value = serde_json::from_str(&original).expect("JSON");
    changed["disks"][0]["content"]["checksum"] = json!("0".repeat(64));
    std::fs::write(&manifest_file, changed.to_string()).expect("manifest");
    refuse_next(
        &dr,
        "POST",
        "/ovirt-engine/api/imagetransfers/*/cancel",
        0,
        500,
        "[Internal Engine Error]",
    )
    .await;
    fails_leaving_dr_as_it_was(&dr, &config, &before, "the upload is discarded").await;
    std::fs::write(&manifest_file, original).expect("manifest");

    prod.running.shutdown().await;
    dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_vm_is_not_replaced_unless_configured_and_bad_names_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let config = restore_config(
        &prod,
        &dr,
        dir.path(),
        &json!({"vm_name": "bystander", "replace_existing_vm": false}),
    );
    backup_ok(&config, &[]);
    let before = (vms(&dr).await, disk_ids(&dr).await);
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 1);
    assert!(log.contains("replace_existing_vm is off"), "{log}");
    assert_eq!((vms(&dr).await, disk_ids(&dr).await), before);

    let config = restore_config(
        &prod,
        &dr,
        dir.path(),
        &json!({"target_cluster_name": "Nope"}),
    );
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 2, "a configuration error");
    assert!(log.contains("no cluster named \\\"Nope\\\""), "{log}");

    let (code, log) = restore(&config, &["--point", "20000101T000000Z"]);
    assert_eq!(code, 2);
    assert!(log.contains("no point 20000101T000000Z"), "{log}");

    prod.running.shutdown().await;
    dr.running.shutdown().await;
}

/// A production VM `web 01` with one 256 MiB disk full of data: its upload lasts long enough
/// to be killed.
fn big_seed() -> Value {
    json!({
        "storage_domains": [{"name": "data"}],
        "vms": [{"name": "web 01", "memory_mib": 2048, "disks": [
            {"name": "big", "size_mib": 256, "data": [{"offset_mib": 0, "length_mib": 256, "pattern": 7}]}
        ]}]
    })
}

/// The size of the largest disk file in an engine's state folder.
fn largest_disk_file(state: &Path) -> u64 {
    std::fs::read_dir(state.join("disks"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_restores_orphans_are_removed_by_the_next_restore() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), big_seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let config = restore_config(&prod, &dr, dir.path(), &json!({}));
    backup_ok(&config, &[]);
    assert_eq!(disk_ids(&dr).await, Vec::<String>::new());

    // SIGKILL while the disk's data moves: the new DR disk is left, with its transfer open.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["restore", "--config", config.to_str().expect("utf-8")])
        .args(["--workers", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ovrun");
    while largest_disk_file(&dir.path().join("dr")) <= MIB {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the restore was killed while uploading, not finished before"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let orphans = disk_ids(&dr).await;
    assert_eq!(orphans.len(), 1, "the killed restore's disk is in DR");
    assert!(
        dir.path()
            .join("backup/web 01/.restore-journal.json")
            .exists(),
        "and in its journal"
    );

    let log = restore_ok(&config, &[]);
    assert!(
        log.contains("undoing what a restore that did not finish left"),
        "{log}"
    );
    let restored = dr.vm("web 01_dr").await;
    let attached: Vec<String> = attachments(&dr, restored["id"].as_str().expect("id"))
        .await
        .into_iter()
        .map(|(_, _, _, id)| id)
        .collect();
    assert_eq!(attached.len(), 1);
    assert_eq!(
        disk_ids(&dr).await,
        attached,
        "DR holds only the restored VM's disk: the orphan {orphans:?} was removed"
    );
    assert!(
        !dir.path()
            .join("backup/web 01/.restore-journal.json")
            .exists()
    );
    let now = dir.path().join("now.raw");
    raw_copy(&dr.disk_file(&attached[0]), &now);
    let prod_disk = dir.path().join("prod.raw");
    raw_copy(&prod.disk_file(&prod.disk_id("big").await), &prod_disk);
    assert!(same_content(&now, &prod_disk));

    prod.running.shutdown().await;
    dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_method_point_restores_into_dr_equal_to_production() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    // The policy sets disk_interface: it overrides the interfaces the point recorded.
    let overrides = json!({"disk_interface": "sata", "disk_interface_overrides": true});
    let config = restore_config(&prod, &dr, dir.path(), &overrides);
    let mut with_method: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("JSON");
    with_method["backup"]["backup_method"] = json!("snapshot");
    std::fs::write(&config, with_method.to_string()).expect("config");
    let (os, data) = (
        prod.disk_id("web01_os").await,
        prod.disk_id("web01_data").await,
    );
    backup_ok(&config, &[]);
    for (disk, offset, pattern) in [(&os, 8 * MIB, 0x22), (&data, 2 * MIB, 0x23)] {
        let write = json!({"disk": disk, "offset": offset, "length": 3 * MIB, "pattern": pattern});
        prod.admin("guest-write", write).await;
    }
    let expected = (dir.path().join("os.raw"), dir.path().join("data.raw"));
    raw_copy(&prod.disk_file(&os), &expected.0);
    raw_copy(&prod.disk_file(&data), &expected.1);
    backup_ok(&config, &[]);
    let points = manifests(&dir.path().join("backup/web 01"));
    assert_eq!(points[1]["kind"], "incremental");
    assert_eq!(points[1]["method"]["name"], "snapshot");
    restore_ok(&config, &[]);
    assert_restored_on(&dr, ("web 01_dr", "up"), &expected, ["sata", "sata"]).await;
    prod.running.shutdown().await;
    dr.running.shutdown().await;
}
