//! Engines older than the backup API (oVirt and OLVM 4.3), as `ovsim serve --engine-version 4.3`
//! plays them: the API root says which version answers, the backup and checkpoint routes answer
//! 404 as a 4.3 engine does. `ovrun backup` with `backup_method: backup_api` names the engine and
//! what it lacks before it changes anything (exit 2: no retry helps), leaving no point behind;
//! with `auto` (the default) it takes the point by snapshots there, and by the backup API on the
//! default 4.5 engine, and the manifest says which and why.

use std::path::Path;

use reqwest::Method;

use crate::snapshot_method::method_config;
use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

/// The `rel`s of a VM's links.
fn links(vm: &serde_json::Value) -> Vec<&str> {
    let all = vm["link"].as_array().map(Vec::as_slice).unwrap_or_default();
    all.iter().filter_map(|l| l["rel"].as_str()).collect()
}

/// Every file under `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    walkdir(dir)
        .into_iter()
        .filter(|name| name.ends_with(suffix))
        .collect()
}

fn walkdir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            names.extend(walkdir(&path));
        } else {
            names.push(path.display().to_string());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4_3_engine_has_no_backup_api_and_ovrun_backup_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let version = "4.3".parse().expect("an engine version");
    let sim = Sim::start_as(&dir.path().join("prod"), seed(), version).await;

    let root = sim.get("").await;
    let said = &root["product_info"]["version"];
    assert_eq!(
        (said["major"].as_str(), said["minor"].as_str()),
        (Some("4"), Some("3")),
        "{root}"
    );
    let vm = sim.vm("web 01").await;
    assert_eq!(
        links(&vm),
        ["diskattachments", "nics", "snapshots"],
        "a 4.3 VM has no backup links"
    );
    let vm_id = vm["id"].as_str().expect("VM id");
    for path in [
        format!("/vms/{vm_id}/backups"),
        format!("/vms/{vm_id}/checkpoints"),
    ] {
        let (status, _) = sim.call(Method::GET, &path, None).await;
        assert_eq!(status, 404, "GET {path} on a 4.3 engine");
    }
    let (status, _) = sim
        .call(
            Method::POST,
            &format!("/vms/{vm_id}/backups"),
            Some(serde_json::json!({"disks": {"disk": []}})),
        )
        .await;
    assert_eq!(status, 404, "POST a backup on a 4.3 engine");

    let config = method_config(&sim, dir.path(), "web 01", "backup_api");
    let config = config.to_str().expect("utf-8");
    let (code, log) = tokio::task::block_in_place(|| ovrun(&["backup", "--config", config]));
    assert_eq!(code, 2, "no retry helps against a 4.3 engine:\n{log}");
    for words in ["4.3.0-ovsim", "no incremental backup API", "4.4 or newer"] {
        assert!(log.contains(words), "the error says {words:?}:\n{log}");
    }
    let backup = dir.path().join("backup");
    assert!(
        files_ending(&backup, ".manifest.json").is_empty(),
        "no point was recorded"
    );
    assert!(
        files_ending(&backup, ".qcow2").is_empty(),
        "no image was written"
    );
    let (status, _) = sim.call(Method::GET, &format!("/vms/{vm_id}"), None).await;
    assert_eq!(status, 200);
    let disks = sim.get(&format!("/vms/{vm_id}/diskattachments")).await;
    for attachment in disks["disk_attachment"].as_array().expect("attachments") {
        let disk = sim
            .get(&format!(
                "/disks/{}",
                attachment["id"].as_str().expect("id")
            ))
            .await;
        assert_eq!(disk["status"], "ok", "no disk was left locked: {disk}");
    }

    let auto = runner_config(&sim, dir.path(), "web 01");
    let log = backup_ok(&auto, &[]);
    assert!(log.contains("backup method: snapshot"), "{log}");
    let point = &manifests(&dir.path().join("backup/web 01"))[0];
    assert_eq!(point["method"]["name"], "snapshot");
    let why = point["method"]["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("auto") && why.contains("4.3.0-ovsim has no backup API"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_engine_is_4_5_with_the_backup_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let root = sim.get("").await;
    let said = &root["product_info"]["version"];
    assert_eq!(
        (said["major"].as_str(), said["minor"].as_str()),
        (Some("4"), Some("5")),
        "{root}"
    );
    let vm = sim.vm("web 01").await;
    assert_eq!(
        links(&vm),
        [
            "diskattachments",
            "nics",
            "snapshots",
            "backups",
            "checkpoints"
        ]
    );
    let vm_id = vm["id"].as_str().expect("VM id").to_owned();
    let backups = sim.get(&format!("/vms/{vm_id}/backups")).await;
    assert!(backups.is_object(), "a 4.5 engine lists backups: {backups}");
    let auto = runner_config(&sim, dir.path(), "web 01");
    backup_ok(&auto, &[]);
    let point = &manifests(&dir.path().join("backup/web 01"))[0];
    assert_eq!(point["method"]["name"], "backup_api", "{point}");
    assert!(point["checkpoint"].is_string(), "{point}");
}

#[test]
fn ovsim_refuses_an_engine_version_it_cannot_read() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsim"))
        .args([
            "serve",
            "--state",
            "/nonexistent",
            "--engine-version",
            "four",
        ])
        .output()
        .expect("ovsim runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--engine-version") && stderr.contains("MAJOR.MINOR"),
        "{stderr}"
    );
}
