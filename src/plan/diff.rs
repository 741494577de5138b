//! `ovplan diff`: what a policy change does, VM by VM, for code review: schedule, the next runs
//! before and after, their kinds, backup method, retention, backup host and restore (for
//! `auto_restore` VMs, also how their DR copy is built: network map, MAC policy, CPU and
//! memory), and, given the points a backup catalog holds, what a retention change would delete
//! from it. The engines' limits of concurrent jobs are policy-wide settings.
//!
//! [`review`] computes all of it as data, a [`Review`]; three renderings show it: [`text`] (the
//! default, for a terminal), [`super::diff_markdown`] (a merge request's comment or a job
//! summary) and JSON (the serde form of [`Review`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Value, json};

use super::full::predict;
use super::model::{CpuOverride, Policy, RestoreSettings, VmPolicy};
use super::normalize::{schedule_json, to_json};
use super::retention::{self, Point};
use super::runner::Retention;
use super::schedule::Calendar;

/// How many next runs the diff shows on each side.
pub const RUNS: usize = 5;

/// The facts whose change is a change of how a VM is restored (the summary's "restore").
const RESTORE_FACTS: [&str; 5] = [
    "auto_restore",
    "network_map",
    "mac_policy",
    "cpu",
    "memory_mib",
];

/// One side of a change: a policy and the name its file is shown by.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    /// `variables.json`, `origin/main:variables.json`...
    pub name: &'a str,
    /// The policy.
    pub policy: &'a Policy,
}

/// A point a backup catalog holds, as its manifest says: what retention plans with, and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPoint {
    /// The point's id (`20261129T020000Z`).
    pub point: String,
    /// `full` or `incremental`.
    pub kind: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The point it builds on (retention keeps a kept point's chain).
    #[serde(skip)]
    pub parent: Option<String>,
}

/// The points of a catalog, by VM name (a VM without a folder has none).
pub type Catalog = BTreeMap<String, Vec<StoredPoint>>;

/// What a policy change does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    /// The policy before, by name.
    pub old: String,
    /// The policy after, by name.
    pub new: String,
    /// Runs are counted after this instant, and retention is applied at it.
    pub from: DateTime<Utc>,
    /// Whether a catalog's points were read (for [`VmChange::retention_cut`]).
    pub catalog: bool,
    /// The counts of what changed.
    pub summary: Summary,
    /// The policy-wide settings that changed.
    pub settings: Vec<SettingChange>,
    /// The VMs that changed, were added or removed, by name.
    pub vms: Vec<VmChange>,
}

impl Review {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.vms.is_empty()
    }
}

/// The counts of a review's one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// VMs only the new policy lists.
    pub added: usize,
    /// VMs only the old policy lists.
    pub removed: usize,
    /// VMs both list, changed.
    pub changed: usize,
    /// Changed VMs whose schedule changed.
    pub schedules: usize,
    /// Changed VMs whose retention changed.
    pub retention: usize,
    /// Changed VMs whose restore changed (`auto_restore` or how the DR copy is built).
    pub restore: usize,
}

/// A policy-wide setting that changed (`backup_settings`, `restore_settings`...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingChange {
    /// The top-level key.
    pub key: String,
    /// Its value before (`None`: absent).
    pub before: Option<Value>,
    /// Its value after.
    pub after: Option<Value>,
}

/// Whether a VM is new, gone or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Only the new policy lists it.
    Added,
    /// Only the old policy lists it.
    Removed,
    /// Both list it, differently.
    Changed,
}

impl Status {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
        }
    }
}

/// What changed for one VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmChange {
    /// The VM's name.
    pub name: String,
    /// Added, removed or changed.
    pub status: Status,
    /// The facts that differ, in the order the diff shows them.
    pub facts: Vec<FactChange>,
    /// The next runs under the old policy (none when absent or disabled there).
    pub runs_before: Vec<Run>,
    /// The next runs under the new policy.
    pub runs_after: Vec<Run>,
    /// With a catalog: its points that the new retention deletes and the old one keeps, newest
    /// first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_cut: Option<Vec<StoredPoint>>,
}

impl VmChange {
    /// Whether the fact `name` changed.
    pub fn changed(&self, name: &str) -> bool {
        self.facts.iter().any(|f| f.fact == name)
    }
}

/// A fact of a VM that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactChange {
    /// `schedule`, `retention`...
    pub fact: &'static str,
    /// Its value before (`None`: the VM or the fact was absent).
    pub before: Option<String>,
    /// Its value after.
    pub after: Option<String>,
}

/// One predicted run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// RFC 3339, in the schedule's zone.
    pub at: String,
    /// `full` or `incremental`.
    pub kind: &'static str,
}

/// What changed between `old` and `new`, runs counted after `from` (schedules without a zone in
/// `host`'s), and with `catalog` what retention would delete.
pub fn review(
    old: Version<'_>,
    new: Version<'_>,
    from: DateTime<Utc>,
    host: Tz,
    catalog: Option<&Catalog>,
) -> Review {
    let vms: Vec<VmChange> = names(old.policy, new.policy)
        .into_iter()
        .filter_map(|name| vm_change(old.policy, new.policy, &name, (from, host), catalog))
        .collect();
    Review {
        old: old.name.to_owned(),
        new: new.name.to_owned(),
        from,
        catalog: catalog.is_some(),
        summary: summary(&vms),
        settings: settings(old.policy, new.policy),
        vms,
    }
}

fn summary(vms: &[VmChange]) -> Summary {
    let count = |status| vms.iter().filter(|vm| vm.status == status).count();
    let changed: Vec<&VmChange> = vms
        .iter()
        .filter(|vm| vm.status == Status::Changed)
        .collect();
    let with = |test: &dyn Fn(&VmChange) -> bool| changed.iter().filter(|vm| test(vm)).count();
    Summary {
        added: count(Status::Added),
        removed: count(Status::Removed),
        changed: changed.len(),
        schedules: with(&|vm| vm.changed("schedule")),
        retention: with(&|vm| vm.changed("retention")),
        restore: with(&|vm| RESTORE_FACTS.iter().any(|f| vm.changed(f))),
    }
}

fn names(old: &Policy, new: &Policy) -> Vec<String> {
    let names: BTreeSet<&String> = old.vms.iter().chain(&new.vms).map(|vm| &vm.name).collect();
    names.into_iter().cloned().collect()
}

fn find<'p>(policy: &'p Policy, name: &str) -> Option<&'p VmPolicy> {
    policy.vms.iter().find(|vm| vm.name == name)
}

/// A VM's facts and next runs in one policy.
type Side = (Facts, Vec<Run>);

fn side(policy: &Policy, vm: &VmPolicy, (from, host): (DateTime<Utc>, Tz)) -> Side {
    (facts(vm, &policy.restore), runs(vm, from, host))
}

/// The VM's change, or `None` when both policies say the same of it.
fn vm_change(
    old: &Policy,
    new: &Policy,
    name: &str,
    when: (DateTime<Utc>, Tz),
    catalog: Option<&Catalog>,
) -> Option<VmChange> {
    let (before_vm, after_vm) = (find(old, name), find(new, name));
    let before = before_vm.map(|vm| side(old, vm, when));
    let after = after_vm.map(|vm| side(new, vm, when));
    if before == after {
        return None;
    }
    let status = match (&before, &after) {
        (None, Some(_)) => Status::Added,
        (Some(_), None) => Status::Removed,
        _ => Status::Changed,
    };
    let (old_facts, runs_before) = before.unwrap_or_default();
    let (new_facts, runs_after) = after.unwrap_or_default();
    let cut = |points: &Catalog| retention_cut(points, name, [before_vm, after_vm], when);
    Some(VmChange {
        name: name.to_owned(),
        status,
        facts: fact_changes(&old_facts, &new_facts),
        runs_before,
        runs_after,
        retention_cut: catalog.map(cut),
    })
}

/// The catalog's points of `name` that the new retention deletes and the old one keeps.
fn retention_cut(
    catalog: &Catalog,
    name: &str,
    [before, after]: [Option<&VmPolicy>; 2],
    (from, host): (DateTime<Utc>, Tz),
) -> Vec<StoredPoint> {
    let stored = catalog.get(name).map_or(&[][..], Vec::as_slice);
    let points: Vec<Point> = stored
        .iter()
        .map(|s| Point {
            id: s.point.clone(),
            taken_at: s.taken_at,
            parent: s.parent.clone(),
        })
        .collect();
    let [old_side, new_side] = [before, after].map(|vm| pruning(vm, host));
    let ids = retention::newly_deleted(&points, old_side, new_side, from);
    let ids: HashSet<&String> = ids.iter().collect();
    let mut cut: Vec<StoredPoint> = stored
        .iter()
        .filter(|s| ids.contains(&s.point))
        .cloned()
        .collect();
    cut.sort_by(|a, b| {
        b.taken_at
            .cmp(&a.taken_at)
            .then_with(|| a.point.cmp(&b.point))
    });
    cut
}

/// How a VM of one policy is pruned, its retention and zone; `None` when it is not (absent or
/// disabled: it has no runner config).
fn pruning(vm: Option<&VmPolicy>, host: Tz) -> retention::Side {
    let vm = vm.filter(|vm| vm.enabled)?;
    Some((Retention::from_keep(&vm.keep), zone(vm, host)))
}

/// Every fact that changed, appeared or went: the new facts in order, then those only the old
/// VM had.
fn fact_changes(old_facts: &Facts, new_facts: &Facts) -> Vec<FactChange> {
    let value = |facts: &Facts, label: &str| {
        facts
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.clone())
    };
    let mut changes: Vec<FactChange> = new_facts
        .iter()
        .filter(|(label, v)| value(old_facts, label).as_ref() != Some(v))
        .map(|(label, v)| FactChange {
            fact: label,
            before: value(old_facts, label),
            after: Some(v.clone()),
        })
        .collect();
    changes.extend(
        old_facts
            .iter()
            .filter(|(label, _)| value(new_facts, label).is_none())
            .map(|(label, v)| FactChange {
                fact: label,
                before: Some(v.clone()),
                after: None,
            }),
    );
    changes
}

fn settings(old: &Policy, new: &Policy) -> Vec<SettingChange> {
    let (mut a, mut b) = (to_json(old), to_json(new));
    for doc in [&mut a, &mut b] {
        if let Some(root) = doc.as_object_mut() {
            root.remove("vms_config");
        }
    }
    keys(&a, &b)
        .into_iter()
        .filter(|k| a.get(k) != b.get(k))
        .map(|key| SettingChange {
            before: a.get(&key).cloned(),
            after: b.get(&key).cloned(),
            key,
        })
        .collect()
}

fn keys(a: &Value, b: &Value) -> Vec<String> {
    let mut keys: Vec<String> = [a, b]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The review as the terminal shows it (`ovplan diff`'s default); `None` when nothing changed.
pub fn text(review: &Review) -> Option<String> {
    let mut out = String::new();
    if !review.settings.is_empty() {
        let _ = writeln!(out, "policy-wide settings:");
        for change in &review.settings {
            let [before, after] = [&change.before, &change.after].map(|v| shown(v.as_ref()));
            let _ = writeln!(out, "  {}: {before} -> {after}", change.key);
        }
        out.push('\n');
    }
    for vm in &review.vms {
        vm_text(&mut out, vm);
    }
    (!out.is_empty()).then_some(out)
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

fn vm_text(out: &mut String, vm: &VmChange) {
    let _ = writeln!(out, "VM {}: {}", vm.name, vm.status.as_str());
    for fact in &vm.facts {
        let [before, after] =
            [&fact.before, &fact.after].map(|v| v.as_deref().unwrap_or("(absent)"));
        let _ = writeln!(out, "  {}: {before} -> {after}", fact.fact);
    }
    if vm.runs_before != vm.runs_after {
        let _ = writeln!(out, "  next runs before: {}", runs_text(&vm.runs_before));
        let _ = writeln!(out, "  next runs after:  {}", runs_text(&vm.runs_after));
    }
    let cut = vm.retention_cut.as_deref().unwrap_or_default();
    if !cut.is_empty() {
        let _ = writeln!(out, "  the new retention deletes what the old one keeps:");
        for point in cut {
            let _ = writeln!(
                out,
                "    {} {} {}",
                point.point,
                point.kind,
                point.taken_at.to_rfc3339()
            );
        }
    }
    out.push('\n');
}

fn runs_text(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "(none)".to_owned();
    }
    let shown: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.at, r.kind))
        .collect();
    shown.join(", ")
}

/// A VM's facts as `(label, value)`, in the order the diff shows them.
type Facts = Vec<(&'static str, String)>;

fn facts(vm: &VmPolicy, restore: &RestoreSettings) -> Facts {
    let mut facts = vec![
        ("enabled", vm.enabled.to_string()),
        ("schedule", schedule_json(&vm.schedule).to_string()),
        (
            "full backups",
            format!(
                "{} from {:?}, incremental {}",
                vm.full.frequency.as_str(),
                vm.full.day,
                vm.full.incremental_enabled
            ),
        ),
        ("backup_method", vm.backup_method.as_str().to_owned()),
        (
            "retention",
            format!(
                "daily {} weekly {} monthly {} max age {} days",
                vm.keep.daily, vm.keep.weekly, vm.keep.monthly, vm.keep.max_age_days
            ),
        ),
        ("auto_restore", vm.auto_restore.to_string()),
        ("backup_host", vm.backup_host.clone()),
    ];
    if vm.auto_restore {
        facts.extend(dr_vm_facts(restore));
    }
    facts
}

/// How an `auto_restore` VM's DR copy is built (issue 16): a change of these in
/// `restore_settings` is a change of every VM restored automatically.
fn dr_vm_facts(restore: &RestoreSettings) -> Facts {
    let recorded = || "as recorded".to_owned();
    vec![
        ("network_map", json!(restore.network_map).to_string()),
        ("mac_policy", restore.mac_policy.as_str().to_owned()),
        ("cpu", restore.cpu.as_ref().map_or_else(recorded, cpu_text)),
        (
            "memory_mib",
            restore.memory_mib.map_or_else(recorded, |m| m.to_string()),
        ),
    ]
}

/// The counts a CPU override sets (`sockets 2, cores 4`); the others stay as recorded.
fn cpu_text(cpu: &CpuOverride) -> String {
    let set: Vec<String> = cpu
        .counts()
        .iter()
        .filter_map(|(key, n)| n.map(|n| format!("{key} {n}")))
        .collect();
    set.join(", ")
}

/// The next [`RUNS`] runs with their kinds, as `ovplan next` prints them (none for a disabled
/// VM).
fn runs(vm: &VmPolicy, from: DateTime<Utc>, host: Tz) -> Vec<Run> {
    next(vm, from, host, RUNS)
        .into_iter()
        .map(|(at, kind)| Run { at, kind })
        .collect()
}

/// The zone a VM's schedule and retention days are counted in: its own, else the host's (as
/// `ovrun` does).
fn zone(vm: &VmPolicy, host: Tz) -> Tz {
    vm.schedule
        .timezone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(host)
}

/// The next `count` runs of a VM after `from`: RFC 3339 instants with offset, and their kinds.
pub fn next(
    vm: &VmPolicy,
    from: DateTime<Utc>,
    host: Tz,
    count: usize,
) -> Vec<(String, &'static str)> {
    if !vm.enabled {
        return Vec::new();
    }
    let zone = zone(vm, host);
    let Ok(calendar) = Calendar::new(&vm.schedule, zone) else {
        return Vec::new();
    };
    let instants: Vec<DateTime<Tz>> = calendar.after(from).take(count).collect();
    let utc: Vec<DateTime<Utc>> = instants.iter().map(|t| t.with_timezone(&Utc)).collect();
    let kinds = predict(&vm.full, zone, &utc);
    instants
        .iter()
        .zip(kinds)
        .map(|(t, k)| (t.to_rfc3339(), k.as_str()))
        .collect()
}
