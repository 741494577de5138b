//! Stage 1: text -> [`Document`] (the JSON value, with Airflow's JSON-text values decoded, and the
//! span of every node).
//!
//! One strict JSON parse (`jsonc-parser` with every extension off) gives both the value and the
//! byte ranges. Keys written twice are kept as findings, because `serde_json` would silently keep
//! only the last one and a VM would vanish from the policy without a word.

use std::ops::Range;

use jsonc_parser::ast::{self, ObjectPropName};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};
use serde_json::{Map, Number, Value};

use super::diagnostic::{Code, Diagnostic, Mark};
use super::source::{NodeSpan, SpanIndex, escape_token, unescape_with_offsets};

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The value, with JSON-text strings at object positions decoded.
    pub value: Value,
    /// Where every node stands in the file.
    pub spans: SpanIndex,
    /// Keys written twice in one object: (object pointer, key, first key bytes, second key bytes).
    pub duplicate_keys: Vec<DuplicateKey>,
    /// Problems found while parsing that do not stop it (JSON text that does not parse).
    pub findings: Vec<Diagnostic>,
}

/// A key written twice in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Pointer of the object.
    pub object: String,
    /// The key.
    pub key: String,
    /// File bytes of its first occurrence.
    pub first: Range<usize>,
    /// File bytes of the later occurrence.
    pub again: Range<usize>,
}

/// Parses a policy file.
///
/// # Errors
/// A syntax error (the file is not JSON) as a diagnostic at the offending bytes.
pub fn parse(text: &str) -> Result<Document, Box<Diagnostic>> {
    // jsonc-parser's messages are the better ones ("trailing commas are not allowed"), so it
    // goes first; serde_json then refuses what jsonc-parser tolerates.
    let root = parse_ast(text).map_err(|e| Box::new(syntax_error(&e, None)))?;
    strict_json(text).map_err(|e| Box::new(serde_syntax_error(text, &e, None)))?;
    let mut walker = Walker::default();
    let value = match root {
        Some(root) => walker.value(root, &mut String::new(), &mut Vec::new(), None, text),
        None => {
            let end = text.len();
            return Err(Box::new(
                Diagnostic::new(Code::Syntax, "", "the file holds no JSON value")
                    .mark(Mark::File(end..end))
                    .help("write the policy as one JSON object"),
            ));
        }
    };
    Ok(Document {
        value,
        spans: walker.spans,
        duplicate_keys: walker.duplicates,
        findings: walker.findings,
    })
}

fn parse_ast(text: &str) -> Result<Option<ast::Value<'_>>, jsonc_parser::errors::ParseError> {
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &strict).map(|r| r.value)
}

/// RFC 8259 to the letter (raw control characters in strings, say, are refused): `serde_json`
/// decides what is JSON, and `jsonc-parser` only supplies the spans.
fn strict_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}

fn serde_syntax_error(text: &str, error: &serde_json::Error, map: Option<&[usize]>) -> Diagnostic {
    let offset = offset_of(text, error.line(), error.column());
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    Diagnostic::new(Code::Syntax, "", format!("not valid JSON: {message}"))
        .mark(Mark::File(to_file(offset..offset + 1, map)))
        .help("fix the JSON syntax here; a policy file is plain JSON (no comments, no trailing commas)")
}

/// The byte offset of serde_json's 1-based line and column (a column counts bytes; 0 means
/// the error is at the line's start).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

fn syntax_error(error: &jsonc_parser::errors::ParseError, map: Option<&[usize]>) -> Diagnostic {
    let range = error.range();
    let file = to_file(range.start..range.end.max(range.start + 1), map);
    Diagnostic::new(
        Code::Syntax,
        "",
        format!("not valid JSON: {}", error.kind()),
    )
    .mark(Mark::File(file))
    .help("fix the JSON syntax here; a policy file is plain JSON (no comments, no trailing commas)")
}

/// Maps a range of the text being walked to file bytes.
fn to_file(range: Range<usize>, map: Option<&[usize]>) -> Range<usize> {
    match map {
        None => range,
        Some(map) => {
            let at = |i: usize| map.get(i).or(map.last()).copied().unwrap_or(0);
            at(range.start)..at(range.end)
        }
    }
}

/// Whether the node at `path` may be written as a string holding JSON text (Airflow's form).
fn is_json_text_position(path: &[String]) -> bool {
    match path {
        [top] => matches!(
            top.as_str(),
            "backup_settings" | "restore_settings" | "vms_config"
        ),
        [top, _] => top == "vms_config",
        [top, _, field] => {
            top == "vms_config"
                && matches!(field.as_str(), "schedule" | "backup_type" | "retention")
        }
        _ => false,
    }
}

#[derive(Default)]
struct Walker {
    spans: SpanIndex,
    duplicates: Vec<DuplicateKey>,
    findings: Vec<Diagnostic>,
}

impl Walker {
    fn value(
        &mut self,
        node: ast::Value<'_>,
        pointer: &mut String,
        path: &mut Vec<String>,
        map: Option<&[usize]>,
        text: &str,
    ) -> Value {
        match node {
            ast::Value::StringLit(s)
                if is_json_text_position(path) && s.value.trim_start().starts_with('{') =>
            {
                self.json_text(&s, pointer, path, map, text)
            }
            ast::Value::StringLit(s) => Value::String(s.value.into_owned()),
            ast::Value::NumberLit(n) => n
                .value
                .parse::<Number>()
                .map_or_else(|_| Value::String(n.value.to_owned()), Value::Number),
            ast::Value::BooleanLit(b) => Value::Bool(b.value),
            ast::Value::NullKeyword(_) => Value::Null,
            ast::Value::Array(a) => self.array(a, pointer, path, map, text),
            ast::Value::Object(o) => self.object(o, pointer, path, map, text),
        }
    }

    fn array(
        &mut self,
        array: ast::Array<'_>,
        pointer: &mut String,
        path: &mut Vec<String>,
        map: Option<&[usize]>,
        text: &str,
    ) -> Value {
        let mut items = Vec::with_capacity(array.elements.len());
        for (i, element) in array.elements.into_iter().enumerate() {
            let range = element.range();
            let token = i.to_string();
            items.push(self.member(element, range, None, &token, pointer, path, map, text));
        }
        Value::Array(items)
    }

    fn object(
        &mut self,
        object: ast::Object<'_>,
        pointer: &mut String,
        path: &mut Vec<String>,
        map: Option<&[usize]>,
        text: &str,
    ) -> Value {
        let mut members = Map::with_capacity(object.properties.len());
        let mut keys: Vec<(String, Range<usize>)> = Vec::new();
        for prop in object.properties {
            let name_range = prop.name.range();
            let key_bytes = to_file(name_range.start..name_range.end, map);
            let name = match prop.name {
                ObjectPropName::String(s) => s.value.into_owned(),
                ObjectPropName::Word(w) => w.value.to_owned(),
            };
            if let Some((_, first)) = keys.iter().find(|(k, _)| *k == name) {
                self.duplicates.push(DuplicateKey {
                    object: pointer.clone(),
                    key: name.clone(),
                    first: first.clone(),
                    again: key_bytes.clone(),
                });
            }
            keys.push((name.clone(), key_bytes.clone()));
            let range = prop.value.range();
            let value = self.member(
                prop.value,
                range,
                Some(key_bytes),
                &name,
                pointer,
                path,
                map,
                text,
            );
            members.insert(name, value);
        }
        Value::Object(members)
    }

    #[allow(clippy::too_many_arguments)] // one recursive step: the walk's whole state, passed down
    fn member(
        &mut self,
        node: ast::Value<'_>,
        range: jsonc_parser::common::Range,
        key: Option<Range<usize>>,
        token: &str,
        pointer: &mut String,
        path: &mut Vec<String>,
        map: Option<&[usize]>,
        text: &str,
    ) -> Value {
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&escape_token(token));
        path.push(token.to_owned());
        let span = NodeSpan {
            value: to_file(range.start..range.end, map),
            key,
            direct: map.is_none(),
        };
        self.spans.insert(pointer.clone(), span);
        let value = self.value(node, pointer, path, map, text);
        path.pop();
        pointer.truncate(len);
        value
    }

    /// A string holding JSON text: parsed, indexed through its escapes, and returned as the value
    /// it holds. Text that does not parse is reported and kept as the string.
    fn json_text(
        &mut self,
        literal: &ast::StringLit<'_>,
        pointer: &mut String,
        path: &mut Vec<String>,
        map: Option<&[usize]>,
        text: &str,
    ) -> Value {
        let range = literal.range.start..literal.range.end;
        let (inner, offsets) = unescape_with_offsets(&text[range.clone()]);
        let inner_map: Vec<usize> = offsets
            .iter()
            .map(|&o| to_file(range.start + o..range.start + o, map).start)
            .collect();
        let parsed = parse_ast(&inner);
        if let (Ok(_), Err(error)) = (&parsed, strict_json(&inner)) {
            let syntax = serde_syntax_error(&inner, &error, Some(&inner_map));
            self.bad_json_text(pointer, &syntax.message, syntax.mark);
            return Value::String(inner);
        }
        match parsed {
            Ok(Some(root)) => self.value(root, pointer, path, Some(&inner_map), &inner),
            Ok(None) => Value::String(inner),
            Err(error) => {
                let syntax = syntax_error(&error, Some(&inner_map));
                self.bad_json_text(pointer, &syntax.message, syntax.mark);
                Value::String(inner)
            }
        }
    }

    fn bad_json_text(&mut self, pointer: &str, syntax: &str, mark: Mark) {
        let why = syntax.trim_start_matches("not valid JSON: ");
        self.findings.push(
            Diagnostic::new(
                Code::BadJsonText,
                pointer,
                format!("`{pointer}` holds JSON text that does not parse: {why}"),
            )
            .mark(mark)
            .help("fix the JSON inside this string, or write the value as a plain JSON object"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values_and_keys() {
        let text = r#"{"a": {"b": [1, "x"]}}"#;
        let doc = parse(text).expect("valid");
        let b = doc.spans.get("/a/b").expect("indexed");
        assert_eq!(&text[b.value.clone()], r#"[1, "x"]"#);
        assert_eq!(&text[b.key.clone().expect("key")], r#""b""#);
        assert_eq!(
            &text[doc.spans.get("/a/b/1").expect("item").value.clone()],
            r#""x""#
        );
    }

    #[test]
    fn json_text_is_decoded_and_indexed_in_file_bytes() {
        let text = r#"{"vms_config": "{\"vm1\": {\"enabled\": true}}"}"#;
        let doc = parse(text).expect("valid");
        assert_eq!(doc.value["vms_config"]["vm1"]["enabled"], Value::Bool(true));
        let span = doc.spans.get("/vms_config/vm1/enabled").expect("indexed");
        assert_eq!(&text[span.value.clone()], "true");
        assert_eq!(&text[span.key.clone().expect("key")], r#"\"enabled\""#);
    }

    #[test]
    fn bad_json_text_is_a_finding_at_its_bytes() {
        let text = r#"{"vms_config": "{\"vm1\": }"}"#;
        let doc = parse(text).expect("outer JSON is fine");
        assert_eq!(doc.findings.len(), 1);
        assert_eq!(doc.findings[0].code, Code::BadJsonText);
        let Mark::File(range) = &doc.findings[0].mark else {
            panic!("file mark")
        };
        assert_eq!(&text[range.clone()], "}");
    }

    #[test]
    fn duplicate_keys_are_found() {
        let doc = parse(r#"{"vms_config": {"a": 1, "a": 2}}"#).expect("valid");
        assert_eq!(doc.duplicate_keys.len(), 1);
        assert_eq!(doc.duplicate_keys[0].object, "/vms_config");
    }

    #[test]
    fn control_characters_and_truncation_are_syntax_errors() {
        for text in ["{\"a\": \"x\u{0}y\"}", "{\"a\": \"https://e", "{\"a\"", ""] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.code, Code::Syntax, "{text:?}");
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("{\"a\": 1,}").expect_err("trailing comma");
        assert_eq!(err.code, Code::Syntax);
    }
}
