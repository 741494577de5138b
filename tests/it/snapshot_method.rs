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
