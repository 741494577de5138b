//! `ovplan build` and `ovplan diff`: the bundle for the example (committed in `out/`, which
//! `--check` holds current), its determinism and atomic replacement, `--check`, systemd's own verifier, the
//! runner config and compose schemas, and unit names escaped as `systemd-escape` does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{fixtures, ovplan, run};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ovplan_in_repo(args: &[&str]) -> crate::support::Run {
    run(env!("CARGO_BIN_EXE_ovplan"), args, repo())
}

fn tree(root: &Path) -> BTreeMap<String, String> {
    ovbackup::fsutil::read_tree(root)
        .expect("readable")
        .expect("present")
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).expect("text")))
        .collect()
}

fn build_example(out: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "build",
        "examples/variables.json",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let result = ovplan_in_repo(&args);
    assert_eq!(result.code, 0, "{}", result.stderr);
    result
}

/// The example's bundle is kept once, as the committed `out/` (a reviewer reads a change of
/// the compiler's output in its diff): a build that differs fails here.
#[test]
fn the_committed_out_dir_is_current() {
    let result = ovplan_in_repo(&[
        "build",
        "examples/variables.json",
        "--out",
        "out",
        "--check",
    ]);
    assert_eq!(
        result.code, 0,
        "out/ is stale; run `ovplan build examples/variables.json --out out`:\n{}",
        result.stdout
    );
}

#[test]
fn builds_are_byte_identical_and_replace_the_folder_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    build_example(&out, &[]);
    let first = tree(&out);
    std::fs::write(out.join("stray-file"), "left from before").expect("write");
    build_example(&out, &[]);
    assert_eq!(
        tree(&out),
        first,
        "a rebuild is byte-identical and drops files no longer generated"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["out"], "no staging folder is left behind");
    let check = Command::new("sha256sum")
        .args(["--check", "--quiet", "MANIFEST"])
        .current_dir(&out)
        .output()
        .expect("sha256sum");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(first["MANIFEST"].lines().count(), first.len() - 1);
}

#[test]
fn check_reports_a_stale_bundle_with_a_diff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    build_example(&out, &[]);
    let timer = out.join("systemd/ovrun-backup-ldap01.timer");
    let edited = std::fs::read_to_string(&timer)
        .expect("timer")
        .replace("04:45:00", "05:45:00");
    std::fs::write(&timer, edited).expect("write");
    let result = ovplan_in_repo(&[
        "build",
        "examples/variables.json",
        "--out",
        out.to_str().expect("utf-8"),
        "--check",
    ]);
    assert_eq!(result.code, 1);
    assert!(
        result
            .stdout
            .contains("-OnCalendar=Tue *-*-* 05:45:00 Europe/Lisbon"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("+OnCalendar=Tue *-*-* 04:45:00 Europe/Lisbon"),
        "{}",
        result.stdout
    );
    assert!(result.stderr.contains("is stale"), "{}", result.stderr);
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    build_example(
        &out,
        &[
            "--target",
            "systemd",
            "--ovrun",
            env!("CARGO_BIN_EXE_ovrun"),
        ],
    );
    let units: Vec<String> = std::fs::read_dir(out.join("systemd"))
        .expect("systemd dir")
        .filter_map(|e| Some(e.ok()?.path().to_str()?.to_owned()))
        .collect();
    assert!(units.len() > 25);
    let result = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze runs (scripts/setup.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

pub(crate) fn validator(schema: &Path) -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema).expect("schema")).expect("JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

pub(crate) fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn runner_configs_match_their_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    build_example(&out, &[]);
    let schema = validator(&repo().join("schemas/runner.schema.json"));
    let configs: Vec<(String, String)> = tree(&out)
        .into_iter()
        .filter(|(p, _)| p.starts_with("runner/"))
        .collect();
    assert_eq!(configs.len(), 13, "one per enabled VM");
    for (path, text) in configs {
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(errors(&schema, &doc), Vec::<String>::new(), "{path}");
        let config: ovbackup::plan::runner::RunnerConfig =
            serde_json::from_value(doc).expect("ovrun reads it");
        assert!(!text.contains("password\":") || !text.contains("s3cr3t"));
        assert!(config.source.password_file.ends_with(".password"), "{path}");
    }
}

/// What `ovplan build` writes, `ovrun` reads back as the same typed value, and writing that
/// value again gives the same bytes: the committed bundle's runner configs and the ones the
/// test configs of `ovrun` write by hand (`tls::config_for`).
#[test]
fn every_runner_config_reads_back_as_written() {
    use ovbackup::plan::runner::RunnerConfig;
    let dir = tempfile::tempdir().expect("temp dir");
    let by_hand =
        crate::support::ovrun::config_for(dir.path(), "web01", "https://engine.test/api", None);
    let mut texts: Vec<(String, String)> = tree(&repo().join("out"))
        .into_iter()
        .filter(|(p, _)| p.starts_with("runner/"))
        .collect();
    assert_eq!(texts.len(), 13, "one per enabled VM");
    let by_hand_text = std::fs::read_to_string(&by_hand).expect("config");
    texts.push(("tls::config_for".into(), format!("{by_hand_text}\n")));
    for (path, text) in texts {
        let config = RunnerConfig::from_json(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let written = serde_json::to_string_pretty(&config).expect("JSON") + "\n";
        assert_eq!(written, text, "{path}");
        let again = RunnerConfig::from_json(&written).expect("reads again");
        assert_eq!(again, config, "{path}");
    }
}

#[test]
fn the_compose_file_matches_the_compose_specification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    build_example(&out, &["--target", "compose"]);
    let yaml =
        std::fs::read_to_string(out.join("compose/docker-compose.yaml")).expect("compose file");
    let doc: Value = serde_norway::from_str(&yaml).expect("YAML");
    let spec = validator(&fixtures().join("compose-spec.schema.json"));
    assert_eq!(errors(&spec, &doc), Vec::<String>::new());
    assert_eq!(
        doc["services"]["scheduler"]["secrets"][0]["target"],
        "/etc/ovbackup/secrets/source.password"
    );
    let dockerfile = std::fs::read_to_string(out.join("compose/Dockerfile")).expect("Dockerfile");
    assert_eq!(dockerfile.matches("\nFROM ").count(), 2, "multi-stage");
    assert!(dockerfile.contains("qemu-utils") && dockerfile.contains("cronie"));
}

#[test]
fn inline_passwords_never_reach_the_bundle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let result = ovplan(&[
        "build",
        "err/inline-password.json",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        result.code, 0,
        "a warning does not stop the build: {}",
        result.stderr
    );
    assert!(result.stderr.contains("ovplan::inline-password"));
    for (path, content) in tree(&out) {
        assert!(
            !content.contains("s3cr3t-Passw0rd"),
            "{path} holds the password"
        );
    }
    let config = std::fs::read_to_string(out.join("runner/web01.json")).expect("config");
    assert!(config.contains("\"password_file\": \"/etc/ovbackup/secrets/source.password\""));
}

#[test]
fn unit_names_are_escaped_as_systemd_escape_does() {
    let names = [
        "web01",
        "erp-db01",
        "Web 01",
        "vm.with.dots",
        ".hidden",
        "naïve ünïcode",
        "a\\b",
        "x:y_z",
        "100%",
    ];
    for name in names {
        let out = Command::new("systemd-escape")
            .arg("--")
            .arg(name)
            .output()
            .expect("systemd-escape");
        let expected = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(
            ovbackup::plan::compile::systemd_escape(name),
            expected.trim_end(),
            "{name}"
        );
    }
}

/// `ovplan diff` of the example against the example with `replacements` made.
fn diff_example(replacements: &[(&str, &str)]) -> crate::support::Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text =
        std::fs::read_to_string(repo().join("examples/variables.json")).expect("example");
    for (from, to) in replacements {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let new = dir.path().join("new.json");
    std::fs::write(&new, text).expect("write");
    ovplan_in_repo(&[
        "diff",
        "examples/variables.json",
        new.to_str().expect("utf-8"),
        "--from",
        "2026-11-29T00:00:00Z",
    ])
}

#[test]
fn diff_shows_what_a_policy_change_does() {
    let result = diff_example(&[
        (
            r#""pattern": "weekly", "day": "tuesday", "time": "04:45""#,
            r#""pattern": "weekly", "day": "wednesday", "time": "05:00""#,
        ),
        (r#""keep_daily": 14"#, r#""keep_daily": 30"#),
    ]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    insta::assert_snapshot!(result.stdout);
    let same = ovplan_in_repo(&["diff", "examples/variables.json", "examples/variables.json"]);
    assert_eq!((same.code, same.stdout.as_str()), (0, ""));
}

/// Issue 13: a VM's own `backup_method` is one VM's change; the settings' one changes every VM
/// that has none of its own.
#[test]
fn diff_shows_a_changed_backup_method() {
    let own = diff_example(&[(
        r#""backup_method": "snapshot""#,
        r#""backup_method": "backup_api""#,
    )]);
    assert_eq!(own.code, 1, "{}", own.stderr);
    insta::assert_snapshot!(own.stdout, @r"
    VM legacy-intranet: changed
      backup_method: snapshot -> backup_api
    ");
    let settings = diff_example(&[(
        r#""backup_method": "auto""#,
        r#""backup_method": "snapshot""#,
    )]);
    assert_eq!(settings.code, 1, "{}", settings.stderr);
    let lines: Vec<&str> = settings.stdout.lines().collect();
    assert_eq!(lines[0], "policy-wide settings:");
    assert!(
        lines[1].contains(r#""backup_method":"auto""#),
        "{}",
        lines[1]
    );
    let changed = lines
        .iter()
        .filter(|l| **l == "  backup_method: auto -> snapshot")
        .count();
    assert_eq!(
        changed, 13,
        "every VM but legacy-intranet:\n{}",
        settings.stdout
    );
    assert!(
        !settings.stdout.contains("VM legacy-intranet"),
        "{}",
        settings.stdout
    );
}

/// Issue 16: how an `auto_restore` VM's DR copy is built (network map, MAC policy, CPU and
/// memory) is one of its facts, so a change of these `restore_settings` is named under every
/// VM restored automatically, and under no other.
#[test]
fn diff_shows_changed_dr_vm_settings_under_each_auto_restore_vm() {
    let result = diff_example(&[
        (
            r#""mac_policy": "new""#,
            r#""mac_policy": "keep", "cpu": {"sockets": 1, "cores": 2}, "memory_mib": 4096"#,
        ),
        (r#""dr-servers-vlan10""#, r#""dr-servers""#),
    ]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    let (settings, vms) = result.stdout.split_once("\n\n").expect("two parts");
    assert!(settings.starts_with("policy-wide settings:\n  restore_settings: "));
    insta::assert_snapshot!(vms, @r#"
    VM erp-db01: changed
      network_map: {"servers-vlan10":"dr-servers-vlan10"} -> {"servers-vlan10":"dr-servers"}
      mac_policy: new -> keep
      cpu: as recorded -> sockets 1, cores 2
      memory_mib: as recorded -> 4096

    VM mail01: changed
      network_map: {"servers-vlan10":"dr-servers-vlan10"} -> {"servers-vlan10":"dr-servers"}
      mac_policy: new -> keep
      cpu: as recorded -> sockets 1, cores 2
      memory_mib: as recorded -> 4096
    "#);
}

/// Issue 14: each VM's runner config names its backup host, and carries the engines' limits
/// (written only when not their defaults: `default`, 4 and 2), as the schema describes them;
/// the restore limit only beside a DR engine.
#[test]
fn runner_configs_carry_the_backup_host_and_the_engines_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let policy = fixtures().join("ok/backup-hosts.json");
    let result = ovplan_in_repo(&[
        "build",
        policy.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let schema = validator(&repo().join("schemas/runner.schema.json"));
    let mut seen = BTreeMap::new();
    for (path, text) in tree(&out)
        .into_iter()
        .filter(|(p, _)| p.starts_with("runner/"))
    {
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(errors(&schema, &doc), Vec::<String>::new(), "{path}");
        let config = ovbackup::plan::runner::RunnerConfig::from_json(&text).expect("reads");
        let written = [
            "backup_host",
            "max_concurrent_backups",
            "max_concurrent_restores",
        ]
        .map(|key| doc.get(key).is_some());
        seen.insert(
            config.vm.clone(),
            (
                config.backup_host,
                config.max_concurrent_backups,
                config.max_concurrent_restores,
                written,
            ),
        );
    }
    let host = |h: &str| h.to_owned();
    assert_eq!(
        seen,
        BTreeMap::from([
            ("db01".into(), (host("backup-01"), 2, 1, [true, true, true])),
            (
                "db02".into(),
                (host("bk2.dc-1_a"), 2, 2, [true, true, false])
            ),
            (
                "web01".into(),
                (host("backup-01"), 2, 2, [true, true, false])
            ),
            (
                "web02".into(),
                (host("default"), 2, 2, [false, true, false])
            ),
        ])
    );
}

/// Issue 14: moving a VM to another backup host is a change of that VM; an engine's limit is
/// a policy-wide setting.
#[test]
fn diff_shows_a_moved_vm_and_a_changed_limit() {
    let result = diff_example(&[
        (
            r#""schedule": { "type": "simple", "pattern": "weekends", "time": "03:00" },"#,
            r#""schedule": { "type": "simple", "pattern": "weekends", "time": "03:00" }, "backup_host": "backup-02","#,
        ),
        (
            r#""backup_directory": "/backup","#,
            r#""source_ovirt_max_concurrent_backups": 2, "backup_directory": "/backup","#,
        ),
    ]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    insta::assert_snapshot!(result.stdout, @r"
    policy-wide settings:
      source_ovirt_max_concurrent_backups: 4 -> 2

    VM file-srv01: changed
      backup_host: default -> backup-02
    ");
}
