//! Stage 3: a validated document -> [`Policy`] (defaults filled in, legacy forms gone), and a
//! `Policy` -> the modern policy file `ovplan normalize` prints.
//!
//! Defaults (docs/policy.md section 1 and `docs/policy-defaults.md`): incremental on, chains of at
//! most 10 incrementals, no forced full by age, 02:00, cluster `Default`, `virtio_scsi`,
//! 60 minutes, suffix `_restored`, no replace, keep the old VM, keep 7 daily / 4 weekly /
//! 3 monthly with no age limit, full backups weekly from Sunday, backup method `auto`, no
//! network map, new MAC addresses, the recorded CPU and memory, backup host `default`, at most
//! 4 backups on the source engine and 2 restores on the DR engine at once.

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{
    BackupMethod, BackupSettings, CpuOverride, DEFAULT_BACKUP_HOST, DEFAULT_MAX_CONCURRENT_BACKUPS,
    DEFAULT_MAX_CONCURRENT_RESTORES, DiskInterface, Engine, FullFrequency, FullPolicy, KeepPolicy,
    MacPolicy, MonthDay, Policy, RestoreSettings, Rule, SOURCE_LIMIT_KEY, Schedule,
    TARGET_LIMIT_KEY, VmPolicy, WeekOfMonth, default_anchor,
};
use super::names;
use super::raw::{
    RawBackupType, RawCpu, RawDay, RawMonth, RawPolicy, RawRestoreSettings, RawRetention,
    RawScheduleObject, RawVmPolicy,
};
use super::rules::{parse_date, parse_time};

/// A validated document that still does not fit the model: a gap between validation and
/// normalization, which is a bug in `ovplan`, reported rather than hidden.
#[derive(Debug, thiserror::Error)]
#[error(
    "internal error: the policy passed validation but {what}; please report this with the file"
)]
pub struct NormalizeError {
    what: String,
}

impl NormalizeError {
    /// What did not fit, without the "internal error" framing: for a runner config, which is
    /// read with [`schedule_from_json`] and may have been edited by hand.
    pub fn detail(&self) -> &str {
        &self.what
    }
}

fn gap(what: impl Into<String>) -> NormalizeError {
    NormalizeError { what: what.into() }
}

/// Turns a document that validated without errors into the model.
///
/// # Errors
/// Only when validation let through something the model cannot hold (a bug).
pub fn normalize(doc: &Value) -> Result<Policy, NormalizeError> {
    let raw = RawPolicy::deserialize(doc).map_err(|e| gap(e.to_string()))?;
    let settings = backup_settings(&raw)?;
    let vms = doc
        .get("vms_config")
        .and_then(Value::as_object)
        .ok_or_else(|| gap("`vms_config` is not an object"))?
        .iter()
        .map(|(name, vm)| vm_policy(name, vm, &settings))
        .collect::<Result<_, _>>()?;
    Ok(Policy {
        source: Engine {
            url: raw.source_ovirt_url,
            user: raw.source_ovirt_user,
            password: raw.source_ovirt_password,
            password_file: raw.source_ovirt_password_file,
            cert_path: raw.source_ovirt_cert_path,
            max_concurrent_jobs: raw
                .source_ovirt_max_concurrent_backups
                .unwrap_or(DEFAULT_MAX_CONCURRENT_BACKUPS),
        },
        target: raw.target_ovirt_url.map(|url| Engine {
            url,
            user: raw.target_ovirt_user.unwrap_or_default(),
            password: raw.target_ovirt_password,
            password_file: raw.target_ovirt_password_file,
            cert_path: raw.target_ovirt_cert_path,
            max_concurrent_jobs: raw
                .target_ovirt_max_concurrent_restores
                .unwrap_or(DEFAULT_MAX_CONCURRENT_RESTORES),
        }),
        checkpoints_file: checkpoints_file(raw.checkpoints_file, &raw.backup_directory),
        backup_directory: raw.backup_directory,
        backup_settings: settings,
        restore: restore_settings(raw.restore_settings)?,
        vms,
    })
}

/// `checkpoints_file`, by default `checkpoints.json` in the backup directory.
fn checkpoints_file(file: Option<String>, backup_directory: &str) -> String {
    file.unwrap_or_else(|| {
        format!(
            "{}/checkpoints.json",
            backup_directory.trim_end_matches('/')
        )
    })
}

fn backup_settings(raw: &RawPolicy) -> Result<BackupSettings, NormalizeError> {
    let s = &raw.backup_settings;
    Ok(BackupSettings {
        incremental_enabled: s.incremental_enabled.unwrap_or(true),
        max_incremental_chain_length: s.max_incremental_chain_length.unwrap_or(10),
        force_full_backup_days: s.force_full_backup_days.unwrap_or(0),
        default_backup_time: time(s.default_backup_time.as_deref(), default_time())?,
        timezone: s.timezone.clone(),
        backup_method: backup_method(s.backup_method.as_deref(), BackupMethod::Auto)?,
    })
}

/// A `backup_method` word, or `default` when there is none.
fn backup_method(
    word: Option<&str>,
    default: BackupMethod,
) -> Result<BackupMethod, NormalizeError> {
    word.map_or(Ok(default), |w| {
        BackupMethod::parse(w).ok_or_else(|| gap(format!("backup method `{w}`")))
    })
}

/// The time of day of schedules that give none (and of cron rules, which carry their own).
pub fn default_time() -> NaiveTime {
    NaiveTime::from_hms_opt(2, 0, 0).expect("02:00 is a time")
}

fn time(text: Option<&str>, default: NaiveTime) -> Result<NaiveTime, NormalizeError> {
    text.map_or(Ok(default), |t| {
        parse_time(t).ok_or_else(|| gap(format!("time `{t}`")))
    })
}

fn restore_settings(raw: RawRestoreSettings) -> Result<RestoreSettings, NormalizeError> {
    Ok(RestoreSettings {
        target_cluster_name: raw
            .target_cluster_name
            .unwrap_or_else(|| "Default".to_owned()),
        target_storage_domain_name: raw.target_storage_domain_name,
        disk_interface: raw
            .disk_interface
            .as_deref()
            .and_then(DiskInterface::parse)
            .unwrap_or(DiskInterface::VirtioScsi),
        disk_interface_given: raw.disk_interface.is_some(),
        timeout_minutes: raw.timeout_minutes.unwrap_or(60),
        auto_start_restored_vm: raw.auto_start_restored_vm.unwrap_or(false),
        vm_name_suffix: raw.vm_name_suffix.unwrap_or_else(|| "_restored".to_owned()),
        replace_existing_vm: raw.replace_existing_vm.unwrap_or(false),
        backup_old_vm: raw.backup_old_vm.unwrap_or(true),
        network_map: raw.network_map,
        mac_policy: mac_policy(raw.mac_policy.as_deref())?,
        cpu: raw.cpu.map(cpu_override).filter(|cpu| !cpu.is_empty()),
        memory_mib: raw.memory_mib,
    })
}

/// A `mac_policy` word; `new` when there is none, so DR and production never share a MAC.
fn mac_policy(word: Option<&str>) -> Result<MacPolicy, NormalizeError> {
    word.map_or(Ok(MacPolicy::New), |w| {
        MacPolicy::parse(w).ok_or_else(|| gap(format!("MAC policy `{w}`")))
    })
}

fn cpu_override(raw: RawCpu) -> CpuOverride {
    CpuOverride {
        sockets: raw.sockets,
        cores: raw.cores,
        threads: raw.threads,
    }
}

fn vm_policy(
    name: &str,
    value: &Value,
    settings: &BackupSettings,
) -> Result<VmPolicy, NormalizeError> {
    let policy = raw_vm_policy(name, value)?;
    let schedule = schedule(&policy.schedule, settings)?;
    let anchor = match schedule.rule {
        Rule::Biweekly { anchor, .. } => anchor,
        _ => default_anchor(),
    };
    Ok(VmPolicy {
        name: name.to_owned(),
        enabled: policy.enabled.unwrap_or(true),
        schedule,
        full: full_policy(&policy.backup_type, settings, anchor)?,
        backup_method: backup_method(policy.backup_method.as_deref(), settings.backup_method)?,
        keep: keep_policy(&policy.retention),
        auto_restore: policy.auto_restore.unwrap_or(false),
        backup_host: policy
            .backup_host
            .unwrap_or_else(|| DEFAULT_BACKUP_HOST.to_owned()),
    })
}

/// A VM's entry as written: a policy object, or (legacy) a bare 7-bit pattern as its schedule.
fn raw_vm_policy(name: &str, value: &Value) -> Result<RawVmPolicy, NormalizeError> {
    match value {
        Value::String(bits) => Ok(RawVmPolicy {
            enabled: None,
            schedule: Value::String(bits.clone()),
            backup_type: RawBackupType::default(),
            retention: RawRetention::default(),
            auto_restore: None,
            backup_method: None,
            backup_host: None,
        }),
        _ => RawVmPolicy::deserialize(value).map_err(|e| gap(format!("VM `{name}`: {e}"))),
    }
}

/// A VM's `backup_type`, its gaps filled from `backup_settings` and the defaults.
fn full_policy(
    bt: &RawBackupType,
    settings: &BackupSettings,
    anchor: NaiveDate,
) -> Result<FullPolicy, NormalizeError> {
    Ok(FullPolicy {
        incremental_enabled: bt
            .incremental_enabled
            .unwrap_or(settings.incremental_enabled),
        frequency: match bt.full_backup_frequency.as_deref() {
            None => FullFrequency::Weekly,
            Some(word) => {
                FullFrequency::parse(word).ok_or_else(|| gap(format!("frequency `{word}`")))?
            }
        },
        day: weekday(bt.full_backup_day.as_deref().unwrap_or("sunday"))?,
        anchor,
        max_chain_length: settings.max_incremental_chain_length,
        force_full_after_days: settings.force_full_backup_days,
    })
}

/// A VM's `retention`, with the defaults (7 daily, 4 weekly, 3 monthly, no age limit).
fn keep_policy(r: &RawRetention) -> KeepPolicy {
    KeepPolicy {
        daily: r.keep_daily.unwrap_or(7),
        weekly: r.keep_weekly.unwrap_or(4),
        monthly: r.keep_monthly.unwrap_or(3),
        max_age_days: r.max_backup_age_days.unwrap_or(0),
    }
}

fn weekday(name: &str) -> Result<Weekday, NormalizeError> {
    names::weekday(name).ok_or_else(|| gap(format!("weekday `{name}`")))
}

fn schedule(raw: &Value, settings: &BackupSettings) -> Result<Schedule, NormalizeError> {
    let object;
    let (rule, time_text, zone) = match raw {
        Value::String(bits) => (seven_bits(bits)?, None, None),
        _ => {
            object =
                RawScheduleObject::deserialize(raw).map_err(|e| gap(format!("schedule: {e}")))?;
            (
                object_rule(&object)?,
                object.time.as_deref(),
                object.timezone.clone(),
            )
        }
    };
    Ok(Schedule {
        rule,
        time: time(time_text, settings.default_backup_time)?,
        timezone: zone.or_else(|| settings.timezone.clone()),
    })
}

/// A schedule in its modern JSON form (as `schedule_json` writes it, and runner configs hold it)
/// back into the model.
///
/// # Errors
/// When the value is not a schedule this crate wrote.
pub fn schedule_from_json(value: &Value) -> Result<Schedule, NormalizeError> {
    let settings = BackupSettings {
        incremental_enabled: true,
        max_incremental_chain_length: 0,
        force_full_backup_days: 0,
        default_backup_time: default_time(),
        timezone: None,
        backup_method: BackupMethod::Auto,
    };
    schedule(value, &settings)
}

/// A legacy 7-bit pattern (Monday first) as the plainest simple rule.
///
/// # Errors
/// A pattern with no day set, or not seven characters long.
pub fn seven_bits(bits: &str) -> Result<Rule, NormalizeError> {
    let days: Vec<Weekday> = bits
        .chars()
        .enumerate()
        .filter(|(_, c)| *c == '1')
        .map(|(i, _)| names::weekday_from_monday(i))
        .collect();
    Ok(match bits {
        "1111111" => Rule::Daily,
        "1111100" => Rule::Weekdays,
        "0000011" => Rule::Weekends,
        _ if days.is_empty() || bits.len() != 7 => return Err(gap(format!("pattern `{bits}`"))),
        _ => Rule::Weekly(days),
    })
}

fn object_rule(o: &RawScheduleObject) -> Result<Rule, NormalizeError> {
    match o.kind.as_str() {
        "simple" => simple_rule(o),
        "advanced" => advanced_rule(o),
        "cron" => Ok(Rule::Cron(
            o.expression
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        )),
        "custom" => seven_bits(o.pattern.as_deref().unwrap_or_default()),
        other => Err(gap(format!("schedule type `{other}`"))),
    }
}

fn simple_rule(o: &RawScheduleObject) -> Result<Rule, NormalizeError> {
    let day = || weekday(o.day.as_deref().unwrap_or("sunday"));
    Ok(match o.pattern.as_deref().unwrap_or_default() {
        "daily" => Rule::Daily,
        "weekdays" => Rule::Weekdays,
        "weekends" => Rule::Weekends,
        "weekly" => match &o.days {
            Some(days) => Rule::Weekly(weekdays(days)?),
            None => Rule::Weekly(vec![day()?]),
        },
        "biweekly" => Rule::Biweekly {
            day: day()?,
            anchor: match o.anchor_date.as_deref() {
                Some(text) => parse_date(text).ok_or_else(|| gap(format!("date `{text}`")))?,
                None => default_anchor(),
            },
        },
        "monthly" => Rule::Monthly(month_day(
            o.day_of_month.as_ref().unwrap_or(&RawDay::Number(1)),
        )?),
        other => return Err(gap(format!("pattern `{other}`"))),
    })
}

fn advanced_rule(o: &RawScheduleObject) -> Result<Rule, NormalizeError> {
    let months = months(o.months.as_deref().unwrap_or_default())?;
    if let Some(days) = &o.days_of_month {
        let mut days = days.iter().map(month_day).collect::<Result<Vec<_>, _>>()?;
        days.sort_unstable();
        days.dedup();
        return Ok(Rule::DaysOfMonth { days, months });
    }
    let every_week = [1, 2, 3, 4, 5].map(RawDay::Number);
    let mut weeks = o
        .weeks_of_month
        .as_deref()
        .unwrap_or(&every_week)
        .iter()
        .map(week_of_month)
        .collect::<Result<Vec<_>, _>>()?;
    weeks.sort_unstable();
    weeks.dedup();
    Ok(Rule::NthWeekdays {
        weekdays: weekdays(o.weekdays.as_deref().unwrap_or_default())?,
        weeks,
        months,
    })
}

fn weekdays(names: &[String]) -> Result<Vec<Weekday>, NormalizeError> {
    let mut days = names
        .iter()
        .map(|n| weekday(n))
        .collect::<Result<Vec<_>, _>>()?;
    days.sort_by_key(Weekday::num_days_from_monday);
    days.dedup();
    Ok(days)
}

fn months(raw: &[RawMonth]) -> Result<Vec<u32>, NormalizeError> {
    let mut months = raw
        .iter()
        .map(|m| match m {
            RawMonth::Number(n) if (1..=12).contains(n) => Ok(*n),
            RawMonth::Name(name) => {
                names::month(name).ok_or_else(|| gap(format!("month `{name}`")))
            }
            RawMonth::Number(n) => Err(gap(format!("month {n}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    months.sort_unstable();
    months.dedup();
    Ok(months)
}

fn month_day(raw: &RawDay) -> Result<MonthDay, NormalizeError> {
    match raw {
        RawDay::Number(n) if (1..=31).contains(n) => Ok(MonthDay::Day(*n)),
        RawDay::Word(w) if w == "last" => Ok(MonthDay::Last),
        other => Err(gap(format!("day of month {}", day_text(other)))),
    }
}

fn week_of_month(raw: &RawDay) -> Result<WeekOfMonth, NormalizeError> {
    match raw {
        RawDay::Number(n) if (1..=5).contains(n) => Ok(WeekOfMonth::Nth(*n)),
        RawDay::Word(w) if w == "last" => Ok(WeekOfMonth::Last),
        other => Err(gap(format!("week of month {}", day_text(other)))),
    }
}

fn day_text(raw: &RawDay) -> String {
    match raw {
        RawDay::Number(n) => n.to_string(),
        RawDay::Word(w) => format!("`{w}`"),
    }
}

/// The policy in its modern form: what `ovplan normalize` prints. It validates against the same
/// schema, and normalizing it again gives the same value.
pub fn to_json(policy: &Policy) -> Value {
    let mut root = Map::new();
    engine_json(&mut root, "source", &policy.source);
    if let Some(target) = &policy.target {
        engine_json(&mut root, "target", target);
    }
    root.insert("backup_directory".into(), json!(policy.backup_directory));
    root.insert("checkpoints_file".into(), json!(policy.checkpoints_file));
    root.insert(
        "backup_settings".into(),
        settings_json(&policy.backup_settings),
    );
    root.insert("restore_settings".into(), restore_json(&policy.restore));
    let vms: Map<String, Value> = policy
        .vms
        .iter()
        .map(|vm| (vm.name.clone(), vm_json(vm)))
        .collect();
    root.insert("vms_config".into(), Value::Object(vms));
    Value::Object(root)
}

fn settings_json(s: &BackupSettings) -> Value {
    let mut settings = Map::new();
    settings.insert("incremental_enabled".into(), json!(s.incremental_enabled));
    settings.insert(
        "max_incremental_chain_length".into(),
        json!(s.max_incremental_chain_length),
    );
    settings.insert(
        "force_full_backup_days".into(),
        json!(s.force_full_backup_days),
    );
    settings.insert(
        "default_backup_time".into(),
        json!(hhmm(s.default_backup_time)),
    );
    insert_some(&mut settings, "timezone", s.timezone.as_ref());
    settings.insert("backup_method".into(), json!(s.backup_method.as_str()));
    Value::Object(settings)
}

fn engine_json(root: &mut Map<String, Value>, side: &str, engine: &Engine) {
    root.insert(format!("{side}_ovirt_url"), json!(engine.url));
    root.insert(format!("{side}_ovirt_user"), json!(engine.user));
    insert_some(
        root,
        &format!("{side}_ovirt_password"),
        engine.password.as_ref(),
    );
    insert_some(
        root,
        &format!("{side}_ovirt_password_file"),
        engine.password_file.as_ref(),
    );
    insert_some(
        root,
        &format!("{side}_ovirt_cert_path"),
        engine.cert_path.as_ref(),
    );
    root.insert(
        limit_key(side).to_owned(),
        json!(engine.max_concurrent_jobs),
    );
}

/// The key of an engine's limit of concurrent jobs: backups on the source, restores on the DR
/// engine.
fn limit_key(side: &str) -> &'static str {
    if side == "source" {
        SOURCE_LIMIT_KEY
    } else {
        TARGET_LIMIT_KEY
    }
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), json!(value));
    }
}

fn restore_json(r: &RestoreSettings) -> Value {
    let mut map = Map::new();
    map.insert("target_cluster_name".into(), json!(r.target_cluster_name));
    insert_some(
        &mut map,
        "target_storage_domain_name",
        r.target_storage_domain_name.as_ref(),
    );
    // Only when the policy sets it: it then overrides the interfaces a point recorded, and a
    // default written here would turn into such an override when read back.
    if r.disk_interface_given {
        map.insert("disk_interface".into(), json!(r.disk_interface.as_str()));
    }
    map.insert("timeout_minutes".into(), json!(r.timeout_minutes));
    map.insert(
        "auto_start_restored_vm".into(),
        json!(r.auto_start_restored_vm),
    );
    map.insert("vm_name_suffix".into(), json!(r.vm_name_suffix));
    map.insert("replace_existing_vm".into(), json!(r.replace_existing_vm));
    map.insert("backup_old_vm".into(), json!(r.backup_old_vm));
    dr_vm_json(&mut map, r);
    Value::Object(map)
}

/// The keys that shape the DR VM (issue 16): the defaults written, the overrides when set.
fn dr_vm_json(map: &mut Map<String, Value>, r: &RestoreSettings) {
    map.insert("network_map".into(), json!(r.network_map));
    map.insert("mac_policy".into(), json!(r.mac_policy.as_str()));
    if let Some(cpu) = &r.cpu {
        map.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = r.memory_mib {
        map.insert("memory_mib".into(), json!(memory));
    }
}

fn vm_json(vm: &VmPolicy) -> Value {
    json!({
        "enabled": vm.enabled,
        "schedule": schedule_json(&vm.schedule),
        "backup_type": {
            "incremental_enabled": vm.full.incremental_enabled,
            "full_backup_frequency": vm.full.frequency.as_str(),
            "full_backup_day": names::weekday_name(vm.full.day),
        },
        "backup_method": vm.backup_method.as_str(),
        "retention": {
            "keep_daily": vm.keep.daily,
            "keep_weekly": vm.keep.weekly,
            "keep_monthly": vm.keep.monthly,
            "max_backup_age_days": vm.keep.max_age_days,
        },
        "auto_restore": vm.auto_restore,
        "backup_host": vm.backup_host,
    })
}

/// The modern JSON of one schedule.
pub fn schedule_json(schedule: &Schedule) -> Value {
    let mut map = Map::new();
    let simple = |map: &mut Map<String, Value>, pattern: &str| {
        map.insert("type".into(), json!("simple"));
        map.insert("pattern".into(), json!(pattern));
    };
    match &schedule.rule {
        Rule::Daily => simple(&mut map, "daily"),
        Rule::Weekdays => simple(&mut map, "weekdays"),
        Rule::Weekends => simple(&mut map, "weekends"),
        Rule::Weekly(days) => {
            simple(&mut map, "weekly");
            map.insert("days".into(), weekday_list(days));
        }
        Rule::Biweekly { day, anchor } => {
            simple(&mut map, "biweekly");
            biweekly_json(&mut map, *day, *anchor);
        }
        Rule::Monthly(day) => {
            simple(&mut map, "monthly");
            map.insert("day_of_month".into(), month_day_json(*day));
        }
        Rule::DaysOfMonth { days, months } => days_of_month_json(&mut map, days, months),
        Rule::NthWeekdays {
            weekdays,
            weeks,
            months,
        } => nth_weekdays_json(&mut map, weekdays, weeks, months),
        Rule::Cron(expression) => {
            map.insert("type".into(), json!("cron"));
            map.insert("expression".into(), json!(expression));
        }
    }
    if !matches!(schedule.rule, Rule::Cron(_)) {
        map.insert("time".into(), json!(hhmm(schedule.time)));
    }
    insert_some(&mut map, "timezone", schedule.timezone.as_ref());
    Value::Object(map)
}

fn biweekly_json(map: &mut Map<String, Value>, day: Weekday, anchor: NaiveDate) {
    map.insert("day".into(), json!(names::weekday_name(day)));
    map.insert(
        "anchor_date".into(),
        json!(anchor.format("%Y-%m-%d").to_string()),
    );
}

fn days_of_month_json(map: &mut Map<String, Value>, days: &[MonthDay], months: &[u32]) {
    map.insert("type".into(), json!("advanced"));
    map.insert(
        "days_of_month".into(),
        days.iter().map(|d| month_day_json(*d)).collect(),
    );
    months_json(map, months);
}

fn nth_weekdays_json(
    map: &mut Map<String, Value>,
    weekdays: &[Weekday],
    weeks: &[WeekOfMonth],
    months: &[u32],
) {
    map.insert("type".into(), json!("advanced"));
    map.insert("weekdays".into(), weekday_list(weekdays));
    map.insert(
        "weeks_of_month".into(),
        weeks.iter().map(|w| week_json(*w)).collect(),
    );
    months_json(map, months);
}

fn weekday_list(days: &[Weekday]) -> Value {
    days.iter()
        .map(|d| json!(names::weekday_name(*d)))
        .collect()
}

fn months_json(map: &mut Map<String, Value>, months: &[u32]) {
    if !months.is_empty() {
        map.insert("months".into(), json!(months));
    }
}

fn month_day_json(day: MonthDay) -> Value {
    match day {
        MonthDay::Day(n) => json!(n),
        MonthDay::Last => json!("last"),
    }
}

fn week_json(week: WeekOfMonth) -> Value {
    match week {
        WeekOfMonth::Nth(n) => json!(n),
        WeekOfMonth::Last => json!("last"),
    }
}

/// `HH:MM`.
pub fn hhmm(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_bits_become_the_plainest_rule() {
        use Weekday::*;
        let cases = [
            ("1111111", Rule::Daily),
            ("1111100", Rule::Weekdays),
            ("0000011", Rule::Weekends),
            ("1000001", Rule::Weekly(vec![Mon, Sun])),
            ("0010000", Rule::Weekly(vec![Wed])),
        ];
        for (bits, rule) in cases {
            assert_eq!(seven_bits(bits).expect("valid bits"), rule, "{bits}");
        }
        assert!(seven_bits("0000000").is_err());
    }

    #[test]
    fn a_vms_backup_method_overrides_the_settings_which_default_to_auto() {
        let policy = |settings: Value| {
            normalize(&json!({
                "source_ovirt_url": "https://engine.example.com/ovirt-engine/api",
                "source_ovirt_user": "backup@internal",
                "backup_directory": "/backup",
                "backup_settings": settings,
                "vms_config": {
                    "own": {"schedule": "1111111", "backup_method": "backup_api"},
                    "inherits": "1111111",
                },
            }))
            .expect("normalizes")
        };
        let methods = |p: &Policy| p.vms.iter().map(|vm| vm.backup_method).collect::<Vec<_>>();
        let snapshot = policy(json!({"backup_method": "snapshot"}));
        assert_eq!(
            methods(&snapshot),
            [BackupMethod::BackupApi, BackupMethod::Snapshot]
        );
        let default = policy(json!({}));
        assert_eq!(
            methods(&default),
            [BackupMethod::BackupApi, BackupMethod::Auto]
        );
        let written = to_json(&snapshot);
        assert_eq!(written["backup_settings"]["backup_method"], "snapshot");
        assert_eq!(
            written["vms_config"]["inherits"]["backup_method"],
            "snapshot"
        );
        assert_eq!(
            to_json(&default)["backup_settings"]["backup_method"],
            "auto"
        );
    }

    #[test]
    fn the_dr_vm_settings_default_to_none_and_new_and_round_trip() {
        let policy = |restore: Value| {
            normalize(&json!({
                "source_ovirt_url": "https://engine.example.com/ovirt-engine/api",
                "source_ovirt_user": "backup@internal",
                "backup_directory": "/backup",
                "restore_settings": restore,
                "vms_config": {"a": "1111111"},
            }))
            .expect("normalizes")
        };
        let default = policy(json!({"cpu": {}}));
        let r = &default.restore;
        assert!(r.network_map.is_empty());
        assert_eq!(
            (r.mac_policy, r.cpu, r.memory_mib),
            (MacPolicy::New, None, None)
        );
        let written = to_json(&default)["restore_settings"].clone();
        assert_eq!(
            (&written["network_map"], &written["mac_policy"]),
            (&json!({}), &json!("new")),
            "the defaults are written"
        );
        assert!(written.get("cpu").is_none() && written.get("memory_mib").is_none());
        let set = policy(json!({
            "network_map": {"prod-lan": "dr-lan"}, "mac_policy": "keep",
            "cpu": {"cores": 2}, "memory_mib": 4096,
        }));
        let cpu = CpuOverride {
            cores: Some(2),
            ..CpuOverride::default()
        };
        assert_eq!(set.restore.cpu, Some(cpu));
        let written = to_json(&set);
        assert_eq!(written["restore_settings"]["cpu"], json!({"cores": 2}));
        assert_eq!(normalize(&written).expect("normalizes again"), set);
    }
}
