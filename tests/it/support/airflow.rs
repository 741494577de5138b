//! The real Airflow (scripts/setup.sh installs it into `.venv-airflow`) over a compiled
//! bundle's `airflow/` folder: an `AIRFLOW_HOME` of its own in a temporary folder, with a
//! SQLite metadata database copied from one migrated once per test run (a migration takes
//! seconds), the bundle's DAG and plugin folders, no example DAGs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// A program of the Airflow venv.
pub fn venv_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-airflow/bin")
        .join(name)
}

/// An Airflow installation reading one bundle.
pub struct Airflow {
    home: tempfile::TempDir,
    airflow: PathBuf,
}

impl Airflow {
    /// Airflow over `bundle/airflow`, with a migrated database.
    pub fn new(bundle: &Path) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        std::fs::copy(migrated_database(), home.path().join("airflow.db")).expect("database");
        Self {
            home,
            airflow: bundle.join("airflow"),
        }
    }

    /// Airflow over `bundle/airflow` with an empty home, for a deployment that brings its own
    /// database.
    pub fn without_database(bundle: &Path) -> Self {
        Self {
            home: tempfile::tempdir().expect("temp dir"),
            airflow: bundle.join("airflow"),
        }
    }

    /// The DAG folder.
    pub fn dags(&self) -> PathBuf {
        self.airflow.join("dags")
    }

    /// Its `AIRFLOW_HOME` (the database, the task logs).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A command of the venv with this installation's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(venv_bin(program));
        self.environment(&mut command);
        command
    }

    /// Gives `command` this installation's environment.
    pub fn environment(&self, command: &mut Command) {
        configure(command, self.home.path());
        command.env("AIRFLOW__CORE__DAGS_FOLDER", self.dags()).env(
            "AIRFLOW__CORE__PLUGINS_FOLDER",
            self.airflow.join("plugins"),
        );
    }

    /// `airflow ARGS`, which must succeed; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command("airflow")
            .args(args)
            .output()
            .expect("airflow runs");
        succeeded(&format!("airflow {args:?}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The JSON that `airflow ARGS -o json` prints (Airflow's log lines come before it).
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        last_json_line(&self.cli(&all))
    }

    /// `tests/support/airflow_dags.py ARGS` (one DagBag parse, or the operator alone for
    /// `outcomes`); the JSON it answers.
    pub fn dags_script(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/airflow_dags.py");
        let dags = self.dags();
        let out = self
            .command("python")
            .arg(script)
            .arg(args[0])
            .arg(&dags)
            .args(&args[1..])
            .output()
            .expect("python runs");
        succeeded(&format!("airflow_dags.py {args:?}"), &out);
        last_json_line(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The environment every Airflow command of the tests runs with.
fn configure(command: &mut Command, home: &Path) {
    command
        .env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "false")
        .env("AIRFLOW__CORE__DEFAULT_TIMEZONE", "system")
        .env("TZ", "UTC")
        // Airflow prints Python's warnings (a missing graphviz) on standard output.
        .env("PYTHONWARNINGS", "ignore");
}

fn succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn last_json_line(text: &str) -> Value {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('[') || l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in:\n{text}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// A SQLite database `airflow db migrate` made, once per test run, in the target folder.
fn migrated_database() -> &'static Path {
    static DATABASE: OnceLock<PathBuf> = OnceLock::new();
    DATABASE.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("airflow-home");
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("folder");
        let mut command = Command::new(venv_bin("airflow"));
        configure(&mut command, &home);
        let out = command
            .args(["db", "migrate"])
            .output()
            .expect("airflow (scripts/setup.sh installs it into .venv-airflow)");
        succeeded("airflow db migrate", &out);
        home.join("airflow.db")
    })
}

/// `ovplan build POLICY --target airflow` into `dir/bundle`, its DAGs running this build's ovrun
/// on the runner configs in the bundle itself (`--config-dir`): a bundle Airflow can run here.
pub fn runnable_bundle(policy: &Path, dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    let args = [
        "build",
        policy.to_str().expect("utf-8"),
        "--out",
        bundle.to_str().expect("utf-8"),
        "--target",
        "airflow",
        "--ovrun",
        env!("CARGO_BIN_EXE_ovrun"),
        "--config-dir",
        bundle.to_str().expect("utf-8"),
    ];
    let result = super::run(env!("CARGO_BIN_EXE_ovplan"), &args, dir);
    assert_eq!(result.code, 0, "{}", result.stderr);
    bundle
}
