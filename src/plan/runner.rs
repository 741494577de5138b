//! The runner config: one JSON file per enabled VM, everything `ovrun` needs to back it up (and,
//! for `auto_restore` VMs, to restore it), described by `schemas/runner.schema.json`.
//!
//! `ovplan build` writes it, `ovrun` reads it: the one contract between the two. It names
//! password *files*, never passwords. The types here are that contract: the schedule, the zone,
//! the dates and every closed set are typed, so reading the file ([`RunnerConfig::from_json`])
//! is the one place a runner config is checked; `ovrun` works from the typed values and never
//! goes back to the policy's `normalize`.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{
    BackupMethod, DEFAULT_BACKUP_HOST, DEFAULT_MAX_CONCURRENT_BACKUPS,
    DEFAULT_MAX_CONCURRENT_RESTORES, DiskInterface, Engine, FullFrequency, FullPolicy, KeepPolicy,
    Policy, Rule, Schedule, VmPolicy,
};
pub use super::model::{CpuOverride, MacPolicy};
use super::normalize::{default_time, schedule_from_json, schedule_json};
use super::schedule::{Calendar, guard_superset};
use crate::plan::cron::CronProblem;

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
    /// The backup host that backs the VM up and holds its catalog (issue 14). Written only when
    /// not `default`, as are the two limits below when they are not their defaults: configs
    /// written before them read and write back unchanged.
    #[serde(
        default = "default_backup_host",
        skip_serializing_if = "is_default_backup_host",
        deserialize_with = "checked::backup_host"
    )]
    pub backup_host: String,
    /// The production engine.
    pub source: EngineAccess,
    /// The most backups on the source engine at once (`ovrun backup` waits for one of this
    /// many slots); absent means 4.
    #[serde(
        default = "default_backups",
        skip_serializing_if = "is_default_backups",
        deserialize_with = "checked::limit"
    )]
    pub max_concurrent_backups: u32,
    /// The DR engine (only for `auto_restore` VMs).
    pub target: Option<EngineAccess>,
    /// The most restores on the DR engine at once (`ovrun restore` waits for one of this many
    /// slots); absent means 2. Only a config with a `target` restores.
    #[serde(
        default = "default_restores",
        skip_serializing_if = "is_default_restores",
        deserialize_with = "checked::limit"
    )]
    pub max_concurrent_restores: u32,
    /// The catalog's directory.
    pub backup_directory: String,
    /// The predecessor's checkpoints file.
    pub checkpoints_file: String,
    /// The normalized schedule (modern policy form).
    pub schedule: RunnerSchedule,
    /// The IANA zone of the schedule; `null` = the host's local time (`RunnerConfig::zone`, in
    /// src/host.rs, resolves it).
    #[serde(default, with = "zone_name")]
    pub timezone: Option<Tz>,
    /// When the units fire on a superset of the schedule: that superset (modern policy form,
    /// same times of day). `ovrun` runs only when the latest start of the superset at or before
    /// now is a start of the schedule.
    pub due_guard: Option<RunnerSchedule>,
    /// Full or incremental (policy.md section 3), and how the disks are read.
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

/// The full-or-incremental policy, with the settings it inherits, and the backup method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicy {
    /// Rule 1.
    pub incremental_enabled: bool,
    /// Rule 3: daily, weekly, biweekly, monthly, never.
    pub full_backup_frequency: FullFrequency,
    /// Rule 3: weekday fulls are due from (`monday` ... `sunday`).
    #[serde(with = "weekday_name")]
    pub full_backup_day: Weekday,
    /// Rule 3, biweekly: a date in an on-week (`YYYY-MM-DD`).
    #[serde(with = "policy_date")]
    pub anchor_date: NaiveDate,
    /// Rule 4.
    pub max_incremental_chain_length: u32,
    /// Rule 5; 0 = off.
    pub force_full_backup_days: u32,
    /// How the disks are read. Absent means `auto`: written only when it is another method,
    /// so configs written before issue 13 (and `auto` ones) read and write back unchanged.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub backup_method: BackupMethod,
}

/// `auto`, the method a runner config does not write (serde passes the field by reference).
fn is_auto(method: &BackupMethod) -> bool {
    *method == BackupMethod::Auto
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

impl Retention {
    /// A VM's retention as the runner applies it.
    pub fn from_keep(keep: &KeepPolicy) -> Self {
        Self {
            keep_daily: keep.daily,
            keep_weekly: keep.weekly,
            keep_monthly: keep.monthly,
            max_backup_age_days: keep.max_age_days,
        }
    }
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
    /// How the restored disks are attached where a point recorded no interface (points taken
    /// before issue 16), and for every disk when `disk_interface_overrides`.
    pub disk_interface: DiskInterface,
    /// The policy set `disk_interface`: it overrides the interfaces a point recorded. Absent:
    /// the recorded interfaces are kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disk_interface_overrides: bool,
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
    /// Production network or vNIC profile name -> DR vNIC profile name. Written only when not
    /// empty, as are the three below when they are not their defaults: configs written before
    /// issue 16 read and write back unchanged.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "checked::network_map"
    )]
    pub network_map: BTreeMap<String, String>,
    /// Whether the DR VM's NICs keep production's MACs; absent means `new`.
    #[serde(default, skip_serializing_if = "is_new")]
    pub mac_policy: MacPolicy,
    /// The DR VM's CPU topology where it differs from the recorded one; absent: as recorded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::cpu"
    )]
    pub cpu: Option<CpuOverride>,
    /// The DR VM's memory in MiB; absent: as recorded.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::memory_mib"
    )]
    pub memory_mib: Option<u64>,
}

/// `new`, the MAC policy a runner config does not write (serde passes the field by reference).
fn is_new(policy: &MacPolicy) -> bool {
    *policy == MacPolicy::New
}

// The defaults a runner config does not write (serde passes a field by reference).

fn default_backup_host() -> String {
    DEFAULT_BACKUP_HOST.to_owned()
}

fn is_default_backup_host(host: &str) -> bool {
    host == DEFAULT_BACKUP_HOST
}

fn default_backups() -> u32 {
    DEFAULT_MAX_CONCURRENT_BACKUPS
}

fn is_default_backups(n: &u32) -> bool {
    *n == DEFAULT_MAX_CONCURRENT_BACKUPS
}

fn default_restores() -> u32 {
    DEFAULT_MAX_CONCURRENT_RESTORES
}

fn is_default_restores(n: &u32) -> bool {
    *n == DEFAULT_MAX_CONCURRENT_RESTORES
}

/// The DR VM's keys of a runner config, checked as `ovplan validate` checks the policy's: a
/// name no network can have, a count or size out of range, is refused when the file is read.
mod checked {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use crate::plan::model::{CpuOverride, MAX_CONCURRENT_JOBS, MAX_CPU_COUNT, MAX_MEMORY_MIB};
    use crate::plan::names::{unsafe_backup_host, unsafe_network_name};

    pub fn backup_host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let host = String::deserialize(d)?;
        match unsafe_backup_host(&host) {
            Some(why) => Err(D::Error::custom(format!(
                "`{}`: {why}",
                host.escape_debug()
            ))),
            None => Ok(host),
        }
    }

    pub fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = u32::deserialize(d)?;
        if (1..=MAX_CONCURRENT_JOBS).contains(&n) {
            Ok(n)
        } else {
            Err(D::Error::custom(format!(
                "{n} is not 1 to {MAX_CONCURRENT_JOBS}"
            )))
        }
    }

    pub fn network_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        for name in map.keys().chain(map.values()) {
            if let Some(why) = unsafe_network_name(name) {
                let name = name.escape_debug();
                return Err(D::Error::custom(format!("`{name}`: {why}")));
            }
        }
        Ok(map)
    }

    pub fn cpu<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CpuOverride>, D::Error> {
        let cpu = CpuOverride::deserialize(d)?;
        let bad = cpu.counts().into_iter().find_map(|(key, n)| {
            n.filter(|n| !(1..=MAX_CPU_COUNT).contains(n))
                .map(|n| (key, n))
        });
        match bad {
            Some((key, n)) => Err(D::Error::custom(format!(
                "{key} {n} is not 1 to {MAX_CPU_COUNT}"
            ))),
            None => Ok(Some(cpu)),
        }
    }

    pub fn memory_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let mib = u64::deserialize(d)?;
        if (1..=MAX_MEMORY_MIB).contains(&mib) {
            Ok(Some(mib))
        } else {
            Err(D::Error::custom(format!(
                "{mib} MiB is not 1 to {MAX_MEMORY_MIB}"
            )))
        }
    }
}

impl RunnerConfig {
    /// Reads a runner config: the one place it is checked. A schedule, zone, date or closed
    /// set that is not what `ovplan build` writes is refused here, naming the field.
    ///
    /// # Errors
    /// Text that is not a runner config.
    pub fn from_json(text: &str) -> Result<Self, RunnerConfigError> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let config: Self =
            serde_path_to_error::deserialize(&mut reader).map_err(RunnerConfigError::new)?;
        reader.end().map_err(|e| RunnerConfigError {
            field: None,
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// The schedule's calendar in `zone` (`RunnerConfig::zone`, which src/host.rs defines:
    /// its fallback is the host's zone, and this core reads nothing from the host).
    ///
    /// # Errors
    /// None for a config read by [`RunnerConfig::from_json`], which checks the cron expression.
    pub fn calendar(&self, zone: Tz) -> Result<Calendar, CronProblem> {
        Calendar::new(self.schedule.schedule(), zone)
    }

    /// The due guard's calendar in `zone`.
    ///
    /// # Errors
    /// As [`RunnerConfig::calendar`].
    pub fn guard_calendar(&self, zone: Tz) -> Result<Option<Calendar>, CronProblem> {
        let guard = self.due_guard.as_ref();
        guard.map(|g| Calendar::new(g.schedule(), zone)).transpose()
    }

    /// The full-or-incremental policy, in the model.
    pub fn full_policy(&self) -> FullPolicy {
        let b = &self.backup;
        FullPolicy {
            incremental_enabled: b.incremental_enabled,
            frequency: b.full_backup_frequency,
            day: b.full_backup_day,
            anchor: b.anchor_date,
            max_chain_length: b.max_incremental_chain_length,
            force_full_after_days: b.force_full_backup_days,
        }
    }
}

/// A runner config that could not be read: the field at fault and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct RunnerConfigError {
    /// The field's path (`backup.full_backup_frequency`); `None` for the file as a whole (not
    /// JSON, a field missing).
    pub field: Option<String>,
    /// What is wrong (serde's words, with the line and column).
    pub message: String,
}

impl RunnerConfigError {
    fn new(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // Text that is not JSON has no field to blame (its path ends in `?`).
        let whole_file = field == "." || inner.is_syntax() || inner.is_eof();
        Self {
            field: (!whole_file).then_some(field),
            message: inner.to_string(),
        }
    }
}

/// A schedule as the runner config holds it: the model's [`Schedule`], written in the modern
/// policy form (`schedule_json`, exactly what `ovplan build` always wrote) and checked when
/// read: a normalized schedule object, a known zone, a cron expression that parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct RunnerSchedule(Schedule);

impl RunnerSchedule {
    /// The runner form of a schedule. A cron rule carries its own times, so its `time` is not
    /// written; it is set to the default here so that writing and reading give the same value.
    pub fn new(schedule: &Schedule) -> Self {
        let mut schedule = schedule.clone();
        if matches!(schedule.rule, Rule::Cron(_)) {
            schedule.time = default_time();
        }
        Self(schedule)
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.0
    }

    /// Its JSON (modern policy form).
    pub fn to_json(&self) -> Value {
        schedule_json(&self.0)
    }
}

impl From<RunnerSchedule> for Value {
    fn from(schedule: RunnerSchedule) -> Self {
        schedule.to_json()
    }
}

impl TryFrom<Value> for RunnerSchedule {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match value.get("type").and_then(Value::as_str) {
            Some("simple" | "advanced" | "cron") => {}
            _ => return Err("not a normalized schedule (type simple, advanced or cron)".into()),
        }
        let schedule = schedule_from_json(&value)
            .map_err(|e| format!("not a schedule ovplan writes: {}", e.detail()))?;
        if let Some(name) = &schedule.timezone {
            zone_name::parse(name)?;
        }
        Calendar::of_rule(&schedule.rule, schedule.time, Tz::UTC)
            .map_err(|p| format!("cron expression: {}", p.message))?;
        Ok(Self::new(&schedule))
    }
}

/// `Option<Tz>` as an IANA name or `null`.
mod zone_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(name: &str) -> Result<Tz, String> {
        name.parse()
            .map_err(|_| format!("unknown time zone `{name}` (an IANA name, e.g. Europe/Lisbon)"))
    }

    #[expect(
        clippy::ref_option,
        reason = "serde's serialize_with passes the field by reference"
    )]
    pub fn serialize<S: Serializer>(zone: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match zone {
            Some(zone) => s.serialize_str(zone.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
        let name = Option::<String>::deserialize(d)?;
        name.map(|n| parse(&n).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A weekday as the policy names it (`monday` ... `sunday`).
mod weekday_name {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::plan::names;

    pub fn serialize<S: Serializer>(day: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(names::weekday_name(*day))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let name = String::deserialize(d)?;
        names::weekday(&name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, &names::WEEKDAYS))
    }
}

/// A date as the policy writes it: `YYYY-MM-DD`, four-digit year.
mod policy_date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(date: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&date.format("%Y-%m-%d").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let text = String::deserialize(d)?;
        crate::plan::rules::parse_date(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD)")))
    }
}

/// Builds the runner config of one VM.
pub fn runner_config(policy: &Policy, vm: &VmPolicy, config_dir: &str) -> RunnerConfig {
    let superset = guard_superset(&vm.schedule.rule).map(|rule| {
        let mut schedule = vm.schedule.clone();
        schedule.rule = rule;
        RunnerSchedule::new(&schedule)
    });
    let target = policy.target.as_ref().filter(|_| vm.auto_restore);
    RunnerConfig {
        format: FORMAT,
        vm: vm.name.clone(),
        backup_host: vm.backup_host.clone(),
        source: access(&policy.source, "source", config_dir),
        max_concurrent_backups: policy.source.max_concurrent_jobs,
        target: target.map(|t| access(t, "target", config_dir)),
        max_concurrent_restores: target
            .map_or(DEFAULT_MAX_CONCURRENT_RESTORES, |t| t.max_concurrent_jobs),
        backup_directory: policy.backup_directory.clone(),
        checkpoints_file: policy.checkpoints_file.clone(),
        schedule: RunnerSchedule::new(&vm.schedule),
        // Validation refused an unknown zone, so none is dropped here.
        timezone: vm.schedule.timezone.as_deref().and_then(|z| z.parse().ok()),
        due_guard: superset,
        backup: backup_policy(vm),
        retention: Retention::from_keep(&vm.keep),
        restore: vm.auto_restore.then(|| restore_config(policy, vm)),
    }
}

fn backup_policy(vm: &VmPolicy) -> BackupPolicy {
    let full = &vm.full;
    BackupPolicy {
        incremental_enabled: full.incremental_enabled,
        full_backup_frequency: full.frequency,
        full_backup_day: full.day,
        anchor_date: full.anchor,
        max_incremental_chain_length: full.max_chain_length,
        force_full_backup_days: full.force_full_after_days,
        backup_method: vm.backup_method,
    }
}

fn restore_config(policy: &Policy, vm: &VmPolicy) -> RestoreConfig {
    let r = &policy.restore;
    RestoreConfig {
        vm_name: format!("{}{}", vm.name, r.vm_name_suffix),
        target_cluster_name: r.target_cluster_name.clone(),
        target_storage_domain_name: r.target_storage_domain_name.clone().unwrap_or_default(),
        disk_interface: r.disk_interface,
        disk_interface_overrides: r.disk_interface_given,
        timeout_minutes: r.timeout_minutes,
        auto_start_restored_vm: r.auto_start_restored_vm,
        replace_existing_vm: r.replace_existing_vm,
        backup_old_vm: r.backup_old_vm,
        restore_log_directory: format!(
            "{}/restore_logs",
            policy.backup_directory.trim_end_matches('/')
        ),
        network_map: r.network_map.clone(),
        mac_policy: r.mac_policy,
        cpu: r.cpu,
        memory_mib: r.memory_mib,
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

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;

    /// A runner config of the committed bundle.
    fn config_text() -> String {
        include_str!("../../out/runner/billing01.json").to_owned()
    }

    #[test]
    fn a_cron_schedule_reads_back_equal_whatever_its_time() {
        let schedule = Schedule {
            rule: Rule::Cron("30 1 * * 1-5".into()),
            time: NaiveTime::from_hms_opt(3, 0, 0).expect("a time"),
            timezone: Some("Europe/Berlin".into()),
        };
        let written = RunnerSchedule::new(&schedule);
        let json = serde_json::to_value(&written).expect("JSON");
        assert_eq!(json, schedule_json(&schedule));
        let read: RunnerSchedule = serde_json::from_value(json).expect("reads");
        assert_eq!(read, written);
    }

    #[test]
    fn a_bad_field_is_named() {
        let text = config_text();
        let config = RunnerConfig::from_json(&text).expect("reads");
        assert_eq!(config.timezone, Some(chrono_tz::Europe::Lisbon));
        for (from, to, field) in [
            ("\"monthly\"", "\"yearly\"", "backup.full_backup_frequency"),
            ("\"sunday\"", "\"Sunday\"", "backup.full_backup_day"),
            ("\"2024-01-01\"", "\"-024-01-01\"", "backup.anchor_date"),
            (
                "\"force_full_backup_days\": 7",
                "\"force_full_backup_days\": 7, \"backup_method\": \"snapshots\"",
                "backup.backup_method",
            ),
            (
                "\"timezone\": \"Europe/Lisbon\",\n  \"due",
                "\"timezone\": \"Lisbon\",\n  \"due",
                "timezone",
            ),
            ("\"type\": \"advanced\"", "\"type\": \"custom\"", "schedule"),
        ] {
            let bad = text.replacen(from, to, 1);
            assert_ne!(bad, text, "{from}");
            let error = RunnerConfig::from_json(&bad).expect_err(field);
            assert_eq!(error.field.as_deref(), Some(field), "{error}");
        }
        let error = RunnerConfig::from_json("{").expect_err("not JSON");
        assert_eq!(error.field, None, "{error}");
    }

    #[test]
    fn the_backup_method_is_written_when_not_auto_and_absent_means_auto() {
        let text = config_text();
        let read = |text: &str| RunnerConfig::from_json(text).expect("reads");
        let auto = read(&text);
        assert_eq!(auto.backup.backup_method, BackupMethod::Auto);
        assert!(!text.contains("backup_method"), "auto is not written");
        let mut config = auto.clone();
        config.backup.backup_method = BackupMethod::Snapshot;
        let written = serde_json::to_string_pretty(&config).expect("JSON");
        assert!(
            written.contains("\"backup_method\": \"snapshot\""),
            "{written}"
        );
        assert_eq!(read(&written), config);
    }

    #[test]
    fn the_dr_vm_settings_are_written_when_not_default_and_checked_when_read() {
        let text = include_str!("../../out/runner/erp-db01.json");
        let config = RunnerConfig::from_json(text).expect("reads");
        let restore = config.restore.as_ref().expect("an auto_restore VM");
        let map = BTreeMap::from([("servers-vlan10".into(), "dr-servers-vlan10".into())]);
        assert_eq!(restore.network_map, map);
        let defaults = (restore.mac_policy, restore.cpu, restore.memory_mib);
        assert_eq!(defaults, (MacPolicy::New, None, None));
        for key in ["mac_policy", "\"cpu\"", "memory_mib"] {
            assert!(!text.contains(key), "{key} is not written at its default");
        }
        let mut config = config.clone();
        let restore = config.restore.as_mut().expect("restore");
        restore.mac_policy = MacPolicy::Keep;
        restore.cpu = Some(CpuOverride {
            sockets: Some(2),
            ..CpuOverride::default()
        });
        restore.memory_mib = Some(4096);
        let written = serde_json::to_string_pretty(&config).expect("JSON");
        assert_eq!(RunnerConfig::from_json(&written).expect("reads"), config);
        for (from, to, field) in [
            ("\"memory_mib\": 4096", "\"memory_mib\": 0", "memory_mib"),
            ("\"sockets\": 2", "\"sockets\": 257", "cpu"),
            (
                "\"dr-servers-vlan10\"",
                "\" dr-servers-vlan10\"",
                "network_map",
            ),
            (
                "\"mac_policy\": \"keep\"",
                "\"mac_policy\": \"same\"",
                "mac_policy",
            ),
        ] {
            let bad = written.replacen(from, to, 1);
            assert_ne!(bad, written, "{from}");
            let error = RunnerConfig::from_json(&bad).expect_err(to);
            let expected = format!("restore.{field}");
            assert_eq!(error.field.as_deref(), Some(expected.as_str()), "{error}");
        }
    }

    #[test]
    fn the_backup_host_and_limits_are_written_when_not_default_and_checked_when_read() {
        let text = include_str!("../../out/runner/erp-db01.json");
        let read = |text: &str| RunnerConfig::from_json(text);
        let config = read(text).expect("reads");
        let defaults = (
            config.backup_host.as_str(),
            config.max_concurrent_backups,
            config.max_concurrent_restores,
        );
        assert_eq!(defaults, ("default", 4, 2));
        for key in ["backup_host", "max_concurrent"] {
            assert!(!text.contains(key), "{key} is not written at its default");
        }
        let mut config = config.clone();
        config.backup_host = "bk-02".into();
        config.max_concurrent_backups = 2;
        config.max_concurrent_restores = 1;
        let written = serde_json::to_string_pretty(&config).expect("JSON");
        assert_eq!(read(&written).expect("reads"), config);
        for (from, to, field) in [
            ("\"bk-02\"", "\"Bk 02\"", "backup_host"),
            ("\"bk-02\"", "\"\"", "backup_host"),
            (
                "\"max_concurrent_backups\": 2",
                "\"max_concurrent_backups\": 0",
                "max_concurrent_backups",
            ),
            (
                "\"max_concurrent_restores\": 1",
                "\"max_concurrent_restores\": 65",
                "max_concurrent_restores",
            ),
        ] {
            let bad = written.replacen(from, to, 1);
            assert_ne!(bad, written, "{from}");
            let error = read(&bad).expect_err(to);
            assert_eq!(error.field.as_deref(), Some(field), "{error}");
        }
    }
}
