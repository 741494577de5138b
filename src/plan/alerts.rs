//! The bundle's Prometheus alert rules (`prometheus/ovbackup.rules.yml`), built as data and
//! written by a YAML serializer, as the compose file is: a VM's name cannot change the file's
//! structure.
//!
//! Per VM, in a group of its own: the backup is overdue (the first scheduled start after the
//! last success, which `ovrun status` writes, missed by more than [`GRACE`]; as a backstop, no
//! success for longer than the VM's longest gap between two consecutive scheduled runs plus
//! [`GRACE`]), its last run failed, its
//! newest automatic restore failed (`auto_restore` VMs), `ovrun verify` found damage, its chain
//! is longer than the policy allows. Per bundle: an engine's CA expires within
//! [`CA_WARN_DAYS`] days, and the backup host's metrics file is stale (older than
//! [`METRICS_STALE`]: node_exporter's `node_textfile_mtime_seconds`).
//!
//! The metrics are those `ovrun status --metrics FILE` writes (FILE named `ovbackup.prom` in
//! node_exporter's textfile folder). A VM's rules carry its policy's `backup_host` (the Airflow
//! target's queue); the bundle-wide rules, the scrape's `instance`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::cron::CronProblem;
use super::model::{FullPolicy, Policy, Schedule, VmPolicy};
use super::schedule::Calendar;

/// How long past its longest scheduled gap a VM's backup may be before it is overdue: the
/// time a run may take, and a retry.
pub const GRACE: TimeDelta = TimeDelta::hours(2);

/// Added to the gap of a schedule in the host's zone (none named): the bundle does not know
/// that zone, and a daylight saving change moves a local time by at most an hour.
pub const HOST_ZONE_ALLOWANCE: TimeDelta = TimeDelta::hours(1);

/// How old the metrics file may be before the host counts as silent; `ovrun status --metrics`
/// is expected to run at least every 15 minutes.
pub const METRICS_STALE: TimeDelta = TimeDelta::hours(1);

/// The textfile's name in node_exporter's textfile folder, which the staleness rule matches
/// and the bundle's status timer writes.
pub const METRICS_FILE: &str = "ovbackup.prom";

/// An engine's CA is announced this many days before it expires.
pub const CA_WARN_DAYS: i64 = 30;

/// How long a schedule is evaluated for its longest gap: a year (every DST change, every
/// month's length) from a fixed instant, so the bundle is the same on every day it is built.
const HORIZON: TimeDelta = TimeDelta::days(366);

/// The rules file.
#[derive(Debug, Serialize)]
pub(crate) struct RuleFile {
    groups: Vec<Group>,
}

/// A group of rules, evaluated together.
#[derive(Debug, Serialize)]
struct Group {
    name: String,
    rules: Vec<AlertRule>,
}

/// One alerting rule.
#[derive(Debug, Serialize)]
struct AlertRule {
    alert: &'static str,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    hold: Option<&'static str>,
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, String>,
}

/// The longest time between two consecutive runs of a schedule, over a year of runs from a
/// fixed instant (the first run after that year included); `None` when it has fewer than two
/// runs in the eight years a calendar looks ahead. A schedule without a zone is evaluated in
/// UTC and given [`HOST_ZONE_ALLOWANCE`].
///
/// # Errors
/// A cron expression that does not parse (validation refuses those first).
pub fn longest_gap(schedule: &Schedule) -> Result<Option<TimeDelta>, CronProblem> {
    let zone: Option<Tz> = schedule.timezone.as_deref().and_then(|z| z.parse().ok());
    let calendar = Calendar::new(schedule, zone.unwrap_or(Tz::UTC))?;
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single();
    let start: DateTime<Utc> = start.expect("a valid instant");
    let mut runs = calendar.after(start).map(|t| t.with_timezone(&Utc));
    let mut previous = runs.next();
    let mut longest: Option<TimeDelta> = None;
    for run in runs {
        let gap = run - previous.unwrap_or(run);
        longest = Some(longest.map_or(gap, |l| l.max(gap)));
        previous = Some(run);
        if run > start + HORIZON {
            break;
        }
    }
    let allowance = if zone.is_some() {
        TimeDelta::zero()
    } else {
        HOST_ZONE_ALLOWANCE
    };
    Ok(longest.map(|gap| gap + allowance))
}

/// How long after its last success a VM's backup is overdue: its longest gap plus [`GRACE`].
///
/// # Errors
/// As [`longest_gap`].
pub fn overdue_after(schedule: &Schedule) -> Result<Option<TimeDelta>, CronProblem> {
    Ok(longest_gap(schedule)?.map(|gap| gap + GRACE))
}

/// `1d 2h 30m`: a duration for people (whole minutes).
pub fn human_duration(delta: TimeDelta) -> String {
    let minutes = delta.num_minutes();
    let parts = [
        (minutes / 1440, "d"),
        (minutes / 60 % 24, "h"),
        (minutes % 60, "m"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0m".into()
    } else {
        text.join(" ")
    }
}

/// A string as a PromQL double-quoted string literal.
fn promql_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Text that Prometheus's alert templating (labels and annotations) prints as it is: `{{`
/// would start an action.
fn template_text(text: &str) -> String {
    text.replace("{{", "{{ \"{{\" }}")
}

/// The engine a URL names, as its host (and port), for the `engine` label.
pub fn engine_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The labels every alert of the policy has: severity, engine and backup host.
fn labels(severity: &str, engine: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("severity", severity.to_owned()),
        ("engine", engine.to_owned()),
        ("backup_host", "{{ $labels.instance }}".to_owned()),
    ])
}

/// A rule's annotations: what is wrong, and what to do.
fn annotations(summary: String, action: String) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("summary", summary), ("description", action)])
}

/// One VM's rules.
struct VmRules {
    engine: String,
    selector: String,
    name: String,
    /// The policy's `backup_host` of the VM (its charset needs no escaping).
    backup_host: String,
}

impl VmRules {
    fn rule(&self, alert: &'static str, expr: String, severity: &str) -> AlertRule {
        let mut labels = labels(severity, &self.engine);
        labels.insert("vm", self.name.clone());
        labels.insert("backup_host", self.backup_host.clone());
        AlertRule {
            alert,
            expr,
            hold: None,
            labels,
            annotations: BTreeMap::new(),
        }
    }

    /// Overdue once the first scheduled start after the last success (ovrun computes it from
    /// the schedule) is missed by more than the grace; the longest gap is the backstop for an
    /// `ovrun` that writes no `next_due` sample.
    fn overdue(&self, after: TimeDelta) -> AlertRule {
        let expr = format!(
            "time() - ovbackup_next_due_timestamp_seconds{selector} > {grace} or time() - ovbackup_last_success_timestamp_seconds{selector} > {after}",
            selector = self.selector,
            grace = GRACE.num_seconds(),
            after = after.num_seconds()
        );
        let mut rule = self.rule("OvbackupOverdue", expr, "critical");
        rule.annotations = annotations(
            format!(
                "VM {} missed a scheduled backup by more than {} (no success since the run before it; never more than {} without one)",
                self.name,
                human_duration(GRACE),
                human_duration(after)
            ),
            format!(
                "Its scheduled runs did not happen or did not succeed. On {{{{ $labels.instance }}}}: `systemctl list-timers 'ovrun-backup-*'` (or the cron log), `ovrun status --config RUNNER.json` and the backup unit's journal; run `ovrun backup --config RUNNER.json` by hand once the cause is fixed. VM {}.",
                self.name
            ),
        );
        rule
    }

    fn failed(&self) -> AlertRule {
        let expr = format!("ovbackup_last_run_failed{} == 1", self.selector);
        let mut rule = self.rule("OvbackupLastRunFailed", expr, "warning");
        rule.annotations = annotations(
            format!("The last backup run of VM {} failed (or none ever succeeded)", self.name),
            "`ovrun status --config RUNNER.json` shows the error (FAILING line); the backup unit's journal or the cron log has the whole run. The next scheduled run retries.".into(),
        );
        rule
    }

    fn restore_failed(&self) -> AlertRule {
        let expr = format!("ovbackup_last_restore_failed{} == 1", self.selector);
        let mut rule = self.rule("OvbackupRestoreFailed", expr, "warning");
        rule.annotations = annotations(
            format!("The newest automatic restore of VM {} into DR failed", self.name),
            "Read the VM's restore log (restore_log_directory/VM.jsonl) and the restore unit's journal; DR was put back as it was. `ovrun restore --config RUNNER.json --dry-run` shows what a restore would do; run it without --dry-run once fixed.".into(),
        );
        rule
    }

    fn damaged(&self) -> AlertRule {
        let expr = format!("ovbackup_verify_problems{} > 0", self.selector);
        let mut rule = self.rule("OvbackupVerifyDamage", expr, "critical");
        rule.annotations = annotations(
            format!("`ovrun verify` found {{{{ $value }}}} problem(s) in the backups of VM {}", self.name),
            "Run `ovrun verify --config RUNNER.json` to list the damage; points that depend on a damaged file cannot be restored: take a full backup (`ovrun backup --config RUNNER.json --full`) and check the storage.".into(),
        );
        rule
    }

    fn long_chain(&self, limit: u32) -> AlertRule {
        let expr = format!("ovbackup_chain_length{} > {limit}", self.selector);
        let mut rule = self.rule("OvbackupChainTooLong", expr, "warning");
        rule.annotations = annotations(
            format!("The newest chain of VM {} has {{{{ $value }}}} points; the policy allows {limit}", self.name),
            "The policy forces a full backup before this length: fulls are failing or the bundle is older than the policy. Rebuild and install the bundle, and check the last runs (`ovrun status`).".into(),
        );
        rule
    }
}

/// The longest chain (points, its full included) a VM's full-or-incremental policy allows.
pub fn chain_limit(full: &FullPolicy) -> u32 {
    if full.incremental_enabled {
        full.max_chain_length.saturating_add(1)
    } else {
        1
    }
}

/// One VM's group of rules.
fn vm_group(vm: &VmPolicy, engine: &str) -> Result<Group, CronProblem> {
    let rules = VmRules {
        engine: engine.to_owned(),
        selector: format!("{{vm={}}}", promql_string(&vm.name)),
        name: template_text(&vm.name),
        backup_host: vm.backup_host.clone(),
    };
    let mut list = Vec::new();
    if let Some(after) = overdue_after(&vm.schedule)? {
        list.push(rules.overdue(after));
    }
    list.push(rules.failed());
    if vm.auto_restore {
        list.push(rules.restore_failed());
    }
    list.push(rules.damaged());
    list.push(rules.long_chain(chain_limit(&vm.full)));
    Ok(Group {
        name: format!("ovbackup vm {}", vm.name),
        rules: list,
    })
}

/// The rules of the bundle as a whole: each engine's CA, and the metrics file.
fn host_group(policy: &Policy) -> Group {
    let engines = std::iter::once(("source", &policy.source))
        .chain(policy.target.iter().map(|t| ("target", t)));
    let mut rules: Vec<AlertRule> = engines
        .filter(|(_, engine)| engine.cert_path.is_some())
        .map(|(side, engine)| ca_rule(side, &engine_name(&engine.url)))
        .collect();
    rules.push(stale_rule(&engine_name(&policy.source.url)));
    Group {
        name: "ovbackup host".into(),
        rules,
    }
}

fn ca_rule(side: &str, engine: &str) -> AlertRule {
    let seconds = TimeDelta::days(CA_WARN_DAYS).num_seconds();
    let expr = format!(
        "ovbackup_ca_not_after_timestamp_seconds{{side={}}} - time() < {seconds}",
        promql_string(side)
    );
    let mut labels = labels("warning", &template_text(engine));
    labels.insert("side", side.to_owned());
    AlertRule {
        alert: "OvbackupCaExpiresSoon",
        expr,
        hold: None,
        labels,
        annotations: annotations(
            format!("The CA of the {side} engine {} expires within {CA_WARN_DAYS} days ({{{{ $labels.ca_file }}}})", template_text(engine)),
            "Once the engine's CA is renewed, fetch it again on the backup host (`ovrun cert fetch --config RUNNER.json`) and check it (`ovrun cert show`); until then TLS to the engine fails when it expires.".into(),
        ),
    }
}

fn stale_rule(engine: &str) -> AlertRule {
    let expr = format!(
        "time() - node_textfile_mtime_seconds{{file=~\"(.*/)?{}\"}} > {}",
        METRICS_FILE.replace('.', "\\\\."),
        METRICS_STALE.num_seconds()
    );
    AlertRule {
        alert: "OvbackupMetricsStale",
        expr,
        hold: None,
        labels: labels("warning", &template_text(engine)),
        annotations: annotations(
            format!("No new backup metrics from {{{{ $labels.instance }}}} for more than {}", human_duration(METRICS_STALE)),
            "`ovrun status --config-dir ... --metrics DIR/ovbackup.prom` has not run: check the ovrun-status.timer (or the cron file's status line), that DIR is node_exporter's --collector.textfile.directory (`ovplan build --metrics-dir`), and the host's disk space.".into(),
        ),
    }
}

/// The rules of a policy's enabled VMs, as data.
///
/// # Errors
/// A cron expression that does not parse (validation refuses those first).
pub(crate) fn rules(
    policy: &Policy,
    enabled: &[&VmPolicy],
) -> Result<RuleFile, (String, CronProblem)> {
    let engine = template_text(&engine_name(&policy.source.url));
    let mut groups: Vec<Group> = enabled
        .iter()
        .map(|vm| vm_group(vm, &engine).map_err(|p| (vm.name.clone(), p)))
        .collect::<Result<_, _>>()?;
    groups.push(host_group(policy));
    Ok(RuleFile { groups })
}

/// The YAML text of a rules file.
pub(crate) fn to_yaml(file: &RuleFile) -> String {
    serde_norway::to_string(file).expect("a rules file of strings and maps serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{MonthDay, Rule};
    use chrono::{NaiveDate, NaiveTime, Weekday};

    fn schedule(rule: Rule, zone: Option<&str>) -> Schedule {
        Schedule {
            rule,
            time: NaiveTime::from_hms_opt(3, 30, 0).unwrap(),
            timezone: zone.map(String::from),
        }
    }

    fn gap_hours(rule: Rule, zone: Option<&str>) -> i64 {
        longest_gap(&schedule(rule, zone))
            .unwrap()
            .unwrap()
            .num_hours()
    }

    #[test]
    fn the_longest_gap_follows_the_schedule() {
        assert_eq!(gap_hours(Rule::Daily, Some("UTC")), 24);
        // The night the clocks go back is 25 hours long.
        assert_eq!(gap_hours(Rule::Daily, Some("Europe/Berlin")), 25);
        // No zone: UTC and an hour for the host's DST.
        assert_eq!(gap_hours(Rule::Daily, None), 25);
        assert_eq!(
            gap_hours(Rule::Weekly(vec![Weekday::Sun]), Some("UTC")),
            168
        );
        let anchor = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap();
        let biweekly = Rule::Biweekly {
            day: Weekday::Mon,
            anchor,
        };
        assert_eq!(gap_hours(biweekly, Some("UTC")), 336);
        assert_eq!(
            gap_hours(Rule::Monthly(MonthDay::Last), Some("UTC")),
            31 * 24
        );
        assert_eq!(gap_hours(Rule::Weekdays, Some("UTC")), 72);
    }

    #[test]
    fn a_schedule_in_a_dst_zone_skips_the_missing_hour() {
        // 02:30 does not exist in Berlin on the last Sunday of March: that day has no run
        // (systemd's rule), so the longest gap is two days less the hour skipped.
        let mut daily = schedule(Rule::Daily, Some("Europe/Berlin"));
        daily.time = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let gap = longest_gap(&daily).unwrap().unwrap();
        assert_eq!(gap.num_hours(), 47);
        daily.rule = Rule::Weekly(vec![Weekday::Sun]);
        let gap = longest_gap(&daily).unwrap().unwrap();
        assert_eq!(gap.num_hours(), 14 * 24 - 1);
    }

    #[test]
    fn durations_and_strings() {
        assert_eq!(human_duration(TimeDelta::hours(26)), "1d 2h");
        assert_eq!(human_duration(TimeDelta::minutes(90)), "1h 30m");
        assert_eq!(promql_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            engine_name("https://engine.example.com/ovirt-engine/api"),
            "engine.example.com"
        );
        assert_eq!(template_text("a{{b"), "a{{ \"{{\" }}b");
    }
}
