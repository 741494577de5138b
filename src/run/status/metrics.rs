//! The statuses as metrics: the Prometheus text exposition format, for node_exporter's textfile
//! collector, and the file written so that the collector never reads half of one.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::VmStatus;

/// A metric family: its name, its help, and a VM's sample (none when unknown).
struct Family {
    name: &'static str,
    help: &'static str,
    value: fn(&VmStatus) -> Option<f64>,
}

/// A timestamp as Unix seconds (milliseconds kept as a fraction).
fn seconds(at: Option<DateTime<Utc>>) -> Option<f64> {
    at.map(|at| at.timestamp_millis() as f64 / 1000.0)
}

const FAMILIES: [Family; 12] = [
    Family {
        name: "ovbackup_last_success_timestamp_seconds",
        help: "When the last successful backup run started, in Unix seconds.",
        value: |s| seconds(s.run.last_success),
    },
    Family {
        name: "ovbackup_next_due_timestamp_seconds",
        help: "The first scheduled start after the last successful run started, in Unix \
               seconds: missed by more than the grace, the backup is overdue.",
        value: |s| seconds(s.next_due),
    },
    Family {
        name: "ovbackup_last_failure_timestamp_seconds",
        help: "When the last failed backup run started, in Unix seconds.",
        value: |s| seconds(s.run.last_failure),
    },
    Family {
        name: "ovbackup_last_point_timestamp_seconds",
        help: "When the newest backup point was taken, in Unix seconds.",
        value: |s| seconds(s.last_point_at),
    },
    Family {
        name: "ovbackup_chain_length",
        help: "Points in the newest point's chain, its full included.",
        value: |s| Some(s.chain_length as f64),
    },
    Family {
        name: "ovbackup_points",
        help: "Complete backup points in the VM's folder.",
        value: |s| Some(s.points as f64),
    },
    Family {
        name: "ovbackup_bytes_on_disk",
        help: "Bytes of disk images over all points.",
        value: |s| Some(s.bytes_on_disk as f64),
    },
    Family {
        name: "ovbackup_last_point_bytes_transferred",
        help: "Bytes read from the engine for the newest point.",
        value: |s| Some(s.last_point_bytes_transferred as f64),
    },
    Family {
        name: "ovbackup_last_run_failed",
        help: "1 if the last backup run failed or none ever succeeded, else 0.",
        value: |s| Some(if s.last_run_failed() { 1.0 } else { 0.0 }),
    },
    Family {
        name: "ovbackup_last_restore_failed",
        help: "1 if the last restore into DR failed, 0 if it succeeded (no sample: none logged).",
        value: |s| s.last_restore_failed.map(flag),
    },
    Family {
        name: "ovbackup_verify_problems",
        help: "1 if the last ovrun verify found damage, 0 if it found none (no sample: never \
               verified).",
        value: |s| s.last_verify_failed.map(flag),
    },
    Family {
        name: "ovbackup_run_success_ratio",
        help: "Share of the VM's last runs (backup, prune, verify; at most 100, skipped starts \
               left out) that succeeded, from its run history.",
        value: |s| s.history.success_rate,
    },
];

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// An engine's CA certificate as a runner config names it: its side, its file, its end.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaExpiry {
    /// `source` or `target`.
    pub side: &'static str,
    /// The `ca_file`.
    pub file: String,
    /// The end of its validity.
    pub not_after: DateTime<Utc>,
}

/// The CAs' ends of validity as `ovbackup_ca_not_after_timestamp_seconds{side, ca_file}`, one
/// sample per distinct CA file and side.
pub fn ca_expiry(cas: &[CaExpiry]) -> String {
    let name = "ovbackup_ca_not_after_timestamp_seconds";
    let mut out = format!(
        "# HELP {name} When the engine's CA certificate (a runner config's ca_file) expires, in \
         Unix seconds.\n# TYPE {name} gauge\n"
    );
    let mut cas = cas.to_vec();
    cas.sort();
    cas.dedup();
    for ca in &cas {
        let (side, file) = (ca.side, escape_label(&ca.file));
        let at = ca.not_after.timestamp();
        let _ = writeln!(out, "{name}{{side=\"{side}\",ca_file=\"{file}\"}} {at}");
    }
    out
}

/// A label value escaped for the text format: `\` as `\\`, `"` as `\"`, newline as `\n`.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The statuses in the Prometheus text exposition format (version 0.0.4): per metric a `HELP`
/// and a `TYPE gauge` line, then one sample per VM labelled `vm="..."`; timestamps that are
/// unknown have no sample. Ends with a newline, as the format requires.
pub fn prometheus(statuses: &[VmStatus]) -> String {
    let mut out = String::new();
    for family in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for status in statuses {
            if let Some(value) = (family.value)(status) {
                let vm = escape_label(&status.vm);
                let _ = writeln!(out, "{}{{vm=\"{vm}\"}} {value}", family.name);
            }
        }
    }
    out
}

/// Writes metrics for node_exporter's textfile collector to `path` (which must end in `.prom`
/// for the collector to read it) atomically, readable by all (node_exporter usually runs as
/// another user than `ovrun`): [`crate::fsutil::write_atomic_readable`], so the collector sees
/// the old file or the new one, never half of one, and ignores the temporary file (`.tmp-`,
/// not ending in `.prom`).
///
/// # Errors
/// Any I/O error.
pub fn write_metrics(text: &str, path: &Path) -> std::io::Result<()> {
    crate::fsutil::write_atomic_readable(path, text.as_bytes())
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "the tests set up and inspect files directly"
)]
mod tests {
    use super::*;
    use crate::run::catalog::Catalog;
    use crate::run::status::collect;
    use crate::run::status::tests::{at, two_vms};

    /// Splits a sample line into its name, its `vm` label's unescaped value and its value.
    fn parse_sample(line: &str) -> (String, String, f64) {
        let (name, rest) = line.split_once("{vm=\"").expect("name{vm=\"...");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut label = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next().expect("an unterminated label value") {
                '"' => break,
                '\\' => match chars.next() {
                    Some('\\') => label.push('\\'),
                    Some('"') => label.push('"'),
                    Some('n') => label.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                '\n' => panic!("a raw newline in {line:?}"),
                c => label.push(c),
            }
        }
        let rest: String = chars.collect();
        let value = rest
            .strip_prefix("} ")
            .unwrap_or_else(|| panic!("no `}} value` in {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("value {value:?}: {e}"));
        (name.to_owned(), label, value)
    }

    #[test]
    fn prometheus_text_parses_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut statuses = two_vms(dir.path());
        statuses[1].vm = "we\"b 02\\x\ny".into();
        let text = prometheus(&statuses);
        assert!(text.ends_with('\n'));
        let mut samples = Vec::new();
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let (keyword, name) = (words.next().unwrap(), words.next().unwrap());
                assert!(matches!(keyword, "HELP" | "TYPE"), "{line}");
                assert!(name.starts_with("ovbackup_"), "{line}");
                if keyword == "TYPE" {
                    assert_eq!(words.next(), Some("gauge"));
                    typed.push(name.to_owned());
                }
                continue;
            }
            let (name, vm, value) = parse_sample(line);
            assert_eq!(typed.last(), Some(&name), "a sample outside its family");
            samples.push((name, vm, value));
        }
        assert_eq!(typed.len(), FAMILIES.len());
        let get = |name: &str, vm: &str| {
            samples
                .iter()
                .find(|(n, v, _)| n == name && v == vm)
                .map(|s| s.2)
        };
        let odd = "we\"b 02\\x\ny";
        assert_eq!(get("ovbackup_last_run_failed", odd), Some(1.0));
        assert_eq!(get("ovbackup_last_run_failed", "web01"), Some(0.0));
        assert_eq!(get("ovbackup_chain_length", "web01"), Some(3.0));
        assert_eq!(
            get("ovbackup_last_success_timestamp_seconds", "web01"),
            Some(at("2026-12-01T03:00:00Z").timestamp() as f64)
        );
        // A VM that never ran has no timestamps, but every other metric.
        statuses[0] = collect(&Catalog::open(dir.path(), "new01").unwrap()).unwrap();
        let text = prometheus(&statuses);
        assert!(!text.contains("timestamp_seconds{vm=\"new01\"}"));
        assert!(text.contains("ovbackup_points{vm=\"new01\"} 0\n"));
        assert!(text.contains("ovbackup_last_run_failed{vm=\"new01\"} 1\n"));
    }

    #[test]
    fn metrics_are_replaced_whole_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ovbackup.prom");
        write_metrics("old 1\n", &path).unwrap();
        write_metrics("new 2\n", &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["ovbackup.prom"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
}
