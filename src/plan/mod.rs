//! `ovplan`'s pure core: a policy file's text in, diagnostics and a validated [`Policy`] out.
//!
//! The stages, in order, each in its own module:
//! 1. [`parse`]: text -> `Document` (value + span of every node; Airflow JSON text decoded);
//! 2. [`schema`] and [`rules`] (with [`safety`], [`restore_rules`] and [`limit_rules`]): the
//!    JSON Schema and the checks it cannot make -> diagnostics;
//! 3. [`normalize`]: document -> [`Policy`] (defaults filled, legacy forms gone) -> modern JSON.
//!
//! Beside them, what the commands compute from a policy: the bundle ([`compile`]), next runs
//! ([`schedule`], [`full`]), retention ([`retention`]) and a change's review ([`diff`], shown as
//! Markdown by [`diff_markdown`]).
//!
//! Nothing here reads files, clocks or the environment: the binaries do, once, at the top.

pub mod airflow;
mod airflow_compose;
pub mod alerts;
pub mod calendar;
pub mod compile;
pub mod compose;
pub mod cron;
pub mod diagnostic;
pub mod diff;
pub mod diff_markdown;
pub mod full;
pub mod index;
pub mod limit_rules;
pub mod model;
pub mod names;
pub mod normalize;
pub mod parse;
mod raw;
pub mod restore_rules;
pub mod retention;
pub mod rules;
pub mod runner;
pub mod safety;
pub mod schedule;
pub mod schema;
pub mod source;
pub mod stale;

use std::ops::Range;

use diagnostic::{Diagnostic, Mark, Severity};
use model::Policy;
use source::{NodeSpan, Source, SpanIndex};

/// A diagnostic placed in the file: the bytes to underline and their line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// What was found.
    pub diagnostic: Diagnostic,
    /// File bytes to underline.
    pub span: Range<usize>,
    /// 1-based line of the span's start.
    pub line: usize,
    /// 1-based column (in characters) of the span's start.
    pub column: usize,
    /// The related place, if any: its bytes and label.
    pub related: Option<(Range<usize>, String)>,
}

/// The outcome of checking a policy file.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Everything found, in file order.
    pub diagnostics: Vec<Located>,
    /// The policy, when there is no error.
    pub policy: Option<Policy>,
    /// The file's text with inline passwords masked, for showing snippets.
    pub display_text: String,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.diagnostic.severity() == Severity::Error)
    }
}

/// Checks a policy file: every problem at once, and the policy when there is no error.
pub fn check(source: &Source) -> Checked {
    let parsed = match byte_order_mark(&source.text) {
        Some(bom) => Err(Box::new(bom)),
        None => parse::parse(&source.text),
    };
    let document = match parsed {
        Ok(document) => document,
        Err(syntax) => return unparsable(source, *syntax),
    };
    let found = collect(&document);
    let spans = if found.is_empty() {
        SpanIndex::default()
    } else {
        index::index(&source.text)
    };
    let mut diagnostics: Vec<Located> = found
        .into_iter()
        .map(|d| locate(source, &spans, d))
        .collect();
    diagnostics.sort_by_key(|d| (d.span.start, d.diagnostic.code));
    let mut checked = Checked {
        diagnostics,
        policy: None,
        display_text: redact_passwords(&source.text, &spans),
    };
    if !checked.has_errors() {
        add_policy(&mut checked, &document.value, source, &spans);
    }
    checked
}

/// A file that does not parse: its one syntax error, the text shown as it is.
fn unparsable(source: &Source, syntax: Diagnostic) -> Checked {
    Checked {
        diagnostics: vec![locate(source, &SpanIndex::default(), syntax)],
        policy: None,
        display_text: source.text.clone(),
    }
}

/// The policy of a file without errors; a gap that `normalize` finds (a bug: validation let
/// it through) is a diagnostic rather than a panic.
fn add_policy(
    checked: &mut Checked,
    value: &serde_json::Value,
    source: &Source,
    spans: &SpanIndex,
) {
    match normalize::normalize(value) {
        Ok(policy) => checked.policy = Some(policy),
        Err(gap) => checked.diagnostics.push(locate(
            source,
            spans,
            Diagnostic::new(diagnostic::Code::InvalidValue, "", gap.to_string()),
        )),
    }
}

/// A file that starts with a UTF-8 byte order mark: JSON (RFC 8259) forbids it, and to a
/// parser it is an unexpected character that the snippet does not even show, so it is named.
fn byte_order_mark(text: &str) -> Option<Diagnostic> {
    let bom = '\u{feff}';
    text.starts_with(bom).then(|| {
        Diagnostic::new(
            diagnostic::Code::ByteOrderMark,
            "",
            "the file starts with a UTF-8 byte order mark (BOM), which JSON does not allow",
        )
        .mark(Mark::File(0..bom.len_utf8()))
        .help("save the file as UTF-8 without a BOM (e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`)")
    })
}

/// Every diagnostic of a parsed document. A schema error at or under a place that a rule
/// already explains is dropped, so each mistake is reported once, by its most specific code.
fn collect(document: &parse::Document) -> Vec<Diagnostic> {
    let rules = rules::check(&document.value, &document.duplicate_keys);
    let mut found = document.findings.clone();
    let explained: Vec<&str> = rules
        .iter()
        .chain(&document.findings)
        .map(|d| d.pointer.as_str())
        .collect();
    let covered = |pointer: &str| {
        explained.iter().any(|e| {
            pointer == *e
                || pointer
                    .strip_prefix(e)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    found.extend(
        schema::check(&document.value)
            .into_iter()
            .filter(|d| !covered(&d.pointer)),
    );
    found.extend(rules);
    found
}

fn locate(source: &Source, spans: &SpanIndex, diagnostic: Diagnostic) -> Located {
    let text = &source.text;
    let span = within(
        text,
        resolve(text, spans, &diagnostic.pointer, &diagnostic.mark),
    );
    let related = diagnostic.related.as_ref().map(|(pointer, mark, label)| {
        (
            within(text, resolve(text, spans, pointer, mark)),
            label.clone(),
        )
    });
    let (line, column) = source.line_column(span.start);
    Located {
        diagnostic,
        span,
        line,
        column,
        related,
    }
}

/// The range cut to the text and to character boundaries (an error at the end of a truncated
/// file points one past it).
fn within(text: &str, range: Range<usize>) -> Range<usize> {
    let clamp = |mut at: usize| {
        at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let start = clamp(range.start);
    start..clamp(range.end).max(start)
}

fn resolve(text: &str, spans: &SpanIndex, pointer: &str, mark: &Mark) -> Range<usize> {
    if let Mark::File(range) = mark {
        return range.clone();
    }
    let Some(node) = spans.get(pointer).or_else(|| spans.nearest(pointer)) else {
        return first_char(text, 0);
    };
    match mark {
        Mark::Inner(inner) => node.inner_range(text, inner.clone()),
        Mark::Key => node.key.clone().unwrap_or_else(|| focus(text, node)),
        Mark::EarlierKey => node
            .earlier_key
            .clone()
            .or_else(|| node.key.clone())
            .unwrap_or_else(|| focus(text, node)),
        _ => focus(text, node),
    }
}

/// A value's bytes, or for an object or array its key (or opening bracket): underlining a
/// whole object would hide the point.
fn focus(text: &str, node: &NodeSpan) -> Range<usize> {
    let opens = text
        .as_bytes()
        .get(node.value.start)
        .is_some_and(|b| matches!(b, b'{' | b'['));
    match (&node.key, opens) {
        (_, false) => node.value.clone(),
        (Some(key), true) => key.clone(),
        (None, true) => first_char(text, node.value.start),
    }
}

fn first_char(text: &str, at: usize) -> Range<usize> {
    let len = text[at.min(text.len())..]
        .chars()
        .next()
        .map_or(0, char::len_utf8);
    at..at + len
}

/// The text with the characters of inline passwords replaced by `*` (byte for byte, so every
/// span still fits): a diagnostic's snippet must never show a password.
pub fn redact_passwords(text: &str, spans: &SpanIndex) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for key in ["/source_ovirt_password", "/target_ovirt_password"] {
        let inner = spans
            .get(key)
            .map(|n| n.value.start + 1..n.value.end.saturating_sub(1));
        if let Some(value) = inner.and_then(|inner| bytes.get_mut(inner)) {
            value.fill(b'*');
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_owned())
}
