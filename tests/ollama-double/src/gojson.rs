//! JSON the way Go's `encoding/json` writes and rejects it.
//!
//! Encoding: compact, struct fields in declaration order (serde derive), map keys sorted
//! (`BTreeMap`), and `<` `>` `&` U+2028 U+2029 escaped as `\u003c` ... like Go's HTML-safe
//! encoder. Decoding errors: the messages `json.Decoder.Decode` returns for the first value of a
//! request body (`invalid character 'x' looking for beginning of value`, `unexpected EOF`, ...).

use serde::Serialize;
use std::io;

/// serde_json formatter that adds Go's HTML-safe escapes to the compact output.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `json.Marshal(v)`: compact, no trailing newline.
pub fn marshal<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serializing our own plain data types into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// `json.NewEncoder(w).Encode(v)`: compact plus `\n`.
pub fn encode_line<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = marshal(value);
    out.push(b'\n');
    out
}

/// What `json.NewDecoder(body).Decode(&v)` reports before looking at types.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeFailure {
    /// Only whitespace: `io.EOF` (handlers turn it into "missing request body").
    Eof,
    /// A syntax error or a truncated value, with Go's message.
    Syntax(String),
}

/// Checks the first JSON value of `body` like Go's scanner and returns it parsed.
/// Trailing bytes after the first value are ignored, as `Decoder.Decode` does.
pub fn decode_first(body: &[u8]) -> Result<serde_json::Value, DecodeFailure> {
    let mut scanner = Scanner {
        bytes: body,
        pos: 0,
    };
    scanner.skip_ws();
    if scanner.pos >= body.len() {
        return Err(DecodeFailure::Eof);
    }
    let start = scanner.pos;
    scanner.value()?;
    let end = scanner.pos;
    serde_json::from_slice(&body[start..end])
        .map_err(|e| DecodeFailure::Syntax(format!("invalid JSON: {e}")))
}

/// Go's `quoteChar`: the character as it appears in scanner error messages.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        _ => {
            let quoted = go_quote(&c.to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// Go's `strconv.Quote` for the characters that can show up in a request body.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The character at the cursor, decoded as UTF-8 where possible (for messages).
    fn char_at_cursor(&self) -> char {
        let rest = &self.bytes[self.pos..];
        let len = rest.len().min(4);
        for l in 1..=len {
            if let Ok(s) = std::str::from_utf8(&rest[..l]) {
                if let Some(c) = s.chars().next() {
                    return c;
                }
            }
        }
        '\u{FFFD}'
    }

    fn invalid(&self, context: &str) -> DecodeFailure {
        DecodeFailure::Syntax(format!(
            "invalid character {} {}",
            quote_char(self.char_at_cursor()),
            context
        ))
    }

    fn eof() -> DecodeFailure {
        DecodeFailure::Syntax("unexpected EOF".to_string())
    }

    fn value(&mut self) -> Result<(), DecodeFailure> {
        self.skip_ws();
        match self.peek() {
            None => Err(Self::eof()),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string(),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.invalid("looking for beginning of value")),
        }
    }

    fn object(&mut self) -> Result<(), DecodeFailure> {
        self.pos += 1;
        self.skip_ws();
        match self.peek() {
            None => return Err(Self::eof()),
            Some(b'}') => {
                self.pos += 1;
                return Ok(());
            }
            Some(b'"') => {}
            Some(_) => return Err(self.invalid("looking for beginning of object key string")),
        }
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b'"') => self.string()?,
                Some(_) => return Err(self.invalid("looking for beginning of object key string")),
            }
            self.skip_ws();
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.invalid("after object key")),
            }
            self.value()?;
            self.skip_ws();
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => return Err(self.invalid("after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<(), DecodeFailure> {
        self.pos += 1;
        self.skip_ws();
        match self.peek() {
            None => return Err(Self::eof()),
            Some(b']') => {
                self.pos += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        loop {
            self.value()?;
            self.skip_ws();
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => return Err(self.invalid("after array element")),
            }
        }
    }

    fn string(&mut self) -> Result<(), DecodeFailure> {
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(Self::eof()),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    None => return Err(Self::eof()),
                                    Some(b) if b.is_ascii_hexdigit() => self.pos += 1,
                                    Some(_) => {
                                        return Err(
                                            self.invalid("in \\u hexadecimal character escape")
                                        )
                                    }
                                }
                            }
                        }
                        Some(_) => return Err(self.invalid("in string escape code")),
                    }
                }
                Some(b) if b < 0x20 => return Err(self.invalid("in string literal")),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), DecodeFailure> {
        for expected in word.bytes() {
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b) if b == expected => self.pos += 1,
                Some(_) => {
                    return Err(self.invalid(&format!(
                        "in literal {word} (expecting {})",
                        quote_char(expected as char)
                    )))
                }
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), DecodeFailure> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b'0'..=b'9') => {}
                Some(_) => return Err(self.invalid("in numeric literal")),
            }
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b'0'..=b'9') => {}
                Some(_) => return Err(self.invalid("after decimal point in numeric literal")),
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            match self.peek() {
                None => return Err(Self::eof()),
                Some(b'0'..=b'9') => {}
                Some(_) => return Err(self.invalid("in exponent of numeric literal")),
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        // A number at the very end of the body is complete only if Go saw a delimiter; the
        // decoder accepts EOF after a top-level number, so this is fine.
        Ok(())
    }
}

/// Kind of a JSON value as Go's `UnmarshalTypeError` names it.
pub fn go_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Expected Go type of a request field, for `json: cannot unmarshal ...` messages.
#[derive(Clone, Copy)]
pub enum GoType {
    String,
    Bool,
    Array(&'static str),
    Object(&'static str),
    Any,
}

/// Type-checks the top-level fields Go would unmarshal into `struct_name` (for example
/// `api.ChatRequest`), returning Go's first `UnmarshalTypeError` message.
pub fn check_fields(
    value: &serde_json::Value,
    struct_name: &str,
    fields: &[(&str, GoType)],
) -> Result<(), String> {
    let Some(obj) = value.as_object() else {
        if value.is_null() {
            return Ok(());
        }
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type {struct_name}",
            go_kind(value)
        ));
    };
    let short = struct_name.rsplit('.').next().unwrap_or(struct_name);
    for (key, v) in obj {
        // Go matches field names case-insensitively; null leaves a field untouched.
        let Some((name, ty)) = fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let (ok, go_type) = match ty {
            GoType::String => (v.is_string(), "string".to_string()),
            GoType::Bool => (v.is_boolean(), "bool".to_string()),
            GoType::Array(t) => (v.is_array(), t.to_string()),
            GoType::Object(t) => (v.is_object(), t.to_string()),
            GoType::Any => (true, String::new()),
        };
        if !ok {
            return Err(format!(
                "json: cannot unmarshal {} into Go struct field {short}.{name} of type {go_type}",
                go_kind(v)
            ));
        }
    }
    Ok(())
}

/// Looks a field up the way Go does (exact name first, then case-insensitively).
pub fn field<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    let obj = value.as_object()?;
    if let Some(v) = obj.get(name) {
        return Some(v);
    }
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(body: &str) -> String {
        match decode_first(body.as_bytes()) {
            Err(DecodeFailure::Syntax(m)) => m,
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn go_scanner_messages() {
        assert_eq!(
            syntax("xyz"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            syntax("{model:1}"),
            "invalid character 'm' looking for beginning of object key string"
        );
        assert_eq!(
            syntax("{\"a\" 1}"),
            "invalid character '1' after object key"
        );
        assert_eq!(
            syntax("{\"a\":1 \"b\":2}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(syntax("[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            syntax("tru "),
            "invalid character ' ' in literal true (expecting 'e')"
        );
        assert_eq!(syntax("{\"a\":"), "unexpected EOF");
        assert_eq!(
            syntax("{\"a\":\"x\ny\"}"),
            "invalid character '\\n' in string literal"
        );
        assert_eq!(decode_first(b"  \n"), Err(DecodeFailure::Eof));
        assert!(decode_first(b"{\"a\":1} trailing").is_ok());
    }

    #[test]
    fn html_escapes_like_go() {
        let v = serde_json::json!({"t": "<|eot_id|> & more"});
        assert_eq!(
            String::from_utf8(marshal(&v)).unwrap(),
            r#"{"t":"\u003c|eot_id|\u003e \u0026 more"}"#
        );
    }
}
