//! Stage 1: text -> [`Document`]: the JSON value, with Airflow's JSON-text values decoded and
//! keys written twice recorded.
//!
//! `serde_json` decides what JSON is and builds the value in one pass, through a visitor that
//! notices repeated keys (plain `serde_json` keeps the last silently, and a VM would vanish from
//! the policy without a word). Spans are not needed here: `index` finds them when there is a
//! diagnostic to place. For a syntax error, `jsonc-parser`'s message is preferred when it
//! explains better ("trailing commas are not allowed").

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

use super::diagnostic::{Code, Diagnostic, Mark};
use super::index::{is_json_text_position, parse_ast};
use super::source::escape_token;

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The value, with JSON-text strings at object positions decoded.
    pub value: Value,
    /// Keys written twice in one object.
    pub duplicate_keys: Vec<DuplicateKey>,
    /// Problems that do not stop parsing (JSON text inside a string that does not parse).
    pub findings: Vec<Diagnostic>,
}

/// A key written twice in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Pointer of the object.
    pub object: String,
    /// The key.
    pub key: String,
}

/// Parses a policy file.
///
/// # Errors
/// A syntax error (the file is not JSON) as a diagnostic at the offending bytes.
pub fn parse(text: &str) -> Result<Document, Box<Diagnostic>> {
    let mut duplicates = Vec::new();
    let mut value = build(text, "", &mut duplicates).map_err(|e| {
        let (range, message) = syntax_problem(text, &e);
        Box::new(
            Diagnostic::new(Code::Syntax, "", format!("not valid JSON: {message}"))
                .mark(Mark::File(range))
                .help("fix the JSON syntax here; a policy file is plain JSON (no comments, no trailing commas)"),
        )
    })?;
    let mut findings = Vec::new();
    decode_json_text(
        &mut value,
        &mut String::new(),
        &mut duplicates,
        &mut findings,
    );
    Ok(Document {
        value,
        duplicate_keys: duplicates,
        findings,
    })
}

fn build(
    text: &str,
    pointer: &str,
    duplicates: &mut Vec<DuplicateKey>,
) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut context = Context {
        pointer: pointer.to_owned(),
        duplicates,
    };
    let value = ValueSeed {
        context: &mut context,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Where a syntax error is (bytes of `text`) and what it is, in the clearer of the two parsers'
/// words.
fn syntax_problem(text: &str, error: &serde_json::Error) -> (std::ops::Range<usize>, String) {
    if let Err(jsonc) = parse_ast(text) {
        let range = jsonc.range();
        return (
            range.start..range.end.max(range.start + 1),
            jsonc.kind().to_string(),
        );
    }
    let offset = offset_of(text, error.line(), error.column());
    let message = error.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    (offset..offset + 1, message)
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

/// Replaces strings holding JSON text (at the positions Airflow wrote them) with the objects
/// they hold, outermost first, so nested JSON text is decoded too.
fn decode_json_text(
    value: &mut Value,
    pointer: &mut String,
    duplicates: &mut Vec<DuplicateKey>,
    findings: &mut Vec<Diagnostic>,
) {
    let Value::Object(members) = value else {
        return;
    };
    for (key, member) in members.iter_mut() {
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&escape_token(key));
        if is_json_text_position(pointer) {
            if let Value::String(text) = member
                && text.trim_start().starts_with('{')
            {
                match build(text, pointer, duplicates) {
                    Ok(decoded) => *member = decoded,
                    Err(error) => findings.push(bad_json_text(pointer, text, &error)),
                }
            }
            decode_json_text(member, pointer, duplicates, findings);
        }
        pointer.truncate(len);
    }
}

fn bad_json_text(pointer: &str, text: &str, error: &serde_json::Error) -> Diagnostic {
    let (range, message) = syntax_problem(text, error);
    Diagnostic::new(
        Code::BadJsonText,
        pointer,
        format!("`{pointer}` holds JSON text that does not parse: {message}"),
    )
    .mark(Mark::Inner(range))
    .help("fix the JSON inside this string, or write the value as a plain JSON object")
}

struct Context<'d> {
    pointer: String,
    duplicates: &'d mut Vec<DuplicateKey>,
}

/// Builds a `serde_json::Value`, noting keys written twice.
struct ValueSeed<'c, 'd> {
    context: &'c mut Context<'d>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let len = self.context.pointer.len();
            self.context.pointer.push('/');
            self.context.pointer.push_str(&items.len().to_string());
            let item = seq.next_element_seed(ValueSeed {
                context: self.context,
            })?;
            self.context.pointer.truncate(len);
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let len = self.context.pointer.len();
            self.context.pointer.push('/');
            self.context.pointer.push_str(&escape_token(&key));
            let value = access.next_value_seed(ValueSeed {
                context: self.context,
            })?;
            self.context.pointer.truncate(len);
            match members.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(mut slot) => {
                    self.context.duplicates.push(DuplicateKey {
                        object: self.context.pointer.clone(),
                        key: slot.key().clone(),
                    });
                    slot.insert(value);
                }
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_decoded() {
        let text =
            r#"{"vms_config": "{\"vm1\": {\"schedule\": \"{\\\"type\\\": \\\"cron\\\"}\"}}"}"#;
        let doc = parse(text).expect("valid");
        assert_eq!(doc.value["vms_config"]["vm1"]["schedule"]["type"], "cron");
        assert!(doc.findings.is_empty());
    }

    #[test]
    fn bad_json_text_is_a_finding_inside_its_string() {
        let text = r#"{"vms_config": "{\"vm1\": }"}"#;
        let doc = parse(text).expect("outer JSON is fine");
        assert_eq!(doc.findings.len(), 1);
        assert_eq!(doc.findings[0].code, Code::BadJsonText);
        assert_eq!(doc.findings[0].mark, Mark::Inner(8..9));
    }

    #[test]
    fn duplicate_keys_are_found_with_their_object() {
        let doc =
            parse(r#"{"vms_config": {"a": 1, "b": {"x": 1, "x": 2}, "a": 2}}"#).expect("valid");
        let found: Vec<(&str, &str)> = doc
            .duplicate_keys
            .iter()
            .map(|d| (d.object.as_str(), d.key.as_str()))
            .collect();
        assert_eq!(found, [("/vms_config/b", "x"), ("/vms_config", "a")]);
    }

    #[test]
    fn syntax_errors_refuse_what_plain_json_refuses() {
        for text in [
            "{\"a\": 1,}",
            "{\"a\": \"x\u{0}y\"}",
            "{\"a\": \"https://e",
            "{\"a\"",
            "",
            "{} {}",
            "[01]",
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.code, Code::Syntax, "{text:?}");
        }
    }
}
