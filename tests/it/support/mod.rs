//! The helpers the integration tests share. This file: running the real binaries from the
//! fixtures folder, so paths in output stay short and stable. Beside it: a client of the
//! simulated engine (`engine`), `ovrun` runs and runner configs (`ovrun`), a tmpfs of a chosen
//! size (`tmpfs`), a parser of GitHub's workflow commands (`workflow_command`), and the readers
//! of the compiled bundle (`artifact_syntax`, `bundle_meaning`, also included by the fuzz
//! target).

pub mod airflow;
pub mod artifact_syntax;
pub mod bundle_meaning;
pub mod celery;
pub mod engine;
pub mod ovrun;
pub mod tmpfs;
pub mod workflow_command;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder that holds `ok/` and `err/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The exit code, standard output and standard error of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// All three, as one text for a snapshot.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `ovplan ARGS` in the fixtures folder.
pub fn ovplan(args: &[&str]) -> Run {
    run(env!("CARGO_BIN_EXE_ovplan"), args, &fixtures())
}

/// Runs a binary with arguments in a folder.
pub fn run(bin: &str, args: &[&str], dir: &Path) -> Run {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names (without `.json`) of the fixtures in `dir`, sorted.
pub fn fixture_names(dir: &str) -> Vec<String> {
    json_names(&fixtures().join(dir))
}

/// The names (without `.json`) of the JSON files in a folder, sorted.
pub fn json_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("folder")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// An HTTPS client that trusts only the CA in `ca` (the simulator's), as a careful client does.
pub fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("CA");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
        .build()
        .expect("client")
}

/// Runs `git ARGS` in `dir`, isolated from the machine's git configuration (a test
/// repository's commits need a name); its output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=ovplan tests",
            "-c",
            "user.email=tests@ovplan.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A generated policy of `vms` VMs (`benches/gen_policy.py`, every schedule form), as JSON.
pub fn generated_policy(vms: usize) -> serde_json::Value {
    let generated = Command::new("python3")
        .args(["benches/gen_policy.py", &vms.to_string()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("python3");
    assert!(generated.status.success(), "benches/gen_policy.py failed");
    serde_json::from_slice(&generated.stdout).expect("JSON")
}
