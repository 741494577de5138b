//! Issue 11, item 5: every command line of the bundle compiled from `examples/variables.json`
//! runs, through the real `ovrun`. Each systemd `ExecStart=` (read back as systemd reads it)
//! and each cron command (after cron's `%` handling, by the real `/bin/sh`) runs against
//! copies of the runner configs whose backup directories are empty temp folders and whose
//! engines are a closed local port. Maintenance (`prune`, `verify --config-dir`) must exit 0;
//! a backup must fail on the engine only (not exit 2, naming the engine's address); a restore
//! must fail on the engine or on the empty catalog (exit 1; it runs only after a successful backup:
//! `OnSuccess=`, cron `&&`), never on its usage. The compose file runs no command of its own:
//! its scheduler runs the cron file, which it must bind.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::artifact_syntax::{
    UnitLine, cron_fields, cron_unescape, exec_argv, is_schedule_line, unit_lines,
};
use crate::support::{json_names, ovplan};

/// The temp layout the bundle is compiled for and run in.
struct Layout {
    root: PathBuf,
    out: PathBuf,
    config_dir: PathBuf,
    bin: PathBuf,
    logs: PathBuf,
    metrics: PathBuf,
    www: PathBuf,
    engine: String,
}

impl Layout {
    fn new(root: &Path) -> Self {
        let layout = Self {
            root: root.to_owned(),
            out: root.join("out"),
            config_dir: root.join("etc"),
            bin: root.join("bin"),
            logs: root.join("logs"),
            metrics: root.join("node-exporter"),
            www: root.join("www"),
            engine: format!("127.0.0.1:{}", closed_port()),
        };
        let dirs = [
            &layout.config_dir.join("runner"),
            &layout.bin,
            &layout.logs,
            &layout.metrics,
            &layout.www,
        ];
        for dir in dirs {
            fs_err::create_dir_all(dir).expect("folder");
        }
        layout
    }

    fn build(&self) {
        let run = ovplan(&[
            "build",
            "../../examples/variables.json",
            "--out",
            &text(&self.out),
            "--ovrun",
            env!("CARGO_BIN_EXE_ovrun"),
            "--config-dir",
            &text(&self.config_dir),
            "--log-dir",
            &text(&self.logs),
            "--metrics-dir",
            &text(&self.metrics),
            "--status-page",
            &text(&self.www.join("index.html")),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    /// The runner configs, installed with every path in the temp layout: an empty backup
    /// directory per VM, a password file, a CA, and the closed port as both engines.
    fn install_configs(&self) -> Vec<String> {
        let password = self.root.join("password");
        fs_err::write(&password, "secret\n").expect("password");
        let ca = self.root.join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        fs_err::write(&ca, cert.pem()).expect("CA");
        let names = json_names(&self.out.join("runner"));
        for name in &names {
            let text = fs_err::read_to_string(self.out.join(format!("runner/{name}.json")))
                .expect("config");
            let mut config: Value = serde_json::from_str(&text).expect("JSON");
            let backup = self.root.join("backup").join(name);
            fs_err::create_dir_all(&backup).expect("backup folder");
            config["backup_directory"] = text_value(&backup);
            config["checkpoints_file"] = text_value(&backup.join("checkpoints.json"));
            for side in ["source", "target"] {
                if config[side].is_object() {
                    config[side]["url"] =
                        format!("https://{}/ovirt-engine/api", self.engine).into();
                    config[side]["password_file"] = text_value(&password);
                    config[side]["ca_file"] = text_value(&ca);
                }
            }
            if config["restore"].is_object() {
                config["restore"]["restore_log_directory"] =
                    text_value(&backup.join("restore_logs"));
            }
            let installed = self.config_dir.join(format!("runner/{name}.json"));
            fs_err::write(
                installed,
                serde_json::to_string_pretty(&config).expect("JSON"),
            )
            .expect("install");
        }
        // cron's `flock -n /run/lock/...`: a stand-in that runs the command without touching
        // the host's lock folder.
        let flock = self.bin.join("flock");
        fs_err::write(&flock, "#!/bin/sh\nshift 2\nexec \"$@\"\n").expect("flock");
        fs_err::set_permissions(&flock, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        names
    }
}

fn text(path: &Path) -> String {
    path.to_str().expect("utf-8 temp path").to_owned()
}

fn text_value(path: &Path) -> Value {
    Value::String(text(path))
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// What one command is, by its `ovrun` verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Maintenance,
    Status,
    Backup,
    Restore,
}

fn kind(argv: &[String]) -> Kind {
    match argv.get(1).map(String::as_str) {
        Some("prune" | "verify") => Kind::Maintenance,
        Some("status") => Kind::Status,
        Some("backup") => Kind::Backup,
        Some("restore") => Kind::Restore,
        other => panic!("a command of no known kind: {other:?} in {argv:?}"),
    }
}

/// Whether a finished command failed as the brief allows for its kind.
fn judge(what: &str, kind: Kind, code: i32, output: &str, engine: &str) -> Result<(), String> {
    let usage = output.contains("Usage:") || output.contains("unexpected argument");
    let on_engine = code != 0 && code != 2 && output.contains(engine);
    // A backup unit whose calendar fires on more days than its schedule (biweekly, n-th
    // weekdays) runs the due-guard: on an off day (which depends on today's date) it skips with
    // 0 and says why, before any engine is reached.
    let skipped = code == 0 && output.contains("not due, skipped");
    let fine = match kind {
        Kind::Maintenance | Kind::Status => code == 0,
        Kind::Backup => on_engine || skipped,
        Kind::Restore => on_engine || (code == 1 && output.contains("no backup point to restore")),
    };
    if fine && !usage {
        Ok(())
    } else {
        Err(format!("{what}: {kind:?} exited {code}:\n{output}"))
    }
}

/// A unit's name, one `ExecStart=` argv and the unit's `Environment=`.
type UnitCommand = (String, Vec<String>, Vec<(String, String)>);

/// Every `ExecStart=` of every service, with the unit's `Environment=`.
fn systemd_commands(out: &Path) -> Vec<UnitCommand> {
    let mut commands = Vec::new();
    for entry in fs_err::read_dir(out.join("systemd")).expect("systemd folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        if !name.ends_with(".service") {
            continue;
        }
        let lines = unit_lines(&fs_err::read_to_string(&path).expect("unit")).expect("unit syntax");
        let mut environment = Vec::new();
        let mut execs = Vec::new();
        for line in lines {
            if let UnitLine::Assignment(key, value) = line {
                match key.as_str() {
                    "Environment" => {
                        let (k, v) = value.split_once('=').expect("K=V");
                        environment.push((k.to_owned(), v.to_owned()));
                    }
                    "ExecStart" => execs.push(exec_argv(&value).expect("ExecStart syntax")),
                    _ => {}
                }
            }
        }
        commands.extend(
            execs
                .into_iter()
                .map(|argv| (name.clone(), argv, environment.clone())),
        );
    }
    commands.sort();
    commands
}

#[test]
fn every_command_of_the_example_bundle_runs_through_the_real_ovrun() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = Layout::new(dir.path());
    layout.build();
    let vms = layout.install_configs();
    let mut failures = Vec::new();
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();

    let systemd = systemd_commands(&layout.out);
    for (unit, argv, environment) in &systemd {
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .current_dir(&layout.root)
            .output()
            .expect("ovrun runs");
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        if let Err(e) = judge(unit, kind(argv), code, &output, &layout.engine) {
            failures.push(e);
        }
        *ran.entry("systemd").or_default() += 1;
    }

    let cron = fs_err::read_to_string(layout.out.join("cron/ovbackup")).expect("cron file");
    for line in cron.lines().filter(|l| is_schedule_line(l)) {
        let (_, _, command) = cron_fields(line).expect("cron line");
        let command = cron_unescape(command).expect("cron % handling");
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .env("PATH", format!("{}:/usr/bin:/bin", text(&layout.bin)))
            .current_dir(&layout.root)
            .output()
            .expect("sh runs");
        // A VM's command appends its output to the VM's log; its restore (after `&&`) runs
        // only on a successful backup, which needs an engine, so the line is judged as a
        // backup. The maintenance line's output is cron's mail: here, the captured output.
        let vm = vms
            .iter()
            .find(|vm| command.contains(&format!("/runner/{vm}.json'")));
        let mut output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(vm) = vm {
            let log =
                fs_err::read_to_string(layout.logs.join(format!("{vm}.log"))).unwrap_or_default();
            if log.contains('\u{1b}') {
                failures.push(format!("{vm}.log holds terminal escape codes:\n{log}"));
            }
            output.push_str(&log);
        }
        let kind = if vm.is_some() {
            Kind::Backup
        } else if command.contains(" status ") {
            Kind::Status
        } else {
            Kind::Maintenance
        };
        if let Err(e) = judge(
            line,
            kind,
            out.status.code().unwrap_or(-1),
            &output,
            &layout.engine,
        ) {
            failures.push(e);
        }
        *ran.entry("cron").or_default() += 1;
    }

    let compose: Value = serde_norway::from_str(
        &fs_err::read_to_string(layout.out.join("compose/docker-compose.yaml")).expect("compose"),
    )
    .expect("YAML");
    let scheduler = &compose["services"]["scheduler"];
    assert!(scheduler.get("command").is_none() && scheduler.get("entrypoint").is_none());
    assert!(
        scheduler["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["source"] == "../cron/ovbackup" && v["target"] == "/etc/cron.d/ovbackup"),
        "the compose scheduler runs the cron file"
    );

    // 13 backup services, their restore services, the two maintenance commands and the status
    // command; one cron line or more per VM, the maintenance line and the status line.
    assert!(
        ran["systemd"] >= vms.len() + 3 && ran["cron"] > vms.len() + 1,
        "{ran:?}"
    );
    // The status commands wrote the textfile the alert rules read, a sample for every VM, and
    // the status page, a row for every VM.
    let metrics = fs_err::read_to_string(layout.metrics.join("ovbackup.prom")).expect("textfile");
    let page = fs_err::read_to_string(layout.www.join("index.html")).expect("status page");
    for vm in &vms {
        assert!(
            page.contains(&format!(">{vm}<")),
            "{vm} missing from the page"
        );
        assert!(
            metrics.contains(&format!("ovbackup_last_run_failed{{vm=\"{vm}\"")),
            "{vm} missing from\n{metrics}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {ran:?} commands failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
