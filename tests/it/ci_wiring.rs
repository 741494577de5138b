//! The ready-made CI wiring of issue 17, each run for real on the example policy in a temporary
//! git repository (a base commit, then a commit that changes erp-db01's retention, each with its
//! bundle built into `out/`):
//! - `.pre-commit-hooks.yaml`, through `pre-commit run --all-files` (pre-commit from `.venv`,
//!   which `scripts/setup.sh` installs), passing, then failing with the diagnostic;
//! - `action.yml`, the composite GitHub Action: each step's script run as the runner runs it
//!   (`bash -eo pipefail`, its `env` with the inputs, `GITHUB_PATH` read after each step, the job
//!   summary collected);
//! - `ci/gitlab-ovplan.yml`: each job's `before_script` and `script` lines run as GitLab's shell
//!   runs them, with the template's variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::workflow_command;
use crate::support::{Run, git};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of the `ovplan` under test.
fn ovplan_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ovplan"))
        .parent()
        .expect("a folder")
        .to_path_buf()
}

/// `dirs` before the system's PATH.
fn path_with(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push(std::env::var("PATH").expect("PATH"));
    parts.join(":")
}

fn build_bundle(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovplan"))
        .args(["build", "variables.json", "--out", "out"])
        .current_dir(dir)
        .output()
        .expect("ovplan runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding the example as `variables.json` with its bundle in `out/`: a base
/// commit, then one that changes erp-db01's retention (the bundle rebuilt).
fn policy_repository(root: &Path) -> PathBuf {
    let dir = root.join("policy");
    std::fs::create_dir_all(&dir).expect("folder");
    let example = std::fs::read_to_string(repo().join("examples/variables.json")).expect("x");
    std::fs::write(dir.join("variables.json"), &example).expect("write");
    build_bundle(&dir);
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "base"]);
    let changed = example.replacen(r#""keep_daily": 14"#, r#""keep_daily": 30"#, 1);
    std::fs::write(dir.join("variables.json"), changed).expect("write");
    build_bundle(&dir);
    git(
        &dir,
        &["commit", "-q", "-a", "-m", "erp-db01 keeps 30 days"],
    );
    dir
}

/// Breaks the working policy (a misspelt key) and stages it.
fn break_policy(dir: &Path) {
    let path = dir.join("variables.json");
    let text = std::fs::read_to_string(&path).expect("policy");
    std::fs::write(&path, text.replacen("\"keep_weekly\"", "\"keep_wekly\"", 1)).expect("write");
    git(dir, &["add", "-A"]);
}

/// Runs `script` as a CI shell does (`bash --noprofile --norc -eo pipefail`) in `dir`.
fn bash(script: &str, dir: &Path, env: &[(String, String)]) -> Run {
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("TZ", "UTC")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("bash runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).expect("the file");
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// --- pre-commit -------------------------------------------------------------------------------

#[test]
fn the_pre_commit_hooks_are_defined_for_an_installed_ovplan() {
    let hooks = yaml(".pre-commit-hooks.yaml");
    let ids: Vec<&str> = hooks
        .as_array()
        .expect("a list of hooks")
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(ids, ["ovplan-validate", "ovplan-build-check"]);
    for hook in hooks.as_array().expect("hooks") {
        assert_eq!(hook["language"], "unsupported", "{hook}");
        let entry = hook["entry"].as_str().expect("entry");
        assert!(entry.starts_with("ovplan "), "{entry}");
    }
    let check = Command::new(repo().join(".venv/bin/pre-commit"))
        .args(["validate-manifest", ".pre-commit-hooks.yaml"])
        .current_dir(repo())
        .output()
        .expect("pre-commit runs (scripts/setup.sh installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// The README's YAML blocks, by their first line (`# .gitlab-ci.yml`...).
fn readme_snippets() -> BTreeMap<String, Value> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    readme
        .split("```yaml\n")
        .skip(1)
        .map(|rest| {
            let block = rest.split("```").next().expect("a closed block");
            let name = block.lines().next().unwrap_or_default().to_owned();
            (name, serde_norway::from_str(block).expect("YAML"))
        })
        .collect()
}

/// The README's copy-paste snippets parse and name what the wiring has: the hooks' ids, the
/// action's inputs, the template's variables.
#[test]
fn the_readme_snippets_fit_the_wiring() {
    let snippets = readme_snippets();
    let config = &snippets["# .pre-commit-config.yaml"];
    let hooks = yaml(".pre-commit-hooks.yaml");
    for hook in config["repos"][0]["hooks"].as_array().expect("hooks") {
        let id = &hook["id"];
        assert!(
            hooks
                .as_array()
                .expect("hooks")
                .iter()
                .any(|h| &h["id"] == id),
            "{id}"
        );
    }
    let workflow = &snippets["# .github/workflows/policy.yml"];
    let action = yaml("action.yml");
    let uses = workflow["jobs"]["policy"]["steps"][1]["with"]
        .as_object()
        .expect("with");
    for input in uses.keys() {
        assert!(
            action["inputs"].get(input).is_some(),
            "the action has no input {input}"
        );
    }
    let gitlab = &snippets["# .gitlab-ci.yml"];
    let template = yaml("ci/gitlab-ovplan.yml");
    for variable in gitlab["variables"].as_object().expect("variables").keys() {
        assert!(template["variables"].get(variable).is_some(), "{variable}");
    }
}

/// `pre-commit run --all-files` in the policy's repository, with the hooks of a repository that
/// holds this project's `.pre-commit-hooks.yaml` at `rev`.
fn pre_commit(dir: &Path, cache: &Path) -> Run {
    let pre_commit = repo().join(".venv/bin/pre-commit");
    assert!(
        pre_commit.exists(),
        "run scripts/setup.sh: it installs pre-commit into .venv"
    );
    let out = Command::new(pre_commit)
        .args(["run", "--all-files", "--color", "never"])
        .current_dir(dir)
        .env("PATH", path_with(&[&ovplan_dir()]))
        .env("PRE_COMMIT_HOME", cache)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("pre-commit runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A repository holding only the hook definition, committed; its commit.
fn hooks_repository(root: &Path) -> (PathBuf, String) {
    let dir = root.join("hooks");
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::copy(
        repo().join(".pre-commit-hooks.yaml"),
        dir.join(".pre-commit-hooks.yaml"),
    )
    .expect("copy");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "hooks"]);
    let rev = git(&dir, &["rev-parse", "HEAD"]);
    (dir, rev)
}

#[test]
fn pre_commit_runs_the_hooks_and_a_bad_policy_fails_with_its_diagnostic() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = policy_repository(root.path());
    let (hooks, rev) = hooks_repository(root.path());
    let config = format!(
        "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: ovplan-validate\n      \
         - id: ovplan-build-check\n",
        hooks.display()
    );
    std::fs::write(dir.join(".pre-commit-config.yaml"), config).expect("write");
    git(&dir, &["add", "-A"]);
    let cache = root.path().join("cache");
    let good = pre_commit(&dir, &cache);
    assert_eq!(good.code, 0, "{}{}", good.stdout, good.stderr);
    assert!(good.stdout.contains("ovplan validate....") && good.stdout.contains("Passed"));
    assert!(
        good.stdout.contains("ovplan build --check...."),
        "{}",
        good.stdout
    );
    let stale_text = std::fs::read_to_string(dir.join("variables.json"))
        .expect("policy")
        .replacen(r#""keep_daily": 30"#, r#""keep_daily": 31"#, 1);
    std::fs::write(dir.join("variables.json"), stale_text).expect("write");
    git(&dir, &["add", "-A"]);
    let stale = pre_commit(&dir, &cache);
    assert_eq!(stale.code, 1, "{}", stale.stdout);
    assert!(stale.stdout.contains("out is stale"), "{}", stale.stdout);
    break_policy(&dir);
    let bad = pre_commit(&dir, &cache);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout.contains("- hook id: ovplan-validate"),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("ovplan::unknown-key"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("did you mean `keep_weekly`?"),
        "{}",
        bad.stdout
    );
}

// --- GitHub Actions ---------------------------------------------------------------------------

/// One step of the composite action.
struct Step {
    name: String,
    env: Vec<(String, String)>,
    run: String,
}

/// The value of `${{ EXPR }}`: `a || b` is the first non-empty; `inputs.X` the input given, else
/// its default; the pull request's base is empty (a push). Anything else is not expected here.
fn evaluate(expression: &str, inputs: &BTreeMap<&str, String>, action: &Value) -> String {
    for term in expression.split("||").map(str::trim) {
        let value = if let Some(name) = term.strip_prefix("inputs.") {
            let default = action["inputs"][name]["default"].as_str();
            assert!(
                default.is_some(),
                "the action declares input {name} with a default"
            );
            inputs
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.unwrap_or("").to_owned())
        } else if term == "github.event.pull_request.base.sha" {
            String::new()
        } else {
            panic!("an expression the test does not know: {term}")
        };
        if !value.is_empty() {
            return value;
        }
    }
    String::new()
}

/// `text` with every `${{ ... }}` evaluated.
fn substitute(text: &str, inputs: &BTreeMap<&str, String>, action: &Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        out.push_str(&rest[..start]);
        out.push_str(&evaluate(rest[start + 3..end].trim(), inputs, action));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn steps(action: &Value, inputs: &BTreeMap<&str, String>) -> Vec<Step> {
    assert_eq!(action["runs"]["using"], "composite");
    let steps = action["runs"]["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|step| {
            assert_eq!(step["shell"], "bash", "{step}");
            assert!(
                step.get("if").is_none(),
                "steps decide in their scripts: {step}"
            );
            let run = step["run"].as_str().expect("a run step").to_owned();
            assert!(
                !run.contains("${{"),
                "inputs reach scripts through env only: {run}"
            );
            let env = step["env"].as_object().map_or_else(Vec::new, |env| {
                env.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            substitute(v.as_str().expect("text"), inputs, action),
                        )
                    })
                    .collect()
            });
            Step {
                name: step["name"].as_str().expect("name").to_owned(),
                env,
                run,
            }
        })
        .collect()
}

/// What a run of the action did: each step that ran, and the job summary.
struct ActionRun {
    steps: Vec<(String, Run)>,
    summary: String,
}

/// Runs the action's steps in `dir` as the runner does, until one fails.
fn run_action(dir: &Path, inputs: &[(&'static str, String)]) -> ActionRun {
    let action = yaml("action.yml");
    let inputs: BTreeMap<&str, String> = inputs.iter().cloned().collect();
    let temp = tempfile::tempdir().expect("runner temp");
    let summary = temp.path().join("summary.md");
    let github_path = temp.path().join("github_path");
    let mut path = std::env::var("PATH").expect("PATH");
    let mut ran = Vec::new();
    for step in steps(&action, &inputs) {
        std::fs::write(&github_path, "").expect("write");
        let mut env = step.env.clone();
        for (key, value) in [
            ("GITHUB_ACTION_PATH", repo().to_path_buf()),
            ("GITHUB_STEP_SUMMARY", summary.clone()),
            ("GITHUB_PATH", github_path.clone()),
            ("RUNNER_TEMP", temp.path().to_path_buf()),
        ] {
            env.push((key.to_owned(), value.display().to_string()));
        }
        env.push(("PATH".to_owned(), path.clone()));
        let run = bash(&step.run, dir, &env);
        let failed = run.code != 0;
        ran.push((step.name, run));
        for added in std::fs::read_to_string(&github_path)
            .expect("GITHUB_PATH")
            .lines()
        {
            path = format!("{added}:{path}");
        }
        if failed {
            break;
        }
    }
    ActionRun {
        steps: ran,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

#[test]
fn the_github_action_validates_summarizes_the_diff_and_checks_the_bundle() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = policy_repository(root.path());
    let binary = env!("CARGO_BIN_EXE_ovplan").to_owned();
    let run = run_action(&dir, &[("ovplan", binary.clone())]);
    let names: Vec<&str> = run.steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ovplan",
            "ovplan validate",
            "ovplan diff",
            "ovplan build --check"
        ]
    );
    for (name, step) in &run.steps {
        assert_eq!(step.code, 0, "{name}: {}{}", step.stdout, step.stderr);
    }
    assert_eq!(
        run.steps[1].1.stdout, "",
        "a valid policy has no annotation"
    );
    assert!(
        run.summary
            .starts_with("### ovplan diff: `HEAD~1:variables.json` → `variables.json`\n"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains("#### `erp-db01`: changed"),
        "{}",
        run.summary
    );
    assert!(run.steps[3].1.stderr.contains("out: up to date"));
    break_policy(&dir);
    let bad = run_action(&dir, &[("ovplan", binary)]);
    assert_eq!(bad.steps.len(), 2, "the failed validation stops the action");
    let validate = &bad.steps[1].1;
    assert_eq!(validate.code, 1);
    let commands: Vec<_> = validate
        .stdout
        .lines()
        .map(|l| workflow_command::parse(l).expect("a workflow command"))
        .collect();
    assert_eq!(commands.len(), 1, "{}", validate.stdout);
    assert_eq!(commands[0].name, "error");
    assert_eq!(commands[0].parameters["file"], "variables.json");
    assert_eq!(commands[0].parameters["title"], "ovplan::unknown-key");
}

/// Without the `ovplan` input the action builds ovplan from its own source: the manifest it
/// names is this package's, which has that binary.
#[test]
fn the_github_action_builds_an_ovplan_this_package_has() {
    let action = yaml("action.yml");
    let build = action["runs"]["steps"][0]["run"].as_str().expect("run");
    assert!(
        build.contains(
            "cargo build --release --locked --bin ovplan --manifest-path \
             \"$GITHUB_ACTION_PATH/Cargo.toml\""
        ),
        "{build}"
    );
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(repo().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let bins: Vec<&str> = metadata["packages"][0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| t["kind"][0] == "bin")
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(bins.contains(&"ovplan"), "{bins:?}");
}

// --- GitLab CI --------------------------------------------------------------------------------

/// A job's shell script: the `before_script` of what it extends, then its `script`.
fn job_script(template: &Value, job: &str) -> String {
    let job = &template[job];
    let base = &template[job["extends"].as_str().expect("extends .ovplan")];
    let lines = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut script = lines(&base["before_script"]);
    script.extend(lines(&job["script"]));
    assert!(!script.is_empty(), "{job}");
    script.join("\n")
}

/// The template's variables, the job's, then `overrides`.
fn job_env(template: &Value, job: &str, overrides: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for vars in [&template["variables"], &template[job]["variables"]] {
        if let Some(vars) = vars.as_object() {
            env.extend(
                vars.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())),
            );
        }
    }
    env.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env
}

fn run_job(template: &Value, job: &str, dir: &Path, overrides: &[(&str, String)]) -> Run {
    bash(
        &job_script(template, job),
        dir,
        &job_env(template, job, overrides),
    )
}

#[test]
fn the_gitlab_template_jobs_run_on_the_example() {
    let template = yaml("ci/gitlab-ovplan.yml");
    assert_eq!(
        template["ovplan-validate"]["artifacts"]["reports"]["codequality"],
        "ovplan-code-quality.json"
    );
    let rule = template["ovplan-diff"]["rules"][0]["if"]
        .as_str()
        .expect("a rule");
    assert!(
        rule.contains("CI_MERGE_REQUEST_DIFF_BASE_SHA"),
        "merge requests only: {rule}"
    );
    let root = tempfile::tempdir().expect("temp dir");
    let dir = policy_repository(root.path());
    let env = [
        ("PATH", path_with(&[&ovplan_dir()])),
        ("CI_PROJECT_DIR", dir.display().to_string()),
        (
            "CI_MERGE_REQUEST_DIFF_BASE_SHA",
            git(&dir, &["rev-parse", "HEAD~1"]),
        ),
    ];
    for job in ["ovplan-validate", "ovplan-build-check", "ovplan-diff"] {
        let run = run_job(&template, job, &dir, &env);
        assert_eq!(run.code, 0, "{job}: {}{}", run.stdout, run.stderr);
    }
    let report = std::fs::read_to_string(dir.join("ovplan-code-quality.json")).expect("report");
    assert_eq!(report, "[]\n");
    let review = std::fs::read_to_string(dir.join("ovplan-diff.md")).expect("the diff");
    assert!(review.contains("#### `erp-db01`: changed"), "{review}");
    break_policy(&dir);
    let bad = run_job(&template, "ovplan-validate", &dir, &env);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    let report = std::fs::read_to_string(dir.join("ovplan-code-quality.json")).expect("report");
    let issues: Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(issues[0]["check_name"], "ovplan::unknown-key");
    assert_eq!(issues[0]["location"]["path"], "variables.json");
}

#[test]
fn the_gitlab_template_says_how_to_get_ovplan() {
    let template = yaml("ci/gitlab-ovplan.yml");
    let root = tempfile::tempdir().expect("temp dir");
    let env = [("PATH", "/usr/bin:/bin".to_owned())];
    let run = run_job(&template, "ovplan-validate", root.path(), &env);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("ovplan is not on PATH"),
        "{}",
        run.stderr
    );
    let install = job_script(&template, "ovplan-build-check");
    assert!(
        install.contains("--bin ovplan ovbackup"),
        "the package that has the binary"
    );
}
