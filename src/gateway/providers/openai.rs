//! `openai-completions`: pass-through. The request's `model` is rewritten to the upstream id;
//! the answer's bytes are forwarded untouched.

use axum::http::HeaderValue;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::{
    excerpt, read_body, send, Answer, AttemptError, ErrorDialect, FailureClass, SseStream, Target,
    Upstreams,
};
use crate::gateway::wire::openai::sse_error_event;

pub async fn call(
    up: &Upstreams,
    target: &Target<'_>,
    req: &Value,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let body = WithModel {
        req,
        model: &target.model.id,
    };
    let url = format!("{}/chat/completions", target.provider.base_url);
    let mut rb = up.client(target).post(url).json(&body);
    if let Some(key) = &target.api_key {
        rb = rb.bearer_auth(key);
    }
    for (k, v) in &target.provider.headers {
        rb = rb.header(k, v);
    }
    let budget = target.first_byte_timeout;
    let resp = send(rb, budget, ErrorDialect::OpenAi).await?;
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    if !stream {
        let body = read_body(resp, budget).await?;
        return Ok(Answer::Json { body, content_type });
    }
    let mut upstream = resp.bytes_stream();
    let first = match tokio::time::timeout(target.first_byte_timeout, upstream.next()).await {
        Err(_) => {
            return Err(AttemptError::new(
                FailureClass::Timeout,
                format!("no first byte within {:?}", target.first_byte_timeout),
            ))
        }
        Ok(None) => {
            return Err(AttemptError::new(
                FailureClass::ServerError,
                "stream ended before its first byte",
            ))
        }
        Ok(Some(Err(e))) => return Err(AttemptError::from_reqwest(&e, "stream failed")),
        Ok(Some(Ok(b))) => b,
    };
    Ok(Answer::Stream(passthrough(first, upstream, budget)))
}

/// The client's request as the upstream must see it: its own model id in `model`, every other
/// field as sent. Serialised straight from the borrowed request (no copy of a 60 KB body per
/// attempt).
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

/// Forwards upstream chunks; an upstream failure, a silence longer than `idle`, or an end
/// without `[DONE]` becomes an SSE error event so the client never mistakes a truncated answer
/// for a complete one, nor waits forever on a stalled one.
fn passthrough(
    first: Bytes,
    upstream: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: std::time::Duration,
) -> SseStream {
    let state = (Some(first), Box::pin(upstream), Tail::default(), false);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(first, mut up, mut tail, ended)| async move {
            if ended {
                return None;
            }
            if let Some(b) = first {
                tail.push(&b);
                return Some((b, (None, up, tail, false)));
            }
            let Ok(next) = tokio::time::timeout(idle, up.next()).await else {
                return Some((
                    sse_error_event(&super::stalled_message(idle), "api_error"),
                    (None, up, tail, true),
                ));
            };
            match next {
                Some(Ok(b)) => {
                    tail.push(&b);
                    Some((b, (None, up, tail, false)))
                }
                Some(Err(e)) => {
                    let msg = format!(
                        "upstream stream failed: {}",
                        crate::discovery::describe_reqwest(&e)
                    );
                    Some((sse_error_event(&msg, "api_error"), (None, up, tail, true)))
                }
                None if tail.saw_done() => None,
                None => Some((
                    sse_error_event("upstream stream ended without [DONE]", "api_error"),
                    (None, up, tail, true),
                )),
            }
        },
    ))
}

/// The last bytes seen, to tell a complete SSE stream from a truncated one.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
        let excess = self.0.len().saturating_sub(32);
        self.0.drain(..excess);
    }
    fn saw_done(&self) -> bool {
        self.0.windows(6).any(|w| w == b"[DONE]")
    }
}

/// `error.message` of an OpenAI error body, else the body itself.
pub fn openai_error_message(body: &Bytes) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| v.get("error").and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| excerpt(body))
}
