//! The runner config: one JSON file per enabled VM, everything `ovrun` needs to back it up (and,
//! for `auto_restore` VMs, to restore it), described by `schemas/runner.schema.json`.
//!
//! `ovplan build` writes it, `ovrun` reads it: the one contract between the two. It names
//! password *files*, never passwords.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{Engine, FullFrequency, FullPolicy, Policy, Schedule, VmPolicy};
use super::names;
use super::normalize::{NormalizeError, schedule_from_json, schedule_json};
use super::schedule::guard_superset;

/// The format version, bumped on any incompatible change.
pub const FORMAT: u32 = 1;

/// Where a password is read from when the policy gives it inline: a compiled artifact never
/// holds a password, so the operator is told to put it here.
pub fn default_password_file(config_dir: &str, side: &str) -> String {
    format!("{config_dir}/secrets/{side}.password")
}

/// One VM's runner config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// The engine's VM name.
    pub vm: String,
    /// The production engine.
    pub source: EngineAccess,
    /// The DR engine (only for `auto_restore` VMs).
    pub target: Option<EngineAccess>,
    /// The catalog's directory.
    pub backup_directory: String,
    /// The predecessor's checkpoints file.
    pub checkpoints_file: String,
    /// The normalized schedule (modern policy form).
    pub schedule: Value,
    /// The IANA zone of the schedule; `null` = the host's local time.
    pub timezone: Option<String>,
    /// When the units fire on a superset of the schedule: that superset (modern policy form,
    /// same times of day). `ovrun` runs only when the latest start of the superset at or before
    /// now is a start of the schedule.
    pub due_guard: Option<Value>,
    /// Full or incremental (policy.md section 3).
    pub backup: BackupPolicy,
    /// What to keep (policy.md section 4).
    pub retention: Retention,
    /// Restore settings, for `auto_restore` VMs.
    pub restore: Option<RestoreConfig>,
}

/// How to reach an engine: URL, user, CA, and the *file* holding the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineAccess {
    /// API URL.
    pub url: String,
    /// User with profile.
    pub user: String,
    /// File holding the password (under systemd, also passed as a credential).
    pub password_file: String,
    /// systemd credential name of the password.
    pub password_credential: String,
    /// CA certificate (PEM), the only one `ovrun` trusts for this engine; `null`: `ovrun`
    /// refuses to connect (no fallback to the system's trust store).
    pub ca_file: Option<String>,
}

/// The full-or-incremental policy, with the settings it inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    /// Rule 1.
    pub incremental_enabled: bool,
    /// Rule 3: daily, weekly, biweekly, monthly, never.
    pub full_backup_frequency: String,
    /// Rule 3: weekday fulls are due from.
    pub full_backup_day: String,
    /// Rule 3, biweekly: a date in an on-week.
    pub anchor_date: String,
    /// Rule 4.
    pub max_incremental_chain_length: u32,
    /// Rule 5; 0 = off.
    pub force_full_backup_days: u32,
}

/// Retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days.
    pub keep_daily: u32,
    /// ISO weeks.
    pub keep_weekly: u32,
    /// Months.
    pub keep_monthly: u32,
    /// 0 = no limit.
    pub max_backup_age_days: u32,
}

/// Restore into DR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// Name of the restored VM.
    pub vm_name: String,
    /// DR cluster.
    pub target_cluster_name: String,
    /// DR storage domain.
    pub target_storage_domain_name: String,
    /// Engine spelling.
    pub disk_interface: String,
    /// Timeout.
    pub timeout_minutes: u32,
    /// Start after restore.
    pub auto_start_restored_vm: bool,
    /// Replace an existing VM of that name.
    pub replace_existing_vm: bool,
    /// Rename the replaced VM rather than remove it.
    pub backup_old_vm: bool,
    /// Where restore logs go.
    pub restore_log_directory: String,
}

impl RunnerConfig {
    /// The schedule, back in the model.
    ///
    /// # Errors
    /// A config not written by this version's `ovplan build`.
    pub fn schedule(&self) -> Result<Schedule, NormalizeError> {
        schedule_from_json(&self.schedule)
    }

    /// The due-guard superset, back in the model.
    ///
    /// # Errors
    /// A config not written by this version's `ovplan build`.
    pub fn guard(&self) -> Result<Option<Schedule>, NormalizeError> {
        self.due_guard.as_ref().map(schedule_from_json).transpose()
    }

    /// The full-or-incremental policy, back in the model.
    ///
    /// # Errors
    /// A config not written by this version's `ovplan build`.
    pub fn full_policy(&self) -> Result<FullPolicy, NormalizeError> {
        let b = &self.backup;
        let bad = |what: &str| NormalizeError::from_runner(format!("backup.{what}"));
        Ok(FullPolicy {
            incremental_enabled: b.incremental_enabled,
            frequency: FullFrequency::parse(&b.full_backup_frequency)
                .ok_or_else(|| bad("full_backup_frequency"))?,
            day: names::weekday(&b.full_backup_day).ok_or_else(|| bad("full_backup_day"))?,
            anchor: super::rules::parse_date(&b.anchor_date).ok_or_else(|| bad("anchor_date"))?,
            max_chain_length: b.max_incremental_chain_length,
            force_full_after_days: b.force_full_backup_days,
        })
    }
}

/// Builds the runner config of one VM.
pub fn runner_config(policy: &Policy, vm: &VmPolicy, config_dir: &str) -> RunnerConfig {
    let restore = vm.auto_restore.then(|| {
        let r = &policy.restore;
        RestoreConfig {
            vm_name: format!("{}{}", vm.name, r.vm_name_suffix),
            target_cluster_name: r.target_cluster_name.clone(),
            target_storage_domain_name: r.target_storage_domain_name.clone().unwrap_or_default(),
            disk_interface: r.disk_interface.clone(),
            timeout_minutes: r.timeout_minutes,
            auto_start_restored_vm: r.auto_start_restored_vm,
            replace_existing_vm: r.replace_existing_vm,
            backup_old_vm: r.backup_old_vm,
            restore_log_directory: format!(
                "{}/restore_logs",
                policy.backup_directory.trim_end_matches('/')
            ),
        }
    });
    let superset = guard_superset(&vm.schedule.rule).map(|rule| {
        let mut schedule = vm.schedule.clone();
        schedule.rule = rule;
        schedule_json(&schedule)
    });
    RunnerConfig {
        format: FORMAT,
        vm: vm.name.clone(),
        source: access(&policy.source, "source", config_dir),
        target: policy
            .target
            .as_ref()
            .filter(|_| vm.auto_restore)
            .map(|t| access(t, "target", config_dir)),
        backup_directory: policy.backup_directory.clone(),
        checkpoints_file: policy.checkpoints_file.clone(),
        schedule: schedule_json(&vm.schedule),
        timezone: vm.schedule.timezone.clone(),
        due_guard: superset,
        backup: BackupPolicy {
            incremental_enabled: vm.full.incremental_enabled,
            full_backup_frequency: vm.full.frequency.as_str().to_owned(),
            full_backup_day: names::weekday_name(vm.full.day).to_owned(),
            anchor_date: vm.full.anchor.format("%Y-%m-%d").to_string(),
            max_incremental_chain_length: vm.full.max_chain_length,
            force_full_backup_days: vm.full.force_full_after_days,
        },
        retention: Retention {
            keep_daily: vm.keep.daily,
            keep_weekly: vm.keep.weekly,
            keep_monthly: vm.keep.monthly,
            max_backup_age_days: vm.keep.max_age_days,
        },
        restore,
    }
}

fn access(engine: &Engine, side: &str, config_dir: &str) -> EngineAccess {
    EngineAccess {
        url: engine.url.clone(),
        user: engine.user.clone(),
        password_file: engine
            .password_file
            .clone()
            .unwrap_or_else(|| default_password_file(config_dir, side)),
        password_credential: format!("{side}-password"),
        ca_file: engine.cert_path.clone(),
    }
}
