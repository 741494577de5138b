//! The validated policy: what every later stage (compile, `ovrun`) works from.
//!
//! Every default is filled in and every legacy form is gone: a 7-bit pattern is already a
//! `Rule`, a weekday is a `chrono::Weekday`, a disk interface is the engine's spelling. Nothing
//! here is optional that "should be set by now".

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// The default `anchor_date` of biweekly schedules and full backups.
pub fn default_anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("2024-01-01 is a date")
}

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The production engine, backed up from.
    pub source: Engine,
    /// The DR engine, restored into, when configured.
    pub target: Option<Engine>,
    /// Where the catalog lives.
    pub backup_directory: String,
    /// The predecessor's checkpoints file, kept up to date.
    pub checkpoints_file: String,
    /// Defaults for every VM.
    pub backup_settings: BackupSettings,
    /// How restores into DR are made.
    pub restore: RestoreSettings,
    /// The VMs, in file order.
    pub vms: Vec<VmPolicy>,
}

/// How to reach one engine. A password is never copied into compiled artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// API URL.
    pub url: String,
    /// User with profile.
    pub user: String,
    /// An inline password (deprecated; warned about).
    pub password: Option<String>,
    /// The file holding the password.
    pub password_file: Option<String>,
    /// The engine's CA certificate.
    pub cert_path: Option<String>,
    /// The most `ovrun` jobs that work on this engine at once (issue 14): backups on the source
    /// engine (`source_ovirt_max_concurrent_backups`), restores on the DR engine
    /// (`target_ovirt_max_concurrent_restores`); 1 to [`MAX_CONCURRENT_JOBS`].
    pub max_concurrent_jobs: u32,
}

/// The default of `source_ovirt_max_concurrent_backups`: each running backup holds an image
/// transfer and a scratch disk or snapshot on the production engine.
pub const DEFAULT_MAX_CONCURRENT_BACKUPS: u32 = 4;

/// The default of `target_ovirt_max_concurrent_restores`: a restore writes whole disks.
pub const DEFAULT_MAX_CONCURRENT_RESTORES: u32 = 2;

/// The most jobs an engine limit may allow at once: each is a lock file on the backup host,
/// and no engine serves more transfers than this well.
pub const MAX_CONCURRENT_JOBS: u32 = 64;

/// The policy's key of the source engine's limit (flat, like the engine's other keys).
pub const SOURCE_LIMIT_KEY: &str = "source_ovirt_max_concurrent_backups";

/// The policy's key of the DR engine's limit.
pub const TARGET_LIMIT_KEY: &str = "target_ovirt_max_concurrent_restores";

/// The backup host of a VM the policy assigns to none.
pub const DEFAULT_BACKUP_HOST: &str = "default";

/// Policy-wide backup defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Incremental backups between fulls.
    pub incremental_enabled: bool,
    /// At most this many incrementals after a full.
    pub max_incremental_chain_length: u32,
    /// A full when the chain's full is this many days old; 0 = off.
    pub force_full_backup_days: u32,
    /// Time of schedules without one.
    pub default_backup_time: NaiveTime,
    /// Time zone of schedules without one; `None` = host local time.
    pub timezone: Option<String>,
    /// How the disks of VMs without a method of their own are read.
    pub backup_method: BackupMethod,
}

/// How restores into DR are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSettings {
    /// DR cluster.
    pub target_cluster_name: String,
    /// DR storage domain (required by validation when a VM restores automatically).
    pub target_storage_domain_name: Option<String>,
    /// How restored disks are attached where a point recorded no interface.
    pub disk_interface: DiskInterface,
    /// The policy sets `disk_interface`: it then overrides each disk's recorded interface.
    pub disk_interface_given: bool,
    /// Restore timeout.
    pub timeout_minutes: u32,
    /// Start the VM after restoring it.
    pub auto_start_restored_vm: bool,
    /// Appended to the VM's name.
    pub vm_name_suffix: String,
    /// Replace a VM of the same name.
    pub replace_existing_vm: bool,
    /// Rename, rather than remove, the VM replaced.
    pub backup_old_vm: bool,
    /// Production network or vNIC profile name -> DR vNIC profile name (issue 16).
    pub network_map: BTreeMap<String, String>,
    /// Whether the DR VM's NICs keep production's MAC addresses.
    pub mac_policy: MacPolicy,
    /// CPU topology of the DR VM, where it differs from the recorded one.
    pub cpu: Option<CpuOverride>,
    /// Memory of the DR VM in MiB; `None` = the recorded memory.
    pub memory_mib: Option<u64>,
}

/// One VM's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPolicy {
    /// The engine's VM name, exactly as written.
    pub name: String,
    /// Whether it is backed up at all.
    pub enabled: bool,
    /// When.
    pub schedule: Schedule,
    /// Full or incremental.
    pub full: FullPolicy,
    /// How its disks are read (its own, else `backup_settings`').
    pub backup_method: BackupMethod,
    /// What to keep.
    pub keep: KeepPolicy,
    /// Restore each new point into DR.
    pub auto_restore: bool,
    /// The backup host whose catalog holds the VM's points and whose worker backs it up
    /// (issue 14): a name safe for a Celery queue, a file name and a unit
    /// ([`crate::plan::names::unsafe_backup_host`]); [`DEFAULT_BACKUP_HOST`] when not given.
    pub backup_host: String,
}

/// When a VM is backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Which days (and, for cron, times).
    pub rule: Rule,
    /// Time of day; ignored by cron rules, which carry their own.
    pub time: NaiveTime,
    /// IANA zone; `None` = the host's local time.
    pub timezone: Option<String>,
}

/// The days a schedule fires on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Every day.
    Daily,
    /// Monday to Friday.
    Weekdays,
    /// Saturday and Sunday.
    Weekends,
    /// These weekdays every week (Monday-first order, no repeats).
    Weekly(Vec<Weekday>),
    /// `day` in every second ISO week, counted from the week holding `anchor`.
    Biweekly {
        /// The weekday.
        day: Weekday,
        /// A date in a week that fires.
        anchor: NaiveDate,
    },
    /// That day each month; months without it are skipped.
    Monthly(MonthDay),
    /// Those days of the listed months (all months when empty).
    DaysOfMonth {
        /// Days, ascending, `Last` at the end.
        days: Vec<MonthDay>,
        /// Months 1-12, ascending; empty = every month.
        months: Vec<u32>,
    },
    /// The n-th occurrences of weekdays in the listed months.
    NthWeekdays {
        /// Weekdays, Monday-first.
        weekdays: Vec<Weekday>,
        /// Which occurrences, ascending, `Last` at the end.
        weeks: Vec<WeekOfMonth>,
        /// Months 1-12, ascending; empty = every month.
        months: Vec<u32>,
    },
    /// A 5-field cron expression, with cron's day-of-month/day-of-week OR rule.
    Cron(String),
}

/// A day of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MonthDay {
    /// 1-31.
    Day(u32),
    /// The month's last day.
    Last,
}

/// Which occurrence of a weekday in a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WeekOfMonth {
    /// 1-5: days 7n-6 to 7n.
    Nth(u32),
    /// The last occurrence.
    Last,
}

/// A disk interface the engine knows (API `DiskInterface`); serialized in the engine's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskInterface {
    /// `virtio_scsi`, the default.
    VirtioScsi,
    /// `virtio`.
    Virtio,
    /// `sata`.
    Sata,
    /// `ide`.
    Ide,
    /// `spapr_vscsi`.
    SpaprVscsi,
}

impl DiskInterface {
    /// The engine's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskInterface::VirtioScsi => "virtio_scsi",
            DiskInterface::Virtio => "virtio",
            DiskInterface::Sata => "sata",
            DiskInterface::Ide => "ide",
            DiskInterface::SpaprVscsi => "spapr_vscsi",
        }
    }

    /// The interface a policy names, in any case (the predecessor wrote `SATA`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "virtio_scsi" => DiskInterface::VirtioScsi,
            "virtio" => DiskInterface::Virtio,
            "sata" => DiskInterface::Sata,
            "ide" => DiskInterface::Ide,
            "spapr_vscsi" => DiskInterface::SpaprVscsi,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DiskInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often a full backup is due (policy.md section 3, rule 3); serialized as the policy's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FullFrequency {
    /// Every run.
    Daily,
    /// Once since each `full_backup_day`.
    Weekly,
    /// Once since each `full_backup_day` of an on-week.
    Biweekly,
    /// Once since each 1st of the month.
    Monthly,
    /// Only when the chain demands it.
    Never,
}

impl FullFrequency {
    /// The policy's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FullFrequency::Daily => "daily",
            FullFrequency::Weekly => "weekly",
            FullFrequency::Biweekly => "biweekly",
            FullFrequency::Monthly => "monthly",
            FullFrequency::Never => "never",
        }
    }

    /// The frequency a policy word names.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "daily" => FullFrequency::Daily,
            "weekly" => FullFrequency::Weekly,
            "biweekly" => FullFrequency::Biweekly,
            "monthly" => FullFrequency::Monthly,
            "never" => FullFrequency::Never,
            _ => return None,
        })
    }
}

/// How `ovrun` reads a VM's disks (issue 13): the engine's incremental backup API (4.4+), VM
/// snapshots (every engine, every disk), or whichever the engine offers (`auto`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupMethod {
    /// The backup API where the engine has it, else snapshots.
    #[default]
    Auto,
    /// Only the backup API (an engine without it is a configuration error).
    BackupApi,
    /// Only VM snapshots.
    Snapshot,
}

impl BackupMethod {
    /// Every method, in the order the policy's documentation lists them.
    pub const ALL: [BackupMethod; 3] = [
        BackupMethod::Auto,
        BackupMethod::BackupApi,
        BackupMethod::Snapshot,
    ];

    /// The policy's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMethod::Auto => "auto",
            BackupMethod::BackupApi => "backup_api",
            BackupMethod::Snapshot => "snapshot",
        }
    }

    /// The method a policy word names.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "auto" => BackupMethod::Auto,
            "backup_api" => BackupMethod::BackupApi,
            "snapshot" => BackupMethod::Snapshot,
            _ => return None,
        })
    }
}

/// Whether a restored VM's NICs keep production's MAC addresses (issue 16). `new` by default,
/// so that a DR VM and its production VM never share a MAC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacPolicy {
    /// Production's MACs, as recorded in the backup point.
    Keep,
    /// MACs from the DR engine's pool.
    #[default]
    New,
}

impl MacPolicy {
    /// Every policy, in the order the policy's documentation lists them.
    pub const ALL: [MacPolicy; 2] = [MacPolicy::New, MacPolicy::Keep];

    /// The policy's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MacPolicy::Keep => "keep",
            MacPolicy::New => "new",
        }
    }

    /// The MAC policy a policy word names.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == word)
    }
}

/// The most sockets, cores per socket or threads per core a CPU override may give.
pub const MAX_CPU_COUNT: u32 = 256;

/// The most memory, in MiB, a memory override may give (16 TiB, above every engine's limit).
pub const MAX_MEMORY_MIB: u64 = 16 * 1024 * 1024;

/// A DR VM's CPU topology where it differs from the production VM's recorded one (issue 16):
/// each count is 1 to [`MAX_CPU_COUNT`]; a count left out keeps the recorded one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuOverride {
    /// Sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u32>,
    /// Cores per socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Threads per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

impl CpuOverride {
    /// The override's counts by the policy's names, in its order.
    pub fn counts(&self) -> [(&'static str, Option<u32>); 3] {
        [
            ("sockets", self.sockets),
            ("cores", self.cores),
            ("threads", self.threads),
        ]
    }

    /// Whether it overrides nothing (`{}`, which normalize drops).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| n.is_none())
    }
}

/// Full-or-incremental policy of one VM (policy.md section 3), with the settings it inherits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullPolicy {
    /// Rule 1.
    pub incremental_enabled: bool,
    /// Rule 3.
    pub frequency: FullFrequency,
    /// Rule 3: the weekday fulls are due from.
    pub day: Weekday,
    /// Rule 3, biweekly: a date in an on-week.
    pub anchor: NaiveDate,
    /// Rule 4.
    pub max_chain_length: u32,
    /// Rule 5; 0 = off.
    pub force_full_after_days: u32,
}

/// Retention of one VM (policy.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Newest point of each of the n most recent days with points.
    pub daily: u32,
    /// Likewise ISO weeks.
    pub weekly: u32,
    /// Likewise calendar months.
    pub monthly: u32,
    /// Older points are not kept by the rules above; 0 = no limit.
    pub max_age_days: u32,
}
