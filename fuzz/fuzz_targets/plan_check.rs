//! Fuzz parse + validate (+ normalize, compile and both renderers): no input may panic, every
//! span must lie inside the file, a policy that validates must normalize to a policy that
//! validates and normalizes to the same bytes, and must compile to a bundle that means exactly
//! the policy: no generated file may hold a line the policy did not mean (every unit line a
//! section, a comment or a known `Key=`, the expected `ExecStart=` argv; every cron line a
//! comment, an environment line or a schedule line running an expected command; compose values
//! equal to the policy's). The readers are the integration tests' own, included by path.
#![no_main]

#[path = "../../tests/it/support/artifact_syntax.rs"]
mod artifact_syntax;
#[path = "../../tests/it/support/bundle_meaning.rs"]
mod bundle_meaning;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use ovbackup::plan::compile::{BuildOptions, compile};
use ovbackup::plan::{self, source::Source};
use ovbackup::report;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::new("fuzz.json", text);
    let checked = plan::check(&source);
    for located in &checked.diagnostics {
        assert!(located.span.end <= text.len() && located.span.start <= located.span.end);
    }
    let style = report::Style { color: false, width: 80 };
    let _ = report::human("fuzz.json", &checked.display_text, &checked.diagnostics, style);
    let _ = report::json(&checked.diagnostics);
    let Some(policy) = &checked.policy else {
        return;
    };
    let modern = serde_json::to_string_pretty(&plan::normalize::to_json(policy)).expect("serializes");
    let again = plan::check(&Source::new("normalized.json", modern.clone()));
    assert!(!again.has_errors(), "normalized policy is invalid: {:?}\n{modern}", again.diagnostics);
    let twice = plan::normalize::to_json(again.policy.as_ref().expect("valid policy"));
    assert_eq!(modern, serde_json::to_string_pretty(&twice).expect("serializes"));
    let options = BuildOptions::new("fuzz.json");
    let bundle = compile(policy, &options).expect("a valid policy compiles");
    if let Err(e) = bundle_meaning::check_meaning(policy, &options, &bundle) {
        panic!("the bundle does not mean the policy: {e}\n{text}");
    }
    let from: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).expect("instant");
    for vm in policy.vms.iter().take(3) {
        let _ = plan::diff::next(vm, from, chrono_tz::Tz::UTC, 3);
    }
});
