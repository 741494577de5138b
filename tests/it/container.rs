//! Issue 15, item 4: the compose bundle, built and run. podman-compose builds the Dockerfile
//! `ovplan build` writes, as an operator would, on a Debian base image made here from Debian's
//! packages (`scripts/debian-base-image.sh`; CI reaches no container registry) and with the
//! `ovrun` of this test run (`OVRUN_BINARY`, so that no toolchain is compiled into an image).
//! The scheduler container the bundle's compose file starts runs cronie on the bundle's cron
//! file; at the minute the test policy names it backs up a VM of a production ovsim on this
//! host, and `ovrun verify` on the host accepts the point.
//!
//! Two things are this test's own, not the bundle's. A compose override puts the container in
//! the host's network (ovsim and its imageio daemon listen on loopback only) and gives the
//! image a name no other test run uses. A containers.conf only this test reads
//! (`CONTAINERS_CONF`) runs containers with runc and with resource limits the host allows:
//! on a host with cgroup v1 and a hybrid cgroup v2 tree holding a controller, crun refuses
//! every container ("cgroups in hybrid mode not supported"); and without CAP_SYS_RESOURCE no
//! runtime can raise a limit above podman's own hard limit (podman 4.3 asks for 1048576 open
//! files and processes, and lowers its own RLIMIT_NPROC to 32768).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::support::engine::Sim;
use crate::support::ovrun::{manifests, verify_ok};

/// The VM the test policy backs up.
const VM: &str = "app01";

/// How long before its scheduled minute the stack is started at least: podman-compose starts
/// the container, and cronie reads its crontabs, well within it.
const LEAD: TimeDelta = TimeDelta::seconds(25);

/// How long before its minute the stack must have started, for cronie to have read the cron
/// file by then.
const MARGIN: TimeDelta = TimeDelta::seconds(5);

/// How long the test waits for the point after its scheduled minute before it gives up.
const PATIENCE: TimeDelta = TimeDelta::minutes(4);

/// A production engine with one running VM whose disk holds data.
fn seed() -> Value {
    json!({
        "clusters": [{"name": "Default"}],
        "storage_domains": [{"name": "data"}],
        "vms": [{"name": VM, "memory_mib": 1024, "disks": [
            {"name": "app01_os", "size_mib": 16, "data": [{"offset_mib": 0, "length_mib": 2, "pattern": 23}]}
        ]}]
    })
}

/// The temp layout: the policy, its bundle, the host folders the compose file binds.
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Self {
        for dir in ["backup", "logs", "metrics", "secrets", "source"] {
            fs_err::create_dir_all(root.join(dir)).expect("folder");
        }
        Self {
            root: root.to_owned(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn compose_dir(&self) -> PathBuf {
        self.path("out/compose")
    }

    /// The runner config of [`VM`] the bundle holds (its paths are the same on the host and
    /// in the container).
    fn runner_config(&self) -> PathBuf {
        self.path(&format!("out/runner/{VM}.json"))
    }
}

/// Writes the policy, with [`VM`] backed up at `minute` (UTC) every day, and compiles it (the
/// status line's metrics into a folder of the layout, not the host's textfile folder).
fn build_bundle(layout: &Layout, sim: &Sim, minute: DateTime<Utc>) {
    let password = layout.path("secrets/source.password");
    fs_err::write(
        &password,
        format!("{}\n", sim.running.users["admin@internal"]),
    )
    .expect("password");
    let expression = minute.format("%M %H * * *").to_string();
    let policy = json!({
        "source_ovirt_url": sim.running.api_url(),
        "source_ovirt_user": "admin@internal",
        "source_ovirt_password_file": password,
        "source_ovirt_cert_path": sim.running.pki.ca_cert,
        "backup_directory": layout.path("backup"),
        "vms_config": {VM: {"schedule": {"type": "cron", "expression": expression, "timezone": "UTC"}}}
    });
    let file = layout.path("variables.json");
    fs_err::write(&file, serde_json::to_string_pretty(&policy).expect("JSON")).expect("policy");
    let out = layout.path("out");
    let run = crate::support::run(
        env!("CARGO_BIN_EXE_ovplan"),
        &[
            "build",
            text(&file),
            "--out",
            text(&out),
            "--metrics-dir",
            text(&layout.path("metrics")),
        ],
        &layout.root,
    );
    assert_eq!(run.code, 0, "ovplan build: {}", run.stderr);
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// The first whole minute at least [`LEAD`] from now.
fn next_minute() -> DateTime<Utc> {
    let soon = Utc::now() + LEAD + TimeDelta::minutes(1);
    soon.duration_trunc(TimeDelta::minutes(1)).expect("minute")
}

/// A hard resource limit of this process, from `/proc/self/limits` (`Max open files`...).
fn hard_limit(name: &str) -> u64 {
    let limits = fs_err::read_to_string("/proc/self/limits").expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in /proc/self/limits"));
    let hard = line[name.len()..].split_whitespace().nth(1).expect("hard");
    hard.parse().unwrap_or(u64::MAX)
}

/// The containers.conf of this test (see the module's documentation).
fn containers_conf(layout: &Layout) -> PathBuf {
    let nofile = hard_limit("Max open files").min(1_048_576);
    let nproc = hard_limit("Max processes").min(32_768);
    let conf = format!(
        "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
         \n[engine]\nruntime = \"runc\"\n"
    );
    let path = layout.path("containers.conf");
    fs_err::write(&path, conf).expect("containers.conf");
    path
}

/// A compose stack of this test: its project and image names, its override file and the
/// environment every podman call gets. Dropping it takes the stack down and removes its image.
struct Stack {
    project: String,
    image: String,
    compose_dir: PathBuf,
    override_file: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    fn new(layout: &Layout) -> Self {
        let unique = format!("{}-{}", std::process::id(), Utc::now().timestamp_millis());
        let image = format!("localhost/ovbackup-it:{unique}");
        let override_file = layout.path("override.yaml");
        let scheduler = json!({"image": image, "network_mode": "host"});
        let compose_override = json!({"services": {"scheduler": scheduler}});
        fs_err::write(&override_file, compose_override.to_string()).expect("override");
        let path = |rel: &str| text(&layout.path(rel)).to_owned();
        let env = vec![
            ("CONTAINERS_CONF", text(&containers_conf(layout)).to_owned()),
            ("OVBACKUP_SOURCE", path("source")),
            ("LOG_DIR", path("logs")),
            ("SOURCE_PASSWORD_FILE", path("secrets/source.password")),
            ("TZ", "UTC".to_owned()),
        ];
        Self {
            project: format!("ovbackup-it-{unique}"),
            image,
            compose_dir: layout.compose_dir(),
            override_file,
            env,
        }
    }

    /// `podman-compose -f docker-compose.yaml -f OVERRIDE -p PROJECT ARGS` in the bundle's
    /// compose folder.
    fn compose(&self, args: &[&str]) -> Output {
        let podman_compose = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/podman-compose");
        Command::new(podman_compose)
            .args(["-f", "docker-compose.yaml", "-f", text(&self.override_file)])
            .args(["-p", &self.project])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.compose_dir)
            .output()
            .expect("podman-compose (scripts/setup.sh installs it into .venv)")
    }

    fn compose_ok(&self, args: &[&str]) {
        let out = tokio::task::block_in_place(|| self.compose(args));
        assert!(
            out.status.success(),
            "podman-compose {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Builds the bundle's image, FROM `base` in both stages, with this run's `ovrun`; without
    /// layers, so that nothing of the build stays in podman's storage but the image.
    fn build(&self, base: &str) {
        let build_args = [
            format!("BUILD_IMAGE={base}"),
            format!("RUNTIME_IMAGE={base}"),
            "OVRUN_BINARY=ovrun".to_owned(),
        ];
        let mut args = vec!["--podman-build-args=--layers=false", "build"];
        for arg in &build_args {
            args.extend(["--build-arg", arg]);
        }
        self.compose_ok(&args);
    }

    /// Compiles the policy with a minute due shortly and starts the stack; again, with the
    /// next minute, when the start took so long that cronie might miss it. The minute.
    fn start_before_its_minute(&self, layout: &Layout, sim: &Sim) -> DateTime<Utc> {
        for _ in 0..3 {
            let minute = next_minute();
            build_bundle(layout, sim, minute);
            self.compose_ok(&["up", "-d", "--no-build"]);
            if Utc::now() + MARGIN < minute {
                return minute;
            }
            self.compose_ok(&["down", "-t", "1"]);
        }
        panic!("the stack never started within {LEAD} of a minute");
    }

    /// The scheduler container's log (what cronie and the jobs print there).
    fn logs(&self) -> String {
        let out = self.compose(&["logs"]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-t", "1"]);
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.image])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

/// The Debian base image (made once, then cached: see the script).
fn base_image() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debian-base-image.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/debian-base-image.sh:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// This run's `ovrun`, without its debug information, as the whole `source` build context.
fn source_context(layout: &Layout) {
    crate::support::engine::sh(
        "strip",
        &[
            "-o",
            text(&layout.path("source/ovrun")),
            env!("CARGO_BIN_EXE_ovrun"),
        ],
    );
}

/// The host's `ovrun history` of the VM, once a run has ended there (its history file is
/// written when a run ends), or a failure [`PATIENCE`] after `minute`.
async fn first_run(layout: &Layout, stack: &Stack, minute: DateTime<Utc>) -> Vec<Value> {
    let history = layout.path(&format!("backup/{VM}/.history.jsonl"));
    while !history.exists() {
        assert!(
            Utc::now() < minute + PATIENCE,
            "no run by {PATIENCE} after {minute}; the scheduler's log:\n{}\nthe VM's log:\n{}",
            stack.logs(),
            fs_err::read_to_string(layout.path(&format!("logs/{VM}.log"))).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let config = layout.runner_config();
    let (code, stdout) = tokio::task::block_in_place(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ovrun"))
            .args(["history", "--config", text(&config), "--format", "json"])
            .output()
            .expect("ovrun runs");
        let code = out.status.code().unwrap_or(-1);
        (code, String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(code, 0, "ovrun history: {stdout}");
    serde_json::from_str(&stdout).expect("a JSON array")
}

/// The one run: a successful backup that started in `minute`, whose point is the catalog's
/// one full point and is named in the VM's log.
fn check_run(layout: &Layout, runs: &[Value], minute: DateTime<Utc>) {
    let [run] = runs else {
        panic!("one run: {runs:?}");
    };
    assert_eq!(
        (&run["kind"], &run["result"]),
        (&json!("backup"), &json!("ok")),
        "{run}"
    );
    let started: DateTime<Utc> = serde_json::from_value(run["started"].clone()).expect("time");
    assert_eq!(
        started
            .duration_trunc(TimeDelta::minutes(1))
            .expect("minute"),
        minute,
        "the scheduler started the backup in the minute its schedule names: {run}"
    );
    let points = manifests(&layout.path(&format!("backup/{VM}")));
    let [point] = points.as_slice() else {
        panic!("one point: {points:?}");
    };
    assert_eq!((&point["vm"], &point["kind"]), (&json!(VM), &json!("full")));
    assert_eq!(point["point"], run["point"]);
    // The cron line appends the run's output to the VM's log, in LOG_DIR on the host.
    let log = fs_err::read_to_string(layout.path(&format!("logs/{VM}.log"))).expect("VM log");
    let id = point["point"].as_str().expect("point id");
    assert!(
        log.contains(id),
        "the VM's log names the point {id}:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_bundle_builds_and_its_scheduler_backs_up_a_vm_at_its_minute() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = Layout::new(dir.path());
    let sim = Sim::start(&layout.path("prod"), seed()).await;
    let base = tokio::task::block_in_place(base_image);
    source_context(&layout);

    // The image does not depend on the schedule: it is built first, and the schedule set
    // after, due shortly.
    build_bundle(&layout, &sim, next_minute());
    let stack = Stack::new(&layout);
    stack.build(&base);
    let minute = stack.start_before_its_minute(&layout, &sim);

    let runs = first_run(&layout, &stack, minute).await;
    check_run(&layout, &runs, minute);
    tokio::task::block_in_place(|| verify_ok(&layout.runner_config()));
    sim.running.shutdown().await;
}
