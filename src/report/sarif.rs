//! A SARIF 2.1.0 log (OASIS "Static Analysis Results Interchange Format"), what GitHub code
//! scanning and other review tools import: one run whose tool is `ovplan`, with a rule for every
//! diagnostic code (its severity and what it means), and a result per diagnostic with the
//! file, line and column. Columns count Unicode code points, as `ovplan` counts them
//! (`columnKind`); file paths become URI references (percent-encoded; absolute ones `file://`).

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};

use super::{FileReport, message_and_help};
use crate::plan::Located;
use crate::plan::diagnostic::{Code, Severity};

/// The published schema of the format, which the log names as its `$schema`.
const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Where the tool's documentation is published, when Cargo.toml's `package.homepage` says it.
const HOMEPAGE: &str = env!("CARGO_PKG_HOMEPAGE");

/// What a path must escape to be a URI reference's path (RFC 3986): controls, space and the
/// characters that are not allowed or mean something else (`%`, `?`, `#`, brackets...).
const NOT_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The log of every diagnostic of every file, as pretty JSON.
pub fn log(files: &[FileReport<'_>]) -> String {
    let results: Vec<Value> = files
        .iter()
        .flat_map(|report| report.diagnostics.iter().map(|l| result(report.file, l)))
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver() },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// `ovplan` as SARIF's tool component, with every code as a rule.
fn driver() -> Value {
    let rules: Vec<Value> = Code::ALL.into_iter().map(rule).collect();
    let mut driver = json!({
        "name": "ovplan",
        "version": env!("CARGO_PKG_VERSION"),
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    if !HOMEPAGE.is_empty() {
        driver["informationUri"] = json!(HOMEPAGE);
    }
    driver
}

/// A code as a rule: its id, a name, what it means and its level.
fn rule(code: Code) -> Value {
    let description = code.description();
    json!({
        "id": code.as_str(),
        "name": format!("{code:?}"),
        "shortDescription": { "text": description },
        "help": { "text": description, "markdown": description },
        "defaultConfiguration": { "level": level(code.severity()) },
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as a result, placed at its line and column.
fn result(file: &str, located: &Located) -> Value {
    let code = located.diagnostic.code;
    json!({
        "ruleId": code.as_str(),
        "ruleIndex": Code::ALL.iter().position(|c| *c == code),
        "level": level(code.severity()),
        "message": { "text": message_and_help(located, "\n") },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri(file) },
                "region": { "startLine": located.line, "startColumn": located.column },
            },
        }],
    })
}

/// A file path as a URI reference: percent-encoded; an absolute path as a `file://` URI; a
/// relative one whose first segment holds a `:` after `./`, so it does not read as a scheme.
fn uri(path: &str) -> String {
    let encoded = utf8_percent_encode(path, NOT_IN_PATH).to_string();
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else if encoded
        .split('/')
        .next()
        .is_some_and(|first| first.contains(':'))
    {
        format!("./{encoded}")
    } else {
        encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        for (path, expected) in [
            ("variables.json", "variables.json"),
            (
                "policies/prod variables.json",
                "policies/prod%20variables.json",
            ),
            (
                "/srv/policy/variables.json",
                "file:///srv/policy/variables.json",
            ),
            ("a#b?c%d.json", "a%23b%3Fc%25d.json"),
            ("política.json", "pol%C3%ADtica.json"),
            ("c:policy.json", "./c:policy.json"),
            ("dir/c:policy.json", "dir/c:policy.json"),
        ] {
            assert_eq!(uri(path), expected, "{path}");
        }
    }

    #[test]
    fn every_code_is_a_rule_at_its_index() {
        let rules = driver()["rules"].as_array().expect("rules").clone();
        assert_eq!(rules.len(), Code::ALL.len());
        for (index, code) in Code::ALL.into_iter().enumerate() {
            assert_eq!(rules[index]["id"], code.as_str());
            assert!(
                !rules[index]["help"]["text"]
                    .as_str()
                    .expect("help")
                    .is_empty()
            );
        }
    }
}
