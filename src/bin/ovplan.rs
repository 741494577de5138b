//! `ovplan`: the policy compiler's command line. Parses arguments, reads the file, calls the
//! pure core in `ovbackup::plan`, prints, and maps the outcome to an exit code.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a binary speaks to its user; the library logs through tracing"
)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use ovbackup::plan::compile::{self, BuildOptions, Targets};
use ovbackup::plan::model::Policy;
use ovbackup::plan::{self, Checked, source::Source};
use ovbackup::{fsutil, host, report};

// Parsing a large policy allocates per node; mimalloc makes that markedly cheaper than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 valid (warnings allowed), 1 invalid or stale, 2 usage or I/O error.
const INVALID: u8 = 1;
const USAGE_OR_IO: u8 = 2;

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
    /// Check a policy file and report every problem with its line and column.
    Validate {
        /// The policy file (variables.json).
        file: PathBuf,
        /// human: a report for people; json: an array for CI annotations.
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
        #[arg(long)]
        from: Option<String>,
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
    },
    /// Show what a policy change does, VM by VM; exit 1 when something changed.
    Diff {
        /// The policy before.
        old: PathBuf,
        /// The policy after.
        new: PathBuf,
        /// Compare next runs after this instant (RFC 3339); default now.
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Systemd,
    Cron,
    Compose,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE_OR_IO } else { 0 });
        }
    };
    match cli.command {
        Command::Validate { file, format } => validate(&file, format),
        Command::Normalize { file } => normalize(&file),
        Command::Next {
            file,
            vm,
            count,
            from,
        } => next(&file, &vm, count, from.as_deref()),
        Command::Build {
            file,
            out,
            target,
            check,
            ovrun,
            config_dir,
            log_dir,
        } => {
            let mut options = BuildOptions::new(file.display().to_string());
            options.targets = targets(target);
            options.ovrun = ovrun;
            options.config_dir = config_dir;
            options.log_dir = log_dir;
            build(&file, &out, &options, check)
        }
        Command::Diff { old, new, from } => diff(&old, &new, from.as_deref()),
    }
}

fn read(file: &PathBuf) -> Result<Source, ExitCode> {
    match fs_err::read_to_string(file) {
        Ok(text) => Ok(Source::new(file.display().to_string(), text)),
        Err(e) => {
            eprintln!("error: {e}\nhelp: give the path of a readable policy file (variables.json)");
            Err(ExitCode::from(USAGE_OR_IO))
        }
    }
}

fn style() -> report::Style {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    report::Style { color, width: 100 }
}

fn exit_for(checked: &Checked) -> ExitCode {
    if checked.has_errors() {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

fn validate(file: &PathBuf, format: Format) -> ExitCode {
    let source = match read(file) {
        Ok(source) => source,
        Err(code) => return code,
    };
    let checked = plan::check(&source);
    match format {
        Format::Human => eprint!(
            "{}",
            report::human(
                &source.name,
                &checked.display_text,
                &checked.diagnostics,
                style()
            )
        ),
        Format::Json => print!("{}", report::json(&checked.diagnostics)),
    }
    exit_for(&checked)
}

fn normalize(file: &PathBuf) -> ExitCode {
    let policy = match load(file) {
        Ok(policy) => policy,
        Err(code) => return code,
    };
    let modern = plan::normalize::to_json(&policy);
    println!(
        "{}",
        serde_json::to_string_pretty(&modern).expect("a JSON value serializes")
    );
    ExitCode::SUCCESS
}

/// Reads and checks a policy; prints its diagnostics (warnings too) to stderr.
fn load(file: &PathBuf) -> Result<Policy, ExitCode> {
    let source = read(file)?;
    let checked = plan::check(&source);
    if !checked.diagnostics.is_empty() {
        eprint!(
            "{}",
            report::human(
                &source.name,
                &checked.display_text,
                &checked.diagnostics,
                style()
            )
        );
    }
    let code = exit_for(&checked);
    checked.policy.ok_or(code)
}

fn instant(from: Option<&str>) -> Result<DateTime<Utc>, ExitCode> {
    match from {
        None => Ok(Utc::now()),
        Some(text) => DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            eprintln!("error: --from `{text}` is not an RFC 3339 instant: {e}\nhelp: write e.g. 2026-01-31T02:00:00+01:00");
            ExitCode::from(USAGE_OR_IO)
        }),
    }
}

fn next(file: &PathBuf, vm: &str, count: usize, from: Option<&str>) -> ExitCode {
    let (policy, from) = match (load(file), instant(from)) {
        (Ok(policy), Ok(from)) => (policy, from),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let Some(found) = policy.vms.iter().find(|v| v.name == vm) else {
        let names: Vec<&str> = policy.vms.iter().map(|v| v.name.as_str()).collect();
        let hint = plan::names::did_you_mean(vm, names.iter().copied()).map_or_else(
            || format!("the VMs are: {}", names.join(", ")),
            |near| format!("did you mean `{near}`?"),
        );
        eprintln!("error: {} has no VM `{vm}`\nhelp: {hint}", file.display());
        return ExitCode::from(USAGE_OR_IO);
    };
    if !found.enabled {
        eprintln!("VM `{vm}` is disabled (\"enabled\": false): it has no runs");
    }
    for (at, kind) in plan::diff::next(found, from, host::zone(), count) {
        println!("{at} {kind}");
    }
    ExitCode::SUCCESS
}

fn targets(target: Target) -> Targets {
    let only = |systemd, cron, compose| Targets {
        systemd,
        cron,
        compose,
    };
    match target {
        Target::Systemd => only(true, false, false),
        Target::Cron => only(false, true, false),
        Target::Compose => only(false, false, true),
        Target::All => Targets::ALL,
    }
}

fn build(file: &PathBuf, out: &std::path::Path, options: &BuildOptions, check: bool) -> ExitCode {
    let policy = match load(file) {
        Ok(policy) => policy,
        Err(code) => return code,
    };
    let bundle = match compile::compile(&policy, options) {
        Ok(bundle) => bundle,
        Err(e @ compile::CompileError::Option { .. }) => {
            eprintln!(
                "error: {e}\nhelp: give an absolute path in normal form, without control characters"
            );
            return ExitCode::from(USAGE_OR_IO);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    if check {
        return check_bundle(out, &bundle);
    }
    match fsutil::replace_tree(out, &bundle) {
        Ok(()) => {
            eprintln!("{}: wrote {} files", out.display(), bundle.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: writing {}: {e}\nhelp: check that its parent folder exists and is writable",
                out.display()
            );
            ExitCode::from(USAGE_OR_IO)
        }
    }
}

fn check_bundle(out: &std::path::Path, bundle: &compile::Bundle) -> ExitCode {
    let existing = match fsutil::read_tree(out) {
        Ok(tree) => tree.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: reading {}: {e}", out.display());
            return ExitCode::from(USAGE_OR_IO);
        }
    };
    let mut stale = false;
    let mut paths: Vec<&String> = bundle.keys().chain(existing.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let want = bundle.get(path).map(String::as_str);
        let have = existing
            .get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        if want == have.as_deref() {
            continue;
        }
        stale = true;
        let diff = similar::TextDiff::from_lines(have.as_deref().unwrap_or(""), want.unwrap_or(""));
        let (a, b) = (format!("a/{path}"), format!("b/{path}"));
        print!("{}", diff.unified_diff().context_radius(3).header(&a, &b));
    }
    if stale {
        eprintln!(
            "{} is stale: run `ovplan build` again and commit the result",
            out.display()
        );
        ExitCode::from(INVALID)
    } else {
        eprintln!("{}: up to date", out.display());
        ExitCode::SUCCESS
    }
}

fn diff(old: &PathBuf, new: &PathBuf, from: Option<&str>) -> ExitCode {
    let (before, after, from) = match (load(old), load(new), instant(from)) {
        (Ok(a), Ok(b), Ok(from)) => (a, b, from),
        (Err(code), _, _) | (_, Err(code), _) | (_, _, Err(code)) => return code,
    };
    match plan::diff::diff(&before, &after, from, host::zone()) {
        None => {
            eprintln!("no change");
            ExitCode::SUCCESS
        }
        Some(report) => {
            print!("{report}");
            ExitCode::from(INVALID)
        }
    }
}
