//! Real clients nobody here wrote, unchanged, against `ovsim`: the official
//! `ovirt_imageio.client` downloads a full and an incremental backup from tickets `ovsim`
//! issued, and `ovirt-img download-disk` / `upload-disk` drive the engine through the official
//! Python SDK (XML). Each image they move is compared with the disk by `qemu-img compare`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::engine::{MIB, Sim, raw_copy, same_content, seed};

fn venv_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name)
}

/// Runs a program of the project's virtualenv; panics with its output when it fails.
fn run(program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs it)", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}\n{}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Backs up the OS disk of `web 01` (from `checkpoint` if given) and downloads it with the
/// official client into `file`; returns the new checkpoint.
async fn official_backup(
    sim: &Sim,
    file: &Path,
    checkpoint: Option<&str>,
    backing: Option<&Path>,
) -> String {
    let vm = sim.vm("web 01").await;
    let os = sim.disk_id("web01_os").await;
    let mut request = json!({"disks": {"disk": [{"id": os}]}});
    if let Some(from) = checkpoint {
        request["from_checkpoint_id"] = json!(from);
    }
    let started = sim
        .post(
            &format!("{}/backups", vm["href"].as_str().expect("href")),
            request,
            201,
        )
        .await;
    let href = started["href"].as_str().expect("href").to_owned();
    let (_, ready) = sim.wait_for(&href, "phase", "ready", &["failed"]).await;
    let (transfer, url) = sim
        .transfer(json!({"disk": {"id": os}, "backup": {"id": started["id"]},
                          "direction": "download", "format": "raw"}))
        .await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/imageio_download.py");
    let ca = sim.running.pki.ca_cert.to_str().expect("utf-8").to_owned();
    let mut args = vec![
        script.to_str().expect("utf-8").to_owned(),
        url,
        file.to_str().expect("utf-8").to_owned(),
        ca,
    ];
    if let Some(backing) = backing {
        args.push("--incremental".into());
        args.push("--backing".into());
        args.push(backing.to_str().expect("utf-8").into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tokio::task::block_in_place(|| run(&venv_bin("python"), &args));
    sim.finish_transfer(&transfer).await;
    sim.post(&format!("{href}/finalize"), json!({}), 200).await;
    sim.wait_for(&href, "phase", "succeeded", &["failed"]).await;
    ready["to_checkpoint_id"]
        .as_str()
        .expect("checkpoint")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_imageio_client_downloads_a_full_and_an_incremental_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let os = sim.disk_id("web01_os").await;
    let full = dir.path().join("full.qcow2");
    let checkpoint = official_backup(&sim, &full, None, None).await;
    assert!(
        same_content(&full, &sim.disk_file(&os)),
        "the full backup is the disk"
    );

    for (offset, pattern) in [(8 * MIB, 0x22), (50 * MIB, 0x33)] {
        let write = json!({"disk": os, "offset": offset, "length": MIB, "pattern": pattern});
        sim.admin("guest-write", write).await;
    }
    let expected = dir.path().join("expected.raw");
    raw_copy(&sim.disk_file(&os), &expected);
    let incremental = dir.path().join("incremental.qcow2");
    official_backup(&sim, &incremental, Some(&checkpoint), Some(&full)).await;
    assert!(
        same_content(&incremental, &expected),
        "the chain full <- incremental is the disk"
    );
    let map = crate::support::engine::sh(
        "qemu-img",
        &["map", "--output=json", incremental.to_str().expect("utf-8")],
    );
    let map: Vec<serde_json::Value> = serde_json::from_str(&map).expect("map");
    let own: u64 = map
        .iter()
        .filter(|e| e["depth"] == 0 && e["data"] == true)
        .map(|e| e["length"].as_u64().expect("length"))
        .sum();
    assert_eq!(
        own,
        2 * MIB,
        "the incremental holds only the written clusters"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ovirt_img_downloads_and_uploads_through_the_sdk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let vm = sim.vm("web 01").await;
    sim.post(
        &format!("{}/stop", vm["href"].as_str().expect("href")),
        json!({}),
        200,
    )
    .await;
    let os = sim.disk_id("web01_os").await;
    let password = dir.path().join("password");
    std::fs::write(&password, &sim.running.users["admin@internal"]).expect("password file");
    let engine = sim.running.base_url();
    let ca = sim.running.pki.ca_cert.to_str().expect("utf-8").to_owned();
    let common = |command: &str| -> Vec<String> {
        [
            command,
            "--engine-url",
            &engine,
            "--username",
            "admin@internal",
            "--password-file",
            password.to_str().expect("utf-8"),
            "--cafile",
            &ca,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let downloaded = dir.path().join("downloaded.qcow2");
    let mut args = common("download-disk");
    args.extend([os.clone(), downloaded.to_str().expect("utf-8").to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tokio::task::block_in_place(|| run(&venv_bin("ovirt-img"), &args));
    assert!(same_content(&downloaded, &sim.disk_file(&os)));
    assert_eq!(sim.get(&format!("/disks/{os}")).await["status"], "ok");

    let disk_id = "5b0e6a3e-1d5c-4b8e-9f0a-0123456789ab";
    let mut args = common("upload-disk");
    args.extend(
        [
            "--storage-domain",
            "data",
            "--disk-id",
            disk_id,
            "--name",
            "uploaded",
            downloaded.to_str().expect("utf-8"),
        ]
        .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tokio::task::block_in_place(|| run(&venv_bin("ovirt-img"), &args));
    let uploaded = sim.get(&format!("/disks/{disk_id}")).await;
    assert_eq!(
        (uploaded["status"].as_str(), uploaded["name"].as_str()),
        (Some("ok"), Some("uploaded"))
    );
    assert!(same_content(&sim.disk_file(disk_id), &downloaded));
    sim.running.shutdown().await;
}
