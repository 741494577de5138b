//! `ovrun status --format html`: the status page, one self-contained HTML file a web server can
//! serve as it is (or a browser open from disk).
//!
//! Per VM, one row: the last point and its age, coloured against the VM's schedule ([`Freshness`],
//! as the overdue alert judges: on time until the first scheduled run after the last success,
//! late within the alert rules' grace after it, overdue past it; without that run, against the
//! longest gap between two scheduled runs), the next scheduled run, the chain against the
//! policy's limit, the size on disk, the last runs as a small inline-SVG timeline ([`timeline`])
//! with the success rate, the last restore into DR, and what is wrong.
//!
//! The HTML is rendered by minijinja from `templates/status/page.html.j2` with HTML
//! auto-escaping on every value: a VM name, an error or a path is text, never markup. Nothing is
//! fetched: the style and the one script are inline, the timeline is inline SVG, and the page's
//! Content-Security-Policy allows exactly those two by their SHA-256 (and nothing from the
//! network), so even markup that got in could not run or load anything. The script only makes
//! the table sortable; the page reads the same without it.

mod timeline;

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{VmStatus, age, human_bytes, shorten};
use crate::plan::alerts::{GRACE, chain_limit, human_duration, longest_gap};
use crate::plan::cron::CronProblem;
use crate::plan::runner::RunnerConfig;
use crate::plan::schedule::Calendar;
use crate::run::restore::{LogEntry, Verdict};

const TEMPLATE: &str = include_str!("../../../templates/status/page.html.j2");
const STYLE: &str = include_str!("../../../templates/status/page.css");
const SCRIPT: &str = include_str!("../../../templates/status/sort.js");

/// One VM as the page shows it: its status, what its runner config says of its schedule, and
/// its restore log.
#[derive(Debug, Clone)]
pub struct PageVm {
    /// How its backups stand.
    pub status: VmStatus,
    /// Its schedule, seen from the page's instant.
    pub schedule: ScheduleFacts,
    /// Its restore log, oldest first; `None`: the VM is not restored into DR (no restore
    /// settings).
    pub restores: Option<Vec<LogEntry>>,
}

/// What a VM's runner config says about its schedule at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFacts {
    /// The zone its schedule is in (times are shown in it).
    pub zone: Tz,
    /// The longest time between two consecutive scheduled runs (as the alert rules count it);
    /// `None` for a schedule with fewer than two runs.
    pub longest_gap: Option<TimeDelta>,
    /// The next scheduled run after the instant.
    pub next_run: Option<DateTime<Tz>>,
    /// The longest chain (points, its full included) the policy allows.
    pub chain_limit: u32,
}

impl ScheduleFacts {
    /// The facts of `config`'s schedule, whose calendar (in its zone) is `calendar`, after
    /// `now`.
    ///
    /// # Errors
    /// A cron expression that does not parse (a config read by `RunnerConfig::from_json` has
    /// none).
    pub fn of(
        config: &RunnerConfig,
        calendar: &Calendar,
        now: DateTime<Utc>,
    ) -> Result<Self, CronProblem> {
        Ok(Self {
            zone: calendar.zone(),
            longest_gap: longest_gap(config.schedule.schedule())?,
            next_run: calendar.after(now).next(),
            chain_limit: chain_limit(&config.full_policy()),
        })
    }
}

/// How old a VM's newest point is, against its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Before the next scheduled run (or no older than the longest gap between two).
    Fresh,
    /// Past it, but within the alert rules' grace ([`GRACE`]): a run may still be under way.
    Late,
    /// Past it and the grace (the alert rule fires), or no point at all.
    Overdue,
    /// The schedule has too few runs to say.
    Unknown,
}

impl Freshness {
    /// The freshness of a point taken at `taken` (none: no point), for a schedule whose
    /// longest gap is `gap`.
    pub fn of(taken: Option<DateTime<Utc>>, gap: Option<TimeDelta>, now: DateTime<Utc>) -> Self {
        let Some(taken) = taken else {
            return Self::Overdue;
        };
        let Some(gap) = gap else {
            return Self::Unknown;
        };
        let age = now - taken;
        if age <= gap {
            Self::Fresh
        } else if age <= gap + GRACE {
            Self::Late
        } else {
            Self::Overdue
        }
    }

    /// The freshness of a VM's newest point as the overdue alert judges it: against the first
    /// scheduled start after the last success ([`VmStatus::next_due`]) when known, else against
    /// the schedule's longest gap `gap`.
    pub fn judged(status: &VmStatus, gap: Option<TimeDelta>, now: DateTime<Utc>) -> Self {
        match (status.last_point_at, status.next_due) {
            (Some(_), Some(due)) => Self::by_due(due, now),
            (taken, _) => Self::of(taken, gap, now),
        }
    }

    /// On time until the next scheduled run `due`, late while that run may still be under
    /// way (the grace), overdue past it.
    pub fn by_due(due: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        if now <= due {
            Self::Fresh
        } else if now <= due + GRACE {
            Self::Late
        } else {
            Self::Overdue
        }
    }

    /// The word the page shows beside the colour.
    fn label(self, has_point: bool) -> &'static str {
        match (self, has_point) {
            (_, false) => "no backup",
            (Self::Fresh, _) => "on time",
            (Self::Late, _) => "late",
            (Self::Overdue, _) => "overdue",
            (Self::Unknown, _) => "no schedule",
        }
    }
}

/// The page for `vms` as of `now`: one HTML document, ending with a newline.
pub fn html(vms: &[PageVm], now: DateTime<Utc>) -> String {
    let rows: Vec<Row> = vms.iter().map(|vm| row(vm, now)).collect();
    let page = Page {
        generated: local_time(now, Tz::UTC),
        summary: summary(&rows),
        csp: content_security_policy(),
        style: minijinja::Value::from_safe_string(STYLE.to_owned()),
        script: minijinja::Value::from_safe_string(SCRIPT.to_owned()),
        rows,
    };
    environment()
        .get_template("page.html")
        .and_then(|template| template.render(minijinja::value::Serde(&page)))
        .expect("the page template renders (tested)")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Every value is HTML-escaped, whatever the template's name: VM names and errors are text.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid");
    env.set_syntax(syntax);
    env.add_template("page.html", TEMPLATE)
        .expect("the embedded template parses (tested)");
    env
}

/// Nothing from anywhere (no network, no file, no frame, no form), except the inline style and
/// script, each by its hash.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
}

/// `sha256-BASE64`: a CSP source matching an inline element whose content is `text`.
pub fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
    format!("sha256-{encoded}")
}

/// What the template reads.
#[derive(Serialize)]
struct Page {
    generated: String,
    summary: String,
    csp: String,
    style: minijinja::Value,
    script: minijinja::Value,
    rows: Vec<Row>,
}

/// A VM's row, every cell's text made here; `*_sort` are the keys the sort script reads.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    method: Option<String>,
    freshness: Freshness,
    freshness_label: &'static str,
    age: Option<String>,
    age_sort: i64,
    point: Option<String>,
    kind: Option<String>,
    expected: Option<String>,
    next_run: Option<String>,
    next_in: Option<String>,
    next_sort: i64,
    chain: usize,
    chain_limit: u32,
    points: String,
    size: String,
    size_bytes: u64,
    timeline: timeline::Timeline,
    success: Option<String>,
    success_sort: f64,
    restore: RestoreCell,
    failing: bool,
    problems: Vec<String>,
}

/// Sort key of a missing time: after every real one.
const NEVER: i64 = i64::MAX / 1024;

fn row(vm: &PageVm, now: DateTime<Utc>) -> Row {
    let status = &vm.status;
    let facts = &vm.schedule;
    let freshness = Freshness::judged(status, facts.longest_gap, now);
    let next = facts.next_run.map(|at| at.with_timezone(&Utc));
    Row {
        name: status.vm.clone(),
        method: status.last_method.clone(),
        freshness,
        freshness_label: freshness.label(status.last_point.is_some()),
        age: status.last_point_at.map(|at| age(at, now)),
        age_sort: status
            .last_point_at
            .map_or(NEVER, |at| (now - at).num_seconds()),
        point: status.last_point.clone(),
        kind: status.last_kind.clone(),
        expected: expected(status, facts),
        next_run: next.map(|at| local_time(at, facts.zone)),
        next_in: next.map(|at| format!("in {}", human_duration(at - now))),
        next_sort: next.map_or(NEVER, |at| (at - now).num_seconds()),
        chain: status.chain_length,
        chain_limit: facts.chain_limit,
        points: points(status),
        size: human_bytes(status.bytes_on_disk),
        size_bytes: status.bytes_on_disk,
        timeline: timeline::timeline(&status.history.recent_runs, now, facts.zone),
        success: success(status),
        success_sort: status.history.success_rate.unwrap_or(-1.0),
        restore: restore_cell(vm.restores.as_deref(), now),
        failing: status.failing_error().is_some(),
        problems: problems(status, facts),
    }
}

/// `4 points, 1 full` (`1 point, 1 full`, `no points`).
fn points(status: &VmStatus) -> String {
    match status.points {
        0 => "no points".into(),
        1 => format!("1 point, {} full", status.fulls),
        n => format!("{n} points, {} full", status.fulls),
    }
}

/// What the colour is judged against: `next run due 2026-12-01 02:00 UTC; overdue 2h after`,
/// or without a success to count from, `runs at most 1d apart; overdue after 1d 2h`.
fn expected(status: &VmStatus, facts: &ScheduleFacts) -> Option<String> {
    if let (Some(_), Some(due)) = (status.last_point_at, status.next_due) {
        return Some(format!(
            "next run due {}; overdue {} after",
            local_time(due, facts.zone),
            human_duration(GRACE)
        ));
    }
    let gap = facts.longest_gap?;
    Some(format!(
        "runs at most {} apart; overdue after {}",
        human_duration(gap),
        human_duration(gap + GRACE)
    ))
}

/// `9 of 10 ok (90%)`.
fn success(status: &VmStatus) -> Option<String> {
    let history = &status.history;
    let rate = history.success_rate?;
    Some(format!(
        "{} of {} ok ({:.0}%)",
        history.runs_succeeded,
        history.runs_counted,
        rate * 100.0
    ))
}

/// How long an error may be on the page.
const ERROR_WIDTH: usize = 160;

/// What is wrong with the VM, worst first: its last run failed, the last verify found damage,
/// the chain is longer than the policy allows.
fn problems(status: &VmStatus, facts: &ScheduleFacts) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(error) = status.failing_error() {
        problems.push(format!("last run failed: {}", shorten(error, ERROR_WIDTH)));
    } else if status.last_point.is_none() {
        problems.push("no backup yet".into());
    }
    if status.last_verify_failed == Some(true) {
        problems.push("the last verify found damage: run `ovrun verify`".into());
    }
    if status.chain_length > facts.chain_limit as usize {
        problems.push(format!(
            "chain of {} points, longer than the {} the policy allows",
            status.chain_length, facts.chain_limit
        ));
    }
    problems
}

/// The restore column.
#[derive(Debug, Serialize)]
struct RestoreCell {
    /// `off` (not restored into DR), `none` (none yet), `ok`, `failed`.
    state: &'static str,
    text: String,
    details: Vec<String>,
}

fn restore_cell(log: Option<&[LogEntry]>, now: DateTime<Utc>) -> RestoreCell {
    let cell = |state, text: &str, details| RestoreCell {
        state,
        text: text.to_owned(),
        details,
    };
    let Some(log) = log else {
        return cell("off", "no DR restore", Vec::new());
    };
    let Some(last) = log.last() else {
        return cell("none", "no restore yet", Vec::new());
    };
    let ok = log.iter().filter(|e| e.result == Verdict::Ok).count();
    let mut details = vec![
        format!("point {} as {}", last.point, last.restored_as),
        format!("{ok} of {} restores ok", log.len()),
    ];
    if let Some(error) = &last.error {
        details.insert(0, shorten(error, ERROR_WIDTH));
    }
    let (state, verdict) = match last.result {
        Verdict::Ok => ("ok", "ok"),
        Verdict::Failed => ("failed", "failed"),
    };
    cell(
        state,
        &format!("{verdict} {}", age(last.started, now)),
        details,
    )
}

/// `7 VMs: 3 on time, 1 late, 3 overdue; 2 failing`.
fn summary(rows: &[Row]) -> String {
    let count = |f: Freshness| rows.iter().filter(|r| r.freshness == f).count();
    let mut parts = vec![format!("{} on time", count(Freshness::Fresh))];
    for (freshness, word) in [
        (Freshness::Late, "late"),
        (Freshness::Overdue, "overdue or without backup"),
        (Freshness::Unknown, "without a schedule to judge by"),
    ] {
        let n = count(freshness);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let failing = rows.iter().filter(|r| r.failing).count();
    let vms = if rows.len() == 1 { "VM" } else { "VMs" };
    format!(
        "{} {vms}: {}; {failing} with a failed last run",
        rows.len(),
        parts.join(", ")
    )
}

/// `2026-12-01 03:00 CET`: an instant in a zone, to the minute, with the zone's abbreviation.
fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_point_is_late_past_its_gap_and_overdue_past_the_grace() {
        let now = at("2026-12-02T02:00:00Z");
        let day = Some(TimeDelta::days(1));
        let taken = |text| Freshness::of(Some(at(text)), day, now);
        assert_eq!(taken("2026-12-01T02:00:00Z"), Freshness::Fresh);
        assert_eq!(taken("2026-12-01T01:59:00Z"), Freshness::Late);
        assert_eq!(taken("2026-12-01T00:00:00Z"), Freshness::Late);
        assert_eq!(taken("2026-11-30T23:59:00Z"), Freshness::Overdue);
        assert_eq!(Freshness::of(None, day, now), Freshness::Overdue);
        assert_eq!(
            Freshness::of(Some(now), None, now),
            Freshness::Unknown,
            "a schedule with one run has no gap"
        );
    }

    #[test]
    fn a_point_is_late_once_its_next_run_is_due_and_overdue_past_the_grace() {
        // A monthly-last-day VM: after January 31 the next run is February 28.
        let due = at("2027-02-28T02:00:00Z");
        let judged = |text| Freshness::by_due(due, at(text));
        assert_eq!(judged("2027-02-27T02:00:00Z"), Freshness::Fresh);
        assert_eq!(judged("2027-02-28T02:00:00Z"), Freshness::Fresh);
        assert_eq!(judged("2027-02-28T02:01:00Z"), Freshness::Late);
        assert_eq!(judged("2027-02-28T04:00:00Z"), Freshness::Late);
        assert_eq!(judged("2027-02-28T04:01:00Z"), Freshness::Overdue);
    }

    #[test]
    fn the_policy_allows_only_the_inline_style_and_script() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        // The hash of the empty string, as every CSP implementation computes it.
        assert_eq!(
            csp_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains(&csp_hash(STYLE)));
    }
}
