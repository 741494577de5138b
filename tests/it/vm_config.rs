//! A DR VM that boots like the original (issue 16), end to end: a production VM with a real
//! configuration (2 sockets x 2 cores, 8 GiB, UEFI on Q35, RHEL 9, HA, two NICs on two
//! networks, three disks on three interfaces) is backed up and restored into the DR ovsim with a
//! network map; the DR VM equals production field by field but for its name, its MACs (new) and
//! what the map changed, and its disks equal production's byte for byte. Then the same with
//! `mac_policy: keep` and CPU/memory overrides; a network DR lacks, named before anything is
//! made; a NIC DR refuses while the new VM is being made (DR left as it was, the error naming
//! the NIC); a point taken before configurations were recorded; and a backup during which
//! production would not give the configuration (a good point that says so, in status too).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, raw_copy, same_content};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

fn production() -> Value {
    json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "networks": [{"name": "front"}, {"name": "back"}],
        "vms": [{
            "name": "app01", "memory_mib": 8192, "memory_guaranteed_mib": 4096,
            "cpu": {"sockets": 2, "cores": 2, "threads": 1},
            "bios_type": "q35_ovmf", "os_type": "rhel_9x64", "vm_type": "server",
            "time_zone": "Etc/GMT", "high_availability": {"enabled": true, "priority": 50},
            "description": "the order service", "comment": "owner: team b",
            "custom_properties": {"sap_agent": "true"},
            "nics": [
                {"name": "nic1", "interface": "virtio", "vnic_profile": "front"},
                {"name": "nic2", "interface": "e1000", "vnic_profile": "back"}
            ],
            "disks": [
                {"name": "app01_os", "size_mib": 64, "interface": "virtio_scsi", "bootable": true,
                 "data": [{"offset_mib": 0, "length_mib": 4, "pattern": 17}]},
                {"name": "app01_data", "size_mib": 32, "interface": "virtio", "bootable": false,
                 "data": [{"offset_mib": 8, "length_mib": 2, "pattern": 34}]},
                {"name": "app01_swap", "size_mib": 16, "interface": "sata", "bootable": false}
            ]
        }]
    })
}

fn dr(networks: &[&str]) -> Value {
    let networks: Vec<Value> = networks.iter().map(|n| json!({"name": n})).collect();
    json!({
        "clusters": [{"name": "DR-Cluster"}],
        "storage_domains": [{"name": "dr-data"}],
        "networks": networks,
    })
}

/// A runner config for app01 restoring into `dr` with `restore` (merged into the section).
fn config(prod: &Sim, dr: &Sim, dir: &Path, restore: &Value) -> PathBuf {
    let path = runner_config(prod, dir, "app01");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("JSON");
    let password = dir.join("target.password");
    std::fs::write(&password, &dr.running.users["admin@internal"]).expect("password");
    config["target"] = json!({
        "url": dr.running.api_url(), "user": "admin@internal", "password_file": password,
        "password_credential": "target-password", "ca_file": dr.running.pki.ca_cert,
    });
    let mut section = json!({
        "vm_name": "app01", "target_cluster_name": "DR-Cluster",
        "target_storage_domain_name": "dr-data", "disk_interface": "virtio_scsi",
        "timeout_minutes": 10, "auto_start_restored_vm": false, "replace_existing_vm": true,
        "backup_old_vm": false, "restore_log_directory": dir.join("restore_logs"),
        "network_map": {"front": "dr-front"},
    });
    for (key, value) in restore.as_object().expect("overrides") {
        section[key] = value.clone();
    }
    config["restore"] = section;
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

fn restore(config: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "restore",
        "--config",
        config.to_str().expect("utf-8"),
        "--force",
    ];
    args.extend(extra);
    tokio::task::block_in_place(|| ovrun(&args))
}

/// The fields a restore must carry over, from an engine's VM.
fn settings(vm: &Value) -> Value {
    let keep = [
        "memory",
        "memory_policy",
        "cpu",
        "bios",
        "custom_emulated_machine",
        "os",
        "type",
        "time_zone",
        "high_availability",
        "description",
        "comment",
        "custom_properties",
    ];
    let mut picked = json!({});
    for key in keep {
        picked[key] = vm[key].clone();
    }
    picked["cpu"] = json!({"topology": vm["cpu"]["topology"]});
    picked
}

/// The NICs of VM `id`: (name, interface, vNIC profile name, MAC).
async fn nics(sim: &Sim, id: &str) -> Vec<(String, String, String, String)> {
    let list = sim.get(&format!("/vms/{id}/nics")).await;
    let mut found = Vec::new();
    for nic in list["nic"].as_array().cloned().unwrap_or_default() {
        let profile = sim
            .get(&format!(
                "/vnicprofiles/{}",
                nic["vnic_profile"]["id"].as_str().unwrap_or_default()
            ))
            .await;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        found.push((
            text(&nic["name"]),
            text(&nic["interface"]),
            text(&profile["name"]),
            text(&nic["mac"]["address"]),
        ));
    }
    found.sort();
    found
}

/// The disks of VM `id` in order: (alias, interface, bootable, disk id).
async fn disks(sim: &Sim, id: &str) -> Vec<(String, String, bool, String)> {
    let list = sim.get(&format!("/vms/{id}/diskattachments")).await;
    let mut found = Vec::new();
    for a in list["disk_attachment"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let disk_id = a["id"].as_str().unwrap_or_default().to_owned();
        let disk = sim.get(&format!("/disks/{disk_id}")).await;
        let alias = disk["alias"].as_str().unwrap_or_default().to_owned();
        found.push((
            alias,
            a["interface"].as_str().unwrap_or_default().to_owned(),
            a["bootable"] == "true",
            disk_id,
        ));
    }
    found
}

struct Site {
    prod: Sim,
    dr: Sim,
    prod_vm: Value,
    copies: Vec<PathBuf>,
}

/// Production and a DR with `dr_networks`, and one backup of app01 (with copies of its disks).
async fn site(dir: &Path, dr_networks: &[&str]) -> (Site, PathBuf) {
    let prod = Sim::start(&dir.join("prod"), production()).await;
    let dr = Sim::start(&dir.join("dr"), dr(dr_networks)).await;
    let config = config(&prod, &dr, dir, &json!({}));
    backup_ok(&config, &[]);
    let prod_vm = prod.vm("app01").await;
    let mut copies = Vec::new();
    for (alias, _, _, id) in disks(&prod, prod_vm["id"].as_str().expect("id")).await {
        let copy = dir.join(format!("{alias}.raw"));
        raw_copy(&prod.disk_file(&id), &copy);
        copies.push(copy);
    }
    (
        Site {
            prod,
            dr,
            prod_vm,
            copies,
        },
        config,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dr_vm_equals_production_but_its_name_macs_and_mapped_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, config) = site(dir.path(), &["dr-front", "back"]).await;
    let point = &manifests(&dir.path().join("backup/app01"))[0];
    assert_eq!(
        point["config"]["cpu"],
        json!({"sockets": 2, "cores": 2, "threads": 1})
    );
    assert!(
        point["config"]["ovf"]
            .as_str()
            .is_some_and(|o| o.contains("ovf:Envelope"))
    );
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");

    let dr_vm = site.dr.vm("app01").await;
    assert_eq!(settings(&dr_vm), settings(&site.prod_vm), "field by field");
    let prod_id = site.prod_vm["id"].as_str().expect("id");
    let dr_id = dr_vm["id"].as_str().expect("id");
    let (prod_nics, dr_nics) = (nics(&site.prod, prod_id).await, nics(&site.dr, dr_id).await);
    let shape = |n: &[(String, String, String, String)]| -> Vec<(String, String)> {
        n.iter()
            .map(|(name, interface, _, _)| (name.clone(), interface.clone()))
            .collect()
    };
    assert_eq!(shape(&dr_nics), shape(&prod_nics));
    let profiles: Vec<&str> = dr_nics.iter().map(|n| n.2.as_str()).collect();
    assert_eq!(
        profiles,
        ["dr-front", "back"],
        "front mapped, back by its own name"
    );
    for (p, d) in prod_nics.iter().zip(&dr_nics) {
        assert_ne!(p.3, d.3, "mac_policy new: DR never shares production's MAC");
    }
    let (prod_disks, dr_disks) = (
        disks(&site.prod, prod_id).await,
        disks(&site.dr, dr_id).await,
    );
    let without_ids = |d: &[(String, String, bool, String)]| -> Vec<(String, String, bool)> {
        d.iter()
            .map(|(a, i, b, _)| (a.clone(), i.clone(), *b))
            .collect()
    };
    assert_eq!(
        without_ids(&dr_disks),
        without_ids(&prod_disks),
        "order, interfaces, boot flags"
    );
    for ((alias, _, _, id), copy) in dr_disks.iter().zip(&site.copies) {
        assert!(
            same_content(&site.dr.disk_file(id), copy),
            "{alias} byte for byte"
        );
    }
    let shown = tokio::task::block_in_place(|| {
        ovrun(&["config", "--config", config.to_str().expect("utf-8")])
    });
    assert_eq!(shown.0, 0);
    site.prod.running.shutdown().await;
    site.dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_macs_and_a_smaller_dr_vm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, _) = site(dir.path(), &["dr-front", "back"]).await;
    let overrides = json!({"mac_policy": "keep", "cpu": {"sockets": 1}, "memory_mib": 4096});
    let config = config(&site.prod, &site.dr, dir.path(), &overrides);
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");
    let dr_vm = site.dr.vm("app01").await;
    assert_eq!(dr_vm["cpu"]["topology"]["sockets"], "1");
    assert_eq!(
        dr_vm["cpu"]["topology"]["cores"], "2",
        "what the override leaves is recorded"
    );
    assert_eq!(dr_vm["memory"], (4096 * MIB).to_string());
    let prod_id = site.prod_vm["id"].as_str().expect("id");
    let macs = |n: Vec<(String, String, String, String)>| -> Vec<String> {
        n.into_iter().map(|n| n.3).collect()
    };
    assert_eq!(
        macs(nics(&site.dr, dr_vm["id"].as_str().expect("id")).await),
        macs(nics(&site.prod, prod_id).await),
        "mac_policy keep"
    );
    site.prod.running.shutdown().await;
    site.dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_dr_lacks_is_named_before_anything_is_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, config) = site(dir.path(), &["dr-front"]).await;
    let before = site.dr.get("/disks").await;
    let (code, log) = restore(&config, &["--dry-run"]);
    assert_eq!(code, 2, "a configuration error:\n{log}");
    // The log is JSON: its quotes are escaped.
    assert!(log.contains(r#"NIC nic2 is on network \"back\""#), "{log}");
    assert!(log.contains("restore_settings.network_map"), "{log}");
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 2, "{log}");
    assert_eq!(
        site.dr.get("/disks").await,
        before,
        "no disk was made in DR"
    );
    assert!(site.dr.vm("app01").await.is_null(), "no VM was made in DR");
    site.prod.running.shutdown().await;
    site.dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_without_configuration_restores_as_before_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, config) = site(dir.path(), &["dr-front", "back"]).await;
    let vm_dir = dir.path().join("backup/app01");
    let manifest = std::fs::read_dir(&vm_dir)
        .expect("folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .expect("a manifest");
    let mut point: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("read")).expect("JSON");
    point.as_object_mut().expect("object").remove("config");
    std::fs::write(&manifest, point.to_string()).expect("write");
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("taken before ovrun recorded VM configurations"),
        "{log}"
    );
    let dr_vm = site.dr.vm("app01").await;
    assert_eq!(
        dr_vm["memory"],
        (8192 * MIB).to_string(),
        "production's memory"
    );
    assert_eq!(
        nics(&site.dr, dr_vm["id"].as_str().expect("id"))
            .await
            .len(),
        0
    );
    site.prod.running.shutdown().await;
    site.dr.running.shutdown().await;
}

/// DR's VMs (name, id, status) and disk ids, sorted: what a failed restore must leave as it was.
async fn dr_state(sim: &Sim) -> (Vec<(String, String, String)>, Vec<String>) {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let listed = |list: &Value, kind: &str| list[kind].as_array().cloned().unwrap_or_default();
    let mut vms: Vec<(String, String, String)> = listed(&sim.get("/vms").await, "vm")
        .iter()
        .map(|vm| (text(vm, "name"), text(vm, "id"), text(vm, "status")))
        .collect();
    vms.sort();
    let mut disks: Vec<String> = listed(&sim.get("/disks").await, "disk")
        .iter()
        .map(|d| text(d, "id"))
        .collect();
    disks.sort();
    (vms, disks)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nic_dr_refuses_leaves_dr_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (site, config) = site(dir.path(), &["dr-front", "back"]).await;
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");
    let before = dr_state(&site.dr).await;
    let old_id = site.dr.vm("app01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let old_nics = nics(&site.dr, &old_id).await;

    // The new VM's second NIC refused, after its disks were uploaded and its first NIC added.
    let fault = json!({"method": "POST", "path": "/ovirt-engine/api/vms/*/nics", "after": 1,
                       "status": 500, "fault": {"reason": "Operation Failed",
                                                "detail": "[MAC pool exhausted]"}});
    site.dr.admin("faults", fault).await;
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("MAC pool exhausted"),
        "the engine's words: {log}"
    );
    assert!(log.contains("nic2"), "names the NIC: {log}");
    assert_eq!(dr_state(&site.dr).await, before, "{log}");
    assert_eq!(
        nics(&site.dr, &old_id).await,
        old_nics,
        "the old VM untouched"
    );

    // Nothing was lost: the next restore succeeds.
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");
    site.prod.running.shutdown().await;
    site.dr.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_production_does_not_give_leaves_a_good_point_that_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), production()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr(&["dr-front", "back"])).await;
    let config = config(&prod, &dr, dir.path(), &json!({}));
    // Every read of the VM's NICs fails, retries included.
    let fault = json!({"method": "GET", "path": "/ovirt-engine/api/vms/*/nics", "count": 50,
                       "status": 500, "fault": {"reason": "Operation Failed",
                                                "detail": "[Internal Engine Error]"}});
    prod.admin("faults", fault).await;
    let log = backup_ok(&config, &[]);
    assert!(
        log.contains("the VM's configuration is not recorded in this point"),
        "{log}"
    );
    let points = manifests(&dir.path().join("backup/app01"));
    assert_eq!(points.len(), 1);
    assert!(
        points[0].get("config").is_none_or(Value::is_null),
        "{}",
        points[0]
    );
    crate::support::ovrun::verify_ok(&config);
    let (code, shown) = tokio::task::block_in_place(|| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovrun"))
            .args(["status", "--config", config.to_str().expect("utf-8")])
            .output()
            .expect("ovrun runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    });
    assert_eq!(code, Some(0));
    assert!(shown.contains("not recorded"), "status says so: {shown}");

    // The point restores (production's memory, no NICs), and the next backup records it all.
    let (code, log) = restore(&config, &[]);
    assert_eq!(code, 0, "{log}");
    let (cleared, _) = prod
        .call(reqwest::Method::DELETE, "/ovsim/admin/faults", None)
        .await;
    assert!(cleared.is_success());
    backup_ok(&config, &[]);
    let points = manifests(&dir.path().join("backup/app01"));
    assert_eq!(
        points[1]["config"]["nics"].as_array().map(Vec::len),
        Some(2)
    );
    prod.running.shutdown().await;
    dr.running.shutdown().await;
}
