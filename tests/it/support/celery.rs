//! A CeleryExecutor deployment of the real Airflow 3 on this machine, as a site runs one over
//! several backup hosts: a throwaway PostgreSQL cluster (the metadata database: on SQLite, the
//! api-server answered one trigger in four runs with a database error while the scheduler and
//! dag-processor wrote), `redis-server` (the broker and result backend), both on Unix sockets, the api-server
//! (on a free loopback port: the workers run their tasks through its Task Execution API, the
//! tests read runs through its REST API), the scheduler, the dag-processor, and one Celery
//! worker per backup host consuming that host's queue.
//!
//! Each worker plays a host of its own: a mount namespace where the host's backup folder is
//! bound at the policy's `backup_directory` (as the compose bundle mounts `BACKUP_ROOT/<host>`
//! there), so the runner configs stay as compiled, and a UTS namespace with the host's name,
//! which Airflow records on the task instances it runs. Every service leads a process group of
//! its own; [`Celery::stop`] (also on drop, when a test fails) ends each group, then any process
//! that still carries this deployment's `AIRFLOW_HOME`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde_json::Value;

use super::airflow::{Airflow, venv_bin};

/// A backup host: its Celery queue (and hostname) and the folder that is its disk.
pub struct Host {
    pub queue: String,
    pub backup: PathBuf,
}

/// The running deployment.
pub struct Celery {
    airflow: Airflow,
    logs: PathBuf,
    port: u16,
    sockets: tempfile::TempDir,
    services: Vec<Service>,
}

/// A started service and the signal that stops it.
struct Service {
    name: String,
    child: Child,
    stop: Signal,
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// A program of Debian's PostgreSQL (its newest major version here).
fn postgres_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (scripts/setup.sh installs it)")
        .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version")
}

/// `program` run as the `postgres` user (initdb refuses root).
fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command
        .args(["-u", "postgres", "--"])
        .arg(postgres_bin(program));
    command
}

impl Celery {
    /// Starts the database and the broker, migrates the database, then starts every Airflow
    /// service at once, the workers of `hosts` with their folders bound at `backup_directory`;
    /// `run` holds the services' logs.
    pub fn start(airflow: Airflow, run: &Path, backup_directory: &Path, hosts: &[Host]) -> Self {
        let logs = run.join("logs");
        std::fs::create_dir_all(&logs).expect("log folder");
        let mut celery = Self {
            airflow,
            logs,
            port: free_port(),
            sockets: postgres_folder(),
            services: Vec::new(),
        };
        celery.start_database();
        let mut redis = Command::new("redis-server");
        redis
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(celery.sockets.path().join("redis.sock"));
        celery.spawn("redis", redis, Signal::TERM);
        celery.until_database_ready();
        celery.cli(&["db", "migrate"]);
        for service in ["api-server", "scheduler", "dag-processor"] {
            let mut command = Command::new(venv_bin("airflow"));
            command.arg(service);
            celery.configure(&mut command);
            celery.spawn(service, command, Signal::TERM);
        }
        for host in hosts {
            let mut command = worker(host, backup_directory);
            celery.configure(&mut command);
            celery.spawn(&format!("worker-{}", host.queue), command, Signal::TERM);
        }
        celery
    }

    /// A new cluster in `sockets/data`, served on a socket in `sockets` only (no TCP), without
    /// fsync: a test's database.
    fn start_database(&mut self) {
        let data = self.sockets.path().join("data");
        let out = as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "airflow", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postgres = as_postgres("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(self.sockets.path());
        for setting in [
            "listen_addresses=",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            postgres.args(["-c", setting]);
        }
        // SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        self.spawn("postgres", postgres, Signal::INT);
    }

    /// Waits (up to a minute: a bound) until PostgreSQL accepts connections.
    fn until_database_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(postgres_bin("pg_isready"))
                .arg("-h")
                .arg(self.sockets.path())
                .args(["-U", "airflow", "-d", "postgres"])
                .output()
                .expect("pg_isready");
            if ready.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL does not start:\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `airflow ARGS` against this deployment, which must succeed; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(venv_bin("airflow"));
        self.configure(&mut command);
        let out = command.args(args).output().expect("airflow runs");
        assert!(
            out.status.success(),
            "airflow {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The environment of every Airflow service: the bundle's, and the CeleryExecutor's.
    fn configure(&self, command: &mut Command) {
        self.airflow.environment(command);
        let sockets = self.sockets.path().display();
        let broker = format!("redis+socket://{sockets}/redis.sock");
        let api = format!("http://127.0.0.1:{}", self.port);
        command
            .env(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                format!("postgresql+psycopg2://airflow@/postgres?host={sockets}"),
            )
            .env("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
            .env("AIRFLOW__CELERY__BROKER_URL", &broker)
            .env(
                "AIRFLOW__CELERY__RESULT_BACKEND",
                format!("{broker}?virtual_host=1"),
            )
            .env("AIRFLOW__API__HOST", "127.0.0.1")
            .env("AIRFLOW__API__PORT", self.port.to_string())
            .env(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("{api}/execution/"),
            )
            .env(
                "AIRFLOW__API_AUTH__JWT_SECRET",
                "celery-test-jwt-secret-0123456789",
            )
            .env("AIRFLOW__API__SECRET_KEY", "celery-test-secret-key")
            // Every caller of the REST API is an admin: the tests read it without logging in.
            .env("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "true")
            // The name a worker's task instances record: its UTS namespace's hostname, with no
            // DNS lookup (getfqdn's) of a name no resolver knows.
            .env("AIRFLOW__CORE__HOSTNAME_CALLABLE", "socket.gethostname")
            // Only the runs a test triggers: no scheduled run of the daily schedules.
            .env("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
            .env("AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "1")
            .env("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "5")
            .env("AIRFLOW__CELERY__WORKER_CONCURRENCY", "4");
    }

    /// Starts `command` as the leader of a process group of its own, its output in its log.
    fn spawn(&mut self, name: &str, mut command: Command, stop: Signal) {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log"))).expect("log");
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts (scripts/setup.sh installs it): {e}"));
        self.services.push(Service {
            name: name.to_owned(),
            child,
            stop,
        });
    }

    /// The api-server's address.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines of every service's log, for a failure's message.
    pub fn log_tails(&self) -> String {
        self.services
            .iter()
            .map(|Service { name, .. }| {
                let log = std::fs::read_to_string(self.logs.join(format!("{name}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("--- {name}\n{tail}\n")
            })
            .collect()
    }

    /// Ends every service: its stop signal to each group, SIGKILL to what is left of them
    /// after 30 seconds, then SIGKILL to any process still in this deployment's environment.
    /// The processes that outlived their group (none, when every service ends its own), by
    /// command.
    pub fn stop(&mut self) -> Vec<String> {
        let groups: Vec<Pid> = self.services.iter().map(|s| pid(s.child.id())).collect();
        for (service, group) in self.services.iter().zip(&groups) {
            let _ = rustix::process::kill_process_group(*group, service.stop);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && groups.iter().any(|g| group_alive(*g)) {
            for service in &mut self.services {
                let _ = service.child.try_wait();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for group in &groups {
            let _ = rustix::process::kill_process_group(*group, Signal::KILL);
        }
        for service in &mut self.services {
            let _ = service.child.wait();
        }
        self.services.clear();
        let home = format!("AIRFLOW_HOME={}", self.airflow.home().display());
        let strays = processes_with_env(&home);
        for (stray, _) in &strays {
            let _ = rustix::process::kill_process(*stray, Signal::KILL);
        }
        strays.into_iter().map(|(_, command)| command).collect()
    }
}

impl Drop for Celery {
    fn drop(&mut self) {
        if !self.services.is_empty() {
            self.stop();
        }
    }
}

/// A folder the `postgres` user can reach (the tests' temporary folders are root's alone) for
/// the cluster and the sockets.
fn postgres_folder() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o777))
        .expect("permissions");
    folder
}

/// A host's Celery worker: in mount and UTS namespaces of its own, its folder bound at the
/// backup directory and the host's name as hostname, consuming the host's queue.
fn worker(host: &Host, backup_directory: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--uts", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && hostname "$3" && exec "$4" celery worker --queues "$3" --skip-serve-logs"#)
        .arg("worker")
        .arg(&host.backup)
        .arg(backup_directory)
        .arg(&host.queue)
        .arg(venv_bin("airflow"));
    command
}

/// `program ARGS` as a host sees its disk: in a mount namespace of its own with `folder` bound
/// at `backup_directory`; its exit code and output.
pub fn on_host(
    folder: &Path,
    backup_directory: &Path,
    program: &str,
    args: &[&str],
) -> (i32, String) {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#)
        .arg("on-host")
        .arg(folder)
        .arg(backup_directory)
        .arg(program)
        .args(args)
        .output()
        .expect("unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn pid(id: u32) -> Pid {
    Pid::from_raw(i32::try_from(id).expect("a pid")).expect("not zero")
}

fn group_alive(group: Pid) -> bool {
    rustix::process::test_kill_process_group(group).is_ok()
}

/// The processes whose environment holds `entry` (`NAME=value`), with their command lines.
fn processes_with_env(entry: &str) -> Vec<(Pid, String)> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|id| *id != me)
        .filter(|id| {
            std::fs::read(format!("/proc/{id}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
        })
        .map(|id| {
            let command = std::fs::read(format!("/proc/{id}/cmdline")).unwrap_or_default();
            let command = String::from_utf8_lossy(&command).replace('\0', " ");
            (pid(id), command)
        })
        .collect()
}

/// The REST API of the api-server, with the token every caller gets.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Waits (up to three minutes: a bound, not a measure) until the api-server answers, and
    /// takes a token.
    pub async fn connect(celery: &Celery) -> Self {
        let http = reqwest::Client::new();
        let base = celery.api_url();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let answer = http.get(format!("{base}/auth/token")).send().await;
            if let Ok(answer) = answer
                && answer.status().is_success()
            {
                let body: Value = answer.json().await.expect("JSON");
                let token = body["access_token"].as_str().expect("a token").to_owned();
                return Self { http, base, token };
            }
            assert!(
                Instant::now() < deadline,
                "the api-server does not answer:\n{}",
                celery.log_tails()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v2/PATH`, which must succeed.
    pub async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `GET /api/v2/PATH`; `None` while it is not there (404), as a task's log before the
    /// task started.
    pub async fn get_if_there(&self, path: &str) -> Option<Value> {
        let answer = self
            .http
            .get(format!("{}/api/v2/{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .send()
            .await
            .expect("the api-server answers");
        if answer.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let status = answer.status();
        let text = answer.text().await.expect("body");
        assert!(status.is_success(), "GET {path}: {status}: {text}");
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}")))
    }

    /// `POST /api/v2/PATH` with `body`, which must succeed.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// `PATCH /api/v2/PATH` with `body`, which must succeed.
    pub async fn patch(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v2/{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("the api-server answers");
        let status = answer.status();
        let text = answer.text().await.expect("body");
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }
}
