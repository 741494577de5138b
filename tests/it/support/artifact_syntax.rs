//! Reading generated files back as their consumers do, to check that what runs is what the
//! policy meant: unit files (systemd.syntax(7)) and `ExecStart=` command lines
//! (systemd.service(5), "COMMAND LINES"), cron's `%` handling (cronie's `do_command.c`), and the
//! subset of sh that the cron lines use. Written from those documents, independently of the
//! compiler's quoting, and dependency-free so that the fuzz target includes it too
//! (`#[path]` in `fuzz/fuzz_targets/plan_check.rs`).
#![allow(dead_code)]

/// One meaningful line of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitLine {
    /// `[Section]`.
    Section(String),
    /// `Key=value`, both with surrounding white space removed, as systemd does.
    Assignment(String, String),
}

/// The sections and assignments of a unit file; comments and empty lines dropped. A line
/// continued with a trailing `\` is refused: the compiler never writes one, so one would mean
/// that a value ended the line early.
pub fn unit_lines(text: &str) -> Result<Vec<UnitLine>, String> {
    let mut lines = Vec::new();
    // systemd's WHITESPACE is ASCII only; a Unicode space is part of a value.
    let trim = |s: &str| s.trim_matches([' ', '\t', '\n', '\r']).to_owned();
    for raw in text.lines() {
        let line = trim(raw);
        let line = line.as_str();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.ends_with('\\') {
            return Err(format!("continued line: {raw:?}"));
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            lines.push(UnitLine::Section(name.to_owned()));
        } else if let Some((key, value)) = line.split_once('=') {
            lines.push(UnitLine::Assignment(trim(key), trim(value)));
        } else {
            return Err(format!("neither a section nor an assignment: {raw:?}"));
        }
    }
    Ok(lines)
}

/// The value of a unit setting after specifier expansion, when the only specifier used is
/// `%%` (the compiler uses no other).
pub fn expand_specifiers(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => out.push('%'),
                other => return Err(format!("specifier %{other:?} in {value:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// An `ExecStart=` value as the argv systemd runs: specifiers expanded, then split into words
/// with double and single quotes and C escapes undone, then `$$` made `$` in each word (a
/// variable reference is refused: the compiler writes none).
pub fn exec_argv(value: &str) -> Result<Vec<String>, String> {
    let expanded = expand_specifiers(value)?;
    split_words(&expanded)?
        .into_iter()
        .map(|word| expand_dollars(&word))
        .collect()
}

fn expand_dollars(word: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c == '$' {
            match chars.next() {
                Some('$') => out.push('$'),
                other => return Err(format!("variable ${other:?} in {word:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// systemd's `extract_first_word` with `EXTRACT_UNQUOTE | EXTRACT_CUNESCAPE`, repeated.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_separator(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if is_separator(c) => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => word.push(c_escape(&mut chars)?),
                (_, c) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(format!("unterminated quote in {text:?}"));
        }
        words.push(word);
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The character a C escape after `\` stands for (the subset systemd's `cunescape` knows).
fn c_escape(chars: &mut impl Iterator<Item = char>) -> Result<char, String> {
    let c = chars.next().ok_or("`\\` at the end")?;
    Ok(match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        's' => ' ',
        '\\' | '"' | '\'' => c,
        'x' => {
            let hex: String = chars.take(2).collect();
            char::from(u8::from_str_radix(&hex, 16).map_err(|e| format!("\\x{hex}: {e}"))?)
        }
        other => return Err(format!("unknown escape \\{other}")),
    })
}

/// The command part of a cron line as cron hands it to the shell: `\%` is `%`, an unescaped
/// `%` ends the command (the rest would be its standard input), any other `\` stays.
pub fn cron_unescape(command: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut escaped = false;
    for c in command.chars() {
        if escaped {
            if c != '%' {
                out.push('\\');
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '%' {
            return Err(format!("unescaped % in {command:?}"));
        } else {
            out.push(c);
        }
    }
    if escaped {
        out.push('\\');
    }
    Ok(out)
}

/// A cron line of `/etc/cron.d`: five time fields (or one `@` macro), the user, the command.
pub fn cron_fields(line: &str) -> Option<(Vec<&str>, &str, &str)> {
    let mut rest = line;
    let mut fields = Vec::new();
    let count = if line.trim_start().starts_with('@') {
        2
    } else {
        6
    };
    for _ in 0..count {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let end = trimmed.find([' ', '\t'])?;
        fields.push(&trimmed[..end]);
        rest = &trimmed[end..];
    }
    let user = fields.pop()?;
    Some((fields, user, rest.trim_start_matches([' ', '\t'])))
}

/// Whether a cron line is a schedule line (not a comment, an empty or an environment line).
pub fn is_schedule_line(line: &str) -> bool {
    line.trim_start()
        .starts_with(|c: char| c.is_ascii_digit() || c == '*' || c == '@')
}

/// The words and operators of a command in the subset of sh the compiler writes: single-quoted
/// strings, `\` outside quotes, bare words, and the operators `>>`, `2>&1`, `&&`. Operators
/// come back as words of their own (an operator spelled inside quotes is a plain word, so
/// quoted words are marked with a leading `'` in the output to tell them apart).
pub fn sh_tokens(command: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = command.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(tokens);
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == ' ' {
                break;
            }
            chars.next();
            match c {
                '\'' => {
                    quoted = true;
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err(format!("unterminated ' in {command:?}")),
                        }
                    }
                }
                '\\' => {
                    quoted = true;
                    word.push(chars.next().ok_or("`\\` at the end")?);
                }
                '"' | '$' | '`' | ';' | '|' | '<' | '(' | ')' | '*' | '?' | '[' | '#' | '~' => {
                    return Err(format!("unexpected {c:?} outside quotes in {command:?}"));
                }
                c => word.push(c),
            }
        }
        tokens.push(if quoted { format!("'{word}") } else { word });
    }
}

/// The text of a Python string literal (the Python Language Reference, "String and Bytes
/// literals"): one quote character at each end, no prefix, and the escapes `\\`, `\'`, `\"`,
/// `\n`, `\t`, `\r`, `\xhh`, `\uxxxx`, `\Uxxxxxxxx`. An unescaped quote or line break inside,
/// or any other escape, is refused: the compiler writes none, so one would mean the value
/// ended early or reads as something else.
pub fn python_literal(text: &str) -> Result<String, String> {
    let quote = text
        .chars()
        .next()
        .filter(|q| *q == '"' || *q == '\'')
        .ok_or(format!("not a string literal: {text:?}"))?;
    let inner = text
        .get(1..text.len() - 1)
        .filter(|_| text.len() >= 2 && text.ends_with(quote))
        .ok_or(format!("unterminated: {text:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(python_escape(&mut chars)?),
            '\n' | '\r' => return Err(format!("line break in {text:?}")),
            _ if c == quote => return Err(format!("unescaped quote in {text:?}")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn python_escape(chars: &mut std::str::Chars<'_>) -> Result<char, String> {
    let hex = |chars: &mut std::str::Chars<'_>, n: usize| {
        let digits: String = chars.take(n).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or(format!("bad escape digits {digits:?}"))
    };
    match chars.next() {
        Some(c @ ('\\' | '\'' | '"')) => Ok(c),
        Some('n') => Ok('\n'),
        Some('t') => Ok('\t'),
        Some('r') => Ok('\r'),
        Some('x') => hex(chars, 2),
        Some('u') => hex(chars, 4),
        Some('U') => hex(chars, 8),
        other => Err(format!("unknown escape {other:?}")),
    }
}

/// The `name=value` arguments of a generated DAG file's one call, one a line (as ruff formats
/// it), values as written; list items (indented further) are collected under their name.
pub fn dag_call_arguments(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut arguments: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(item) = line.strip_prefix("        ") {
            let (_, items) = arguments.last_mut().ok_or("an item outside a list")?;
            items.push(
                item.strip_suffix(',')
                    .ok_or("an item without a comma")?
                    .to_owned(),
            );
        } else if let Some(argument) = line.strip_prefix("    ") {
            if argument == "]," {
                continue;
            }
            let (name, value) = argument
                .split_once('=')
                .ok_or(format!("not an argument: {line:?}"))?;
            let values = match value {
                "[" => Vec::new(),
                _ => vec![
                    value
                        .strip_suffix(',')
                        .ok_or(format!("no comma: {line:?}"))?
                        .to_owned(),
                ],
            };
            arguments.push((name.to_owned(), values));
        }
    }
    Ok(arguments)
}
