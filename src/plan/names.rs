//! Names an operator writes (weekdays, months, disk interfaces) and "did you mean" for near misses.

use chrono::Weekday;

/// Weekday names as the policy writes them, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Month names as the policy may write them, January first.
pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Disk interfaces the engine knows (API `DiskInterface`), in its spelling.
pub const DISK_INTERFACES: [&str; 5] = ["virtio_scsi", "virtio", "sata", "ide", "spapr_vscsi"];

/// Why a VM name cannot name a backup folder or unit (`None` when it can): empty, `.`, `..`,
/// or holding `/` or a control character. `ovplan` refuses such a name in the policy, and
/// `ovrun` in a runner config.
pub fn unsafe_vm_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.trim().is_empty() {
        Some("it is only white space")
    } else if name.contains('/') {
        Some("it holds `/`")
    } else if name == "." || name == ".." {
        Some("it is a relative directory name")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// The longest name the engine gives a network (`NETWORK_NAME_SIZE`); a vNIC profile's is
/// shorter.
pub const MAX_NETWORK_NAME: usize = 256;

/// Why a `network_map` name cannot be the name of an engine network or vNIC profile (`None`
/// when it can): empty, holding a control character, white space at either end, or longer
/// than [`MAX_NETWORK_NAME`] characters. `ovplan` refuses such a name in the policy, and
/// `ovrun` in a runner config, so none reaches an engine query or a restore log.
pub fn unsafe_network_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.trim().is_empty() {
        Some("it is only white space")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if name.trim() != name {
        Some("it begins or ends with white space")
    } else if name.chars().count() > MAX_NETWORK_NAME {
        Some("it is longer than 256 characters")
    } else {
        None
    }
}

/// The longest backup host name: a DNS label's length, and far below every file name limit.
pub const MAX_BACKUP_HOST: usize = 63;

/// Why a `backup_host` cannot name a backup host (`None` when it can). The name becomes a
/// Celery queue, a file name and part of a unit's name, so it is held to the strictest of
/// them: 1 to [`MAX_BACKUP_HOST`] characters of `a-z`, `0-9`, `.`, `_` and `-`, beginning with a
/// letter or digit (`backup-01`, `bk2.dc1`). `ovplan` refuses another name in the policy, and
/// `ovrun` in a runner config.
pub fn unsafe_backup_host(name: &str) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_BACKUP_HOST {
        Some("it is longer than 63 characters")
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        Some("it holds an upper-case letter")
    } else if !name.chars().all(allowed) {
        Some("it holds a character other than a-z, 0-9, `.`, `_` and `-`")
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("it does not begin with a letter or digit")
    } else {
        None
    }
}

/// The weekday a policy name stands for.
pub fn weekday(name: &str) -> Option<Weekday> {
    let index = WEEKDAYS.iter().position(|w| *w == name)?;
    Some(weekday_from_monday(index))
}

/// The weekday `index` days after Monday (0 = Monday).
pub fn weekday_from_monday(index: usize) -> Weekday {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ][index % 7]
}

/// The policy's name of a weekday.
pub fn weekday_name(day: Weekday) -> &'static str {
    WEEKDAYS[day.num_days_from_monday() as usize]
}

/// The month number (1-12) of a policy month name.
pub fn month(name: &str) -> Option<u32> {
    let index = MONTHS.iter().position(|m| *m == name)?;
    u32::try_from(index + 1).ok()
}

/// The engine's spelling of a disk interface, accepting any case (the predecessor wrote `SATA`).
pub fn disk_interface(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    DISK_INTERFACES.iter().copied().find(|i| *i == lower)
}

/// The candidate closest to `word`, when it is close enough to be what was meant.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A `help:` text suggesting `candidate`, or listing the choices when nothing is close.
pub fn suggestion(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("use one of: {}", candidates.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(did_you_mean("wendesday", WEEKDAYS), Some("wednesday"));
        assert_eq!(did_you_mean("Monday", WEEKDAYS), Some("monday"));
        assert_eq!(did_you_mean("xyz", WEEKDAYS), None);
        assert_eq!(
            did_you_mean("retension", ["retention", "schedule"]),
            Some("retention")
        );
    }

    #[test]
    fn disk_interfaces_accept_any_case() {
        assert_eq!(disk_interface("SATA"), Some("sata"));
        assert_eq!(disk_interface("Virtio_SCSI"), Some("virtio_scsi"));
        assert_eq!(disk_interface("scsi"), None);
    }

    #[test]
    fn network_names_that_no_engine_network_has() {
        let long = "n".repeat(MAX_NETWORK_NAME);
        for (name, why) in [
            ("ovirtmgmt", None),
            ("DR VLAN 10", None),
            (long.as_str(), None),
            ("", Some("it is empty")),
            ("  ", Some("it is only white space")),
            ("lan\n", Some("it holds a control character")),
            (" lan", Some("it begins or ends with white space")),
            ("lan ", Some("it begins or ends with white space")),
        ] {
            assert_eq!(unsafe_network_name(name), why, "{name:?}");
        }
        let longer = format!("{long}n");
        assert!(unsafe_network_name(&longer).is_some());
    }

    #[test]
    fn backup_host_names_are_held_to_the_strictest_use() {
        let longest = "h".repeat(MAX_BACKUP_HOST);
        for (name, why) in [
            ("default", None),
            ("backup-01", None),
            ("bk2.dc1_a", None),
            ("0", None),
            (longest.as_str(), None),
            ("", Some("it is empty")),
            ("Backup01", Some("it holds an upper-case letter")),
            ("-x", Some("it does not begin with a letter or digit")),
            (".hidden", Some("it does not begin with a letter or digit")),
            (
                "a/b",
                Some("it holds a character other than a-z, 0-9, `.`, `_` and `-`"),
            ),
            (
                "a b",
                Some("it holds a character other than a-z, 0-9, `.`, `_` and `-`"),
            ),
            (
                "hôte",
                Some("it holds a character other than a-z, 0-9, `.`, `_` and `-`"),
            ),
            (
                "a\n",
                Some("it holds a character other than a-z, 0-9, `.`, `_` and `-`"),
            ),
        ] {
            assert_eq!(unsafe_backup_host(name), why, "{name:?}");
        }
        let longer = format!("{longest}h");
        assert_eq!(
            unsafe_backup_host(&longer),
            Some("it is longer than 63 characters")
        );
    }

    #[test]
    fn weekdays_and_months_round_trip() {
        for name in WEEKDAYS {
            assert_eq!(weekday_name(weekday(name).expect("known")), name);
        }
        assert_eq!(month("december"), Some(12));
        assert_eq!(month("Dec"), None);
    }
}
