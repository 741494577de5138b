//! What a client sees when `ovsim` injects each fault of the engine: a checkpoint that does not
//! exist or is invalid (400), a lost bitmap (the backup goes `failed` and the engine forgets the
//! VM's checkpoints), conflicts (409), a data connection cut mid-transfer, an idle client timed
//! out, a restart with the state kept, faults in XML for an XML client, a dead imageio daemon
//! (started again) and concurrent guest writes to one disk (one at a time).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, seed};

/// Starts a backup of the `web 01` OS disk; the answer's status and body.
async fn start_backup(sim: &Sim, from: Option<&str>) -> (u16, Value) {
    let vm = sim.vm("web 01").await;
    let os = sim.disk_id("web01_os").await;
    let mut request = json!({"disks": {"disk": [{"id": os}]}});
    if let Some(from) = from {
        request["from_checkpoint_id"] = json!(from);
    }
    let (status, body) = sim
        .call(
            Method::POST,
            &format!("{}/backups", vm["href"].as_str().expect("href")),
            Some(request),
        )
        .await;
    (status.as_u16(), body)
}

/// A whole full backup with no download; returns its checkpoint id.
async fn full_backup(sim: &Sim) -> String {
    let (status, started) = start_backup(sim, None).await;
    assert_eq!(status, 201, "{started}");
    let href = started["href"].as_str().expect("href").to_owned();
    let (_, ready) = sim.wait_for(&href, "phase", "ready", &["failed"]).await;
    sim.post(&format!("{href}/finalize"), json!({}), 200).await;
    sim.wait_for(&href, "phase", "succeeded", &["failed"]).await;
    ready["to_checkpoint_id"]
        .as_str()
        .expect("checkpoint")
        .to_owned()
}

fn detail(fault: &Value) -> &str {
    fault["detail"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_faults_send_the_client_to_a_full_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(dir.path(), seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();

    let (status, fault) = start_backup(&sim, Some("7c1e0000-0000-4000-8000-000000000000")).await;
    assert_eq!(status, 400);
    assert!(
        detail(&fault).contains("Checkpoint ID 7c1e0000-0000-4000-8000-000000000000 doesn't exist")
    );

    let checkpoint = full_backup(&sim).await;
    sim.admin(
        "checkpoint-state",
        json!({"vm": vm["id"], "checkpoint": checkpoint, "state": "invalid"}),
    )
    .await;
    let (status, fault) = start_backup(&sim, Some(&checkpoint)).await;
    assert_eq!(status, 400);
    assert!(
        detail(&fault).contains("is invalid and should be removed"),
        "{fault}"
    );
    sim.admin(
        "checkpoint-state",
        json!({"vm": vm["id"], "checkpoint": checkpoint, "state": "created"}),
    )
    .await;

    // The unclean shutdown: the bitmap is gone though the engine still lists the checkpoint.
    let os = sim.disk_id("web01_os").await;
    sim.admin("lose-bitmap", json!({"disk": os, "checkpoint": checkpoint}))
        .await;
    let (status, started) = start_backup(&sim, Some(&checkpoint)).await;
    assert_eq!(status, 201, "the engine accepts it first");
    let href = started["href"].as_str().expect("href");
    let (_, failed) = sim.wait_for(href, "phase", "failed", &["ready"]).await;
    assert!(failed.get("to_checkpoint_id").is_none());
    let checkpoints = sim.get(&format!("{vm_href}/checkpoints")).await;
    assert_eq!(
        checkpoints["checkpoint"],
        json!([]),
        "the engine forgot the VM's checkpoints"
    );
    assert_eq!(sim.get(&format!("/disks/{os}")).await["status"], "ok");
    let fresh = full_backup(&sim).await;
    let checkpoints = sim.get(&format!("{vm_href}/checkpoints")).await;
    assert_eq!(checkpoints["checkpoint"][0]["id"], fresh.as_str());
    assert!(
        checkpoints["checkpoint"][0].get("parent_id").is_none(),
        "a new chain starts"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_backup_conflicts_with_other_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(dir.path(), seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();
    let (status, started) = start_backup(&sim, None).await;
    assert_eq!(status, 201);
    let href = started["href"].as_str().expect("href").to_owned();

    let (status, fault) = start_backup(&sim, None).await;
    assert_eq!(status, 409);
    assert!(
        detail(&fault).contains("during a backup operation"),
        "{fault}"
    );
    let snapshot = json!({"description": "nightly", "persist_memorystate": "false"});
    let (status, fault) = sim
        .call(
            Method::POST,
            &format!("{vm_href}/snapshots"),
            Some(snapshot.clone()),
        )
        .await;
    assert_eq!(status, 409, "{fault}");
    let os = sim.disk_id("web01_os").await;
    let (status, fault) = sim
        .call(
            Method::POST,
            "/imagetransfers",
            Some(json!({"disk": {"id": os}, "backup": {"id": started["id"]},
                        "direction": "download", "format": "raw"})),
        )
        .await;
    assert_eq!(status, 409, "the backup is not ready yet: {fault}");
    assert!(detail(&fault).contains("not in READY phase"));
    sim.wait_for(&href, "phase", "ready", &["failed"]).await;
    let (status, fault) = sim
        .call(
            Method::POST,
            "/imagetransfers",
            Some(json!({"disk": {"id": os}, "backup": {"id": started["id"]},
                        "direction": "download", "format": "cow"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(detail(&fault).contains("format is not applicable for VM backup"));

    // The same refusal in XML for a client that accepts only XML (the SDK).
    let xml = sim
        .http
        .post(sim.url(&format!("{vm_href}/backups")))
        .header("Authorization", &sim.bearer)
        .header("Accept", "application/xml")
        .header("Content-Type", "application/xml")
        .body(format!(
            "<backup><disks><disk id=\"{os}\"/></disks></backup>"
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(xml.status(), 409);
    let text = xml.text().await.expect("body");
    assert!(
        text.contains("<fault>") && text.contains("<reason>Operation Failed</reason>"),
        "{text}"
    );

    sim.post(&format!("{href}/finalize"), json!({}), 200).await;
    sim.wait_for(&href, "phase", "succeeded", &["failed"]).await;
    let created = sim
        .post(&format!("{vm_href}/snapshots"), snapshot, 201)
        .await;
    assert_eq!(created["snapshot_status"], "locked");
    let snap_href = created["href"].as_str().expect("href").to_owned();
    let (polls, _) = sim.wait_for(&snap_href, "snapshot_status", "ok", &[]).await;
    assert!(polls >= 2, "locked for a poll first");
    let list = sim.get(&format!("{vm_href}/snapshots")).await;
    let types: Vec<&str> = list["snapshot"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["snapshot_type"].as_str())
        .collect();
    assert_eq!(types, ["active", "regular"]);
    let (status, _) = sim.call(Method::DELETE, &snap_href, None).await;
    assert_eq!(status, 200);
    assert_eq!(sim.get(&snap_href).await["snapshot_status"], "locked");
    // The layer is merged in the background: locked until then, then gone.
    for polls in 1.. {
        let (status, body) = sim.call(Method::GET, &snap_href, None).await;
        if status == 404 {
            break;
        }
        assert_eq!(body["snapshot_status"], "locked", "locked until gone");
        assert!(polls < 100, "the merge ends");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sim.running.shutdown().await;
}

/// Starts a backup and a transfer of its OS disk; the backup's href, the transfer's href and URL.
async fn backup_transfer(sim: &Sim, extra: Value) -> (String, String, String) {
    let (status, started) = start_backup(sim, None).await;
    assert_eq!(status, 201);
    let href = started["href"].as_str().expect("href").to_owned();
    sim.wait_for(&href, "phase", "ready", &["failed"]).await;
    let os = sim.disk_id("web01_os").await;
    let mut request = json!({"disk": {"id": os}, "backup": {"id": started["id"]},
                             "direction": "download", "format": "raw"});
    for (k, v) in extra.as_object().expect("object") {
        request[k] = v.clone();
    }
    let (transfer, url) = sim.transfer(request).await;
    (href, transfer, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_data_connection_and_an_idle_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(dir.path(), seed()).await;

    sim.admin("cut", json!({"after_bytes": MIB})).await;
    let (backup, transfer, url) = backup_transfer(&sim, json!({})).await;
    assert_eq!(
        sim.read(&url, 0, MIB).await.expect("before the cut").len() as u64,
        MIB
    );
    let mut failed = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Err(e) = sim.read(&url, MIB, MIB).await {
            failed = Some(e);
            break;
        }
    }
    let failed = failed.expect("reads fail once the connection is cut");
    assert!(
        failed.status().is_some_and(|s| s.is_server_error()),
        "imageio answers an error: {failed}"
    );
    // The client gives up on the transfer; the backup still ends cleanly.
    sim.post(&format!("{transfer}/cancel"), json!({}), 200)
        .await;
    sim.wait_for(&transfer, "phase", "finished_cleanup", &[])
        .await;
    sim.post(&format!("{backup}/finalize"), json!({}), 200)
        .await;
    sim.wait_for(&backup, "phase", "succeeded", &["failed"])
        .await;

    // An idle client: after inactivity_timeout the engine cancels the transfer.
    let (backup, transfer, url) = backup_transfer(
        &sim,
        json!({"inactivity_timeout": "1", "timeout_policy": "cancel"}),
    )
    .await;
    let (_, ended) = sim
        .wait_for(
            &transfer,
            "phase",
            "finished_failure",
            &["finished_success"],
        )
        .await;
    assert_eq!(ended["active"], "false");
    let gone = sim
        .read(&url, 0, MIB)
        .await
        .expect_err("the ticket is removed");
    assert!(gone.status().is_some_and(|s| s.is_client_error()), "{gone}");
    sim.post(&format!("{backup}/finalize"), json!({}), 200)
        .await;

    // An idle upload with timeout_policy=cancel: the engine removes its disk.
    let disk = sim
        .post(
            "/disks",
            json!({"name": "scratch", "format": "cow", "provisioned_size": "16777216",
                   "storage_domains": {"storage_domain": [{"name": "data"}]}}),
            201,
        )
        .await;
    let disk_href = disk["href"].as_str().expect("href").to_owned();
    sim.wait_for(&disk_href, "status", "ok", &[]).await;
    let (transfer, _) = sim
        .transfer(
            json!({"disk": {"id": disk["id"]}, "direction": "upload", "format": "raw",
                          "inactivity_timeout": "1", "timeout_policy": "cancel"}),
        )
        .await;
    sim.wait_for(
        &transfer,
        "phase",
        "finished_failure",
        &["finished_success"],
    )
    .await;
    let (status, _) = sim.call(Method::GET, &disk_href, None).await;
    assert_eq!(status, 404, "a cancelled upload's disk is removed");
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_a_running_backup_and_frees_the_transfers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(dir.path(), seed()).await;
    let (backup, transfer, _) = backup_transfer(&sim, json!({})).await;
    let backup_path = backup.clone();
    sim.running.shutdown().await;

    let sim = Sim::start(dir.path(), seed()).await;
    let (status, _) = sim.call(Method::GET, &transfer, None).await;
    assert_eq!(status, 404, "transfers do not survive a restart");
    assert_eq!(sim.get(&backup_path).await["phase"], "ready");
    sim.post(&format!("{backup_path}/finalize"), json!({}), 200)
        .await;
    sim.wait_for(&backup_path, "phase", "succeeded", &["failed"])
        .await;
    let os = sim.disk_id("web01_os").await;
    assert_eq!(sim.get(&format!("/disks/{os}")).await["status"], "ok");
    let vm = sim.vm("web 01").await;
    let checkpoints = sim
        .get(&format!(
            "{}/checkpoints",
            vm["href"].as_str().expect("href")
        ))
        .await;
    assert_eq!(checkpoints["checkpoint"].as_array().map(Vec::len), Some(1));
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_engine_and_a_locked_vm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(dir.path(), seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();

    // A delay (status 0): a client with a short timeout gives up; the next call is quick again.
    let slow =
        json!({"method": "GET", "path": "/ovirt-engine/api/vms/*", "status": 0, "delay_ms": 3000});
    sim.admin("faults", slow).await;
    let impatient = sim
        .http
        .get(sim.url(&vm_href))
        .header("Authorization", &sim.bearer)
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await
        .expect_err("the engine answers too late");
    assert!(impatient.is_timeout(), "{impatient}");
    assert_eq!(sim.get(&vm_href).await["name"], "web 01");

    // A locked VM: a backup is refused with the engine's lock message until it is unlocked.
    let lock = |locked: bool| json!({"kind": "vm", "id": vm["id"], "locked": locked});
    sim.admin("lock", lock(true)).await;
    let (status, fault) = start_backup(&sim, None).await;
    assert_eq!(status, 409);
    assert!(detail(&fault).contains("VM is locked"), "{fault}");
    sim.admin("lock", lock(false)).await;
    let (status, _) = start_backup(&sim, None).await;
    assert_eq!(status, 201);
    sim.running.shutdown().await;
}

/// Whether process `pid` has exited (gone, or a zombie waiting to be reaped).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_imageio_daemon_is_started_again_and_the_next_transfer_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let pid = sim.running.imageio_pid().expect("a data plane");
    let target = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(target, rustix::process::Signal::KILL).expect("SIGKILL");
    while !exited(pid) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (backup, href, url) = backup_transfer(&sim, json!({})).await;
    let data = sim.read(&url, 0, MIB).await.expect("read");
    assert!(
        data.iter().all(|&b| b == 17),
        "the seed's pattern, read through the restarted daemon"
    );
    sim.finish_transfer(&href).await;
    sim.post(&format!("{backup}/finalize"), json!({}), 200)
        .await;
    let again = sim.running.imageio_pid().expect("a data plane");
    assert_ne!(again, pid, "a new daemon");
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_guest_writes_to_one_disk_all_succeed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let disk = sim.disk_id("web01_data").await;
    let writes = (0..8u64).map(|i| {
        let (sim, disk) = (&sim, disk.clone());
        async move {
            let body = json!({"disk": disk, "offset": i * MIB, "length": MIB, "pattern": 0x30 + i});
            sim.call(Method::POST, "/ovsim/admin/guest-write", Some(body))
                .await
        }
    });
    let answers = futures_util::future::join_all(writes).await;
    for (status, answer) in &answers {
        assert!(status.is_success(), "{status} {answer}");
    }
    let raw = dir.path().join("data.raw");
    crate::support::engine::raw_copy(&sim.disk_file(&disk), &raw);
    let bytes = std::fs::read(&raw).expect("raw");
    for i in 0..8u64 {
        let at = usize::try_from(i * MIB).expect("offset");
        assert_eq!(bytes[at], 0x30 + i as u8, "write {i} landed");
    }
    sim.running.shutdown().await;
}
