//! `ovplan validate`: every diagnostic code has a fixture under `tests/fixtures/err/`, and the
//! exact human and JSON output of each is a reviewed snapshot.

use ovbackup::plan::diagnostic::Code;
use serde_json::Value;

use crate::support::{fixture_names, ovplan};

#[test]
fn every_code_has_a_fixture_that_reports_it() {
    for code in Code::ALL {
        let name = code.as_str().trim_start_matches("ovplan::");
        let path = format!("err/{name}.json");
        let run = ovplan(&["validate", "--format", "json", &path]);
        let found: Vec<Value> = serde_json::from_str(&run.stdout).expect("JSON output");
        assert!(
            found.iter().any(|d| d["code"] == code.as_str()),
            "{path} does not report {code}: {}",
            run.stdout
        );
        let expected_exit = if found.iter().any(|d| d["severity"] == "error") {
            1
        } else {
            0
        };
        assert_eq!(run.code, expected_exit, "{path}");
    }
}

#[test]
fn error_fixtures_human_output() {
    for name in fixture_names("err") {
        let run = ovplan(&["validate", &format!("err/{name}.json")]);
        insta::assert_snapshot!(format!("human__{name}"), run.transcript());
    }
}

#[test]
fn error_fixtures_json_output() {
    for name in fixture_names("err") {
        let run = ovplan(&["validate", "--format", "json", &format!("err/{name}.json")]);
        insta::assert_snapshot!(format!("json__{name}"), run.transcript());
    }
}

#[test]
fn json_output_has_the_annotation_fields() {
    let run = ovplan(&["validate", "--format", "json", "err/bad-cron.json"]);
    let found: Vec<Value> = serde_json::from_str(&run.stdout).expect("JSON output");
    let keys: Vec<&str> = found[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "severity", "code", "message", "pointer", "line", "column", "help"
        ]
    );
    assert_eq!(found[0]["pointer"], "/vms_config/web01/schedule/expression");
}

#[test]
fn valid_fixtures_and_the_example_pass() {
    for name in fixture_names("ok") {
        let run = ovplan(&["validate", &format!("ok/{name}.json")]);
        assert_eq!(run.code, 0, "ok/{name}.json: {}", run.stderr);
        assert_eq!(run.stderr, format!("ok/{name}.json: valid\n"));
    }
    let run = ovplan(&["validate", "../../examples/variables.json"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, "../../examples/variables.json: valid\n")
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let run = ovplan(&["validate", "--format", "json", "err/many.json"]);
    let found: Vec<Value> = serde_json::from_str(&run.stdout).expect("JSON output");
    let codes: Vec<&str> = found.iter().filter_map(|d| d["code"].as_str()).collect();
    assert_eq!(
        codes,
        [
            "ovplan::inline-password",
            "ovplan::unknown-disk-interface",
            "ovplan::bad-time",
            "ovplan::unknown-weekday",
            "ovplan::unknown-key",
        ]
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(ovplan(&["validate", "err/no-such-file.json"]).code, 2);
    assert_eq!(ovplan(&["validate"]).code, 2);
    assert_eq!(
        ovplan(&["validate", "--format", "xml", "ok/legacy.json"]).code,
        2
    );
}

#[test]
fn a_password_never_appears_in_a_report() {
    for name in ["inline-password", "both-password-forms"] {
        let run = ovplan(&["validate", &format!("err/{name}.json")]);
        assert!(
            !run.stderr.contains("s3cr3t") && !run.stderr.contains("hunter2"),
            "{}",
            run.stderr
        );
    }
}
