//! The Airflow target (`airflow/` of the bundle) read by the real Airflow 3: the DAGs of the
//! example and of a generated 1,000-VM policy with hostile names are stored without an import
//! error (as the dag-processor stores them) and say what the policy says; over a year, each
//! DAG's own timetable, filtered by its due task's `ovrun due`, runs exactly when `ovplan next`
//! says (DST changes included); `airflow dags test` backs a VM up from a production `ovsim`
//! and restores it into a DR one. The generated Python is as ruff formats it, and the compose
//! file is valid against the Compose specification.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::build::{errors, validator};
use crate::support::airflow::{Airflow, runnable_bundle, venv_bin};
use crate::support::engine::{Sim, seed};
use crate::support::ovrun::{manifests, verify_ok};
use crate::support::{fixtures, json_names, run};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `ovplan build POLICY --out DIR/bundle EXTRA...`; the bundle's folder.
fn build(policy: &Path, dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("bundle");
    let mut args = vec![
        "build",
        policy.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend(extra);
    let result = run(env!("CARGO_BIN_EXE_ovplan"), &args, repo());
    assert_eq!(result.code, 0, "{}", result.stderr);
    out
}

/// The DAGs as Airflow stores them: no import error (the dag-processor's `reserialize`, then
/// `list-import-errors` from the database), and the DAG ids it lists.
fn stored_dag_ids(airflow: &Airflow) -> BTreeSet<String> {
    airflow.cli(&["dags", "reserialize"]);
    let import_errors = airflow.cli_json(&["dags", "list-import-errors"]);
    assert_eq!(import_errors, json!([]), "import errors");
    airflow
        .cli_json(&["dags", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| d["dag_id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The runner configs of a bundle, by VM name.
fn runner_configs(bundle: &Path) -> BTreeMap<String, (PathBuf, Value)> {
    json_names(&bundle.join("runner"))
        .into_iter()
        .map(|name| {
            let path = bundle.join("runner").join(format!("{name}.json"));
            let config: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("config"))
                    .expect("JSON");
            (
                config["vm"].as_str().expect("vm").to_owned(),
                (path, config),
            )
        })
        .collect()
}

/// ruff (in the Airflow venv) finds the generated Python formatted as it formats it and free of
/// lint (pyflakes, pycodestyle, import order, pyupgrade for Python 3.10, bugbear).
fn ruff_accepts(folder: &Path) {
    for args in [
        &["format", "--check"][..],
        &["check", "--select", "E,F,W,I,UP,B", "--ignore", "E501"][..],
    ] {
        let out = Command::new(venv_bin("ruff"))
            .args(args)
            .args(["--isolated", "--no-cache", "--target-version", "py310"])
            .arg(folder)
            .output()
            .expect("ruff");
        assert!(
            out.status.success(),
            "ruff {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Each VM's DAG in Airflow's own description says what its runner config says: the backup
/// (and for auto_restore VMs the restore after it) runs ovrun with the config's path, on the
/// VM's backup host's queue, in the engine's pool; the due task exactly for guarded schedules;
/// the VM's name, exactly, in the title.
fn check_vm_dags(described: &Value, bundle: &Path, ovrun: &str, runner_dir: &str) {
    let dags: BTreeMap<String, &Value> = described["dags"]
        .as_array()
        .expect("dags")
        .iter()
        .map(|d| (d["dag_id"].as_str().expect("id").to_owned(), d))
        .collect();
    let pools: Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("airflow/pools.json")).expect("pools"),
    )
    .expect("JSON");
    let configs = runner_configs(bundle);
    let by_vm: BTreeMap<String, &Value> = dags
        .values()
        .filter(|d| d["tasks"].get("backup").is_some())
        .map(|d| {
            let config = d["tasks"]["backup"]["commands"][0][3]
                .as_str()
                .expect("path");
            let vm = configs
                .keys()
                .find(|vm| format!("{runner_dir}/{vm}.json") == config)
                .unwrap_or_else(|| panic!("{config} is no runner config of the bundle"));
            (vm.clone(), *d)
        })
        .collect();
    assert_eq!(
        by_vm.keys().collect::<Vec<_>>(),
        configs.keys().collect::<Vec<_>>(),
        "one DAG per VM"
    );
    for (vm, dag) in &by_vm {
        let config = &configs[vm].1;
        let path = format!("{runner_dir}/{vm}.json");
        let path = path.as_str();
        assert_eq!(dag["display_name"], format!("Backup of VM {vm}"));
        assert_eq!(dag["timetable"], "OvbackupCronTimetable");
        assert_eq!(
            (
                &dag["catchup"],
                &dag["max_active_runs"],
                &dag["paused_at_creation"]
            ),
            (&json!(false), &json!(1), &json!(false))
        );
        let tasks = &dag["tasks"];
        let backup = &tasks["backup"];
        assert_eq!(
            backup["commands"],
            json!([[ovrun, "backup", "--config", path, "--now"]])
        );
        let host = config["backup_host"].as_str().unwrap_or("default");
        assert_eq!(backup["queue"], host, "{vm}");
        assert!(pools.get(backup["pool"].as_str().expect("pool")).is_some());
        assert_eq!(backup["template_fields"], json!([]), "no Jinja rendering");
        let restores = !config["restore"].is_null();
        assert_eq!(tasks.get("restore").is_some(), restores, "{vm}");
        if restores {
            assert_eq!(
                tasks["restore"]["commands"],
                json!([[ovrun, "restore", "--config", path]])
            );
            assert_eq!(tasks["restore"]["upstream"], json!(["backup"]));
            assert!(
                pools
                    .get(tasks["restore"]["pool"].as_str().expect("pool"))
                    .is_some()
            );
        }
        let guarded = !config["due_guard"].is_null();
        assert_eq!(tasks.get("due").is_some(), guarded, "{vm}");
        if guarded {
            assert_eq!(backup["upstream"], json!(["due"]));
            let due = tasks["due"]["commands"][0].as_array().expect("argv");
            assert_eq!(
                due[..4],
                [json!(ovrun), json!("due"), json!("--config"), json!(path)]
            );
        }
    }
    let mut pruned = BTreeSet::new();
    for dag in dags.values().filter(|d| {
        d["dag_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ovmaintenance_"))
    }) {
        let host = dag["dag_id"]
            .as_str()
            .expect("id")
            .trim_start_matches("ovmaintenance_");
        let tasks = &dag["tasks"];
        assert_eq!(tasks["verify"]["upstream"], json!(["prune"]));
        for command in tasks["prune"]["commands"].as_array().expect("commands") {
            let vm = by_vm
                .iter()
                .find(|(_, d)| d["tasks"]["backup"]["commands"][0][3] == command[3])
                .expect("a VM's config")
                .0;
            assert_eq!(tasks["prune"]["queue"], host);
            assert_eq!(
                by_vm[vm]["tasks"]["backup"]["queue"], host,
                "{vm} is pruned by its own host"
            );
            pruned.insert(vm.clone());
        }
    }
    assert_eq!(
        pruned.len(),
        configs.len(),
        "every VM is pruned by its host"
    );
}

#[test]
fn the_example_dags_are_stored_and_say_what_the_policy_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = build(Path::new("examples/variables.json"), dir.path(), &[]);
    let airflow = Airflow::new(&bundle);
    let ids = stored_dag_ids(&airflow);
    let vms = runner_configs(&bundle).len();
    assert_eq!(ids.len(), vms + 1, "{ids:?}");
    let described = airflow.dags_script(&["describe"]);
    check_vm_dags(
        &described,
        &bundle,
        "/usr/local/bin/ovrun",
        "/etc/ovbackup/runner",
    );
    ruff_accepts(&bundle.join("airflow"));

    let imported = airflow.cli(&[
        "pools",
        "import",
        bundle.join("airflow/pools.json").to_str().expect("utf-8"),
    ]);
    assert!(imported.contains("Uploaded 2 pool(s)"), "{imported}");
    let pools = airflow.cli_json(&["pools", "list"]);
    let slots: BTreeMap<&str, String> = pools
        .as_array()
        .expect("pools")
        .iter()
        .map(|p| (p["pool"].as_str().expect("name"), p["slots"].to_string()))
        .collect();
    // The CLI prints the slots as strings.
    assert_eq!(slots["ovbackup_backup_engine.prod.example.com"], "\"4\"");
    assert_eq!(slots["ovbackup_restore_engine.dr.example.com"], "\"2\"");

    let yaml =
        std::fs::read_to_string(bundle.join("airflow/docker-compose.yaml")).expect("compose");
    let doc: Value = serde_norway::from_str(&yaml).expect("YAML");
    let spec = validator(&fixtures().join("compose-spec.schema.json"));
    assert_eq!(errors(&spec, &doc), Vec::<String>::new());
    let services: BTreeSet<&str> = doc["services"]
        .as_object()
        .expect("services")
        .keys()
        .map(String::as_str)
        .collect();
    for service in [
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker-default",
    ] {
        assert!(services.contains(service), "{service}: {services:?}");
    }
    assert_eq!(
        doc["services"]["airflow-worker-default"]["command"],
        json!(["celery", "worker", "--queues", "default"])
    );
    let pinned =
        std::fs::read_to_string(repo().join("scripts/requirements-airflow.txt")).expect("pins");
    let image = doc["services"]["airflow-scheduler"]["image"]
        .as_str()
        .expect("image");
    let version = image
        .strip_prefix("apache/airflow:")
        .expect("the official image");
    assert!(
        pinned.contains(&format!("\napache-airflow=={version}\n")),
        "{image} is the pinned Airflow"
    );
}

/// VM names that a Python literal, Jinja, a shell or a Markdown page would each read as more
/// than text, and two that map to the same plain id.
const HOSTILE: [&str; 9] = [
    "it's \"quoted\"",
    "back\\slash\\",
    "{{ dag_id }}{% raw %}",
    "$(touch pwned); `id`",
    "é-ü 東京 😀",
    "rtl\u{202e}txt\u{2028}",
    "web 01",
    "web_01",
    "**bold** [link](x) <b>",
];

#[test]
fn a_thousand_vms_with_hostile_names_are_stored_as_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut policy = crate::support::generated_policy(1000);
    for (i, name) in HOSTILE.iter().enumerate() {
        let host = ["default", "backup-b.example", "backup_c"][i % 3];
        policy["vms_config"][name] = json!({"schedule": {"type": "simple", "pattern": "daily"},
                                            "auto_restore": true, "backup_host": host});
    }
    policy["source_ovirt_max_concurrent_backups"] = json!(3);
    let path = dir.path().join("variables.json");
    std::fs::write(&path, policy.to_string()).expect("write");
    let bundle = build(&path, dir.path(), &["--target", "airflow"]);
    let pools = std::fs::read_to_string(bundle.join("airflow/pools.json")).expect("pools");
    let pools: Value = serde_json::from_str(&pools).expect("JSON");
    assert_eq!(pools["ovbackup_backup_engine.prod.example.com"]["slots"], 3);
    let compose =
        std::fs::read_to_string(bundle.join("airflow/docker-compose.yaml")).expect("compose");
    let compose: Value = serde_norway::from_str(&compose).expect("YAML");
    for host in ["default", "backup-b.example", "backup_c"] {
        let worker = &compose["services"][format!("airflow-worker-{host}")];
        assert_eq!(
            worker["command"],
            json!(["celery", "worker", "--queues", host])
        );
    }
    let airflow = Airflow::new(&bundle);
    let ids = stored_dag_ids(&airflow);
    let configs = runner_configs(&bundle);
    assert!(configs.len() > 900);
    for name in HOSTILE {
        assert!(configs.contains_key(name), "{name}");
    }
    assert_eq!(
        ids.len(),
        configs.len() + 3,
        "a maintenance DAG per backup host"
    );
    let described = airflow.dags_script(&["describe"]);
    check_vm_dags(
        &described,
        &bundle,
        "/usr/local/bin/ovrun",
        "/etc/ovbackup/runner",
    );
    ruff_accepts(&bundle.join("airflow"));
}

const FROM: &str = "2026-01-01T00:00:00Z";
const UNTIL: &str = "2027-01-01T00:00:00Z";

/// `ok/every-form.json` with schedules at the times DST changes skip or repeat.
fn every_form_and_dst(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join("ok/every-form.json")).expect("fixture");
    let mut policy: Value = serde_json::from_str(&text).expect("JSON");
    let vms = &mut policy["vms_config"];
    vms["dst-daily-lisbon"] = json!({"schedule": {"type": "simple", "pattern": "daily", "time": "01:30", "timezone": "Europe/Lisbon"}});
    vms["dst-daily-berlin"] = json!({"schedule": {"type": "cron", "expression": "30 2 * * *", "timezone": "Europe/Berlin"}});
    vms["dst-hourly"] = json!({"schedule": {"type": "cron", "expression": "0 * * * *", "timezone": "America/New_York"}});
    vms["dst-sundays"] = json!({"schedule": {"type": "advanced", "weekdays": ["sunday"], "weeks_of_month": [1, "last"], "time": "01:15", "timezone": "Europe/London"}});
    let path = dir.join("every-form-dst.json");
    std::fs::write(&path, policy.to_string()).expect("write");
    path
}

/// `ovplan next` over the year, in UTC.
fn predicted(policy: &Path, vm: &str) -> Vec<String> {
    let args = [
        "next",
        policy.to_str().expect("utf-8"),
        "--vm",
        vm,
        "--count",
        "10000",
        "--from",
        FROM,
    ];
    let result = run(env!("CARGO_BIN_EXE_ovplan"), &args, repo());
    assert_eq!(result.code, 0, "{}", result.stderr);
    let until = chrono::DateTime::parse_from_rfc3339(UNTIL).expect("instant");
    result
        .stdout
        .lines()
        .map(|line| {
            chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next().expect("instant"))
                .expect("RFC 3339")
        })
        .filter(|t| *t <= until)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .collect()
}

#[test]
fn dag_runs_over_a_year_are_the_runs_ovplan_next_predicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = every_form_and_dst(dir.path());
    let bundle = runnable_bundle(&policy, dir.path());
    let airflow = Airflow::new(&bundle);
    let runs = airflow.dags_script(&["runs", FROM, UNTIL]);
    let runs = runs.as_object().expect("runs by VM");
    assert_eq!(runs.len(), 21, "{:?}", runs.keys());
    for (vm, instants) in runs {
        let expected = predicted(&policy, vm);
        assert!(
            expected.len() >= 4,
            "{vm}: {} runs in a year",
            expected.len()
        );
        assert_eq!(instants, &json!(expected), "{vm}");
    }
}

/// The DR engine's inventory, as `ovrun_restore`'s.
fn dr_seed() -> Value {
    json!({
        "clusters": [{"name": "DR-Cluster"}],
        "storage_domains": [{"name": "dr-data"}],
        "vms": []
    })
}

/// A policy backing `web 01` up from `prod` into `dir/backup` and restoring it into `dr`.
fn sim_policy(prod: &Sim, dr: &Sim, dir: &Path) -> PathBuf {
    let mut policy = json!({
        "backup_directory": dir.join("backup"),
        "restore_settings": {"target_cluster_name": "DR-Cluster", "target_storage_domain_name": "dr-data"},
        "vms_config": {"web 01": {"schedule": {"type": "simple", "pattern": "daily", "time": "02:00"}, "auto_restore": true}}
    });
    for (side, sim) in [("source", prod), ("target", dr)] {
        let password = dir.join(format!("{side}.password"));
        std::fs::write(&password, &sim.running.users["admin@internal"]).expect("password");
        policy[format!("{side}_ovirt_url")] = json!(sim.running.api_url());
        policy[format!("{side}_ovirt_user")] = json!("admin@internal");
        policy[format!("{side}_ovirt_password_file")] = json!(password);
        policy[format!("{side}_ovirt_cert_path")] = json!(sim.running.pki.ca_cert);
    }
    let path = dir.join("variables.json");
    std::fs::write(&path, policy.to_string()).expect("policy");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn airflow_dags_test_backs_up_and_restores_into_dr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let prod = Sim::start(&dir.path().join("prod"), seed()).await;
    let dr = Sim::start(&dir.path().join("dr"), dr_seed()).await;
    let policy = sim_policy(&prod, &dr, dir.path());
    let bundle = runnable_bundle(&policy, dir.path());
    let airflow = Airflow::new(&bundle);
    let dag_id = format!(
        "ovbackup_{}",
        ovbackup::plan::airflow::safe_ids(["web 01"]).remove(0)
    );
    let states = tokio::task::block_in_place(|| {
        airflow.cli(&[
            "pools",
            "import",
            bundle.join("airflow/pools.json").to_str().expect("utf-8"),
        ]);
        airflow.cli(&["dags", "test", &dag_id]);
        let runs = airflow.cli_json(&["dags", "list-runs", &dag_id]);
        assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
        assert_eq!(runs[0]["state"], "success", "{runs}");
        let run_id = runs[0]["run_id"].as_str().expect("run id").to_owned();
        airflow.cli_json(&["tasks", "states-for-dag-run", &dag_id, &run_id])
    });
    let states: BTreeMap<&str, &str> = states
        .as_array()
        .expect("task states")
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().expect("task"),
                t["state"].as_str().expect("state"),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([("backup", "success"), ("restore", "success")])
    );

    let runner = bundle.join("runner/web 01.json");
    let outcomes =
        tokio::task::block_in_place(|| exit_code_outcomes(&airflow, &runner, dir.path()));
    let failed = json!({"raised": "AirflowFailException", "action": "fail", "delay": null});
    let retried = json!({"raised": "OvrunFailed", "action": "default", "delay": null});
    let busy = json!({"raised": "OvrunBusy", "action": "retry", "delay": 120.0});
    assert_eq!(
        outcomes,
        json!([failed, retried, busy]),
        "exit codes 2, 1 and 3"
    );
    let killed = killed_outcome(&airflow, &prod, &runner).await;
    assert_eq!(killed, json!([failed]), "exit code 4");

    let points = manifests(&dir.path().join("backup/web 01"));
    assert_eq!(points.len(), 1, "one point");
    verify_ok(&bundle.join("runner/web 01.json"));
    let restored = dr.get("/vms").await;
    let names: Vec<&str> = restored["vm"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|vm| vm["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["web 01_restored"],
        "the restore ran after the backup"
    );
}

/// What the operator does with each of ovrun's exit codes, from real ovrun runs: a config that
/// is not there (2), an engine that refuses connections (1), the VM's catalog lock held by
/// another process (3).
fn exit_code_outcomes(airflow: &Airflow, runner: &Path, dir: &Path) -> Value {
    let ovrun = env!("CARGO_BIN_EXE_ovrun");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(runner).expect("config")).expect("JSON");
    config["source"]["url"] = json!("https://127.0.0.1:9/ovirt-engine/api");
    config["backup_directory"] = json!(dir.join("elsewhere"));
    let refused = dir.join("refused.json");
    std::fs::write(&refused, config.to_string()).expect("config");
    let probes = json!([
        {"argv": [ovrun, "backup", "--config", dir.join("missing.json"), "--now"]},
        {"argv": [ovrun, "backup", "--config", refused, "--now"]},
        {"argv": [ovrun, "backup", "--config", runner, "--now", "--lock-wait", "0"]},
    ]);
    let mut holder = Command::new("flock")
        .arg(dir.join("backup/web 01/.lock"))
        .args(["sleep", "60"])
        .spawn()
        .expect("flock");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let outcomes = airflow.dags_script(&["outcomes", &probes.to_string()]);
    let _ = holder.kill();
    let _ = holder.wait();
    outcomes
}

/// The operator's task killed (its `on_kill`, as Airflow's task runner calls it) while ovrun
/// waits for the VM the engine holds locked: ovrun stops (4).
async fn killed_outcome(airflow: &Airflow, prod: &Sim, runner: &Path) -> Value {
    let vm = prod.vm("web 01").await;
    let lock = |locked: bool| json!({"kind": "vm", "id": vm["id"], "locked": locked});
    prod.admin("lock", lock(true)).await;
    let ovrun = env!("CARGO_BIN_EXE_ovrun");
    let probe = json!([{"argv": [ovrun, "backup", "--config", runner, "--now"], "kill_after": 3}]);
    let outcome =
        tokio::task::block_in_place(|| airflow.dags_script(&["outcomes", &probe.to_string()]));
    prod.admin("lock", lock(false)).await;
    outcome
}
