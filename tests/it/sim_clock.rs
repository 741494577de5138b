//! `ovsim`'s own time: work nobody polls finishes by itself, as on a real engine. A snapshot
//! made and removed, a new disk, a backup finalized and a transfer cancelled, none of them
//! polled again, each end within a bounded wait (read through lists and other objects, which
//! move nothing on), and the VM can be backed up afterwards instead of answering 409 for ever.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::engine::{Sim, seed};

/// The element of list `key` in `body` whose `id` is `id`.
fn item<'a>(body: &'a Value, key: &str, id: &str) -> Option<&'a Value> {
    body[key].as_array()?.iter().find(|v| v["id"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn work_nobody_polls_finishes_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();
    let os = sim.disk_id("web01_os").await;
    let is_ok = |disk: &Value| disk["status"] == "ok";

    // A snapshot nobody polls: its disks are unlocked when it is made.
    let made = sim
        .post(
            &format!("{vm_href}/snapshots"),
            json!({"description": "unpolled", "persist_memorystate": false}),
            201,
        )
        .await;
    let snapshot = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["snapshot_status"], "locked");
    let snapshots = format!("{vm_href}/snapshots");
    sim.until(&snapshots, "the snapshot's creation", |list| {
        item(list, "snapshot", &snapshot).is_some_and(|s| s["snapshot_status"] == "ok")
    })
    .await;
    assert!(is_ok(&sim.get(&format!("/disks/{os}")).await));

    // A backup is admitted (no 409), reaches ready, is finalized and never polled again.
    let started = sim
        .post(
            &format!("{vm_href}/backups"),
            json!({"disks": {"disk": [{"id": os}]}}),
            201,
        )
        .await;
    let backup = started["id"].as_str().expect("id").to_owned();
    let backups = format!("{vm_href}/backups");
    sim.until(&backups, "the backup's start", |list| {
        item(list, "backup", &backup).is_some_and(|b| b["phase"] == "ready")
    })
    .await;
    sim.post(&format!("{backups}/{backup}/finalize"), json!({}), 200)
        .await;
    sim.until(&backups, "the backup's end", |list| {
        item(list, "backup", &backup).is_some_and(|b| b["phase"] == "succeeded")
    })
    .await;

    // A download (of the stopped VM's disk) cancelled and never polled again: the disk is
    // unlocked.
    sim.post(&format!("{vm_href}/stop"), json!({}), 200).await;
    let (transfer, _) = sim
        .transfer(json!({"disk": {"id": os}, "direction": "download"}))
        .await;
    assert_eq!(sim.get(&format!("/disks/{os}")).await["status"], "locked");
    sim.post(&format!("{transfer}/cancel"), json!({}), 200)
        .await;
    sim.until(&format!("/disks/{os}"), "the cancel", is_ok)
        .await;

    // The snapshot removed and never polled: it is gone, its disks unlocked.
    let (status, _) = sim
        .call(Method::DELETE, &format!("{snapshots}/{snapshot}"), None)
        .await;
    assert_eq!(status, 200);
    sim.until(&snapshots, "the snapshot's removal", |list| {
        item(list, "snapshot", &snapshot).is_none()
    })
    .await;
    assert!(is_ok(&sim.get(&format!("/disks/{os}")).await));

    // A new disk nobody polls becomes ok.
    let disk = sim
        .post(
            "/disks",
            json!({"name": "unpolled", "provisioned_size": 1_048_576, "format": "cow",
                   "storage_domains": {"storage_domain": [{"name": "data"}]}}),
            201,
        )
        .await;
    let disk = disk["id"].as_str().expect("id").to_owned();
    sim.until(
        "/disks?search=name%3Dunpolled",
        "the disk's creation",
        |list| item(list, "disk", &disk).is_some_and(is_ok),
    )
    .await;

    let events = sim.get("/events?search=vm.name%3D%22web%2001%22").await;
    let codes: Vec<&str> = events["event"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .map(|e| e["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["45", "68", "10790", "10794", "10793", "342", "356"]);
    sim.running.shutdown().await;
}

#[test]
fn ovsim_refuses_a_pace_that_is_not_a_number_of_seconds() {
    for bad in ["0", "-1", "soon", "inf"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsim"))
            .args(["serve", "--state", "/nonexistent", &format!("--pace={bad}")])
            .output()
            .expect("ovsim runs");
        assert_eq!(out.status.code(), Some(2), "--pace {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("number of seconds"), "{stderr}");
    }
}
