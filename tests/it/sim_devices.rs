//! What an inventory walk reads besides VMs and disks: the Blank template (the API root names
//! it), a VM's NICs and CD-ROMs (none), the clusters of the data center and each cluster's data
//! center; in JSON here and in XML through the official SDK. And disks made through
//! attachments: an existing id is never created again, a refused attachment makes no disk; a
//! disk seen at a snapshot attached to another VM (a backup appliance), which holds the
//! snapshot until it is detached.

use std::process::Command;

use reqwest::Method;

use crate::support::engine::{Sim, seed};

fn names(list: &serde_json::Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_vm_devices_and_the_data_centers_clusters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let root = sim.get("").await;
    let blank = root["special_objects"]["blank_template"]["id"]
        .as_str()
        .expect("id");
    let templates = sim.get("/templates").await;
    assert_eq!(names(&templates, "template"), ["Blank"]);
    assert_eq!(templates["template"][0]["id"], blank);
    assert_eq!(
        sim.get(&format!("/templates/{blank}")).await["name"],
        "Blank"
    );
    let (status, _) = sim.call(Method::GET, "/templates/nope", None).await;
    assert_eq!(status, 404);

    let vm = sim.vm("web 01").await;
    let vm_id = vm["id"].as_str().expect("id");
    for (path, key) in [("nics", "nic"), ("cdroms", "cdrom")] {
        let found = sim.get(&format!("/vms/{vm_id}/{path}")).await;
        assert!(names(&found, key).is_empty(), "{path}: {found}");
        let (status, _) = sim
            .call(Method::GET, &format!("/vms/nope/{path}"), None)
            .await;
        assert_eq!(status, 404, "{path} of a VM that does not exist");
    }

    let data_center = sim.get("/datacenters").await["data_center"][0].clone();
    let dc_id = data_center["id"].as_str().expect("id");
    let clusters = sim.get("/clusters").await;
    for cluster in clusters["cluster"].as_array().expect("clusters") {
        assert_eq!(cluster["data_center"]["id"], dc_id, "{cluster}");
    }
    let of_dc = sim.get(&format!("/datacenters/{dc_id}/clusters")).await;
    assert_eq!(names(&of_dc, "cluster"), names(&clusters, "cluster"));

    let script = r#"
import sys
import ovirtsdk4 as sdk
url, password, ca = sys.argv[1:4]
connection = sdk.Connection(url=url, username="admin@internal", password=password, ca_file=ca)
system = connection.system_service()
print("templates", [t.name for t in system.templates_service().list()])
vm = system.vms_service().list(search='name="web 01"')[0]
vm_service = system.vms_service().vm_service(vm.id)
print("nics", len(vm_service.nics_service().list()), "cdroms", len(vm_service.cdroms_service().list()))
dc = system.data_centers_service().list()[0]
clusters = system.data_centers_service().data_center_service(dc.id).clusters_service().list()
print("clusters", sorted(c.name for c in clusters))
connection.close()
"#;
    let out = tokio::task::block_in_place(|| {
        Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
            .args(["-c", script])
            .arg(sim.running.api_url())
            .arg(&sim.running.users["admin@internal"])
            .arg(&sim.running.pki.ca_cert)
            .output()
            .expect("python runs")
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        "templates ['Blank']\nnics 0 cdroms 0\nclusters ['DR', 'Default']\n"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_id_is_never_created_twice_and_a_refused_attachment_makes_no_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let os = sim.disk_id("web01_os").await;
    let before = dir.path().join("os-before.raw");
    crate::support::engine::raw_copy(&sim.disk_file(&os), &before);
    let domains = serde_json::json!({"storage_domain": [{"name": "data"}]});
    let (status, _) = sim
        .call(
            Method::POST,
            "/disks",
            Some(
                serde_json::json!({"id": os, "name": "again", "provisioned_size": 1_048_576,
                                    "format": "cow", "storage_domains": domains}),
            ),
        )
        .await;
    assert_eq!(status, 409, "a disk id that exists is refused");
    let (status, fault) = sim
        .call(
            Method::POST,
            "/disks",
            Some(serde_json::json!({"name": "raw_tracked", "provisioned_size": 1_048_576,
                                    "format": "raw", "backup": "incremental", "storage_domains": domains})),
        )
        .await;
    assert_eq!(status, 400, "{fault}");
    assert!(
        fault["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not supported for RAW"),
        "{fault}"
    );
    assert!(
        crate::support::engine::same_content(&sim.disk_file(&os), &before),
        "not overwritten"
    );

    let db01 = sim.vm("db01").await;
    let attachments = format!("/vms/{}/diskattachments", db01["id"].as_str().expect("id"));
    let new_disk = |name: &str| {
        serde_json::json!({"disk": {"name": name, "provisioned_size": 1_048_576, "format": "cow",
                                    "storage_domains": domains}, "interface": "virtio", "bootable": true})
    };
    sim.post(&attachments, new_disk("first_boot"), 201).await;
    let (status, _) = sim
        .call(Method::POST, &attachments, Some(new_disk("second_boot")))
        .await;
    assert_eq!(status, 409, "a second bootable disk is refused");
    let named = sim.get("/disks?search=name%3Dsecond_boot").await;
    assert!(
        names(&named, "disk").is_empty(),
        "the refused attachment made no disk: {named}"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_seen_at_a_snapshot_attaches_to_another_vm_and_holds_the_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let web = sim.vm("web 01").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let db01 = sim.vm("db01").await["id"].as_str().expect("id").to_owned();
    let os = sim.disk_id("web01_os").await;
    let snapshots = format!("/vms/{web}/snapshots");
    let made = sim
        .post(
            &snapshots,
            serde_json::json!({"description": "for the appliance"}),
            201,
        )
        .await;
    let snapshot = made["id"].as_str().expect("id").to_owned();
    let href = format!("{snapshots}/{snapshot}");
    sim.wait_for(&href, "snapshot_status", "ok", &[]).await;
    let appliance = format!("/vms/{db01}/diskattachments");
    let at = |snapshot: &str| {
        serde_json::json!({"disk": {"id": os, "snapshot": {"id": snapshot}},
                           "interface": "virtio", "active": true})
    };
    let refused = |status: u16, words: &'static str| {
        move |(got, fault): (reqwest::StatusCode, serde_json::Value)| {
            let detail = fault["detail"].as_str().unwrap_or_default().to_owned();
            assert!(got == status && detail.contains(words), "{got} {fault}");
        }
    };

    // Only a regular snapshot of the disk's VM that covers it.
    let active = sim.get(&snapshots).await["snapshot"][0]["id"].clone();
    let active = active.as_str().expect("the active snapshot");
    refused(400, "only allowed for regular snapshots")(
        sim.call(Method::POST, &appliance, Some(at(active))).await,
    );
    refused(400, "The disk doesn't exist")(
        sim.call(Method::POST, &appliance, Some(at("no-such-snapshot")))
            .await,
    );
    sim.post(&appliance, at(&snapshot), 201).await;
    refused(409, "already attached to VM")(
        sim.call(Method::POST, &appliance, Some(at(&snapshot)))
            .await,
    );
    let listed = sim.get(&appliance).await;
    assert_eq!(listed["disk_attachment"][0]["id"], os.as_str(), "{listed}");
    let owner = sim.get(&format!("/vms/{web}/diskattachments/{os}")).await;
    assert_eq!(owner["active"], "true", "the disk stays its VM's: {owner}");

    // While another VM sees the disk at a snapshot, the VM's snapshots stay.
    refused(409, "web01_os ,for the appliance, db01")(sim.call(Method::DELETE, &href, None).await);
    let (status, _) = sim
        .call(Method::DELETE, &format!("{appliance}/{os}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(sim.get(&format!("/disks/{os}")).await["status"], "ok");
    let (status, _) = sim.call(Method::DELETE, &href, None).await;
    assert_eq!(status, 200, "detached, the snapshot goes");
    sim.running.shutdown().await;
}
