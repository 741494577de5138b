//! Issue 11, item 1: arbitrary printable strings (unicode, quotes, backslashes, `%`, `$`,
//! spaces, `;`, `&&`, backticks, and now and then a control character or a relative path) in
//! every policy field that reaches an artifact are either refused with a code of their own or
//! compile to a bundle that means exactly the policy: units that `systemd-analyze verify`
//! accepts and whose parsed-back argv, credentials and paths are the input (`bundle_meaning`),
//! and cron commands that, run by the real `/bin/sh` after cron's `%` handling, start exactly
//! the argv meant.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ovbackup::plan::compile::{BuildOptions, Bundle, compile};
use ovbackup::plan::model::{Policy, VmPolicy};
use ovbackup::plan::{self, source::Source};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::artifact_syntax::{cron_fields, cron_unescape, is_schedule_line};
use crate::support::bundle_meaning::{check_meaning, status_argv};

/// The codes a hostile string may be refused with.
const REFUSALS: [&str; 6] = [
    "ovplan::control-character",
    "ovplan::relative-path",
    "ovplan::unusable-path",
    "ovplan::unsafe-vm-name",
    "ovplan::duplicate-vm",
    "ovplan::invalid-format",
];

/// How many policies; each gives about five units, verified in batches.
const CASES: u32 = 48;

/// Printable pieces that systemd, cron, sh and YAML treat specially, and any other printable
/// characters (`\PC`: no control characters).
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{1,4}",
        4 => prop::sample::select(vec![
            "%", "%%", "%n", "$", "$$", "${HOME}", "$x", "\\", "\\%", "\\\\%", "\"", "'", "'\\''",
            " ", "  ", ";", "&&", "`id`", "$(id)", "#", ":", "..", ".", "=", "*", "~", "é",
            "日本", "\u{2028}", "\u{feff}", "ExecStartPre=/bin/touch /tmp/x", "-", "@", "!", "{", "}",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Printable text without `/`.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 1..5).prop_map(|p| p.concat().replace('/', "_"))
}

/// An absolute path in normal form, of hostile components.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(text(), 1..4).prop_map(|parts| {
        let parts: Vec<String> = parts
            .into_iter()
            .map(|p| {
                if p == "." || p == ".." {
                    format!("{p}x")
                } else {
                    p
                }
            })
            .collect();
        let mut path = format!("/{}", parts.join("/"));
        if path.ends_with([' ', '\\']) {
            path.push('x');
        }
        path
    })
}

/// What one field may be changed to, to be refused: a control character inside it, a relative
/// path, a `..` component.
fn spoiler() -> impl Strategy<Value = Option<(usize, String)>> {
    let change = prop::sample::select(vec![
        "\n", "\t", "\r", "\u{85}", "\u{7f}", "rel", "/../", "//",
    ]);
    prop_oneof![2 => Just(None), 1 => (0..FIELDS, change).prop_map(|(i, c)| Some((i, c.to_owned())))]
}

const FIELDS: usize = 15;

#[derive(Debug, Clone)]
struct Fields {
    vm: String,
    other_vm: String,
    backup_directory: String,
    checkpoints_file: String,
    source_password_file: String,
    target_password_file: String,
    source_ca: String,
    target_ca: String,
    source_url: String,
    target_url: String,
    source_user: String,
    target_user: String,
    cluster: String,
    domain: String,
    suffix: String,
    zone: bool,
}

impl Fields {
    fn field(&mut self, i: usize) -> &mut String {
        [
            &mut self.vm,
            &mut self.other_vm,
            &mut self.backup_directory,
            &mut self.checkpoints_file,
            &mut self.source_password_file,
            &mut self.target_password_file,
            &mut self.source_ca,
            &mut self.target_ca,
            &mut self.source_url,
            &mut self.target_url,
            &mut self.source_user,
            &mut self.target_user,
            &mut self.cluster,
            &mut self.domain,
            &mut self.suffix,
        ]
        .into_iter()
        .nth(i)
        .expect("FIELDS fields")
    }

    fn spoil(mut self, spoiler: Option<(usize, String)>) -> Self {
        if let Some((i, change)) = spoiler {
            let field = self.field(i);
            *field = match change.as_str() {
                "rel" => field.trim_start_matches('/').to_owned(),
                _ => format!("{field}{change}x"),
            };
        }
        self
    }
}

fn fields() -> impl Strategy<Value = Fields> {
    let paths = (path(), path(), path(), path(), path(), path());
    let strings = (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
    );
    let url = |t: String| t.replace(char::is_whitespace, "");
    (paths, strings, any::<bool>(), spoiler()).prop_map(move |(p, s, zone, spoiler)| {
        Fields {
            backup_directory: p.0,
            checkpoints_file: p.1,
            source_password_file: p.2,
            target_password_file: p.3,
            source_ca: p.4,
            target_ca: p.5,
            vm: s.0,
            other_vm: s.1,
            source_url: format!("https://engine.example/{}", url(s.2)),
            target_url: format!("https://dr.example:8443/{}", url(s.3)),
            source_user: s.4,
            target_user: s.5,
            cluster: s.6,
            domain: s.7,
            suffix: s.8,
            zone,
        }
        .spoil(spoiler)
    })
}

fn policy_text(f: &Fields) -> String {
    let mut schedule = json!({"type": "simple", "pattern": "daily", "time": "02:00"});
    if f.zone {
        schedule["timezone"] = json!("Europe/Lisbon");
    }
    let policy = json!({
        "source_ovirt_url": f.source_url,
        "source_ovirt_user": f.source_user,
        "source_ovirt_password_file": f.source_password_file,
        "source_ovirt_cert_path": f.source_ca,
        "target_ovirt_url": f.target_url,
        "target_ovirt_user": f.target_user,
        "target_ovirt_password_file": f.target_password_file,
        "target_ovirt_cert_path": f.target_ca,
        "backup_directory": f.backup_directory,
        "checkpoints_file": f.checkpoints_file,
        "restore_settings": {
            "target_cluster_name": f.cluster,
            "target_storage_domain_name": f.domain,
            "vm_name_suffix": f.suffix,
        },
        "vms_config": {
            f.vm.clone(): {"schedule": schedule, "retention": {"keep_daily": 7}, "auto_restore": true},
            f.other_vm.clone(): "1111100",
        }
    });
    serde_json::to_string_pretty(&policy).expect("JSON")
}

/// One generated policy: refused with the codes above, or its bundle (kept for the batched
/// `systemd-analyze verify` and the shell run).
fn one_case(f: &Fields, options: &BuildOptions) -> Result<Option<(Policy, Bundle)>, TestCaseError> {
    let text = policy_text(f);
    let checked = plan::check(&Source::new("p.json", text.clone()));
    if checked.has_errors() {
        for d in &checked.diagnostics {
            let code = d.diagnostic.code.as_str();
            prop_assert!(
                REFUSALS.contains(&code)
                    || d.diagnostic.severity() != plan::diagnostic::Severity::Error,
                "refused with {code}: {}\n{text}",
                d.diagnostic.message
            );
        }
        return Ok(None);
    }
    let policy = checked.policy.expect("valid");
    let bundle = compile(&policy, options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_meaning(&policy, options, &bundle)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    Ok(Some((policy, bundle)))
}

#[test]
fn hostile_strings_are_refused_or_reach_every_artifact_exactly() {
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("OVPLAN_KEEP_TEMP").is_some())
        .tempdir()
        .expect("temp dir");
    let fake = FakeTools::new(dir.path());
    let mut options = BuildOptions::new("p.json");
    options.ovrun = fake.ovrun.clone();
    options.log_dir = fake.logs.clone();
    // A page path with a space and a quote: it reaches the unit, the cron line and the compose
    // file exactly, or the checks fail.
    options.status_page = Some(format!("{}/www/it's status.html", fake.logs));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let compiled = std::cell::RefCell::new(Vec::new());
    let result = runner.run(&fields(), |f| {
        if let Some(case) = one_case(&f, &options)? {
            compiled.borrow_mut().push(case);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    let compiled = compiled.into_inner();
    assert!(
        compiled.len() >= CASES as usize / 4,
        "too few valid cases: {}",
        compiled.len()
    );
    verify_units(dir.path(), &compiled);
    for (policy, bundle) in &compiled {
        fake.run_cron_lines(policy, &options, &bundle["cron/ovbackup"]);
    }
}

/// `systemd-analyze verify` over every case's units, in a few calls (each takes a while);
/// units of one name go to separate calls.
fn verify_units(root: &Path, compiled: &[(Policy, Bundle)]) {
    // Each batch: the unit names in it, and the `FILE:NAME` arguments (a unit name may hold
    // `:`, which systemd-analyze would take for that separator, so files get plain names).
    let mut batches: Vec<(BTreeSet<String>, Vec<String>)> = Vec::new();
    for (i, (_, bundle)) in compiled.iter().enumerate() {
        // Every case has the maintenance and status units: each service gets a name of its own,
        // and the timers, the same in every bundle, are left to `build.rs`'s verify of the
        // example.
        let units: Vec<(String, &String)> = bundle
            .iter()
            .filter_map(|(path, content)| {
                let name = path.strip_prefix("systemd/")?;
                let shared = ["ovrun-maintenance", "ovrun-status"]
                    .into_iter()
                    .find(|unit| name.starts_with(&format!("{unit}.")));
                match shared {
                    Some(_) if name.ends_with(".timer") => None,
                    Some(unit) => Some((name.replace(unit, &format!("{unit}-{i}")), content)),
                    None => Some((name.to_owned(), content)),
                }
            })
            .collect();
        let names: BTreeSet<String> = units.iter().map(|(n, _)| n.clone()).collect();
        let at = match batches
            .iter()
            .position(|(seen, _)| seen.is_disjoint(&names))
        {
            Some(at) => at,
            None => {
                batches.push((BTreeSet::new(), Vec::new()));
                batches.len() - 1
            }
        };
        for (j, (name, content)) in units.into_iter().enumerate() {
            let extension = name.rsplit('.').next().expect("unit suffix");
            let file = root.join(format!("case{i}-{j}.{extension}"));
            fs_err::write(&file, content).expect("unit");
            batches[at].1.push(format!("{}:{name}", file.display()));
        }
        batches[at].0.extend(names);
    }
    for (_, arguments) in batches {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(&arguments)
            .output()
            .expect("systemd-analyze runs (scripts/setup.sh installs systemd)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify of {} units: {stderr}",
            arguments.len()
        );
    }
}

/// `flock` and `ovrun` stand-ins that record their argv (NUL-separated, one record per
/// line of a file) so that the shell's reading of a cron command can be compared.
struct FakeTools {
    bin: String,
    ovrun: String,
    logs: String,
    record: std::path::PathBuf,
}

impl FakeTools {
    fn new(root: &Path) -> Self {
        let bin = root.join("bin");
        let logs = root.join("logs");
        fs_err::create_dir_all(&bin).expect("bin");
        fs_err::create_dir_all(&logs).expect("logs");
        let record = root.join("argv");
        let printer = "#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\" >> \"$ARGV_RECORD\"\nprintf '\\n' >> \"$ARGV_RECORD\"\n";
        let flock = format!("{printer}shift 2\nexec \"$@\"\n");
        for (name, script) in [("flock", flock.as_str()), ("ovrun", printer)] {
            let path = bin.join(name);
            fs_err::write(&path, script).expect("script");
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            fs_err::set_permissions(&path, mode).expect("chmod");
        }
        Self {
            ovrun: bin.join("ovrun").to_str().expect("utf-8").to_owned(),
            bin: bin.to_str().expect("utf-8").to_owned(),
            logs: logs.to_str().expect("utf-8").to_owned(),
            record,
        }
    }

    /// Runs each schedule line's command as cron would (`%` handling, then `/bin/sh -c`) and
    /// compares the recorded argv with the policy's.
    fn run_cron_lines(&self, policy: &Policy, options: &BuildOptions, cron: &str) {
        let enabled: Vec<&VmPolicy> = policy.vms.iter().filter(|vm| vm.enabled).collect();
        let mut wanted: Vec<Vec<Vec<String>>> =
            enabled.iter().map(|vm| self.argv(vm, options)).collect();
        let dir = format!("{}/runner", options.config_dir);
        wanted.push(vec![
            vec![
                self.ovrun.clone(),
                "prune".into(),
                "--config-dir".into(),
                dir.clone(),
            ],
            vec![
                self.ovrun.clone(),
                "verify".into(),
                "--config-dir".into(),
                dir,
            ],
        ]);
        wanted.push(vec![status_argv(options)]);
        let mut seen = Vec::new();
        for line in cron.lines().filter(|l| is_schedule_line(l)) {
            let (_, _, command) = cron_fields(line).expect("cron line");
            let command = cron_unescape(command).expect("cron command");
            let _ = fs_err::remove_file(&self.record);
            let status = Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .env("PATH", format!("{}:/usr/bin:/bin", self.bin))
                .env("ARGV_RECORD", &self.record)
                .status()
                .expect("sh runs");
            assert!(status.success(), "{command}");
            let recorded = fs_err::read(&self.record).expect("argv record");
            let argvs: Vec<Vec<String>> = String::from_utf8(recorded)
                .expect("utf-8")
                .split_terminator('\n')
                .map(|r| r.split_terminator('\0').map(str::to_owned).collect())
                .collect();
            assert!(
                wanted.contains(&argvs),
                "{line}\nran {argvs:?}\nmeant one of {wanted:?}"
            );
            seen.push(argvs);
        }
        for want in &wanted {
            assert!(seen.contains(want), "no cron line runs {want:?}");
        }
    }

    fn argv(&self, vm: &VmPolicy, options: &BuildOptions) -> Vec<Vec<String>> {
        let lock = format!(
            "/run/lock/ovrun-{}.lock",
            ovbackup::plan::compile::systemd_escape(&vm.name)
        );
        let config = format!("{}/runner/{}.json", options.config_dir, vm.name);
        let flock = format!("{}/flock", self.bin);
        let mut argvs = Vec::new();
        for verb in std::iter::once("backup").chain(vm.auto_restore.then_some("restore")) {
            argvs.push(vec![
                flock.clone(),
                "-n".into(),
                lock.clone(),
                self.ovrun.clone(),
                verb.into(),
                "--config".into(),
                config.clone(),
            ]);
            argvs.push(vec![
                self.ovrun.clone(),
                verb.into(),
                "--config".into(),
                config.clone(),
            ]);
        }
        argvs
    }
}

#[test]
fn the_example_bundle_means_its_policy() {
    let text = fs_err::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/variables.json"),
    )
    .expect("example");
    let policy = plan::check(&Source::new("variables.json", text))
        .policy
        .expect("valid");
    let options = BuildOptions::new("variables.json");
    let bundle = compile(&policy, &options).expect("compiles");
    check_meaning(&policy, &options, &bundle).expect("means the policy");
    let _: Value = serde_norway::from_str(&bundle["compose/docker-compose.yaml"]).expect("YAML");
}
