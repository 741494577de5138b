//! Stage 2b: the checks a JSON Schema cannot make (dates, times, cron, names, duplicates,
//! secrets), each with its own code.
//!
//! They run on the decoded document beside the schema check and tolerate any shape: a value of
//! the wrong type is the schema's to report, so these checks skip it.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::diagnostic::{Code, Diagnostic, Mark};
use super::model::BackupMethod;
use super::names::{self, MONTHS, WEEKDAYS};
use super::parse::DuplicateKey;
use super::source::escape_token;

/// Runs every rule on a decoded policy.
pub fn check(doc: &Value, duplicate_keys: &[DuplicateKey]) -> Vec<Diagnostic> {
    let mut rules = Rules {
        found: super::safety::check(doc),
    };
    rules.found.extend(super::restore_rules::check(doc));
    rules.found.extend(super::limit_rules::check(doc));
    rules.duplicate_keys(duplicate_keys);
    if let Some(root) = doc.as_object() {
        rules.engines(root);
        rules.settings(root);
        if let Some(vms) = root.get("vms_config").and_then(Value::as_object) {
            rules.vms(vms);
            rules.restore_target(root, vms);
        }
    }
    rules.found
}

/// The longest escaped VM name whose units' names fit systemd's 255 bytes
/// (`ovrun-restore-` and `.service` around it).
const MAX_ESCAPED_NAME: usize = 255 - "ovrun-restore-.service".len();

#[derive(Default)]
struct Rules {
    found: Vec<Diagnostic>,
}

fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape_token(token))
}

impl Rules {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.found.push(diagnostic);
    }

    fn duplicate_keys(&mut self, duplicates: &[DuplicateKey]) {
        for dup in duplicates {
            let pointer = child(&dup.object, &dup.key);
            let diagnostic = if dup.object == "/vms_config" {
                Diagnostic::new(Code::DuplicateVm, pointer.clone(), format!("VM `{}` is configured twice", dup.key))
                    .help("keep one entry per VM: JSON keeps only the last, so the first would be silently lost")
            } else {
                Diagnostic::new(
                    Code::DuplicateKey,
                    pointer.clone(),
                    format!("key `{}` is written twice", dup.key),
                )
                .help("remove one of them: JSON keeps only the last")
            };
            self.push(diagnostic.mark(Mark::Key).related(
                pointer,
                Mark::EarlierKey,
                "first written here",
            ));
        }
    }

    fn engines(&mut self, root: &Map<String, Value>) {
        self.engine(root, "source", true);
        let target_used = ["target_ovirt_url", "target_ovirt_user"]
            .iter()
            .any(|k| root.contains_key(*k));
        self.engine(root, "target", target_used);
    }

    fn engine(&mut self, root: &Map<String, Value>, side: &str, needs_password: bool) {
        let inline = format!("{side}_ovirt_password");
        let file = format!("{side}_ovirt_password_file");
        match (root.contains_key(&inline), root.contains_key(&file)) {
            (true, true) => self.push(
                Diagnostic::new(Code::BothPasswordForms, format!("/{inline}"), format!("both `{inline}` and `{file}` are set"))
                    .mark(Mark::Key)
                    .help(format!("remove `{inline}`: the password belongs in the file `{file}` names")),
            ),
            (true, false) => self.push(
                Diagnostic::new(Code::InlinePassword, format!("/{inline}"), format!("`{inline}` holds a password in the policy file"))
                    .mark(Mark::Key)
                    .help(format!("put the password in a file readable only by the backup user and set `{file}` to its path")),
            ),
            (false, false) if needs_password => {
                let user = format!("/{side}_ovirt_user");
                let at = if root.contains_key(&user[1..]) { user } else { String::new() };
                self.push(
                    Diagnostic::new(Code::MissingPassword, at, format!("no password is given for the {side} engine"))
                        .mark(Mark::Key)
                        .help(format!("set `{file}` to the path of a file holding the password")),
                );
            }
            _ => {}
        }
    }

    fn settings(&mut self, root: &Map<String, Value>) {
        if let Some(settings) = root.get("backup_settings").and_then(Value::as_object) {
            self.time(
                settings.get("default_backup_time"),
                "/backup_settings/default_backup_time",
            );
            self.timezone(settings.get("timezone"), "/backup_settings/timezone");
            self.backup_method(
                settings.get("backup_method"),
                "/backup_settings/backup_method",
            );
        }
        self.disk_interface(root);
    }

    fn disk_interface(&mut self, root: &Map<String, Value>) {
        let interface = root
            .get("restore_settings")
            .and_then(|r| r.get("disk_interface"))
            .and_then(Value::as_str);
        if let Some(interface) = interface.filter(|i| names::disk_interface(i).is_none()) {
            self.push(
                Diagnostic::new(
                    Code::UnknownDiskInterface,
                    "/restore_settings/disk_interface",
                    format!("the engine has no disk interface `{interface}`"),
                )
                .help(names::suggestion(interface, &names::DISK_INTERFACES)),
            );
        }
    }

    /// A `backup_method` (of `backup_settings` or of a VM) that names no method. Lower case
    /// only, like the policy's other closed sets; a value of another type is the schema's.
    fn backup_method(&mut self, method: Option<&Value>, pointer: &str) {
        let Some(Value::String(word)) = method else {
            return;
        };
        if BackupMethod::parse(word).is_none() {
            let words = BackupMethod::ALL.map(BackupMethod::as_str);
            self.push(
                Diagnostic::new(
                    Code::UnknownBackupMethod,
                    pointer,
                    format!(
                        "there is no backup method `{word}`; the methods are {}",
                        words.join(", ")
                    ),
                )
                .help(backup_method_help(word, &words)),
            );
        }
    }

    fn vms(&mut self, vms: &Map<String, Value>) {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (name, vm) in vms {
            let pointer = child("/vms_config", name);
            self.vm_name(name, &pointer);
            let folded = fold_name(name);
            if let Some(first) = seen.get(&folded) {
                self.push(
                    Diagnostic::new(
                        Code::DuplicateVm,
                        pointer.clone(),
                        format!("VM `{name}` is the same VM as `{first}`"),
                    )
                    .mark(Mark::Key)
                    .help("VM names are compared without case and extra spaces; keep one entry")
                    .related(
                        child("/vms_config", first),
                        Mark::Key,
                        "first configured here",
                    ),
                );
            } else {
                seen.insert(folded, name);
            }
            match vm {
                Value::String(bits) => self.seven_bits(bits, &pointer),
                Value::Object(policy) => self.vm_policy(policy, &pointer),
                _ => {}
            }
        }
    }

    fn vm_name(&mut self, name: &str, pointer: &str) {
        let too_long = || {
            (super::compile::systemd_escape(name).len() > MAX_ESCAPED_NAME).then_some(
                "it is too long for a unit name once escaped (`ovrun-restore-<escaped>.service` is at most 255 bytes)",
            )
        };
        if let Some(why) = names::unsafe_vm_name(name).or_else(too_long) {
            self.push(
                Diagnostic::new(Code::UnsafeVmName, pointer, format!("VM name `{}` cannot name a backup folder or unit: {why}", name.escape_debug()))
                    .mark(Mark::Key)
                    .help("use the VM's name as the engine shows it; it must not be empty, `.`, `..`, or hold `/` or control characters, and its unit name must fit 255 bytes"),
            );
        }
    }

    fn vm_policy(&mut self, policy: &Map<String, Value>, pointer: &str) {
        match policy.get("schedule") {
            Some(Value::String(bits)) => self.seven_bits(bits, &child(pointer, "schedule")),
            Some(Value::Object(schedule)) => self.schedule(schedule, &child(pointer, "schedule")),
            _ => {}
        }
        if let Some(day) = policy
            .get("backup_type")
            .and_then(|b| b.get("full_backup_day"))
        {
            self.weekday(day, &format!("{pointer}/backup_type/full_backup_day"));
        }
        self.backup_method(
            policy.get("backup_method"),
            &child(pointer, "backup_method"),
        );
        if let Some(retention) = policy.get("retention").and_then(Value::as_object) {
            self.retention(retention, &child(pointer, "retention"));
        }
    }

    fn schedule(&mut self, schedule: &Map<String, Value>, pointer: &str) {
        self.time(schedule.get("time"), &child(pointer, "time"));
        self.timezone(schedule.get("timezone"), &child(pointer, "timezone"));
        match schedule.get("type").and_then(Value::as_str) {
            Some("simple") => self.simple(schedule, pointer),
            Some("advanced") => self.advanced(schedule, pointer),
            Some("cron") => self.cron(schedule.get("expression"), &child(pointer, "expression")),
            Some("custom") => {
                if let Some(Value::String(bits)) = schedule.get("pattern") {
                    self.seven_bits(bits, &child(pointer, "pattern"));
                }
            }
            _ => {}
        }
    }

    fn simple(&mut self, schedule: &Map<String, Value>, pointer: &str) {
        if let Some(day) = schedule.get("day") {
            self.weekday(day, &child(pointer, "day"));
        }
        self.weekdays(schedule.get("days"), &child(pointer, "days"));
        if schedule.contains_key("day") && schedule.contains_key("days") {
            self.push(
                Diagnostic::new(
                    Code::BothDayForms,
                    child(pointer, "days"),
                    "both `day` and `days` are set",
                )
                .mark(Mark::Key)
                .help("use `days` (a list) or `day` (one weekday), not both"),
            );
        }
        if let Some(Value::String(date)) = schedule.get("anchor_date") {
            self.anchor_date(date, &child(pointer, "anchor_date"));
        }
    }

    fn advanced(&mut self, schedule: &Map<String, Value>, pointer: &str) {
        self.weekdays(schedule.get("weekdays"), &child(pointer, "weekdays"));
        if let Some(Value::Array(months)) = schedule.get("months") {
            let list = child(pointer, "months");
            for (i, month) in months.iter().enumerate() {
                self.month(month, &child(&list, &i.to_string()));
            }
        }
        let has = |k: &str| schedule.contains_key(k);
        if has("days_of_month") && has("weekdays") {
            self.push(
                Diagnostic::new(Code::BothDayForms, child(pointer, "weekdays"), "both `days_of_month` and `weekdays` are set")
                    .mark(Mark::Key)
                    .help("an advanced schedule names days one way: `days_of_month`, or `weekdays` with `weeks_of_month`; split it into two VMs' schedules or use a cron schedule"),
            );
        } else if has("weeks_of_month") && !has("weekdays") {
            self.push(
                Diagnostic::new(Code::WeeksWithoutWeekdays, child(pointer, "weeks_of_month"), "`weeks_of_month` is set without `weekdays`")
                    .mark(Mark::Key)
                    .help("add `weekdays`, e.g. \"weekdays\": [\"monday\"], to say which weekday of those weeks"),
            );
        } else if !has("days_of_month") && !has("weekdays") {
            self.push(
                Diagnostic::new(Code::NoDayForm, pointer, "this advanced schedule names no days")
                    .mark(Mark::Key)
                    .help("add `days_of_month` (e.g. [1, 15, \"last\"]) or `weekdays` with `weeks_of_month`"),
            );
        }
    }

    fn weekdays(&mut self, days: Option<&Value>, pointer: &str) {
        if let Some(Value::Array(days)) = days {
            for (i, day) in days.iter().enumerate() {
                self.weekday(day, &child(pointer, &i.to_string()));
            }
        }
    }

    fn weekday(&mut self, day: &Value, pointer: &str) {
        if let Some(name) = day.as_str().filter(|d| names::weekday(d).is_none()) {
            self.push(
                Diagnostic::new(
                    Code::UnknownWeekday,
                    pointer,
                    format!("`{name}` is not a weekday"),
                )
                .help(names::suggestion(name, &WEEKDAYS)),
            );
        }
    }

    fn month(&mut self, month: &Value, pointer: &str) {
        let known = match month {
            Value::String(name) => names::month(name).is_some(),
            Value::Number(n) => n.as_u64().is_some_and(|n| (1..=12).contains(&n)),
            _ => return,
        };
        if !known {
            let shown = month
                .as_str()
                .map_or_else(|| month.to_string(), str::to_owned);
            let help = match month.as_str() {
                Some(name) => names::suggestion(name, &MONTHS),
                None => "months are numbered 1 (January) to 12 (December)".to_owned(),
            };
            self.push(
                Diagnostic::new(
                    Code::UnknownMonth,
                    pointer,
                    format!("`{shown}` is not a month"),
                )
                .help(help),
            );
        }
    }

    fn seven_bits(&mut self, bits: &str, pointer: &str) {
        let count = bits.chars().count();
        if count != 7 || !bits.chars().all(|c| c == '0' || c == '1') {
            let why = if count == 7 {
                "it holds characters other than 0 and 1".to_owned()
            } else {
                format!("it has {count} characters, not 7")
            };
            self.push(
                Diagnostic::new(
                    Code::BadSevenBits,
                    pointer,
                    format!(
                        "`{}` is not a 7-bit weekday pattern: {why}",
                        bits.escape_debug()
                    ),
                )
                .help("write seven 0/1 characters, Monday first: \"1111100\" is Monday to Friday"),
            );
        } else if !bits.contains('1') {
            self.push(
                Diagnostic::new(Code::NeverFires, pointer, "pattern `0000000` selects no weekday, so this VM would never be backed up")
                    .help("set a 1 for each weekday to back up, or set \"enabled\": false to stop backing it up"),
            );
        }
    }

    fn time(&mut self, time: Option<&Value>, pointer: &str) {
        if let Some(Value::String(text)) = time
            && parse_time(text).is_none()
        {
            self.push(
                Diagnostic::new(
                    Code::BadTime,
                    pointer,
                    format!("`{}` is not a time of day", text.escape_debug()),
                )
                .help("write HH:MM on a 24-hour clock, from 00:00 to 23:59, e.g. \"02:30\""),
            );
        }
    }

    fn timezone(&mut self, zone: Option<&Value>, pointer: &str) {
        if let Some(Value::String(name)) = zone
            && name.parse::<chrono_tz::Tz>().is_err()
        {
            let help = match names::did_you_mean(
                name,
                chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()),
            ) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "use an IANA time zone name such as UTC or Europe/Berlin".to_owned(),
            };
            self.push(
                Diagnostic::new(
                    Code::UnknownTimezone,
                    pointer,
                    format!("`{name}` is not an IANA time zone"),
                )
                .help(help),
            );
        }
    }

    fn anchor_date(&mut self, date: &str, pointer: &str) {
        if parse_date(date).is_none() {
            self.push(
                Diagnostic::new(Code::BadAnchorDate, pointer, format!("`{}` is not a date", date.escape_debug()))
                    .help("write a calendar date as YYYY-MM-DD, e.g. \"2024-01-01\"; the ISO week holding it fires"),
            );
        }
    }

    fn cron(&mut self, expression: Option<&Value>, pointer: &str) {
        let Some(Value::String(expression)) = expression else {
            return;
        };
        if let Err(problem) = super::cron::CronSpec::parse(expression) {
            self.push(
                Diagnostic::new(
                    Code::BadCron,
                    pointer,
                    format!("cron expression `{expression}` does not parse: {}", problem.message),
                )
                .mark(Mark::Inner(problem.span))
                .help("write five fields, minute hour day-of-month month day-of-week (e.g. \"30 2 * * 1-5\"), or @daily, @weekly, @monthly, @yearly"),
            );
        }
    }

    fn retention(&mut self, retention: &Map<String, Value>, pointer: &str) {
        let value =
            |k: &str, default: u64| retention.get(k).and_then(Value::as_u64).unwrap_or(default);
        let keeps_nothing = value("keep_daily", 7) == 0
            && value("keep_weekly", 4) == 0
            && value("keep_monthly", 3) == 0;
        if keeps_nothing && value("max_backup_age_days", 0) == 0 {
            self.push(
                Diagnostic::new(Code::KeepsEverything, pointer, "this retention keeps every backup point forever")
                    .mark(Mark::Key)
                    .help("all keep_* are 0 and there is no max_backup_age_days, which means keep everything; set keep_daily/keep_weekly/keep_monthly or an age limit"),
            );
        }
    }

    fn restore_target(&mut self, root: &Map<String, Value>, vms: &Map<String, Value>) {
        let auto = vms.iter().find(|(_, vm)| {
            vm.get("auto_restore") == Some(&Value::Bool(true))
                && vm.get("enabled") != Some(&Value::Bool(false))
        });
        let Some((name, _)) = auto else {
            return;
        };
        let missing = missing_restore_target(root);
        if !missing.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::MissingRestoreTarget,
                    format!("{}/auto_restore", child("/vms_config", name)),
                    format!(
                        "VM `{name}` restores into DR automatically, but {} {} not set",
                        missing.join(", "),
                        if missing.len() == 1 { "is" } else { "are" }
                    ),
                )
                .mark(Mark::Key)
                .help("set the DR engine and storage domain to restore into, or set \"auto_restore\": false"),
            );
        }
    }
}

/// "Did you mean" for a near miss (`snapshots`, `SNAPSHOT`), else what each method does.
fn backup_method_help(word: &str, words: &[&str]) -> String {
    match names::did_you_mean(word, words.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "auto reads the disks through the engine's incremental backup API where the engine has it (4.4 and later) and through VM snapshots where it does not; backup_api only through the backup API; snapshot only through VM snapshots (every engine and every disk, raw ones too)".to_owned(),
    }
}

/// The keys a restore into DR needs that the policy does not set.
fn missing_restore_target(root: &Map<String, Value>) -> Vec<&'static str> {
    let domain = root
        .get("restore_settings")
        .and_then(|r| r.get("target_storage_domain_name"));
    [
        ("target_ovirt_url", root.get("target_ovirt_url").is_none()),
        ("target_ovirt_user", root.get("target_ovirt_user").is_none()),
        (
            "restore_settings.target_storage_domain_name",
            domain.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, missing)| missing.then_some(k))
    .collect()
}

/// A VM name as the engine would match it: case and runs of white space do not count.
fn fold_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `HH:MM` on a 24-hour clock.
pub fn parse_time(text: &str) -> Option<chrono::NaiveTime> {
    let (h, m) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    chrono::NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn parse_date(text: &str) -> Option<chrono::NaiveDate> {
    // Digits where digits belong: chrono's `%Y` also takes a sign (`-024-02-29` is the year
    // -24), which normalizes to `-0024-02-29`, a text this check would then refuse.
    let digits =
        |range: std::ops::Range<usize>| text.as_bytes()[range].iter().all(u8::is_ascii_digit);
    let shaped = text.len() == 10
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10);
    shaped
        .then(|| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(policy: &str) -> Vec<Code> {
        let doc: Value = serde_json::from_str(policy).expect("test JSON");
        check(&doc, &[]).into_iter().map(|d| d.code).collect()
    }

    #[test]
    fn times_and_dates() {
        assert!(parse_time("23:59").is_some());
        assert!(parse_time("24:00").is_none());
        assert!(parse_time("2:00").is_none());
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-1-01").is_none());
        assert!(
            parse_date("-024-02-29").is_none(),
            "a signed year (found by the fuzzer)"
        );
        assert!(parse_date("+024-02-29").is_none());
    }

    #[test]
    fn an_unknown_backup_method_is_named_with_the_methods() {
        let doc: Value = serde_json::from_str(
            r#"{"backup_settings": {"backup_method": "SNAPSHOT"},
                "vms_config": {"a b": {"schedule": "1111111", "backup_method": "vss"},
                               "c": {"schedule": "1111111", "backup_method": "backup_api"}}}"#,
        )
        .expect("test JSON");
        let found: Vec<(String, String, Option<String>)> = check(&doc, &[])
            .into_iter()
            .filter(|d| d.code == Code::UnknownBackupMethod)
            .map(|d| (d.pointer, d.message, d.help))
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "/backup_settings/backup_method");
        assert_eq!(
            found[0].1,
            "there is no backup method `SNAPSHOT`; the methods are auto, backup_api, snapshot"
        );
        assert_eq!(found[0].2.as_deref(), Some("did you mean `snapshot`?"));
        assert_eq!(found[1].0, "/vms_config/a b/backup_method");
        assert!(
            found[1]
                .2
                .as_deref()
                .is_some_and(|h| h.starts_with("auto reads the disks")),
            "{found:?}"
        );
    }

    #[test]
    fn folded_names_collide() {
        assert_eq!(fold_name(" Web  01 "), fold_name("web 01"));
    }

    #[test]
    fn each_rule_fires_once() {
        let cases: &[(&str, Code)] = &[
            (r#"{"vms_config": {"a": "11111"}}"#, Code::BadSevenBits),
            (r#"{"vms_config": {"a": "0000000"}}"#, Code::NeverFires),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "simple", "pattern": "daily", "time": "24:00"}}}}"#,
                Code::BadTime,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "cron", "expression": "0 2 * * mon-fry"}}}}"#,
                Code::BadCron,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "simple", "pattern": "weekly", "day": "sundy"}}}}"#,
                Code::UnknownWeekday,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "advanced", "days_of_month": [1], "months": [13]}}}}"#,
                Code::UnknownMonth,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "advanced", "weeks_of_month": [1]}}}}"#,
                Code::WeeksWithoutWeekdays,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "advanced", "days_of_month": [1], "weekdays": ["monday"]}}}}"#,
                Code::BothDayForms,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": {"type": "simple", "pattern": "biweekly", "anchor_date": "2024-02-30"}}}}"#,
                Code::BadAnchorDate,
            ),
            (r#"{"vms_config": {"a/b": "1111111"}}"#, Code::UnsafeVmName),
            (
                r#"{"source_ovirt_password": "x", "vms_config": {}}"#,
                Code::InlinePassword,
            ),
            (
                r#"{"restore_settings": {"disk_interface": "scsi"}}"#,
                Code::UnknownDiskInterface,
            ),
            (
                r#"{"backup_settings": {"backup_method": "snapshots"}}"#,
                Code::UnknownBackupMethod,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": "1111111", "backup_method": "Snapshot"}}}"#,
                Code::UnknownBackupMethod,
            ),
            (
                r#"{"restore_settings": {"network_map": {"lan": " dr"}}}"#,
                Code::UnsafeNetworkName,
            ),
            (
                r#"{"restore_settings": {"mac_policy": "same"}}"#,
                Code::UnknownMacPolicy,
            ),
            (
                r#"{"restore_settings": {"cpu": {"sockets": 0}}}"#,
                Code::CpuOutOfRange,
            ),
            (
                r#"{"restore_settings": {"memory_mib": 0}}"#,
                Code::MemoryOutOfRange,
            ),
            (
                r#"{"vms_config": {"a": {"schedule": "1111111", "backup_host": "B"}}}"#,
                Code::UnsafeBackupHost,
            ),
            (
                r#"{"source_ovirt_max_concurrent_backups": 0}"#,
                Code::ConcurrencyOutOfRange,
            ),
        ];
        for (policy, code) in cases {
            let found: Vec<Code> = codes(policy)
                .into_iter()
                .filter(|c| *c != Code::MissingPassword)
                .collect();
            assert_eq!(found, vec![*code], "{policy}");
        }
    }
}
