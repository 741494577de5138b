//! The Airflow target (`--target airflow`): what goes into `DIR/airflow/`, as data.
//!
//! Each enabled VM gets a DAG file that calls the bundle's DAG factory (`ovplan_dags.py`) with
//! values compiled here: its DAG id, runner config path, cron calendar (the cron target's,
//! the due-guard superset included), pools and Celery queue. Every policy string reaches the
//! Python files as a string literal ([`python_string`]), and names that Airflow and the file
//! system must accept (DAG ids, pools, queues, compose services) are made safe and unique
//! ([`safe_ids`]). Rendering is `compile`'s; the compose file is [`super::airflow_compose`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::calendar;
use super::model::{Engine, Policy, VmPolicy};

/// The Airflow release the bundle is written for (scripts/requirements-airflow.txt pins it).
pub const AIRFLOW_VERSION: &str = "3.3.2";

/// The DAG factory module and the timetable plugin, the same in every bundle.
pub const STATIC_FILES: [(&str, &str); 3] = [
    (
        "airflow/dags/ovplan_dags.py",
        include_str!("../../templates/airflow/ovplan_dags.py"),
    ),
    (
        "airflow/dags/.airflowignore",
        "# The DAG factory defines no DAG of its own: not parsed as a DAG file.\novplan_dags.py\n",
    ),
    (
        "airflow/plugins/ovbackup_timetable.py",
        include_str!("../../templates/airflow/ovbackup_timetable.py"),
    ),
];

/// The longest part of a name kept in an id; longer names are cut and made unique by a hash.
const MAX_ID: usize = 100;

/// The backup host of a VM: the Celery queue its tasks go to.
pub fn backup_host(vm: &VmPolicy) -> &str {
    &vm.backup_host
}

/// How many backups may run at once from the production engine (its pool's size).
pub fn max_concurrent_backups(source: &Engine) -> u32 {
    source.max_concurrent_jobs
}

/// How many restores may run at once into the DR engine (its pool's size).
pub fn max_concurrent_restores(target: &Engine) -> u32 {
    target.max_concurrent_jobs
}

/// A Python string literal of `text` that Python reads back as exactly `text`, quoted as
/// ruff's formatter prefers (double quotes, unless single ones need fewer escapes). Printable
/// ASCII and non-ASCII letters and digits stay as they are; everything else (control and
/// format characters, line and paragraph separators, bidirectional overrides) is escaped.
pub fn python_string(text: &str) -> String {
    let quote = if text.matches('"').count() > text.matches('\'').count() {
        '\''
    } else {
        '"'
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            _ if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ if !c.is_ascii() && c.is_alphanumeric() => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            _ => {
                let code = u32::from(c);
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
        }
    }
    out.push(quote);
    out
}

/// A Python optional string: `None` or the literal.
fn python_option(text: Option<&str>) -> String {
    text.map_or_else(|| "None".to_owned(), python_string)
}

/// `text` with every character outside `[A-Za-z0-9_.-]` as `_`, cut to [`MAX_ID`] bytes, and
/// whether that kept it whole.
fn plain_id(text: &str) -> (String, bool) {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cut: String = mapped.chars().take(MAX_ID).collect();
    let whole = cut == text && !text.is_empty();
    (cut, whole)
}

/// Ids for names, in their order: a name of `[A-Za-z0-9_.-]` (at most [`MAX_ID`] long) is its
/// own id; any other is its plain form and a hash of the name, lengthened until no other id is
/// the same. Distinct names get distinct ids, which Airflow, Celery and file names accept.
pub fn safe_ids<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let planned: Vec<(&str, String, bool)> = names
        .into_iter()
        .map(|name| {
            let (id, whole) = plain_id(name);
            (name, id, whole)
        })
        .collect();
    let mut taken: BTreeSet<String> = planned
        .iter()
        .filter(|(_, _, whole)| *whole)
        .map(|(_, id, _)| id.clone())
        .collect();
    planned
        .into_iter()
        .map(|(name, id, whole)| {
            if whole {
                return id;
            }
            let hash = hex::encode(Sha256::digest(name.as_bytes()));
            let unique = [8, 16, 64]
                .into_iter()
                .map(|len| format!("{id}_{}", &hash[..len]))
                .find(|candidate| !taken.contains(candidate))
                .unwrap_or_else(|| format!("{id}_{hash}_{}", taken.len()));
            taken.insert(unique.clone());
            unique
        })
        .collect()
}

/// The pool of an engine's backups (`backup`) or restores (`restore`): named after the engine's
/// address, so every bundle that backs up from the same engine shares the one limit.
pub fn pool_name(role: &str, engine: &Engine) -> String {
    let address = engine
        .url
        .split_once("://")
        .map_or(engine.url.as_str(), |(_, rest)| rest);
    let authority = address.split('/').next().unwrap_or(address);
    let id = safe_ids([authority]).remove(0);
    format!("ovbackup_{role}_{id}")
}

/// One pool of `airflow pools import`'s file.
#[derive(Debug, Serialize)]
pub struct Pool {
    slots: u32,
    description: String,
    include_deferred: bool,
}

/// `airflow/pools.json`: a pool per engine in use, sized by its limit.
pub fn pools(policy: &Policy, enabled: &[&VmPolicy]) -> String {
    let mut pools = BTreeMap::new();
    pools.insert(
        pool_name("backup", &policy.source),
        Pool {
            slots: max_concurrent_backups(&policy.source),
            description: format!(
                "Backups running at once from the production engine {} (max_concurrent_backups)",
                policy.source.url
            ),
            include_deferred: false,
        },
    );
    if let Some(target) = restore_engine(policy, enabled) {
        pools.insert(
            pool_name("restore", target),
            Pool {
                slots: max_concurrent_restores(target),
                description: format!(
                    "Restores running at once into the DR engine {} (max_concurrent_restores)",
                    target.url
                ),
                include_deferred: false,
            },
        );
    }
    let mut json = serde_json::to_string_pretty(&pools).expect("pools serialize");
    json.push('\n');
    json
}

/// The DR engine, when some VM restores into it.
fn restore_engine<'p>(policy: &'p Policy, enabled: &[&VmPolicy]) -> Option<&'p Engine> {
    policy
        .target
        .as_ref()
        .filter(|_| enabled.iter().any(|vm| vm.auto_restore))
}

/// A VM's DAG: its file's path and the values its template writes, each a Python literal.
#[derive(Debug, Serialize)]
pub struct VmDag {
    /// The file's path in the bundle.
    #[serde(skip)]
    pub path: String,
    dag_id: String,
    vm: String,
    ovrun: String,
    config: String,
    cron: String,
    timezone: String,
    due_guard: &'static str,
    schedule: String,
    backup_pool: String,
    restore_pool: String,
    restore_timeout_minutes: u32,
    queue: String,
}

/// Where ovrun and the runner configs are on the workers.
#[derive(Debug, Clone, Copy)]
pub struct Paths<'a> {
    /// `ovrun`'s path.
    pub ovrun: &'a str,
    /// The runner configs' folder (`<config_dir>/runner`).
    pub runner_dir: &'a str,
}

/// The DAG of each enabled VM, in their order.
pub fn vm_dags(policy: &Policy, enabled: &[&VmPolicy], paths: Paths<'_>) -> Vec<VmDag> {
    let ids = safe_ids(enabled.iter().map(|vm| vm.name.as_str()));
    let host_ids = host_ids(enabled);
    let backup_pool = pool_name("backup", &policy.source);
    let restore_pool = restore_engine(policy, enabled).map(|t| pool_name("restore", t));
    enabled
        .iter()
        .zip(ids)
        .map(|(vm, id)| {
            let (lines, guarded) = calendar::cron(&vm.schedule);
            let dag_id = format!("ovbackup_{id}");
            let restores = vm.auto_restore && restore_pool.is_some();
            VmDag {
                path: format!("airflow/dags/{dag_id}.py"),
                dag_id: python_string(&dag_id),
                vm: python_string(&vm.name),
                ovrun: python_string(paths.ovrun),
                config: python_string(&format!("{}/{}.json", paths.runner_dir, vm.name)),
                // Every rule is one cron line (a superset where cron cannot say it).
                cron: python_string(&lines.join(" ")),
                timezone: python_option(vm.schedule.timezone.as_deref()),
                due_guard: if guarded { "True" } else { "False" },
                schedule: python_string(&super::normalize::schedule_json(&vm.schedule).to_string()),
                backup_pool: python_string(&backup_pool),
                restore_pool: python_option(restore_pool.as_deref().filter(|_| restores)),
                restore_timeout_minutes: policy.restore.timeout_minutes,
                queue: python_string(&host_ids[backup_host(vm)]),
            }
        })
        .collect()
}

/// Each backup host's id (its Celery queue, compose service and DAG name), by host name.
pub fn host_ids(enabled: &[&VmPolicy]) -> BTreeMap<String, String> {
    let hosts: BTreeSet<&str> = enabled.iter().map(|vm| backup_host(vm)).collect();
    hosts
        .iter()
        .map(|h| (*h).to_owned())
        .zip(safe_ids(hosts.iter().copied()))
        .collect()
}

/// A backup host's maintenance DAG: its file's path and the values its template writes.
#[derive(Debug, Serialize)]
pub struct MaintenanceDag {
    /// The file's path in the bundle.
    #[serde(skip)]
    pub path: String,
    dag_id: String,
    host: String,
    ovrun: String,
    configs: Vec<String>,
}

/// One maintenance DAG per backup host, with the runner configs of its VMs.
pub fn maintenance_dags(enabled: &[&VmPolicy], paths: Paths<'_>) -> Vec<MaintenanceDag> {
    host_ids(enabled)
        .into_iter()
        .map(|(host, id)| {
            let dag_id = format!("ovmaintenance_{id}");
            MaintenanceDag {
                path: format!("airflow/dags/{dag_id}.py"),
                dag_id: python_string(&dag_id),
                host: python_string(&id),
                ovrun: python_string(paths.ovrun),
                configs: enabled
                    .iter()
                    .filter(|vm| backup_host(vm) == host)
                    .map(|vm| python_string(&format!("{}/{}.json", paths.runner_dir, vm.name)))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_escape_what_could_end_or_hide_them() {
        assert_eq!(python_string("web01"), "\"web01\"");
        assert_eq!(python_string("it's"), "\"it's\"");
        assert_eq!(python_string("say \"hi\""), "'say \"hi\"'");
        assert_eq!(python_string("a\\b\"'"), "\"a\\\\b\\\"'\"");
        assert_eq!(python_string("é{{x}}\u{202e}"), "\"é{{x}}\\u202e\"");
        assert_eq!(python_string("\n\u{7f}😀"), "\"\\n\\x7f\\U0001f600\"");
        assert_eq!(python_option(None), "None");
    }

    #[test]
    fn ids_are_safe_and_unique() {
        let long = "v".repeat(MAX_ID + 1);
        let names = ["web01", "web 01", "web_01", "Web01", "é", &long];
        let ids = safe_ids(names);
        assert_eq!(ids[0], "web01");
        assert_eq!(ids[2], "web_01");
        assert_eq!(ids[3], "Web01");
        assert!(
            ids[1].starts_with("web_01_") && ids[1].len() == 15,
            "{}",
            ids[1]
        );
        assert!(ids[4].starts_with("__"));
        assert!(ids[5].starts_with(&"v".repeat(MAX_ID)));
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), names.len());
        for id in &ids {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            );
        }
    }

    #[test]
    fn a_hashed_id_never_takes_a_plain_name() {
        let hash = hex::encode(Sha256::digest("a b".as_bytes()));
        let plain = format!("a_b_{}", &hash[..8]);
        let ids = safe_ids(["a b", plain.as_str()]);
        assert_eq!(ids[1], plain);
        assert_eq!(ids[0], format!("a_b_{}", &hash[..16]));
    }

    #[test]
    fn pools_are_named_after_the_engine() {
        let engine = |url: &str| Engine {
            url: url.into(),
            user: "u".into(),
            password: None,
            password_file: None,
            cert_path: None,
            max_concurrent_jobs: 4,
        };
        let plain = engine("https://engine.example.com/ovirt-engine/api");
        assert_eq!(
            pool_name("backup", &plain),
            "ovbackup_backup_engine.example.com"
        );
        let port = pool_name(
            "restore",
            &engine("https://dr.example.com:8443/ovirt-engine/api"),
        );
        assert!(
            port.starts_with("ovbackup_restore_dr.example.com_8443_"),
            "{port}"
        );
    }
}
