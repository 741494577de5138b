//! Where things are in a policy file: the file's text, and the byte span of every value and key
//! by JSON Pointer.
//!
//! `jsonschema` and our own checks name a place by JSON Pointer; an operator wants a line and a
//! column. The index is built while parsing (see `parse.rs`) and maps each pointer to the bytes of
//! its value and of its key. Values that Airflow stored as JSON text (a string holding an object)
//! are indexed too: their inner offsets are mapped back through the string's escapes, so a mistake
//! inside such a string is still underlined where it stands in the file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

/// A policy file: its name (as given on the command line) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name shown in diagnostics.
    pub name: String,
    /// The whole text of the file.
    pub text: String,
}

impl Source {
    /// A source from a name and its text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The bytes of one node of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpan {
    /// The value, in file bytes.
    pub value: Range<usize>,
    /// The key that names it, when it is an object member (the last, if written twice).
    pub key: Option<Range<usize>>,
    /// The key's earlier occurrence, when the same key is written twice in one object.
    pub earlier_key: Option<Range<usize>>,
    /// The value is written directly in the file (not inside a string of JSON text), so a
    /// position inside a string value can be mapped through its escapes.
    pub direct: bool,
}

impl NodeSpan {
    /// The file bytes of `inner`, a byte range of this string value's decoded text; the whole
    /// value when it cannot be mapped exactly.
    pub fn inner_range(&self, text: &str, inner: Range<usize>) -> Range<usize> {
        let literal = text.get(self.value.clone()).filter(|_| self.direct);
        let Some(literal) = literal.filter(|l| l.starts_with('"')) else {
            return self.value.clone();
        };
        let (_, offsets) = unescape_with_offsets(literal);
        match (offsets.get(inner.start), offsets.get(inner.end)) {
            (Some(&start), Some(&end)) => {
                self.value.start + start..self.value.start + end.max(start)
            }
            _ => self.value.clone(),
        }
    }
}

/// JSON Pointer -> span, for every node of the file.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpan>,
}

impl SpanIndex {
    pub(crate) fn insert(&mut self, pointer: String, mut span: NodeSpan) {
        if let Some(earlier) = self.nodes.get(&pointer) {
            span.earlier_key = earlier.earlier_key.clone().or_else(|| earlier.key.clone());
        }
        self.nodes.insert(pointer, span);
    }

    /// The span of the node at `pointer`, if the file has one there.
    pub fn get(&self, pointer: &str) -> Option<&NodeSpan> {
        self.nodes.get(pointer)
    }

    /// The span of the nearest node at or above `pointer`.
    pub fn nearest(&self, pointer: &str) -> Option<&NodeSpan> {
        let mut p = pointer;
        loop {
            if let Some(span) = self.nodes.get(p) {
                return Some(span);
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901); borrowed when nothing needs escaping,
/// which is nearly always.
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// Decodes a JSON string literal (with its quotes) and returns, for each byte of the decoded
/// text, the offset of the literal byte it came from (plus one entry for the end).
///
/// The literal was already accepted by the parser, so malformed escapes cannot occur; they are
/// treated as plain characters rather than trusted.
pub fn unescape_with_offsets(literal: &str) -> (String, Vec<usize>) {
    let body = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(literal);
    let base = usize::from(literal.starts_with('"'));
    let mut out = String::with_capacity(body.len());
    let mut offsets = Vec::with_capacity(body.len() + 1);
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let decoded = if c == '\\' {
            decode_escape(body, i, &mut chars)
        } else {
            c
        };
        for _ in 0..decoded.len_utf8() {
            offsets.push(base + i);
        }
        out.push(decoded);
    }
    offsets.push(base + body.len());
    (out, offsets)
}

fn decode_escape(
    body: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> char {
    let Some((_, e)) = chars.next() else {
        return '\\';
    };
    match e {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'u' => decode_unicode(body, start, chars),
        other => other,
    }
}

fn decode_unicode(
    body: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> char {
    let hex = |at: usize| {
        body.get(at..at + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let Some(high) = hex(start + 2) else {
        return '\u{fffd}';
    };
    skip(chars, 4);
    let low = hex(start + 8).filter(|l| (0xDC00..0xE000).contains(l));
    if (0xD800..0xDC00).contains(&high)
        && body.get(start + 6..start + 8) == Some("\\u")
        && let Some(low) = low
    {
        skip(chars, 6);
        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        return char::from_u32(code).unwrap_or('\u{fffd}');
    }
    char::from_u32(high).unwrap_or('\u{fffd}')
}

fn skip(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, n: usize) {
    for _ in 0..n {
        chars.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let source = Source::new("f", "{\n  \"é\": 1\n}");
        assert_eq!(source.line_column(0), (1, 1));
        assert_eq!(source.line_column(4), (2, 3));
        assert_eq!(source.line_column(8), (2, 6));
    }

    #[test]
    fn unescape_maps_every_byte_to_its_literal_byte() {
        let (text, offsets) = unescape_with_offsets(r#""a\"b\u00e9\ud83d\ude00c""#);
        assert_eq!(text, "a\"bé😀c");
        assert_eq!(offsets[0], 1);
        assert_eq!(offsets[1], 2);
        assert_eq!(offsets[2], 4);
        assert_eq!(offsets[3], 5);
        assert_eq!(offsets[5], 11);
        assert_eq!(offsets[9], 23);
        assert_eq!(*offsets.last().expect("end entry"), 24);
    }

    #[test]
    fn nearest_walks_up() {
        let mut index = SpanIndex::default();
        let span = NodeSpan {
            value: 1..2,
            key: None,
            earlier_key: None,
            direct: true,
        };
        index.insert("/a".into(), span.clone());
        assert_eq!(index.nearest("/a/b/c"), Some(&span));
        assert_eq!(index.nearest("/x"), None);
    }
}
