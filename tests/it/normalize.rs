//! `ovplan normalize`: modern output that validates, is stable under a second pass, and says
//! the same thing for a legacy policy as for its hand-written modern equivalent.

use crate::support::{fixture_names, fixtures, ovplan, run};

fn normalized(path: &str) -> String {
    let out = ovplan(&["normalize", path]);
    assert_eq!(out.code, 0, "{path}: {}", out.stderr);
    out.stdout
}

#[test]
fn normalizing_twice_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut inputs: Vec<String> = fixture_names("ok")
        .iter()
        .map(|n| format!("ok/{n}.json"))
        .collect();
    inputs.push("../../examples/variables.json".to_owned());
    for input in inputs {
        let once = normalized(&input);
        let path = dir.path().join("once.json");
        std::fs::write(&path, &once).expect("write");
        let bin = env!("CARGO_BIN_EXE_ovplan");
        let again = run(
            bin,
            &["normalize", path.to_str().expect("utf-8 path")],
            &fixtures(),
        );
        assert_eq!(again.code, 0, "{input}: {}", again.stderr);
        assert_eq!(again.stdout, once, "{input} is not stable under normalize");
        let valid = run(
            bin,
            &["validate", path.to_str().expect("utf-8 path")],
            &fixtures(),
        );
        assert_eq!(
            valid.code, 0,
            "normalized {input} does not validate: {}",
            valid.stderr
        );
    }
}

#[test]
fn legacy_forms_mean_what_their_modern_equivalents_mean() {
    let modern = normalized("ok/legacy-modern.json");
    assert_eq!(normalized("ok/legacy.json"), modern);
    assert_eq!(normalized("ok/airflow-json-text.json"), modern);
}

#[test]
fn the_example_normalized() {
    insta::assert_snapshot!(normalized("../../examples/variables.json"));
}

#[test]
fn an_invalid_policy_is_not_normalized() {
    let out = ovplan(&["normalize", "err/bad-time.json"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("ovplan::bad-time"), "{}", out.stderr);
}
