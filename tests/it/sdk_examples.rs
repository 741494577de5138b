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
//! polled it. `list_disk_snapshots.py`, `download_disk_snapshot.py` and `vm_backup.py` need
//! snapshot volumes, applications' events, a VM's OVF and a disk attached to another VM as it
//! was at a snapshot; `download_vm_ovf.py`, `add_vm_nic.py` and `list_cluster_networks.py` a
//! VM's configuration in its OVF, NICs, networks and vNIC profiles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::engine::{MIB, Sim, same_content, sh, url_escape};

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
    script_command(sim, dir, &path)
}

/// `python SCRIPT` in `dir`, its connection pointed at `sim`.
fn script_command(sim: &Sim, dir: &Path, script: &Path) -> Command {
    let mut command = Command::new(project().join(".venv/bin/python"));
    command
        .arg(script)
        .current_dir(dir)
        .env("PYTHONPATH", project().join("tests/support/sdk_redirect"))
        .env("PYTHONUNBUFFERED", "1")
        .env("OVSIM_API_URL", sim.running.api_url())
        .env("OVSIM_PASSWORD", &sim.running.users["admin@internal"])
        .env("OVSIM_CA", &sim.running.pki.ca_cert);
    command
}

/// Runs `script` to its end (at most 60 s), whatever its exit.
fn output(sim: &Sim, dir: &Path, script: &Path) -> Output {
    tokio::task::block_in_place(|| {
        let mut limited = Command::new("timeout");
        let inner = script_command(sim, dir, script);
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
    })
}

/// Runs example `name` to its end (at most 60 s); its standard output, or a panic with both
/// outputs when it fails.
fn run(sim: &Sim, dir: &Path, name: &str) -> String {
    let path = example(name);
    assert!(path.exists(), "{}: run scripts/setup.sh", path.display());
    succeeded(name, &output(sim, dir, &path))
}

/// The standard output of a run that must have succeeded.
fn succeeded(name: &str, out: &Output) -> String {
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

/// The id of VM `vm`'s snapshot described `description`, once it is `ok`.
async fn snapshot_done(sim: &Sim, vm: &str, description: &str) -> String {
    let listed = sim.get(&format!("/vms/{vm}/snapshots")).await;
    let found = listed["snapshot"].as_array().and_then(|all| {
        all.iter()
            .find(|s| s["description"] == description)
            .and_then(|s| s["id"].as_str())
    });
    let id = found.expect("the snapshot").to_owned();
    sim.wait_for(
        &format!("/vms/{vm}/snapshots/{id}"),
        "snapshot_status",
        "ok",
        &[],
    )
    .await;
    id
}

/// The ranges (offset, length) that `image` itself holds data for (depth 0 of its chain).
fn own_data(image: &Path) -> Vec<(u64, u64)> {
    let map = sh(
        "qemu-img",
        &["map", "--output=json", image.to_str().expect("utf-8")],
    );
    let map: Vec<serde_json::Value> = serde_json::from_str(&map).expect("qemu-img map JSON");
    map.iter()
        .filter(|e| e["depth"] == 0 && e["data"] == true)
        .map(|e| {
            (
                e["start"].as_u64().unwrap_or(0),
                e["length"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_disk_snapshot_examples_list_the_chain_and_download_it_whole_or_a_layer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let home = dir.path();
    let vm = sim.vm("myvm").await["id"].as_str().expect("id").to_owned();
    let os = sim.disk_id("myvm_os").await;
    let write = |offset_mib: u64, pattern: u8| json!({"disk": os, "offset": offset_mib * MIB, "length": MIB, "pattern": pattern});

    // Two snapshots, the guest writing 1 MiB after each: the seed's data, then 2 MiB in, then
    // 4 MiB in (on the active volume only).
    run(&sim, home, "add_vm_snapshot.py");
    let first = snapshot_done(&sim, &vm, "My snapshot").await;
    sim.admin("guest-write", write(2, 9)).await;
    let snapshots = format!("/vms/{vm}/snapshots");
    sim.post(&snapshots, json!({"description": "second"}), 201)
        .await;
    let second = snapshot_done(&sim, &vm, "second").await;
    sim.admin("guest-write", write(4, 10)).await;

    // The chain, bottom up, linked by parent: the two layers (each the volume a transfer of
    // the snapshot's disk names), then the active volume.
    let (code, listed) = run_with_config(&sim, home, "list_disk_snapshots.py", &[&os]);
    assert_eq!(code, 0, "{listed}");
    let chain: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("a JSON chain");
    let ids: Vec<&str> = chain.iter().filter_map(|v| v["id"].as_str()).collect();
    let parents: Vec<Option<&str>> = chain.iter().map(|v| v["parent"].as_str()).collect();
    assert_eq!(ids.len(), 3, "{listed}");
    assert_eq!(parents, [None, Some(ids[0]), Some(ids[1])], "{listed}");
    assert!(
        chain
            .iter()
            .all(|v| v["status"] == "ok" && v["format"] == "cow")
    );
    for (snapshot, volume) in [(&first, ids[0]), (&second, ids[1])] {
        let disks = sim.get(&format!("{snapshots}/{snapshot}/disks")).await;
        assert_eq!(disks["disk"][0]["image_id"], volume, "{snapshot}");
    }

    // The first snapshot's disk, whole: the disk as it was then, not as it is now.
    let download = |volume: &str, file: &str, backing: Option<&str>| {
        let mut args = vec!["mydata", volume, file];
        args.extend(backing.map(|b| ["--backing-file", b]).into_iter().flatten());
        let (code, text) = run_with_config(&sim, home, "download_disk_snapshot.py", &args);
        assert!(code == 0 && text.contains("Download completed"), "{text}");
        home.join(file)
    };
    let whole = download(ids[0], "first.qcow2", None);
    assert!(same_content(&whole, &sim.layer_file(&os, &first)));
    assert!(!same_content(&whole, &sim.disk_file(&os)));

    // The second snapshot's layer alone (shallow), on the first download: it holds only what
    // the guest wrote between the snapshots, and over its backing file it is the disk at the
    // second snapshot.
    let layer = download(ids[1], "second.qcow2", Some("first.qcow2"));
    let info = sh(
        "qemu-img",
        &["info", "--output=json", layer.to_str().expect("utf-8")],
    );
    let info: serde_json::Value = serde_json::from_str(&info).expect("qemu-img info JSON");
    assert_eq!(info["backing-filename"], "first.qcow2");
    assert_eq!(own_data(&layer), [(2 * MIB, MIB)]);
    assert!(same_content(&layer, &sim.layer_file(&os, &second)));
    assert!(!same_content(&layer, &sim.disk_file(&os)));
    sim.running.shutdown().await;
}

/// The seed with the backup appliance `vm_backup.py` attaches disks to: `myagent`, up, with a
/// disk of its own.
fn seed_with_agent() -> serde_json::Value {
    let mut seed = seed();
    let agent = json!({"name": "myagent", "disks": [{"name": "myagent_os", "size_mib": 16}]});
    seed["vms"].as_array_mut().expect("VMs").push(agent);
    seed
}

/// The descriptions of the events `search` finds, newest first.
async fn event_descriptions(sim: &Sim, search: &str) -> Vec<String> {
    let events = sim
        .get(&format!("/events?search={}", url_escape(search)))
        .await;
    let events = events["event"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter_map(|e| e["description"].as_str().map(str::to_owned))
        .collect()
}

/// `vm_backup.py`, an application's backup through a snapshot that a backup appliance reads:
/// events that mark its start and end, the VM's OVF (`all_content`), the snapshot's disks
/// attached to the appliance (`myagent`) and detached again, the snapshot removed.
///
/// On Python 3 the example cannot finish unchanged against any engine: it writes
/// `ovf_data.encode('utf-8')` (bytes) into a file opened with 'w' (text), a TypeError. So it
/// runs twice: unchanged, it must stop exactly there, every API call before that line
/// answered; then a copy with only that line fixed (the file opened with 'wb') must run the
/// whole flow.
#[tokio::test(flavor = "multi_thread")]
async fn vm_backup_reads_a_snapshot_through_the_backup_appliance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed_with_agent()).await;
    let work = dir.path();
    let myvm = sim.vm("myvm").await["id"].as_str().expect("id").to_owned();
    let agent = sim.vm("myagent").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ovf_file = work.join(format!("myvm-{myvm}.ovf"));

    let unchanged = output(&sim, work, &example("vm_backup.py"));
    let stderr = String::from_utf8_lossy(&unchanged.stderr);
    assert!(
        !unchanged.status.success()
            && stderr.contains("    ovs_fd.write(ovf_data.encode('utf-8'))\n")
            && stderr
                .trim_end()
                .ends_with("TypeError: write() argument must be str, not bytes"),
        "{stderr}"
    );
    // Before that line: the VMs found, the starting event added, the OVF read (the file is
    // opened, nothing written); no snapshot yet.
    let started = event_descriptions(&sim, "origin=mybackup").await;
    assert!(
        started.len() == 1 && started[0].ends_with("is starting."),
        "{started:?}"
    );
    assert_eq!(std::fs::read(&ovf_file).expect("the OVF file").len(), 0);
    let snapshots = format!("/vms/{myvm}/snapshots");
    let only_active =
        |s: &serde_json::Value| s["snapshot"].as_array().is_some_and(|a| a.len() == 1);
    assert!(only_active(&sim.get(&snapshots).await));

    // Its events' custom ids are the time in seconds, as in the first run: the engine refuses
    // an origin's custom id twice, so the copy starts in a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = std::fs::read_to_string(example("vm_backup.py")).expect("the example");
    let broken = "with open(ovf_file, 'w') as ovs_fd:";
    assert_eq!(text.matches(broken).count(), 1);
    let fixed = work.join("vm_backup_wb.py");
    let text = text.replace(broken, "with open(ovf_file, 'wb') as ovs_fd:");
    std::fs::write(&fixed, text).expect("the fixed copy");
    succeeded("vm_backup.py with 'wb'", &output(&sim, work, &fixed));

    assert_vm_ovf(&std::fs::read_to_string(&ovf_file).expect("the OVF"), &myvm);
    // The same OVF in JSON, only with all_content.
    let listed = sim.get("/vms?search=name%3Dmyvm&all_content=true").await;
    let configuration = &listed["vm"][0]["initialization"]["configuration"];
    assert_eq!(configuration["type"], "ovf");
    assert_vm_ovf(configuration["data"].as_str().expect("data"), &myvm);
    assert!(sim.get(&format!("/vms/{myvm}")).await["initialization"].is_null());
    let ended = event_descriptions(&sim, "origin=mybackup").await;
    assert!(
        ended.len() == 3
            && ended[0].ends_with("is completed.")
            && ended[1].ends_with("is starting."),
        "{ended:?}"
    );
    // The snapshot's disk was attached to the appliance, then detached; the snapshot removed
    // (merged in the background), the disk still the VM's own, the appliance as it was.
    let attached = event_descriptions(&sim, "type=2016").await;
    let detached = event_descriptions(&sim, "type=2018").await;
    assert_eq!(
        (attached, detached),
        (
            vec![
                "Disk myvm_os was successfully attached to VM myagent by admin@internal."
                    .to_owned()
            ],
            vec![
                "Disk myvm_os was successfully detached from VM myagent by admin@internal."
                    .to_owned()
            ]
        )
    );
    sim.until(&snapshots, "the snapshot's removal", only_active)
        .await;
    let aliases = |vm: &str| format!("/vms/{vm}/diskattachments");
    let own = sim.get(&aliases(&myvm)).await["disk_attachment"].clone();
    let appliance = sim.get(&aliases(&agent)).await["disk_attachment"].clone();
    let os = sim.disk_id("myvm_os").await;
    let agent_os = sim.disk_id("myagent_os").await;
    assert_eq!(
        (own[0]["id"].as_str(), own.as_array().map(Vec::len)),
        (Some(os.as_str()), Some(1))
    );
    assert_eq!(
        (
            appliance[0]["id"].as_str(),
            appliance.as_array().map(Vec::len)
        ),
        (Some(agent_os.as_str()), Some(1))
    );
    sim.until(&format!("/disks/{os}"), "the disk's unlock", |d| {
        d["status"] == "ok"
    })
    .await;
    sim.running.shutdown().await;
}

/// `ovf` is the engine's OVF of `myvm` (id `id`): an `ovf:Envelope` naming the VM, its
/// memory and its disk.
fn assert_vm_ovf(ovf: &str, id: &str) {
    let envelope = ovbackup::sim::body::xml_to_json(ovf).expect("well-formed XML");
    assert!(ovf.contains("<ovf:Envelope "), "{ovf}");
    let content = &envelope["Content"];
    assert_eq!(content["Name"], "myvm", "{ovf}");
    assert_eq!(content["Section"][0]["ovf:id"], id, "{ovf}");
    let items = &content["Section"][1]["Item"];
    assert_eq!(items[1]["rasd:VirtualQuantity"], "1024", "{ovf}");
    assert_eq!(items[2]["rasd:Caption"], "myvm_os", "{ovf}");
    assert_eq!(
        envelope["Section"]["Disk"]["ovf:disk-alias"], "myvm_os",
        "{ovf}"
    );
}

/// `myvm` configured (2 sockets x 2 cores, UEFI, RHEL 9, HA) in `mycluster`, with a NIC on
/// `mynetwork`: what the configuration and network examples look for by name.
fn configured_seed() -> serde_json::Value {
    json!({
        "clusters": [{"name": "mycluster"}],
        "storage_domains": [{"name": "mydata"}],
        "networks": [{"name": "mynetwork"}],
        "vms": [{
            "name": "myvm", "status": "down", "memory_mib": 1024,
            "cpu": {"sockets": 2, "cores": 2, "threads": 1}, "bios_type": "q35_ovmf",
            "os_type": "rhel_9x64", "high_availability": {"enabled": true, "priority": 50},
            "nics": [{"name": "nic1", "vnic_profile": "mynetwork", "mac": "56:6f:00:00:00:01"}],
            "disks": [{"name": "myvm_os", "size_mib": 16}]
        }]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vm_configuration_and_network_examples_run_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), configured_seed()).await;
    let work = dir.path();
    let myvm = sim.vm("myvm").await["id"].as_str().expect("id").to_owned();

    run(&sim, work, "download_vm_ovf.py");
    let ovf = std::fs::read_to_string(work.join(format!("{myvm}.ovf"))).expect("the OVF");
    assert_vm_ovf(&ovf, &myvm);
    let envelope = ovbackup::sim::body::xml_to_json(&ovf).expect("well-formed XML");
    let content = &envelope["Content"];
    assert_eq!(
        (
            &content["BiosType"],
            &content["AutoStartup"],
            &content["Priority"]
        ),
        (&json!("2"), &json!("true"), &json!("50")),
        "UEFI on Q35 and HA, in the engine's OVF numbers: {ovf}"
    );
    assert_eq!(content["Section"][0]["Description"], "rhel_9x64", "{ovf}");
    let items = &content["Section"][1]["Item"];
    assert_eq!(
        (
            &items[0]["rasd:num_of_sockets"],
            &items[0]["rasd:VirtualQuantity"]
        ),
        (&json!("2"), &json!("4")),
        "{ovf}"
    );
    let nic = &items[3];
    assert_eq!(
        (
            &nic["rasd:Connection"],
            &nic["rasd:MACAddress"],
            &nic["rasd:Name"]
        ),
        (
            &json!("mynetwork"),
            &json!("56:6f:00:00:00:01"),
            &json!("nic1")
        ),
        "{ovf}"
    );

    // `mynic` on the profile named as the network, found through the VM's data center.
    run(&sim, work, "add_vm_nic.py");
    let nics = sim.get(&format!("/vms/{myvm}/nics")).await;
    let added = (nics["nic"].as_array().expect("nics").iter())
        .find(|n| n["name"] == "mynic")
        .expect("the example's NIC")
        .clone();
    let profile = sim
        .get(added["vnic_profile"]["href"].as_str().expect("its profile"))
        .await;
    assert_eq!(profile["name"], "mynetwork");

    let listed = run(&sim, work, "list_cluster_networks.py");
    for line in [
        "name: ovirtmgmt",
        "name: mynetwork",
        "required: True",
        "mtu: 0",
    ] {
        assert!(listed.contains(line), "{line}: {listed}");
    }
    sim.running.shutdown().await;
}
