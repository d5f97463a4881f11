//! Explains a JSON5 syntax error in the words a person uses, at the place it is wrong.
//!
//! The `json5` crate decides whether a text is valid and builds the value, but its errors are
//! pest's grammar expectations (`expected boolean or null`, `expected EOI`), often placed where
//! the parser gave up rather than where the mistake is. When it rejects a text, this strict
//! scanner walks the same text and names the first mistake: `missing "," after the value on
//! line 4`, `unexpected "}"`, `unterminated string starting on line 3`.

/// The first mistake in a JSON5 text: where (byte offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    pub offset: usize,
    pub message: String,
}

/// Names the first syntax mistake in `text`, or `None` when this scanner finds none (the caller
/// then falls back to the parser's position, see [`at_offset`]).
pub(crate) fn diagnose(text: &str) -> Option<Diagnosis> {
    let mut s = Checker {
        text,
        i: 0,
        open: Vec::new(),
    };
    if text.starts_with('\u{feff}') {
        s.i = '\u{feff}'.len_utf8();
    }
    s.document().err().flatten()
}

/// A message for a position the parser named when [`diagnose`] found nothing there: what text
/// sits at that place.
pub(crate) fn at_offset(text: &str, offset: usize) -> String {
    match token_at(text, offset) {
        Some(token) => format!("unexpected {token}"),
        None => "unexpected end of file".to_string(),
    }
}

/// `Err(Some(d))`: a mistake; `Err(None)`: the scanner gave up (nesting too deep).
type Step<T = ()> = Result<T, Option<Diagnosis>>;

/// Nesting deeper than any real config is left to the parser's own message.
const MAX_DEPTH: usize = 128;

struct Checker<'a> {
    text: &'a str,
    i: usize,
    /// The brackets still open: the character and its offset.
    open: Vec<(char, usize)>,
}

impl<'a> Checker<'a> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.i..).and_then(|r| r.chars().next())
    }

    fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(0, |t| t.matches('\n').count())
            + 1
    }

    fn fail<T>(&self, offset: usize, message: String) -> Step<T> {
        Err(Some(Diagnosis { offset, message }))
    }

    fn document(&mut self) -> Step {
        self.trivia()?;
        if self.peek().is_none() {
            return self.fail(
                self.i,
                "the file holds no value; it must hold an object { ... }".into(),
            );
        }
        let root_start = self.i;
        self.value(None)?;
        let root_end = self.i;
        self.trivia()?;
        let Some(c) = self.peek() else {
            return Ok(());
        };
        let token = token_at(self.text, self.i).unwrap_or_default();
        let closed_by_brace = self.text[root_start..].starts_with('{');
        // Text that looks like more members (`, key: value` or `key:`) after the top level
        // closed means a "}" too many before it.
        let more_members = c == ',' || self.looks_like_member(self.i);
        if (c == '}' || c == ']') || !(closed_by_brace && more_members) {
            let what = if closed_by_brace {
                format!(
                    "the top-level object closed on line {}",
                    self.line(root_end.saturating_sub(1))
                )
            } else {
                "the top-level value".to_string()
            };
            return self.fail(
                self.i,
                format!("unexpected {token} after the end of the document ({what})"),
            );
        }
        let close = root_end.saturating_sub(1);
        self.fail(
            close,
            format!(
                "unexpected \"}}\": it closes the top-level object, but more of the document \
                 ({token} on line {}) follows; remove this \"}}\" or the one it doubles",
                self.line(self.i)
            ),
        )
    }

    /// `key:` (a name or a quoted string, then a colon) starts at `at`.
    fn looks_like_member(&self, at: usize) -> bool {
        let rest = &self.text[at..];
        let Some(c) = rest.chars().next() else {
            return false;
        };
        let key_len = if c == '"' || c == '\'' {
            match rest[1..].find(c) {
                Some(end) => end + 2,
                None => return false,
            }
        } else {
            rest.find(|ch: char| !is_identifier_char(ch))
                .unwrap_or(rest.len())
        };
        key_len > 0 && rest[key_len..].trim_start().starts_with(':')
    }

    /// Whitespace and comments.
    fn trivia(&mut self) -> Step {
        loop {
            let rest = &self.text[self.i..];
            if rest.starts_with("//") {
                self.i += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.i += end + 4,
                    None => {
                        return self.fail(
                            self.i,
                            format!(
                                "unterminated comment starting on line {}: add \"*/\" where it \
                                 should end",
                                self.line(self.i)
                            ),
                        )
                    }
                }
            } else if let Some(c) = rest.chars().next().filter(|c| is_space(*c)) {
                self.i += c.len_utf8();
            } else {
                return Ok(());
            }
        }
    }

    /// One value. `key` names the member it belongs to, for messages.
    fn value(&mut self, key: Option<&str>) -> Step {
        let start = self.i;
        let Some(c) = self.peek() else {
            return self.end_of_file();
        };
        match c {
            '{' | '[' => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(None);
                }
                self.open.push((c, start));
                self.i += 1;
                if c == '{' {
                    self.object()?;
                } else {
                    self.array()?;
                }
                self.open.pop();
                Ok(())
            }
            '"' | '\'' => self.string(),
            '0'..='9' | '-' | '+' | '.' => self.number(),
            c if is_identifier_start(c) => {
                let word = self.word();
                if matches!(word, "true" | "false" | "null" | "Infinity" | "NaN") {
                    return Ok(());
                }
                let hint = match word.to_ascii_lowercase().as_str() {
                    "true" | "false" | "null" => format!(
                        "; JSON5 spells it {} (lower case)",
                        word.to_ascii_lowercase()
                    ),
                    _ => format!("; if it is text, put it in quotes: \"{word}\""),
                };
                self.fail(
                    start,
                    format!("unquoted text \"{word}\" where a value belongs{hint}"),
                )
            }
            '}' | ']' | ',' => {
                let token = format!("\"{c}\"");
                match key {
                    Some(key) => self.fail(
                        start,
                        format!("missing value for \"{key}\" (found {token} after the \":\")"),
                    ),
                    None => self.unexpected(start, &token),
                }
            }
            _ => {
                let token = token_at(self.text, start).unwrap_or_default();
                self.unexpected(start, &token)
            }
        }
    }

    /// `"X"` where it does not belong, explained by what is open.
    fn unexpected(&self, at: usize, token: &str) -> Step {
        let why = match (token, self.open.last()) {
            ("\"}\"", Some(('[', o))) => format!(
                ": the \"[\" opened on line {} is still open; close it with \"]\" first",
                self.line(*o)
            ),
            ("\"]\"", Some(('{', o))) => format!(
                ": the \"{{\" opened on line {} is still open; close it with \"}}\" first",
                self.line(*o)
            ),
            ("\"}\"" | "\"]\"", None) => ": nothing is open here to close".to_string(),
            ("\",\"", Some(('[', _))) => ": a list item is missing before it".to_string(),
            _ => String::new(),
        };
        self.fail(at, format!("unexpected {token}{why}"))
    }

    fn end_of_file(&self) -> Step {
        match self.open.last() {
            Some((c, at)) => {
                let close = if *c == '{' { '}' } else { ']' };
                self.fail(
                    *at,
                    format!(
                        "the \"{c}\" opened on line {} is never closed: the file ends before \
                         its \"{close}\"",
                        self.line(*at)
                    ),
                )
            }
            None => self.fail(self.i, "unexpected end of file".into()),
        }
    }

    /// After `{`: members up to the matching `}`.
    fn object(&mut self) -> Step {
        let mut after_comma: Option<usize> = None;
        loop {
            self.trivia()?;
            let at = self.i;
            let Some(c) = self.peek() else {
                return self.end_of_file();
            };
            let key = match c {
                '}' => {
                    self.i += 1;
                    return Ok(());
                }
                ',' => {
                    let why = if after_comma.is_some() {
                        "two commas in a row"
                    } else {
                        "no member before it"
                    };
                    return self.fail(at, format!("unexpected \",\": {why}"));
                }
                ']' | ':' => {
                    let token = format!("\"{c}\"");
                    return self.unexpected(at, &token);
                }
                '"' | '\'' => {
                    self.string()?;
                    self.text[at + 1..self.i - 1].to_string()
                }
                c if is_identifier_start(c) => self.word().to_string(),
                _ => {
                    let token = token_at(self.text, at).unwrap_or_default();
                    return self.fail(
                        at,
                        format!(
                            "{token} cannot be a key: a key is a name (letters, digits, _ or $, \
                             not starting with a digit) or a quoted string"
                        ),
                    );
                }
            };
            let key_end = self.i;
            self.trivia()?;
            if self.peek() != Some(':') {
                return self.fail(key_end, format!("missing \":\" after the key \"{key}\""));
            }
            self.i += 1;
            self.trivia()?;
            self.value(Some(&key))?;
            let value_end = self.i;
            self.trivia()?;
            match self.peek() {
                Some(',') => {
                    self.i += 1;
                    after_comma = Some(self.i);
                }
                Some('}') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return self.end_of_file(),
                Some(']') => return self.unexpected(self.i, "\"]\""),
                Some(_) => return self.missing_comma(value_end),
            }
        }
    }

    /// After `[`: items up to the matching `]`.
    fn array(&mut self) -> Step {
        loop {
            self.trivia()?;
            match self.peek() {
                Some(']') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return self.end_of_file(),
                Some(_) => {}
            }
            self.value(None)?;
            let value_end = self.i;
            self.trivia()?;
            match self.peek() {
                Some(',') => self.i += 1,
                Some(']') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return self.end_of_file(),
                Some('}') => return self.unexpected(self.i, "\"}\""),
                Some(_) => return self.missing_comma(value_end),
            }
        }
    }

    fn missing_comma(&self, value_end: usize) -> Step {
        self.fail(
            value_end,
            format!(
                "missing \",\" after the value on line {}",
                self.line(value_end.saturating_sub(1))
            ),
        )
    }

    /// A quoted string (the quote at `self.i`).
    fn string(&mut self) -> Step {
        let start = self.i;
        let Some(quote) = self.peek() else {
            return self.end_of_file();
        };
        self.i += 1;
        let unterminated = |s: &Self| {
            s.fail(
                start,
                format!(
                    "unterminated string starting on line {}: add the closing {quote} (a string \
                     cannot span lines; write \\n for a line break)",
                    s.line(start)
                ),
            )
        };
        while let Some(c) = self.peek() {
            match c {
                c if c == quote => {
                    self.i += 1;
                    return Ok(());
                }
                '\n' | '\r' => return unterminated(self),
                '\\' => {
                    let escape_at = self.i;
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return unterminated(self);
                    };
                    self.i += e.len_utf8();
                    let ok = match e {
                        'x' => self.hex_digits(2),
                        'u' => self.hex_digits(4),
                        '1'..='9' => false,
                        '0' => !self.peek().is_some_and(|d| d.is_ascii_digit()),
                        '\r' => {
                            if self.peek() == Some('\n') {
                                self.i += 1;
                            }
                            true
                        }
                        _ => true,
                    };
                    if !ok {
                        let shown: String = self.text[escape_at..]
                            .chars()
                            .take(if e == 'u' { 6 } else { 4 })
                            .take_while(|c| *c != '\n' && *c != quote)
                            .collect();
                        return self.fail(
                            escape_at,
                            format!(
                                "invalid escape \"{shown}\" in a string (\\x needs 2 hex digits, \
                                 \\u 4; write \\\\ for a backslash)"
                            ),
                        );
                    }
                }
                c => self.i += c.len_utf8(),
            }
        }
        unterminated(self)
    }

    fn hex_digits(&mut self, n: usize) -> bool {
        let ok = self
            .text
            .get(self.i..self.i + n)
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            self.i += n;
        }
        ok
    }

    /// A number: `12`, `-1.5e3`, `.5`, `5.`, `0x1F`, `+Infinity`, `-NaN`.
    fn number(&mut self) -> Step {
        let start = self.i;
        let mut prev = '\0';
        while let Some(c) = self.peek() {
            let part = c.is_ascii_alphanumeric()
                || c == '.'
                || c == '_'
                || ((c == '+' || c == '-')
                    && (self.i == start
                        || (matches!(prev, 'e' | 'E') && !is_hex_number(start, self))));
            if !part {
                break;
            }
            prev = c;
            self.i += c.len_utf8();
        }
        let word = &self.text[start..self.i];
        if is_json5_number(word) {
            Ok(())
        } else {
            self.fail(
                start,
                format!(
                    "invalid number \"{word}\"{}",
                    if word
                        .chars()
                        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
                    {
                        "; if it is text, put it in quotes"
                    } else {
                        ""
                    }
                ),
            )
        }
    }

    /// An identifier (name) starting at `self.i`.
    fn word(&mut self) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == '\\' && self.text[self.i..].starts_with("\\u") {
                self.i += 2;
                self.hex_digits(4);
            } else if is_identifier_char(c) {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        let text: &'a str = self.text;
        &text[start..self.i]
    }
}

fn is_hex_number(start: usize, s: &Checker<'_>) -> bool {
    let t = s.text[start..s.i].trim_start_matches(['+', '-']);
    t.starts_with("0x") || t.starts_with("0X")
}

/// JSON5's number grammar (ECMAScript numeric literals with a sign, `Infinity`, `NaN`).
fn is_json5_number(word: &str) -> bool {
    let unsigned = word.strip_prefix(['+', '-']).unwrap_or(word);
    if unsigned == "Infinity" || unsigned == "NaN" {
        return true;
    }
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(e) => (&unsigned[..e], Some(&unsigned[e + 1..])),
        None => (unsigned, None),
    };
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(int) || !frac.map_or(true, digits) {
        return false;
    }
    if int.is_empty() && frac.map_or(true, str::is_empty) {
        return false;
    }
    // A leading zero is only allowed alone (`0`, `0.5`), not `012`.
    !(int.len() > 1 && int.starts_with('0'))
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$' || c == '\\'
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '\u{200c}' || c == '\u{200d}'
}

/// How the text at `offset` reads in a message: `"}"`, `text "local"`, `"12x"`; `None` at the
/// end of the text.
fn token_at(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let c = rest.chars().next()?;
    if is_identifier_char(c) || c == '\\' {
        let word: String = rest
            .chars()
            .take_while(|c| is_identifier_char(*c) || *c == '.' || *c == '-')
            .take(40)
            .collect();
        let kind = if c.is_ascii_digit() { "" } else { "text " };
        return Some(format!("{kind}\"{word}\""));
    }
    Some(format!("\"{}\"", c.escape_debug()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The diagnosis as `line:col: message` (1-based, columns in characters).
    fn explain(text: &str) -> String {
        // Only texts the parser refuses are ever explained.
        assert!(
            json5::from_str::<serde_json::Value>(text).is_err(),
            "json5 accepts {text:?}"
        );
        let d = diagnose(text).expect("a mistake");
        let before = &text[..d.offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!("{line}:{col}: {}", d.message)
    }

    #[test]
    fn valid_json5_has_nothing_to_explain() {
        let texts = [
            "{}",
            "\u{feff}{ a: 1 }",
            "// c\n{ /* c */ a: [1, 2,], 'b': \"x\\\"y\", $c_d: +.5e-3, e: 0x1F, f: -Infinity, g: NaN, h: null, i: true, j: 5., }\n",
            "{ s: 'line \\\ncontinued', u: '\\u00e9\\x41\\0', k: \"it's\" }",
            "[1, [2, {a: {}}], []]",
            "\"just a string\"",
            "12",
        ];
        for t in texts {
            assert!(
                json5::from_str::<serde_json::Value>(t).is_ok(),
                "json5 refuses {t:?}"
            );
            assert_eq!(diagnose(t), None, "{t}");
        }
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openclaw/openclaw.json5"
        ));
        if let Ok(fixture) = fixture {
            assert_eq!(diagnose(&fixture), None);
        }
    }

    #[test]
    fn a_missing_comma_is_placed_right_after_the_value() {
        let text = "{\n  agents: {\n    defaults: {\n      model: \"ollama/x\"\n      workspace: \"w\",\n    },\n  },\n}\n";
        assert_eq!(
            explain(text),
            "4:24: missing \",\" after the value on line 4"
        );
        assert_eq!(
            explain("{ a: 1 b: 2 }"),
            "1:7: missing \",\" after the value on line 1"
        );
        assert_eq!(
            explain("[1, 2\n 3]"),
            "1:6: missing \",\" after the value on line 1"
        );
        assert_eq!(
            explain("{ a: { b: 1 }\n  c: 2 }"),
            "1:14: missing \",\" after the value on line 1"
        );
    }

    #[test]
    fn a_stray_closing_brace_is_named() {
        assert_eq!(
            explain("{\n  a: 1,\n}\n}\n"),
            "4:1: unexpected \"}\" after the end of the document (the top-level object closed on line 3)"
        );
        let mid = explain("{\n  a: 1,\n  b: { c: 2 }},\n  d: 3,\n}\n");
        assert!(
            mid.starts_with("3:14: unexpected \"}\": it closes the top-level object"),
            "{mid}"
        );
        assert_eq!(
            explain("{ a: [1, 2 }"),
            "1:12: unexpected \"}\": the \"[\" opened on line 1 is still open; close it with \"]\" first"
        );
        assert_eq!(
            explain("{ a: 1 ]"),
            "1:8: unexpected \"]\": the \"{\" opened on line 1 is still open; close it with \"}\" first"
        );
    }

    #[test]
    fn an_unterminated_string_names_its_first_line() {
        let e = explain("{\n  a: 1,\n  b: \"abc,\n  d: 3,\n}\n");
        assert!(
            e.starts_with("3:6: unterminated string starting on line 3"),
            "{e}"
        );
        let e = explain("{ a: 'abc");
        assert!(
            e.starts_with("1:6: unterminated string starting on line 1"),
            "{e}"
        );
    }

    #[test]
    fn an_unquoted_value_is_text_that_needs_quotes() {
        assert_eq!(
            explain("{\n  mode: local,\n}"),
            "2:9: unquoted text \"local\" where a value belongs; if it is text, put it in quotes: \"local\""
        );
        assert!(explain("{ a: True }").contains("JSON5 spells it true"));
        assert_eq!(
            explain("{ port: 18789x }"),
            "1:9: invalid number \"18789x\"; if it is text, put it in quotes"
        );
        assert_eq!(explain("{ n: 012 }"), "1:6: invalid number \"012\"");
    }

    #[test]
    fn trailing_garbage_after_the_document() {
        assert_eq!(
            explain("{\n  a: 1,\n}\nxyz\n"),
            "4:1: unexpected text \"xyz\" after the end of the document (the top-level object closed on line 3)"
        );
    }

    #[test]
    fn other_mistakes_in_words() {
        assert_eq!(
            explain("{\n  a 1,\n}"),
            "2:4: missing \":\" after the key \"a\""
        );
        assert_eq!(
            explain("{\n  a: { b: 1,\n"),
            "2:6: the \"{\" opened on line 2 is never closed: the file ends before its \"}\""
        );
        assert_eq!(
            explain("{ a: , }"),
            "1:6: missing value for \"a\" (found \",\" after the \":\")"
        );
        assert_eq!(
            explain("{ a: 1,, }"),
            "1:8: unexpected \",\": two commas in a row"
        );
        assert_eq!(
            explain("[1,,2]"),
            "1:4: unexpected \",\": a list item is missing before it"
        );
        assert!(explain("{ 1a: 2 }").contains("cannot be a key"));
        assert!(
            explain("{ a: 1 /* open").starts_with("1:8: unterminated comment starting on line 1")
        );
        assert!(explain("{ a: '\\u12' }").starts_with("1:7: invalid escape \"\\u12\""));
        assert_eq!(
            explain("  \n"),
            "2:1: the file holds no value; it must hold an object { ... }"
        );
        assert_eq!(explain("{ a: @ }"), "1:6: unexpected \"@\"");
    }

    /// Every one-character deletion or insertion in a config that uses most of JSON5: the
    /// scanner finds a mistake exactly when the parser refuses the text, so its words are
    /// never about something the parser would accept.
    #[test]
    fn the_scanner_agrees_with_the_parser_on_every_one_character_edit() {
        let text = "// c\n{\n  a: { 'b-c': \"x\\\"y\", n: -1.5e3, h: 0x1F, l: [1, 2,], },\n  /* k */ t: true, z: null, s: 'it\\'s',\n}\n";
        assert!(json5::from_str::<serde_json::Value>(text).is_ok());
        let mut edits = Vec::new();
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &i in &boundaries {
            let c = text[i..].chars().next().unwrap_or(' ');
            edits.push(format!("{}{}", &text[..i], &text[i + c.len_utf8()..]));
            for ins in [",", "}", "]", "\"", "'", ":", "x", "1", "/"] {
                edits.push(format!("{}{ins}{}", &text[..i], &text[i..]));
            }
        }
        let mut disagreements = Vec::new();
        for edit in &edits {
            let parser_ok = json5::from_str::<serde_json::Value>(edit).is_ok();
            let scanner = diagnose(edit);
            if parser_ok != scanner.is_none() {
                disagreements.push(format!(
                    "{edit:?}: parser ok={parser_ok}, scanner {scanner:?}"
                ));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{} of {} edits:\n{}",
            disagreements.len(),
            edits.len(),
            disagreements[..disagreements.len().min(10)].join("\n")
        );
    }

    #[test]
    fn deep_nesting_is_left_to_the_parser() {
        let deep = "[".repeat(MAX_DEPTH + 5);
        assert_eq!(diagnose(&deep), None);
        assert_eq!(at_offset("{ a: @ }", 5), "unexpected \"@\"");
        assert_eq!(at_offset("{", 1), "unexpected end of file");
    }
}
