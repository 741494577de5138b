//! The injected faults: rules the admin endpoint adds (`crate::sim::faults`) and every call
//! consumes through the injection middleware.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::Value;

/// One injected fault.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method, or `*`.
    #[serde(default = "any")]
    pub method: String,
    /// Path pattern; `*` matches one segment.
    pub path: String,
    /// How many matching calls fail.
    #[serde(default = "one")]
    pub count: u32,
    /// How many matching calls pass before the first that fails (the second disk's transfer).
    #[serde(default)]
    pub after: u32,
    /// Status to answer; 0 = answer normally (after the delay).
    #[serde(default)]
    pub status: u16,
    /// Body to answer (default: an engine fault document).
    pub fault: Option<Value>,
    /// Milliseconds to wait first.
    #[serde(default)]
    pub delay_ms: u64,
    /// Carry the call out, then answer the fault instead of its answer.
    #[serde(default)]
    pub lose_answer: bool,
}

fn any() -> String {
    "*".into()
}

fn one() -> u32 {
    1
}

/// The injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    /// Snapshots being made stay `locked`.
    held_snapshots: AtomicBool,
}

impl Faults {
    /// Holds (or releases) the snapshots being made.
    pub fn hold_snapshots(&self, hold: bool) {
        self.held_snapshots.store(hold, Ordering::Relaxed);
    }

    /// Whether snapshots being made are held `locked`.
    pub fn snapshots_held(&self) -> bool {
        self.held_snapshots.load(Ordering::Relaxed)
    }

    /// Adds a fault.
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().expect("faults lock").push(rule);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
    }

    /// Takes one use of the first fault matching a call, if any.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<FaultRule> {
        let mut rules = self.rules.lock().expect("faults lock");
        let index = rules.iter().position(|r| {
            r.count > 0
                && (r.method == "*" || r.method.eq_ignore_ascii_case(method))
                && path_matches(&r.path, path)
        })?;
        if rules[index].after > 0 {
            rules[index].after -= 1;
            return None;
        }
        rules[index].count -= 1;
        let rule = rules[index].clone();
        rules.retain(|r| r.count > 0);
        Some(rule)
    }
}

/// `*` matches exactly one segment.
fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_star() {
        assert!(path_matches(
            "/ovirt-engine/api/vms/*",
            "/ovirt-engine/api/vms/1"
        ));
        assert!(!path_matches(
            "/ovirt-engine/api/vms/*",
            "/ovirt-engine/api/vms/1/diskattachments"
        ));
        assert!(path_matches(
            "/ovirt-engine/api/vms",
            "/ovirt-engine/api/vms"
        ));
    }

    #[test]
    fn a_fault_is_used_count_times() {
        let faults = Faults::default();
        faults.add(FaultRule {
            method: "GET".into(),
            path: "/a".into(),
            count: 2,
            after: 0,
            status: 500,
            fault: None,
            delay_ms: 0,
            lose_answer: false,
        });
        assert!(faults.take("GET", "/a").is_some());
        assert!(faults.take("POST", "/a").is_none());
        assert!(faults.take("get", "/a").is_some());
        assert!(faults.take("GET", "/a").is_none());
    }
}
