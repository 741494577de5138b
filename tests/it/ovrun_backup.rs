//! `ovrun backup` end to end against `ovsim`: the real binary, a runner config as `ovplan build`
//! writes it, the catalog it leaves. Each point's chain is compared with the simulated disk at
//! that moment (`qemu-img compare`), and the bytes it moved are counted.

use serde_json::{Value, json};

use crate::support::engine::{MIB, Sim, imageio_checksum, raw_copy, same_content, seed};
use crate::support::ovrun::{backup_ok, manifests, ovrun, runner_config};

/// The disk entry of `alias` in a manifest.
fn disk<'a>(manifest: &'a Value, alias: &str) -> &'a Value {
    manifest["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .find(|d| d["alias"] == alias)
        .expect("the disk is in the point")
}

#[tokio::test(flavor = "multi_thread")]
async fn full_then_incrementals_each_equal_to_the_disk_at_its_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "web 01");
    let vm_dir = dir.path().join("backup/web 01");
    let os = sim.disk_id("web01_os").await;
    let data = sim.disk_id("web01_data").await;

    let mut expected = Vec::new();
    let snapshot = |n: usize| {
        let os_copy = dir.path().join(format!("os-{n}.raw"));
        let data_copy = dir.path().join(format!("data-{n}.raw"));
        raw_copy(&sim.disk_file(&os), &os_copy);
        raw_copy(&sim.disk_file(&data), &data_copy);
        (os_copy, data_copy)
    };
    expected.push(snapshot(0));
    backup_ok(&config, &[]);
    let writes = [
        vec![
            (8 * MIB, MIB, Some(0x22)),
            (40 * MIB, 64 * 1024, Some(0x33)),
        ],
        vec![(0, MIB, None), (60 * MIB, 2 * MIB, Some(0x44))],
    ];
    for (round, round_writes) in writes.iter().enumerate() {
        for (offset, length, pattern) in round_writes {
            let write = json!({"disk": os, "offset": offset, "length": length, "pattern": pattern});
            sim.admin("guest-write", write).await;
        }
        sim.admin(
            "guest-write",
            json!({"disk": data, "offset": 4 * MIB, "length": MIB, "pattern": 0x55 + round}),
        )
        .await;
        expected.push(snapshot(round + 1));
        backup_ok(&config, &[]);
    }

    let points = manifests(&vm_dir);
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["full", "incremental", "incremental"]);
    for (manifest, (os_at, data_at)) in points.iter().zip(&expected) {
        let os_file = vm_dir.join(disk(manifest, "web01_os")["file"].as_str().expect("file"));
        let data_file = vm_dir.join(disk(manifest, "web01_data")["file"].as_str().expect("file"));
        assert!(
            same_content(&os_file, os_at),
            "point {} of web01_os equals the disk then",
            manifest["point"]
        );
        assert!(
            same_content(&data_file, data_at),
            "web01_data at {}",
            manifest["point"]
        );
        for (alias, at) in [("web01_os", os_at), ("web01_data", data_at)] {
            assert_eq!(
                disk(manifest, alias)["content"]["checksum"].as_str(),
                Some(imageio_checksum(at).as_str()),
                "{alias}'s recorded checksum at {} is imageio's for the disk then",
                manifest["point"]
            );
        }
    }
    // Only what had to move crossed the wire: the seed's 4 MiB of data, then the writes.
    let moved = |m: &Value, alias: &str| disk(m, alias)["bytes_transferred"].as_u64();
    assert_eq!(
        moved(&points[0], "web01_os"),
        Some(4 * MIB),
        "zero ranges are not read"
    );
    assert_eq!(
        moved(&points[0], "web01_data"),
        Some(0),
        "an empty disk reads nothing"
    );
    assert_eq!(moved(&points[1], "web01_os"), Some(MIB + 64 * 1024));
    assert_eq!(
        moved(&points[2], "web01_os"),
        Some(2 * MIB),
        "a zeroed range is not read, it is zeroed locally"
    );
    assert_eq!(moved(&points[2], "web01_data"), Some(MIB));
    assert_eq!(points[1]["parent"], points[0]["point"]);
    assert_eq!(points[1]["from_checkpoint"], points[0]["checkpoint"]);
    let checkpoints: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("backup/checkpoints.json")).expect("file"),
    )
    .expect("JSON");
    assert_eq!(
        checkpoints["web 01"]["checkpoint_id"],
        points[2]["checkpoint"]
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_the_schedule_does_not_want_is_skipped_unless_manual() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let config = runner_config(&sim, dir.path(), "db01");
    // The unit's timer fires daily (the guard); the schedule wants Mondays only.
    let mut runner: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("JSON");
    runner["schedule"] = json!({"type": "simple", "pattern": "weekly", "days": ["monday"],
                                "time": "02:00", "timezone": "UTC"});
    runner["due_guard"] =
        json!({"type": "simple", "pattern": "daily", "time": "02:00", "timezone": "UTC"});
    std::fs::write(&config, runner.to_string()).expect("config");
    let start_at = |at: &str| {
        let config = config.to_str().expect("utf-8");
        tokio::task::block_in_place(|| ovrun(&["backup", "--config", config, "--at", at]))
    };
    let (code, log) = start_at("2026-12-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("not due, skipped"), "{log}");
    assert!(
        !dir.path().join("backup/db01").exists(),
        "nothing was backed up"
    );
    // db01 has no disks: a due start goes on and says so.
    let (code, log) = start_at("2026-11-30T02:00:00Z");
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("no active image disk"), "{log}");
    sim.running.shutdown().await;
}

/// A runner config that is not what `ovplan build` writes (a zone, a schedule, a date or a
/// closed set) is refused when it is read: exit 2, the file and the field named, and no
/// connection to the engine (a listener that is never accepted from holds any attempt in its
/// backlog, where a non-blocking `accept` finds it).
#[test]
fn a_bad_runner_config_is_refused_before_any_engine_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    engine.set_nonblocking(true).expect("non-blocking");
    let url = format!(
        "https://{}/ovirt-engine/api",
        engine.local_addr().expect("address")
    );
    let ca = dir.path().join("ca.pem");
    let path = crate::support::ovrun::config_for(dir.path(), "web01", &url, Some(&ca));
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("JSON");
    for (pointer, bad, field) in [
        ("/timezone", json!("Mars/Olympus_Mons"), "timezone"),
        ("/schedule/pattern", json!("fortnightly"), "schedule"),
        (
            "/schedule",
            json!({"type": "cron", "expression": "0 25 * * *"}),
            "schedule",
        ),
        ("/schedule/timezone", json!("Europe/Atlantis"), "schedule"),
        (
            "/due_guard",
            json!({"type": "custom", "pattern": "1111111"}),
            "due_guard",
        ),
        (
            "/backup/full_backup_frequency",
            json!("fortnightly"),
            "backup.full_backup_frequency",
        ),
        (
            "/backup/full_backup_day",
            json!("funday"),
            "backup.full_backup_day",
        ),
        (
            "/backup/anchor_date",
            json!("2024-02-30"),
            "backup.anchor_date",
        ),
        (
            "/restore/disk_interface",
            json!("scsi"),
            "restore.disk_interface",
        ),
    ] {
        let mut config = good.clone();
        *config.pointer_mut(pointer).expect(pointer) = bad;
        std::fs::write(&path, config.to_string()).expect("config");
        let (code, log) = ovrun(&["backup", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(code, 2, "{pointer}: a configuration error\n{log}");
        assert!(log.contains("not a runner config"), "{pointer}: {log}");
        assert!(
            log.contains(&format!("field `{field}`")),
            "{pointer}: {log}"
        );
        assert!(
            log.contains(path.to_str().expect("utf-8")),
            "{pointer}: {log}"
        );
        let attempt = engine.accept();
        assert!(attempt.is_err(), "{pointer}: ovrun connected to the engine");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_that_tracks_no_changes_is_read_whole_in_every_point() {
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "vms": [{"name": "mixed", "disks": [
            {"name": "mixed_os", "size_mib": 16, "data": [{"offset_mib": 0, "length_mib": 2, "pattern": 3}]},
            {"name": "mixed_raw", "size_mib": 8, "format": "raw", "sparse": false, "backup": "none",
             "data": [{"offset_mib": 1, "length_mib": 1, "pattern": 9}]}
        ]}]
    });
    let sim = Sim::start(&dir.path().join("prod"), seed).await;
    let config = runner_config(&sim, dir.path(), "mixed");
    let vm_dir = dir.path().join("backup/mixed");
    let (os, raw) = (
        sim.disk_id("mixed_os").await,
        sim.disk_id("mixed_raw").await,
    );
    let fields = |d: &Value| {
        let text = |key: &str| d[key].as_str().unwrap_or_default().to_owned();
        (text("format"), text("sparse"), text("backup"))
    };
    let reported = fields(&sim.get(&format!("/disks/{raw}")).await);
    assert_eq!(reported, ("raw".into(), "false".into(), "none".into()));
    let os_disk = sim.get(&format!("/disks/{os}")).await;
    assert_eq!(
        fields(&os_disk),
        ("cow".into(), "true".into(), "incremental".into())
    );
    // actual_size: what the image takes on storage, its 2 MiB of data, not its 16 MiB.
    let actual: u64 = os_disk["actual_size"]
        .as_str()
        .expect("actual_size")
        .parse()
        .expect("number");
    assert!(
        (2 * MIB..16 * MIB).contains(&actual),
        "actual_size {actual}"
    );

    let mut expected = Vec::new();
    for (round, pattern) in [0x41, 0x42].into_iter().enumerate() {
        if round > 0 {
            for disk in [&os, &raw] {
                let write =
                    json!({"disk": disk, "offset": 4 * MIB, "length": MIB, "pattern": pattern});
                sim.admin("guest-write", write).await;
            }
        }
        let copies = [("mixed_os", &os), ("mixed_raw", &raw)].map(|(alias, id)| {
            let copy = dir.path().join(format!("{alias}-{round}.raw"));
            raw_copy(&sim.disk_file(id), &copy);
            (alias, copy)
        });
        expected.push(copies);
        backup_ok(&config, &[]);
    }
    let points = manifests(&vm_dir);
    let kinds: Vec<&str> = points.iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds, ["full", "incremental"]);
    let modes = |m: &Value| {
        [
            disk(m, "mixed_os")["mode"].clone(),
            disk(m, "mixed_raw")["mode"].clone(),
        ]
    };
    assert_eq!(
        modes(&points[1]),
        ["incremental", "full"],
        "only the tracked disk is incremental"
    );
    let read = |alias: &str| disk(&points[1], alias)["bytes_transferred"].as_u64();
    assert_eq!(
        read("mixed_os"),
        Some(MIB),
        "the tracked disk: only what was written"
    );
    assert_eq!(
        read("mixed_raw"),
        Some(2 * MIB),
        "the untracked disk: all its data again"
    );
    for (manifest, copies) in points.iter().zip(&expected) {
        for (alias, at) in copies {
            let file = vm_dir.join(disk(manifest, alias)["file"].as_str().expect("file"));
            assert!(
                same_content(&file, at),
                "{alias} at {} equals the disk then",
                manifest["point"]
            );
        }
    }
    let (code, log) = tokio::task::block_in_place(|| {
        ovrun(&["verify", "--config", config.to_str().expect("utf-8")])
    });
    assert_eq!(code, 0, "{log}");
    sim.running.shutdown().await;
}
