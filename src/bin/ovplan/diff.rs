//! `ovplan diff`: reads the two policies (two files, or a file and itself at a git revision),
//! the catalog's manifests when one is given, and prints the pure core's review
//! (`ovbackup::plan::diff`) as text, Markdown or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use ovbackup::cli::instant;
use ovbackup::host;
use ovbackup::plan::diff::{self, Review, Version};
use ovbackup::plan::diff_markdown::markdown;
use ovbackup::plan::model::Policy;
use ovbackup::plan::source::Source;

use crate::{Failure, INVALID, Outcome, catalog, git, load_source, read};

/// `ovplan diff`'s arguments.
#[derive(Args)]
pub(crate) struct DiffArgs {
    /// The policy before (with --git: the policy file, default variables.json).
    old: Option<PathBuf>,
    /// The policy after.
    new: Option<PathBuf>,
    /// Compare the file with itself at this git revision (`git show REV:FILE`), e.g. origin/main.
    #[arg(long, value_name = "REV")]
    git: Option<String>,
    /// Compare next runs (and apply retention) at this instant (RFC 3339); default now.
    #[arg(long, value_parser = instant)]
    from: Option<DateTime<Utc>>,
    /// text: for a terminal; markdown: a review comment or CI job summary; json: the same as data.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
    /// A backup directory (one folder per VM): also show which of its points the new retention
    /// would delete that the old one keeps.
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Json,
}

/// Runs `ovplan diff`: exit 0 when nothing changed, 1 when something did.
///
/// # Errors
/// A file or revision cannot be read, a policy is invalid, or the arguments do not fit.
pub(crate) fn run(args: DiffArgs) -> Outcome {
    let (old, new) = sources(&args)?;
    // Both are checked before either fails, so that both policies' diagnostics are shown.
    let (before, after) = (load_source(&old), load_source(&new));
    let (before, after) = (before?, after?);
    let catalog = match &args.catalog {
        Some(dir) => Some(catalog::read(dir, vm_names(&before, &after))?),
        None => None,
    };
    let review = diff::review(
        Version {
            name: &old.name,
            policy: &before,
        },
        Version {
            name: &new.name,
            policy: &after,
        },
        args.from.unwrap_or_else(Utc::now),
        host::zone(),
        catalog.as_ref(),
    );
    print(&review, args.format);
    Ok(exit(&review))
}

/// The two sources: `OLD NEW`, or with `--git REV`, `FILE` at REV and as it is.
fn sources(args: &DiffArgs) -> Result<(Source, Source), Failure> {
    match (&args.git, &args.old, &args.new) {
        (None, Some(old), Some(new)) => Ok((read(old)?, read(new)?)),
        (None, _, _) => Err(Failure::usage(
            "ovplan diff needs the policy before and after\nhelp: `ovplan diff OLD NEW`, or \
             `ovplan diff --git REV [FILE]` to compare a file with itself at a git revision",
        )),
        (Some(_), _, Some(_)) => Err(Failure::usage(
            "with --git, ovplan diff takes one file (the policy as it is now)\nhelp: `ovplan \
             diff --git REV [FILE]`",
        )),
        (Some(rev), file, None) => {
            let file = file
                .clone()
                .unwrap_or_else(|| PathBuf::from("variables.json"));
            Ok((git::show(rev, &file)?, read(&file)?))
        }
    }
}

fn vm_names<'a>(before: &'a Policy, after: &'a Policy) -> impl Iterator<Item = &'a str> {
    before
        .vms
        .iter()
        .chain(&after.vms)
        .map(|vm| vm.name.as_str())
}

fn print(review: &Review, format: DiffFormat) {
    match format {
        DiffFormat::Text => match diff::text(review) {
            Some(text) => print!("{text}"),
            None => eprintln!("no change"),
        },
        DiffFormat::Markdown => print!("{}", markdown(review)),
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(review).expect("a review serializes")
        ),
    }
}

fn exit(review: &Review) -> ExitCode {
    if review.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}
