//! The Airflow target on a real CeleryExecutor deployment (issue 14): PostgreSQL, redis-server,
//! the api-server, scheduler and dag-processor, and two Celery workers playing two backup
//! hosts, each consuming its host's queue with its own disk at the policy's backup directory
//! ([`crate::support::celery`]). Six VMs, three per host, triggered at once through the REST
//! API with `max_concurrent_backups: 2`: every run succeeds; each VM's backup ran on its host's
//! worker (the task instance's queue and hostname); the engine's pool never let more than two
//! backups run at once (the task instances' times), so no ovrun met a full counting lock, and
//! `ovsim` never saw more than two VMs backed up at once. Then, the pool opened to six, the
//! counting lock holds a host's backups: while another job holds `host-a`'s slots, its three
//! wait (their logs say so) and `host-b`'s run, at most two on the engine; freed, they take
//! turns. At the end each VM's two points are on its host's disk only, where `ovrun verify`
//! accepts them, and no process outlives the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use ovbackup::run::catalog::{EngineSlots, SlotKind};

use crate::support::airflow::{Airflow, runnable_bundle};
use crate::support::celery::{Api, Celery, Host, on_host};
use crate::support::engine::{Sim, url_escape};
use crate::support::ovrun::manifests;

/// The backup hosts and their VMs.
const HOSTS: [(&str, [&str; 3]); 2] = [
    ("host-a", ["vm1", "vm2", "vm3"]),
    ("host-b", ["vm4", "vm5", "vm6"]),
];

fn vms() -> impl Iterator<Item = (&'static str, &'static str)> {
    HOSTS
        .iter()
        .flat_map(|(host, vms)| vms.iter().map(move |vm| (*host, *vm)))
}

/// Six running VMs, each with a small disk holding data.
fn seed() -> Value {
    let vms: Vec<Value> = vms()
        .map(|(_, name)| {
            json!({"name": name, "memory_mib": 512, "disks": [
                {"name": format!("{name}_os"), "size_mib": 8,
                 "data": [{"offset_mib": 0, "length_mib": 1, "pattern": 7}]}
            ]})
        })
        .collect();
    json!({"clusters": [{"name": "Default"}], "storage_domains": [{"name": "data"}], "vms": vms})
}

/// The policy: the six VMs on their hosts, daily, at most two backups on the engine at once.
fn policy(sim: &Sim, dir: &Path) -> PathBuf {
    let password = dir.join("source.password");
    std::fs::write(&password, &sim.running.users["admin@internal"]).expect("password");
    let vms: serde_json::Map<String, Value> = vms()
        .map(|(host, vm)| {
            let schedule = json!({"type": "simple", "pattern": "daily", "time": "02:00"});
            (
                vm.to_owned(),
                json!({"schedule": schedule, "backup_host": host}),
            )
        })
        .collect();
    let policy = json!({
        "backup_directory": dir.join("backup"),
        "source_ovirt_url": sim.running.api_url(),
        "source_ovirt_user": "admin@internal",
        "source_ovirt_password_file": password,
        "source_ovirt_cert_path": sim.running.pki.ca_cert,
        "source_ovirt_max_concurrent_backups": 2,
        "vms_config": vms,
    });
    let path = dir.join("variables.json");
    std::fs::write(&path, policy.to_string()).expect("policy");
    path
}

/// Waits (up to three minutes: a bound) until the dag-processor stored `count` DAGs.
async fn until_dags_stored(api: &Api, celery: &Celery, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while api.get("dags").await["total_entries"].as_u64() != Some(count) {
        assert!(
            Instant::now() < deadline,
            "DAGs not stored:\n{}",
            celery.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (up to five minutes: a bound) until every run of `runs` (DAG id to run id) ended;
/// their states.
async fn until_runs_end(api: &Api, celery: &Celery, runs: &BTreeMap<String, String>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut states = serde_json::Map::new();
        for (dag, run) in runs {
            let path = format!("dags/{dag}/dagRuns/{}", url_escape(run));
            states.insert(dag.clone(), api.get(&path).await["state"].clone());
        }
        if states.values().all(|s| s == "success" || s == "failed") {
            return Value::Object(states);
        }
        assert!(
            Instant::now() < deadline,
            "runs still going: {states:?}\n{}",
            celery.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The most intervals (`start_date`, `end_date` of task instances) that overlap at once.
fn most_at_once(tasks: &[Value]) -> usize {
    let instant = |t: &Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(t[key].as_str().expect("a time")).expect("RFC 3339")
    };
    let mut edges: Vec<(chrono::DateTime<chrono::FixedOffset>, i32)> = tasks
        .iter()
        .flat_map(|t| [(instant(t, "start_date"), 1), (instant(t, "end_date"), -1)])
        .collect();
    // An end at the instant of a start frees its slot first.
    edges.sort();
    let mut now = 0;
    let mut most = 0;
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).expect("a count")
}

/// The site: the production engine, the compiled bundle, the hosts' disks, the deployment.
struct Site {
    dir: tempfile::TempDir,
    sim: Sim,
    bundle: PathBuf,
    backup_directory: PathBuf,
    hosts: Vec<Host>,
    pool: String,
}

impl Site {
    /// The engine, the bundle and the hosts' empty disks; the engine's peak count reset.
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = Sim::start(&dir.path().join("prod"), seed()).await;
        let bundle = runnable_bundle(&policy(&sim, dir.path()), dir.path());
        let backup_directory = dir.path().join("backup");
        std::fs::create_dir_all(&backup_directory).expect("mount point");
        let hosts: Vec<Host> = HOSTS
            .iter()
            .map(|(queue, _)| {
                let backup = dir.path().join("hosts").join(queue).join("backup");
                std::fs::create_dir_all(&backup).expect("host folder");
                Host {
                    queue: (*queue).to_owned(),
                    backup,
                }
            })
            .collect();
        let pools = json_keys(&bundle.join("airflow/pools.json"));
        assert_eq!(pools.len(), 1, "one engine, one pool: {pools:?}");
        let site = Self {
            pool: pools[0].clone(),
            dir,
            sim,
            bundle,
            backup_directory,
            hosts,
        };
        assert_eq!(site.reset_peak().await, json!({"running": 0, "peak": 0}));
        site
    }

    async fn reset_peak(&self) -> Value {
        let path = "/ovsim/admin/peak-backups";
        self.sim.call(Method::DELETE, path, None).await.1
    }

    async fn peak(&self) -> Value {
        let path = "/ovsim/admin/peak-backups";
        self.sim.call(Method::GET, path, None).await.1
    }

    /// Every service started over the bundle, with its pools imported.
    fn deploy(&self) -> Celery {
        let airflow = Airflow::without_database(&self.bundle);
        let celery = Celery::start(
            airflow,
            self.dir.path(),
            &self.backup_directory,
            &self.hosts,
        );
        let pools = self.bundle.join("airflow/pools.json");
        celery.cli(&["pools", "import", pools.to_str().expect("utf-8")]);
        celery
    }

    /// A host's disk.
    fn disk(&self, host: &str) -> &Path {
        &self
            .hosts
            .iter()
            .find(|h| h.queue == host)
            .expect("a host")
            .backup
    }
}

/// A manual run of every VM's DAG, all posted at once (as the web UI's trigger button makes
/// them); run ids by DAG id.
async fn trigger_all(api: &Api) -> BTreeMap<String, String> {
    let posts = vms().map(|(_, vm)| async move {
        let dag = format!("ovbackup_{vm}");
        let body = json!({"logical_date": null});
        let run = api.post(&format!("dags/{dag}/dagRuns"), &body).await;
        (dag, run["dag_run_id"].as_str().expect("run id").to_owned())
    });
    futures_util::future::join_all(posts)
        .await
        .into_iter()
        .collect()
}

/// Every run of `runs` succeeded.
async fn all_succeed(api: &Api, celery: &Celery, runs: &BTreeMap<String, String>) {
    let states = until_runs_end(api, celery, runs).await;
    let success: serde_json::Map<String, Value> = runs
        .keys()
        .map(|dag| (dag.clone(), json!("success")))
        .collect();
    assert_eq!(states, Value::Object(success), "{}", celery.log_tails());
}

/// The backup task's log of a run, as the web UI shows it; empty before the task started.
async fn backup_log(api: &Api, dag: &str, run: &str) -> String {
    let path = format!(
        "dags/{dag}/dagRuns/{}/taskInstances/backup/logs/1",
        url_escape(run)
    );
    api.get_if_there(&path)
        .await
        .map(|log| log.to_string())
        .unwrap_or_default()
}

/// Each VM's backup task ran once and succeeded on its host's queue and worker, in the
/// engine's pool; the most backup tasks that ran at once, and how many of their ovrun waited
/// for their host's counting lock.
async fn check_tasks(api: &Api, runs: &BTreeMap<String, String>, pool: &str) -> (usize, usize) {
    let mut tasks = Vec::new();
    let mut lock_waits = 0;
    for (host, vm) in vms() {
        let dag = format!("ovbackup_{vm}");
        let path = format!(
            "dags/{dag}/dagRuns/{}/taskInstances",
            url_escape(&runs[&dag])
        );
        let listed = api.get(&path).await["task_instances"].clone();
        let [task] = listed.as_array().expect("tasks").as_slice() else {
            panic!("{vm}: one task, the backup: {listed}");
        };
        assert_eq!(
            (&task["task_id"], &task["state"], &task["try_number"]),
            (&json!("backup"), &json!("success"), &json!(1)),
            "{vm}"
        );
        assert_eq!(task["queue"], host, "{vm} went to its host's queue");
        assert_eq!(task["hostname"], host, "{vm} ran on its host's worker");
        assert_eq!(task["pool"], pool, "{vm}");
        let log = backup_log(api, &dag, &runs[&dag]).await;
        assert!(log.contains("ovrun exited 0"), "{vm}: {log}");
        lock_waits += usize::from(log.contains("waiting for a backup slot"));
        tasks.push(task.clone());
    }
    (most_at_once(&tasks), lock_waits)
}

/// Each VM has its points on its host's disk, nowhere else, and `ovrun verify` on that host
/// (its disk at the backup directory, the runner config as compiled) accepts them.
fn check_points(site: &Site, points: usize) {
    for (host, vm) in vms() {
        let disk = site.disk(host);
        assert_eq!(
            manifests(&disk.join(vm)).len(),
            points,
            "{vm}'s points on {host}"
        );
        for other in site.hosts.iter().filter(|h| h.queue != host) {
            assert!(
                !other.backup.join(vm).exists(),
                "{vm} left nothing on {}",
                other.queue
            );
        }
        let config = site.bundle.join("runner").join(format!("{vm}.json"));
        let args = ["verify", "--config", config.to_str().expect("utf-8")];
        let ovrun = env!("CARGO_BIN_EXE_ovrun");
        let (code, text) = on_host(disk, &site.backup_directory, ovrun, &args);
        assert_eq!(code, 0, "ovrun verify on {host} for {vm}:\n{text}");
        assert!(text.contains("no damage found"), "{text}");
    }
    let outside = std::fs::read_dir(&site.backup_directory).expect("mount point");
    assert_eq!(
        outside.count(),
        0,
        "nothing written outside the hosts' disks"
    );
}

/// Waits (up to three minutes: a bound) until the backup log of each run of `dags` says its
/// ovrun waits for a slot of its host's lock.
async fn until_waiting(api: &Api, runs: &BTreeMap<String, String>, dags: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    for dag in dags {
        while !backup_log(api, dag, &runs[dag])
            .await
            .contains("waiting for a backup slot")
        {
            assert!(
                Instant::now() < deadline,
                "{dag} does not wait for the lock"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// With the pool opened to six, the counting lock holds the limit per host: host-a's two slots
/// held by another job of its disk, its three backups wait for them while host-b's run (two at
/// most on the engine); freed, host-a's take turns and all succeed. The engine's peak over the
/// whole phase; the pool back at two.
async fn lock_holds_per_host(site: &Site, api: &Api, celery: &Celery) -> u64 {
    let pool_path = format!("pools/{}", url_escape(&site.pool));
    let pool = |slots: u32| json!({"pool": site.pool, "slots": slots, "include_deferred": false});
    api.patch(&pool_path, &pool(6)).await;
    site.reset_peak().await;
    let url = site.sim.running.api_url();
    let slots = EngineSlots::open(site.disk("host-a"), SlotKind::Backup, &url, 2).expect("slots");
    let held = [slots.try_take(), slots.try_take()].map(|s| s.expect("take").expect("a slot"));
    let runs = trigger_all(api).await;
    let (host_a, host_b): (Vec<String>, Vec<String>) = runs
        .keys()
        .cloned()
        .partition(|dag| HOSTS[0].1.iter().any(|vm| dag.ends_with(vm)));
    until_waiting(api, &runs, &host_a).await;
    let b_runs: BTreeMap<String, String> = host_b
        .iter()
        .map(|dag| (dag.clone(), runs[dag].clone()))
        .collect();
    all_succeed(api, celery, &b_runs).await;
    let load = site.peak().await;
    let peak = load["peak"].as_u64().expect("peak");
    assert!((1..=2).contains(&peak), "host-b's lock: {load}");
    drop(held);
    all_succeed(api, celery, &runs).await;
    for dag in &host_a {
        let log = backup_log(api, dag, &runs[dag]).await;
        assert!(log.contains("took backup slot"), "{dag}: {log}");
    }
    api.patch(&pool_path, &pool(2)).await;
    let load = site.peak().await;
    assert_eq!(load["running"], 0, "{load}");
    load["peak"].as_u64().expect("peak")
}

#[tokio::test(flavor = "multi_thread")]
async fn six_vms_on_two_celery_workers_keep_to_the_engines_limit_of_two() {
    let began = Instant::now();
    let site = Site::new().await;
    let mut celery = tokio::task::block_in_place(|| site.deploy());
    let api = Api::connect(&celery).await;
    until_dags_stored(&api, &celery, 8).await;
    let ready = began.elapsed();

    let triggered = Instant::now();
    let runs = trigger_all(&api).await;
    all_succeed(&api, &celery, &runs).await;
    let ran = triggered.elapsed();
    let (pooled, lock_waits) = check_tasks(&api, &runs, &site.pool).await;
    assert!(
        (1..=2).contains(&pooled),
        "the pool let {pooled} backups run at once"
    );
    assert_eq!(
        lock_waits, 0,
        "the pool held the limit: no ovrun met a full lock"
    );
    let load = site.peak().await;
    let peak = load["peak"].as_u64().expect("peak");
    assert_eq!(load["running"], 0, "{load}");
    assert!(
        (1..=2).contains(&peak),
        "the engine saw {peak} backups at once: {load}"
    );

    let phase = Instant::now();
    let locked_peak = lock_holds_per_host(&site, &api, &celery).await;
    assert!(
        (1..=4).contains(&locked_peak),
        "two hosts, two each: {locked_peak}"
    );
    let locked = phase.elapsed();

    let stopping = Instant::now();
    let strays = tokio::task::block_in_place(|| celery.stop());
    assert_eq!(
        strays,
        Vec::<String>::new(),
        "processes outlived their service"
    );
    let stopped = stopping.elapsed();
    tokio::task::block_in_place(|| check_points(&site, 2));
    site.sim.running.shutdown().await;
    eprintln!(
        "celery run: ready in {:.1} s, six runs in {:.1} s (at most {pooled} in the pool, \
         {peak} on the engine), the lock phase in {:.1} s (engine peak {locked_peak}), stopped \
         in {:.1} s, {:.1} s in all",
        ready.as_secs_f64(),
        ran.as_secs_f64(),
        locked.as_secs_f64(),
        stopped.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}

/// The keys of a JSON object file.
fn json_keys(path: &Path) -> Vec<String> {
    let value: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON");
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}
