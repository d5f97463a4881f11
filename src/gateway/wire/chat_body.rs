//! The chat completions request the chain walk carries: the client's own bytes when it spoke
//! chat completions, or a body built from another API's IR.
//!
//! The pass-through provider forwards the client's bytes with only the top-level `model` string
//! swapped for the upstream's id — one copy, no parse and re-serialisation. A translating
//! provider asks for [`ChatBody::value`], parsed once, on first use.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde_json::Value;

use super::chat_in::ChatCompletionRequest;
use super::{typed, WireError};

/// An OpenAI chat completions body, validated.
pub struct ChatBody {
    raw: Option<RawBody>,
    value: OnceLock<Value>,
}

/// A client's body and where its `model` string sits in it.
struct RawBody {
    bytes: Bytes,
    /// The byte range of the top-level `"model"` string, quotes included; `None` when it is
    /// absent or written with escapes (then the body is re-serialised).
    model_at: Option<Range<usize>>,
}

/// What the walk reads from a client's chat completions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHead {
    /// `model`, when present and not empty.
    pub model: Option<String>,
    pub stream: bool,
}

impl ChatBody {
    /// Checks a client's body (every field the gateway or a translator reads has its type; a
    /// wrong one is a 400 naming it) and keeps its bytes for the pass-through.
    pub fn from_client(bytes: Bytes) -> Result<(ChatBody, ChatHead), WireError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => {
                return Err(WireError::bad_request(
                    "The request body is empty; send a JSON object with `model` and `messages`.",
                    None,
                ))
            }
            // Not an object: the parsed value names what it is instead (or the syntax error).
            Some(b) if *b != b'{' => {
                let value: Value = serde_json::from_slice(&bytes).map_err(not_json)?;
                return Err(WireError::bad_request(
                    format!(
                        "The request body must be a JSON object, not {}.",
                        super::openai::json_kind(&value)
                    ),
                    None,
                ));
            }
            Some(_) => {}
        }
        let view: ChatCompletionRequest<'_, IgnoredAny> = typed::from_slice(&bytes)?;
        super::chat_in::check_not_empty(&view)?;
        let model_at = view.model.as_ref().and_then(|m| match m {
            std::borrow::Cow::Borrowed(text) => span_in(&bytes, text),
            std::borrow::Cow::Owned(_) => None,
        });
        let head = ChatHead {
            model: view
                .model
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            stream: view.stream.unwrap_or(false),
        };
        drop(view);
        Ok((
            ChatBody {
                raw: Some(RawBody { bytes, model_at }),
                value: OnceLock::new(),
            },
            head,
        ))
    }

    /// A body built by the gateway (from another API's IR).
    pub fn from_value(value: Value) -> ChatBody {
        ChatBody {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    /// The body as JSON, parsed on first use.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.raw {
            // Validated above, so it parses; `Null` (which every translator refuses) otherwise.
            Some(raw) => serde_json::from_slice(&raw.bytes).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    /// The body as an upstream that speaks chat completions must see it: `model` set to
    /// `model`, every other byte as the client sent it.
    pub fn with_model(&self, model: &str) -> Bytes {
        if let Some(RawBody {
            bytes,
            model_at: Some(at),
        }) = &self.raw
        {
            let current = &bytes[at.start + 1..at.end - 1];
            if current == model.as_bytes() {
                return bytes.clone();
            }
            let quoted = serde_json::to_string(model).unwrap_or_default();
            let mut out = BytesMut::with_capacity(bytes.len() - at.len() + quoted.len());
            out.put_slice(&bytes[..at.start]);
            out.put_slice(quoted.as_bytes());
            out.put_slice(&bytes[at.end..]);
            return out.freeze();
        }
        let body = WithModel {
            req: self.value(),
            model,
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

/// `text` is a string borrowed from `body` by the parser: its range there, widened to the quotes.
fn span_in(body: &[u8], text: &str) -> Option<Range<usize>> {
    let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(text.len())?;
    let quoted = start.checked_sub(1)?..end.checked_add(1)?;
    let inside = body.get(quoted.clone())?;
    (inside.first() == Some(&b'"') && inside.last() == Some(&b'"')).then_some(quoted)
}

fn not_json(e: serde_json::Error) -> WireError {
    WireError::bad_request(
        format!("We could not parse the JSON body of your request: {e}."),
        None,
    )
}

/// The client's request with the upstream's model id in `model`, serialised straight from the
/// borrowed value (no copy of a 60 KB body per attempt).
struct WithModel<'a> {
    req: &'a Value,
    model: &'a str,
}

impl serde::Serialize for WithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(obj) = self.req.as_object() else {
            return self.req.serialize(s);
        };
        let mut map = s.serialize_map(Some(obj.len() + 1))?;
        map.serialize_entry("model", self.model)?;
        for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != "model") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(body: &str) -> (ChatBody, ChatHead) {
        ChatBody::from_client(Bytes::from(body.to_owned())).expect("valid")
    }

    fn parsed(b: &Bytes) -> Value {
        serde_json::from_slice(b).expect("json")
    }

    #[test]
    fn the_model_is_swapped_in_place_and_every_other_byte_kept() {
        let body = r#"{ "messages" : [{"role":"user","content":"hi"}], "model":"mock/fast" ,"x_extra": {"k": [1, 2.50]}}"#;
        let (chat, head) = client(body);
        assert_eq!(head.model.as_deref(), Some("mock/fast"));
        assert!(!head.stream);
        let out = chat.with_model("fast");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            body.replace("\"mock/fast\"", "\"fast\"")
        );
        // Never parsed: the pass-through did not need it.
        assert!(chat.value.get().is_none());
    }

    #[test]
    fn the_same_model_forwards_the_very_same_bytes() {
        let body = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let (chat, head) = client(body);
        assert!(head.stream);
        let out = chat.with_model("fast");
        assert_eq!(out.as_ptr(), chat.raw.as_ref().expect("raw").bytes.as_ptr());
    }

    #[test]
    fn an_escaped_or_odd_model_id_is_written_as_json() {
        let (chat, _) =
            client(r#"{"model":"mo\u0064el","messages":[{"role":"user","content":"x"}]}"#);
        let out = chat.with_model("a\"b");
        let v = parsed(&out);
        assert_eq!(v["model"], "a\"b");
        assert_eq!(v["messages"][0]["content"], "x");

        let (chat, head) = client(r#"{"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(head.model, None);
        assert_eq!(parsed(&chat.with_model("m"))["model"], "m");
    }

    #[test]
    fn a_nested_model_field_is_not_the_one_swapped() {
        let body = r#"{"metadata":{"model":"inner"},"model":"outer","messages":[{"role":"user","content":"model"}]}"#;
        let (chat, _) = client(body);
        let v = parsed(&chat.with_model("up"));
        assert_eq!(v["model"], "up");
        assert_eq!(v["metadata"]["model"], "inner");
        assert_eq!(v["messages"][0]["content"], "model");
    }

    #[test]
    fn bad_bodies_are_refused_with_what_is_wrong() {
        let err = |b: &str| {
            ChatBody::from_client(Bytes::from(b.to_owned()))
                .err()
                .expect("refused")
                .to_string()
        };
        assert!(err("  ").contains("empty"));
        assert!(
            err("[1]").contains("must be a JSON object, not an array"),
            "{}",
            err("[1]")
        );
        assert!(err("{\"model\":").contains("could not parse the JSON"));
        assert!(err(r#"{"model":"m","messages":[]}"#).contains("too short"));
        assert!(
            err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
                .contains("stream")
        );
        assert!(
            err(r#"{"model":"m","model":"n","messages":[{"role":"user","content":"x"}]}"#)
                .contains("duplicate")
        );
        let wrong_model = err(r#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(
            wrong_model,
            "Invalid value for 'model': invalid type: integer `5`, expected a string."
        );
    }

    #[test]
    fn a_translator_gets_the_parsed_body() {
        let (chat, _) = client(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(chat.value()["messages"][0]["role"], "user");
        let built = ChatBody::from_value(serde_json::json!({"model": "m", "messages": []}));
        assert_eq!(parsed(&built.with_model("z"))["model"], "z");
    }
}
