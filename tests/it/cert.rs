//! `ovrun cert fetch`'s library against the simulated engine: the CA it serves at its PKI
//! resource URL, fetched on first contact and with a CA already kept, saved, and the expiry
//! warning.

use std::path::Path;
use std::process::Command;

use chrono::{Duration, Utc};
use ovbackup::run::cert::{CertError, Trust, expiry_warning, fetch, inspect, save};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sha2::{Digest, Sha256};

use crate::support::engine::{Sim, seed};

/// The fingerprint as `openssl x509 -fingerprint -sha256` prints it, or, without openssl, as
/// computed here from the DER.
fn reference_fingerprint(ca: &Path) -> String {
    match Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(ca)
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8(out.stdout).expect("UTF-8");
            // `sha256 Fingerprint=AA:BB:...` (the prefix's case differs between versions).
            text.trim()
                .split_once('=')
                .expect("openssl's fingerprint line")
                .1
                .to_owned()
        }
        _ => {
            let pem = std::fs::read_to_string(ca).expect("CA");
            let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(base64)
                .expect("base64");
            Sha256::digest(der)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        }
    }
}

/// A CA the simulator's certificate is not signed by.
fn other_ca() -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "some other CA");
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("CA").pem()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_save_and_warn_against_the_simulated_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(&dir.path().join("state"), seed()).await;
    let api = format!("{}/ovirt-engine/api", sim.running.base_url());
    let ca_file = sim.running.pki.ca_cert.clone();
    let ca_pem = std::fs::read_to_string(&ca_file).expect("the simulator's CA");

    // First contact: nothing verified, the same CA as the engine keeps.
    let first = fetch(&api, Trust::FirstContact)
        .await
        .expect("fetch on first contact");
    assert_eq!(first.pem, ca_pem);
    assert_eq!(first.sha256_fingerprint, reference_fingerprint(&ca_file));
    assert_eq!(first.subject, "CN=ovsim engine CA, O=ovsim");
    assert_eq!(inspect(&ca_pem).expect("the file inspects"), first);

    // Renewal: TLS verified with the CA kept.
    let renewed = fetch(&api, Trust::Existing(ca_file.clone()))
        .await
        .expect("fetch with the engine's CA");
    assert_eq!(renewed, first);
    // The API URL as operators write it, with a trailing slash, works as well.
    let slash = fetch(&format!("{api}/"), Trust::Existing(ca_file.clone()))
        .await
        .expect("fetch with a trailing slash");
    assert_eq!(slash, first);

    // A CA that did not sign the engine's certificate: refused, naming the file and the URL.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, other_ca()).expect("other CA");
    let error = fetch(&api, Trust::Existing(other.clone()))
        .await
        .expect_err("another CA must not verify the engine");
    let text = error.to_string();
    assert!(
        matches!(&error, CertError::Untrusted { ca_file, .. } if *ca_file == other),
        "{error:?}"
    );
    assert!(text.contains("pki-resource"), "{text}");
    assert!(text.contains(&other.display().to_string()), "{text}");

    // A CA file that is missing or not PEM is refused before connecting.
    for (bad, content) in [
        ("missing.pem", None),
        ("garbage.pem", Some("not a certificate")),
    ] {
        let path = dir.path().join(bad);
        if let Some(content) = content {
            std::fs::write(&path, content).expect("write");
        }
        let error = fetch(&api, Trust::Existing(path.clone()))
            .await
            .expect_err(bad);
        assert!(
            matches!(&error, CertError::TrustFile { path: p, .. } if *p == path),
            "{error:?}"
        );
    }

    // The engine answers, but not 200: an error naming the URL.
    let error = fetch(
        &format!("{}/nowhere/ovirt-engine/api", sim.running.base_url()),
        Trust::FirstContact,
    )
    .await
    .expect_err("no PKI resource under /nowhere");
    assert!(
        matches!(&error, CertError::Status { url, status }
            if url.contains("/nowhere/ovirt-engine/services/pki-resource") && status.as_u16() == 404),
        "{error:?}"
    );

    // Saved atomically, folders made.
    let saved = dir.path().join("etc/ovbackup/source-ca.pem");
    save(&first, &saved).expect("save");
    assert_eq!(std::fs::read_to_string(&saved).expect("saved"), first.pem);
    let leftovers: Vec<_> = std::fs::read_dir(saved.parent().expect("folder"))
        .expect("folder")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["source-ca.pem"]);
    // And again over the first copy.
    save(&first, &saved).expect("save again");
    assert_eq!(std::fs::read_to_string(&saved).expect("saved"), first.pem);

    // The simulator's CA is long-lived: no warning now; one 20 days before its end; after it,
    // an "expired" one.
    assert_eq!(expiry_warning(&first, Utc::now()), None);
    let soon = expiry_warning(&first, first.not_after - Duration::days(20)).expect("20 days left");
    assert!(soon.contains("CN=ovsim engine CA, O=ovsim"), "{soon}");
    assert!(soon.contains("in 20 days"), "{soon}");
    assert!(
        soon.contains(&first.not_after.format("%Y-%m-%d").to_string()),
        "{soon}"
    );
    let late = expiry_warning(&first, first.not_after + Duration::days(3)).expect("expired");
    assert!(late.contains("expired on"), "{late}");
    assert!(late.contains("3 days ago"), "{late}");

    sim.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_to_connect_to_or_no_api_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let error = fetch(
        &format!("https://127.0.0.1:{port}/ovirt-engine/api"),
        Trust::FirstContact,
    )
    .await
    .expect_err("nothing listens");
    assert!(
        matches!(&error, CertError::Request { url, .. } if url.contains(&port.to_string())),
        "{error:?}"
    );
    assert!(error.to_string().contains("reachable"), "{error}");

    let error = fetch("http://engine/ovirt-engine/api", Trust::FirstContact)
        .await
        .expect_err("plain HTTP");
    assert!(matches!(error, CertError::ApiUrl { .. }), "{error:?}");
}

#[test]
fn inspect_rejects_garbage() {
    for garbage in [
        "",
        "hello",
        "<html><body>Service unavailable</body></html>",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    ] {
        let error = inspect(garbage).expect_err(garbage);
        assert!(
            matches!(error, CertError::NotPem(_) | CertError::BadCertificate(_)),
            "{garbage:?}: {error:?}"
        );
        assert!(error.to_string().contains("certificate"), "{error}");
    }
    let key = KeyPair::generate().expect("key").serialize_pem();
    assert!(matches!(
        inspect(&key),
        Err(CertError::NotCertificate { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_names_why_tls_or_the_name_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Its certificate holds `localhost` and `127.0.0.1`, not 127.0.0.2.
    let sim =
        crate::support::engine::sim_without_data_plane(&dir.path().join("sim"), "127.0.0.2:0")
            .await;
    let port = sim.addr.port();
    let api = format!("https://127.0.0.2:{port}/ovirt-engine/api");
    let error = fetch(&api, Trust::Existing(sim.pki.ca_cert.clone()))
        .await
        .expect_err("not the certificate's name");
    assert!(matches!(&error, CertError::Tls { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "the server's certificate is not for 127.0.0.2:{port}"
        )),
        "{text}"
    );
    assert!(text.contains("\nhelp: use the engine's name"), "{text}");

    let error = fetch(
        "https://nonexistent.invalid/ovirt-engine/api",
        Trust::FirstContact,
    )
    .await
    .expect_err("no such host");
    assert!(matches!(&error, CertError::Request { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("the host name \"nonexistent.invalid\" does not resolve"),
        "{error}"
    );
    sim.shutdown().await;
}
