//! The policy file as written (after validation): serde types with every field optional and
//! every legacy form still present. Only `normalize` reads these; `vms_config` it reads from
//! the document itself, so VMs keep their file order.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The whole file.
#[derive(Debug, Deserialize)]
pub struct RawPolicy {
    pub source_ovirt_url: String,
    pub source_ovirt_user: String,
    pub source_ovirt_password: Option<String>,
    pub source_ovirt_password_file: Option<String>,
    pub source_ovirt_cert_path: Option<String>,
    pub source_ovirt_max_concurrent_backups: Option<u32>,
    pub target_ovirt_url: Option<String>,
    pub target_ovirt_user: Option<String>,
    pub target_ovirt_password: Option<String>,
    pub target_ovirt_password_file: Option<String>,
    pub target_ovirt_cert_path: Option<String>,
    pub target_ovirt_max_concurrent_restores: Option<u32>,
    pub backup_directory: String,
    pub checkpoints_file: Option<String>,
    #[serde(default)]
    pub backup_settings: RawBackupSettings,
    #[serde(default)]
    pub restore_settings: RawRestoreSettings,
}

/// `backup_settings`.
#[derive(Debug, Default, Deserialize)]
pub struct RawBackupSettings {
    pub incremental_enabled: Option<bool>,
    pub max_incremental_chain_length: Option<u32>,
    pub force_full_backup_days: Option<u32>,
    pub default_backup_time: Option<String>,
    pub timezone: Option<String>,
    pub backup_method: Option<String>,
}

/// `restore_settings`.
#[derive(Debug, Default, Deserialize)]
pub struct RawRestoreSettings {
    pub target_cluster_name: Option<String>,
    pub target_storage_domain_name: Option<String>,
    pub disk_interface: Option<String>,
    pub timeout_minutes: Option<u32>,
    pub auto_start_restored_vm: Option<bool>,
    pub vm_name_suffix: Option<String>,
    pub replace_existing_vm: Option<bool>,
    pub backup_old_vm: Option<bool>,
    #[serde(default)]
    pub network_map: BTreeMap<String, String>,
    pub mac_policy: Option<String>,
    pub cpu: Option<RawCpu>,
    pub memory_mib: Option<u64>,
}

/// `restore_settings.cpu`.
#[derive(Debug, Default, Deserialize)]
pub struct RawCpu {
    pub sockets: Option<u32>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
}

/// One VM's policy.
#[derive(Debug, Deserialize)]
pub struct RawVmPolicy {
    pub enabled: Option<bool>,
    /// An object or (legacy) a bare 7-bit pattern: read by `normalize`, which looks at the
    /// JSON type instead of serde trying each form in turn (slow over ten thousand VMs).
    pub schedule: Value,
    #[serde(default)]
    pub backup_type: RawBackupType,
    #[serde(default)]
    pub retention: RawRetention,
    pub auto_restore: Option<bool>,
    pub backup_method: Option<String>,
    pub backup_host: Option<String>,
}

/// A schedule object of any type; which fields apply depends on `type` (checked by the schema).
#[derive(Debug, Deserialize)]
pub struct RawScheduleObject {
    #[serde(rename = "type")]
    pub kind: String,
    pub pattern: Option<String>,
    pub time: Option<String>,
    pub timezone: Option<String>,
    pub day: Option<String>,
    pub days: Option<Vec<String>>,
    pub anchor_date: Option<String>,
    pub day_of_month: Option<RawDay>,
    pub days_of_month: Option<Vec<RawDay>>,
    pub weekdays: Option<Vec<String>>,
    pub weeks_of_month: Option<Vec<RawDay>>,
    pub months: Option<Vec<RawMonth>>,
    pub expression: Option<String>,
}

/// A number, or `"last"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDay {
    Number(u32),
    Word(String),
}

/// A month number or name.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMonth {
    Number(u32),
    Name(String),
}

/// `backup_type`.
#[derive(Debug, Default, Deserialize)]
pub struct RawBackupType {
    pub incremental_enabled: Option<bool>,
    pub full_backup_frequency: Option<String>,
    pub full_backup_day: Option<String>,
}

/// `retention`.
#[derive(Debug, Default, Deserialize)]
pub struct RawRetention {
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub max_backup_age_days: Option<u32>,
}
