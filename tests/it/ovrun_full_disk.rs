//! `ovrun backup` on a full disk, for real: the backup directory is a small tmpfs, filled with
//! a filler file so that its free space ends exactly at one step of the run (the image, the
//! block digests, the manifest, the run status, the checkpoints file). The sizes come from a
//! first run on the same tmpfs (tmpfs counts whole pages). Each step that fails leaves no file
//! of the point and a failure that `ovrun status` and the metrics show; the checkpoints file is
//! an export, so a full disk there (or a read-only one) is a warning and the point counts.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::engine::Sim;
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};
use crate::support::tmpfs::Tmpfs;

/// The steps of a backup that write to the backup directory, in the order they write.
const STEPS: [&str; 5] = ["image", "sums", "manifest", "status", "checkpoints"];

/// Which step wrote a file of the catalog (by its name).
fn step_of(name: &str) -> &'static str {
    match name {
        ".status.json" => "status",
        n if n.starts_with("checkpoints.") => "checkpoints",
        n if n.ends_with(".qcow2") => "image",
        n if n.ends_with(".sums") => "sums",
        n if n.ends_with(".manifest.json") => "manifest",
        _ => "other",
    }
}

/// Bytes each step's files take on the tmpfs (whole pages), after a run that wrote them all.
fn bytes_per_step(root: &Path) -> BTreeMap<&'static str, u64> {
    let mut sizes = BTreeMap::new();
    let mut add = |path: &Path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = std::fs::metadata(path).expect("metadata").blocks() * 512;
        *sizes.entry(step_of(name)).or_default() += bytes;
    };
    for entry in walk(root) {
        add(&entry);
    }
    sizes
}

/// The files under a folder, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A VM with one 16 MiB disk (4 MiB of data): one image, one digest file.
fn small_seed() -> Value {
    json!({
        "storage_domains": [{"name": "data"}],
        "vms": [{"name": "small01", "disks": [
            {"name": "small", "size_mib": 16, "data": [{"offset_mib": 0, "length_mib": 4, "pattern": 9}]}
        ]}]
    })
}

/// `ovrun status --format json --metrics FILE`: its standard output and the metrics.
fn status_and_metrics(config: &Path, dir: &Path) -> (String, String) {
    let metrics = dir.join("metrics.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(["status", "--format", "json", "--config"])
        .arg(config)
        .arg("--metrics")
        .arg(&metrics)
        .output()
        .expect("ovrun status");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        std::fs::read_to_string(&metrics).expect("metrics"),
    )
}

/// The names in the VM's folder that belong to a point (not the lock, the status or the owner record).
fn point_files(vm_dir: &Path) -> Vec<String> {
    std::fs::read_dir(vm_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                // The catalog's own dotfiles (lock, status, owner, open transfers, history)
                // are not a point's.
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_at_each_step_leaves_no_point_files_and_a_recorded_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), small_seed()).await;
    let config = runner_config(&sim, dir.path(), "small01");
    let tmpfs = Tmpfs::mount(&dir.path().join("backup"), "64m");
    let vm_dir = tmpfs.path.join("small01");

    backup_ok(&config, &["--full"]);
    let sizes = bytes_per_step(&tmpfs.path);
    for step in STEPS {
        assert!(sizes[step] > 0, "{step} wrote a file: {sizes:?}");
    }
    for (index, step) in STEPS.iter().enumerate() {
        tmpfs.clear();
        let before: u64 = STEPS[..index].iter().map(|s| sizes[s]).sum();
        // The image step: half of the image fits (its removal then frees the space for the
        // status); every other step: exactly what the steps before it wrote.
        let keep = match *step {
            "image" => sizes["image"] / 2 / 4096 * 4096,
            _ => before + sizes.get("other").copied().unwrap_or(0),
        };
        let filler = tmpfs.fill_leaving(keep);
        let args = [
            "backup",
            "--config",
            config.to_str().expect("utf-8"),
            "--full",
        ];
        let (code, log) = tokio::task::block_in_place(|| ovrun(&args));
        std::fs::remove_file(filler).expect("filler");
        let (status, metrics) = status_and_metrics(&config, dir.path());
        let says = match *step {
            "image" => "No space left on device in the backup directory",
            "sums" => ".sums: No space left on device",
            "manifest" => ".manifest.json: No space left on device",
            "status" => ".status.json: No space left on device",
            _ => "the checkpoints file",
        };
        assert!(
            log.contains(says),
            "full at the {step}, and it says so:\n{log}"
        );
        if *step == "checkpoints" {
            assert_eq!(code, 0, "the checkpoints file is an export:\n{log}");
            assert!(log.contains("checkpoints file"), "{log}");
            assert!(log.contains("No space left on device"), "{log}");
            assert_eq!(manifests(&vm_dir).len(), 1, "the point counts");
            assert!(
                metrics.contains("ovbackup_last_run_failed{vm=\"small01\"} 0"),
                "{metrics}"
            );
            continue;
        }
        assert_eq!(code, 1, "full at the {step}:\n{log}");
        assert!(log.contains("No space left on device"), "{step}:\n{log}");
        assert_eq!(
            point_files(&vm_dir),
            Vec::<String>::new(),
            "full at the {step}: no file of the point is left"
        );
        assert!(
            status.contains("No space left on device"),
            "{step}: {status}"
        );
        assert!(
            metrics.contains("ovbackup_last_run_failed{vm=\"small01\"} 1"),
            "{step}: {metrics}"
        );
    }
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_checkpoints_file_is_a_warning_and_the_point_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), small_seed()).await;
    let config = runner_config(&sim, dir.path(), "small01");
    let exported = Tmpfs::mount(&dir.path().join("exported"), "1m");
    std::fs::write(exported.path.join("checkpoints.json"), "{}\n").expect("checkpoints");
    exported.read_only();
    let mut runner: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("JSON");
    runner["checkpoints_file"] = json!(exported.path.join("checkpoints.json"));
    std::fs::write(&config, runner.to_string()).expect("config");

    for kinds in [1, 2] {
        let log = backup_ok(&config, &[]);
        assert!(
            log.contains("the checkpoints file") && log.contains("Read-only file system"),
            "a warning that names the file and why:\n{log}"
        );
        assert_eq!(manifests(&dir.path().join("backup/small01")).len(), kinds);
    }
    let (status, metrics) = status_and_metrics(&config, dir.path());
    assert!(
        metrics.contains("ovbackup_last_run_failed{vm=\"small01\"} 0"),
        "{status}\n{metrics}"
    );
    assert_eq!(
        std::fs::read_to_string(exported.path.join("checkpoints.json")).expect("checkpoints"),
        "{}\n"
    );
    sim.running.shutdown().await;
}
