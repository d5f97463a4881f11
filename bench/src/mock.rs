//! The mock upstream: OpenAI chat (JSON and SSE) and Ollama's native `/api/chat` (JSON and
//! NDJSON), answering as fast as hyper can unless the model name asks otherwise.
//!
//! The knobs travel in the model id, so they survive any gateway in between (openclawd rewrites
//! `mock/n64-p20` to `n64-p20`; LiteLLM maps its `model_name` to the same id): `-`-separated
//! tokens `d<ms>` (delay before the answer's headers), `t<ms>` (time to first token),
//! `p<ms>` (pace between chunks) and `n<count>` (content chunks). `fast` is all defaults: no
//! delay, 16 chunks, sent at once.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

/// What one answer looks like, decoded from the model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub delay: Duration,
    pub ttft: Duration,
    pub pace: Duration,
    pub chunks: u32,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            delay: Duration::ZERO,
            ttft: Duration::ZERO,
            pace: Duration::ZERO,
            chunks: 16,
        }
    }
}

impl Shape {
    /// `n64-p20` → 64 chunks 20 ms apart. Unknown tokens are ignored (so `fast` is the default).
    pub fn from_model(model: &str) -> Shape {
        let mut s = Shape::default();
        for token in model.split('-') {
            let Some((kind, digits)) = token.split_at_checked(1) else {
                continue;
            };
            let Ok(n) = digits.parse::<u64>() else {
                continue;
            };
            let ms = Duration::from_millis(n);
            match kind {
                "d" => s.delay = ms,
                "t" => s.ttft = ms,
                "p" => s.pace = ms,
                "n" => s.chunks = n.min(100_000) as u32,
                _ => {}
            }
        }
        s
    }
}

/// Serves until the process ends. Each connection gets its own task; `TCP_NODELAY` on.
pub async fn serve(listener: TcpListener) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mock: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Ollama,
}

async fn handle(req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/") | (&Method::HEAD, "/") => text("Ollama is running"),
        (&Method::GET, "/health") => json(r#"{"ok":true}"#.into()),
        (&Method::GET, "/api/version") => json(r#"{"version":"0.32.15"}"#.into()),
        (&Method::GET, "/api/ps") => json(r#"{"models":[]}"#.into()),
        (&Method::GET, "/api/tags") => json(
            r#"{"models":[{"name":"fast:latest","model":"fast:latest","size":1,"digest":"0","details":{"family":"llama"},"capabilities":["completion","tools"]}]}"#.into(),
        ),
        (&Method::GET, "/v1/models") => json(
            r#"{"object":"list","data":[{"id":"fast","object":"model","created":1700000000,"owned_by":"mock"}]}"#.into(),
        ),
        (&Method::POST, "/v1/chat/completions") | (&Method::POST, "/chat/completions") => {
            chat(req, Dialect::OpenAi).await
        }
        (&Method::POST, "/api/chat") => chat(req, Dialect::Ollama).await,
        _ => {
            let mut r = json(format!(
                r#"{{"error":{{"message":"mock: no route {method} {path}","type":"invalid_request_error"}}}}"#
            ));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

fn text(s: &'static str) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(Bytes::from_static(s.as_bytes())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn json(s: String) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(Bytes::from(s)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn bad_request(msg: &str) -> Response<MockBody> {
    let mut r = json(format!(
        r#"{{"error":{{"message":{},"type":"invalid_request_error"}}}}"#,
        serde_json::to_string(msg).unwrap_or_default()
    ));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

async fn chat(req: Request<Incoming>, dialect: Dialect) -> Response<MockBody> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(&format!("mock: reading the body: {e}")),
    };
    let parsed: ChatRequest = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("mock: body is not a chat request: {e}")),
    };
    let shape = Shape::from_model(&parsed.model);
    // Ollama streams unless told not to; OpenAI does not unless told to.
    let stream = parsed.stream.unwrap_or(dialect == Dialect::Ollama);
    if !shape.delay.is_zero() {
        tokio::time::sleep(shape.delay).await;
    }
    let model = serde_json::to_string(&parsed.model).unwrap_or_else(|_| "\"mock\"".into());
    let usage = parsed.stream_options.is_some_and(|o| o.include_usage);
    match (dialect, stream) {
        (Dialect::OpenAi, false) => json(openai_json(&model, shape.chunks)),
        (Dialect::Ollama, false) => json(ollama_json(&model, shape.chunks)),
        (Dialect::OpenAi, true) => {
            let mut r = Response::new(MockBody::paced(
                sse_frames(&model, shape.chunks, usage),
                shape,
            ));
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert("cache-control", HeaderValue::from_static("no-cache"));
            r
        }
        (Dialect::Ollama, true) => {
            let mut r = Response::new(MockBody::paced(ndjson_frames(&model, shape.chunks), shape));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            r
        }
    }
}

pub const TOKEN: &str = "tok ";
const CREATED: u64 = 1_700_000_000;
const CREATED_AT: &str = "2026-01-01T00:00:00.000000000Z";

/// The answer to a non-streaming OpenAI request for `fast`: what nginx serves as the reference.
pub fn fast_completion() -> String {
    openai_json("\"fast\"", Shape::default().chunks)
}

fn openai_json(model: &str, chunks: u32) -> String {
    let content = TOKEN.repeat(chunks as usize);
    format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{CREATED},"model":{model},"choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":{chunks},"total_tokens":{}}}}}"#,
        chunks + 5
    )
}

fn ollama_json(model: &str, chunks: u32) -> String {
    let content = TOKEN.repeat(chunks as usize);
    format!(
        r#"{{"model":{model},"created_at":"{CREATED_AT}","message":{{"role":"assistant","content":"{content}"}},"done":true,"done_reason":"stop","total_duration":1000000,"load_duration":1000,"prompt_eval_count":5,"prompt_eval_duration":1000,"eval_count":{chunks},"eval_duration":1000000}}"#
    )
}

/// One frame per content chunk (the role chunk rides with the first, the finish chunk and
/// `[DONE]` with the last), so every frame is one paced event for the client.
fn sse_frames(model: &str, chunks: u32, usage: bool) -> VecDeque<Bytes> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let role = chunk(r#"{"role":"assistant","content":""}"#, "null");
    let content = chunk(&format!(r#"{{"content":"{TOKEN}"}}"#), "null");
    let mut last = chunk("{}", "\"stop\"");
    if usage {
        last.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":{model},\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
            chunks + 5
        ));
    }
    last.push_str("data: [DONE]\n\n");
    let mut frames = VecDeque::with_capacity(chunks.max(1) as usize);
    for i in 0..chunks.max(1) {
        let mut f = String::new();
        if i == 0 {
            f.push_str(&role);
        }
        if chunks > 0 {
            f.push_str(&content);
        }
        if i + 1 == chunks.max(1) {
            f.push_str(&last);
        }
        frames.push_back(Bytes::from(f));
    }
    frames
}

fn ndjson_frames(model: &str, chunks: u32) -> VecDeque<Bytes> {
    let content = format!(
        "{{\"model\":{model},\"created_at\":\"{CREATED_AT}\",\"message\":{{\"role\":\"assistant\",\"content\":\"{TOKEN}\"}},\"done\":false}}\n"
    );
    let done = format!(
        "{{\"model\":{model},\"created_at\":\"{CREATED_AT}\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1000000,\"load_duration\":1000,\"prompt_eval_count\":5,\"prompt_eval_duration\":1000,\"eval_count\":{chunks},\"eval_duration\":1000000}}\n"
    );
    let mut frames = VecDeque::with_capacity(chunks.max(1) as usize);
    for i in 0..chunks.max(1) {
        let mut f = String::new();
        if chunks > 0 {
            f.push_str(&content);
        }
        if i + 1 == chunks.max(1) {
            f.push_str(&done);
        }
        frames.push_back(Bytes::from(f));
    }
    frames
}

/// A whole body, or frames released on a fixed schedule: frame `k` at `ttft + k × pace` after
/// the answer started (a schedule, not a sleep per frame, so pacing does not drift).
pub enum MockBody {
    Full(Option<Bytes>),
    Paced(Box<Paced>),
}

pub struct Paced {
    frames: VecDeque<Bytes>,
    start: Instant,
    ttft: Duration,
    pace: Duration,
    sent: u32,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<u32>,
}

impl MockBody {
    fn full(b: Bytes) -> MockBody {
        MockBody::Full(Some(b))
    }

    fn paced(frames: VecDeque<Bytes>, shape: Shape) -> MockBody {
        let start = Instant::now();
        MockBody::Paced(Box::new(Paced {
            frames,
            start,
            ttft: shape.ttft,
            pace: shape.pace,
            sent: 0,
            timer: Box::pin(tokio::time::sleep_until(start)),
            armed_for: None,
        }))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Paced(p) => {
                if p.frames.is_empty() {
                    return Poll::Ready(None);
                }
                let due = p.start + p.ttft + p.pace * p.sent;
                if due > Instant::now() {
                    if p.armed_for != Some(p.sent) {
                        p.timer.as_mut().reset(due);
                        p.armed_for = Some(p.sent);
                    }
                    if p.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                p.sent += 1;
                Poll::Ready(p.frames.pop_front().map(|f| Ok(Frame::data(f))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Paced(p) => p.frames.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Paced(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_id_carries_the_knobs() {
        assert_eq!(Shape::from_model("fast"), Shape::default());
        let s = Shape::from_model("n64-p20-t5-d1");
        assert_eq!(s.chunks, 64);
        assert_eq!(s.pace, Duration::from_millis(20));
        assert_eq!(s.ttft, Duration::from_millis(5));
        assert_eq!(s.delay, Duration::from_millis(1));
    }

    #[test]
    fn sse_frames_are_one_content_event_each_and_end_with_done() {
        let f = sse_frames("\"m\"", 3, false);
        assert_eq!(f.len(), 3);
        assert!(
            f[0].starts_with(b"data: ") && std::str::from_utf8(&f[0]).unwrap().contains("\"role\"")
        );
        let last = std::str::from_utf8(&f[2]).unwrap();
        assert!(last.ends_with("data: [DONE]\n\n"), "{last}");
        for frame in &f {
            for ev in std::str::from_utf8(frame)
                .unwrap()
                .split("\n\n")
                .filter(|e| !e.is_empty())
            {
                let data = ev.strip_prefix("data: ").unwrap();
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data).unwrap();
                }
            }
        }
    }

    #[test]
    fn ndjson_frames_are_json_lines_ending_with_done() {
        let f = ndjson_frames("\"m\"", 2);
        let all: String = f.iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
        let lines: Vec<serde_json::Value> = all
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["done"], true);
        assert_eq!(lines[0]["message"]["content"], TOKEN);
    }
}
