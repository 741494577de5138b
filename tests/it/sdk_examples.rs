//! The official Python SDK's examples, unchanged (the `examples/` folder of the SDK's source
//! package, which scripts/setup.sh fetches), against `ovsim`. The examples name their engine,
//! password and CA file in their code; `tests/support/sdk_redirect/sitecustomize.py` points
//! their `Connection` at the simulator and changes nothing else. The seed holds what they look
//! for by name (`myvm`, the storage domain `mydata`).
//!
//! `page_vms.py`, `search_vms.py`, `add_vm_disk.py`, `deactivate_disk_attachment.py` and
//! `poll_events.py` did not run against `ovsim` before it served paging, searches with `and`,
//! disks made through an attachment, attachment updates and `/events`; `backup_vm.py` crashed on
//! a failed backup (no events), and a cancelled transfer kept its disk locked until someone
//! polled it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::engine::Sim;

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    project()
        .join(".venv/share/ovirt-engine-sdk-examples")
        .join(name)
}

/// The seed: three VMs (`myvm` with a disk) and the examples' storage domain.
fn seed() -> serde_json::Value {
    json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "mydata"}],
        "vms": [
            {"name": "myvm", "memory_mib": 1024, "disks": [
                {"name": "myvm_os", "size_mib": 16, "data": [{"offset_mib": 0, "length_mib": 1, "pattern": 7}]}
            ]},
            {"name": "web", "status": "down"},
            {"name": "db", "status": "down"}
        ]
    })
}

/// `python EXAMPLE` in `dir`, its connection pointed at `sim`.
fn command(sim: &Sim, dir: &Path, name: &str) -> Command {
    let path = example(name);
    assert!(path.exists(), "{}: run scripts/setup.sh", path.display());
    let mut command = Command::new(project().join(".venv/bin/python"));
    command
        .arg(path)
        .current_dir(dir)
        .env("PYTHONPATH", project().join("tests/support/sdk_redirect"))
        .env("PYTHONUNBUFFERED", "1")
        .env("OVSIM_API_URL", sim.running.api_url())
        .env("OVSIM_PASSWORD", &sim.running.users["admin@internal"])
        .env("OVSIM_CA", &sim.running.pki.ca_cert);
    command
}

/// Runs example `name` to its end (at most 60 s); its standard output, or a panic with both
/// outputs when it fails.
fn run(sim: &Sim, dir: &Path, name: &str) -> String {
    let out = tokio::task::block_in_place(|| {
        let mut limited = Command::new("timeout");
        let inner = command(sim, dir, name);
        limited
            .arg("60")
            .arg(inner.get_program())
            .args(inner.get_args());
        limited.current_dir(dir);
        for (key, value) in inner.get_envs() {
            if let Some(value) = value {
                limited.env(key, value);
            }
        }
        limited.output().expect("timeout runs python")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdks_vm_and_snapshot_examples_run_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let work = dir.path();
    let myvm = sim.vm("myvm").await["id"].as_str().expect("id").to_owned();

    assert_eq!(run(&sim, work, "test_connection.py"), "Connection works.\n");
    let listed = run(&sim, work, "list_vms.py");
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(listed.contains(&format!("myvm: {myvm}")), "{listed}");
    // `name=MYVM` with case_sensitive=False.
    assert_eq!(run(&sim, work, "search_vms.py"), format!("myvm: {myvm}\n"));
    // One VM per page (`search=page N`, `max=1`) until an empty page.
    assert_eq!(run(&sim, work, "page_vms.py"), "myvm\nweb\ndb\n");

    // A disk created through the VM's attachments, waited for until `ok`.
    run(&sim, work, "add_vm_disk.py");
    let disk = sim.disk_id("mydisk").await;
    let made = sim.get(&format!("/disks/{disk}")).await;
    let size = made["provisioned_size"].as_str();
    assert_eq!(
        (made["status"].as_str(), size),
        (Some("ok"), Some("10737418240"))
    );
    assert_eq!(
        (made["format"].as_str(), made["description"].as_str()),
        (Some("cow"), Some("My disk"))
    );
    let attached = sim
        .get(&format!("/vms/{myvm}/diskattachments/{disk}"))
        .await;
    let flags = (
        attached["interface"].as_str(),
        attached["active"].as_str(),
        attached["bootable"].as_str(),
    );
    assert_eq!(flags, (Some("virtio"), Some("true"), Some("false")));

    // The same attachment deactivated (PUT active=false), waited for until inactive.
    run(&sim, work, "deactivate_disk_attachment.py");
    let attached = sim
        .get(&format!("/vms/{myvm}/diskattachments/{disk}"))
        .await;
    assert_eq!(attached["active"], "false");

    run(&sim, work, "add_vm_snapshot.py");
    let snapshots = run(&sim, work, "list_vm_snapshots.py");
    assert!(
        snapshots.contains("myvm:Active VM:myvm_os:mydata\n")
            && snapshots.contains("myvm:My snapshot:myvm_os:mydata\n"),
        "{snapshots}"
    );
    sim.running.shutdown().await;
}

/// Whether `done` holds within 20 s (checked every 100 ms).
async fn eventually(done: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_events_follows_the_engines_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let vm = sim.vm("myvm").await;
    let snapshots = format!("{}/snapshots", vm["href"].as_str().expect("href"));
    let first = sim
        .post(&snapshots, json!({"description": "first"}), 201)
        .await;
    let first = first["href"].as_str().expect("href").to_owned();
    sim.wait_for(&first, "snapshot_status", "ok", &[]).await;

    // The example loops for ever: it reads the newest event, then every 5 s those after it.
    let output = dir.path().join("poll_events.out");
    let mut poller = command(&sim, dir.path(), "poll_events.py")
        .stdout(std::fs::File::create(&output).expect("output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("python runs");
    let index_file = dir.path().join("index.txt");
    let printed = |text: &str| {
        std::fs::read_to_string(&output)
            .unwrap_or_default()
            .contains(text)
    };
    let seen_first =
        eventually(|| index_file.exists() && printed("Snapshot 'first' creation for VM 'myvm'"))
            .await;
    sim.post(&snapshots, json!({"description": "second"}), 201)
        .await;
    let seen_second =
        eventually(|| printed("Snapshot 'second' creation for VM 'myvm' was initiated")).await;
    let _ = poller.kill();
    let _ = poller.wait();
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(seen_first && seen_second, "poll_events.py printed:\n{text}");
    // It stores the index of the last event it printed (events come newest first, as from
    // the engine, so that is the oldest of the last batch): one the engine still serves.
    let stored = std::fs::read_to_string(&index_file).expect("index.txt");
    let event = sim.get(&format!("/events/{}", stored.trim())).await;
    assert!(
        text.contains(event["description"].as_str().expect("description")),
        "{text}"
    );
    sim.running.shutdown().await;
}

/// `python EXAMPLE ARGS` of a `helpers.common` example (engine `-c engine` from
/// `HOME/.config/ovirt.conf`, written here for `sim`): exit code, standard output and error.
fn run_with_config(sim: &Sim, home: &Path, name: &str, args: &[&str]) -> (i32, String) {
    let config = home.join(".config/ovirt.conf");
    std::fs::create_dir_all(config.parent().expect("folder")).expect("config folder");
    let text = format!(
        "[engine]\nengine_url = {}\nusername = admin@internal\npassword = {}\ncafile = {}\n",
        sim.running.base_url(),
        sim.running.users["admin@internal"],
        sim.running.pki.ca_cert.display()
    );
    std::fs::write(&config, text).expect("ovirt.conf");
    let out = tokio::task::block_in_place(|| {
        Command::new("timeout")
            .arg("120")
            .arg(project().join(".venv/bin/python"))
            .arg(example(name))
            .args(["-c", "engine"])
            .args(args)
            .current_dir(home)
            .env("HOME", home)
            .output()
            .expect("python runs")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_vm_backs_up_and_reports_a_failed_backup_through_its_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let home = dir.path();
    let vm = sim.vm("myvm").await["id"].as_str().expect("id").to_owned();
    let backups = home.join("backups");
    std::fs::create_dir_all(&backups).expect("backup folder");
    let backup_dir = backups.to_str().expect("utf-8");
    let checkpoint = |log: &str| -> String {
        let at = log.find("Created checkpoint '").expect("a checkpoint") + 20;
        log[at..].split('\'').next().expect("quoted").to_owned()
    };

    let (code, full) = run_with_config(
        &sim,
        home,
        "backup_vm.py",
        &["full", &vm, "--backup-dir", backup_dir],
    );
    assert_eq!(code, 0, "{full}");
    assert!(full.contains("completed successfully"), "{full}");
    let first = checkpoint(&full);
    let incremental_from = |checkpoint: &str| {
        let args = [
            "incremental",
            &vm,
            "--backup-dir",
            backup_dir,
            "--from-checkpoint-uuid",
            checkpoint,
        ];
        run_with_config(&sim, home, "backup_vm.py", &args)
    };
    let (code, incremental) = incremental_from(&first);
    assert_eq!(code, 0, "{incremental}");
    let second = checkpoint(&incremental);

    // A lost bitmap: the engine fails the next incremental, and the example finds why in the
    // engine's events (searching them for the backup's id).
    let os = sim.disk_id("myvm_os").await;
    sim.admin("lose-bitmap", json!({"disk": os})).await;
    let (code, failed) = incremental_from(&second);
    assert_ne!(code, 0, "{failed}");
    assert!(
        failed.contains("has failed, last reported event: {'code': 10791")
            && failed.contains("Full backup is now needed"),
        "{failed}"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_transfer_frees_the_disk_with_nobody_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let vm = sim.vm("myvm").await;
    sim.post(
        &format!("{}/stop", vm["href"].as_str().expect("href")),
        json!({}),
        200,
    )
    .await;
    let os = sim.disk_id("myvm_os").await;
    let (transfer, _) = sim
        .transfer(json!({"disk": {"id": os}, "direction": "download"}))
        .await;
    let transfer_id = transfer.rsplit('/').next().expect("id").to_owned();
    let password = dir.path().join("password");
    std::fs::write(&password, &sim.running.users["admin@internal"]).expect("password file");
    let out = tokio::task::block_in_place(|| {
        Command::new(project().join(".venv/bin/python"))
            .arg(example("cancel_transfer.py"))
            .args([
                "--engine-url",
                &sim.running.base_url(),
                "--username",
                "admin@internal",
            ])
            .arg("--password-file")
            .arg(&password)
            .arg("--cafile")
            .arg(&sim.running.pki.ca_cert)
            .arg(&transfer_id)
            .current_dir(dir.path())
            .output()
            .expect("python runs")
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Transfer cancelled"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nobody polls the transfer: the engine ends it by itself and unlocks the disk.
    let disk = format!("/disks/{os}");
    sim.until(&disk, "the disk's unlock after the cancel", |d| {
        d["status"] == "ok"
    })
    .await;
    sim.running.shutdown().await;
}
