//! Responses as gin and Ollama's OpenAI middleware write them, and the body type that prints
//! gin's access line once the body is finished (like gin, after the handler returns).

use crate::gojson;
use crate::log;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const GIN_JSON: &str = "application/json; charset=utf-8";
pub const GIN_TEXT: &str = "text/plain; charset=utf-8";
pub const PLAIN_TEXT: &str = "text/plain";
pub const NDJSON: &str = "application/x-ndjson";
pub const V1_JSON: &str = "application/json";
pub const SSE: &str = "text/event-stream";

pub enum Payload {
    Full(Bytes),
    Stream(mpsc::Receiver<Bytes>),
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub payload: Payload,
}

impl Reply {
    pub fn bytes(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        let headers = content_type
            .map(|ct| vec![("Content-Type", ct.to_string())])
            .unwrap_or_default();
        Self {
            status,
            headers,
            payload: Payload::Full(body.into()),
        }
    }

    /// gin `c.JSON`: compact, no trailing newline.
    pub fn gin_json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        Self::bytes(status, Some(GIN_JSON), gojson::marshal(value))
    }

    /// `{"error":"..."}` through gin.
    pub fn gin_error(status: u16, message: &str) -> Self {
        Self::gin_json(status, &serde_json::json!({ "error": message }))
    }

    /// `json.NewEncoder(w).Encode(v)` with `application/json` (the OpenAI layer).
    pub fn v1_json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        Self::bytes(status, Some(V1_JSON), gojson::encode_line(value))
    }

    /// The OpenAI error shape; the type follows the status like `openai.NewError`.
    pub fn v1_error(status: u16, message: &str) -> Self {
        Self::v1_json(status, &v1_error_body(status, message))
    }

    /// A body with no content and no type (gin `AbortWithStatus`).
    pub fn empty(status: u16) -> Self {
        Self::bytes(status, None, Bytes::new())
    }

    pub fn stream(content_type: &str, rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type", content_type.to_string())],
            payload: Payload::Stream(rx),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// `openai.ErrorResponse`: `{"error":{"message","type","param":null,"code":null}}`.
#[derive(Serialize)]
pub struct V1Error<'a> {
    error: V1ErrorDetail<'a>,
}

#[derive(Serialize)]
struct V1ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<()>,
    code: Option<()>,
}

pub fn v1_error_body(status: u16, message: &str) -> V1Error<'_> {
    let kind = match status {
        400 => "invalid_request_error",
        404 => "not_found_error",
        _ => "api_error",
    };
    V1Error {
        error: V1ErrorDetail {
            message,
            kind,
            param: None,
            code: None,
        },
    }
}

/// What the access line needs once the response is done.
pub struct AccessLog {
    pub started: Instant,
    pub status: u16,
    pub client_ip: String,
    pub method: String,
    pub path: String,
}

pub struct ResponseBody {
    payload: Payload,
    access: Option<AccessLog>,
}

impl ResponseBody {
    pub fn new(payload: Payload, access: AccessLog) -> Self {
        Self {
            payload,
            access: Some(access),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(a) = self.access.take() {
            log::gin_access(
                a.status,
                a.started.elapsed(),
                &a.client_ip,
                &a.method,
                &a.path,
            );
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.payload {
            Payload::Full(bytes) => {
                if bytes.is_empty() {
                    Poll::Ready(None)
                } else {
                    let chunk = std::mem::take(bytes);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
            }
            Payload::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.payload, Payload::Full(b) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.payload {
            Payload::Full(b) => SizeHint::with_exact(b.len() as u64),
            Payload::Stream(_) => SizeHint::default(),
        }
    }
}
