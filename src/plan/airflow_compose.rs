//! `DIR/airflow/docker-compose.yaml`: the predecessor's deployment form, the official Airflow
//! image's layout with the CeleryExecutor (postgres, redis, api-server, scheduler,
//! dag-processor, an init job that migrates the database and imports the pools), and one Celery
//! worker per backup host consuming that host's queue, with its backup directory, the runner
//! configs, the CAs and the password files mounted. Built as data and written by a YAML
//! serializer, as `compose` is; the policy's strings have their `$` doubled.

use std::collections::BTreeMap;

use serde::Serialize;

use super::airflow::AIRFLOW_VERSION;
use super::compose::{Build, SecretFile, SecretMount, Volume, compose_escape};

/// The whole file.
#[derive(Debug, Serialize)]
pub(crate) struct ComposeFile {
    pub(crate) name: &'static str,
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) volumes: BTreeMap<&'static str, Option<()>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) secrets: BTreeMap<String, SecretFile>,
}

/// One service; what it does not set is left out.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Service {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<Build>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<Volume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretMount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    depends_on: BTreeMap<&'static str, Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restart: Option<&'static str>,
}

/// A health check command.
#[derive(Debug, Serialize)]
struct Healthcheck {
    test: Vec<&'static str>,
    interval: &'static str,
    timeout: &'static str,
    retries: u32,
}

/// What a service waits for in another.
#[derive(Debug, Serialize)]
struct Condition {
    condition: &'static str,
}

/// A backup host's worker: the host's queue and where its files are on the host.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The host's id (its queue).
    pub(crate) id: String,
}

/// What the workers mount, at the paths the runner configs name.
#[derive(Debug)]
pub(crate) struct WorkerFiles {
    /// The policy's backup directory.
    pub(crate) backup_directory: String,
    /// The runner configs' folder.
    pub(crate) runner_dir: String,
    /// The engines' CA files.
    pub(crate) ca_files: Vec<String>,
    /// The password files, as compose secrets.
    pub(crate) secrets: Vec<SecretMount>,
}

const POSTGRES: &str = "postgresql+psycopg2://airflow:airflow@postgres/airflow";
const RESULT_BACKEND: &str = "db+postgresql://airflow:airflow@postgres/airflow";

fn airflow_image() -> String {
    format!("apache/airflow:{AIRFLOW_VERSION}")
}

/// The environment every Airflow container shares.
fn common_environment() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor".into()),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", POSTGRES.into()),
        ("AIRFLOW__CELERY__RESULT_BACKEND", RESULT_BACKEND.into()),
        ("AIRFLOW__CELERY__BROKER_URL", "redis://redis:6379/0".into()),
        (
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "http://airflow-apiserver:8080/execution/".into(),
        ),
        (
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "${AIRFLOW_JWT_SECRET:?set AIRFLOW_JWT_SECRET in .env}".into(),
        ),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "false".into()),
        ("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "true".into()),
        // A schedule without a zone runs in the hosts' zone, as the systemd target's does.
        ("AIRFLOW__CORE__DEFAULT_TIMEZONE", "${TZ:-UTC}".into()),
        ("TZ", "${TZ:-UTC}".into()),
    ])
}

/// The DAGs, the plugin and the logs, as every Airflow container sees them.
fn common_volumes() -> Vec<Volume> {
    vec![
        Volume::bind("./dags".into(), "/opt/airflow/dags".into(), true),
        Volume::bind("./plugins".into(), "/opt/airflow/plugins".into(), true),
        Volume::bind(
            "${AIRFLOW_LOGS:-./logs}".into(),
            "/opt/airflow/logs".into(),
            false,
        ),
    ]
}

fn airflow_service(command: &[&str]) -> Service {
    Service {
        image: airflow_image(),
        command: command.iter().map(|c| (*c).to_owned()).collect(),
        environment: common_environment(),
        user: Some("${AIRFLOW_UID:-50000}:0"),
        volumes: common_volumes(),
        depends_on: BTreeMap::from([
            (
                "postgres",
                Condition {
                    condition: "service_healthy",
                },
            ),
            (
                "redis",
                Condition {
                    condition: "service_healthy",
                },
            ),
            (
                "airflow-init",
                Condition {
                    condition: "service_completed_successfully",
                },
            ),
        ]),
        restart: Some("always"),
        ..Service::default()
    }
}

fn healthcheck(test: &[&'static str]) -> Healthcheck {
    Healthcheck {
        test: test.to_vec(),
        interval: "30s",
        timeout: "10s",
        retries: 5,
    }
}

/// Postgres and redis, as the official layout runs them.
fn backing_services() -> [(String, Service); 2] {
    let postgres = Service {
        image: "postgres:16".into(),
        environment: BTreeMap::from([
            ("POSTGRES_USER", "airflow".into()),
            ("POSTGRES_PASSWORD", "airflow".into()),
            ("POSTGRES_DB", "airflow".into()),
        ]),
        volumes: vec![Volume {
            kind: "volume",
            source: "postgres-db-volume".into(),
            target: "/var/lib/postgresql/data".into(),
            read_only: false,
        }],
        healthcheck: Some(healthcheck(&["CMD", "pg_isready", "-U", "airflow"])),
        restart: Some("always"),
        ..Service::default()
    };
    let redis = Service {
        image: "redis:7.2-bookworm".into(),
        healthcheck: Some(healthcheck(&["CMD", "redis-cli", "ping"])),
        restart: Some("always"),
        ..Service::default()
    };
    [("postgres".into(), postgres), ("redis".into(), redis)]
}

/// The Airflow services every deployment has.
fn airflow_services() -> Vec<(String, Service)> {
    let mut init = airflow_service(&["pools", "import", "/opt/airflow/pools.json"]);
    init.environment
        .insert("_AIRFLOW_DB_MIGRATE", "true".into());
    init.volumes.push(Volume::bind(
        "./pools.json".into(),
        "/opt/airflow/pools.json".into(),
        true,
    ));
    init.depends_on.remove("airflow-init");
    init.restart = None;
    let mut api = airflow_service(&["api-server"]);
    api.ports = vec!["8080:8080"];
    api.healthcheck = Some(healthcheck(&[
        "CMD",
        "curl",
        "--fail",
        "http://localhost:8080/api/v2/version",
    ]));
    let mut scheduler = airflow_service(&["scheduler"]);
    scheduler.healthcheck = Some(healthcheck(&[
        "CMD",
        "curl",
        "--fail",
        "http://localhost:8974/health",
    ]));
    vec![
        ("airflow-init".into(), init),
        ("airflow-apiserver".into(), api),
        ("airflow-scheduler".into(), scheduler),
        (
            "airflow-dag-processor".into(),
            airflow_service(&["dag-processor"]),
        ),
    ]
}

/// A backup host's Celery worker: the image with ovrun, the host's queue, its files.
fn worker(worker: &Worker, files: &WorkerFiles) -> Service {
    let mut service = airflow_service(&["celery", "worker", "--queues", &worker.id]);
    service.image = "ovbackup/airflow-worker:local".into();
    service.build = Some(Build {
        context: ".",
        dockerfile: "Dockerfile",
        additional_contexts: BTreeMap::from([("source", "${OVBACKUP_SOURCE:-../..}")]),
    });
    // The official image needs this for a Celery worker's warm shutdown.
    service.environment.insert("DUMB_INIT_SETSID", "0".into());
    let same = |path: &str| (compose_escape(path), compose_escape(path));
    service.volumes.push(Volume::bind(
        format!("${{BACKUP_ROOT:-./backups}}/{}", worker.id),
        compose_escape(&files.backup_directory),
        false,
    ));
    service.volumes.push(Volume::bind(
        "../runner".into(),
        compose_escape(&files.runner_dir),
        true,
    ));
    for ca in &files.ca_files {
        let (source, target) = same(ca);
        service.volumes.push(Volume::bind(source, target, true));
    }
    service.secrets = files
        .secrets
        .iter()
        .map(|s| SecretMount {
            source: s.source.clone(),
            target: s.target.clone(),
            mode: s.mode,
        })
        .collect();
    service
}

/// The compose file of a bundle with these backup hosts.
pub(crate) fn compose_file(
    workers: &[Worker],
    files: &WorkerFiles,
    secrets: BTreeMap<String, SecretFile>,
) -> ComposeFile {
    let mut services: BTreeMap<String, Service> = backing_services().into_iter().collect();
    services.extend(airflow_services());
    for w in workers {
        services.insert(format!("airflow-worker-{}", w.id), worker(w, files));
    }
    ComposeFile {
        name: "ovbackup-airflow",
        services,
        volumes: BTreeMap::from([("postgres-db-volume", None)]),
        secrets,
    }
}

/// The YAML text of the compose file.
pub(crate) fn to_yaml(file: &ComposeFile) -> String {
    serde_norway::to_string(file).expect("a compose file of strings, numbers and maps serializes")
}
