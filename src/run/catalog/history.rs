//! The VM's run history in its folder: one JSON line per `ovrun backup`, `prune` and `verify`
//! run, appended when the run ends (the restore log's model, `run::restore::log`).
//!
//! ```text
//! BACKUP_DIR/web01/.history.jsonl          newest lines last
//! BACKUP_DIR/web01/.history.1.jsonl        the older half, rotated out
//! BACKUP_DIR/web01/.history.running.json   the run in progress (what it is, when it began)
//! ```
//!
//! **Appends.** A line is one `write` with `O_APPEND`, fsynced ([`crate::fsutil::Folder::append`]),
//! by a run holding the VM's lock: a crash leaves a whole line or none, and a reader skips a
//! line it cannot read with a warning ([`History::unreadable`]).
//!
//! **Killed runs.** A run writes [`RUNNING_FILE`] (atomically) when it starts and removes it
//! after its line; the next run finds a marker left by a run that was killed (or whose machine
//! stopped) and appends that run's line as `killed` before its own marker.
//!
//! **Bounded.** When an append takes the file past [`HISTORY_LIMIT`], its older half (whole
//! lines) replaces [`HISTORY_OLD_FILE`], then the newer half replaces the file, each written
//! atomically: a crash in between leaves lines in both files, never none, and the reader drops
//! the old file's copies of lines the newer one holds.
//!
//! [`summarize`] is the pure part `ovrun status` shows: the last runs and the success rate.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::io_at;
use super::{Catalog, CatalogError};

/// The history file in a VM's folder.
pub const HISTORY_FILE: &str = ".history.jsonl";

/// The older half of the history, rotated out of [`HISTORY_FILE`].
pub const HISTORY_OLD_FILE: &str = ".history.1.jsonl";

/// The run in progress: present while a run works on the VM, or after one was killed.
pub const RUNNING_FILE: &str = ".history.running.json";

/// The size past which the history's older half is rotated out.
pub const HISTORY_LIMIT: u64 = 1 << 20;

/// Which command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// `ovrun backup`.
    Backup,
    /// `ovrun prune`.
    Prune,
    /// `ovrun verify`.
    Verify,
}

impl RunKind {
    /// As the history names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Prune => "prune",
            Self::Verify => "verify",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// It did its work (a verify: found no damage).
    Ok,
    /// It failed (a verify: found damage).
    Failed,
    /// A backup start the schedule does not want (a timer firing on a superset of days).
    SkippedNotDue,
    /// Stopped by a signal; it wound down.
    Interrupted,
    /// It ended without recording its end: killed, or the machine stopped.
    Killed,
    /// Still running (only ever shown, never written).
    Running,
}

impl RunResult {
    /// As the history names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::SkippedNotDue => "skipped-not-due",
            Self::Interrupted => "interrupted",
            Self::Killed => "killed",
            Self::Running => "running",
        }
    }

    /// Whether the run counts for the success rate (it ran and ended).
    pub fn counts(self) -> bool {
        !matches!(self, Self::SkippedNotDue | Self::Running)
    }
}

/// Full or incremental, and why (a backup's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `full` or `incremental`.
    pub kind: String,
    /// Why, as the manifest records it.
    pub reason: String,
}

/// One line of the history: one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Which command ran.
    pub kind: RunKind,
    /// The VM.
    pub vm: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended (unknown for a killed run).
    #[serde(default)]
    pub ended: Option<DateTime<Utc>>,
    /// Seconds it took.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// How it ended.
    pub result: RunResult,
    /// A backup's rule: full or incremental, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// How a backup read the disks (`backup_api`, `snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Bytes read from the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Bytes written into the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// The point a backup made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
    /// What else it did (`deleted 2 points`, `3 points, 6 files checked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HistoryEntry {
    /// A run of `kind` on `vm` that started at `started`, still running.
    pub fn begin(kind: RunKind, vm: &str, started: DateTime<Utc>) -> Self {
        Self {
            kind,
            vm: vm.to_owned(),
            started,
            ended: None,
            seconds: None,
            result: RunResult::Running,
            rule: None,
            method: None,
            bytes_read: None,
            bytes_written: None,
            point: None,
            detail: None,
            error: None,
        }
    }

    /// The run ended at `ended` with `result`.
    pub fn end(&mut self, ended: DateTime<Utc>, result: RunResult) {
        let millis = (ended - self.started).num_milliseconds().max(0);
        self.ended = Some(ended);
        self.seconds = Some(millis as f64 / 1000.0);
        self.result = result;
    }

    /// The run failed at `ended` because of `error`.
    pub fn fail(&mut self, ended: DateTime<Utc>, result: RunResult, error: &str) {
        self.end(ended, result);
        self.error = Some(error.to_owned());
    }
}

/// What the VM's history holds.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Its runs, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// The run in progress, or a killed run's (its result `running`).
    pub in_progress: Option<HistoryEntry>,
    /// The lines that could not be read, each as `FILE line N: why`.
    pub unreadable: Vec<String>,
}

/// The entries of a history file's `text`, and its unreadable lines (as `FILE line N: why`).
pub fn parse(file: &str, text: &str) -> (Vec<HistoryEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<HistoryEntry>(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => unreadable.push(format!("{file} line {}: {e}", number + 1)),
        }
    }
    (entries, unreadable)
}

/// The older file's entries the newer one does not hold too (a rotation cut short), then the
/// newer file's.
fn merge(older: Vec<HistoryEntry>, newer: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    let seen: HashSet<(RunKind, DateTime<Utc>)> =
        newer.iter().map(|e| (e.kind, e.started)).collect();
    older
        .into_iter()
        .filter(|e| !seen.contains(&(e.kind, e.started)))
        .chain(newer)
        .collect()
}

/// Where `text` is cut to rotate out its older half: after the first newline at or past the
/// middle (`None`: no whole line to keep after it).
fn cut(text: &[u8]) -> Option<usize> {
    let middle = text.len() / 2;
    let newline = text[middle..].iter().position(|b| *b == b'\n')?;
    Some(middle + newline + 1).filter(|at| *at < text.len())
}

/// How many recent runs `ovrun status` shows.
pub const RECENT_RUNS: usize = 5;

/// How many of the last runs the success rate counts.
pub const RATE_WINDOW: usize = 100;

/// A run as `ovrun status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentRun {
    /// Which command ran.
    pub kind: RunKind,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How it ended.
    pub result: RunResult,
    /// The point a backup made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<String>,
}

/// The history as `ovrun status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistorySummary {
    /// The last [`RECENT_RUNS`] runs that ran (skipped starts left out), oldest first.
    pub recent_runs: Vec<RecentRun>,
    /// How many of the last [`RATE_WINDOW`] runs that ran are counted.
    pub runs_counted: usize,
    /// How many of them succeeded.
    pub runs_succeeded: usize,
    /// `runs_succeeded / runs_counted` (`None` without runs).
    pub success_rate: Option<f64>,
}

/// The last runs and the success rate of `entries` (oldest first).
pub fn summarize(entries: &[HistoryEntry]) -> HistorySummary {
    let ran: Vec<&HistoryEntry> = entries.iter().filter(|e| e.result.counts()).collect();
    let window = &ran[ran.len().saturating_sub(RATE_WINDOW)..];
    let succeeded = window.iter().filter(|e| e.result == RunResult::Ok).count();
    let recent = &ran[ran.len().saturating_sub(RECENT_RUNS)..];
    HistorySummary {
        recent_runs: recent.iter().map(|e| recent_run(e)).collect(),
        runs_counted: window.len(),
        runs_succeeded: succeeded,
        success_rate: (!window.is_empty()).then(|| succeeded as f64 / window.len() as f64),
    }
}

fn recent_run(entry: &HistoryEntry) -> RecentRun {
    RecentRun {
        kind: entry.kind,
        started: entry.started,
        result: entry.result,
        point: entry.point.clone(),
    }
}

impl Catalog {
    /// The VM's history: both files' lines (unreadable ones listed, not fatal) and the run in
    /// progress. Files that are missing are empty.
    pub fn history(&self) -> History {
        let (older, mut unreadable) = self.history_lines(HISTORY_OLD_FILE);
        let (newer, bad) = self.history_lines(HISTORY_FILE);
        unreadable.extend(bad);
        History {
            entries: merge(older, newer),
            in_progress: self.running_marker(),
            unreadable,
        }
    }

    fn history_lines(&self, name: &str) -> (Vec<HistoryEntry>, Vec<String>) {
        match self.folder.read(name) {
            Ok(bytes) => parse(name, &String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => (Vec::new(), vec![format!("{name}: {e}")]),
        }
    }

    fn running_marker(&self) -> Option<HistoryEntry> {
        let bytes = self.folder.read(RUNNING_FILE).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Starts recording a run (the caller holds the VM's lock): a killed run's marker becomes
    /// its `killed` line, then `entry` is the new marker.
    ///
    /// # Errors
    /// The history or the marker cannot be written.
    pub fn begin_run(&self, entry: &HistoryEntry) -> Result<(), CatalogError> {
        self.complete_killed_run()?;
        let text = serde_json::to_vec(entry).expect("a history entry serializes");
        self.write_file(RUNNING_FILE, &text)
    }

    /// Appends a marker left by a run that never ended as its `killed` line.
    fn complete_killed_run(&self) -> Result<(), CatalogError> {
        if !self.folder.exists(RUNNING_FILE) {
            return Ok(());
        }
        if let Some(mut killed) = self.running_marker() {
            killed.result = RunResult::Killed;
            killed.error = Some(
                "the run ended without recording its end (killed, or the machine stopped)".into(),
            );
            self.append_history(&killed, HISTORY_LIMIT)?;
        }
        self.remove(RUNNING_FILE)
    }

    /// Records the end of a run: its line appended (the history rotated when past
    /// [`HISTORY_LIMIT`]), then its marker removed.
    ///
    /// # Errors
    /// The history cannot be written.
    pub fn end_run(&self, entry: &HistoryEntry) -> Result<(), CatalogError> {
        self.append_history(entry, HISTORY_LIMIT)?;
        self.remove(RUNNING_FILE)
    }

    /// Appends `entry` as one line; past `limit` bytes, the older half is rotated out.
    ///
    /// # Errors
    /// The history cannot be written.
    pub fn append_history(&self, entry: &HistoryEntry, limit: u64) -> Result<(), CatalogError> {
        let mut line = serde_json::to_vec(entry).expect("a history entry serializes");
        line.push(b'\n');
        if self.history_ends_mid_line() {
            line.insert(0, b'\n');
        }
        let size = self
            .folder
            .append(HISTORY_FILE, &line)
            .map_err(io_at("appending to", self.path(HISTORY_FILE)))?;
        if size > limit {
            self.rotate_history()?;
        }
        Ok(())
    }

    /// Whether the history's last line lacks its newline (a write cut short by a full disk):
    /// the next line then starts on a line of its own.
    fn history_ends_mid_line(&self) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = self.folder.open(HISTORY_FILE) else {
            return false;
        };
        let mut last = [b'\n'];
        let read = file
            .seek(SeekFrom::End(-1))
            .and_then(|_| file.read_exact(&mut last));
        read.is_ok() && last[0] != b'\n'
    }

    /// Moves the older half of the history (whole lines) to [`HISTORY_OLD_FILE`], replacing
    /// it, then keeps the newer half: both written atomically, in that order.
    fn rotate_history(&self) -> Result<(), CatalogError> {
        let text = self
            .folder
            .read(HISTORY_FILE)
            .map_err(io_at("reading", self.path(HISTORY_FILE)))?;
        let Some(at) = cut(&text) else {
            return Ok(());
        };
        self.write_file(HISTORY_OLD_FILE, &text[..at])?;
        self.write_file(HISTORY_FILE, &text[at..])
    }
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "the tests set up and inspect files directly"
)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn ended(kind: RunKind, started: i64, result: RunResult) -> HistoryEntry {
        let mut entry = HistoryEntry::begin(kind, "web01", at(started));
        entry.end(at(started + 5), result);
        entry
    }

    #[test]
    fn runs_append_one_line_each_and_read_back_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web01").unwrap();
        assert!(catalog.history().entries.is_empty(), "no file: no runs");
        let mut backup = ended(RunKind::Backup, 0, RunResult::Ok);
        backup.point = Some("20270115T080000Z".into());
        for entry in [&backup, &ended(RunKind::Prune, 10, RunResult::Failed)] {
            catalog.begin_run(entry).unwrap();
            assert!(catalog.history().in_progress.is_some());
            catalog.end_run(entry).unwrap();
        }
        let history = catalog.history();
        assert_eq!(
            history.entries,
            [backup, ended(RunKind::Prune, 10, RunResult::Failed)]
        );
        assert!(history.in_progress.is_none() && history.unreadable.is_empty());
        let text = std::fs::read_to_string(catalog.path(HISTORY_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(history.entries[0].seconds, Some(5.0));
    }

    #[test]
    fn a_broken_line_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web01").unwrap();
        catalog
            .append_history(&ended(RunKind::Verify, 0, RunResult::Ok), HISTORY_LIMIT)
            .unwrap();
        let mut file = fs_err::OpenOptions::new()
            .append(true)
            .open(catalog.path(HISTORY_FILE))
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"kind\":\"backup\",\"vm\":\"we").unwrap();
        catalog
            .append_history(&ended(RunKind::Backup, 9, RunResult::Ok), HISTORY_LIMIT)
            .unwrap();
        let history = catalog.history();
        let kinds: Vec<RunKind> = history.entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [RunKind::Verify, RunKind::Backup]);
        assert_eq!(history.unreadable.len(), 1, "{:?}", history.unreadable);
        assert!(history.unreadable[0].starts_with(".history.jsonl line 2: "));
    }

    #[test]
    fn a_killed_runs_marker_becomes_its_killed_line() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web01").unwrap();
        catalog
            .begin_run(&HistoryEntry::begin(RunKind::Backup, "web01", at(0)))
            .unwrap();
        // Killed here: the next run completes its line.
        let verify = ended(RunKind::Verify, 60, RunResult::Ok);
        catalog.begin_run(&verify).unwrap();
        catalog.end_run(&verify).unwrap();
        let history = catalog.history();
        let results: Vec<RunResult> = history.entries.iter().map(|e| e.result).collect();
        assert_eq!(results, [RunResult::Killed, RunResult::Ok]);
        assert_eq!(history.entries[0].started, at(0));
        assert!(
            history.entries[0]
                .error
                .as_deref()
                .unwrap()
                .contains("killed")
        );
        assert!(!catalog.exists(RUNNING_FILE));
    }

    #[test]
    fn past_the_limit_the_older_half_is_rotated_out() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "web01").unwrap();
        let limit = 2000;
        for i in 0..40 {
            catalog
                .append_history(&ended(RunKind::Backup, i * 60, RunResult::Ok), limit)
                .unwrap();
        }
        let size = |name| std::fs::metadata(catalog.path(name)).unwrap().len();
        assert!(size(HISTORY_FILE) <= limit, "{}", size(HISTORY_FILE));
        assert!(size(HISTORY_OLD_FILE) <= limit);
        let history = catalog.history();
        assert!(history.unreadable.is_empty(), "only whole lines move");
        let starts: Vec<DateTime<Utc>> = history.entries.iter().map(|e| e.started).collect();
        assert_eq!(starts.last(), Some(&at(39 * 60)), "the newest kept");
        assert!(
            starts.windows(2).all(|w| w[0] < w[1]),
            "in order, no copies"
        );
        assert!(
            starts.len() < 40,
            "the oldest dropped with the previous old file"
        );
    }

    #[test]
    fn a_rotation_cut_short_shows_no_line_twice() {
        let older = vec![
            ended(RunKind::Backup, 0, RunResult::Ok),
            ended(RunKind::Backup, 60, RunResult::Ok),
        ];
        let newer = vec![
            ended(RunKind::Backup, 60, RunResult::Ok),
            ended(RunKind::Verify, 60, RunResult::Ok),
        ];
        let merged = merge(older, newer);
        assert_eq!(merged.len(), 3);
        assert_eq!(cut(b"ab\ncd\nef\n"), Some(6));
        assert_eq!(cut(b"abcdef\n"), None, "one line stays");
    }

    #[test]
    fn the_summary_counts_runs_that_ran() {
        let mut entries = vec![ended(RunKind::Backup, 0, RunResult::Failed)];
        for i in 1..=6 {
            entries.push(ended(RunKind::Backup, i * 60, RunResult::Ok));
            entries.push(ended(RunKind::Backup, i * 60 + 1, RunResult::SkippedNotDue));
        }
        let summary = summarize(&entries);
        assert_eq!((summary.runs_counted, summary.runs_succeeded), (7, 6));
        assert_eq!(summary.success_rate, Some(6.0 / 7.0));
        assert_eq!(summary.recent_runs.len(), RECENT_RUNS);
        assert!(
            summary
                .recent_runs
                .iter()
                .all(|r| r.result == RunResult::Ok)
        );
        assert_eq!(summarize(&[]).success_rate, None);
    }
}
