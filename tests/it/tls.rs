//! Issue 11, items 2 and 6: `ovrun` sends a password only to the https URL it belongs to (a plain
//! HTTP listener receives nothing, a redirect to another origin is refused before anything is
//! sent there), and a request that got no answer names its cause with the engine URL (connection
//! refused, unknown host, unknown CA, name mismatch, an expired certificate, timeout), against
//! `ovsim`'s real TLS.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ovbackup::plan::runner::EngineAccess;
use ovbackup::run::engine::{EngineClient, EngineError};
use ovbackup::run::transport::TransportKind;
use ovbackup::sim::server::Running;
use serde_json::json;

use crate::support::engine::sim_without_data_plane;
use crate::support::ovrun::{SECRET, config_for, ovrun};

/// A plain TCP listener on loopback that records every byte any client sends it (each
/// connection is read for up to a second, then closed, so a client never hangs on it).
struct Recorder {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes);
                seen.lock().expect("lock").push(bytes);
            }
        });
        Recorder { addr, connections }
    }

    fn received(&self) -> Vec<Vec<u8>> {
        self.connections.lock().expect("lock").clone()
    }
}

#[test]
fn a_plain_http_engine_url_is_refused_before_any_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = Recorder::start();
    let url = format!("http://{}/ovirt-engine/api", listener.addr);
    let config = config_for(dir.path(), "web01", &url, None);
    let config = config.to_str().expect("utf-8");
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    for args in [
        &["backup", "--config", config][..],
        &["backup", "--config", config, "--full", "--now"],
        &["restore", "--config", config],
        &["restore", "--config", config, "--dry-run"],
        &[
            "restore",
            "--config",
            config,
            "--force",
            "--point",
            "20260101T000000Z",
        ],
        &[
            "cert", "fetch", "--config", config, "--engine", "source", "--out", ca,
        ],
        &[
            "cert", "fetch", "--config", config, "--engine", "target", "--out", ca,
        ],
    ] {
        let (code, log) = ovrun(args);
        assert_eq!(code, 2, "{args:?}: a configuration error\n{log}");
        assert!(log.contains(&url), "{args:?} names the URL: {log}");
        assert!(log.contains("https"), "{args:?} says what to do: {log}");
        assert!(!log.contains(SECRET), "{log}");
    }
    // The listener is still there (nothing closed it) and no client ever connected.
    assert_eq!(listener.received(), Vec::<Vec<u8>>::new());
    assert!(!Path::new(ca).exists());
}

fn access(url: &str, ca: &Path) -> EngineAccess {
    EngineAccess {
        url: url.to_owned(),
        user: "admin@internal".into(),
        password_file: String::new(),
        password_credential: String::new(),
        ca_file: Some(ca.to_str().expect("utf-8").to_owned()),
    }
}

/// What a first call of a client of `url` (trusting `ca`) fails with.
async fn first_call_error(url: &str, ca: &Path, timeout: Duration) -> EngineError {
    let client = EngineClient::new(&access(url, ca), SECRET.to_owned())
        .expect("a client")
        .with_timeout(timeout);
    client.vm_by_name("web 01").await.expect_err("no answer")
}

fn kind(error: &EngineError) -> Option<TransportKind> {
    match error {
        EngineError::Transport { kind, .. } => Some(*kind),
        _ => None,
    }
}

/// A CA the engine's certificate is not signed by.
fn other_ca(dir: &Path) -> PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let path = dir.join("other-ca.pem");
    std::fs::write(&path, params.self_signed(&key).expect("CA").pem()).expect("CA file");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn transport_errors_name_their_cause_and_the_engine_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Its certificate holds `localhost` and `127.0.0.1`, not 127.0.0.2.
    let sim = sim_without_data_plane(&dir.path().join("sim"), "127.0.0.2:0").await;
    let port = sim.addr.port();
    let ca = sim.pki.ca_cert.clone();
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    // Accepts and never answers: the TLS handshake waits for ever.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("address").port();
    let other = other_ca(dir.path());
    let limit = Duration::from_secs(120);
    for (url, trusted, timeout, expected, says) in [
        (
            format!("https://127.0.0.1:{closed}/ovirt-engine/api"),
            &ca,
            limit,
            TransportKind::Refused,
            format!("connection refused: nothing listens at 127.0.0.1:{closed}"),
        ),
        (
            "https://nonexistent.invalid/ovirt-engine/api".to_owned(),
            &ca,
            limit,
            TransportKind::Dns,
            "the host name \"nonexistent.invalid\" does not resolve".to_owned(),
        ),
        (
            format!("https://127.0.0.2:{port}/ovirt-engine/api"),
            &other,
            limit,
            TransportKind::UnknownCa,
            format!("not signed by the CA in {}", other.display()),
        ),
        (
            format!("https://127.0.0.2:{port}/ovirt-engine/api"),
            &ca,
            limit,
            TransportKind::NameMismatch,
            format!("the server's certificate is not for 127.0.0.2:{port}"),
        ),
        (
            format!("https://127.0.0.1:{silent_port}/ovirt-engine/api"),
            &ca,
            Duration::from_secs(1),
            TransportKind::Timeout,
            format!("no answer within 1 s from 127.0.0.1:{silent_port}"),
        ),
    ] {
        let error = first_call_error(&url, trusted, timeout).await;
        let text = error.to_string();
        assert_eq!(kind(&error), Some(expected), "{url}: {text}");
        assert!(
            text.contains(&url.replace("/api", "/sso/oauth/token")),
            "{text}"
        );
        assert!(text.contains(&says), "{url}: {text}");
        assert!(text.contains("\nhelp: "), "{text}");
        assert!(!text.contains("error sending request"), "{text}");
    }
    drop(silent);

    // The data plane says it the same way (imageio's ticket URLs, with the engine's client).
    let http = ovbackup::run::engine::https_client(ca.to_str()).expect("client");
    for (url, says) in [
        (
            format!("https://127.0.0.1:{closed}/images/ticket"),
            format!("connection refused: nothing listens at 127.0.0.1:{closed}"),
        ),
        (
            format!("https://127.0.0.2:{port}/images/ticket"),
            format!("the server's certificate is not for 127.0.0.2:{port}"),
        ),
    ] {
        let ticket = ovbackup::run::imageio::Ticket::new(http.clone(), &url);
        let text = ticket.extents("zero").await.expect_err(&url).to_string();
        assert!(text.contains(&url) && text.contains(&says), "{text}");
    }

    // The same through `ovrun backup`: the cause in the log, exit 1 (the engine failed, not the
    // configuration).
    let unknown_ca = config_for(
        dir.path(),
        "web01",
        &format!("https://127.0.0.2:{port}/ovirt-engine/api"),
        Some(&other),
    );
    let (code, log) = tokio::task::block_in_place(|| {
        ovrun(&["backup", "--config", unknown_ca.to_str().expect("utf-8")])
    });
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("not signed by the CA in"), "{log}");
    assert!(log.contains("ovrun cert fetch"), "{log}");
    sim.shutdown().await;
}

/// A small HTTPS server with `ovsim`'s certificate: `app` on 127.0.0.1, port chosen.
async fn https_server(sim: &Running, app: Router) -> SocketAddr {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
        &sim.pki.server_cert,
        &sim.pki.server_key,
    )
    .await
    .expect("TLS config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("address");
    let server = axum_server::from_tcp_rustls(listener, tls).expect("server");
    tokio::spawn(server.serve(app.into_make_service()));
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_elsewhere_never_gets_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = sim_without_data_plane(&dir.path().join("sim"), "127.0.0.1:0").await;
    // The thief: another origin (same host, another port), which records every body it gets.
    let stolen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = stolen.clone();
    let thief = https_server(
        &sim,
        Router::new().fallback(move |body: String| {
            let record = record.clone();
            async move {
                record.lock().expect("lock").push(body);
                axum::Json(json!({"access_token": "stolen"}))
            }
        }),
    )
    .await;
    let to = format!(
        "https://localhost:{}/ovirt-engine/sso/oauth/token",
        thief.port()
    );
    let location = to.clone();
    let engine = https_server(
        &sim,
        Router::new()
            .route(
                "/ovirt-engine/sso/oauth/token",
                post(move || {
                    let location = location.clone();
                    async move {
                        (
                            StatusCode::TEMPORARY_REDIRECT,
                            [(header::LOCATION, location)],
                        )
                            .into_response()
                    }
                }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/here")]) }),
            )
            .route("/here", get(|| async { "here" })),
    )
    .await;
    let url = format!("https://localhost:{}/ovirt-engine/api", engine.port());

    let error = first_call_error(&url, &sim.pki.ca_cert, Duration::from_secs(30)).await;
    let text = error.to_string();
    assert_eq!(kind(&error), Some(TransportKind::Redirect), "{text}");
    let from = url.replace("/api", "/sso/oauth/token");
    assert!(
        text.contains(&format!("redirected {from} to {to}")),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(*stolen.lock().expect("lock"), Vec::<String>::new());

    // Within the engine's own origin a redirect is followed.
    let http = ovbackup::run::engine::https_client(sim.pki.ca_cert.to_str()).expect("client");
    let here = http
        .get(format!("https://localhost:{}/moved", engine.port()))
        .send()
        .await
        .expect("followed")
        .text()
        .await
        .expect("text");
    assert_eq!(here, "here");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_engine_certificate_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server.not_before = rcgen::date_time_ymd(2020, 1, 1);
    server.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server_pem = server
        .signed_by(&server_key, &issuer)
        .expect("signed")
        .pem();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("CA file");
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        server_pem.into_bytes(),
        server_key.serialize_pem().into_bytes(),
    )
    .await
    .expect("TLS config");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let server = axum_server::from_tcp_rustls(listener, tls).expect("server");
    tokio::spawn(server.serve(Router::new().into_make_service()));

    let url = format!("https://localhost:{port}/ovirt-engine/api");
    let error = first_call_error(&url, &ca_file, Duration::from_secs(30)).await;
    let text = error.to_string();
    assert_eq!(kind(&error), Some(TransportKind::Expired), "{text}");
    assert!(text.contains("certificate is not valid now"), "{text}");
    assert!(
        text.contains("\nhelp: renew the engine's certificates"),
        "{text}"
    );
}
