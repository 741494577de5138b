//! GitHub Actions workflow commands: one `::error` or `::warning` line per diagnostic, which the
//! runner turns into an annotation on the file's line (GitHub's "Workflow commands for GitHub
//! Actions": `::error file={name},line={line},col={col},title={title}::{message}`).
//!
//! Escaping as GitHub's toolkit does it (`escapeData` and `escapeProperty` in `@actions/core`):
//! in the message `%`, `\r` and `\n` become `%25`, `%0D` and `%0A`; in a property value also `:`
//! and `,` become `%3A` and `%2C`, so that neither ends the property list early.

use super::{FileReport, message_and_help};
use crate::plan::Located;
use crate::plan::diagnostic::Severity;

/// One workflow command a line, for every diagnostic of every file.
pub fn commands(files: &[FileReport<'_>]) -> String {
    let mut out = String::new();
    for report in files {
        for located in report.diagnostics {
            out.push_str(&command(report.file, located));
            out.push('\n');
        }
    }
    out
}

/// `::error file=F,line=L,col=C,title=CODE::MESSAGE` (`::warning` for a warning).
fn command(file: &str, located: &Located) -> String {
    let name = match located.diagnostic.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!(
        "::{name} file={},line={},col={},title={}::{}",
        property(file),
        located.line,
        located.column,
        property(located.diagnostic.code.as_str()),
        data(&message_and_help(located, "\n")),
    )
}

/// A command's message, escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value, escaped.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_escapes_percent_first_then_line_breaks() {
        for (text, escaped) in [
            ("plain", "plain"),
            ("100%", "100%25"),
            ("%0A is literal", "%250A is literal"),
            ("two\nlines\r\n", "two%0Alines%0D%0A"),
            ("a: b, c", "a: b, c"),
        ] {
            assert_eq!(data(text), escaped, "{text:?}");
        }
    }

    #[test]
    fn property_also_escapes_colon_and_comma() {
        for (text, escaped) in [
            ("ovplan::bad-cron", "ovplan%3A%3Abad-cron"),
            ("dir,with,commas/x.json", "dir%2Cwith%2Ccommas/x.json"),
            ("50%:\n", "50%25%3A%0A"),
        ] {
            assert_eq!(property(text), escaped, "{text:?}");
        }
    }
}
