//! Fuzz parse + validate (+ normalize and both renderers): no input may panic, every span must
//! lie inside the file, and a policy that validates must normalize to a policy that validates
//! and normalizes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
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
    if let Some(policy) = &checked.policy {
        let modern = serde_json::to_string_pretty(&plan::normalize::to_json(policy)).expect("serializes");
        let again = plan::check(&Source::new("normalized.json", modern.clone()));
        assert!(!again.has_errors(), "normalized policy is invalid: {:?}\n{modern}", again.diagnostics);
        let twice = plan::normalize::to_json(again.policy.as_ref().expect("valid policy"));
        assert_eq!(modern, serde_json::to_string_pretty(&twice).expect("serializes"));
    }
});
