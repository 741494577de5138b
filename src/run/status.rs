//! `ovrun status`: per VM, how its backups stand, read from the backup directory alone.
//!
//! [`collect`] reads one VM's folder (its manifests, the run status `ovrun backup` records, and
//! the run history every backup, prune and verify appends to) into a [`VmStatus`]; three
//! renderings follow:
//!
//! - [`human`]: an aligned table, one row per VM, then per VM its method and configuration, its
//!   last runs and success rate (from the run history), and a `FAILING:` line per VM whose last
//!   run failed after its last success;
//! - [`json`]: the statuses as a pretty JSON array;
//! - [`prometheus`]: the Prometheus text exposition format, for node_exporter's textfile
//!   collector, written with [`write_metrics`] so the collector never reads half a file;
//! - [`html`]: the status page, one self-contained HTML file (`page`), which also reads each
//!   VM's schedule ([`ScheduleFacts`]) and restore log ([`PageVm`]).
//!
//! Nothing here talks to an engine: `ovrun status` works while the engines are down.

use std::fmt::Write as _;

use crate::plan::schedule::Calendar;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::run::catalog::{
    Catalog, CatalogError, HistoryEntry, HistorySummary, Manifest, RunKind, RunResult, RunStatus,
    summarize,
};

mod metrics;
mod page;

pub use self::metrics::{CaExpiry, ca_expiry, prometheus, write_metrics};
pub use self::page::{Freshness, PageVm, ScheduleFacts, csp_hash, html};

/// How a VM's backups stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmStatus {
    /// The VM's name.
    pub vm: String,
    /// Complete points in its folder.
    pub points: usize,
    /// How many of them are full.
    pub fulls: usize,
    /// The newest point's id.
    pub last_point: Option<String>,
    /// When the newest point's backup started.
    pub last_point_at: Option<DateTime<Utc>>,
    /// The newest point's kind (`full` or `incremental`).
    pub last_kind: Option<String>,
    /// Points in the newest point's chain, its full included (0 without points).
    pub chain_length: usize,
    /// The sum of the disk files' sizes over all points.
    pub bytes_on_disk: u64,
    /// Bytes read from the engine for the newest point.
    pub last_point_bytes_transferred: u64,
    /// How the newest point's disks were read (`backup_api`, `snapshot`; absent in older
    /// points).
    pub last_method: Option<String>,
    /// The VM configuration the newest point recorded, in one line (`None`: not recorded).
    pub last_configuration: Option<String>,
    /// Whether the last `ovrun verify` found damage (`None`: never verified), from the history.
    pub last_verify_failed: Option<bool>,
    /// Whether the last restore into DR failed (`None`: none logged, or no restore settings),
    /// from the restore log ([`VmStatus::with_restore_log`]).
    pub last_restore_failed: Option<bool>,
    /// The first start of the VM's schedule after its last successful run started: once it is
    /// missed by more than the grace, the backup is overdue ([`VmStatus::with_next_due`];
    /// `None`: never succeeded, or not computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<DateTime<Utc>>,
    /// How the last runs went.
    pub run: RunStatus,
    /// The last runs (backup, prune, verify) and the success rate, from the run history.
    #[serde(flatten)]
    pub history: HistorySummary,
}

impl VmStatus {
    /// Whether the last run failed: there is no success, or the last failure came after it.
    /// A VM that never ran counts as failing (it has no backup).
    pub fn last_run_failed(&self) -> bool {
        match (self.run.last_success, self.run.last_failure) {
            (None, _) => true,
            (Some(success), Some(failure)) => failure > success,
            (Some(_), None) => false,
        }
    }

    /// The error of a last run that failed (none when it succeeded or never ran).
    pub fn failing_error(&self) -> Option<&str> {
        self.run.last_failure?;
        if self.last_run_failed() {
            Some(self.run.last_error.as_deref().unwrap_or("unknown error"))
        } else {
            None
        }
    }
}

/// Reads a VM's status from its folder: the manifests and the recorded run status.
///
/// The VM's name is the newest manifest's; without points it is the name the catalog was
/// opened for.
///
/// # Errors
/// The folder or a manifest cannot be read.
pub fn collect(catalog: &Catalog) -> Result<VmStatus, CatalogError> {
    let points = catalog.points()?;
    let history = catalog.history();
    let last = points.last();
    Ok(VmStatus {
        vm: vm_name(catalog, last),
        points: points.len(),
        fulls: points.iter().filter(|p| p.is_full()).count(),
        last_point: last.map(|p| p.point.clone()),
        last_point_at: last.map(|p| p.taken_at),
        last_kind: last.map(|p| p.kind.clone()),
        chain_length: last.map_or(0, |p| Catalog::chain(&points, &p.point).len()),
        bytes_on_disk: points.iter().map(file_bytes).sum(),
        last_point_bytes_transferred: last.map_or(0, transferred_bytes),
        last_method: last.and_then(|p| Some(p.method.as_ref()?.name.clone())),
        last_configuration: last
            .and_then(|p| p.config.as_ref())
            .map(super::config_view::one_line),
        next_due: None,
        run: catalog.run_status(),
        last_verify_failed: last_verify_failed(&history.entries),
        last_restore_failed: None,
        history: summarize(&history.entries),
    })
}

/// Whether the newest verify run in `entries` found damage.
fn last_verify_failed(entries: &[HistoryEntry]) -> Option<bool> {
    let verifies = entries.iter().rev().filter(|e| e.kind == RunKind::Verify);
    let ended = verifies
        .map(|e| e.result)
        .find(|r| matches!(r, RunResult::Ok | RunResult::Failed));
    ended.map(|r| r == RunResult::Failed)
}

impl VmStatus {
    /// The status with what the VM's restore log (its entries, oldest first) says of its last
    /// restore.
    #[must_use]
    pub fn with_restores(mut self, entries: &[crate::run::restore::LogEntry]) -> Self {
        let last = entries.last();
        self.last_restore_failed = last.map(|e| e.result == crate::run::restore::Verdict::Failed);
        self
    }

    /// The status with the first start of `schedule` after the last successful run started.
    #[must_use]
    pub fn with_next_due(mut self, schedule: &Calendar) -> Self {
        self.next_due = self
            .run
            .last_success
            .and_then(|at| Some(schedule.after(at).next()?.with_timezone(&Utc)));
        self
    }
}

fn vm_name(catalog: &Catalog, last: Option<&Manifest>) -> String {
    match last {
        Some(manifest) => manifest.vm.clone(),
        None => catalog.vm().to_owned(),
    }
}

fn file_bytes(point: &Manifest) -> u64 {
    point.disks.iter().map(|d| d.file_size).sum()
}

fn transferred_bytes(point: &Manifest) -> u64 {
    point.disks.iter().map(|d| d.bytes_transferred).sum()
}

/// How long ago `at` was, roughly: `45s ago`, `12m ago`, `3h ago`, `4d ago`.
fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    match seconds {
        s if s < 0 => "in the future".into(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 48 * 3600 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// `1.5 GiB`: one decimal, narrower than `indicatif::HumanBytes` (two), which the logs use;
/// the table's column keeps this width.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `text` on one line (runs of whitespace made one space), cut to `max` characters with `…`.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let line = one_line(text);
    if line.chars().count() <= max {
        return line;
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// `text` with runs of whitespace (newlines included) made one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How long a failure's error may be in the table.
const ERROR_WIDTH: usize = 60;

const HEADER: [&str; 7] = [
    "VM",
    "LAST POINT",
    "KIND",
    "CHAIN",
    "POINTS",
    "ON DISK",
    "LAST FAILURE",
];

/// A VM's row of the table.
fn row(status: &VmStatus, now: DateTime<Utc>) -> [String; 7] {
    let last_point = match (&status.last_point, status.last_point_at) {
        (Some(point), Some(at)) => format!("{point} ({})", age(at, now)),
        _ => "-".into(),
    };
    let last_failure = match status.run.last_failure {
        Some(at) => {
            let error = status.run.last_error.as_deref().unwrap_or("unknown error");
            format!("{}: {}", age(at, now), shorten(error, ERROR_WIDTH))
        }
        None => "-".into(),
    };
    [
        status.vm.clone(),
        last_point,
        status.last_kind.clone().unwrap_or_else(|| "-".into()),
        status.chain_length.to_string(),
        status.points.to_string(),
        human_bytes(status.bytes_on_disk),
        last_failure,
    ]
}

/// Rows as columns padded to their widest cell (in characters), two spaces apart, no
/// trailing blanks.
fn table(rows: &[[String; 7]]) -> String {
    let mut widths = [0; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The statuses as an aligned table, one row per VM (ages relative to `now`), then per VM its
/// method and configuration, its last runs and success rate, and a `FAILING: vm: error` line
/// per VM whose last run failed after its last success (or that never succeeded). Ends with a
/// newline.
pub fn human(statuses: &[VmStatus], now: DateTime<Utc>) -> String {
    let header = HEADER.map(String::from);
    let rows: Vec<[String; 7]> = std::iter::once(header)
        .chain(statuses.iter().map(|s| row(s, now)))
        .collect();
    let mut out = table(&rows);
    for status in statuses.iter().filter(|s| s.last_point.is_some()) {
        let method = status.last_method.as_deref().unwrap_or("backup_api");
        let config = status
            .last_configuration
            .as_deref()
            .unwrap_or("not recorded");
        let _ = writeln!(out, "{}: by {method}; configuration: {config}", status.vm);
    }
    for status in statuses {
        if let Some(runs) = runs_line(&status.history, now) {
            let _ = writeln!(out, "{}: {runs}", status.vm);
        }
    }
    for status in statuses {
        if let Some(error) = status.failing_error() {
            let _ = writeln!(out, "FAILING: {}: {}", status.vm, one_line(error));
        }
    }
    out
}

/// The last runs and the success rate in one line: `last runs: backup ok 3h ago, verify
/// failed 2h ago; 9 of 10 succeeded (90%)` (`None` without runs).
fn runs_line(history: &HistorySummary, now: DateTime<Utc>) -> Option<String> {
    let rate = history.success_rate?;
    let runs: Vec<String> = history
        .recent_runs
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.kind.as_str(),
                r.result.as_str(),
                age(r.started, now)
            )
        })
        .collect();
    Some(format!(
        "last runs: {}; {} of {} succeeded ({:.0}%)",
        runs.join(", "),
        history.runs_succeeded,
        history.runs_counted,
        rate * 100.0
    ))
}

/// The statuses as a pretty JSON array, ending with a newline.
pub fn json(statuses: &[VmStatus]) -> String {
    let mut text = serde_json::to_string_pretty(statuses).expect("statuses serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::run::catalog::{DiskEntry, HistoryEntry, MANIFEST_FORMAT, RunKind, RunResult};

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    pub(super) fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn disk(alias: &str, file_size: u64, bytes_transferred: u64) -> DiskEntry {
        DiskEntry {
            id: format!("id-{alias}"),
            alias: alias.into(),
            interface: "virtio_scsi".into(),
            bootable: alias == "os",
            provisioned_size: 10 << 30,
            mode: "full".into(),
            file: format!("{alias}.qcow2"),
            backing: None,
            bytes_transferred,
            file_size,
            sha256: None,
            content: None,
        }
    }

    /// Commits a point of `vm` taken at `taken` (RFC 3339) on top of `parent`.
    fn point(
        catalog: &Catalog,
        vm: &str,
        taken: &str,
        parent: Option<&str>,
        mut disks: Vec<DiskEntry>,
    ) -> String {
        let taken_at = at(taken);
        let id = crate::run::catalog::point_id(taken_at);
        let kind = if parent.is_some() {
            "incremental"
        } else {
            "full"
        };
        for disk in &mut disks {
            disk.file = format!("{id}.{kind}.{}.qcow2", disk.alias);
        }
        catalog
            .commit(&Manifest {
                format: MANIFEST_FORMAT,
                vm: vm.into(),
                vm_id: format!("vm-{vm}"),
                point: id.clone(),
                kind: kind.into(),
                reason: "test".into(),
                taken_at,
                parent: parent.map(String::from),
                backup_id: format!("backup-{id}"),
                from_checkpoint: parent.map(|p| format!("cp-{p}")),
                checkpoint: Some(format!("cp-{id}")),
                memory: None,
                method: None,
                config: None,
                disks,
            })
            .unwrap();
        id
    }

    /// Two VMs: `web01` healthy (a full and two incrementals, one failure before the last
    /// success); `we"b 02` failing since its full.
    pub(super) fn two_vms(backup_dir: &Path) -> Vec<VmStatus> {
        let web = Catalog::open(backup_dir, "web01").unwrap();
        let full = point(
            &web,
            "web01",
            "2026-11-29T02:00:00Z",
            None,
            vec![
                disk("os", 3 << 30, 10 << 30),
                disk("data", 1 << 30, 2 << 30),
            ],
        );
        web.record_run(at("2026-11-29T02:00:00Z"), Ok(&full))
            .unwrap();
        let inc1 = point(
            &web,
            "web01",
            "2026-11-30T02:00:00Z",
            Some(&full),
            vec![
                disk("os", 200 << 20, 180 << 20),
                disk("data", 5 << 20, 4 << 20),
            ],
        );
        web.record_run(at("2026-11-30T02:00:00Z"), Ok(&inc1))
            .unwrap();
        web.record_run(
            at("2026-12-01T02:00:00Z"),
            Err("engine: 503 Service Unavailable"),
        )
        .unwrap();
        let inc2 = point(
            &web,
            "web01",
            "2026-12-01T03:00:00Z",
            Some(&inc1),
            vec![
                disk("os", 100 << 20, 90 << 20),
                disk("data", 1 << 20, 1 << 20),
            ],
        );
        web.record_run(at("2026-12-01T03:00:00Z"), Ok(&inc2))
            .unwrap();
        for (kind, started, result) in [
            (RunKind::Backup, "2026-11-30T02:00:00Z", RunResult::Ok),
            (RunKind::Backup, "2026-12-01T02:00:00Z", RunResult::Failed),
            (RunKind::Backup, "2026-12-01T03:00:00Z", RunResult::Ok),
            (RunKind::Prune, "2026-12-01T03:10:00Z", RunResult::Ok),
            (
                RunKind::Backup,
                "2026-12-01T04:00:00Z",
                RunResult::SkippedNotDue,
            ),
            (RunKind::Verify, "2026-12-01T05:00:00Z", RunResult::Ok),
        ] {
            ran(&web, kind, started, result);
        }

        let odd_name = "we\"b 02";
        let odd = Catalog::open(backup_dir, odd_name).unwrap();
        let full = point(
            &odd,
            odd_name,
            "2026-11-28T22:00:00Z",
            None,
            vec![disk("os", 7 << 30, 20 << 30)],
        );
        odd.record_run(at("2026-11-28T22:00:00Z"), Ok(&full))
            .unwrap();
        odd.record_run(
            at("2026-12-01T04:30:00Z"),
            Err("storage domain backup_sd is out of space: needed 20 GiB for disk os, 3 GiB free\nhelp: free space or prune old points"),
        )
        .unwrap();
        vec![collect(&web).unwrap(), collect(&odd).unwrap()]
    }

    const NOW: &str = "2026-12-01T06:00:00Z";

    /// Appends a run of `kind` that started at `started` and took a minute to the history.
    fn ran(catalog: &Catalog, kind: RunKind, started: &str, result: RunResult) {
        let mut entry = HistoryEntry::begin(kind, catalog.vm(), at(started));
        entry.end(at(started) + chrono::Duration::minutes(1), result);
        catalog.end_run(&entry).unwrap();
    }

    #[test]
    fn chain_length_counts_back_to_the_last_full() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), "db01").unwrap();
        let empty = collect(&catalog).unwrap();
        assert_eq!(
            (empty.vm.as_str(), empty.points, empty.chain_length),
            ("db01", 0, 0)
        );
        assert!(empty.last_run_failed());
        assert_eq!(empty.failing_error(), None);

        let full = point(
            &catalog,
            "db01",
            "2026-11-29T02:00:00Z",
            None,
            vec![disk("os", 1000, 5000)],
        );
        let inc1 = point(
            &catalog,
            "db01",
            "2026-11-30T02:00:00Z",
            Some(&full),
            vec![disk("os", 100, 70)],
        );
        let inc2 = point(
            &catalog,
            "db01",
            "2026-12-01T02:00:00Z",
            Some(&inc1),
            vec![disk("os", 10, 7)],
        );
        let status = collect(&catalog).unwrap();
        assert_eq!(status.points, 3);
        assert_eq!(status.fulls, 1);
        assert_eq!(status.chain_length, 3);
        assert_eq!(status.last_point.as_deref(), Some(inc2.as_str()));
        assert_eq!(status.last_kind.as_deref(), Some("incremental"));
        assert_eq!(status.last_point_at, Some(at("2026-12-01T02:00:00Z")));
        assert_eq!(status.bytes_on_disk, 1110);
        assert_eq!(status.last_point_bytes_transferred, 7);

        point(
            &catalog,
            "db01",
            "2026-12-02T02:00:00Z",
            None,
            vec![disk("os", 900, 4000)],
        );
        let status = collect(&catalog).unwrap();
        assert_eq!(status.points, 4);
        assert_eq!(status.fulls, 2);
        assert_eq!(status.chain_length, 1);
        assert_eq!(status.last_kind.as_deref(), Some("full"));
        assert_eq!(status.bytes_on_disk, 2010);
        assert_eq!(status.last_point_bytes_transferred, 4000);
    }

    #[test]
    fn the_last_run_fails_only_after_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let statuses = two_vms(dir.path());
        assert!(!statuses[0].last_run_failed());
        assert_eq!(statuses[0].failing_error(), None);
        assert_eq!(
            statuses[0].run.last_error.as_deref(),
            Some("engine: 503 Service Unavailable")
        );
        assert!(statuses[1].last_run_failed());
        assert!(statuses[1].failing_error().unwrap().starts_with("storage"));
        assert_eq!(statuses[1].vm, "we\"b 02");
    }

    #[test]
    fn ages_and_shortened_errors() {
        let now = at(NOW);
        assert_eq!(age(at("2026-12-01T05:59:15Z"), now), "45s ago");
        assert_eq!(age(at("2026-12-01T05:48:00Z"), now), "12m ago");
        assert_eq!(age(at("2026-12-01T03:00:00Z"), now), "3h ago");
        assert_eq!(age(at("2026-11-27T06:00:00Z"), now), "4d ago");
        assert_eq!(age(at("2026-12-01T07:00:00Z"), now), "in the future");
        assert_eq!(shorten("a\n  b", 60), "a b");
        let long = shorten(&"x".repeat(100), 60);
        assert_eq!(long.chars().count(), 60);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn human_table() {
        let dir = tempfile::tempdir().unwrap();
        insta::assert_snapshot!(human(&two_vms(dir.path()), at(NOW)));
    }

    #[test]
    fn json_array() {
        let dir = tempfile::tempdir().unwrap();
        insta::assert_snapshot!(json(&two_vms(dir.path())));
    }

    #[test]
    fn next_due_is_the_first_scheduled_start_after_the_last_success() {
        use crate::plan::model::Rule;
        use chrono::Weekday;
        let dir = tempfile::tempdir().unwrap();
        let time = chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap();
        let daily = Calendar::of_rule(&Rule::Daily, time, chrono_tz::UTC).unwrap();
        let mondays =
            Calendar::of_rule(&Rule::Weekly(vec![Weekday::Mon]), time, chrono_tz::UTC).unwrap();
        let [web, odd] = <[VmStatus; 2]>::try_from(two_vms(dir.path())).unwrap();
        // web01 last succeeded at 03:00 on Tuesday 1 December, an hour after its 02:00 run.
        assert_eq!(web.run.last_success, Some(at("2026-12-01T03:00:00Z")));
        let web_daily = web.clone().with_next_due(&daily);
        assert_eq!(web_daily.next_due, Some(at("2026-12-02T02:00:00Z")));
        assert_eq!(
            web.with_next_due(&mondays).next_due,
            Some(at("2026-12-07T02:00:00Z"))
        );
        assert_eq!(
            odd.with_next_due(&daily).next_due,
            Some(at("2026-11-29T02:00:00Z"))
        );
        let text = prometheus(&[web_daily]);
        assert!(
            text.contains("ovbackup_next_due_timestamp_seconds{vm=\"web01\"} 1796176800\n"),
            "{text}"
        );
    }

    #[test]
    fn prometheus_text() {
        let dir = tempfile::tempdir().unwrap();
        insta::assert_snapshot!(prometheus(&two_vms(dir.path())));
    }
}
