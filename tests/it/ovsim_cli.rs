//! The `ovsim` program as an operator runs it: `ovsim serve` in the background, `ovsim admin`
//! injecting a fault and writing as a guest, and SIGTERM stopping it with its data plane.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::engine::{MIB, raw_copy, seed};
use crate::support::https_client;

fn ovsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ovsim"))
        .args(args)
        .output()
        .expect("ovsim runs")
}

/// Processes whose command line mentions `text`.
fn processes_with(text: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", text])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_admin_and_a_clean_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("prod");
    let seed_file = dir.path().join("seed.json");
    std::fs::write(&seed_file, seed().to_string()).expect("seed");
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut server = Command::new(env!("CARGO_BIN_EXE_ovsim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .arg("--seed")
        .arg(&seed_file)
        .arg("--imageio")
        .arg(project.join(".venv/bin/ovirt-imageio"))
        .stdout(Stdio::null())
        .spawn()
        .expect("ovsim serve");
    let url_file = state.join("url");
    for _ in 0..300 {
        if url_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = std::fs::read_to_string(&url_file)
        .expect("STATE/url")
        .trim()
        .to_owned();
    let users: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("users.json")).expect("users"))
            .expect("JSON");
    let password = users["admin@internal"]
        .as_str()
        .expect("password")
        .to_owned();
    let http = https_client(&state.join("pki/ca.pem"));
    let get = |path: &str| {
        http.get(format!("{base}/ovirt-engine/api{path}"))
            .basic_auth("admin@internal", Some(&password))
            .header("Accept", "application/json")
            .send()
    };

    let fault =
        json!({"method": "GET", "path": "/ovirt-engine/api/vms", "status": 503}).to_string();
    let state_arg = state.to_str().expect("utf-8");
    let out = ovsim(&["admin", "--state", state_arg, "fault", &fault]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get("/vms").await.expect("GET").status(), 503);
    assert_eq!(
        get("/vms").await.expect("GET").status(),
        200,
        "one call only"
    );

    let disks: Value = get("/disks?search=name%3Dweb01_os")
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let disk = disks["disk"][0]["id"].as_str().expect("id").to_owned();
    let write =
        json!({"disk": disk, "offset": 10 * MIB, "length": MIB, "pattern": 0x5a}).to_string();
    let out = ovsim(&["admin", "--state", state_arg, "guest-write", &write]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = dir.path().join("copy.raw");
    raw_copy(&state.join("disks").join(format!("{disk}.qcow2")), &copy);
    let bytes = std::fs::read(&copy).expect("copy");
    let written = &bytes[(10 * MIB) as usize..(11 * MIB) as usize];
    assert!(
        written.iter().all(|b| *b == 0x5a),
        "the guest's write is in the disk"
    );

    let refused = ovsim(&["admin", "--state", state_arg, "lock", "{\"kind\": \"nic\"}"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lock:"));

    let imageio = state.join("imageio").to_str().expect("utf-8").to_owned();
    assert!(!processes_with(&imageio).is_empty(), "the daemon runs");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let status = tokio::task::block_in_place(|| server.wait()).expect("wait");
    assert!(status.success(), "{status}");
    assert_eq!(
        processes_with(&imageio),
        Vec::<String>::new(),
        "the daemon stopped with it"
    );
}
