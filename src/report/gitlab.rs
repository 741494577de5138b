//! GitLab's Code Quality report: a JSON array of issues, each with `description`, `check_name`,
//! `fingerprint`, `severity` and `location.path` / `location.lines.begin` (the subset of the
//! Code Climate format GitLab reads, from its "Code Quality" documentation), for a job's
//! `artifacts:reports:codequality`.
//!
//! The fingerprint identifies an issue across pipelines, so it leaves out the line: the SHA-256 of
//! the file, the code and the JSON Pointer (and, for the rare second issue of the same code at
//! the same place, its ordinal), so editing lines above a problem does not make it a new one.

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{FileReport, message_and_help};
use crate::plan::Located;
use crate::plan::diagnostic::Severity;

/// One issue of the report.
#[derive(Debug, Serialize)]
struct Issue<'a> {
    description: String,
    check_name: &'static str,
    fingerprint: String,
    severity: &'static str,
    location: Location<'a>,
}

#[derive(Debug, Serialize)]
struct Location<'a> {
    path: &'a str,
    lines: Lines,
}

#[derive(Debug, Serialize)]
struct Lines {
    begin: usize,
}

/// The report of every diagnostic of every file, as a pretty JSON array.
pub fn report(files: &[FileReport<'_>]) -> String {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut issues = Vec::new();
    for report in files {
        let path = report.file.strip_prefix("./").unwrap_or(report.file);
        for located in report.diagnostics {
            let key = identity(path, located);
            let ordinal = seen.entry(key.clone()).or_default();
            *ordinal += 1;
            issues.push(issue(path, located, &key, *ordinal));
        }
    }
    let mut text = serde_json::to_string_pretty(&issues).expect("plain structs serialize");
    text.push('\n');
    text
}

fn issue<'a>(path: &'a str, located: &Located, identity: &str, ordinal: usize) -> Issue<'a> {
    Issue {
        description: message_and_help(located, "; "),
        check_name: located.diagnostic.code.as_str(),
        fingerprint: fingerprint(identity, ordinal),
        severity: severity(located.diagnostic.severity()),
        location: Location {
            path,
            lines: Lines {
                begin: located.line,
            },
        },
    }
}

/// GitLab's scale is info, minor, major, critical and blocker: an error keeps the policy from
/// being used (major), a warning does not (minor).
fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "major",
        Severity::Warning => "minor",
    }
}

/// What makes an issue the same one in the next pipeline: file, code and JSON Pointer.
fn identity(path: &str, located: &Located) -> String {
    let diagnostic = &located.diagnostic;
    format!("{path}\0{}\0{}", diagnostic.code, diagnostic.pointer)
}

/// The SHA-256 (hex) of the identity, with the ordinal after the first occurrence.
fn fingerprint(identity: &str, ordinal: usize) -> String {
    let text = if ordinal == 1 {
        identity.to_owned()
    } else {
        format!("{identity}\0{ordinal}")
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_identity_and_later_ordinals() {
        // printf 'a.json\0ovplan::syntax\0' | sha256sum, and with '\0002' after it
        let identity = "a.json\0ovplan::syntax\0";
        assert_eq!(
            fingerprint(identity, 1),
            "525498bf316e8541e623d04aa8506bd196a0f83a85908a0bd533073d89ad7ee7"
        );
        assert_eq!(
            fingerprint(identity, 2),
            "9bdfef3efee3d7e93a0402745e372fb225e0b16dd99e93235096876af168acdb"
        );
    }
}
