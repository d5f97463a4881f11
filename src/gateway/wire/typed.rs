//! Typed parsing of inbound requests: serde does the checking, and a wrong type becomes a 400
//! whose `param` names the field (`messages[2].content`), whatever the API.

use serde::Deserialize;
use serde_json::Value;

use super::WireError;

/// An optional string borrowed from the input where it can be. (serde's own `Option<Cow<str>>`
/// always copies: only a bare `Cow<str>` field borrows.)
pub fn borrowed_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::borrow::Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowing<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);
    Ok(Option::<Borrowing<'a>>::deserialize(d)?.map(|b| b.0))
}

/// Deserializes `T` from a parsed body; the error names the offending field.
pub fn from_value<'a, T: Deserialize<'a>>(value: &'a Value) -> Result<T, WireError> {
    // Tracking the path costs on every field: only a value that fails is read again with it.
    if let Ok(parsed) = T::deserialize(value) {
        return Ok(parsed);
    }
    serde_path_to_error::deserialize(value).map_err(|e| to_wire_error(e.path(), e.inner()))
}

/// Deserializes `T` from a body's bytes; the error names the offending field.
pub fn from_slice<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, WireError> {
    // As above: the path is tracked only on the second reading of a body that failed.
    if let Ok(parsed) = serde_json::from_slice(body) {
        return Ok(parsed);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WireError::bad_request(
            "The request body is empty; send a JSON object.",
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // serde_json reports some type errors (an enum given `null`) as syntax errors: only a
        // body that really is not JSON is answered as one.
        let not_json = (e.inner().is_syntax() || e.inner().is_eof())
            && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err();
        if not_json {
            return WireError::bad_request(
                format!(
                    "We could not parse the JSON body of your request: {}.",
                    e.inner()
                ),
                None,
            );
        }
        to_wire_error(e.path(), e.inner())
    })?;
    de.end().map_err(|e| {
        WireError::bad_request(
            format!("We could not parse the JSON body of your request: {e}."),
            None,
        )
    })?;
    Ok(parsed)
}

fn to_wire_error(path: &serde_path_to_error::Path, inner: &serde_json::Error) -> WireError {
    let mut what = inner.to_string();
    // serde_json appends the position; the field name says more.
    if let Some(at) = what.rfind(" at line ") {
        what.truncate(at);
    }
    let parent = path.to_string();
    let parent = (!parent.is_empty() && parent != ".").then_some(parent);
    // A missing field is reported on its parent: name the field itself.
    if let Some(field) = what
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        let full = match parent {
            Some(p) => format!("{p}.{field}"),
            None => field.to_owned(),
        };
        return WireError::bad_request(
            format!("Missing required parameter: '{full}'."),
            Some(full),
        );
    }
    match parent {
        Some(param) => {
            WireError::bad_request(format!("Invalid value for '{param}': {what}."), Some(param))
        }
        None => WireError::bad_request(format!("Invalid request body: {what}."), None),
    }
}

/// `Deserialize` for an enum that is either a string (`$text(String)`) or an array
/// (`$seq(Vec<$item>)`). Unlike `#[serde(untagged)]`, errors inside the array keep their path
/// (`input[2].call_id`), so the 400 names the field.
macro_rules! string_or_seq {
    ($ty:ident, $text:ident, $seq:ident, $item:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        Ok($ty::$text(v.to_owned()))
                    }
                    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<$ty, E> {
                        Ok($ty::$text(v))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<$ty, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                        while let Some(item) = seq.next_element::<$item>()? {
                            out.push(item);
                        }
                        Ok($ty::$seq(out))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use string_or_seq;

/// A non-negative whole number, also when a client wrote it as `1024.0` (a JSON number is a
/// float to many clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Count, E> {
                if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                    Ok(Count(v as u64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        stream: Option<bool>,
        max_tokens: Option<Count>,
        messages: Vec<Msg>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Msg {
        role: Role,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        User,
    }

    fn param(body: &str) -> Option<String> {
        match from_slice::<Req>(body.as_bytes()).unwrap_err() {
            WireError::BadRequest { param, .. } => param,
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        assert_eq!(
            param(r#"{"stream":"yes","messages":[]}"#).as_deref(),
            Some("stream")
        );
        assert_eq!(
            param(r#"{"max_tokens":"ten","messages":[]}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param(r#"{"messages":[{"role":"user"},{"role":5}]}"#).as_deref(),
            Some("messages[1].role")
        );
        assert_eq!(
            param(r#"{"messages":[{"content":"x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(param("{not json"), None);
        assert_eq!(param(r#"{"stream":true}"#).as_deref(), Some("messages"));
        assert_eq!(
            param(r#"{"messages":[[null]]}"#).as_deref(),
            Some("messages[0][0]")
        );
        assert!(from_slice::<Req>(br#"{"max_tokens":64.0,"messages":[]}"#).is_ok());
    }
}
