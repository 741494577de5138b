//! Showing diagnostics: miette's graphical report for people, and for CI a JSON array, GitHub
//! workflow commands ([`github`]), a GitLab Code Quality report ([`gitlab`]) or a SARIF 2.1.0
//! log ([`sarif`]).
//!
//! This is the edge where `plan`'s data becomes text; nothing else in the library prints.

pub mod github;
pub mod gitlab;
pub mod sarif;

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

use crate::plan::Located;
use crate::plan::diagnostic::Severity;

/// One checked file's diagnostics, as the CI formats take them (several files make one report).
#[derive(Debug, Clone, Copy)]
pub struct FileReport<'a> {
    /// The file's path as given on the command line (the CI formats name it so).
    pub file: &'a str,
    /// Its diagnostics, in file order.
    pub diagnostics: &'a [Located],
}

/// A diagnostic's message followed by its `help` after `separator`, for formats that have one
/// text field.
fn message_and_help(located: &Located, separator: &str) -> String {
    let diagnostic = &located.diagnostic;
    match &diagnostic.help {
        Some(help) => format!("{}{separator}help: {help}", diagnostic.message),
        None => diagnostic.message.clone(),
    }
}

/// How to draw the human report.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Line width to wrap at.
    pub width: usize,
}

/// The human report of every diagnostic, then a summary line.
pub fn human(file: &str, display_text: &str, diagnostics: &[Located], style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false);
    let source = NamedSource::new(file, display_text.to_owned());
    let mut out = String::new();
    for located in diagnostics {
        let shown = Shown {
            located,
            source: &source,
        };
        if handler.render_report(&mut out, &shown).is_err() {
            out.push_str(&located.diagnostic.message);
        }
        out.push('\n');
    }
    out.push_str(&summary(file, diagnostics));
    out.push('\n');
    out
}

/// `FILE: valid` or `FILE: N errors, M warnings`.
pub fn summary(file: &str, diagnostics: &[Located]) -> String {
    let count = |s: Severity| {
        diagnostics
            .iter()
            .filter(|d| d.diagnostic.severity() == s)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("{file}: valid"),
        (0, w) => format!("{file}: valid, {}", plural(w, "warning")),
        (e, w) => format!(
            "{file}: invalid, {}, {}",
            plural(e, "error"),
            plural(w, "warning")
        ),
    }
}

/// One diagnostic as CI reads it.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    pointer: &'a str,
    line: usize,
    column: usize,
    help: Option<&'a str>,
}

/// Every diagnostic as a pretty JSON array.
pub fn json(diagnostics: &[Located]) -> String {
    let items: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|l| JsonDiagnostic {
            severity: l.diagnostic.severity(),
            code: l.diagnostic.code.as_str(),
            message: &l.diagnostic.message,
            pointer: &l.diagnostic.pointer,
            line: l.line,
            column: l.column,
            help: l.diagnostic.help.as_deref(),
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&items).expect("plain structs serialize");
    text.push('\n');
    text
}

/// A located diagnostic with its source, in the shape miette draws.
struct Shown<'a> {
    located: &'a Located,
    source: &'a NamedSource<String>,
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.located.diagnostic.message)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.located.diagnostic.message)
    }
}

impl std::error::Error for Shown<'_> {}

impl miette::Diagnostic for Shown<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.located.diagnostic.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.located.diagnostic.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let help = self.located.diagnostic.help.as_ref()?;
        Some(Box::new(help))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let l = self.located;
        let here = LabeledSpan::new_primary_with_span(Some("here".to_owned()), l.span.clone());
        let related = l
            .related
            .as_ref()
            .map(|(span, label)| LabeledSpan::new_with_span(Some(label.clone()), span.clone()));
        Some(Box::new(std::iter::once(here).chain(related)))
    }
}
