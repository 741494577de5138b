//! ovsim's data plane is the real one: a qcow2 disk with a persistent dirty bitmap, exported by
//! `qemu-nbd`, served over TLS by the `ovirt-imageio` daemon that ovsim starts and feeds tickets.
//! A plain HTTPS client trusting only ovsim's CA reads it as a backup client would.

use std::path::Path;

use ovbackup::qemu::nbd::{ExportOptions, NbdExport};
use ovbackup::sim::disk::DiskImage;
use ovbackup::sim::imageio::{Imageio, Ticket, executable};
use ovbackup::sim::pki;
use serde_json::Value;

use crate::support::https_client as client;

const MIB: u64 = 1024 * 1024;

fn sh(program: &str, args: &[&str]) {
    crate::support::engine::sh(program, args);
}

/// A 64 MiB disk: 0x11 over 0-4 MiB and 0x22 over 8-9 MiB, then checkpoint `chk1`, then a guest
/// write of 0x33 over 20 MiB + 64 KiB (the only dirty range since `chk1`).
fn disk(dir: &Path) -> String {
    let disk = dir.join("disk.qcow2").to_str().expect("utf-8").to_owned();
    sh("qemu-img", &["create", "-q", "-f", "qcow2", &disk, "64M"]);
    sh(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -P 0x11 0 4M",
            "-c",
            "write -P 0x22 8M 1M",
            &disk,
        ],
    );
    sh("qemu-img", &["bitmap", "--add", "--enable", &disk, "chk1"]);
    sh(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0x33 20M 64k", &disk],
    );
    disk
}

fn ranges(extents: &Value, key: &str) -> Vec<(u64, u64)> {
    extents
        .as_array()
        .expect("extents")
        .iter()
        .filter(|e| e[key] == Value::Bool(key != "zero"))
        .map(|e| {
            (
                e["start"].as_u64().expect("start"),
                e["length"].as_u64().expect("length"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_client_reads_data_and_dirty_extents_through_the_real_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = disk(dir.path());
    let pki = pki::load_or_create(&dir.path().join("pki")).expect("PKI");
    let export = NbdExport::start(
        Path::new(&disk),
        &dir.path().join("nbd.sock"),
        &dir.path().join("qemu-nbd.log"),
        &ExportOptions {
            read_only: true,
            bitmap: Some("chk1".into()),
            detect_zeroes: false,
            exit_with_last_client: false,
            die_with_owner: false,
            direct_io: false,
            allocation_depth: false,
        },
    )
    .expect("qemu-nbd");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let imageio = Imageio::start(&executable(project), &dir.path().join("imageio"), &pki)
        .expect("ovirt-imageio");
    let ticket = Ticket {
        uuid: "t-backup-1".into(),
        size: 64 * MIB,
        url: export.url(),
        ops: vec!["read"],
        timeout: 300,
        inactivity_timeout: 60,
        dirty: true,
        sparse: true,
        transfer_id: "xfer-1".into(),
    };
    imageio.add_ticket(&ticket).await.expect("ticket");
    let url = imageio.transfer_url(&ticket.uuid);
    let http = client(&pki.ca_cert);

    let range = http
        .get(&url)
        .header("Range", "bytes=8388608-9437183")
        .send()
        .await
        .expect("GET");
    assert_eq!(range.status(), 206);
    let body = range.bytes().await.expect("body");
    assert_eq!(body.len() as u64, MIB);
    assert!(body.iter().all(|b| *b == 0x22));

    let dirty: Value = http
        .get(format!("{url}/extents?context=dirty"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ranges(&dirty, "dirty"), [(20 * MIB, 64 * 1024)]);
    let zero: Value = http
        .get(format!("{url}/extents?context=zero"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        ranges(&zero, "zero"),
        [(0, 4 * MIB), (8 * MIB, MIB), (20 * MIB, 64 * 1024)]
    );

    let info = imageio
        .ticket_info(&ticket.uuid)
        .await
        .expect("info")
        .expect("ticket exists");
    assert_eq!(info["uuid"], "t-backup-1");
    imageio.remove_ticket(&ticket.uuid).await.expect("remove");
    assert_eq!(
        http.get(&url).send().await.expect("GET").status(),
        403,
        "a removed ticket is refused"
    );
    assert!(
        imageio
            .ticket_info(&ticket.uuid)
            .await
            .expect("info")
            .is_none()
    );
}

#[test]
fn the_pki_is_made_once_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = pki::load_or_create(dir.path()).expect("PKI");
    let ca = std::fs::read_to_string(&first.ca_cert).expect("CA");
    let again = pki::load_or_create(dir.path()).expect("PKI");
    assert_eq!(std::fs::read_to_string(&again.ca_cert).expect("CA"), ca);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&first.server_key)
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Exports the frozen disk (with `bitmap`, if any) behind a new ticket; returns its URL.
async fn export(
    imageio: &Imageio,
    disk: &DiskImage,
    dir: &Path,
    name: &str,
    bitmap: Option<&str>,
) -> (NbdExport, String) {
    let export = NbdExport::start(
        disk.path(),
        &dir.join(format!("{name}.sock")),
        &dir.join("qemu-nbd.log"),
        &ExportOptions {
            read_only: true,
            bitmap: bitmap.map(str::to_owned),
            detect_zeroes: false,
            exit_with_last_client: false,
            die_with_owner: false,
            direct_io: false,
            allocation_depth: false,
        },
    )
    .expect("qemu-nbd");
    let ticket = Ticket {
        uuid: name.into(),
        size: 64 * MIB,
        url: export.url(),
        ops: vec!["read"],
        timeout: 300,
        inactivity_timeout: 60,
        dirty: bitmap.is_some(),
        sparse: true,
        transfer_id: format!("xfer-{name}"),
    };
    imageio.add_ticket(&ticket).await.expect("ticket");
    (export, imageio.transfer_url(name))
}

async fn read(http: &reqwest::Client, url: &str, offset: u64, length: u64) -> Vec<u8> {
    let range = format!("bytes={offset}-{}", offset + length - 1);
    let response = http
        .get(url)
        .header("Range", range)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 206);
    response.bytes().await.expect("body").to_vec()
}

async fn dirty_extents(http: &reqwest::Client, url: &str) -> Vec<(u64, u64, bool)> {
    let extents: Value = http
        .get(format!("{url}/extents?context=dirty"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    extents
        .as_array()
        .expect("extents")
        .iter()
        .filter(|e| e["dirty"] == Value::Bool(true))
        .map(|e| {
            (
                e["start"].as_u64().expect("start"),
                e["length"].as_u64().expect("length"),
                e["zero"] == Value::Bool(true),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_sees_the_disk_at_its_start_while_the_guest_keeps_writing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = DiskImage::create(&dir.path().join("disk.qcow2"), 64 * MIB).expect("disk");
    disk.guest_write(0, 4 * MIB, 0x11).expect("write");
    let pki = pki::load_or_create(&dir.path().join("pki")).expect("PKI");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let imageio = Imageio::start(&executable(project), &dir.path().join("imageio"), &pki)
        .expect("ovirt-imageio");
    let http = client(&pki.ca_cert);

    // Full backup: checkpoint chk1 starts; the guest writes 0x22 over 8 MiB + 1 MiB meanwhile.
    disk.begin_backup("chk1").expect("begin");
    disk.guest_write(8 * MIB, MIB, 0x22)
        .expect("write during the backup");
    let (nbd, url) = export(&imageio, &disk, dir.path(), "full", None).await;
    assert!(
        read(&http, &url, 0, 4 * MIB)
            .await
            .iter()
            .all(|b| *b == 0x11)
    );
    assert!(
        read(&http, &url, 8 * MIB, MIB)
            .await
            .iter()
            .all(|b| *b == 0),
        "the backup sees the disk as it began"
    );
    imageio.remove_ticket("full").await.expect("remove");
    nbd.stop();
    disk.end_backup().expect("end");
    assert!(!disk.in_backup());

    // Incremental since chk1: exactly the write made during the full backup.
    disk.begin_backup("chk2").expect("begin");
    disk.guest_zero(20 * MIB, 64 * 1024)
        .expect("zero during the backup");
    let (nbd, url) = export(&imageio, &disk, dir.path(), "inc1", Some("chk1")).await;
    assert_eq!(dirty_extents(&http, &url).await, [(8 * MIB, MIB, false)]);
    assert!(
        read(&http, &url, 8 * MIB, MIB)
            .await
            .iter()
            .all(|b| *b == 0x22)
    );
    imageio.remove_ticket("inc1").await.expect("remove");
    nbd.stop();
    disk.end_backup().expect("end");

    // Incremental since chk2: the zeroed range, reported dirty and zero.
    disk.begin_backup("chk3").expect("begin");
    let (nbd, url) = export(&imageio, &disk, dir.path(), "inc2", Some("chk2")).await;
    assert_eq!(
        dirty_extents(&http, &url).await,
        [(20 * MIB, 64 * 1024, true)]
    );
    nbd.stop();
    disk.end_backup().expect("end");

    let checkpoints: Vec<(String, Vec<String>)> = disk
        .checkpoints()
        .expect("info")
        .into_iter()
        .map(|b| (b.name, b.flags))
        .collect();
    let auto = vec!["auto".to_owned()];
    assert_eq!(
        checkpoints,
        [
            ("chk1".into(), auto.clone()),
            ("chk2".into(), auto.clone()),
            ("chk3".into(), auto)
        ]
    );
}

/// Whether a process whose command line names `socket` runs.
fn serving(socket: &Path) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", socket.to_str().expect("utf-8")])
        .status()
        .expect("pgrep")
        .success()
}

#[test]
fn an_export_dies_with_the_thread_that_started_it_before_any_client_connected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = disk(dir.path());
    let start = |name: &str, die_with_owner: bool| {
        let socket = dir.path().join(name);
        let (image, log) = (Path::new(&disk).to_owned(), dir.path().join("qemu-nbd.log"));
        let owner_socket = socket.clone();
        std::thread::spawn(move || {
            let options = ExportOptions {
                read_only: true,
                exit_with_last_client: true,
                die_with_owner,
                ..ExportOptions::default()
            };
            let export = NbdExport::start(&image, &owner_socket, &log, &options).expect("qemu-nbd");
            // The owner vanishes without stopping it, as a SIGKILLed ovrun does.
            std::mem::forget(export);
        })
        .join()
        .expect("owner thread");
        socket
    };
    let kept = start("kept.sock", false);
    let gone = start("gone.sock", true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while serving(&gone) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !serving(&gone),
        "qemu-nbd outlived the thread that started it"
    );
    assert!(
        serving(&kept),
        "without the option it keeps running (it has had no client)"
    );
    let _ = std::process::Command::new("pkill")
        .args(["-f", kept.to_str().expect("utf-8")])
        .status();
}
