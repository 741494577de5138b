//! Stage 2e: the checks of how a policy spreads its work (issue 14): each VM's `backup_host`,
//! and the engines' limits of concurrent jobs (`source_ovirt_max_concurrent_backups`,
//! `target_ovirt_max_concurrent_restores`), each with its own code.
//!
//! Like [`super::rules`], they tolerate any shape: a value of the wrong type is the schema's to
//! report, and a schema error at a place one of these explains is dropped (`collect`).

use serde_json::{Map, Value};

use super::diagnostic::{Code, Diagnostic};
use super::model::{MAX_CONCURRENT_JOBS, SOURCE_LIMIT_KEY, TARGET_LIMIT_KEY};
use super::names::{self, MAX_BACKUP_HOST};
use super::restore_rules::whole;
use super::source::escape_token;

/// Every problem of the backup hosts and the engines' limits in a decoded policy.
pub fn check(doc: &Value) -> Vec<Diagnostic> {
    let Some(root) = doc.as_object() else {
        return Vec::new();
    };
    let mut found: Vec<Diagnostic> = [
        (SOURCE_LIMIT_KEY, "backups", "production"),
        (TARGET_LIMIT_KEY, "restores", "DR"),
    ]
    .into_iter()
    .filter_map(|(key, jobs, engine)| limit(root, key, jobs, engine))
    .collect();
    if let Some(vms) = root.get("vms_config").and_then(Value::as_object) {
        found.extend(vms.iter().filter_map(|(name, vm)| backup_host(name, vm)));
    }
    found
}

/// An engine's limit outside 1 to [`MAX_CONCURRENT_JOBS`].
fn limit(root: &Map<String, Value>, key: &str, jobs: &str, engine: &str) -> Option<Diagnostic> {
    let n = whole(root.get(key)?)?;
    if (1..=i128::from(MAX_CONCURRENT_JOBS)).contains(&n) {
        return None;
    }
    let message = format!(
        "`{key}` cannot be {n}: it is how many {jobs} may work on the {engine} engine at once, 1 to {MAX_CONCURRENT_JOBS}"
    );
    let help = if n < 1 {
        format!(
            "write at least 1 ({jobs} wait their turn, one at a time); to stop the {jobs}, disable the VMs instead"
        )
    } else {
        format!(
            "write at most {MAX_CONCURRENT_JOBS}: more {jobs} at once load the engine without finishing sooner"
        )
    };
    Some(Diagnostic::new(Code::ConcurrencyOutOfRange, format!("/{key}"), message).help(help))
}

/// A VM's `backup_host` that cannot name a backup host. A control character is reported once,
/// as `control-character`.
fn backup_host(vm: &str, policy: &Value) -> Option<Diagnostic> {
    let host = policy.get("backup_host")?.as_str()?;
    if host.chars().any(char::is_control) {
        return None;
    }
    let why = names::unsafe_backup_host(host)?;
    let pointer = format!("/vms_config/{}/backup_host", escape_token(vm));
    let message = format!(
        "`{}` cannot name the backup host of VM `{vm}`: {why}",
        host.escape_debug()
    );
    Some(Diagnostic::new(Code::UnsafeBackupHost, pointer, message).help(host_help(host)))
}

/// The name written in lower case, when that is one; else what a name may hold.
fn host_help(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    if lower != host && names::unsafe_backup_host(&lower).is_none() {
        return format!("did you mean `{lower}`? backup host names are lower case");
    }
    format!(
        "name the host with 1 to {MAX_BACKUP_HOST} characters of a-z, 0-9, `.`, `_` and `-`, beginning with a letter or digit (`backup-01`): it names a Celery queue, files and units"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(policy: &str) -> Vec<(Code, String, String)> {
        let doc: Value = serde_json::from_str(policy).expect("test JSON");
        check(&doc)
            .into_iter()
            .map(|d| (d.code, d.pointer, d.help.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn valid_hosts_and_limits_have_no_problem() {
        let policy = r#"{"source_ovirt_max_concurrent_backups": 1,
            "target_ovirt_max_concurrent_restores": 64,
            "vms_config": {"a": {"backup_host": "backup-01"}, "b": {"backup_host": "default"},
                           "c": "1111111", "d": {}}}"#;
        assert_eq!(found(policy), []);
        let wrong_types = r#"{"source_ovirt_max_concurrent_backups": "4",
            "target_ovirt_max_concurrent_restores": 1.5, "vms_config": {"a": {"backup_host": 1}}}"#;
        assert_eq!(found(wrong_types), [], "the schema's to report");
    }

    #[test]
    fn each_problem_has_its_code_and_place() {
        let cases: &[(&str, Code, &str)] = &[
            (
                r#"{"source_ovirt_max_concurrent_backups": 0}"#,
                Code::ConcurrencyOutOfRange,
                "/source_ovirt_max_concurrent_backups",
            ),
            (
                r#"{"target_ovirt_max_concurrent_restores": 65}"#,
                Code::ConcurrencyOutOfRange,
                "/target_ovirt_max_concurrent_restores",
            ),
            (
                r#"{"vms_config": {"a/b": {"backup_host": "Backup 01"}}}"#,
                Code::UnsafeBackupHost,
                "/vms_config/a~1b/backup_host",
            ),
            (
                r#"{"vms_config": {"a": {"backup_host": ""}}}"#,
                Code::UnsafeBackupHost,
                "/vms_config/a/backup_host",
            ),
        ];
        for (policy, code, pointer) in cases {
            let found = found(policy);
            assert_eq!(found.len(), 1, "{policy}: {found:?}");
            assert_eq!((found[0].0, found[0].1.as_str()), (*code, *pointer));
        }
    }

    #[test]
    fn an_upper_case_host_is_offered_in_lower_case() {
        let upper = found(r#"{"vms_config": {"a": {"backup_host": "Backup-01"}}}"#);
        assert_eq!(
            upper[0].2,
            "did you mean `backup-01`? backup host names are lower case"
        );
        let control = found(r#"{"vms_config": {"a": {"backup_host": "b\n"}}}"#);
        assert!(control.is_empty(), "control-character's: {control:?}");
    }
}
