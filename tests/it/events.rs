//! The engine's events (`/events`) as `ovsim` writes them for what `ovrun` and a client do:
//! backups (started, the failed incremental that needs a full, finalized), their image
//! transfers, and a snapshot's creation and removal, with the engine's codes and words; then
//! read back with `from`, `max` and `search`, in JSON here and in XML by the official Python
//! SDK. `ovrun` quotes the event that says why an incremental had to become a full. An
//! application adds its own events (`POST /events`), once per custom id for its origin.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, seed};
use crate::support::ovrun::{backup_ok, runner_config};

/// The codes of `events`, oldest first.
fn codes(events: &Value) -> Vec<u64> {
    let mut listed: Vec<(u64, u64)> = events["event"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let number = |key: &str| e[key].as_str().expect(key).parse::<u64>().expect(key);
            (number("index"), number("code"))
        })
        .collect();
    listed.reverse();
    listed.into_iter().map(|(_, code)| code).collect()
}

/// The indexes of `events`, as listed.
fn indexes(events: &Value) -> Vec<u64> {
    events["event"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["index"].as_str().expect("index").parse().expect("number"))
        .collect()
}

/// A snapshot of `web 01` made and removed as a client does it, polling each step.
async fn snapshot_made_and_removed(sim: &Sim) {
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href");
    let made = sim
        .post(
            &format!("{vm_href}/snapshots"),
            json!({"description": "before the upgrade", "persist_memorystate": false}),
            201,
        )
        .await;
    let href = made["href"].as_str().expect("href").to_owned();
    sim.wait_for(&href, "snapshot_status", "ok", &[]).await;
    let (status, _) = sim.call(reqwest::Method::DELETE, &href, None).await;
    assert_eq!(status, 200);
    for _ in 0..60 {
        let (status, _) = sim.call(reqwest::Method::GET, &href, None).await;
        if status == 404 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the snapshot was never removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_tell_what_backups_transfers_and_snapshots_did() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let os = sim.disk_id("web01_os").await;
    assert_eq!(codes(&sim.get("/events").await), Vec::<u64>::new());

    backup_ok(&config, &[]);
    sim.admin("lose-bitmap", json!({"disk": os})).await;
    sim.admin(
        "guest-write",
        json!({"disk": os, "offset": 0, "length": MIB, "pattern": 0x61}),
    )
    .await;
    let log = backup_ok(&config, &[]);
    // ovrun tells why the incremental became a full in the engine's own words (its event).
    assert!(
        log.contains("incremental backup not possible (backup ")
            && log.contains("failed on the engine: Incremental backup ")
            && log.contains("Full backup is now needed"),
        "{log}"
    );
    snapshot_made_and_removed(&sim).await;

    let all = sim.get("/events").await;
    let listed = indexes(&all);
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest first: {listed:?}"
    );
    let codes = codes(&all);
    let count = |code: u64| codes.iter().filter(|&&c| c == code).count();
    assert_eq!(
        count(10790),
        3,
        "three backups started (full, incremental, full): {codes:?}"
    );
    assert_eq!(count(10791), 1, "the incremental needed a full: {codes:?}");
    assert_eq!(count(10794), 2, "two backups were finalized: {codes:?}");
    assert!(count(1031) >= 4, "two disks downloaded twice: {codes:?}");
    assert_eq!(
        count(1031),
        count(1032),
        "every transfer succeeded: {codes:?}"
    );
    assert_eq!(
        codes[codes.len() - 4..],
        [45_u64, 68, 342, 356],
        "the snapshot's life"
    );

    let failed = sim.get("/events?search=type%3D10791").await;
    let failed = &failed["event"][0];
    assert_eq!(failed["severity"], "error");
    let words = failed["description"].as_str().expect("description");
    assert!(
        words.starts_with("Incremental backup ")
            && words.ends_with(" for VM web 01 failed. Full backup is now needed (User: SYSTEM)."),
        "{words}"
    );
    let vm = sim.vm("web 01").await;
    assert_eq!(failed["vm"]["id"], vm["id"]);
    // backup_vm.py finds a failed backup's event by searching for the backup's id.
    let backup_id = words.split(' ').nth(2).expect("backup id");
    let by_id = sim.get(&format!("/events?search={backup_id}")).await;
    assert_eq!(by_id["event"][0]["code"], "10791");

    let newest = sim.get("/events?max=1").await;
    assert_eq!(indexes(&newest), [listed[0]]);
    let after = sim.get(&format!("/events?from={}", listed[2])).await;
    assert_eq!(indexes(&after), listed[..2]);
    let snapshot_events = sim
        .get("/events?search=vm.name%3D%22web%2001%22%20and%20snapshot")
        .await;
    assert_eq!(indexes(&snapshot_events), listed[..4]);
    let one = sim.get(&format!("/events/{}", listed[0])).await;
    assert_eq!(one["code"], "356");

    let sdk = sdk_reads_events(&sim, dir.path(), listed[2]);
    assert_eq!(
        sdk,
        [
            format!("newest {} 356", listed[0]),
            format!("from {} 356", listed[0]),
            format!("from {} 342", listed[1]),
            format!("failed 10791 error {words}"),
        ]
    );
    sim.running.shutdown().await;
}

/// The events read by the official Python SDK (XML): the newest, those after index `from`, and
/// the failed incremental's by search; one line each.
fn sdk_reads_events(sim: &Sim, dir: &std::path::Path, from: u64) -> Vec<String> {
    let script = r#"
import sys
import ovirtsdk4 as sdk
url, password, ca, start = sys.argv[1:5]
connection = sdk.Connection(url=url, username="admin@internal", password=password, ca_file=ca)
events = connection.system_service().events_service()
for e in events.list(max=1):
    print("newest", e.id, e.code)
for e in events.list(from_=int(start)):
    print("from", e.id, e.code)
for e in events.list(search="type=10791"):
    print("failed", e.code, e.severity.value, e.description)
connection.close()
"#;
    let script_file = dir.join("events.py");
    std::fs::write(&script_file, script).expect("script");
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = tokio::task::block_in_place(|| {
        Command::new(python)
            .arg(&script_file)
            .arg(sim.running.api_url())
            .arg(&sim.running.users["admin@internal"])
            .arg(&sim.running.pki.ca_cert)
            .arg(from.to_string())
            .output()
            .expect("python runs")
    });
    assert!(
        out.status.success(),
        "the SDK failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_that_do_not_answer_leave_the_generic_reason_and_the_full_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let os = sim.disk_id("web01_os").await;
    backup_ok(&config, &[]);
    sim.admin("lose-bitmap", json!({"disk": os})).await;
    let broken =
        json!({"method": "GET", "path": "/ovirt-engine/api/events", "status": 500, "count": 10});
    sim.admin("faults", broken).await;
    let log = backup_ok(&config, &[]);
    assert!(
        log.contains("incremental backup not possible")
            && log.contains("FULL_VM_BACKUP_NEEDED if a checkpoint's bitmap was lost"),
        "without the engine's events the generic reason is given:\n{log}"
    );
    let points = crate::support::ovrun::manifests(&dir.path().join("backup/web 01"));
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["full", "full"],
        "the failed incremental became a full"
    );
    crate::support::ovrun::verify_ok(&config);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_adds_its_own_events_once_per_custom_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let vm = sim.vm("web 01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let event = |origin: &str, severity: &str, custom_id: u64| {
        json!({"origin": origin, "severity": severity, "custom_id": custom_id.to_string(),
               "description": "Backup of web 01 is starting.", "vm": {"id": vm}})
    };
    let added = sim
        .post("/events", event("mybackup", "warning", 7), 201)
        .await;
    assert_eq!(
        (&added["code"], &added["origin"], &added["custom_id"]),
        (&json!("9802"), &json!("mybackup"), &json!("7"))
    );
    assert_eq!(added["vm"]["id"], vm.as_str());
    let listed = sim.get("/events?search=origin%3Dmybackup").await;
    assert_eq!(
        listed["event"][0]["description"],
        "Backup of web 01 is starting."
    );
    assert_eq!(listed["event"][0]["severity"], "warning");
    let by_vm = sim.get("/events?search=vm.name%3D%22web%2001%22").await;
    assert_eq!(by_vm["event"][0]["index"], added["index"]);

    for (body, status, words) in [
        (
            event("mybackup", "normal", 7),
            409,
            "this custom id already exists",
        ),
        (event("oVirt", "normal", 8), 409, "Illegal Origin"),
        (event("mybackup", "loud", 8), 400, "severity"),
        (
            json!({"origin": "mybackup", "severity": "normal"}),
            400,
            "required for add",
        ),
    ] {
        let (got, fault) = sim.call(reqwest::Method::POST, "/events", Some(body)).await;
        let detail = fault["detail"].as_str().unwrap_or_default();
        assert!(got == status && detail.contains(words), "{got} {fault}");
    }
    sim.post("/events", event("othertool", "normal", 7), 201)
        .await;
    sim.running.shutdown().await;
}
