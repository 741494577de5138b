//! A parser of GitHub Actions workflow commands, written from GitHub's documentation
//! ("Workflow commands for GitHub Actions"), to read what `ovplan validate --format github`
//! prints as the runner reads it:
//!
//! ```text
//! ::workflow-command parameter1={data},parameter2={data}::{command value}
//! ```
//!
//! A command line starts with `::`; its name runs to a space or to the next `::`, which ends
//! the parameter list (so a parameter value holds no raw `:` or `,`: they are `%3A` and `%2C`);
//! the value is the rest of the line. Names are case-insensitive. Values are unescaped as the
//! toolkit escapes them: `%25` `%0D` `%0A` everywhere, and `%3A` `%2C` in parameters.

use std::collections::BTreeMap;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowCommand {
    /// The command's name, lower-case (`error`, `warning`).
    pub name: String,
    /// Its parameters, unescaped, by lower-case name.
    pub parameters: BTreeMap<String, String>,
    /// The command value (the annotation's message), unescaped.
    pub value: String,
}

/// The command on `line`, or why it is not one.
pub fn parse(line: &str) -> Result<WorkflowCommand, String> {
    let rest = line
        .strip_prefix("::")
        .ok_or_else(|| format!("does not start with `::`: {line:?}"))?;
    let (head, value) = rest
        .split_once("::")
        .ok_or_else(|| format!("no `::` before the command value: {line:?}"))?;
    let (name, parameters) = head.split_once(' ').unwrap_or((head, ""));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("not a command name: {name:?}"));
    }
    Ok(WorkflowCommand {
        name: name.to_ascii_lowercase(),
        parameters: parse_parameters(parameters)?,
        value: unescape(value, false),
    })
}

fn parse_parameters(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut parameters = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("a parameter without `=`: {pair:?}"))?;
        let key = key.trim().to_ascii_lowercase();
        if parameters
            .insert(key.clone(), unescape(value, true))
            .is_some()
        {
            return Err(format!("parameter {key} given twice"));
        }
    }
    Ok(parameters)
}

/// Undoes the toolkit's escaping (`%25` last, so `%253A` stays `%3A`).
fn unescape(text: &str, property: bool) -> String {
    let mut out = text.replace("%0D", "\r").replace("%0A", "\n");
    if property {
        out = out.replace("%3A", ":").replace("%2C", ",");
    }
    out.replace("%25", "%")
}

#[test]
fn parses_the_documented_examples() {
    let notice = parse("::notice file=app.js,line=1,col=5,endColumn=7::Missing semicolon")
        .expect("a command");
    assert_eq!(notice.name, "notice");
    assert_eq!(notice.parameters["file"], "app.js");
    assert_eq!(notice.parameters["endcolumn"], "7");
    assert_eq!(notice.value, "Missing semicolon");
    let titled = parse("::error title=a%3Ab%2Cc::line one%0Aline two").expect("a command");
    assert_eq!(titled.parameters["title"], "a:b,c");
    assert_eq!(titled.value, "line one\nline two");
    assert!(parse("error::x").is_err());
    assert!(parse("::error file=x").is_err());
}
