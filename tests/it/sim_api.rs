//! ovsim's control plane, first part, driven with a plain HTTPS client that trusts only the CA
//! ovsim made: SSO tokens and their expiry, the CA at the PKI resource URL, the API root in JSON
//! and XML, and the engine's HTML 401.

use ovbackup::sim::server::{Running, ServeOptions, start};

async fn simulator(dir: &std::path::Path, ttl: i64) -> Running {
    let options = ServeOptions {
        state: dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        token_ttl: chrono::Duration::seconds(ttl),
    };
    start(&options).await.expect("ovsim starts")
}

fn client(sim: &Running) -> reqwest::Client {
    let pem = std::fs::read(&sim.pki.ca_cert).expect("CA");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
        .build()
        .expect("client")
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
    let token: serde_json::Value = login(&http, &sim, &password)
        .await
        .json()
        .await
        .expect("JSON");
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token"));
    assert_eq!(
        http.head(sim.api_url())
            .header("Authorization", &bearer)
            .send()
            .await
            .expect("HEAD")
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        http.head(sim.api_url())
            .header("Authorization", &bearer)
            .send()
            .await
            .expect("HEAD")
            .status(),
        401
    );
    let again: serde_json::Value = login(&http, &sim, &password)
        .await
        .json()
        .await
        .expect("JSON");
    let bearer = format!("Bearer {}", again["access_token"].as_str().expect("token"));
    assert_eq!(
        http.head(sim.api_url())
            .header("Authorization", &bearer)
            .send()
            .await
            .expect("HEAD")
            .status(),
        200
    );
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
