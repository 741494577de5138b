//! `ovplan`: the policy compiler's command line. Parses arguments, reads the file, calls the
//! pure core in `ovbackup::plan`, prints, and maps the outcome to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ovbackup::plan::{self, Checked, source::Source};
use ovbackup::report;

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
    let source = match read(file) {
        Ok(source) => source,
        Err(code) => return code,
    };
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
    let Some(policy) = &checked.policy else {
        return exit_for(&checked);
    };
    let modern = plan::normalize::to_json(policy);
    println!(
        "{}",
        serde_json::to_string_pretty(&modern).expect("a JSON value serializes")
    );
    ExitCode::SUCCESS
}
