//! The span index: JSON Pointer -> file bytes of every value and key, built only when there is
//! a diagnostic to place (a valid policy never pays for it).
//!
//! `jsonc-parser` (every extension off) gives the byte ranges. Values that Airflow stored as
//! JSON text are indexed too: their inner offsets are mapped back through the string's escapes,
//! so a mistake inside such a string is still underlined where it stands in the file.

use std::ops::Range;

use jsonc_parser::ast::{self, ObjectPropName};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};

use super::source::{NodeSpan, SpanIndex, escape_token, unescape_with_offsets};

/// Where every node of a file stands.
pub fn index(text: &str) -> SpanIndex {
    let mut indexer = Indexer::default();
    if let Ok(Some(root)) = parse_ast(text) {
        indexer.value(&root, &mut String::new(), None, text);
    }
    indexer.spans
}

/// The file parsed strictly into `jsonc-parser`'s AST (used for its ranges and its messages).
///
/// # Errors
/// The parser's first syntax error (strict JSON: a comment or a trailing comma is one too).
pub fn parse_ast(text: &str) -> Result<Option<ast::Value<'_>>, jsonc_parser::errors::ParseError> {
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

/// Whether the node at `pointer` may be written as a string holding JSON text (Airflow's form).
pub fn is_json_text_position(pointer: &str) -> bool {
    let mut tokens = pointer.split('/').skip(1);
    match (tokens.next(), tokens.next(), tokens.next(), tokens.next()) {
        (Some(top), None, _, _) => {
            matches!(top, "backup_settings" | "restore_settings" | "vms_config")
        }
        (Some("vms_config"), Some(_), None, _) => true,
        (Some("vms_config"), Some(_), Some(field), None) => {
            matches!(field, "schedule" | "backup_type" | "retention")
        }
        _ => false,
    }
}

/// Maps a range of the text being walked to file bytes (`map`: file offset of each byte of a
/// decoded JSON-text string, plus one for its end; `None` for the file itself).
fn to_file(range: Range<usize>, map: Option<&[usize]>) -> Range<usize> {
    match map {
        None => range,
        Some(map) => {
            let at = |i: usize| map.get(i).or(map.last()).copied().unwrap_or(0);
            at(range.start)..at(range.end)
        }
    }
}

#[derive(Default)]
struct Indexer {
    spans: SpanIndex,
}

impl Indexer {
    fn value(
        &mut self,
        node: &ast::Value<'_>,
        pointer: &mut String,
        map: Option<&[usize]>,
        text: &str,
    ) {
        match node {
            ast::Value::StringLit(s)
                if is_json_text_position(pointer) && s.value.trim_start().starts_with('{') =>
            {
                self.json_text(s, pointer, map, text);
            }
            ast::Value::Array(array) => {
                for (i, element) in array.elements.iter().enumerate() {
                    self.member(element, None, &i.to_string(), pointer, map, text);
                }
            }
            ast::Value::Object(object) => {
                for prop in &object.properties {
                    let name_range = prop.name.range();
                    let key = to_file(name_range.start..name_range.end, map);
                    let name = match &prop.name {
                        ObjectPropName::String(s) => s.value.as_ref(),
                        ObjectPropName::Word(w) => w.value,
                    };
                    self.member(&prop.value, Some(key), name, pointer, map, text);
                }
            }
            _ => {}
        }
    }

    fn member(
        &mut self,
        node: &ast::Value<'_>,
        key: Option<Range<usize>>,
        token: &str,
        pointer: &mut String,
        map: Option<&[usize]>,
        text: &str,
    ) {
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&escape_token(token));
        let range = node.range();
        let span = NodeSpan {
            value: to_file(range.start..range.end, map),
            key,
            earlier_key: None,
            direct: map.is_none(),
        };
        self.spans.insert(pointer.clone(), span);
        self.value(node, pointer, map, text);
        pointer.truncate(len);
    }

    /// A string holding JSON text: its inner nodes indexed in file bytes, through its escapes.
    fn json_text(
        &mut self,
        literal: &ast::StringLit<'_>,
        pointer: &mut String,
        map: Option<&[usize]>,
        text: &str,
    ) {
        let range = literal.range.start..literal.range.end;
        let (inner, offsets) = unescape_with_offsets(&text[range.clone()]);
        let inner_map: Vec<usize> = offsets
            .iter()
            .map(|&o| to_file(range.start + o..range.start + o, map).start)
            .collect();
        if let Ok(Some(root)) = parse_ast(&inner) {
            self.value(&root, pointer, Some(&inner_map), &inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values_and_keys() {
        let text = r#"{"a": {"b": [1, "x"]}}"#;
        let spans = index(text);
        let b = spans.get("/a/b").expect("indexed");
        assert_eq!(&text[b.value.clone()], r#"[1, "x"]"#);
        assert_eq!(&text[b.key.clone().expect("key")], r#""b""#);
        assert_eq!(
            &text[spans.get("/a/b/1").expect("item").value.clone()],
            r#""x""#
        );
    }

    #[test]
    fn json_text_is_indexed_in_file_bytes() {
        let text = r#"{"vms_config": "{\"vm1\": {\"enabled\": true}}"}"#;
        let spans = index(text);
        let span = spans.get("/vms_config/vm1/enabled").expect("indexed");
        assert_eq!(&text[span.value.clone()], "true");
        assert_eq!(&text[span.key.clone().expect("key")], r#"\"enabled\""#);
        assert!(!span.direct);
    }

    #[test]
    fn a_repeated_key_keeps_the_earlier_one() {
        let text = r#"{"a": 1, "a": 2}"#;
        let spans = index(text);
        let a = spans.get("/a").expect("indexed");
        assert_eq!(&text[a.key.clone().expect("key")], r#""a""#);
        assert_eq!(a.key.clone().expect("key").start, 9);
        assert_eq!(a.earlier_key.clone().expect("earlier").start, 1);
    }
}
