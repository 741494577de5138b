//! The run history from the command line: `ovrun history`, and the lines `prune` and `verify`
//! write (a backup's is written by the library, `ovbackup::run::history`). A history that cannot
//! be written is a warning on standard error: the run's own result stands.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use ovbackup::plan::retention::Verdict;
use ovbackup::run::catalog::{Catalog, CatalogError, HistoryEntry, RunKind, RunResult};
use ovbackup::run::history::{self, points};
use ovbackup::run::verify::Report;

use crate::args::ReportFormat;
use crate::commands::{load, open_catalog};
use crate::exit::{Outcome, SUCCESS};

/// Starts a run's line (the caller holds the VM's lock).
pub(crate) fn begin(catalog: &Catalog, kind: RunKind) -> HistoryEntry {
    let entry = HistoryEntry::begin(kind, catalog.vm(), Utc::now());
    if let Err(e) = catalog.begin_run(&entry) {
        eprintln!("warning: the run history was not written: {e}");
    }
    entry
}

/// Ends a run's line now and appends it.
fn end(catalog: &Catalog, entry: &HistoryEntry) {
    if let Err(e) = catalog.end_run(entry) {
        eprintln!("warning: the run history was not written: {e}");
    }
}

/// Ends a prune's line: what it deleted and kept, or its error.
pub(crate) fn end_prune(
    catalog: &Catalog,
    mut entry: HistoryEntry,
    verdict: &Result<Verdict, CatalogError>,
) {
    match verdict {
        Ok(v) => {
            entry.end(Utc::now(), RunResult::Ok);
            let (deleted, kept) = (points(v.delete.len()), v.keep.len());
            entry.detail = Some(format!("deleted {deleted}, kept {kept}"));
        }
        Err(e) => entry.fail(Utc::now(), RunResult::Failed, &e.to_string()),
    }
    end(catalog, &entry);
}

/// Ends a verify's line: what it checked, and the damage it found (a failure), or its error.
pub(crate) fn end_verify(
    catalog: &Catalog,
    mut entry: HistoryEntry,
    report: &Result<Report, CatalogError>,
) {
    match report {
        Ok(r) if r.is_clean() => entry.end(Utc::now(), RunResult::Ok),
        Ok(r) => {
            let first = r
                .problems
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            let what = format!("{} found: {first}", damage(r.problems.len()));
            entry.fail(Utc::now(), RunResult::Failed, &what);
        }
        Err(e) => entry.fail(Utc::now(), RunResult::Failed, &e.to_string()),
    }
    if let Ok(r) = report {
        let checked = format!("{}, {} files checked", points(r.points), r.files);
        entry.detail = Some(format!("{checked}; {} warnings", r.warnings.len()));
    }
    end(catalog, &entry);
}

fn damage(n: usize) -> String {
    if n == 1 {
        "1 problem".into()
    } else {
        format!("{n} problems")
    }
}

/// `ovrun history`: the VMs' runs merged by start, newest last, the last `limit` of them.
pub(crate) fn history_command(
    paths: &[PathBuf],
    format: ReportFormat,
    limit: Option<usize>,
) -> Outcome {
    let mut entries = Vec::new();
    for path in paths {
        entries.extend(vm_history(&open_catalog(&load(path)?)?));
    }
    entries.sort_by_key(|e| e.started);
    let skip = limit.map_or(0, |n| entries.len().saturating_sub(n));
    let shown = &entries[skip..];
    match format {
        ReportFormat::Human => print!("{}", history::human(shown)),
        ReportFormat::Json => print!("{}", history::json(shown)),
    }
    Ok(SUCCESS)
}

/// One VM's runs, its unreadable lines warned about, and the run in progress last: `running`
/// while another `ovrun` holds the VM, else `killed` (the next run writes it so).
fn vm_history(catalog: &Catalog) -> Vec<HistoryEntry> {
    let history = catalog.history();
    for line in &history.unreadable {
        eprintln!("warning: {}: {line}: skipped", catalog.vm());
    }
    let mut entries = history.entries;
    if let Some(mut open) = history.in_progress {
        if catalog.lock(Duration::ZERO).is_ok() {
            open.result = RunResult::Killed;
        }
        entries.push(open);
    }
    entries
}
