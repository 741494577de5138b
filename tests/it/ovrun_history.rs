//! The run history against ovsim (issue 15 item 2): two backups, one failing on an injected
//! fault, one killed while it waits for the VM (its line written as `killed` by the next run),
//! a prune and a verify; then `ovrun history` (human and JSON, `--limit`) and `ovrun status`
//! (human, JSON and the metrics) read back what happened.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config, verify_ok};

/// `ovrun ARGS`: exit code, standard output, standard error.
fn ovrun_out(args: &[&str]) -> (i32, String, String) {
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_ovrun"))
            .args(args)
            .output()
            .expect("ovrun runs")
    });
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// `ovrun ARGS` must succeed; its standard output.
fn stdout_of(args: &[&str]) -> String {
    let (code, out, err) = ovrun_out(args);
    assert_eq!(code, 0, "ovrun {args:?}:\n{out}{err}");
    out
}

/// Starts a backup while the VM is locked on the engine (it waits), and kills it with SIGKILL
/// once its run is recorded as in progress.
async fn killed_backup(sim: &Sim, config: &Path, vm_dir: &Path) {
    let vm = sim.vm("web 01").await;
    let lock = |locked: bool| json!({"kind": "vm", "id": vm["id"], "locked": locked});
    sim.admin("lock", lock(true)).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["backup", "--config", config.to_str().expect("utf-8")])
        .stderr(Stdio::null())
        .spawn()
        .expect("ovrun");
    let marker = vm_dir.join(".history.running.json");
    while !marker.exists() {
        assert!(
            child.try_wait().expect("child").is_none(),
            "the backup waits for the VM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    sim.admin("lock", lock(false)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_run_is_in_the_history_and_status_shows_the_last_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let text = config.to_str().expect("utf-8");
    let vm_dir = dir.path().join("backup/web 01");

    backup_ok(&config, &[]);
    sim.admin(
        "faults",
        json!({"method": "POST", "path": "/ovirt-engine/api/imagetransfers", "count": 1,
               "status": 500, "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}}),
    )
    .await;
    let (code, log) = tokio::task::block_in_place(|| ovrun(&["backup", "--config", text]));
    assert_eq!(code, 1, "{log}");
    killed_backup(&sim, &config, &vm_dir).await;
    backup_ok(&config, &[]);
    stdout_of(&["prune", "--config", text]);
    stdout_of(&["prune", "--config", text, "--dry-run"]);
    verify_ok(&config);

    let points: Vec<String> = manifests(&vm_dir)
        .iter()
        .map(|m| m["point"].as_str().expect("point").to_owned())
        .collect();
    check_json(
        &stdout_of(&["history", "--config", text, "--format", "json"]),
        &points,
    );
    check_human(&stdout_of(&["history", "--config", text]));
    let last_two = stdout_of(&[
        "history", "--config", text, "--format", "json", "--limit", "2",
    ]);
    let last_two: Vec<Value> = serde_json::from_str(&last_two).expect("JSON");
    assert_eq!(
        last_two
            .iter()
            .map(|e| e["kind"].clone())
            .collect::<Vec<_>>(),
        ["prune", "verify"]
    );
    check_status(text, dir.path());
    sim.running.shutdown().await;
}

/// The JSON history: one entry per run in order, a backup's facts from its manifest, the
/// failure's error, the killed run completed by the next one.
fn check_json(text: &str, points: &[String]) {
    let entries: Vec<Value> = serde_json::from_str(text).expect("a JSON array");
    let runs: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind"),
                e["result"].as_str().expect("result"),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("backup", "ok"),
            ("backup", "failed"),
            ("backup", "killed"),
            ("backup", "ok"),
            ("prune", "ok"),
            ("verify", "ok"),
        ],
        "{text}"
    );
    let (first, failed, killed, second) = (&entries[0], &entries[1], &entries[2], &entries[3]);
    assert_eq!(first["rule"]["kind"], "full");
    assert_eq!(first["rule"]["reason"], "no backup exists yet");
    assert_eq!(second["rule"]["kind"], "incremental");
    for (backup, point) in [(first, &points[0]), (second, &points[1])] {
        assert_eq!(backup["method"], "backup_api");
        assert_eq!(backup["point"].as_str(), Some(point.as_str()));
        // Nothing changed before the incremental: it may read nothing.
        assert!(backup["bytes_read"].as_u64().is_some(), "{backup}");
        assert!(
            backup["bytes_written"].as_u64().is_some_and(|b| b > 0),
            "{backup}"
        );
        assert!(backup["seconds"].as_f64().is_some() && backup["ended"].is_string());
    }
    assert!(
        first["bytes_read"].as_u64().is_some_and(|b| b > 0),
        "{first}"
    );
    let error = failed["error"].as_str().expect("an error");
    assert!(error.contains("Internal Engine Error"), "{error}");
    assert!(failed.get("point").is_none());
    assert!(
        killed["ended"].is_null() && killed["error"].is_string(),
        "{killed}"
    );
    assert_eq!(entries[4]["detail"], "deleted 0 points, kept 2");
    assert!(
        entries[5]["detail"]
            .as_str()
            .expect("detail")
            .starts_with("2 points")
    );
    assert!(entries.iter().all(|e| e["vm"] == "web 01"));
}

/// The human history: a header, a row per run in order, the failure's error under its row.
fn check_human(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("STARTED "), "{text}");
    let column = lines[0].find("RESULT").expect("a RESULT column");
    let results: Vec<&str> = lines[1..]
        .iter()
        .filter(|l| !l.starts_with(' '))
        .map(|l| l[column..].split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        results,
        ["ok", "failed", "killed", "ok", "ok", "ok"],
        "{text}"
    );
    assert!(
        text.contains("    error: ") && text.contains("Internal Engine Error"),
        "{text}"
    );
    assert!(text.contains("    no backup exists yet"), "{text}");
}

/// `ovrun status`: the last runs and the success rate (4 of 6 runs ok), as a line, as JSON
/// fields and as a gauge.
fn check_status(config: &str, dir: &Path) {
    let metrics = dir.join("ovbackup.prom");
    let human = stdout_of(&[
        "status",
        "--config",
        config,
        "--metrics",
        metrics.to_str().expect("utf-8"),
    ]);
    let line = human
        .lines()
        .find(|l| l.starts_with("web 01: last runs: "))
        .unwrap_or_else(|| panic!("a runs line:\n{human}"));
    assert!(
        line.contains("backup killed") && line.contains("verify ok"),
        "{line}"
    );
    assert!(line.ends_with("4 of 6 succeeded (67%)"), "{line}");
    let json = stdout_of(&["status", "--config", config, "--format", "json"]);
    let status: Value = serde_json::from_str(&json).expect("JSON");
    let vm = &status[0];
    assert_eq!(
        (vm["runs_counted"].as_u64(), vm["runs_succeeded"].as_u64()),
        (Some(6), Some(4))
    );
    assert_eq!(vm["recent_runs"].as_array().map(Vec::len), Some(5));
    assert_eq!(vm["recent_runs"][4]["kind"], "verify");
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("ovbackup_run_success_ratio{vm=\"web 01\"} 0.666"),
        "{text}"
    );
}
