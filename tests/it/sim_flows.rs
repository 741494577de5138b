//! Contract tests: the flows of section 13 of the API page driven through `ovsim` with a plain
//! HTTPS client: a full backup (while the guest writes), guest writes, an incremental backup
//! whose dirty extents are exactly the written ranges, an upload into a new disk (with an XML
//! request, as the SDK sends), and a VM made from it; each image compared by `qemu-img compare`.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, ranges, raw_copy, same_content, seed};

/// Starts a backup of `disks` and waits for `ready`; returns its href and the body at `ready`.
async fn backup_ready(
    sim: &Sim,
    vm: &Value,
    disks: &[&str],
    from: Option<&str>,
) -> (String, Value) {
    let vm_href = vm["href"].as_str().expect("href");
    let mut request = json!({
        "description": "contract test",
        "disks": {"disk": disks.iter().map(|d| json!({"id": d})).collect::<Vec<_>>()},
    });
    if let Some(from) = from {
        request["from_checkpoint_id"] = json!(from);
    }
    let started = sim.post(&format!("{vm_href}/backups"), request, 201).await;
    assert_eq!(started["phase"], "initializing");
    assert!(
        started.get("to_checkpoint_id").is_none(),
        "the checkpoint is not known yet"
    );
    let href = started["href"].as_str().expect("href").to_owned();
    let (polls, ready) = sim.wait_for(&href, "phase", "ready", &["failed"]).await;
    assert!(polls >= 3, "initializing and starting take a poll each");
    (href, ready)
}

/// Finalizes a backup and waits for `succeeded`.
async fn finish_backup(sim: &Sim, href: &str) {
    sim.post(&format!("{href}/finalize"), json!({}), 200).await;
    sim.wait_for(href, "phase", "succeeded", &["failed"]).await;
}

/// Downloads a backup disk's data extents into a raw file of the disk's size.
async fn download_full(sim: &Sim, url: &str, size: u64, to: &Path) {
    let file = std::fs::File::create(to).expect("file");
    file.set_len(size).expect("size");
    for (start, length) in ranges(&sim.extents(url, "zero").await, "zero", false) {
        let data = sim.read(url, start, length).await.expect("read");
        write_at(to, start, &data);
    }
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.write_all_at(data, offset).expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_and_incremental_backups_then_a_restore_into_a_new_vm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();
    let os = sim.disk_id("web01_os").await;
    let size = 64 * MIB;
    let at_full = dir.path().join("at-full.raw");
    raw_copy(&sim.disk_file(&os), &at_full);

    // Full backup: the guest writes after it began; the backup still sees its start.
    let (backup, ready) = backup_ready(&sim, &vm, &[&os], None).await;
    let checkpoint = ready["to_checkpoint_id"]
        .as_str()
        .expect("the checkpoint at ready")
        .to_owned();
    let disks = sim.get(&format!("{backup}/disks")).await;
    assert_eq!(disks["disk"][0]["backup_mode"], "full");
    let during = json!({"disk": os, "offset": 30 * MIB, "length": MIB, "pattern": 0x44});
    sim.admin("guest-write", during).await;
    let (transfer, url) = sim
        .transfer(
            json!({"disk": {"id": os}, "backup": {"id": backup.rsplit('/').next()},
                          "direction": "download", "format": "raw"}),
        )
        .await;
    let full = dir.path().join("full.raw");
    download_full(&sim, &url, size, &full).await;
    assert!(
        same_content(&full, &at_full),
        "the full backup is the disk at its start"
    );
    sim.finish_transfer(&transfer).await;
    finish_backup(&sim, &backup).await;
    let checkpoints = sim.get(&format!("{vm_href}/checkpoints")).await;
    assert_eq!(checkpoints["checkpoint"][0]["id"], checkpoint.as_str());
    assert_eq!(
        sim.get(&format!("/disks/{os}")).await["status"],
        "ok",
        "finalize unlocks"
    );

    // Guest writes, then an incremental backup: dirty = exactly the written ranges (and the
    // write made during the full backup).
    for (offset, length, pattern) in [(8 * MIB, MIB, 0x22), (40 * MIB, 64 * 1024, 0x33)] {
        let write = json!({"disk": os, "offset": offset, "length": length, "pattern": pattern});
        sim.admin("guest-write", write).await;
    }
    let at_incremental = dir.path().join("at-incremental.raw");
    raw_copy(&sim.disk_file(&os), &at_incremental);
    let (backup, ready) = backup_ready(&sim, &vm, &[&os], Some(&checkpoint)).await;
    assert_eq!(ready["from_checkpoint_id"], checkpoint.as_str());
    let disks = sim.get(&format!("{backup}/disks")).await;
    assert_eq!(disks["disk"][0]["backup_mode"], "incremental");
    let (transfer, url) = sim
        .transfer(
            json!({"disk": {"id": os}, "backup": {"id": backup.rsplit('/').next()},
                          "direction": "download", "format": "raw"}),
        )
        .await;
    let dirty = ranges(&sim.extents(&url, "dirty").await, "dirty", true);
    assert_eq!(
        dirty,
        vec![(8 * MIB, MIB), (30 * MIB, MIB), (40 * MIB, 64 * 1024)],
        "dirty extents are exactly what the guest wrote"
    );
    let restored = dir.path().join("restored.raw");
    std::fs::copy(&full, &restored).expect("copy");
    for (start, length) in dirty {
        let data = sim.read(&url, start, length).await.expect("read");
        write_at(&restored, start, &data);
    }
    assert!(
        same_content(&restored, &at_incremental),
        "full + incremental = the disk at the incremental's start"
    );
    sim.finish_transfer(&transfer).await;
    finish_backup(&sim, &backup).await;
    let checkpoints = sim.get(&format!("{vm_href}/checkpoints")).await;
    let chain: Vec<&Value> = checkpoints["checkpoint"]
        .as_array()
        .expect("list")
        .iter()
        .collect();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1]["parent_id"], checkpoint.as_str());

    // Restore into a second instance (DR) beside the first, with its own state: a new disk
    // (XML request, as the SDK sends it), an upload of the data extents.
    let dr_seed = json!({"clusters": [{"name": "DR"}], "storage_domains": [{"name": "data"}]});
    let dr = Sim::start(&dir.path().join("dr"), dr_seed).await;
    assert_ne!(dr.running.addr, sim.running.addr);
    let xml = format!(
        "<disk><name>web01_os_restored</name><format>cow</format><sparse>true</sparse>\
         <provisioned_size>{size}</provisioned_size><description>restored</description>\
         <storage_domains><storage_domain><name>data</name></storage_domain></storage_domains></disk>"
    );
    let created = dr
        .http
        .post(dr.url("/disks?correlation_id=restore-1"))
        .header("Authorization", &dr.bearer)
        .header("Content-Type", "application/xml")
        .header("Accept", "application/json")
        .body(xml)
        .send()
        .await
        .expect("POST /disks");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("JSON");
    assert_eq!(created["status"], "locked");
    let new_disk = created["id"].as_str().expect("id").to_owned();
    dr.wait_for(&format!("/disks/{new_disk}"), "status", "ok", &["illegal"])
        .await;
    let jobs = dr.get("/jobs?search=correlation_id%3Drestore-1").await;
    assert_eq!(jobs["job"][0]["status"], "started", "a job lasts a poll");
    let jobs = dr.get("/jobs?search=correlation_id%3Drestore-1").await;
    assert_eq!(jobs["job"][0]["status"], "finished");
    let (transfer, url) = dr
        .transfer(
            json!({"disk": {"id": new_disk}, "direction": "upload", "format": "raw",
                          "inactivity_timeout": "120", "timeout_policy": "cancel"}),
        )
        .await;
    let source = std::fs::read(&restored).expect("restored");
    let data_extents = ranges(&dr.extents(&url, "zero").await, "zero", true);
    assert_eq!(data_extents, vec![(0, size)], "a new disk reads as zero");
    for chunk in 0..(size / MIB) {
        let piece = &source[(chunk * MIB) as usize..((chunk + 1) * MIB) as usize];
        if piece.iter().any(|b| *b != 0) {
            dr.write(&url, chunk * MIB, piece.to_vec()).await;
        }
    }
    dr.flush(&url).await;
    dr.finish_transfer(&transfer).await;
    assert!(
        same_content(&dr.disk_file(&new_disk), &at_incremental),
        "the uploaded disk equals the backup"
    );

    // The VM: created down, the disk attached as boot disk, renamed, started through its
    // statuses, refused removal while up, stopped and removed.
    let new_vm = dr
        .post(
            "/vms",
            json!({"name": "web 01-restored", "cluster": {"name": "DR"},
                   "template": {"name": "Blank"}, "memory": "2147483648"}),
            201,
        )
        .await;
    assert_eq!(new_vm["status"], "down");
    let new_href = new_vm["href"].as_str().expect("href").to_owned();
    let attached = dr
        .post(
            &format!("{new_href}/diskattachments"),
            json!({"disk": {"id": new_disk}, "interface": "virtio_scsi", "bootable": "true",
                   "active": "true"}),
            201,
        )
        .await;
    assert_eq!(
        (
            attached["bootable"].as_str(),
            attached["interface"].as_str()
        ),
        (Some("true"), Some("virtio_scsi"))
    );
    let duplicate = dr
        .post(
            "/vms",
            json!({"name": "web 01-restored", "cluster": {"name": "DR"}, "template": {"name": "Blank"}}),
            409,
        )
        .await;
    assert!(
        duplicate["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already in use"))
    );
    dr.post(
        "/vms",
        json!({"name": "web 01-old", "cluster": {"name": "DR"}, "template": {"name": "Blank"}}),
        201,
    )
    .await;
    let (status, taken) = dr
        .call(Method::PUT, &new_href, Some(json!({"name": "web 01-old"})))
        .await;
    assert_eq!(status, 409, "the name is taken: {taken}");
    let (status, renamed) = dr
        .call(Method::PUT, &new_href, Some(json!({"name": "web 01"})))
        .await;
    assert_eq!(
        (status.as_u16(), renamed["name"].as_str()),
        (200, Some("web 01"))
    );
    dr.post(&format!("{new_href}/start"), json!({}), 200).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            dr.get(&new_href).await["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(statuses, ["wait_for_launch", "powering_up", "up"]);
    let (status, refused) = dr.call(Method::DELETE, &new_href, None).await;
    assert_eq!(status, 409, "{refused}");
    dr.post(&format!("{new_href}/stop"), json!({}), 200).await;
    let (status, _) = dr.call(Method::DELETE, &new_href, None).await;
    assert_eq!(status, 200);
    let (status, gone) = dr.call(Method::GET, &new_href, None).await;
    assert_eq!((status.as_u16(), gone), (404, Value::Null));
    assert!(
        !dr.disk_file(&new_disk).exists(),
        "removing a VM removes its disks"
    );
    dr.running.shutdown().await;
    sim.running.shutdown().await;
}
