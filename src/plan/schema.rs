//! Stage 2a: the policy's JSON Schema (`schemas/variables.schema.json`, embedded), checked with
//! `jsonschema`, and each of its errors turned into a [`Diagnostic`] with its own code.
//!
//! The schema is the source of truth for shapes and is also what editors use for completion;
//! the errors it finds are translated here so that they read like the rest of `ovplan`'s:
//! unknown keys get a "did you mean", and a failing keyword gets the description of the
//! definition it belongs to as its help.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::diagnostic::{Code, Diagnostic, Mark};
use super::names;
use super::source::escape_token;

/// The policy schema's text, as shipped.
pub const SCHEMA_TEXT: &str = include_str!("../../schemas/variables.schema.json");

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(SCHEMA_TEXT).expect("the embedded schema is JSON (tested)");
        let validator =
            jsonschema::validator_for(&schema).expect("the embedded schema compiles (tested)");
        Compiled { schema, validator }
    })
}

/// Every schema error in a decoded policy.
pub fn check(doc: &Value) -> Vec<Diagnostic> {
    let compiled = compiled();
    compiled
        .validator
        .iter_errors(doc)
        .flat_map(|error| translate(&compiled.schema, &error))
        .collect()
}

fn translate(schema: &Value, error: &ValidationError<'_>) -> Vec<Diagnostic> {
    let pointer = error.instance_path().as_str().to_owned();
    let owner = keyword_owner(schema, error);
    if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
        return unexpected
            .iter()
            .map(|key| unknown_key(&pointer, key, owner))
            .collect();
    }
    let diagnostic = describe(error, pointer, owner);
    let described = owner
        .and_then(|o| o.get("description"))
        .and_then(Value::as_str);
    let diagnostic = match (&diagnostic.help, described) {
        (None, Some(text)) => diagnostic.help(text),
        _ => diagnostic,
    };
    vec![diagnostic]
}

/// The one diagnostic of an error other than unknown keys, its message naming the place.
fn describe(error: &ValidationError<'_>, pointer: String, owner: Option<&Value>) -> Diagnostic {
    let place = if pointer.is_empty() {
        "the policy".to_owned()
    } else {
        format!("`{pointer}`")
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => missing_key(
            pointer,
            &place,
            property.as_str().unwrap_or_default(),
            owner,
        ),
        ValidationErrorKind::Enum { options } => {
            invalid_value(&pointer, &place, error.instance(), options)
        }
        _ => {
            let (code, message) = problem(error, &place);
            Diagnostic::new(code, pointer, message)
        }
    }
}

/// The code and message of an error that is about a value alone.
fn problem(error: &ValidationError<'_>, place: &str) -> (Code, String) {
    match error.kind() {
        ValidationErrorKind::Type { kind } => (
            Code::WrongType,
            format!(
                "{place} must be {}, not {}",
                type_name(kind),
                json_type(error.instance())
            ),
        ),
        ValidationErrorKind::Constant { expected_value } => (
            Code::InvalidValue,
            format!("{place} must be {expected_value}"),
        ),
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => (
            Code::OutOfRange,
            format!("{place} is out of range: {error}"),
        ),
        ValidationErrorKind::Pattern { .. } => (
            Code::InvalidFormat,
            format!(
                "{place} does not have the expected form: {}",
                error.instance()
            ),
        ),
        _ => (
            Code::InvalidFormat,
            format!("{place} is not valid: {error}"),
        ),
    }
}

fn missing_key(pointer: String, place: &str, key: &str, owner: Option<&Value>) -> Diagnostic {
    Diagnostic::new(
        Code::MissingKey,
        pointer,
        format!("{place} lacks the required key `{key}`"),
    )
    .mark(Mark::Key)
    .help(required_help(owner, key))
}

fn unknown_key(object: &str, key: &str, owner: Option<&Value>) -> Diagnostic {
    let known: Vec<&str> = owner
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let place = if object.is_empty() {
        "the policy".to_owned()
    } else {
        format!("`{object}`")
    };
    let help = match names::did_you_mean(key, known.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None if known.is_empty() => "remove it".to_owned(),
        None => format!("remove it; the keys here are: {}", known.join(", ")),
    };
    Diagnostic::new(
        Code::UnknownKey,
        format!("{object}/{}", escape_token(key)),
        format!("unknown key `{key}` in {place}"),
    )
    .mark(Mark::Key)
    .help(help)
}

fn required_help(owner: Option<&Value>, key: &str) -> String {
    let description = owner
        .and_then(|o| o.pointer(&format!("/properties/{}", escape_token(key))))
        .and_then(|p| p.get("description"))
        .and_then(Value::as_str);
    match description {
        Some(text) => format!("add `{key}`: {text}"),
        None => format!("add `{key}`"),
    }
}

fn invalid_value(pointer: &str, place: &str, instance: &Value, options: &Value) -> Diagnostic {
    let choices: Vec<&str> = options
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let help = match instance.as_str() {
        Some(word) => names::suggestion(word, &choices),
        None => format!("use one of: {}", choices.join(", ")),
    };
    Diagnostic::new(
        Code::InvalidValue,
        pointer,
        format!("{place} cannot be {instance}"),
    )
    .help(help)
}

/// The subschema that holds the failing keyword (found through its absolute location).
fn keyword_owner<'s>(schema: &'s Value, error: &ValidationError<'_>) -> Option<&'s Value> {
    let location = error.absolute_keyword_location()?;
    let fragment = location.fragment()?.as_str();
    let decoded = percent_encoding::percent_decode_str(fragment).decode_utf8_lossy();
    let owner = decoded.rsplit_once('/').map_or("", |(owner, _)| owner);
    schema.pointer(owner)
}

fn type_name(kind: &TypeKind) -> String {
    let article = |t: String| match t.as_str() {
        "array" | "integer" | "object" => format!("an {t}"),
        "null" => t,
        _ => format!("a {t}"),
    };
    match kind {
        TypeKind::Single(t) => article(t.to_string()),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| article(t.to_string()))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles_and_describes_every_property() {
        let schema = &compiled().schema;
        let mut missing = Vec::new();
        undescribed(schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "properties without a description: {missing:?}"
        );
    }

    fn undescribed(node: &Value, at: &str, missing: &mut Vec<String>) {
        let Some(object) = node.as_object() else {
            return;
        };
        if let Some(props) = object.get("properties").and_then(Value::as_object) {
            for (key, prop) in props {
                if prop.get("description").is_none() {
                    missing.push(format!("{at}/properties/{key}"));
                }
            }
        }
        // `if` subschemas only discriminate; editors show the descriptions of the branches.
        for (key, child) in object.iter().filter(|(k, _)| *k != "if") {
            undescribed(child, &format!("{at}/{key}"), missing);
        }
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let doc = serde_json::json!({
            "source_ovirt_url": "https://e/ovirt-engine/api", "source_ovirt_user": "admin@internal",
            "backup_directory": "/b", "vms_config": {"vm": {"schedule": "1111111", "retenion": {}}}
        });
        let found = check(&doc);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].code, Code::UnknownKey);
        assert_eq!(found[0].pointer, "/vms_config/vm/retenion");
        assert_eq!(found[0].help.as_deref(), Some("did you mean `retention`?"));
    }
}
