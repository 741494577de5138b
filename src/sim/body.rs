//! Request bodies in either of the engine's representations: JSON, or the XML the official SDK
//! sends (`Content-Type: application/xml`). XML is turned into the JSON shape first: attributes
//! and text-only children become string fields, a container named for its children plus `s`
//! (`<disks><disk/></disks>`) becomes a list, other repeated children a list too. Request types
//! then accept scalars as JSON values or strings ([`Number`], [`Flag`]), as the engine does.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A request body of type `T`, from JSON or XML. An empty body is `{}`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_xml = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("xml"));
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let value = parse(&bytes, is_xml).map_err(|why| bad_body(&why))?;
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| bad_body(&e.to_string()))
    }
}

fn bad_body(why: &str) -> Response {
    let body = json!({"reason": "Request syntactically incorrect.", "detail": why});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn parse(bytes: &[u8], is_xml: bool) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    if is_xml || text.trim_start().starts_with('<') {
        return xml_to_json(text);
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// The JSON shape of an XML document's root element.
///
/// # Errors
/// The text is not well-formed XML.
pub fn xml_to_json(text: &str) -> Result<Value, String> {
    let mut reader = Reader::from_str(text);
    // The stack of open elements: name, fields so far, text so far.
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => stack.push(open(&e)?),
            Event::Empty(e) => {
                let (name, fields, _) = open(&e)?;
                if let Some(done) = close(&mut stack, name, Value::Object(fields)) {
                    return Ok(done);
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&resolve(&r)?);
                }
            }
            Event::End(_) => {
                let (name, fields, text) = stack.pop().ok_or("unbalanced XML")?;
                if let Some(done) = close(&mut stack, name, element_value(fields, text)) {
                    return Ok(done);
                }
            }
            Event::Eof => return Err("the XML document has no root element".into()),
            _ => {}
        }
    }
}

/// The text an entity or character reference (`&amp;`, `&#38;`) stands for.
fn resolve(reference: &BytesRef<'_>) -> Result<String, String> {
    match reference.resolve_char_ref().map_err(|e| e.to_string())? {
        Some(c) => Ok(c.to_string()),
        None => resolve_predefined_entity(reference)
            .map(str::to_owned)
            .ok_or_else(|| "an unknown entity".to_owned()),
    }
}

/// A closed element's value: its text when it has only text, else its fields.
fn element_value(fields: Map<String, Value>, text: String) -> Value {
    if fields.is_empty() && !text.trim().is_empty() {
        Value::String(text.trim().to_owned())
    } else {
        Value::Object(fields)
    }
}

fn open(e: &BytesStart<'_>) -> Result<(String, Map<String, Value>, String), String> {
    let name = e.name().as_ref().to_owned();
    let mut fields = Map::new();
    for attribute in e.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        fields.insert(key, Value::String(value.into_owned()));
    }
    Ok((name, fields, String::new()))
}

/// Puts a finished element into its parent; returns the root when it was the root.
fn close(
    stack: &mut [(String, Map<String, Value>, String)],
    name: String,
    value: Value,
) -> Option<Value> {
    let Some((parent, fields, _)) = stack.last_mut() else {
        return Some(value);
    };
    let is_list = is_plural_of(parent, &name);
    match fields.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None if is_list => {
            fields.insert(name, Value::Array(vec![value]));
        }
        None => {
            fields.insert(name, value);
        }
    }
    None
}

/// Whether `container` is the plural of `item` (`disks` of `disk`, `custom_properties` of
/// `custom_property`): the engine's XML names a list so.
fn is_plural_of(container: &str, item: &str) -> bool {
    container.strip_suffix('s') == Some(item)
        || (item.strip_suffix('y')).is_some_and(|stem| container.strip_suffix("ies") == Some(stem))
}

/// A list of `T`, also when a body gives one `T` alone (an XML list the parser could not tell
/// from an object).
///
/// # Errors
/// Neither a list of `T` nor a `T`.
pub fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(items) => items,
        OneOrMany::One(item) => vec![item],
    })
}

/// Text sent as a string; an empty XML element (`<comment/>`), which the parser makes an empty
/// object, is the empty string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Text {
    /// `"web01"`
    Plain(String),
    /// `<comment/>`
    Empty(Map<String, Value>),
}

impl Text {
    /// Its text.
    pub fn value(&self) -> String {
        match self {
            Text::Plain(text) => text.clone(),
            Text::Empty(_) => String::new(),
        }
    }
}

/// A number sent as a JSON number or a string of digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Number {
    /// `1073741824`
    Plain(u64),
    /// `"1073741824"`
    Text(String),
}

impl Number {
    /// Its value, if it is one.
    pub fn value(&self) -> Option<u64> {
        match self {
            Number::Plain(n) => Some(*n),
            Number::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// A boolean sent as a JSON boolean or `"true"`/`"false"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    /// `true`
    Plain(bool),
    /// `"true"`
    Text(String),
}

impl Flag {
    /// Its value (anything but true is false).
    pub fn value(&self) -> bool {
        match self {
            Flag::Plain(b) => *b,
            Flag::Text(t) => t.trim().eq_ignore_ascii_case("true"),
        }
    }
}

/// A reference to another object: by id or by name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reference {
    /// Its id.
    pub id: Option<String>,
    /// Its name.
    pub name: Option<String>,
}

impl Reference {
    /// Whether it names the object with `id` and `name`.
    pub fn names(&self, id: &str, name: &str) -> bool {
        self.id.as_deref() == Some(id) || self.name.as_deref() == Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_xml_becomes_the_json_shape() {
        let xml = r#"<?xml version="1.0"?>
            <disk id="d1"><name>a &amp; b</name><provisioned_size>1024</provisioned_size>
            <storage_domains><storage_domain><name>data</name></storage_domain></storage_domains>
            <sparse>true</sparse></disk>"#;
        assert_eq!(
            xml_to_json(xml).unwrap(),
            json!({"id": "d1", "name": "a & b", "provisioned_size": "1024",
                   "storage_domains": {"storage_domain": [{"name": "data"}]}, "sparse": "true"})
        );
        assert_eq!(xml_to_json("<action/>").unwrap(), json!({}));
        assert_eq!(
            xml_to_json("<vm><custom_properties><custom_property><name>a</name></custom_property></custom_properties></vm>").unwrap(),
            json!({"custom_properties": {"custom_property": [{"name": "a"}]}})
        );
        assert_eq!(
            xml_to_json("<backup><disks><disk id='1'/><disk id='2'/></disks></backup>").unwrap(),
            json!({"disks": {"disk": [{"id": "1"}, {"id": "2"}]}})
        );
    }

    #[test]
    fn scalars_as_values_or_strings() {
        let n: Number = serde_json::from_value(json!("42")).unwrap();
        assert_eq!(n.value(), Some(42));
        let f: Flag = serde_json::from_value(json!("true")).unwrap();
        assert!(f.value());
        let f: Flag = serde_json::from_value(json!(false)).unwrap();
        assert!(!f.value());
    }
}
