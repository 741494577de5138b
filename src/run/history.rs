//! A VM's run history as the commands write it and `ovrun history` prints it. The file and its
//! rules (one line per run, killed runs, rotation) are [`crate::run::catalog`]'s (`history`);
//! here: a backup's line filled from its manifest, a skipped start recorded, and the two
//! renderings, [`human`] (aligned columns, newest last, like a log) and [`json`] (an array).
//!
//! A history that cannot be written never fails a run: the run's own result stands, and the
//! caller warns.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::catalog::{
    Catalog, CatalogError, HistoryEntry, Manifest, Rule, RunKind, RunResult, folder_name,
};
use super::job::RunError;
use super::status::{human_bytes, one_line, shorten};

/// Starts recording a run of `kind` on the catalog's VM (the caller holds its lock); a failure
/// to write the marker is logged.
pub fn begin(catalog: &Catalog, kind: RunKind, started: DateTime<Utc>) -> HistoryEntry {
    let entry = HistoryEntry::begin(kind, catalog.vm(), started);
    if let Err(e) = catalog.begin_run(&entry) {
        tracing::warn!("the run history was not written: {e}");
    }
    entry
}

/// Ends a backup's line at `ended`: from its point's manifest (rule, method, bytes) and the
/// points retention removed after it, or from its error; then appends it (a failure logged).
pub fn end_backup(
    catalog: &Catalog,
    mut entry: HistoryEntry,
    result: &Result<(Manifest, Option<String>), RunError>,
    pruned: &[String],
    ended: DateTime<Utc>,
) {
    match result {
        Ok((manifest, fallback)) => {
            entry.end(ended, RunResult::Ok);
            describe_point(&mut entry, manifest);
            entry.detail = backup_detail(fallback.as_deref(), pruned);
        }
        Err(RunError::Interrupted) => {
            entry.fail(
                ended,
                RunResult::Interrupted,
                &RunError::Interrupted.to_string(),
            );
        }
        Err(e) => entry.fail(ended, RunResult::Failed, &e.to_string()),
    }
    if let Err(e) = catalog.end_run(&entry) {
        tracing::warn!("the run history was not written: {e}");
    }
}

/// The point's rule, method, bytes read from the engine and written into the catalog.
fn describe_point(entry: &mut HistoryEntry, manifest: &Manifest) {
    entry.rule = Some(Rule {
        kind: manifest.kind.clone(),
        reason: manifest.reason.clone(),
    });
    entry.method = Some(
        manifest
            .method
            .as_ref()
            .map_or_else(|| "backup_api".to_owned(), |m| m.name.clone()),
    );
    entry.bytes_read = Some(manifest.disks.iter().map(|d| d.bytes_transferred).sum());
    entry.bytes_written = Some(manifest.disks.iter().map(|d| d.file_size).sum());
    entry.point = Some(manifest.point.clone());
}

fn backup_detail(fallback: Option<&str>, pruned: &[String]) -> Option<String> {
    let pruned =
        (!pruned.is_empty()).then(|| format!("retention deleted {}", points(pruned.len())));
    let parts: Vec<String> = fallback
        .map(str::to_owned)
        .into_iter()
        .chain(pruned)
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `1 point`, `2 points`.
pub fn points(n: usize) -> String {
    if n == 1 {
        "1 point".into()
    } else {
        format!("{n} points")
    }
}

/// Records a backup start the schedule does not want (`why`), at `at`, in the VM's history if
/// its folder exists (a VM never backed up gets no folder for it) and no other run holds it.
/// Whether it was recorded.
///
/// # Errors
/// The folder cannot be opened or the history written.
pub fn record_skip(
    backup_dir: &Path,
    vm: &str,
    at: DateTime<Utc>,
    why: &str,
) -> Result<bool, CatalogError> {
    if !backup_dir.join(folder_name(vm)).is_dir() {
        return Ok(false);
    }
    let catalog = Catalog::open(backup_dir, vm)?;
    let Ok(_lock) = catalog.lock(Duration::ZERO) else {
        return Ok(false);
    };
    let mut entry = HistoryEntry::begin(RunKind::Backup, vm, at);
    entry.end(at, RunResult::SkippedNotDue);
    entry.detail = Some(why.to_owned());
    catalog.begin_run(&entry)?;
    catalog.end_run(&entry)?;
    Ok(true)
}

/// How long the history's error or detail may be in the table.
const NOTE_WIDTH: usize = 200;

const HEADER: [&str; 10] = [
    "STARTED", "VM", "KIND", "RESULT", "SECONDS", "RULE", "METHOD", "READ", "WRITTEN", "POINT",
];

/// The entries (oldest first) as aligned columns, newest last, each row followed by its note
/// (the rule's reason, the detail, the error) when it has one. Ends with a newline.
pub fn human(entries: &[HistoryEntry]) -> String {
    let mut rows = vec![HEADER.map(String::from).to_vec()];
    rows.extend(entries.iter().map(row));
    let widths = widths(&rows);
    let mut out = String::new();
    for (i, cells) in rows.iter().enumerate() {
        out.push_str(&line(cells, &widths));
        if let Some(note) = i.checked_sub(1).and_then(|i| note(&entries[i])) {
            let _ = writeln!(out, "    {note}");
        }
    }
    out
}

fn row(entry: &HistoryEntry) -> Vec<String> {
    let bytes = |b: Option<u64>| b.map_or_else(|| "-".into(), human_bytes);
    let or_dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
    vec![
        entry.started.to_rfc3339_opts(SecondsFormat::Secs, true),
        entry.vm.clone(),
        entry.kind.as_str().into(),
        entry.result.as_str().into(),
        entry
            .seconds
            .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
        or_dash(entry.rule.as_ref().map(|r| r.kind.as_str())),
        or_dash(entry.method.as_deref()),
        bytes(entry.bytes_read),
        bytes(entry.bytes_written),
        or_dash(entry.point.as_deref()),
    ]
}

/// What a row's second line says: the error, else the rule's reason and the detail.
fn note(entry: &HistoryEntry) -> Option<String> {
    if let Some(error) = &entry.error {
        return Some(format!("error: {}", shorten(error, NOTE_WIDTH)));
    }
    let reason = entry.rule.as_ref().map(|r| r.reason.clone());
    let parts: Vec<String> = reason.into_iter().chain(entry.detail.clone()).collect();
    (!parts.is_empty()).then(|| shorten(&parts.join("; "), NOTE_WIDTH))
}

fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths = vec![0; HEADER.len()];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    widths
}

/// Cells padded to their column's width, two spaces apart, no trailing blanks, a newline.
fn line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let _ = write!(line, "{:<width$}  ", one_line(cell));
    }
    format!("{}\n", line.trim_end())
}

/// The entries (oldest first) as a pretty JSON array, ending with a newline.
pub fn json(entries: &[HistoryEntry]) -> String {
    let mut text = serde_json::to_string_pretty(entries).expect("history entries serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn entries() -> Vec<HistoryEntry> {
        let mut full = HistoryEntry::begin(RunKind::Backup, "web01", at("2026-12-01T02:00:00Z"));
        full.end(at("2026-12-01T02:03:20Z"), RunResult::Ok);
        full.rule = Some(Rule {
            kind: "full".into(),
            reason: "no backup exists yet".into(),
        });
        full.method = Some("backup_api".into());
        (full.bytes_read, full.bytes_written) = (Some(10 << 30), Some(3 << 30));
        full.point = Some("20261201T020000Z".into());
        let mut failed = HistoryEntry::begin(RunKind::Backup, "web01", at("2026-12-02T02:00:00Z"));
        failed.fail(
            at("2026-12-02T02:00:04Z"),
            RunResult::Failed,
            "engine: 503 Service Unavailable\nretried 5 times",
        );
        let mut prune = HistoryEntry::begin(RunKind::Prune, "web01", at("2026-12-02T03:00:00Z"));
        prune.end(at("2026-12-02T03:00:01Z"), RunResult::Ok);
        prune.detail = Some("deleted 2 points, kept 5".into());
        vec![full, failed, prune]
    }

    #[test]
    fn history_table() {
        insta::assert_snapshot!(human(&entries()));
    }

    #[test]
    fn history_json_reads_back() {
        let text = json(&entries());
        let back: Vec<HistoryEntry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entries());
        assert!(text.contains("\"result\": \"failed\""));
    }

    #[test]
    fn a_backups_detail_names_its_fallback_and_retention() {
        assert_eq!(backup_detail(None, &[]), None);
        assert_eq!(
            backup_detail(Some("incremental not possible"), &["a".into()]).as_deref(),
            Some("incremental not possible; retention deleted 1 point")
        );
    }
}
