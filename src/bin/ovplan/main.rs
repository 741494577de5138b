//! `ovplan`: the policy compiler's command line. `main` parses the arguments (clap) and calls
//! [`run`], which reads the file, calls the pure core in `ovbackup::plan` and prints; a
//! [`Failure`] is the one way a command fails, with its exit code.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use ovbackup::cli::{SelfDescription, instant};
use ovbackup::plan::compile::{self, BuildOptions, Targets};
use ovbackup::plan::model::Policy;
use ovbackup::plan::{self, Checked, source::Source};
use ovbackup::{fsutil, host, report};

// Parsing a large policy allocates per node; mimalloc makes that markedly cheaper than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod catalog;
mod diff;
mod git;

/// Exit codes: 0 valid (warnings allowed), 1 invalid or stale, 2 usage or I/O error.
const INVALID: u8 = 1;
const USAGE_OR_IO: u8 = 2;

/// Why a command did not succeed: its exit code, and the message to print after `error: `
/// (`None` when the diagnostics said it already).
pub(crate) struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// A usage or I/O problem (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE_OR_IO,
            message: Some(message.into()),
        }
    }

    /// Prints the message, if any, and gives the exit code.
    fn report(self) -> ExitCode {
        if let Some(message) = self.message {
            eprintln!("error: {message}");
        }
        ExitCode::from(self.code)
    }
}

/// What a command gives: an exit code (0, or 1 when it found the policy invalid, the bundle
/// stale or a change, which its output says), or a failure.
pub(crate) type Outcome = Result<ExitCode, Failure>;

#[derive(Parser)]
#[command(
    name = "ovplan",
    version,
    about = "Validate, normalize and compile an oVirt backup policy (variables.json)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policy files and report every problem with its line and column.
    Validate {
        /// The policy files (variables.json); several make one report (pre-commit passes them).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// human: a report for people; json: an array (one file); github: workflow commands
        /// (annotations); gitlab: a Code Quality report; sarif: a SARIF 2.1.0 log.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the policy in its modern form: legacy schedules rewritten, defaults filled in.
    Normalize {
        /// The policy file (variables.json).
        file: PathBuf,
    },
    /// Print a VM's next runs, `<RFC 3339 instant> <full|incremental>`, assuming each succeeds.
    Next {
        /// The policy file (variables.json).
        file: PathBuf,
        /// The VM, as named in vms_config.
        #[arg(long)]
        vm: String,
        /// How many runs.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Start after this instant (RFC 3339); default now.
        #[arg(long, value_parser = instant)]
        from: Option<DateTime<Utc>>,
    },
    /// Compile the policy into systemd units, a cron file, runner configs and a compose bundle.
    Build {
        /// The policy file (variables.json).
        file: PathBuf,
        /// The bundle's directory, replaced atomically.
        #[arg(long)]
        out: PathBuf,
        /// Which targets to write (runner configs always).
        #[arg(long, value_enum, default_value_t = Target::All)]
        target: Target,
        /// Do not write: exit 1 and print a diff when the directory is stale.
        #[arg(long)]
        check: bool,
        /// Where ovrun is installed on the backup host.
        #[arg(long, default_value = "/usr/local/bin/ovrun")]
        ovrun: String,
        /// Where the bundle's runner configs are installed on the backup host.
        #[arg(long, default_value = "/etc/ovbackup")]
        config_dir: String,
        /// Where the cron jobs append their output on the backup host.
        #[arg(long, default_value = "/var/log/ovbackup")]
        log_dir: String,
        /// node_exporter's textfile folder on the backup host, where the status timer writes
        /// `ovbackup.prom` for the alert rules.
        #[arg(long, default_value = "/var/lib/prometheus/node-exporter")]
        metrics_dir: String,
        /// Where the status timer also writes the HTML status page on the backup host, for a
        /// web server to serve (its folder must exist); default: no page.
        #[arg(long)]
        status_page: Option<String>,
    },
    /// Show what a policy change does, VM by VM; exit 1 when something changed.
    Diff(diff::DiffArgs),
    #[command(flatten)]
    SelfDescription(SelfDescription),
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Systemd,
    Cron,
    Compose,
    Prometheus,
    Airflow,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
    Github,
    Gitlab,
    Sarif,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE_OR_IO } else { 0 });
        }
    };
    run(cli).unwrap_or_else(Failure::report)
}

/// Runs the command line's command.
///
/// # Errors
/// The command failed; the [`Failure`] says how to exit.
fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Validate { files, format } => validate(&files, format),
        Command::Normalize { file } => normalize(&file),
        Command::Next {
            file,
            vm,
            count,
            from,
        } => next(&file, &vm, count, from),
        Command::Build {
            file,
            out,
            target,
            check,
            ovrun,
            config_dir,
            log_dir,
            metrics_dir,
            status_page,
        } => {
            let mut options = BuildOptions::new(file.display().to_string());
            options.targets = targets(target);
            options.ovrun = ovrun;
            options.config_dir = config_dir;
            options.log_dir = log_dir;
            options.metrics_dir = metrics_dir;
            options.status_page = status_page;
            build(&file, &out, &options, check)
        }
        Command::Diff(args) => diff::run(args),
        Command::SelfDescription(what) => what
            .run(Cli::command())
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| Failure::usage(e.to_string())),
    }
}

fn read(file: &Path) -> Result<Source, Failure> {
    match fs_err::read_to_string(file) {
        Ok(text) => Ok(Source::new(file.display().to_string(), text)),
        Err(e) => Err(Failure::usage(format!(
            "{e}\nhelp: give the path of a readable policy file (variables.json)"
        ))),
    }
}

fn style() -> report::Style {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    report::Style { color, width: 100 }
}

fn validate(files: &[PathBuf], format: Format) -> Outcome {
    if files.len() > 1 && matches!(format, Format::Json) {
        return Err(Failure::usage(
            "--format json reports one file\nhelp: run `ovplan validate` once per file, or use \
             --format sarif, gitlab or github, which name the file of each problem",
        ));
    }
    let checked = files
        .iter()
        .map(|file| read(file).map(|source| (plan::check(&source), source)))
        .collect::<Result<Vec<(Checked, Source)>, Failure>>()?;
    print_validation(&checked, format);
    let invalid = checked.iter().any(|(c, _)| c.has_errors());
    Ok(if invalid {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the checked files in `format`: people's report on stderr; CI's on stdout, with each
/// file's summary line on stderr (the job's log).
fn print_validation(checked: &[(Checked, Source)], format: Format) {
    let reports: Vec<report::FileReport<'_>> = checked
        .iter()
        .map(|(c, s)| report::FileReport {
            file: &s.name,
            diagnostics: &c.diagnostics,
        })
        .collect();
    match format {
        Format::Human => {
            for (c, s) in checked {
                eprint!("{}", human_report(s, c));
            }
        }
        Format::Json => print!("{}", report::json(reports[0].diagnostics)),
        Format::Github => print_for_ci(&report::github::commands(&reports), &reports),
        Format::Gitlab => print_for_ci(&report::gitlab::report(&reports), &reports),
        Format::Sarif => print_for_ci(&report::sarif::log(&reports), &reports),
    }
}

/// A CI report on stdout, each file's summary line on stderr.
fn print_for_ci(text: &str, reports: &[report::FileReport<'_>]) {
    print!("{text}");
    for r in reports {
        eprintln!("{}", report::summary(r.file, r.diagnostics));
    }
}

fn human_report(source: &Source, checked: &Checked) -> String {
    report::human(
        &source.name,
        &checked.display_text,
        &checked.diagnostics,
        style(),
    )
}

fn normalize(file: &Path) -> Outcome {
    let policy = load(file)?;
    let modern = plan::normalize::to_json(&policy);
    println!(
        "{}",
        serde_json::to_string_pretty(&modern).expect("a JSON value serializes")
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads and checks a policy; prints its diagnostics (warnings too) to stderr.
fn load(file: &Path) -> Result<Policy, Failure> {
    load_source(&read(file)?)
}

/// Checks a policy's text; prints its diagnostics (warnings too) to stderr.
fn load_source(source: &Source) -> Result<Policy, Failure> {
    let checked = plan::check(source);
    if !checked.diagnostics.is_empty() {
        eprint!("{}", human_report(source, &checked));
    }
    let code = if checked.has_errors() { INVALID } else { 0 };
    checked.policy.ok_or(Failure {
        code,
        message: None,
    })
}

fn next(file: &Path, vm: &str, count: usize, from: Option<DateTime<Utc>>) -> Outcome {
    let policy = load(file)?;
    let from = from.unwrap_or_else(Utc::now);
    let Some(found) = policy.vms.iter().find(|v| v.name == vm) else {
        let names: Vec<&str> = policy.vms.iter().map(|v| v.name.as_str()).collect();
        let hint = plan::names::did_you_mean(vm, names.iter().copied()).map_or_else(
            || format!("the VMs are: {}", names.join(", ")),
            |near| format!("did you mean `{near}`?"),
        );
        return Err(Failure::usage(format!(
            "{} has no VM `{vm}`\nhelp: {hint}",
            file.display()
        )));
    };
    if !found.enabled {
        eprintln!("VM `{vm}` is disabled (\"enabled\": false): it has no runs");
    }
    for (at, kind) in plan::diff::next(found, from, host::zone(), count) {
        println!("{at} {kind}");
    }
    Ok(ExitCode::SUCCESS)
}

fn targets(target: Target) -> Targets {
    let only = |systemd, cron, compose| Targets {
        systemd,
        cron,
        compose,
        prometheus: false,
        airflow: false,
    };
    match target {
        Target::Systemd => only(true, false, false),
        Target::Cron => only(false, true, false),
        Target::Compose => only(false, false, true),
        Target::Prometheus => Targets {
            prometheus: true,
            ..only(false, false, false)
        },
        Target::Airflow => Targets {
            airflow: true,
            ..only(false, false, false)
        },
        Target::All => Targets::ALL,
    }
}

fn build(file: &Path, out: &Path, options: &BuildOptions, check: bool) -> Outcome {
    let policy = load(file)?;
    let bundle = match compile::compile(&policy, options) {
        Ok(bundle) => bundle,
        Err(e @ compile::CompileError::Option { .. }) => {
            return Err(Failure::usage(format!(
                "{e}\nhelp: give an absolute path in normal form, without control characters"
            )));
        }
        Err(e) => {
            return Err(Failure {
                code: INVALID,
                message: Some(e.to_string()),
            });
        }
    };
    if check {
        return check_bundle(out, &bundle);
    }
    fsutil::replace_tree(out, &bundle).map_err(|e| {
        Failure::usage(format!(
            "writing {}: {e}\nhelp: check that its parent folder exists and is writable",
            out.display()
        ))
    })?;
    eprintln!("{}: wrote {} files", out.display(), bundle.len());
    Ok(ExitCode::SUCCESS)
}

fn check_bundle(out: &Path, bundle: &compile::Bundle) -> Outcome {
    let existing = fsutil::read_tree(out)
        .map_err(|e| Failure::usage(format!("reading {}: {e}", out.display())))?
        .unwrap_or_default();
    if let Some(diff) = plan::stale::stale_diff(bundle, &existing) {
        print!("{diff}");
        eprintln!(
            "{} is stale: run `ovplan build` again and commit the result",
            out.display()
        );
        Ok(ExitCode::from(INVALID))
    } else {
        eprintln!("{}: up to date", out.display());
        Ok(ExitCode::SUCCESS)
    }
}
