//! `ovplan diff`: what a policy change does, VM by VM, for code review: schedule, the next runs
//! before and after, their kinds, backup method, retention and restore (for `auto_restore` VMs,
//! also how their DR copy is built: network map, MAC policy, CPU and memory).

use std::collections::BTreeSet;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::full::predict;
use super::model::{CpuOverride, Policy, RestoreSettings, VmPolicy};
use super::normalize::{schedule_json, to_json};
use super::schedule::Calendar;

/// How many next runs the diff shows on each side.
const RUNS: usize = 5;

/// The report of what changed between two policies; `None` when nothing did.
pub fn diff(old: &Policy, new: &Policy, from: DateTime<Utc>, host: Tz) -> Option<String> {
    let mut out = String::new();
    settings(&mut out, old, new);
    for name in names(old, new) {
        let [before, after] = [old, new].map(|policy| side(policy, &name, from, host));
        vm(&mut out, &name, before, after);
    }
    (!out.is_empty()).then_some(out)
}

/// A VM's facts and next runs in one policy; `None` when it does not list the VM.
fn side(policy: &Policy, name: &str, from: DateTime<Utc>, host: Tz) -> Option<Side> {
    let vm = policy.vms.iter().find(|vm| vm.name == name)?;
    Some((facts(vm, &policy.restore), runs(vm, from, host)))
}

/// A VM's facts and next runs.
type Side = (Facts, Vec<String>);

fn names(old: &Policy, new: &Policy) -> Vec<String> {
    let names: BTreeSet<&String> = old.vms.iter().chain(&new.vms).map(|vm| &vm.name).collect();
    names.into_iter().cloned().collect()
}

fn settings(out: &mut String, old: &Policy, new: &Policy) {
    let (mut a, mut b) = (to_json(old), to_json(new));
    for doc in [&mut a, &mut b] {
        if let Some(root) = doc.as_object_mut() {
            root.remove("vms_config");
        }
    }
    let changed: Vec<String> = keys(&a, &b)
        .into_iter()
        .filter(|k| a.get(k) != b.get(k))
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "policy-wide settings:");
    for key in changed {
        let _ = writeln!(
            out,
            "  {key}: {} -> {}",
            shown(a.get(&key)),
            shown(b.get(&key))
        );
    }
    out.push('\n');
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

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

fn vm(out: &mut String, name: &str, old: Option<Side>, new: Option<Side>) {
    if old == new {
        return;
    }
    let status = match (&old, &new) {
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        _ => "changed",
    };
    let _ = writeln!(out, "VM {name}: {status}");
    let (old_facts, old_runs) = old.unwrap_or_default();
    let (new_facts, new_runs) = new.unwrap_or_default();
    fact_changes(out, &old_facts, &new_facts);
    if old_runs != new_runs {
        let _ = writeln!(out, "  next runs before: {}", runs_text(&old_runs));
        let _ = writeln!(out, "  next runs after:  {}", runs_text(&new_runs));
    }
    out.push('\n');
}

/// One line per fact that changed, appeared or went.
fn fact_changes(out: &mut String, old_facts: &Facts, new_facts: &Facts) {
    for (label, value) in new_facts {
        let previous = old_facts.iter().find(|(l, _)| l == label).map(|(_, v)| v);
        if previous != Some(value) {
            let _ = writeln!(
                out,
                "  {label}: {} -> {value}",
                previous.map_or("(absent)", String::as_str)
            );
        }
    }
    for (label, value) in old_facts {
        if !new_facts.iter().any(|(l, _)| l == label) {
            let _ = writeln!(out, "  {label}: {value} -> (absent)");
        }
    }
}

fn runs_text(runs: &[String]) -> String {
    if runs.is_empty() {
        "(none)".to_owned()
    } else {
        runs.join(", ")
    }
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

/// The next runs with their kinds, as `ovplan next` prints them (empty for a disabled VM).
pub fn runs(vm: &VmPolicy, from: DateTime<Utc>, host: Tz) -> Vec<String> {
    next(vm, from, host, RUNS)
        .into_iter()
        .map(|(at, kind)| format!("{at} {kind}"))
        .collect()
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
    let zone = vm
        .schedule
        .timezone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(host);
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
