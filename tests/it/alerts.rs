//! The bundle's Prometheus alert rules (`prometheus/ovbackup.rules.yml`): Prometheus's own
//! `promtool` accepts them for the example and for a generated 1,000-VM policy, and its rule
//! unit tests, over series named as `ovrun status --metrics` writes them, show when each alert
//! fires.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::run;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `ovplan build FILE --target prometheus` into `dir/out`; the rules file's path.
fn build_rules(policy: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("out");
    let args = [
        "build",
        policy.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--target",
        "prometheus",
    ];
    let result = run(env!("CARGO_BIN_EXE_ovplan"), &args, repo());
    assert_eq!(result.code, 0, "{}", result.stderr);
    out.join("prometheus/ovbackup.rules.yml")
}

/// Runs `promtool ARGS`; its output when it fails.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_of_the_example() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = build_rules(Path::new("examples/variables.json"), dir.path());
    promtool(&["check", "rules", rules.to_str().expect("utf-8")]);
    insta::assert_snapshot!(std::fs::read_to_string(rules).expect("rules"));
}

#[test]
fn promtool_accepts_the_rules_of_a_thousand_vms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("variables.json");
    let generated = crate::support::generated_policy(1000);
    std::fs::write(&policy, generated.to_string()).expect("write");
    let rules = build_rules(&policy, dir.path());
    promtool(&["check", "rules", rules.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(rules).expect("rules");
    assert!(text.matches("alert: OvbackupOverdue").count() >= 900);
}

/// The example's settings with four VMs, one of each period, in UTC.
fn four_schedules() -> Value {
    let text = std::fs::read_to_string(repo().join("examples/variables.json")).expect("example");
    let mut policy: Value = serde_json::from_str(&text).expect("json");
    let schedule = |extra: Value| {
        let mut s = json!({ "type": "simple", "time": "02:00", "timezone": "UTC" });
        s.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        json!({ "schedule": s })
    };
    policy["vms_config"] = json!({
        "daily01": schedule(json!({ "pattern": "daily" })),
        "weekly01": schedule(json!({ "pattern": "weekly", "days": ["sunday"] })),
        "biweekly01": schedule(json!({ "pattern": "biweekly", "day": "monday", "anchor_date": "2025-01-06" })),
        "monthly01": schedule(json!({ "pattern": "monthly", "day_of_month": "last" })),
    });
    policy
}

const INSTANCE: &str = "backup1:9100";

/// A series as node_exporter serves a textfile sample: the VM's labels and the scrape's.
fn series(name: &str, labels: &str, values: &str) -> Value {
    json!({
        "series": format!("{name}{{{labels}instance=\"{INSTANCE}\",job=\"node\"}}"),
        "values": values,
    })
}

/// The alert a rule of the file makes, as promtool reports it: the rule's labels and
/// annotations with `{{ $labels.instance }}` expanded, and the series' labels.
fn expected(rules: &Value, alert: &str, vm: Option<&str>, extra: &[(&str, &str)]) -> Value {
    let rule = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .find(|r| r["alert"] == alert && vm.is_none_or(|vm| r["labels"]["vm"] == vm))
        .expect("the rule");
    let expand = |v: &Value| {
        let text = v.as_str().expect("string");
        Value::from(text.replace("{{ $labels.instance }}", INSTANCE))
    };
    let mut labels: serde_json::Map<String, Value> = rule["labels"]
        .as_object()
        .expect("labels")
        .iter()
        .map(|(k, v)| (k.clone(), expand(v)))
        .collect();
    labels.insert("instance".into(), INSTANCE.into());
    labels.insert("job".into(), "node".into());
    for (k, v) in extra {
        labels.insert((*k).into(), (*v).into());
    }
    let annotations: serde_json::Map<String, Value> = rule["annotations"]
        .as_object()
        .expect("annotations")
        .iter()
        .map(|(k, v)| (k.clone(), expand(v)))
        .collect();
    json!({ "exp_labels": labels, "exp_annotations": annotations })
}

/// `alertname` at `at` (a promtool duration): firing `alerts`.
fn check(at: &str, alertname: &str, alerts: Vec<Value>) -> Value {
    json!({ "eval_time": at, "alertname": alertname, "exp_alerts": alerts })
}

/// The first `count` scheduled starts of `vm` after the Unix epoch, by `ovplan next`, in Unix
/// seconds.
fn planned(policy: &Path, vm: &str, count: usize) -> Vec<i64> {
    let args = [
        "next",
        policy.to_str().expect("utf-8"),
        "--vm",
        vm,
        "--count",
        &count.to_string(),
        "--from",
        "1970-01-01T00:00:00Z",
    ];
    let next = run(env!("CARGO_BIN_EXE_ovplan"), &args, repo());
    assert_eq!(next.code, 0, "{}", next.stderr);
    next.stdout
        .lines()
        .map(|line| {
            let at = line.split_whitespace().next().expect("an instant");
            chrono::DateTime::parse_from_rfc3339(at)
                .expect("RFC 3339")
                .timestamp()
        })
        .collect()
}

/// The overdue alert of a VM whose last success started at its first scheduled run of 1970
/// (`runs[0]`) and whose next run (`runs[1]`, what `ovrun status` writes as next due) is missed:
/// quiet one minute before the next run is late by the grace and a day after the run it made,
/// firing one minute after (series sampled every 4 minutes, within Prometheus's 5-minute
/// lookback).
fn overdue_test(rules: &Value, vm: &str, runs: &[i64]) -> Value {
    let (success, next) = (runs[0], runs[1]);
    let due = (next + 2 * 3600) / 60;
    let samples = due / 4 + 2;
    let fired = expected(rules, "OvbackupOverdue", Some(vm), &[]);
    let labels = format!("vm=\"{vm}\",");
    json!({
        "name": format!("{vm}: last success at {success}, next run at {next}, missed"),
        "interval": "4m",
        "input_series": [
            series(
                "ovbackup_last_success_timestamp_seconds",
                &labels,
                &format!("{success}+0x{samples}"),
            ),
            series(
                "ovbackup_next_due_timestamp_seconds",
                &labels,
                &format!("{next}+0x{samples}"),
            ),
        ],
        "alert_rule_test": [
            check(&format!("{}m", success / 60 + 24 * 60), "OvbackupOverdue", vec![]),
            check(&format!("{}m", due - 1), "OvbackupOverdue", vec![]),
            check(&format!("{}m", due + 1), "OvbackupOverdue", vec![fired]),
        ],
    })
}

/// The backstop: an `ovrun` that writes no next-due sample still gets the alert once the VM's
/// longest scheduled gap and the grace have passed since its last success.
fn backstop_test(rules: &Value, vm: &str, minutes: i64) -> Value {
    let samples = minutes / 4 + 2;
    let fired = expected(rules, "OvbackupOverdue", Some(vm), &[]);
    json!({
        "name": format!("{vm} overdue after {minutes} minutes without a next-due sample"),
        "interval": "4m",
        "input_series": [series(
            "ovbackup_last_success_timestamp_seconds",
            &format!("vm=\"{vm}\","),
            &format!("0+0x{samples}"),
        )],
        "alert_rule_test": [
            check(&format!("{}m", minutes - 1), "OvbackupOverdue", vec![]),
            check(&format!("{}m", minutes + 1), "OvbackupOverdue", vec![fired]),
        ],
    })
}

/// A failed last run fires at once; a stale metrics file after an hour.
fn failure_and_stale_test(rules: &Value) -> Value {
    let failed = expected(rules, "OvbackupLastRunFailed", Some("daily01"), &[]);
    let file = "/var/lib/prometheus/node-exporter/ovbackup.prom";
    let stale = expected(rules, "OvbackupMetricsStale", None, &[("file", file)]);
    json!({
        "name": "a failed run and a silent host",
        "interval": "4m",
        "input_series": [
            series("ovbackup_last_run_failed", "vm=\"daily01\",", "0x5 1x30"),
            series("ovbackup_last_run_failed", "vm=\"weekly01\",", "0x35"),
            series("node_textfile_mtime_seconds", &format!("file=\"{file}\","), "0x30"),
        ],
        "alert_rule_test": [
            check("12m", "OvbackupLastRunFailed", vec![]),
            check("24m", "OvbackupLastRunFailed", vec![failed]),
            check("59m", "OvbackupMetricsStale", vec![]),
            check("61m", "OvbackupMetricsStale", vec![stale]),
        ],
    })
}

/// promtool's rule unit tests over the rules of four VMs (daily, weekly, biweekly, monthly on
/// the last day, all at 02:00 UTC): overdue fires one minute after the next scheduled run is
/// missed by more than the grace, not before (the monthly VM's next run after January 31 is
/// February 28, not 31 days later); without a next-due sample, after the longest gap.
#[test]
fn promtool_unit_tests_show_when_alerts_fire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("variables.json");
    std::fs::write(&policy, four_schedules().to_string()).expect("write");
    let rules_path = build_rules(&policy, dir.path());
    let text = std::fs::read_to_string(&rules_path).expect("rules");
    let rules: Value = serde_norway::from_str(&text).expect("yaml");
    let mut tests: Vec<Value> = ["daily01", "weekly01", "biweekly01", "monthly01"]
        .iter()
        .map(|vm| overdue_test(&rules, vm, &planned(&policy, vm, 2)))
        .collect();
    let monthly = planned(&policy, "monthly01", 2);
    assert_eq!(
        monthly[1] - monthly[0],
        28 * 86_400,
        "January 31 to February 28, 1970"
    );
    let hour = 60;
    tests.push(backstop_test(
        &rules,
        "monthly01",
        31 * 24 * hour + 2 * hour,
    ));
    tests.push(failure_and_stale_test(&rules));
    let unit = json!({
        "rule_files": [rules_path],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    let unit_path = dir.path().join("tests.yml");
    std::fs::write(&unit_path, serde_norway::to_string(&unit).expect("yaml")).expect("write");
    promtool(&["test", "rules", unit_path.to_str().expect("utf-8")]);
}
