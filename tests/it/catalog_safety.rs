//! The catalog cannot be confused or escaped (issue 11, item 3), end to end: the real `ovrun`
//! against `ovsim`. Two VMs whose names `ovplan` accepts and the old folder naming mapped to
//! one folder get a folder each, and one's retention never touches the other's points; an
//! empty VM name is refused before anything is touched; links planted at every catalog path,
//! and manifests naming `../x` and `/x`, change no file outside the backup directory whatever
//! `backup`, `prune`, `verify` and the restore log do; under umask 022 the catalog is 0600 files
//! in 0700 folders; `verify` warns of leftovers and foreign files (exit 0) and the next backup
//! removes the leftovers alone.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

/// A runner config for `vm` backing up into `dir/backup`, written to `dir/<file>`, with
/// `retention` (the policy's section).
fn config_for(sim: &Sim, dir: &Path, vm: &str, file: &str, retention: Value) -> PathBuf {
    let written = runner_config(sim, dir, vm);
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&written).expect("config")).expect("JSON");
    config["retention"] = retention;
    let path = dir.join(file);
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

/// Keep one point a day: of two points of one day, the older goes.
fn keep_one() -> Value {
    json!({"keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0, "max_backup_age_days": 0})
}

/// `ovrun ARGS` in a blocking section; exit code and output.
fn run(args: &[&str]) -> (i32, String) {
    tokio::task::block_in_place(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
            .args(args)
            .output()
            .expect("ovrun runs");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// Every entry under `root` (links not followed): its SHA-256 (a file), its target (a link),
/// and its mode.
fn hashes(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("folder") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let what = if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&path).expect("link"))
            } else {
                let bytes = std::fs::read(&path).expect("file");
                format!("{:?}", Sha256::digest(&bytes).as_slice())
            };
            found.insert(path, format!("{what} {:o}", meta.permissions().mode()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn colliding_names_get_separate_folders_and_retention_keeps_to_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut seed = seed();
    for name in [".x", "_.x"] {
        seed["vms"].as_array_mut().expect("vms").push(json!({
            "name": name,
            "disks": [{"name": "os", "size_mib": 1,
                       "data": [{"offset_mib": 0, "length_mib": 1, "pattern": 7}]}]
        }));
    }
    let sim = Sim::start(&dir.path().join("prod"), seed).await;
    let underscore = config_for(&sim, dir.path(), "_.x", "underscore.json", keep_one());
    let dot = config_for(&sim, dir.path(), ".x", "dot.json", keep_one());
    backup_ok(&underscore, &["--full"]);
    backup_ok(&dot, &["--full"]);
    backup_ok(&dot, &["--full"]);

    let backup = dir.path().join("backup");
    let theirs = manifests(&backup.join("_.x"));
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(
        theirs[0]["vm"], "_.x",
        "the dot VM's retention left it alone"
    );
    let ours = manifests(&backup.join("%2Ex"));
    assert_eq!(
        ours.len(),
        1,
        "retention pruned the dot VM's older point: {ours:?}"
    );
    assert_eq!(ours[0]["vm"], ".x");
    let (code, log) = run(&["verify", "--config", utf8(&underscore)]);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("no damage found"), "{log}");

    // A folder recorded as another VM's is refused, naming both.
    std::fs::rename(backup.join("_.x"), backup.join("moved")).expect("rename");
    std::fs::rename(backup.join("%2Ex"), backup.join("_.x")).expect("rename");
    let (code, log) =
        tokio::task::block_in_place(|| ovrun(&["backup", "--config", utf8(&underscore), "--full"]));
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(r#"belongs to VM \".x\", not to \"_.x\""#)
            || log.contains(r#"belongs to VM ".x", not to "_.x""#),
        "{log}"
    );
    assert_eq!(manifests(&backup.join("_.x")).len(), 1, "nothing written");
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_or_unsafe_vm_name_is_refused_before_the_disk_is_touched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).expect("backup dir");
    std::fs::write(backup.join("checkpoints.json"), r#"{"web01": {}}"#).expect("checkpoints");
    std::fs::write(backup.join("notes.txt"), "mine").expect("notes");
    let before = hashes(dir.path());
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    for vm in ["", "a/b", "..", "a\nb"] {
        let config = config_for(&sim, dir.path(), vm, "bad.json", keep_one());
        for command in ["backup", "prune", "verify"] {
            let (code, log) = run(&[command, "--config", utf8(&config)]);
            assert_eq!(code, 2, "{command} {vm:?}: a configuration error: {log}");
            assert!(
                log.contains("cannot name a backup folder"),
                "{command}: {log}"
            );
        }
        let (code, log) = run(&["status", "--config", utf8(&config)]);
        assert_ne!(code, 0, "status {vm:?}: {log}");
    }
    let after: BTreeMap<_, _> = hashes(dir.path())
        .into_iter()
        .filter(|(path, _)| path.starts_with(&backup))
        .collect();
    let before: BTreeMap<_, _> = before
        .into_iter()
        .filter(|(path, _)| path.starts_with(&backup))
        .collect();
    assert_eq!(before, after, "the backup directory is as it was");
    sim.running.shutdown().await;
}

/// A point's manifest (as JSON) as of `point`, its files renamed to `file` and `blocks`.
fn forged(manifest: &Value, point: &str, file: &str, blocks: &str) -> Value {
    let mut forged = manifest.clone();
    forged["point"] = json!(point);
    forged["taken_at"] = json!("2020-01-01T00:00:00Z");
    for disk in forged["disks"].as_array_mut().expect("disks") {
        disk["file"] = json!(file);
        disk["content"]["blocks"] = json!(blocks);
    }
    forged
}

#[tokio::test(flavor = "multi_thread")]
async fn links_planted_at_every_catalog_path_change_nothing_outside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = config_for(&sim, dir.path(), "web 01", "web.json", keep_one());
    backup_ok(&config, &["--full"]);
    let backup = dir.path().join("backup");
    let vm_dir = backup.join("web 01");
    let point = manifests(&vm_dir)[0].clone();
    let id = point["point"].as_str().expect("point").to_owned();

    // Files outside the backup directory, each the target of a link or a forged name.
    let outside = dir.path().join("outside");
    let victims = outside.join("victims");
    std::fs::create_dir_all(&victims).expect("outside");
    let victim = |name: &str| {
        let path = victims.join(name);
        std::fs::write(&path, format!("precious {name}")).expect("victim");
        path
    };
    for later in ["lock", "status", "checkpoints.lock", "restore.jsonl"] {
        victim(later);
    }
    let os_sums = point["disks"][0]["content"]["blocks"]
        .as_str()
        .expect("sums")
        .to_owned();
    // A VM folder that is a link, holding what looks like a point and a leftover.
    let linked = outside.join("linked");
    std::fs::create_dir_all(&linked).expect("linked");
    std::fs::write(linked.join("20200101T000000Z.full.os.qcow2"), "leftover").expect("file");
    std::fs::write(linked.join("notes"), "mine").expect("file");
    let other_backup = dir.path().join("other-backup");
    std::fs::create_dir_all(&other_backup).expect("other");
    symlink(&linked, other_backup.join("web 01")).expect("link");
    let mut linked_config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("JSON");
    linked_config["backup_directory"] = json!(other_backup);
    linked_config["checkpoints_file"] = json!(other_backup.join("checkpoints.json"));
    let linked_config_path = dir.path().join("linked.json");
    std::fs::write(&linked_config_path, linked_config.to_string()).expect("config");

    // Links in the real VM folder: a manifest, a leftover-named image, a point's block sums,
    // and the checkpoints file beside it.
    symlink(
        victim("manifest.json"),
        vm_dir.join("20200102T000000Z.full.manifest.json"),
    )
    .expect("link");
    symlink(
        victim("image.qcow2"),
        vm_dir.join("20200103T000000Z.full.web01_os.qcow2"),
    )
    .expect("link");
    std::fs::remove_file(vm_dir.join(&os_sums)).expect("sums");
    symlink(victim("sums"), vm_dir.join(&os_sums)).expect("link");
    std::fs::remove_file(backup.join("checkpoints.json")).expect("checkpoints");
    symlink(victim("checkpoints.json"), backup.join("checkpoints.json")).expect("link");
    // Manifests naming ../x and /x, old enough for retention to delete them.
    victim("x");
    let absolute = victim("abs");
    for (point_id, file, blocks) in [
        ("20200104T000000Z", "../../outside/victims/x", "../x.sums"),
        ("20200105T000000Z", utf8(&absolute), "/x.sums"),
    ] {
        let forged = forged(&point, point_id, file, blocks);
        std::fs::write(
            vm_dir.join(format!("{point_id}.full.manifest.json")),
            forged.to_string(),
        )
        .expect("forged manifest");
    }
    let before = hashes(&outside);

    let config_text = utf8(&config).to_owned();
    let linked_text = utf8(&linked_config_path).to_owned();
    // The VM folder that is a link: refused by every command.
    for command in ["backup", "prune", "verify"] {
        let (code, log) = run(&[command, "--config", &linked_text]);
        assert_ne!(code, 0, "{command} through a linked VM folder: {log}");
        assert!(log.contains("symbolic link"), "{command}: {log}");
    }
    // The real folder: backups refuse the linked image, prune and verify go on.
    let (code, log) = run(&["backup", "--config", &config_text, "--full"]);
    assert_ne!(code, 0, "a linked image in the folder: {log}");
    assert!(log.contains("symbolic link"), "{log}");
    let merged = outside.join("merged.qcow2");
    let (code, log) = run(&[
        "merge",
        "--config",
        &config_text,
        "--point",
        &id,
        "--disk",
        "web01_os",
        "--out",
        utf8(&merged),
    ]);
    assert_ne!(code, 0, "merge beside a linked image: {log}");
    assert!(log.contains("symbolic link"), "{log}");
    let (code, log) = run(&["prune", "--config", &config_text]);
    assert_eq!(code, 0, "{log}");
    let (code, log) = run(&["verify", "--config", &config_text]);
    assert_eq!(code, 1, "{log}");
    for named in [
        "20200102T000000Z.full.manifest.json",
        "20200103T000000Z.full.web01_os.qcow2",
        "20200104T000000Z.full.manifest.json",
        "20200105T000000Z.full.manifest.json",
        os_sums.as_str(),
    ] {
        assert!(log.contains(named), "verify names {named}:\n{log}");
    }
    assert!(log.contains("../../outside/victims/x"), "{log}");

    // The linked image gone, the backup runs: the checkpoints file (a link) is refused.
    std::fs::remove_file(vm_dir.join("20200103T000000Z.full.web01_os.qcow2")).expect("rm");
    let (_, log) = run(&["backup", "--config", &config_text, "--full"]);
    assert!(log.contains("symbolic link"), "the checkpoints link: {log}");
    // The lock and the run status as links.
    std::fs::remove_file(vm_dir.join(".lock")).expect("lock");
    symlink(victims.join("lock"), vm_dir.join(".lock")).expect("link");
    let (code, log) = run(&["backup", "--config", &config_text, "--full"]);
    assert_ne!(code, 0, "a linked lock: {log}");
    assert!(log.contains("symbolic link"), "{log}");
    std::fs::remove_file(vm_dir.join(".lock")).expect("lock");
    std::fs::remove_file(vm_dir.join(".status.json")).expect("status");
    symlink(victims.join("status"), vm_dir.join(".status.json")).expect("link");
    std::fs::remove_file(backup.join("checkpoints.json")).expect("link");
    std::fs::remove_file(backup.join("checkpoints.lock")).ok();
    symlink(
        victims.join("checkpoints.lock"),
        backup.join("checkpoints.lock"),
    )
    .expect("link");
    let (_, log) = run(&["backup", "--config", &config_text, "--full"]);
    assert!(log.contains("checkpoints.lock"), "{log}");
    std::fs::remove_file(backup.join("checkpoints.lock")).expect("link");
    backup_ok(&config, &["--full"]);
    let (code, log) = run(&["prune", "--config", &config_text]);
    assert_eq!(code, 0, "{log}");
    let catalog = ovbackup::run::catalog::Catalog::open(&backup, "web 01").expect("catalog");
    let left = catalog.points().expect("points");
    assert_eq!(left.len(), 1, "retention ran: {log}");
    assert_ne!(left[0].point, id, "retention deleted the first point");

    // The restore log as a link: neither read nor written through.
    let logs = dir.path().join("restore_logs");
    std::fs::create_dir_all(&logs).expect("logs");
    symlink(victims.join("restore.jsonl"), logs.join("web_01.jsonl")).expect("link");
    let log = ovbackup::run::restore::RestoreLog::new(&logs, "web 01");
    assert!(log.entries().is_empty());
    let entry: ovbackup::run::restore::LogEntry = serde_json::from_value(json!({
        "started": "2026-01-01T00:00:00Z", "seconds": 1.0, "vm": "web 01", "point": id,
        "taken_at": "2026-01-01T00:00:00Z", "restored_as": "web_dr", "result": "ok",
        "disks": [], "bytes": 0, "started_vm": false
    }))
    .expect("entry");
    assert!(
        log.append(&entry).is_err(),
        "a linked restore log is refused"
    );

    assert_eq!(before, hashes(&outside), "nothing outside changed");
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_umask_022_the_catalog_is_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = config_for(&sim, dir.path(), "web 01", "web.json", keep_one());
    for extra in [&["--full"][..], &[][..]] {
        let out = tokio::task::block_in_place(|| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_ovrun"));
            command
                .args(["backup", "--config", utf8(&config)])
                .args(extra);
            // SAFETY: umask is async-signal-safe; the child sets it before exec.
            #[expect(unsafe_code, reason = "the child's umask is set between fork and exec")]
            unsafe {
                command.pre_exec(|| {
                    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
                    Ok(())
                });
            }
            command.output().expect("ovrun runs")
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let backup = dir.path().join("backup");
    let mut modes = hashes(&backup);
    modes.insert(backup.clone(), format!("dir {:o}", mode(&backup)));
    let mut kinds = Vec::new();
    for (path, what) in &modes {
        let expected = if what.starts_with("dir") {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode(path), expected, "{}", path.display());
        kinds.push(path.extension().map(|e| e.to_string_lossy().into_owned()));
    }
    for extension in ["qcow2", "sums", "json", "lock"] {
        assert!(
            kinds.iter().any(|k| k.as_deref() == Some(extension)),
            "{extension} files checked: {modes:?}"
        );
    }
    sim.running.shutdown().await;
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_warns_of_leftovers_and_foreign_files_and_the_next_backup_removes_leftovers_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = config_for(&sim, dir.path(), "web 01", "web.json", keep_one());
    backup_ok(&config, &["--full"]);
    let vm_dir = dir.path().join("backup/web 01");
    let leftovers = [
        "20300101T000000Z.full.web01_os.qcow2",
        "20300101T000000Z.full.web01_os.sums",
        ".tmp-123-abc",
    ];
    let foreign = ["notes.txt", ".hidden", "20300101T000000Z.weekly.os.qcow2"];
    for name in leftovers.iter().chain(&foreign) {
        std::fs::write(vm_dir.join(name), "x").expect("file");
    }
    let (code, log) = run(&["verify", "--config", utf8(&config)]);
    assert_eq!(code, 0, "leftovers are no damage:\n{log}");
    assert!(log.contains("no damage found, 6 warnings"), "{log}");
    for name in leftovers {
        assert!(
            log.contains(&format!(
                "warning: file {name}: leftover of an unfinished run; the next backup removes it"
            )),
            "{log}"
        );
    }
    for name in foreign {
        assert!(
            log.contains(&format!(
                "warning: file {name}: not a file of the catalog: ovrun neither reads nor removes it"
            )),
            "{log}"
        );
    }
    backup_ok(&config, &["--full"]);
    for name in leftovers {
        assert!(!vm_dir.join(name).exists(), "{name} removed");
    }
    for name in foreign {
        assert!(vm_dir.join(name).exists(), "{name} kept");
    }
    sim.running.shutdown().await;
}

#[test]
fn qemu_nbd_keeps_its_socket_and_log_in_a_private_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    // Another user's link at the old fixed log name, pointing where a file would be created.
    let planted = dir.path().join("outside-created");
    symlink(&planted, run_dir.join("qemu-nbd.log")).expect("link");
    let image = dir.path().join("disk.qcow2");
    ovbackup::run::local::create(&image, 1 << 20, None).expect("qemu-img create");
    let writer = ovbackup::run::local::Writer::open(&image, &run_dir).expect("qemu-nbd");
    writer
        .connect()
        .expect("connect")
        .write_at(0, &[7u8; 4096])
        .expect("write");
    writer.close().expect("close");
    assert!(!planted.exists(), "nothing was created through the link");
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .expect("run dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        ["qemu-nbd.log"],
        "the private folder is gone, the link untouched"
    );
}
