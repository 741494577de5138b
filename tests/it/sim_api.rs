//! ovsim's control plane, first part, driven with a plain HTTPS client that trusts only the CA
//! ovsim made: SSO tokens and their expiry, the CA at the PKI resource URL, the API root in JSON
//! and XML, and the engine's HTML 401.

use ovbackup::sim::server::{Running, ServeOptions, start};

async fn simulator(dir: &std::path::Path, ttl: i64) -> Running {
    let options = ServeOptions {
        state: dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        token_ttl: chrono::Duration::seconds(ttl),
        seed: None,
        imageio: None,
        version: Default::default(),
        pace: ovbackup::sim::server::DEFAULT_PACE,
    };
    start(&options).await.expect("ovsim starts")
}

fn client(sim: &Running) -> reqwest::Client {
    crate::support::https_client(&sim.pki.ca_cert)
}

/// Logs in and returns the `Authorization` header value.
async fn bearer_of(http: &reqwest::Client, sim: &Running, password: &str) -> String {
    let token: serde_json::Value = login(http, sim, password).await.json().await.expect("JSON");
    format!("Bearer {}", token["access_token"].as_str().expect("token"))
}

/// The status of `HEAD` on the API root with that `Authorization`.
async fn head_status(http: &reqwest::Client, sim: &Running, bearer: &str) -> reqwest::StatusCode {
    http.head(sim.api_url())
        .header("Authorization", bearer)
        .send()
        .await
        .expect("HEAD")
        .status()
}

async fn login(http: &reqwest::Client, sim: &Running, password: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "password"),
        ("scope", "ovirt-app-api"),
        ("username", "admin@internal"),
        ("password", password),
    ];
    http.post(format!("{}/ovirt-engine/sso/oauth/token", sim.base_url()))
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .expect("token request")
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_tokens_the_ca_and_the_api_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = simulator(dir.path(), 3600).await;
    let http = client(&sim);

    let ca = http
        .get(format!(
            "{}/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA",
            sim.base_url()
        ))
        .send()
        .await
        .expect("CA");
    assert_eq!(ca.headers()["content-type"], "application/x-x509-ca-cert");
    assert_eq!(
        ca.text().await.expect("PEM"),
        std::fs::read_to_string(&sim.pki.ca_cert).expect("CA file")
    );

    let refused = login(&http, &sim, "wrong").await;
    assert_eq!(refused.status(), 400);
    let refused: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(refused["error_code"], "access_denied");

    let password = sim.users["admin@internal"].clone();
    let token: serde_json::Value = login(&http, &sim, &password)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(token["token_type"], "bearer");
    assert!(
        token["exp"]
            .as_str()
            .expect("exp is a string")
            .parse::<i64>()
            .is_ok()
    );
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));

    let root: serde_json::Value = http
        .get(sim.api_url())
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("root")
        .json()
        .await
        .expect("JSON");
    assert_eq!(root["product_info"]["version"]["major"], "4");
    assert_eq!(
        root["special_objects"]["blank_template"]["id"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert!(root["time"].is_number(), "dates are epoch milliseconds");

    let xml = http
        .get(sim.api_url())
        .header("Authorization", &bearer)
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("root");
    assert_eq!(xml.headers()["content-type"], "application/xml");
    let xml = xml.text().await.expect("XML");
    assert!(
        xml.contains("<api>")
            && xml.contains("<major>4</major>")
            && xml.contains("<link href=\"/ovirt-engine/api/vms\" rel=\"vms\"/>"),
        "{xml}"
    );

    let anonymous = http.get(sim.api_url()).send().await.expect("root");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"RESTAPI\""
    );
    assert!(anonymous.text().await.expect("body").contains("<html>"));

    let form = [
        ("scope", "ovirt-app-api"),
        ("token", token["access_token"].as_str().expect("token")),
    ];
    http.post(format!(
        "{}/ovirt-engine/services/sso-logout",
        sim.base_url()
    ))
    .form(&form)
    .send()
    .await
    .expect("logout");
    let revoked = http
        .head(sim.api_url())
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(revoked.status(), 401, "a revoked token is refused");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_refused_and_a_new_login_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = simulator(dir.path(), 1).await;
    let http = client(&sim);
    let password = sim.users["admin@internal"].clone();
    let bearer = bearer_of(&http, &sim, &password).await;
    assert_eq!(head_status(&http, &sim, &bearer).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(head_status(&http, &sim, &bearer).await, 401);
    let bearer = bearer_of(&http, &sim, &password).await;
    assert_eq!(head_status(&http, &sim, &bearer).await, 200);
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_state_is_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = simulator(dir.path(), 60).await;
    let (ca, users) = (
        std::fs::read_to_string(&first.pki.ca_cert).expect("CA"),
        first.users.clone(),
    );
    first.stop();
    let second = simulator(dir.path(), 60).await;
    assert_eq!(
        std::fs::read_to_string(&second.pki.ca_cert).expect("CA"),
        ca
    );
    assert_eq!(second.users, users);
    second.stop();
}

fn seed() -> ovbackup::sim::inventory::Seed {
    serde_json::from_value(crate::support::engine::seed()).expect("seed")
}

pub async fn seeded(dir: &std::path::Path) -> (Running, reqwest::Client, String) {
    seeded_with(dir, false).await
}

/// A seeded simulator, logged in; with `data_plane`, its real ovirt-imageio daemon runs too.
async fn seeded_with(
    dir: &std::path::Path,
    data_plane: bool,
) -> (Running, reqwest::Client, String) {
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = ServeOptions {
        state: dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        token_ttl: chrono::Duration::seconds(600),
        seed: Some(seed()),
        imageio: data_plane.then(|| ovbackup::sim::imageio::executable(project)),
        version: Default::default(),
        pace: ovbackup::sim::server::DEFAULT_PACE,
    };
    let sim = start(&options).await.expect("ovsim starts");
    let http = client(&sim);
    let password = sim.users["admin@internal"].clone();
    let bearer = bearer_of(&http, &sim, &password).await;
    (sim, http, bearer)
}

async fn get_json(http: &reqwest::Client, bearer: &str, url: &str) -> serde_json::Value {
    let response = http
        .get(url)
        .header("Authorization", bearer)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeded_inventory_in_the_engines_shapes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = seeded(dir.path()).await;
    let api = sim.api_url();

    let found = get_json(
        &http,
        &bearer,
        &format!("{api}/vms?search=name%3D%22WEB%2001%22"),
    )
    .await;
    let vms = found["vm"].as_array().expect("a vm list");
    assert_eq!(
        vms.len(),
        1,
        "search is case-insensitive by default and takes quoted names"
    );
    let vm = &vms[0];
    assert_eq!(vm["name"], "web 01");
    assert_eq!(vm["memory"], "2147483648", "integers are strings");
    assert_eq!(vm["status"], "up");
    assert!(vm["host"]["id"].is_string(), "a running VM names its host");
    let none = get_json(
        &http,
        &bearer,
        &format!("{api}/vms?search=name%3DWEB%2001&case_sensitive=true"),
    )
    .await;
    assert_eq!(none["vm"], serde_json::json!([]));

    let vm_id = vm["id"].as_str().expect("id");
    let attachments = get_json(
        &http,
        &bearer,
        &format!("{api}/vms/{vm_id}/diskattachments"),
    )
    .await;
    let attachments = attachments["disk_attachment"]
        .as_array()
        .expect("attachments");
    assert_eq!(attachments.len(), 2);
    assert_eq!(
        (
            attachments[0]["bootable"].as_str(),
            attachments[1]["bootable"].as_str()
        ),
        (Some("true"), Some("false"))
    );
    assert_eq!(attachments[1]["interface"], "virtio");
    let disk_id = attachments[0]["disk"]["id"].as_str().expect("disk id");
    assert_eq!(
        attachments[0]["id"], disk_id,
        "the attachment id is the disk id"
    );

    let disk = get_json(&http, &bearer, &format!("{api}/disks/{disk_id}")).await;
    assert_eq!(
        (disk["provisioned_size"].as_str(), disk["format"].as_str()),
        (Some("67108864"), Some("cow"))
    );
    let file = dir.path().join(format!("disks/{disk_id}.qcow2"));
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&file)
        .output()
        .expect("qemu-img");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("JSON");
    assert_eq!(
        info["virtual-size"], 67108864,
        "the disk is a real qcow2 file of that size"
    );
    let map = std::process::Command::new("qemu-img")
        .args(["map", "-U", "--output=json"])
        .arg(&file)
        .output()
        .expect("qemu-img");
    let map: serde_json::Value = serde_json::from_slice(&map.stdout).expect("JSON");
    let data: Vec<(u64, u64)> = map
        .as_array()
        .expect("map")
        .iter()
        .filter(|e| e["data"] == true)
        .map(|e| {
            (
                e["start"].as_u64().expect("start"),
                e["length"].as_u64().expect("length"),
            )
        })
        .collect();
    assert_eq!(
        data,
        [(0, 4 * 1024 * 1024)],
        "the seed's guest data is written"
    );

    let clusters = get_json(&http, &bearer, &format!("{api}/clusters?search=name%3DDR")).await;
    assert_eq!(clusters["cluster"].as_array().map(Vec::len), Some(1));

    let db = get_json(&http, &bearer, &format!("{api}/vms?search=name%3Ddb01")).await;
    let db_id = db["vm"][0]["id"].as_str().expect("id").to_owned();
    assert!(
        db["vm"][0].get("host").is_none(),
        "a stopped VM has no host"
    );
    let empty = http
        .get(format!("{api}/vms/{db_id}/diskattachments"))
        .header("Authorization", &bearer)
        .header("Accept", "application/xml")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("XML");
    assert!(
        empty.trim_end().ends_with("<disk_attachments/>"),
        "an empty collection is a self-closing element: {empty}"
    );

    let missing = http
        .get(format!("{api}/vms/00000000-1111-2222-3333-444444444444"))
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    assert!(
        missing.bytes().await.expect("body").is_empty(),
        "an unknown id is 404 with an empty body"
    );
    sim.stop();

    let again = seeded(dir.path()).await;
    let kept = get_json(
        &again.1,
        &again.2,
        &format!("{}/disks/{disk_id}", again.0.api_url()),
    )
    .await;
    assert_eq!(
        kept["alias"], "web01_os",
        "the inventory is kept across restarts"
    );
    again.0.stop();
}

async fn phase(http: &reqwest::Client, bearer: &str, url: &str) -> String {
    get_json(http, bearer, url).await["phase"]
        .as_str()
        .expect("phase")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_transfer_serves_the_disk_through_the_real_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = seeded_with(dir.path(), true).await;
    let api = sim.api_url();
    let disks = get_json(
        &http,
        &bearer,
        &format!("{api}/disks?search=name%3Dweb01_os"),
    )
    .await;
    let disk_id = disks["disk"][0]["id"].as_str().expect("disk").to_owned();

    let request =
        serde_json::json!({"disk": {"id": disk_id}, "direction": "download", "format": "raw"});
    let post = |url: String, body: serde_json::Value| {
        http.post(url)
            .header("Authorization", &bearer)
            .json(&body)
            .send()
    };
    let refused = post(format!("{api}/imagetransfers"), request.clone())
        .await
        .expect("POST");
    assert_eq!(
        refused.status(),
        409,
        "a running VM's disk is not downloaded"
    );
    let fault: serde_json::Value = refused.json().await.expect("fault");
    assert!(
        fault["detail"]
            .as_str()
            .is_some_and(|d| d.contains("non-Down VMs: web 01")),
        "{fault}"
    );
    let vm = &get_json(
        &http,
        &bearer,
        &format!("{api}/vms?search=name%3D%22web%2001%22"),
    )
    .await["vm"][0];
    let stop = post(
        format!(
            "{}/stop",
            vm["href"]
                .as_str()
                .map(|h| format!("{}{h}", sim.base_url()))
                .expect("href")
        ),
        serde_json::json!({}),
    )
    .await
    .expect("POST stop");
    assert_eq!(stop.status(), 200);
    let created = post(format!("{api}/imagetransfers"), request.clone())
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("JSON");
    assert_eq!(
        (created["phase"].as_str(), created["image"]["id"].as_str()),
        (Some("initializing"), Some(disk_id.as_str()))
    );
    let transfer = created["href"]
        .as_str()
        .expect("href")
        .trim_start_matches("/ovirt-engine/api")
        .to_owned();
    let transfer = format!("{api}{transfer}");
    let url = created["transfer_url"]
        .as_str()
        .expect("transfer_url")
        .to_owned();

    assert_eq!(
        get_json(&http, &bearer, &format!("{api}/disks/{disk_id}")).await["status"],
        "locked"
    );
    let second = http
        .post(format!("{api}/imagetransfers"))
        .header("Authorization", &bearer)
        .json(&request)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        second.status(),
        409,
        "a locked disk refuses a second transfer"
    );

    assert_eq!(
        phase(&http, &bearer, &transfer).await,
        "initializing",
        "each phase takes at least one poll"
    );
    assert_eq!(phase(&http, &bearer, &transfer).await, "transferring");
    let data = http
        .get(&url)
        .header("Range", "bytes=0-4194303")
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(data.len(), 4 * 1024 * 1024);
    assert!(
        data.iter().all(|b| *b == 17),
        "the seeded guest data comes through imageio"
    );

    let finalized = http
        .post(format!("{transfer}/finalize"))
        .header("Authorization", &bearer)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("POST");
    assert_eq!(finalized.status(), 200);
    assert_eq!(phase(&http, &bearer, &transfer).await, "finalizing_success");
    assert_eq!(phase(&http, &bearer, &transfer).await, "finished_success");
    assert_eq!(
        get_json(&http, &bearer, &format!("{api}/disks/{disk_id}")).await["status"],
        "ok"
    );
    assert_eq!(
        http.get(&url).send().await.expect("GET").status(),
        403,
        "the ticket is gone after finalize"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_into_a_new_disk_equals_its_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = seeded_with(&dir.path().join("state"), true).await;
    let api = sim.api_url();
    const MIB: u64 = 1024 * 1024;

    let new_disk = serde_json::json!({"alias": "restored", "format": "cow", "sparse": "true", "provisioned_size": "33554432",
        "storage_domains": {"storage_domain": [{"name": "data"}]}});
    let created = http
        .post(format!("{api}/disks"))
        .header("Authorization", &bearer)
        .json(&new_disk)
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);
    let disk_id = created.json::<serde_json::Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let disk_url = format!("{api}/disks/{disk_id}");
    assert_eq!(
        get_json(&http, &bearer, &disk_url).await["status"],
        "locked",
        "a new disk is locked for a poll"
    );
    assert_eq!(get_json(&http, &bearer, &disk_url).await["status"], "ok");

    let request =
        serde_json::json!({"disk": {"id": disk_id}, "direction": "upload", "format": "raw"});
    let created: serde_json::Value = http
        .post(format!("{api}/imagetransfers"))
        .header("Authorization", &bearer)
        .json(&request)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let transfer = format!(
        "{api}/imagetransfers/{}",
        created["id"].as_str().expect("id")
    );
    let url = created["transfer_url"].as_str().expect("url").to_owned();
    while phase(&http, &bearer, &transfer).await != "transferring" {}

    for (offset, length, byte) in [(0, 4 * MIB, 0x11_u8), (8 * MIB, MIB, 0x22)] {
        let put = http
            .put(format!("{url}?flush=n"))
            .header(
                "Content-Range",
                format!("bytes {offset}-{}/*", offset + length - 1),
            )
            .body(vec![byte; length as usize])
            .send()
            .await
            .expect("PUT");
        assert!(put.status().is_success(), "PUT: {}", put.status());
    }
    let flush = http
        .patch(&url)
        .json(&serde_json::json!({"op": "flush"}))
        .send()
        .await
        .expect("PATCH");
    assert!(flush.status().is_success());
    http.post(format!("{transfer}/finalize"))
        .header("Authorization", &bearer)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("finalize");
    while phase(&http, &bearer, &transfer).await != "finished_success" {}

    let expected = dir.path().join("expected.qcow2");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("qemu tool");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let expected_path = expected.to_str().expect("utf-8");
    run(&[
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        expected_path,
        "32M",
    ]);
    run(&[
        "qemu-io",
        "-f",
        "qcow2",
        "-c",
        "write -P 0x11 0 4M",
        "-c",
        "write -P 0x22 8M 1M",
        expected_path,
    ]);
    let uploaded = dir.path().join(format!("state/disks/{disk_id}.qcow2"));
    run(&[
        "qemu-img",
        "compare",
        "-U",
        expected_path,
        uploaded.to_str().expect("utf-8"),
    ]);
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_and_locks_are_what_a_client_sees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = seeded(dir.path()).await;
    let api = sim.api_url();
    let admin = format!("{}/ovsim/admin", sim.base_url());

    let fault = serde_json::json!({"method": "GET", "path": "/ovirt-engine/api/vms", "count": 2, "status": 500,
        "fault": {"reason": "Operation Failed", "detail": "[Internal Engine Error]"}});
    let anonymous = http
        .post(format!("{admin}/faults"))
        .json(&fault)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        anonymous.status(),
        401,
        "the admin endpoint needs the admin's credentials"
    );
    let added = http
        .post(format!("{admin}/faults"))
        .header("Authorization", &bearer)
        .json(&fault)
        .send()
        .await
        .expect("POST");
    assert_eq!(added.status(), 204);
    for _ in 0..2 {
        let failed = http
            .get(format!("{api}/vms"))
            .header("Authorization", &bearer)
            .send()
            .await
            .expect("GET");
        assert_eq!(failed.status(), 500);
        let body: serde_json::Value = failed.json().await.expect("JSON");
        assert_eq!(body["detail"], "[Internal Engine Error]");
    }
    let vms = get_json(&http, &bearer, &format!("{api}/vms")).await;
    assert_eq!(
        vms["vm"].as_array().map(Vec::len),
        Some(2),
        "the third call succeeds"
    );

    let vm_id = vms["vm"][0]["id"].as_str().expect("id").to_owned();
    let lock = serde_json::json!({"kind": "vm", "id": vm_id, "locked": true});
    let locked = http
        .post(format!("{admin}/lock"))
        .header("Authorization", &bearer)
        .json(&lock)
        .send()
        .await
        .expect("POST");
    assert_eq!(locked.status(), 204);
    assert_eq!(
        get_json(&http, &bearer, &format!("{api}/vms/{vm_id}")).await["status"],
        "image_locked"
    );
    let unlock = serde_json::json!({"kind": "vm", "id": vm_id, "locked": false});
    http.post(format!("{admin}/lock"))
        .header("Authorization", &bearer)
        .json(&unlock)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        get_json(&http, &bearer, &format!("{api}/vms/{vm_id}")).await["status"],
        "up"
    );

    let cleared = serde_json::json!({"path": "/ovirt-engine/api/vms/*", "count": 5, "status": 503});
    http.post(format!("{admin}/faults"))
        .header("Authorization", &bearer)
        .json(&cleared)
        .send()
        .await
        .expect("POST");
    http.delete(format!("{admin}/faults"))
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        get_json(&http, &bearer, &format!("{api}/vms/{vm_id}")).await["name"],
        "web 01",
        "cleared faults no longer fire"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_write_lands_in_the_disk_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sim, http, bearer) = seeded_with(dir.path(), true).await;
    let api = sim.api_url();
    let disks = get_json(
        &http,
        &bearer,
        &format!("{api}/disks?search=name%3Dweb01_data"),
    )
    .await;
    let disk_id = disks["disk"][0]["id"].as_str().expect("disk").to_owned();
    let write =
        serde_json::json!({"disk": disk_id, "offset": 1048576, "length": 65536, "pattern": 51});
    let written = http
        .post(format!("{}/ovsim/admin/guest-write", sim.base_url()))
        .header("Authorization", &bearer)
        .json(&write)
        .send()
        .await
        .expect("POST");
    assert_eq!(written.status(), 204);
    let file = dir.path().join(format!("disks/{disk_id}.qcow2"));
    let read = std::process::Command::new("qemu-io")
        .args([
            "-r",
            "-U",
            "-f",
            "qcow2",
            "-c",
            "read -P 0x33 1048576 65536",
        ])
        .arg(&file)
        .output()
        .expect("qemu-io");
    assert!(
        read.status.success()
            && !String::from_utf8_lossy(&read.stdout).contains("Pattern verification failed"),
        "{}",
        String::from_utf8_lossy(&read.stdout)
    );
    sim.stop();
}
