//! A VM's configuration in ovsim (issue 16), read as `ovrun` reads it and made as `ovrun restore`
//! makes it: a seeded VM's CPU, firmware, OS, boot order, type, time zone, HA, comment, custom
//! properties and memory policy, its NICs and its disks' logical names, in JSON and XML; the
//! engine's defaults for a VM that names none; a VM created and edited with them (JSON and XML
//! bodies) reading back what was sent; NICs added and removed with the engine's refusals (a MAC
//! in use, a profile that does not exist); networks and vNIC profiles by name and id; a removed
//! VM's NICs gone with it; a state written before all this still loading.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::engine::Sim;

/// `front` with two profiles, `back` with its default one; `app01` configured, with two NICs
/// and three disks; `plain` with nothing but its name.
fn seed() -> Value {
    json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "networks": [{"name": "front", "vnic_profiles": ["front", "front-qos"]}, {"name": "back"}],
        "vms": [
            {
                "name": "app01", "status": "down", "memory_mib": 8192,
                "memory_guaranteed_mib": 4096, "memory_max_mib": 16384,
                "cpu": {"sockets": 2, "cores": 2, "threads": 1},
                "bios_type": "q35_secure_boot", "machine_type": "pc-q35-rhel8.6.0",
                "os_type": "rhel_9x64", "boot_devices": ["network", "hd"],
                "vm_type": "high_performance", "time_zone": "Europe/Prague",
                "high_availability": {"enabled": true, "priority": 50},
                "description": "the order service", "comment": "owner: team b",
                "custom_properties": {"sap_agent": "true", "viodiskcache": "writeback"},
                "nics": [
                    {"name": "nic1", "vnic_profile": "front-qos", "mac": "56:6F:AA:BB:CC:01"},
                    {"name": "nic2", "interface": "e1000", "vnic_profile": "back"}
                ],
                "disks": [
                    {"name": "app01_data", "size_mib": 8, "interface": "virtio", "logical_name": "/dev/vda"},
                    {"name": "app01_os", "size_mib": 8, "bootable": true, "logical_name": "/dev/sda"},
                    {"name": "app01_swap", "size_mib": 8, "interface": "sata"}
                ]
            },
            {"name": "plain", "status": "down", "memory_mib": 2048,
             "disks": [{"name": "plain_os", "size_mib": 8}, {"name": "plain_data", "size_mib": 8}]}
        ]
    })
}

const GIB: u64 = 1 << 30;

/// A call as an XML-only client (the SDK) makes it: the status and the body.
async fn xml_call(sim: &Sim, method: Method, path: &str, body: Option<&str>) -> (u16, String) {
    let mut request = (sim.http.request(method, sim.url(path)))
        .header("Authorization", &sim.bearer)
        .header("Accept", "application/xml");
    if let Some(body) = body {
        let typed = request.header("Content-Type", "application/xml");
        request = typed.body(body.to_owned());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `GET path` in XML, parsed into the JSON shape.
async fn xml_get(sim: &Sim, path: &str) -> Value {
    let (status, text) = xml_call(sim, Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {text}");
    ovbackup::sim::body::xml_to_json(&text).expect("well-formed XML")
}

/// The fields of a VM `ovrun` reads, from either representation (XML text is compared as the
/// JSON strings it equals).
fn configuration(vm: &Value) -> Value {
    let devices = &vm["os"]["boot"]["devices"]["device"];
    let properties = &vm["custom_properties"]["custom_property"];
    json!({
        "memory": vm["memory"], "guaranteed": vm["memory_policy"]["guaranteed"],
        "max": vm["memory_policy"]["max"], "topology": vm["cpu"]["topology"],
        "bios": vm["bios"]["type"], "machine": vm["custom_emulated_machine"],
        "os": vm["os"]["type"], "boot": as_list(devices), "type": vm["type"],
        "time_zone": vm["time_zone"]["name"], "ha": vm["high_availability"],
        "description": vm["description"], "comment": vm["comment"],
        "properties": as_list(properties),
    })
}

/// A list, also when XML parsing gave one item alone.
fn as_list(value: &Value) -> Value {
    match value {
        Value::Array(_) | Value::Null => value.clone(),
        one => json!([one]),
    }
}

/// The NICs of VM `id` by name: interface, MAC, profile id, linked, plugged.
async fn nics(sim: &Sim, id: &str) -> Vec<Value> {
    let list = sim.get(&format!("/vms/{id}/nics")).await;
    let each = list["nic"].as_array().cloned().unwrap_or_default();
    let mut found: Vec<Value> = (each.iter())
        .map(|n| {
            json!([
                n["name"],
                n["interface"],
                n["mac"]["address"],
                n["vnic_profile"]["id"],
                n["linked"],
                n["plugged"]
            ])
        })
        .collect();
    found.sort_by_key(|n| n[0].as_str().unwrap_or_default().to_owned());
    found
}

/// The id of vNIC profile `name`.
async fn profile_id(sim: &Sim, name: &str) -> String {
    let profiles = sim.get("/vnicprofiles").await;
    let each = profiles["vnic_profile"].as_array().expect("profiles");
    let found = each
        .iter()
        .find(|p| p["name"] == name)
        .expect("the profile");
    found["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_vms_configuration_nics_and_disks_in_json_and_xml() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let app01 = sim.vm("app01").await;
    let id = app01["id"].as_str().expect("id").to_owned();
    let expected = json!({
        "memory": (8 * GIB).to_string(), "guaranteed": (4 * GIB).to_string(),
        "max": (16 * GIB).to_string(),
        "topology": {"cores": "2", "sockets": "2", "threads": "1"},
        "bios": "q35_secure_boot", "machine": "pc-q35-rhel8.6.0", "os": "rhel_9x64",
        "boot": ["network", "hd"], "type": "high_performance", "time_zone": "Europe/Prague",
        "ha": {"enabled": "true", "priority": "50"},
        "description": "the order service", "comment": "owner: team b",
        "properties": [{"name": "sap_agent", "value": "true"},
                       {"name": "viodiskcache", "value": "writeback"}],
    });
    assert_eq!(configuration(&app01), expected, "JSON");
    let xml = xml_get(&sim, &format!("/vms/{id}")).await;
    assert_eq!(configuration(&xml), expected, "XML");

    let (front_qos, back) = (
        profile_id(&sim, "front-qos").await,
        profile_id(&sim, "back").await,
    );
    let found = nics(&sim, &id).await;
    assert_eq!(
        found[0],
        json!([
            "nic1",
            "virtio",
            "56:6f:aa:bb:cc:01",
            front_qos,
            "true",
            "true"
        ])
    );
    assert_eq!(
        (&found[1][0], &found[1][1], &found[1][3]),
        (&json!("nic2"), &json!("e1000"), &json!(back))
    );
    let pooled = found[1][2].as_str().expect("a MAC from the pool");
    assert!(
        pooled.starts_with("56:6f:") && pooled.len() == 17,
        "{pooled}"
    );
    let xml_nics = xml_get(&sim, &format!("/vms/{id}/nics")).await;
    assert_eq!(xml_nics["nic"][0]["mac"]["address"], "56:6f:aa:bb:cc:01");
    assert_eq!(xml_nics["nic"][0]["vnic_profile"]["id"], front_qos);

    let attachments = sim.get(&format!("/vms/{id}/diskattachments")).await;
    let disks: Vec<Value> = (attachments["disk_attachment"]
        .as_array()
        .expect("list")
        .iter())
    .map(|a| json!([a["interface"], a["bootable"], a["logical_name"]]))
    .collect();
    assert_eq!(
        disks,
        [
            json!(["virtio", "false", "/dev/vda"]),
            json!(["virtio_scsi", "true", "/dev/sda"]),
            json!(["sata", "false", null])
        ],
        "the seed's bootable disk is the only one; a logical name only where seeded"
    );
    let xml_disks = xml_get(&sim, &format!("/vms/{id}/diskattachments")).await;
    assert_eq!(xml_disks["disk_attachment"][1]["logical_name"], "/dev/sda");
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vm_that_names_nothing_has_the_engines_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let plain = sim.vm("plain").await;
    let expected = json!({
        "memory": (2 * GIB).to_string(), "guaranteed": (2 * GIB).to_string(),
        "max": (8 * GIB).to_string(),
        "topology": {"cores": "1", "sockets": "1", "threads": "1"},
        "bios": "q35_ovmf", "machine": null, "os": "other", "boot": ["hd"], "type": "server",
        "time_zone": "Etc/GMT", "ha": {"enabled": "false", "priority": "0"},
        "description": "", "comment": "", "properties": null,
    });
    assert_eq!(configuration(&plain), expected);
    let id = plain["id"].as_str().expect("id");
    assert_eq!(sim.get(&format!("/vms/{id}/nics")).await["nic"], json!([]));
    let attachments = sim.get(&format!("/vms/{id}/diskattachments")).await;
    let list = attachments["disk_attachment"].as_array().expect("list");
    assert_eq!(
        (&list[0]["bootable"], &list[1]["bootable"]),
        (&json!("true"), &json!("false"))
    );
    assert!(
        list.iter().all(|a| a.get("logical_name").is_none()),
        "{attachments}"
    );
    sim.running.shutdown().await;
}

/// The body `ovrun restore` sends for app01's configuration (scalars as strings).
fn create_body(name: &str) -> Value {
    json!({
        "name": name, "cluster": {"name": "Default"}, "template": {"name": "Blank"},
        "description": "restored", "comment": "owner: team b",
        "memory": (4 * GIB).to_string(),
        "memory_policy": {"guaranteed": (2 * GIB).to_string(), "max": (8 * GIB).to_string()},
        "cpu": {"topology": {"sockets": "2", "cores": "2", "threads": "2"}},
        "bios": {"type": "q35_ovmf"}, "custom_emulated_machine": "pc-q35-rhel8.6.0",
        "type": "server", "time_zone": {"name": "Asia/Tokyo"},
        "os": {"type": "rhel_9x64", "boot": {"devices": {"device": ["hd", "cdrom"]}}},
        "high_availability": {"enabled": "true", "priority": "1"},
        "custom_properties": {"custom_property": [{"name": "sap_agent", "value": "true"}]},
    })
}

/// What `create_body` asks for, as the engine reads it back.
fn created_configuration() -> Value {
    json!({
        "memory": (4 * GIB).to_string(), "guaranteed": (2 * GIB).to_string(),
        "max": (8 * GIB).to_string(),
        "topology": {"cores": "2", "sockets": "2", "threads": "2"},
        "bios": "q35_ovmf", "machine": "pc-q35-rhel8.6.0", "os": "rhel_9x64",
        "boot": ["hd", "cdrom"], "type": "server", "time_zone": "Asia/Tokyo",
        "ha": {"enabled": "true", "priority": "1"},
        "description": "restored", "comment": "owner: team b",
        "properties": [{"name": "sap_agent", "value": "true"}],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vm_created_and_edited_with_its_configuration_reads_it_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("dr"), seed()).await;
    let made = sim.post("/vms", create_body("restored"), 201).await;
    assert_eq!(configuration(&made), created_configuration(), "the answer");
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(
        configuration(&sim.get(&format!("/vms/{id}")).await),
        created_configuration()
    );
    let front = profile_id(&sim, "front").await;
    let nic = json!({"name": "nic1", "interface": "e1000", "linked": "false", "plugged": "true",
                     "vnic_profile": {"id": front}, "mac": {"address": "56:6f:12:34:56:78"}});
    let added = sim.post(&format!("/vms/{id}/nics"), nic, 201).await;
    let unplugged = json!({"name": "nic2", "plugged": "false"});
    sim.post(&format!("/vms/{id}/nics"), unplugged, 201).await;
    let found = nics(&sim, &id).await;
    assert_eq!(
        found[0],
        json!(["nic1", "e1000", "56:6f:12:34:56:78", front, "false", "true"])
    );
    assert_eq!(
        (&found[1][1], &found[1][3], &found[1][5]),
        (&json!("virtio"), &Value::Null, &json!("false"))
    );
    let one = sim.get(added["href"].as_str().expect("href")).await;
    assert_eq!(one["name"], "nic1");

    // An edit changes what it names and keeps the rest (the memory policy too).
    let edit = json!({"memory": (6 * GIB).to_string(), "cpu": {"topology": {"sockets": "4"}},
                      "high_availability": {"enabled": "false"}, "os": {"type": "windows_2022"}});
    let (status, edited) = sim
        .call(Method::PUT, &format!("/vms/{id}"), Some(edit))
        .await;
    assert_eq!(status, 200, "{edited}");
    let mut expected = created_configuration();
    expected["memory"] = json!((6 * GIB).to_string());
    expected["topology"]["sockets"] = json!("4");
    expected["ha"]["enabled"] = json!("false");
    expected["os"] = json!("windows_2022");
    assert_eq!(
        configuration(&sim.get(&format!("/vms/{id}")).await),
        expected
    );
    let too_much = json!({"memory": (16 * GIB).to_string()});
    let (status, fault) = sim
        .call(Method::PUT, &format!("/vms/{id}"), Some(too_much))
        .await;
    assert_eq!(status, 409, "{fault}");
    assert_eq!(
        fault["detail"],
        "[Cannot edit VM. Memory size (16384MB) cannot exceed maximum memory size (8192MB).]"
    );
    let (status, fault) = sim
        .call(
            Method::POST,
            "/vms",
            Some(json!({"name": "bad", "cluster": {"name": "Default"},
            "template": {"name": "Blank"}, "bios": {"type": "uefi"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &fault["reason"]),
        (400, &json!("Invalid value")),
        "{fault}"
    );
    sim.running.shutdown().await;
}

/// `create_body` as the SDK would send it, in XML.
const CREATE_XML: &str = r"<vm><name>from-xml</name><cluster><name>Default</name></cluster>
<template><name>Blank</name></template><description>restored</description>
<comment>owner: team b</comment><memory>4294967296</memory>
<memory_policy><guaranteed>2147483648</guaranteed><max>8589934592</max></memory_policy>
<cpu><topology><sockets>2</sockets><cores>2</cores><threads>2</threads></topology></cpu>
<bios><type>q35_ovmf</type></bios><custom_emulated_machine>pc-q35-rhel8.6.0</custom_emulated_machine>
<type>server</type><time_zone><name>Asia/Tokyo</name></time_zone>
<os><type>rhel_9x64</type><boot><devices><device>hd</device><device>cdrom</device></devices></boot></os>
<high_availability><enabled>true</enabled><priority>1</priority></high_availability>
<custom_properties><custom_property><name>sap_agent</name><value>true</value></custom_property></custom_properties>
</vm>";

#[tokio::test(flavor = "multi_thread")]
async fn an_xml_body_makes_the_same_vm_and_nic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("dr"), seed()).await;
    let (status, text) = xml_call(&sim, Method::POST, "/vms", Some(CREATE_XML)).await;
    assert_eq!(status, 201, "{text}");
    let made = ovbackup::sim::body::xml_to_json(&text).expect("XML");
    assert_eq!(
        configuration(&made),
        created_configuration(),
        "the XML answer"
    );
    let id = made["id"].as_str().expect("id").to_owned();
    let json = sim.get(&format!("/vms/{id}")).await;
    assert_eq!(
        configuration(&json),
        created_configuration(),
        "read in JSON"
    );
    let back = profile_id(&sim, "back").await;
    let nic =
        format!("<nic><name>nic1</name><vnic_profile id=\"{back}\"/><linked>true</linked></nic>");
    let (status, text) = xml_call(&sim, Method::POST, &format!("/vms/{id}/nics"), Some(&nic)).await;
    assert_eq!(status, 201, "{text}");
    let found = nics(&sim, &id).await;
    assert_eq!(
        (&found[0][1], &found[0][3], &found[0][4]),
        (&json!("virtio"), &json!(back), &json!("true"))
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nic_refusals_are_the_engines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let plain = sim.vm("plain").await["id"].as_str().expect("id").to_owned();
    let nics_path = format!("/vms/{plain}/nics");
    let (client, path) = (&sim, nics_path.as_str());
    let add = move |body: Value| client.call(Method::POST, path, Some(body));

    let (status, fault) =
        add(json!({"name": "nic1", "mac": {"address": "56:6f:aa:bb:cc:01"}})).await;
    assert_eq!(status, 409, "{fault}");
    assert_eq!(
        fault["detail"],
        "[MAC Address 56:6f:aa:bb:cc:01 is already in use by VM or snapshot: app01.]"
    );
    let (status, fault) =
        add(json!({"name": "nic1", "vnic_profile": {"id": "no-such-profile"}})).await;
    assert_eq!(status, 400, "{fault}");
    assert_eq!(
        fault["detail"],
        "[Cannot add Interface. The specified VM network interface profile doesn't exist.]"
    );
    let (status, fault) = add(json!({"interface": "virtio"})).await;
    assert_eq!(
        (status.as_u16(), &fault["detail"]),
        (400, &json!("Nic [name] required for add"))
    );
    let (status, fault) = add(json!({"name": "nic1", "interface": "ne2000"})).await;
    assert_eq!(
        (status.as_u16(), &fault["reason"]),
        (400, &json!("Invalid value")),
        "{fault}"
    );
    let (status, fault) = add(json!({"name": "nic1", "mac": {"address": "56:6f:zz"}})).await;
    assert_eq!(status, 400, "{fault}");
    assert!(
        fault["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("HH:HH:HH:HH:HH:HH"),
        "{fault}"
    );

    let first = sim.post(&nics_path, json!({"name": "nic1"}), 201).await;
    let second = sim.post(&nics_path, json!({"name": "nic2"}), 201).await;
    assert_ne!(
        first["mac"]["address"], second["mac"]["address"],
        "the pool gives each its own"
    );
    let (status, fault) = add(json!({"name": "nic1"})).await;
    assert_eq!(
        (status.as_u16(), &fault["detail"]),
        (409, &json!("[Network interface name is already in use]"))
    );
    let (status, _) = sim.call(Method::GET, "/vms/no-such-vm/nics", None).await;
    assert_eq!(status, 404);
    let (status, body) = sim
        .call(Method::GET, &format!("{nics_path}/no-such-nic"), None)
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (404, Value::Null),
        "404 with an empty body"
    );
    let (status, _) = sim
        .call(Method::DELETE, &format!("{nics_path}/no-such-nic"), None)
        .await;
    assert_eq!(status, 404);

    let first_href = first["href"].as_str().expect("href").to_owned();
    sim.post(&format!("/vms/{plain}/start"), json!({}), 200)
        .await;
    let (status, fault) = sim.call(Method::DELETE, &first_href, None).await;
    assert_eq!(status, 409, "{fault}");
    assert_eq!(
        fault["detail"],
        "[Cannot remove Interface. The VM Network Interface is plugged to a running VM.]"
    );
    sim.post(&format!("/vms/{plain}/stop"), json!({}), 200)
        .await;
    let (status, _) = sim.call(Method::DELETE, &first_href, None).await;
    assert_eq!(status, 200);
    assert_eq!(nics(&sim, &plain).await.len(), 1);
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn networks_and_vnic_profiles_by_name_and_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let names = |list: &Value, key: &str| -> Vec<String> {
        let each = list[key].as_array().cloned().unwrap_or_default();
        each.iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        names(&sim.get("/networks").await, "network"),
        ["ovirtmgmt", "front", "back"]
    );
    let front = sim.get("/networks?search=name%3Dfront").await;
    assert_eq!(names(&front, "network"), ["front"]);
    let front_id = front["network"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        sim.get(&format!("/networks/{front_id}")).await["name"],
        "front"
    );
    let of_front = sim.get(&format!("/networks/{front_id}/vnicprofiles")).await;
    assert_eq!(names(&of_front, "vnic_profile"), ["front", "front-qos"]);

    let profiles = sim.get("/vnicprofiles").await;
    assert_eq!(
        names(&profiles, "vnic_profile"),
        ["ovirtmgmt", "front", "front-qos", "back"]
    );
    let management = &profiles["vnic_profile"][0];
    assert_eq!(
        (&management["id"], &management["network"]["id"]),
        (
            &json!("0000000a-000a-000a-000a-000000000398"),
            &json!("00000000-0000-0000-0000-000000000009")
        ),
        "the management network's ids are every engine's"
    );
    let qos = profile_id(&sim, "front-qos").await;
    let profile = sim.get(&format!("/vnicprofiles/{qos}")).await;
    assert_eq!(profile["network"]["id"], front_id);
    let xml = xml_get(&sim, &format!("/vnicprofiles/{qos}")).await;
    assert_eq!(
        (&xml["name"], &xml["network"]["id"]),
        (&json!("front-qos"), &json!(front_id))
    );

    let cluster = sim.get("/clusters").await["cluster"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let in_cluster = sim.get(&format!("/clusters/{cluster}/networks")).await;
    assert_eq!(
        names(&in_cluster, "network"),
        ["ovirtmgmt", "front", "back"]
    );
    assert_eq!(in_cluster["network"][0]["usages"]["usage"][1], "management");
    for path in [
        "/networks/nope",
        "/vnicprofiles/nope",
        "/networks/nope/vnicprofiles",
        "/clusters/nope/networks",
    ] {
        let (status, _) = sim.call(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_vms_nics_go_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("prod"), seed()).await;
    let app01 = sim.vm("app01").await["id"].as_str().expect("id").to_owned();
    let plain = sim.vm("plain").await["id"].as_str().expect("id").to_owned();
    let (status, _) = sim
        .call(Method::DELETE, &format!("/vms/{app01}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = sim
        .call(Method::GET, &format!("/vms/{app01}/nics"), None)
        .await;
    assert_eq!(status, 404);
    let kept = json!({"name": "nic1", "mac": {"address": "56:6f:aa:bb:cc:01"}});
    let added = sim.post(&format!("/vms/{plain}/nics"), kept, 201).await;
    assert_eq!(
        added["mac"]["address"], "56:6f:aa:bb:cc:01",
        "the removed VM's MAC is free"
    );
    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_from_before_configurations_loads_with_the_engines_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("prod");
    let sim = Sim::start(&state, seed()).await;
    sim.running.shutdown().await;
    let path = state.join("inventory.json");
    let mut inventory: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("state")).expect("JSON");
    let top = inventory.as_object_mut().expect("object");
    for key in ["networks", "vnic_profiles", "mac_pool"] {
        top.remove(key);
    }
    for vm in inventory["vms"].as_array_mut().expect("vms") {
        let vm = vm.as_object_mut().expect("vm");
        vm.remove("settings");
        vm.remove("nics");
        for attachment in vm["attachments"].as_array_mut().expect("attachments") {
            attachment
                .as_object_mut()
                .expect("attachment")
                .remove("logical_name");
        }
    }
    std::fs::write(&path, serde_json::to_string(&inventory).expect("JSON")).expect("written");

    let sim = Sim::start(&state, seed()).await;
    let app01 = sim.vm("app01").await;
    let found = configuration(&app01);
    assert_eq!(
        (&found["bios"], &found["topology"]["sockets"], &found["max"]),
        (
            &json!("q35_ovmf"),
            &json!("1"),
            &json!((32 * GIB).to_string())
        )
    );
    let id = app01["id"].as_str().expect("id");
    assert_eq!(sim.get(&format!("/vms/{id}/nics")).await["nic"], json!([]));
    let networks = sim.get("/networks").await;
    assert_eq!(networks["network"][0]["name"], "ovirtmgmt", "{networks}");
    sim.running.shutdown().await;
}
