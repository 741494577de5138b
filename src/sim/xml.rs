//! The engine's XML representation, from the JSON one (section 1.2 of the API page): a single
//! object is an element named for its type, with `id` and `href` as attributes and every other
//! field as a child element; a list is its singular element repeated; scalars are text. Dates,
//! epoch milliseconds in JSON, are ISO 8601 in XML (`2022-04-14T05:16:07.993Z`), as the SDK
//! parses them.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::{Map, Value};

/// Fields that hold a date (epoch milliseconds in JSON).
const DATES: [&str; 8] = [
    "date",
    "creation_date",
    "modification_date",
    "start_time",
    "end_time",
    "last_updated",
    "time",
    "creation_time",
];

/// The document `<tag …>…</tag>` for a JSON value in the engine's shape.
pub fn to_xml(tag: &str, value: &Value) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let declaration = BytesDecl::new("1.0", Some("UTF-8"), Some("yes"));
    let _ = writer.write_event(Event::Decl(declaration));
    element(&mut writer, tag, value);
    let mut text = String::from_utf8(writer.into_inner()).expect("XML written from UTF-8 strings");
    text.push('\n');
    text
}

/// Writes `value` as the element `tag` (a list as `tag` repeated, null as nothing).
fn element(writer: &mut Writer<Vec<u8>>, tag: &str, value: &Value) {
    match value {
        Value::Object(fields) => object_element(writer, tag, fields),
        Value::Array(items) => items.iter().for_each(|item| element(writer, tag, item)),
        Value::Null => {}
        scalar => {
            let text = scalar_text(tag, scalar);
            let _ = writer.write_event(Event::Start(BytesStart::new(tag)));
            let _ = writer.write_event(Event::Text(BytesText::new(&text)));
            let _ = writer.write_event(Event::End(BytesEnd::new(tag)));
        }
    }
}

/// An object: `href`, `id` and `rel` strings as attributes, every other field (but an empty
/// list) as child elements; an object with no children is an empty element.
fn object_element(writer: &mut Writer<Vec<u8>>, tag: &str, fields: &Map<String, Value>) {
    let mut start = BytesStart::new(tag);
    for key in ["href", "id", "rel"] {
        if let Some(Value::String(attr)) = fields.get(key) {
            start.push_attribute((key, attr.as_str()));
        }
    }
    let is_attribute = |k: &str, v: &Value| matches!(k, "href" | "id" | "rel") && v.is_string();
    let is_empty_list = |v: &Value| v.as_array().is_some_and(Vec::is_empty);
    let children: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, v)| !is_attribute(k, v) && !is_empty_list(v))
        .collect();
    if children.is_empty() {
        let _ = writer.write_event(Event::Empty(start));
        return;
    }
    let _ = writer.write_event(Event::Start(start));
    for (key, child) in children {
        match child {
            Value::Array(items) => items.iter().for_each(|item| element(writer, key, item)),
            other => element(writer, key, other),
        }
    }
    let _ = writer.write_event(Event::End(BytesEnd::new(tag)));
}

/// The text of a scalar field: a string as it is, a date's epoch milliseconds as ISO 8601.
fn scalar_text(tag: &str, scalar: &Value) -> String {
    match scalar {
        Value::String(s) => s.clone(),
        Value::Number(n) if DATES.contains(&tag) => n
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(
                || n.to_string(),
                |d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_attributes_lists_and_empty_elements() {
        let vm = json!({"id": "1", "href": "/ovirt-engine/api/vms/1", "name": "web & db",
            "link": [{"href": "/x", "rel": "disks"}], "disk_attachments": {}});
        assert!(
            to_xml(
                "backup",
                &serde_json::json!({"creation_date": 1_649_927_767_993_i64})
            )
            .contains("<creation_date>2022-04-14T09:16:07.993Z</creation_date>")
        );
        assert_eq!(
            to_xml("vm", &vm),
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
             <vm href=\"/ovirt-engine/api/vms/1\" id=\"1\">\n  <name>web &amp; db</name>\n  \
             <link href=\"/x\" rel=\"disks\"/>\n  <disk_attachments/>\n</vm>\n"
        );
    }
}
