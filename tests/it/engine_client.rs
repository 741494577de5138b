//! `ovrun`'s engine client and types: every real captured JSON body parses (shapes differ between
//! engines: scalars as strings, `{}` for an empty list, missing optional fields), and against
//! `ovsim` the client logs in again when its token expires, reads an HTML 401 and an empty 404,
//! and turns fault documents into errors that carry the engine's words.

use std::path::Path;

use ovbackup::plan::runner::EngineAccess;
use ovbackup::run::engine::{EngineClient, EngineError, Fault, Vms};
use ovbackup::sim::server::{ServeOptions, start};

use crate::support::fixtures;

fn capture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("engine-captures").join(name)).expect("capture")
}

#[test]
fn the_captured_json_bodies_parse() {
    let vms: Vms = serde_json::from_str(&capture("vms-json-ovirtk8s.json")).expect("VMs");
    assert!(!vms.vm.is_empty());
    for vm in &vms.vm {
        assert!(!vm.id.is_empty() && !vm.name.is_empty());
        assert!(vm.status.is_some(), "{}", vm.name);
        assert!(
            vm.memory.is_some_and(|m| m > 0),
            "memory as a string: {}",
            vm.name
        );
    }
    let action: Fault =
        serde_json::from_str(&capture("fault-action400-json-cockpit.json")).expect("fault");
    let inner = action.fault.expect("the fault inside the action");
    assert!(
        inner
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("Cannot hibernate VM"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_relogs_in_and_reads_the_engines_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = ServeOptions {
        state: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        token_ttl: chrono::Duration::seconds(1),
        seed: Some(serde_json::from_value(crate::support::engine::seed()).expect("seed")),
        imageio: None,
        version: Default::default(),
        pace: ovbackup::sim::server::DEFAULT_PACE,
    };
    let sim = start(&options).await.expect("ovsim");
    let access = EngineAccess {
        url: sim.api_url(),
        user: "admin@internal".into(),
        password_file: String::new(),
        password_credential: String::new(),
        ca_file: Some(sim.pki.ca_cert.to_str().expect("utf-8").to_owned()),
    };
    let password = sim.users["admin@internal"].clone();

    let wrong = EngineClient::new(&access, "not the password".into()).expect("client");
    let refused = wrong
        .vm_by_name("web 01")
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&refused, EngineError::Login { detail, .. } if detail.contains("incorrect")),
        "{refused}"
    );

    let client = EngineClient::new(&access, password).expect("client");
    let vm = client.vm_by_name("web 01").await.expect("VM");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let again = client
        .vm_by_name("web 01")
        .await
        .expect("a new login after the token expired (the engine answered an HTML 401)");
    assert_eq!(vm.id, again.id);

    let missing = client
        .get::<serde_json::Value>("/vms/00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("no such VM");
    assert!(missing.is_not_found(), "{missing}");
    let refused = client
        .post::<serde_json::Value>("/vms", &serde_json::json!({"name": "x"}))
        .await
        .expect_err("incomplete");
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(400));
    assert!(
        refused.to_string().contains("Incomplete parameters"),
        "{refused}"
    );

    let no_ca = EngineAccess {
        ca_file: None,
        ..access.clone()
    };
    let setup = EngineClient::new(&no_ca, String::new()).expect_err("no CA");
    assert!(setup.to_string().contains("ovrun cert fetch"), "{setup}");
    let not_api = EngineAccess {
        url: sim.base_url(),
        ..access.clone()
    };
    assert!(EngineClient::new(&not_api, String::new()).is_err());
    let plain = EngineAccess {
        url: sim.api_url().replace("https://", "http://"),
        ..not_api
    };
    let refused = EngineClient::new(&plain, String::new()).expect_err("plain HTTP");
    assert!(
        matches!(&refused, EngineError::Url { url, .. } if *url == plain.url),
        "{refused}"
    );
    assert!(refused.is_config() && setup.is_config(), "{refused}");
    assert!(Path::new(&sim.pki.ca_cert).exists());
    sim.stop();
}
