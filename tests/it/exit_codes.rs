//! Issue 11, items 5 and 6: `ovrun`'s exit codes are the README's table (a configuration problem
//! is 2, a failed run 1), and `prune` and `verify` run over a folder of runner configs, as the
//! compiled maintenance units call them (`--config-dir`), each VM reported, the worst code.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::ovrun::config_for;

/// Runs `ovrun ARGS`: exit code, standard output, standard error.
fn ovrun(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
        .args(args)
        .output()
        .expect("ovrun runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the runner config at `path` with `change` applied, written as `name`.
fn changed(path: &Path, name: &str, change: impl Fn(&mut Value)) -> PathBuf {
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("config")).expect("JSON");
    change(&mut config);
    let out = path.with_file_name(name);
    std::fs::write(&out, serde_json::to_string_pretty(&config).expect("JSON")).expect("write");
    out
}

/// A CA certificate file (not the engine's: nothing here gets that far).
fn ca_file(dir: &Path) -> PathBuf {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let path = dir.join("ca.pem");
    std::fs::write(&path, params.self_signed(&key).expect("CA").pem()).expect("CA");
    path
}

#[test]
fn configuration_problems_exit_2_and_a_failed_run_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let ca = ca_file(dir.path());
    let url = format!("https://127.0.0.1:{closed}/ovirt-engine/api");
    let good = config_for(dir.path(), "web01", &url, Some(&ca));
    let set =
        |key: &'static str, value: Value| move |c: &mut Value| c["source"][key] = value.clone();
    let not_json = dir.path().join("not-json.json");
    std::fs::write(&not_json, "{\"format\": 1,").expect("write");
    let not_a_cert = dir.path().join("not-a-cert.pem");
    std::fs::write(&not_a_cert, "hello\n").expect("write");
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "a missing runner config",
            dir.path().join("nope.json"),
            "nope.json",
        ),
        (
            "a runner config that is not JSON",
            not_json,
            "not a runner config",
        ),
        (
            "a missing password file",
            changed(
                &good,
                "pw.json",
                set("password_file", json!("/nonexistent/pw")),
            ),
            "/nonexistent/pw",
        ),
        (
            "a missing CA file",
            changed(
                &good,
                "ca.json",
                set("ca_file", json!("/nonexistent/ca.pem")),
            ),
            "/nonexistent/ca.pem",
        ),
        (
            "no CA file",
            changed(&good, "no-ca.json", set("ca_file", Value::Null)),
            "no ca_file is configured",
        ),
        (
            "a CA file that is no certificate",
            changed(&good, "bad-ca.json", set("ca_file", json!(not_a_cert))),
            "holds no certificate",
        ),
        (
            "a URL that is not an engine API URL",
            changed(
                &good,
                "api.json",
                set("url", json!(format!("https://127.0.0.1:{closed}/api"))),
            ),
            "does not end with /ovirt-engine/api",
        ),
        (
            "an http URL",
            changed(
                &good,
                "http.json",
                set("url", json!(url.replace("https", "http"))),
            ),
            "is not https",
        ),
        (
            "an unknown key",
            changed(&good, "key.json", |c| c["extra"] = json!(1)),
            "unknown field",
        ),
    ];
    for (what, config, says) in &cases {
        let (code, _, log) = ovrun(&["backup", "--config", config.to_str().expect("utf-8")]);
        assert_eq!(code, 2, "{what}: {log}");
        assert!(log.contains(says), "{what}: {log}");
    }
    let good_arg = good.to_str().expect("utf-8");
    let no_target = changed(&good, "no-target.json", |c| c["target"] = Value::Null);
    for (what, args, code, says) in [
        (
            "the engine refused the connection",
            vec!["backup", "--config", good_arg],
            1,
            "connection refused",
        ),
        (
            "a restore without a DR engine",
            vec!["restore", "--config", no_target.to_str().expect("utf-8")],
            2,
            "",
        ),
        (
            "a bad instant",
            vec!["due", "--config", good_arg, "--at", "noon"],
            2,
            "RFC 3339",
        ),
        (
            "neither --config nor --config-dir",
            vec!["verify"],
            2,
            "--config-dir",
        ),
        (
            "an unknown option",
            vec!["prune", "--config", good_arg, "--bogus"],
            2,
            "--bogus",
        ),
        (
            "a merge of a point that is not there",
            vec![
                "merge",
                "--config",
                good_arg,
                "--point",
                "x",
                "--out",
                "/nonexistent/x",
            ],
            2,
            "no point x",
        ),
    ] {
        let (got, _, log) = ovrun(&args);
        assert_eq!(got, code, "{what}: {log}");
        assert!(log.contains(says), "{what}: {log}");
    }
}

#[test]
fn prune_and_verify_run_every_config_of_a_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = "https://engine.example.com/ovirt-engine/api";
    let configs = dir.path().join("runner");
    std::fs::create_dir(&configs).expect("folder");
    for vm in ["c", "a"] {
        let vm_dir = dir.path().join(vm);
        std::fs::create_dir(&vm_dir).expect("VM folder");
        let made = config_for(&vm_dir, vm, url, None);
        std::fs::rename(&made, configs.join(format!("{vm}.json"))).expect("move");
    }
    std::fs::write(configs.join("README.txt"), "not a config\n").expect("write");
    let folder = configs.to_str().expect("utf-8");

    let (code, out, log) = ovrun(&["verify", "--config-dir", folder]);
    assert_eq!(code, 0, "{out}{log}");
    assert_eq!(
        out,
        "a: 0 points, 0 files: no damage found\nc: 0 points, 0 files: no damage found\n"
    );
    let (code, out, log) = ovrun(&["prune", "--config-dir", folder, "--dry-run"]);
    assert_eq!(code, 0, "{out}{log}");
    let (code, out, log) = ovrun(&["prune", "--config-dir", folder]);
    assert_eq!(code, 0, "{out}{log}");
    // `--config` keeps working.
    let one = configs.join("a.json");
    let (code, out, _) = ovrun(&["verify", "--config", one.to_str().expect("utf-8")]);
    assert_eq!(
        (code, out.as_str()),
        (0, "a: 0 points, 0 files: no damage found\n")
    );

    // A broken config in the middle: reported, the others still run, the worst code.
    std::fs::write(configs.join("b.json"), "{").expect("write");
    for command in ["verify", "prune"] {
        let (code, out, log) = ovrun(&[command, "--config-dir", folder]);
        assert_eq!(code, 2, "{command}: {out}{log}");
        assert!(log.contains("b.json: "), "{command}: {log}");
        assert!(log.contains("not a runner config"), "{command}: {log}");
        if command == "verify" {
            assert!(out.starts_with("a: ") && out.contains("\nc: "), "{out}");
        }
    }

    // A folder with no config, or none at all: a configuration error.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("folder");
    for folder in [empty, dir.path().join("missing")] {
        for command in ["verify", "prune"] {
            let (code, _, log) = ovrun(&[command, "--config-dir", folder.to_str().expect("utf-8")]);
            assert_eq!(code, 2, "{command} {}: {log}", folder.display());
            assert!(log.contains(&folder.display().to_string()), "{log}");
            assert!(log.contains("help: "), "{log}");
        }
    }
}
