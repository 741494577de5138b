//! Stage 2c: the checks that keep a policy's strings from changing what a generated file
//! means. A control character (a newline above all) could end a unit's `Key=` line and start
//! another, so it is refused anywhere in the file; every path key must be absolute and in the
//! normal form systemd keeps unchanged (`LoadCredential=` takes its path unquoted, and
//! `ReadWritePaths=` simplifies `.`, `..` and `//`), so that what runs is what was written.

use serde_json::{Map, Value};

use super::diagnostic::{Code, Diagnostic, Mark};
use super::source::escape_token;

/// The keys whose values are file system paths.
pub const PATH_KEYS: [&str; 6] = [
    "backup_directory",
    "checkpoints_file",
    "source_ovirt_password_file",
    "source_ovirt_cert_path",
    "target_ovirt_password_file",
    "target_ovirt_cert_path",
];

/// The longest file name component Linux (and systemd) accepts, in bytes.
const NAME_MAX: usize = 255;

/// Every control character in the document's strings and keys, and every unusable path.
pub fn check(doc: &Value) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    control_characters(doc, &mut String::new(), &mut found);
    if let Some(root) = doc.as_object() {
        paths(root, &mut found);
    }
    found
}

fn control_characters(value: &Value, pointer: &mut String, found: &mut Vec<Diagnostic>) {
    match value {
        Value::String(text) => {
            if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
                found.push(control_character(pointer, at, c));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                descend(pointer, &i.to_string(), |p| {
                    control_characters(item, p, found)
                });
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                // A control character in a key: a VM name is `unsafe-vm-name`'s, any other key
                // is unknown to the schema anyway.
                descend(pointer, key, |p| control_characters(item, p, found));
            }
        }
        _ => {}
    }
}

fn descend(pointer: &mut String, token: &str, f: impl FnOnce(&mut String)) {
    let len = pointer.len();
    pointer.push('/');
    pointer.push_str(&escape_token(token));
    f(pointer);
    pointer.truncate(len);
}

fn control_character(pointer: &str, at: usize, c: char) -> Diagnostic {
    Diagnostic::new(
        Code::ControlCharacter,
        pointer,
        format!(
            "`{pointer}` holds the control character U+{:04X} (`{}`)",
            u32::from(c),
            c.escape_debug()
        ),
    )
    .mark(Mark::Inner(at..at + c.len_utf8()))
    .help("remove it: a control character (a line break above all) would split a line of a generated unit or cron file")
}

fn paths(root: &Map<String, Value>, found: &mut Vec<Diagnostic>) {
    for key in PATH_KEYS {
        let Some(Value::String(path)) = root.get(key) else {
            continue;
        };
        let pointer = format!("/{key}");
        if path.chars().any(char::is_control) {
            continue; // reported once, as a control character
        }
        if !path.starts_with('/') {
            found.push(
                Diagnostic::new(Code::RelativePath, &pointer, format!("`{key}` is the relative path `{path}`"))
                    .help("write the absolute path (starting with `/`): the jobs run from another working directory"),
            );
        } else if let Some(why) = unusable(path) {
            found.push(
                Diagnostic::new(Code::UnusablePath, &pointer, format!("`{key}` is `{path}`, which systemd would not pass on unchanged: {why}"))
                    .help("write the path in normal form: no `.`, `..` or empty components, no trailing `/`, space or `\\`, each name at most 255 bytes"),
            );
        }
    }
}

/// Why an absolute path would not reach a unit exactly as written, if it would not.
pub fn unusable(path: &str) -> Option<&'static str> {
    if path == "/" {
        return None;
    }
    let components: Vec<&str> = path[1..].split('/').collect();
    if components.iter().any(|c| c.is_empty()) {
        Some("it has an empty component (`//` or a trailing `/`)")
    } else if components.iter().any(|c| *c == "." || *c == "..") {
        Some("it has a `.` or `..` component")
    } else if components.iter().any(|c| c.len() > NAME_MAX) {
        Some("a component is longer than 255 bytes")
    } else if path.ends_with([' ', '\\']) {
        // systemd strips ASCII white space (the rest is refused as control characters) from
        // a line's end and joins a line ending in `\` to the next.
        Some("it ends in a space or `\\`, which a unit file line drops or joins to the next")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_paths() {
        for (path, bad) in [
            ("/", false),
            ("/srv/back up/%$\"'", false),
            ("/srv//x", true),
            ("/srv/x/", true),
            ("/srv/./x", true),
            ("/srv/../x", true),
            ("/srv/x ", true),
            ("/srv/x\\", true),
            ("/srv/x\\y", false),
        ] {
            assert_eq!(unusable(path).is_some(), bad, "{path}");
        }
    }
}
