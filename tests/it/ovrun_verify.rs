//! `ovrun verify`'s library on a real catalog: a full and an incremental of `web 01` taken by
//! `ovrun backup` against `ovsim` verify clean; copies of that catalog, each damaged one way,
//! report that damage, naming the file.

use std::path::{Path, PathBuf};

use ovbackup::run::catalog::Catalog;
use ovbackup::run::verify::{Problem, Report, verify};
use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, seed, sh};
use crate::support::ovrun::{backup_ok, manifests, runner_config};

/// The file of disk `alias` in a manifest.
fn file_of(manifest: &Value, alias: &str) -> String {
    manifest["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["alias"] == alias)
        .and_then(|d| d["file"].as_str())
        .expect("the disk is in the point")
        .to_owned()
}

/// A copy of the VM folder `vm_dir` in a new backup directory `dir/name`, same file names; its
/// catalog.
fn damaged_copy(vm_dir: &Path, dir: &Path, name: &str) -> Catalog {
    let backup_dir = dir.join(name);
    let catalog = Catalog::open(&backup_dir, "web 01").expect("catalog");
    for entry in std::fs::read_dir(vm_dir).expect("VM folder") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, catalog.dir().join(path.file_name().expect("name")))
                .expect("copy");
        }
    }
    catalog
}

/// `verify` in a blocking section.
fn verified(catalog: &Catalog) -> Report {
    tokio::task::block_in_place(|| verify(catalog)).expect("verification runs")
}

/// The problems about `file` (whatever their point).
fn about<'r>(report: &'r Report, file: &str) -> Vec<&'r Problem> {
    report
        .problems
        .iter()
        .filter(|p| p.file.as_deref() == Some(file))
        .collect()
}

/// Asserts one problem about `file` says `text`, and that its line names the file.
fn assert_reported(report: &Report, file: &str, text: &str) {
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(
        about(report, file).iter().any(|p| {
            let line = p.to_string();
            line.contains(text) && line.contains(file)
        }),
        "expected a problem about {file} saying {text:?}; got:\n{}",
        lines.join("\n")
    );
}

/// Asserts one warning about `file` says `text`.
fn assert_warned(report: &Report, file: &str, text: &str) {
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.file.as_deref() == Some(file) && w.to_string().contains(text)),
        "expected a warning about {file} saying {text:?}; got:\n{report}"
    );
}

/// The host offset of a data cluster in the middle of a qcow2 file's data area.
fn data_offset(path: &Path) -> u64 {
    let spec = json!({"file": {"driver": "file", "filename": path}, "backing": null});
    let map = sh(
        "qemu-img",
        &[
            "map",
            "-f",
            "qcow2",
            "--output=json",
            &format!("json:{spec}"),
        ],
    );
    let extents: Vec<Value> = serde_json::from_str(&map).expect("map JSON");
    let data = extents
        .iter()
        .find(|e| e["data"] == true && e["offset"].is_u64())
        .expect("a data extent");
    data["offset"].as_u64().expect("offset") + data["length"].as_u64().expect("length") / 2
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.write_all(&[byte[0] ^ 0xff]).expect("write");
}

/// A full and an incremental of `web 01` (a guest write in between); the VM folder and the two
/// manifests.
async fn two_points(sim: &Sim, dir: &Path) -> (PathBuf, Vec<Value>) {
    let config = runner_config(sim, dir, "web 01");
    backup_ok(&config, &[]);
    let os = sim.disk_id("web01_os").await;
    sim.admin(
        "guest-write",
        json!({"disk": os, "offset": 8 * MIB, "length": MIB, "pattern": 0x22}),
    )
    .await;
    backup_ok(&config, &[]);
    let vm_dir = dir.join("backup/web 01");
    let points = manifests(&vm_dir);
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["full", "incremental"]);
    (vm_dir, points)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sound_catalog_is_clean_and_each_damage_is_reported_with_its_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let (vm_dir, points) = two_points(&sim, dir.path()).await;
    let full_point = points[0]["point"].as_str().expect("point").to_owned();
    let incremental_point = points[1]["point"].as_str().expect("point").to_owned();
    let full_os = file_of(&points[0], "web01_os");
    let full_data = file_of(&points[0], "web01_data");
    let incremental_os = file_of(&points[1], "web01_os");

    let sound = verified(&Catalog::open(&dir.path().join("backup"), "web 01").expect("catalog"));
    assert!(sound.is_clean(), "{sound}");
    assert_eq!(
        (sound.vm.as_str(), sound.points, sound.files),
        ("web 01", 2, 4)
    );

    // A flipped byte inside a data cluster: only the content checksum can tell.
    let catalog = damaged_copy(&vm_dir, dir.path(), "flipped");
    let path = catalog.path(&full_os);
    flip_byte(&path, data_offset(&path));
    let report = verified(&catalog);
    assert_reported(&report, &full_os, "content mismatch in 1 block");
    assert_eq!(report.problems.len(), 1, "{report}");

    // A changed block digest: the digests no longer give the manifest's checksum.
    let catalog = damaged_copy(&vm_dir, dir.path(), "digests");
    let blocks = points[0]["disks"][0]["content"]["blocks"]
        .as_str()
        .expect("block digests file");
    flip_byte(&catalog.path(blocks), 40);
    let report = verified(&catalog);
    assert_reported(
        &report,
        &file_of(
            &points[0],
            points[0]["disks"][0]["alias"].as_str().expect("alias"),
        ),
        "do not give the manifest's checksum",
    );
    assert_eq!(report.problems.len(), 1, "{report}");

    // A truncated file: its size, and qemu-img check.
    let catalog = damaged_copy(&vm_dir, dir.path(), "truncated");
    let path = catalog.path(&full_os);
    let size = std::fs::metadata(&path).expect("file").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(size / 2)
        .expect("truncate");
    let report = verified(&catalog);
    assert_reported(&report, &full_os, "size mismatch");
    assert_reported(&report, &full_os, "qemu-img check error");
    assert!(about(&report, &incremental_os).is_empty(), "{report}");

    // The full's file of a disk gone: missing, and the incremental's chain broken.
    let catalog = damaged_copy(&vm_dir, dir.path(), "deleted");
    std::fs::remove_file(catalog.path(&full_os)).expect("remove");
    let report = verified(&catalog);
    assert_reported(&report, &full_os, "missing");
    assert_reported(
        &report,
        &incremental_os,
        &format!("chain broken: its backing file {full_os} is missing"),
    );
    assert_eq!(report.problems.len(), 2, "{report}");

    // The full's manifest gone: the incremental's parent is missing, the full's files are
    // leftovers.
    let catalog = damaged_copy(&vm_dir, dir.path(), "unmanifested");
    std::fs::remove_file(catalog.path(&format!("{full_point}.full.manifest.json")))
        .expect("remove");
    let report = verified(&catalog);
    assert_eq!((report.points, report.files), (1, 2));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.point.as_deref() == Some(incremental_point.as_str())
                && p.to_string()
                    .contains(&format!("chain broken: parent {full_point} missing"))),
        "{report}"
    );
    let full_sums = [&full_os, &full_data].map(|f| f.replace(".qcow2", ".sums"));
    for leftover in [&full_os, &full_data, &full_sums[0], &full_sums[1]] {
        assert_warned(&report, leftover, "leftover of an unfinished run");
    }
    assert_eq!(report.problems.len(), 1, "{report}");
    assert_eq!(report.warnings.len(), 4, "{report}");

    // The incremental pointed at another backing file.
    let catalog = damaged_copy(&vm_dir, dir.path(), "rebased");
    let path = catalog.path(&incremental_os);
    sh(
        "qemu-img",
        &[
            "rebase",
            "-u",
            "-b",
            "other.qcow2",
            "-F",
            "qcow2",
            path.to_str().expect("utf-8"),
        ],
    );
    let report = verified(&catalog);
    assert_reported(
        &report,
        &incremental_os,
        &format!("backing mismatch: backing file other.qcow2, the manifest says {full_os}"),
    );

    sim.running.shutdown().await;
}
