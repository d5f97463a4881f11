//! JSON5 parsing (the `json5` crate) plus a small source map: where each config path's key and
//! value sit in the text, so later errors can name `file:line:col`.
//!
//! The `json5` crate checks the syntax and builds the value; the source map comes from a second,
//! lenient scan of the same (already valid) text.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{ConfigError, SourcePos};
use super::syntax;

/// One step of a config path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

#[cfg(test)]
pub(crate) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// OpenClaw's spelling of a config path: `models.providers.zai.apiKey`, `agents.list[0].id`.
pub(crate) fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Where one value sits in the text.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    /// Byte offset of the member's key, for object members.
    pub key: Option<usize>,
    /// Byte offset of the value's first character.
    pub value: usize,
    /// For strings: the bytes between the quotes; otherwise the whole value.
    pub raw: Range<usize>,
}

/// One parsed file.
#[derive(Debug)]
pub(crate) struct Document {
    pub file: PathBuf,
    pub text: String,
    pub value: Value,
    pub spans: HashMap<Vec<Seg>, Span>,
    line_starts: Vec<usize>,
}

impl Document {
    /// An empty object that belongs to no text (a config file that does not exist).
    pub fn empty(file: &Path) -> Document {
        Document {
            file: file.to_path_buf(),
            text: String::new(),
            value: Value::Object(Default::default()),
            spans: HashMap::new(),
            line_starts: vec![0],
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line + 1, col + 1)
    }

    /// A document used only to turn offsets into positions.
    fn for_positions(file: &Path, text: &str) -> Document {
        Document {
            file: file.to_path_buf(),
            text: text.to_string(),
            value: Value::Null,
            spans: HashMap::new(),
            line_starts: line_starts(text),
        }
    }

    /// The byte offset of a 1-based line and column (in characters); clamped to the text.
    fn offset_of(&self, line: usize, col: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        let rest = self.text.get(start..).unwrap_or("");
        start
            + rest
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i)
    }

    pub fn pos(&self, offset: usize) -> SourcePos {
        let (line, col) = self.line_col(offset);
        SourcePos::at(&self.file, line, col)
    }
}

/// Parses `text` (the contents of `file`) as JSON5.
pub(crate) fn parse_document(file: &Path, text: String) -> Result<Document, ConfigError> {
    // A UTF-8 byte order mark is not JSON5 but editors on some systems write one.
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let value: Value = json5::from_str(body).map_err(|err| syntax_error(file, &text, err))?;
    let offset = text.len() - body.len();
    let mut spans = HashMap::new();
    let mut scanner = Scanner {
        text: &text,
        bytes: text.as_bytes(),
        i: offset,
        spans: &mut spans,
    };
    scanner.value(&mut Vec::new(), None, 0);
    let line_starts = line_starts(&text);
    Ok(Document {
        file: file.to_path_buf(),
        text,
        value,
        spans,
        line_starts,
    })
}

fn syntax_error(file: &Path, text: &str, err: json5::Error) -> ConfigError {
    // The parser's words are its grammar's expectations; ours say what is wrong and where.
    if let Some(d) = syntax::diagnose(text) {
        let doc = Document::for_positions(file, text);
        return ConfigError::Syntax {
            at: doc.pos(d.offset),
            message: d.message,
        };
    }
    let json5::Error::Message { msg, location } = err;
    // pest's grammar messages are a picture (` --> 1:5`, the line, a caret, `= expected ...`);
    // the others come from building the value (`error parsing number: too large`) and are one
    // line a person can act on.
    let value_message = Some(msg.lines().next().unwrap_or("").trim())
        .filter(|m| !m.is_empty() && !m.starts_with("-->"))
        .map(|m| format!("cannot read this value: {m}"));
    match location {
        Some(loc) => {
            let doc = Document::for_positions(file, text);
            let offset = doc.offset_of(loc.line, loc.column);
            ConfigError::Syntax {
                at: SourcePos::at(file, loc.line, loc.column),
                message: value_message.unwrap_or_else(|| syntax::at_offset(text, offset)),
            }
        }
        None => ConfigError::Syntax {
            at: SourcePos::file(file),
            message: value_message.unwrap_or_else(|| "the file is not valid JSON5".into()),
        },
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// Records spans of an already-valid JSON5 text. Never fails: on anything unexpected it stops.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    i: usize,
    spans: &'a mut HashMap<Vec<Seg>, Span>,
}

/// Deeper than any real config; guards the recursion.
const MAX_DEPTH: usize = 256;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    fn skip_trivia(&mut self) {
        loop {
            let Some(rest) = self.text.get(self.i..) else {
                return;
            };
            if rest.starts_with("//") {
                self.i += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(comment) = rest.strip_prefix("/*") {
                self.i += comment.find("*/").map(|e| e + 4).unwrap_or(rest.len());
            } else if let Some(c) = rest.chars().next() {
                if c.is_whitespace() || c == '\u{feff}' {
                    self.i += c.len_utf8();
                } else {
                    return;
                }
            } else {
                return;
            }
        }
    }

    fn value(&mut self, path: &mut Vec<Seg>, key: Option<usize>, depth: usize) {
        self.skip_trivia();
        let start = self.i;
        let raw = match self.peek() {
            Some(b'{') if depth < MAX_DEPTH => {
                self.object(path, depth);
                start..self.i
            }
            Some(b'[') if depth < MAX_DEPTH => {
                self.array(path, depth);
                start..self.i
            }
            Some(q @ (b'"' | b'\'')) => {
                let (inner, _) = self.string(q);
                inner
            }
            Some(_) => {
                self.scalar();
                start..self.i
            }
            None => return,
        };
        self.spans.insert(
            path.clone(),
            Span {
                key,
                value: start,
                raw,
            },
        );
    }

    fn object(&mut self, path: &mut Vec<Seg>, depth: usize) {
        self.i += 1;
        loop {
            self.skip_trivia();
            match self.peek() {
                None => return,
                Some(b'}') => {
                    self.i += 1;
                    return;
                }
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let key_at = self.i;
            let name = match self.peek() {
                Some(q @ (b'"' | b'\'')) => self.string(q).1,
                _ => self.identifier(),
            };
            self.skip_trivia();
            if self.peek() != Some(b':') {
                return;
            }
            self.i += 1;
            path.push(Seg::Key(name));
            self.value(path, Some(key_at), depth + 1);
            path.pop();
            if self.i == key_at {
                return;
            }
        }
    }

    fn array(&mut self, path: &mut Vec<Seg>, depth: usize) {
        self.i += 1;
        let mut index = 0;
        loop {
            self.skip_trivia();
            match self.peek() {
                None => return,
                Some(b']') => {
                    self.i += 1;
                    return;
                }
                Some(b',') => {
                    self.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let before = self.i;
            path.push(Seg::Index(index));
            self.value(path, None, depth + 1);
            path.pop();
            index += 1;
            if self.i == before {
                return;
            }
        }
    }

    /// Consumes a quoted string; returns the byte range between the quotes and the decoded text.
    fn string(&mut self, quote: u8) -> (Range<usize>, String) {
        self.i += 1;
        let start = self.i;
        let mut out = String::new();
        while let Some(c) = self.text.get(self.i..).and_then(|r| r.chars().next()) {
            if c as u32 == quote as u32 {
                let inner = start..self.i;
                self.i += 1;
                return (inner, out);
            }
            self.i += c.len_utf8();
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.text.get(self.i..).and_then(|r| r.chars().next()) else {
                break;
            };
            self.i += e.len_utf8();
            match e {
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => {
                    // `\` + CRLF is a line continuation.
                    if self.peek() == Some(b'\n') {
                        self.i += 1;
                    } else {
                        out.push('\r');
                    }
                }
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                '0' => out.push('\0'),
                'x' => {
                    if let Some(c) = self.hex(2).and_then(char::from_u32) {
                        out.push(c);
                    }
                }
                'u' => out.push(self.unicode_escape()),
                '\n' | '\u{2028}' | '\u{2029}' => {}
                other => out.push(other),
            }
        }
        (start..self.i, out)
    }

    fn hex(&mut self, digits: usize) -> Option<u32> {
        let s = self.text.get(self.i..self.i + digits)?;
        let v = u32::from_str_radix(s, 16).ok()?;
        self.i += digits;
        Some(v)
    }

    /// After `\u`: four hex digits, joining a surrogate pair when one follows.
    fn unicode_escape(&mut self) -> char {
        let Some(hi) = self.hex(4) else {
            return '\u{fffd}';
        };
        if (0xD800..0xDC00).contains(&hi) && self.text.get(self.i..self.i + 2) == Some("\\u") {
            let save = self.i;
            self.i += 2;
            if let Some(lo) = self.hex(4) {
                if (0xDC00..0xE000).contains(&lo) {
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return char::from_u32(c).unwrap_or('\u{fffd}');
                }
            }
            self.i = save;
        }
        char::from_u32(hi).unwrap_or('\u{fffd}')
    }

    /// An unquoted key: an ECMAScript identifier name (letters, digits, `$`, `_`, `\uXXXX`).
    fn identifier(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.text.get(self.i..).and_then(|r| r.chars().next()) {
            if c == '\\' && self.text.get(self.i + 1..self.i + 2) == Some("u") {
                self.i += 2;
                out.push(self.unicode_escape());
            } else if c.is_alphanumeric()
                || c == '$'
                || c == '_'
                || c == '\u{200c}'
                || c == '\u{200d}'
            {
                out.push(c);
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        out
    }

    /// Numbers, `true`, `false`, `null`, `Infinity`, `NaN`: runs to the next delimiter.
    fn scalar(&mut self) {
        let start = self.i;
        while let Some(c) = self.text.get(self.i..).and_then(|r| r.chars().next()) {
            if c == ',' || c == ']' || c == '}' || c == '/' || c.is_whitespace() {
                break;
            }
            self.i += c.len_utf8();
        }
        if self.i == start {
            // Never stall on an unexpected character.
            self.i += self
                .text
                .get(self.i..)
                .and_then(|r| r.chars().next())
                .map(char::len_utf8)
                .unwrap_or(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str) -> Vec<Seg> {
        path.split('.').map(key).collect()
    }

    #[test]
    fn source_map_finds_keys_values_and_string_contents() {
        let text = "// comment\n{\n  a: { 'b-c': \"x${Y}\" },\n  list: [1, /* two */ {id: \"main\"}],\n}\n";
        let doc = parse_document(Path::new("/c.json5"), text.to_string()).unwrap();
        let span = &doc.spans[&keys("a.b-c")];
        assert_eq!(doc.line_col(span.key.unwrap()), (3, 8));
        assert_eq!(doc.line_col(span.value), (3, 15));
        assert_eq!(&doc.text[span.raw.clone()], "x${Y}");
        let id = &doc.spans[&vec![key("list"), Seg::Index(1), key("id")]];
        assert_eq!(doc.line_col(id.key.unwrap()), (4, 24));
    }

    #[test]
    fn syntax_errors_carry_line_and_column_and_one_line_of_text() {
        let err =
            parse_document(Path::new("/c.json5"), "{\n  a: 1,\n  b: ,\n}".into()).unwrap_err();
        let (file, line, col) = err.location().unwrap();
        assert_eq!((file, line, col), (PathBuf::from("/c.json5"), 3, 6));
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn path_strings_follow_openclaw() {
        let p = vec![key("agents"), key("list"), Seg::Index(0), key("agentDir")];
        assert_eq!(path_string(&p), "agents.list[0].agentDir");
    }
}
