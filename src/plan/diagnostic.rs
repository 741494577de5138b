//! Diagnostics: what `ovplan` tells an operator about a policy file, as data.
//!
//! Every stage reports problems as [`Diagnostic`]s: a code, a message that names the thing, a
//! JSON Pointer, the file bytes to underline and a `help` line that says what to do. Rendering
//! (miette's report for people; JSON, GitHub workflow commands, GitLab Code Quality or SARIF for
//! CI) happens in `crate::report`, at the edge.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a diagnostic is: errors make a policy invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy cannot be used.
    Error,
    /// The policy works, but probably not as meant, or unsafely.
    Warning,
}

/// Every kind of problem `ovplan validate` reports; each has a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The file is not JSON.
    Syntax,
    /// A string meant to hold JSON text (Airflow's form) does not parse.
    BadJsonText,
    /// The same key twice in one object.
    DuplicateKey,
    /// A key the format does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong JSON type.
    WrongType,
    /// A value outside the allowed set.
    InvalidValue,
    /// A number outside its range.
    OutOfRange,
    /// A string of the wrong form (URL, list length, ...).
    InvalidFormat,
    /// A 7-bit weekday pattern that is not seven characters of 0 and 1.
    BadSevenBits,
    /// A schedule that never fires.
    NeverFires,
    /// A time of day that does not exist.
    BadTime,
    /// A cron expression that does not parse.
    BadCron,
    /// A weekday name that does not exist.
    UnknownWeekday,
    /// A month that does not exist.
    UnknownMonth,
    /// `weeks_of_month` without `weekdays`.
    WeeksWithoutWeekdays,
    /// Two ways of naming days at once.
    BothDayForms,
    /// An advanced schedule that names no days.
    NoDayForm,
    /// An `anchor_date` that is not a date.
    BadAnchorDate,
    /// A time zone that is not an IANA name.
    UnknownTimezone,
    /// A VM name that cannot be a file or unit name.
    UnsafeVmName,
    /// Two VM entries that name the same VM.
    DuplicateVm,
    /// A password written in the policy file.
    InlinePassword,
    /// Neither a password nor a password file for an engine.
    MissingPassword,
    /// Both a password and a password file for an engine.
    BothPasswordForms,
    /// Retention that keeps every point forever.
    KeepsEverything,
    /// A disk interface the engine does not know.
    UnknownDiskInterface,
    /// A `backup_method` that is not `auto`, `backup_api` or `snapshot`.
    UnknownBackupMethod,
    /// A `network_map` name that no engine network or vNIC profile can have.
    UnsafeNetworkName,
    /// A `mac_policy` that is not `keep` or `new`.
    UnknownMacPolicy,
    /// A CPU override count outside 1 to 256.
    CpuOutOfRange,
    /// A memory override outside 1 MiB to 16 TiB.
    MemoryOutOfRange,
    /// A `backup_host` that cannot name a backup host (a queue, a file, a unit).
    UnsafeBackupHost,
    /// An engine's limit of concurrent backups or restores outside 1 to 64.
    ConcurrencyOutOfRange,
    /// `auto_restore` without a DR engine to restore into.
    MissingRestoreTarget,
    /// A control character in a string (it could split a line of a generated file).
    ControlCharacter,
    /// A relative path where an absolute one is needed.
    RelativePath,
    /// An absolute path that systemd would not pass on unchanged (`..`, `//`, trailing `/`).
    UnusablePath,
    /// The file starts with a UTF-8 byte order mark.
    ByteOrderMark,
}

impl Code {
    /// Every code, for documentation and for the test that each has a fixture.
    pub const ALL: [Code; 39] = [
        Code::Syntax,
        Code::BadJsonText,
        Code::DuplicateKey,
        Code::UnknownKey,
        Code::MissingKey,
        Code::WrongType,
        Code::InvalidValue,
        Code::OutOfRange,
        Code::InvalidFormat,
        Code::BadSevenBits,
        Code::NeverFires,
        Code::BadTime,
        Code::BadCron,
        Code::UnknownWeekday,
        Code::UnknownMonth,
        Code::WeeksWithoutWeekdays,
        Code::BothDayForms,
        Code::NoDayForm,
        Code::BadAnchorDate,
        Code::UnknownTimezone,
        Code::UnsafeVmName,
        Code::DuplicateVm,
        Code::InlinePassword,
        Code::MissingPassword,
        Code::BothPasswordForms,
        Code::KeepsEverything,
        Code::UnknownDiskInterface,
        Code::UnknownBackupMethod,
        Code::UnsafeNetworkName,
        Code::UnknownMacPolicy,
        Code::CpuOutOfRange,
        Code::MemoryOutOfRange,
        Code::UnsafeBackupHost,
        Code::ConcurrencyOutOfRange,
        Code::MissingRestoreTarget,
        Code::ControlCharacter,
        Code::RelativePath,
        Code::UnusablePath,
        Code::ByteOrderMark,
    ];

    /// The stable code, as shown to operators and in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "ovplan::syntax",
            Code::BadJsonText => "ovplan::bad-json-text",
            Code::DuplicateKey => "ovplan::duplicate-key",
            Code::UnknownKey => "ovplan::unknown-key",
            Code::MissingKey => "ovplan::missing-key",
            Code::WrongType => "ovplan::wrong-type",
            Code::InvalidValue => "ovplan::invalid-value",
            Code::OutOfRange => "ovplan::out-of-range",
            Code::InvalidFormat => "ovplan::invalid-format",
            Code::BadSevenBits => "ovplan::bad-7bit-pattern",
            Code::NeverFires => "ovplan::never-fires",
            Code::BadTime => "ovplan::bad-time",
            Code::BadCron => "ovplan::bad-cron",
            Code::UnknownWeekday => "ovplan::unknown-weekday",
            Code::UnknownMonth => "ovplan::unknown-month",
            Code::WeeksWithoutWeekdays => "ovplan::weeks-without-weekdays",
            Code::BothDayForms => "ovplan::both-day-forms",
            Code::NoDayForm => "ovplan::no-day-form",
            Code::BadAnchorDate => "ovplan::bad-anchor-date",
            Code::UnknownTimezone => "ovplan::unknown-timezone",
            Code::UnsafeVmName => "ovplan::unsafe-vm-name",
            Code::DuplicateVm => "ovplan::duplicate-vm",
            Code::InlinePassword => "ovplan::inline-password",
            Code::MissingPassword => "ovplan::missing-password",
            Code::BothPasswordForms => "ovplan::both-password-forms",
            Code::KeepsEverything => "ovplan::keeps-everything",
            Code::UnknownDiskInterface => "ovplan::unknown-disk-interface",
            Code::UnknownBackupMethod => "ovplan::unknown-backup-method",
            Code::UnsafeNetworkName => "ovplan::unsafe-network-name",
            Code::UnknownMacPolicy => "ovplan::unknown-mac-policy",
            Code::CpuOutOfRange => "ovplan::cpu-out-of-range",
            Code::MemoryOutOfRange => "ovplan::memory-out-of-range",
            Code::UnsafeBackupHost => "ovplan::unsafe-backup-host",
            Code::ConcurrencyOutOfRange => "ovplan::concurrency-out-of-range",
            Code::MissingRestoreTarget => "ovplan::missing-restore-target",
            Code::ControlCharacter => "ovplan::control-character",
            Code::RelativePath => "ovplan::relative-path",
            Code::UnusablePath => "ovplan::unusable-path",
            Code::ByteOrderMark => "ovplan::byte-order-mark",
        }
    }

    /// What the code means, as the README's table of codes says it (SARIF's rule help).
    pub fn description(self) -> &'static str {
        match self {
            Code::Syntax => "the file is not JSON",
            Code::BadJsonText => "a string holding JSON text (Airflow's form) does not parse",
            Code::DuplicateKey => "a key written twice in one object (JSON keeps only the last)",
            Code::UnknownKey => "a key the format does not have, with \"did you mean\"",
            Code::MissingKey => "a required key is absent",
            Code::WrongType => "a value of the wrong JSON type",
            Code::InvalidValue => "a value outside the allowed set",
            Code::OutOfRange => "a number outside its range (every count is at most 4294967295)",
            Code::InvalidFormat => {
                "a string of the wrong form (an engine URL that is not https, an empty list)"
            }
            Code::BadSevenBits => "a 7-bit weekday pattern that is not seven 0/1 characters",
            Code::NeverFires => "the pattern `0000000`",
            Code::BadTime => "a time of day that does not exist (`24:30`)",
            Code::BadCron => "a cron expression that does not parse; the bad field is underlined",
            Code::UnknownWeekday => "a weekday name that does not exist",
            Code::UnknownMonth => "a month number or name that does not exist",
            Code::WeeksWithoutWeekdays => "`weeks_of_month` without `weekdays`",
            Code::BothDayForms => "`days_of_month` with `weekdays`, or `day` with `days`",
            Code::NoDayForm => "an advanced schedule that names no days",
            Code::BadAnchorDate => "an `anchor_date` that is not a calendar date",
            Code::UnknownTimezone => "a time zone that is not an IANA name",
            Code::UnsafeVmName => {
                "a VM name that cannot name a folder or unit (empty, `.`, `..`, `/`, control characters, a unit name over 255 bytes)"
            }
            Code::DuplicateVm => "the same VM twice, also after folding case and white space",
            Code::InlinePassword => "a password written in the policy: use `*_password_file`",
            Code::MissingPassword => "neither a password nor a password file for an engine in use",
            Code::BothPasswordForms => "a password and a password file for the same engine",
            Code::KeepsEverything => {
                "retention with every `keep_*` at 0 and no age limit keeps every point forever"
            }
            Code::UnknownDiskInterface => {
                "a disk interface the engine does not know (any case is accepted: `SATA`)"
            }
            Code::UnknownBackupMethod => {
                "a `backup_method` (in `backup_settings` or a VM) other than `auto`, `backup_api` or `snapshot`"
            }
            Code::UnsafeNetworkName => {
                "a `restore_settings.network_map` name no engine network or vNIC profile can have (empty, white space at either end, a control character, over 256 characters)"
            }
            Code::UnknownMacPolicy => "a `restore_settings.mac_policy` other than `new` or `keep`",
            Code::CpuOutOfRange => {
                "a `restore_settings.cpu` count (`sockets`, `cores`, `threads`) outside 1 to 256"
            }
            Code::MemoryOutOfRange => {
                "a `restore_settings.memory_mib` outside 1 to 16777216 (16 TiB); a size in bytes is named as such"
            }
            Code::UnsafeBackupHost => {
                "a VM's `backup_host` that is not 1 to 63 characters of `a-z`, `0-9`, `.`, `_` and `-` beginning with a letter or digit (it names a Celery queue, files and units)"
            }
            Code::ConcurrencyOutOfRange => {
                "a `source_ovirt_max_concurrent_backups` or `target_ovirt_max_concurrent_restores` outside 1 to 64"
            }
            Code::MissingRestoreTarget => "`auto_restore` without a DR engine or storage domain",
            Code::ControlCharacter => {
                "a control character (a line break, a tab) in any string; it could split a line of a generated file"
            }
            Code::RelativePath => {
                "a relative path in a path key (`backup_directory`, `checkpoints_file`, password and CA files)"
            }
            Code::UnusablePath => {
                "a path systemd would not pass on unchanged (`.`, `..` or empty components, trailing `/`, space or `\\`)"
            }
            Code::ByteOrderMark => "the file starts with a UTF-8 byte order mark",
        }
    }

    /// Warnings leave a policy valid; everything else is an error.
    pub fn severity(self) -> Severity {
        match self {
            Code::InlinePassword | Code::KeepsEverything => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Which bytes of the node at the pointer a diagnostic underlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// The whole value.
    Value,
    /// The key that names the value (the value itself when it has no key).
    Key,
    /// The earlier occurrence of a key written twice.
    EarlierKey,
    /// A byte range of a string value's decoded text (a cron field, say).
    Inner(Range<usize>),
    /// File bytes already known (syntax errors, JSON text inside strings).
    File(Range<usize>),
}

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What kind of problem; decides the severity.
    pub code: Code,
    /// What is wrong, naming the thing.
    pub message: String,
    /// Where, as a JSON Pointer into the (decoded) document.
    pub pointer: String,
    /// Which bytes at the pointer to underline.
    pub mark: Mark,
    /// What to do about it.
    pub help: Option<String>,
    /// Another place that explains this one (the first of two duplicates), with its label.
    pub related: Option<(String, Mark, String)>,
}

impl Diagnostic {
    /// A diagnostic of `code` at `pointer`, underlining the value.
    pub fn new(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            pointer: pointer.into(),
            mark: Mark::Value,
            help: None,
            related: None,
        }
    }

    /// The same, saying what to do.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The same, underlining other bytes.
    #[must_use]
    pub fn mark(mut self, mark: Mark) -> Self {
        self.mark = mark;
        self
    }

    /// The same, pointing also at another place.
    #[must_use]
    pub fn related(
        mut self,
        pointer: impl Into<String>,
        mark: Mark,
        label: impl Into<String>,
    ) -> Self {
        self.related = Some((pointer.into(), mark, label.into()));
        self
    }

    /// The severity its code carries.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}
