//! ovsim's XML against real engines' bodies (`tests/fixtures/engine-captures/`, copied from
//! `../shared/reference/engine-captures/`, see its README): for each captured resource ovsim
//! serves, every child element and attribute ovsim writes is one the engine writes there too,
//! and the captured fields a backup tool reads are present.

use std::collections::BTreeSet;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::support::fixtures;

/// The attribute names and direct child element names of every `<tag>` element, together (a
/// capture's disks differ: only cow disks carry `qcow_version`).
#[derive(Debug, Default)]
struct Shape {
    attributes: BTreeSet<String>,
    children: BTreeSet<String>,
}

fn name(e: &BytesStart<'_>) -> String {
    e.name().into_inner().to_owned()
}

fn shape(xml: &str, tag: &str) -> Shape {
    let mut reader = Reader::from_str(xml);
    let mut shape = Shape::default();
    // Depth inside the first <tag>: None before it, Some(0) right inside it.
    let mut inside: Option<usize> = None;
    loop {
        let event = reader.read_event().expect("well-formed XML");
        match (&event, inside) {
            (Event::Start(e) | Event::Empty(e), None) if name(e) == tag => {
                shape.attributes.extend(
                    e.attributes()
                        .flatten()
                        .map(|a| a.key.into_inner().to_owned()),
                );
                if !matches!(event, Event::Empty(_)) {
                    inside = Some(0);
                }
            }
            (Event::Start(e), Some(depth)) => {
                if depth == 0 {
                    shape.children.insert(name(e));
                }
                inside = Some(depth + 1);
            }
            (Event::Empty(e), Some(0)) => {
                shape.children.insert(name(e));
            }
            (Event::End(_), Some(0)) => inside = None,
            (Event::End(_), Some(depth)) => inside = Some(depth - 1),
            (Event::Eof, _) => return shape,
            _ => {}
        }
    }
}

fn capture(file: &str) -> String {
    std::fs::read_to_string(fixtures().join("engine-captures").join(file)).expect("capture")
}

/// ovsim's element for `tag` uses only what the capture uses, and has `needed`.
fn holds(ours: &str, captured: &str, tag: &str, needed: &[&str]) {
    let (ours, theirs) = (shape(ours, tag), shape(captured, tag));
    assert!(!theirs.children.is_empty(), "the capture has a <{tag}>");
    let invented: Vec<&String> = ours.children.difference(&theirs.children).collect();
    assert!(
        invented.is_empty(),
        "<{tag}> children the engine does not send: {invented:?}"
    );
    assert!(
        ours.attributes.is_subset(&theirs.attributes),
        "<{tag}> attributes {:?} vs {:?}",
        ours.attributes,
        theirs.attributes
    );
    for field in needed {
        assert!(
            ours.children.contains(*field) && theirs.children.contains(*field),
            "<{tag}> lacks <{field}>"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ovsims_xml_has_the_captured_engines_structure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = crate::sim_api::seeded(dir.path()).await;
    let api = sim.api_url();
    let xml = |url: String| {
        let (http, bearer) = (http.clone(), bearer.clone());
        async move {
            let response = http
                .get(url)
                .header("Authorization", bearer)
                .header("Accept", "application/xml")
                .send()
                .await
                .expect("GET");
            assert_eq!(response.status(), 200);
            response.text().await.expect("XML")
        }
    };
    let vms = xml(format!("{api}/vms?search=name%3D%22web%2001%22")).await;
    holds(
        &vms,
        &capture("vm-xml-miq.xml"),
        "vm",
        &["name", "status", "memory", "cluster", "host", "link"],
    );
    let vm_id = vms
        .split(" id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the vm's id attribute")
        .to_owned();
    let attachments = xml(format!("{api}/vms/{vm_id}/diskattachments")).await;
    holds(
        &attachments,
        &capture("diskattachments-xml-miq.xml"),
        "disk_attachment",
        &["active", "bootable", "interface", "disk", "vm"],
    );
    let disks = xml(format!("{api}/disks")).await;
    holds(
        &disks,
        &capture("disks-xml-miq.xml"),
        "disk",
        &[
            "provisioned_size",
            "format",
            "status",
            "storage_domains",
            "content_type",
        ],
    );
    holds(
        &xml(format!("{api}/clusters")).await,
        &capture("cluster-xml-miq.xml"),
        "cluster",
        &["name", "version"],
    );
    holds(
        &xml(format!("{api}/hosts")).await,
        &capture("host-xml-miq.xml"),
        "host",
        &["name", "status", "address"],
    );
    holds(
        &xml(format!("{api}/storagedomains")).await,
        &capture("storagedomain-xml-miq.xml"),
        "storage_domain",
        &["name", "type", "storage"],
    );
    let centers = xml(format!("{api}/datacenters?search=storage.name%3Ddata")).await;
    holds(
        &centers,
        &capture("datacenters-xml-miq.xml"),
        "data_center",
        &["name", "status", "version", "link"],
    );
    let center = centers
        .split(" id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the data center's id")
        .to_owned();
    holds(
        &xml(format!("{api}/datacenters/{center}/storagedomains")).await,
        &capture("dcstoragedomains-xml-miq.xml"),
        "storage_domain",
        &["name", "status", "type", "storage"],
    );
    let db01 = xml(format!("{api}/vms?search=name%3Ddb01")).await;
    let db01_id = db01
        .split(" id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("db01's id")
        .to_owned();
    let empty = xml(format!("{api}/vms/{db01_id}/diskattachments")).await;
    let strip = |x: &str| {
        x.lines()
            .filter(|l| !l.starts_with("<?xml"))
            .collect::<String>()
    };
    assert_eq!(
        strip(&empty),
        strip(&capture("diskattachments-empty-xml-miq.xml")),
        "an empty list is its empty element"
    );
    let vms_json: serde_json::Value = http
        .get(format!("{api}/vms"))
        .header("Authorization", &bearer)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let captured: serde_json::Value =
        serde_json::from_str(&capture("vms-json-ovirtk8s.json")).expect("JSON");
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v["vm"]
            .as_array()
            .expect("vm list")
            .iter()
            .flat_map(|vm| vm.as_object().expect("object").keys().cloned())
            .collect()
    };
    let invented: Vec<String> = keys(&vms_json)
        .difference(&keys(&captured))
        .cloned()
        .collect();
    assert!(
        invented.is_empty(),
        "JSON VM fields the engine does not send: {invented:?}"
    );
    for (field, value) in [("memory", "2147483648"), ("status", "up")] {
        assert!(
            captured["vm"][0][field].is_string() && vms_json["vm"][0][field] == value,
            "scalars are strings in JSON, as captured: {field}"
        );
    }
    let unauthorized = http
        .get(&api)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert_eq!(
        unauthorized.trim(),
        capture("unauthorized401-html-miq.html").trim(),
        "the 401 page is the engine's, byte for byte"
    );
    sim.stop();
}

/// `GET` as an XML-only client (the SDK): the status and the body.
async fn xml_get(sim: &crate::support::engine::Sim, path: &str) -> (u16, String) {
    let response = sim
        .http
        .get(sim.url(path))
        .header("Authorization", &sim.bearer)
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("XML"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_snapshots_and_faults_have_the_captured_structure() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = crate::support::engine::Sim::start(dir.path(), crate::support::engine::seed()).await;
    let vm = sim.vm("web 01").await;
    let vm_href = vm["href"].as_str().expect("href").to_owned();
    let os = sim.disk_id("web01_os").await;
    let started = sim
        .post(
            &format!("{vm_href}/backups"),
            json!({"disks": {"disk": [{"id": os}]}}),
            201,
        )
        .await;
    let backup = started["href"].as_str().expect("href").to_owned();
    sim.wait_for(&backup, "phase", "ready", &["failed"]).await;
    let (_, backups) = xml_get(&sim, &format!("{vm_href}/backups")).await;
    holds(
        &backups,
        &capture("backups-xml-enginepr303.xml"),
        "backup",
        &[
            "phase",
            "to_checkpoint_id",
            "creation_date",
            "vm",
            "link",
            "actions",
        ],
    );
    assert!(
        backups.contains("<creation_date>20"),
        "dates are ISO 8601 in XML: {backups}"
    );
    let (status, fault) = xml_get(&sim, &format!("{backup}/no-such-thing")).await;
    assert_eq!((status, fault.as_str()), (404, ""), "404 stays empty");
    let refused = sim
        .http
        .post(sim.url(&format!("{vm_href}/backups")))
        .header("Authorization", &sim.bearer)
        .header("Accept", "application/xml")
        .header("Content-Type", "application/xml")
        .body(format!(
            "<backup><disks><disk id=\"{os}\"/></disks></backup>"
        ))
        .send()
        .await
        .expect("POST");
    let fault = refused.text().await.expect("XML");
    holds(
        &fault,
        &capture("fault-xml-sdkissue30.xml"),
        "fault",
        &["reason", "detail"],
    );
    let finalized_twice = {
        sim.post(&format!("{backup}/finalize"), json!({}), 200)
            .await;
        let (status, body) = sim
            .call(
                reqwest::Method::POST,
                &format!("{backup}/finalize"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 409);
        body
    };
    let captured: serde_json::Value =
        serde_json::from_str(&capture("fault-action400-json-cockpit.json")).expect("JSON");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    assert_eq!(
        keys(&finalized_twice),
        keys(&captured),
        "an action's fault is inside the action"
    );
    assert_eq!(keys(&finalized_twice["fault"]), keys(&captured["fault"]));

    sim.wait_for(&backup, "phase", "succeeded", &["failed"])
        .await;
    let snapshot = sim
        .post(
            &format!("{vm_href}/snapshots"),
            json!({"description": "snap1", "persist_memorystate": "false"}),
            201,
        )
        .await;
    let (_, snapshots) = xml_get(&sim, &format!("{vm_href}/snapshots")).await;
    holds(
        &snapshots,
        &capture("snapshots-xml-miq.xml"),
        "snapshot",
        &[
            "description",
            "date",
            "snapshot_status",
            "snapshot_type",
            "persist_memorystate",
            "vm",
        ],
    );
    let (_, disks) = xml_get(
        &sim,
        &format!("{}/disks", snapshot["href"].as_str().expect("href")),
    )
    .await;
    holds(
        &disks,
        &capture("snapshotdisks-xml-miq.xml"),
        "disk",
        &["alias", "format", "provisioned_size", "status"],
    );
    sim.running.shutdown().await;
}
