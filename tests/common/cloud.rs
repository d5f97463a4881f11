//! Loopback doubles of cloud providers: an OpenAI-compatible API and Anthropic's Messages API.
//! Each checks the key it was given and records what it received.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer normally.
    Ok,
    /// Answer this status and body.
    Status(u16, String),
    /// Stream two chunks, then drop the connection without `[DONE]`.
    CutMidStream,
}

/// The signature on the thinking block the Anthropic double answers when thinking is on.
pub const CLAUDE_SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxV7vbx2g1aW5JhZXRlc3Q=";

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    key: String,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeCloud {
    pub port: u16,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl FakeCloud {
    /// An OpenAI-compatible provider at `http://127.0.0.1:<port>/v1` requiring `Bearer <key>`.
    pub fn openai(key: &str) -> FakeCloud {
        Self::start(
            key,
            Router::new().route("/v1/chat/completions", post(openai_chat)),
        )
    }

    /// An Anthropic Messages provider at `http://127.0.0.1:<port>` requiring `x-api-key`.
    pub fn anthropic(key: &str) -> FakeCloud {
        Self::start(
            key,
            Router::new().route("/v1/messages", post(anthropic_messages)),
        )
    }

    fn start(key: &str, router: Router<Shared>) -> FakeCloud {
        let behaviour = Arc::new(Mutex::new(Behaviour::Ok));
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            key: key.to_string(),
            behaviour: behaviour.clone(),
            received: received.clone(),
        };
        let (port, thread) = serve_on_loopback(router.with_state(shared));
        FakeCloud {
            port,
            behaviour,
            received,
            _thread: thread,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn record(s: &Shared, path: &str, headers: &HeaderMap, body: &str) {
    s.received.lock().unwrap().push(Received {
        path: path.to_string(),
        headers: headers.clone(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    });
}

fn sse(events: Vec<String>, cut: bool) -> Response {
    use futures_util::StreamExt;
    let mut items: Vec<Result<String, std::io::Error>> = events.into_iter().map(Ok).collect();
    if cut {
        // An error ends the body abruptly: the client sees a dropped connection.
        items.push(Err(std::io::Error::other("connection cut")));
    }
    let stream = futures_util::stream::iter(items).then(|item| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        item
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn openai_chat(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    record(&s, "/v1/chat/completions", &headers, &body);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.key) {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}).to_string(),
        )
            .into_response();
    }
    let behaviour = s.behaviour.lock().unwrap().clone();
    if let Behaviour::Status(code, body) = &behaviour {
        return (StatusCode::from_u16(*code).unwrap(), body.clone()).into_response();
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("?").to_string();
    if req["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id":"chatcmpl-cloud","object":"chat.completion.chunk","created":1,"model":model,
                       "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
            )
        };
        let mut events = vec![
            chunk(json!({"role":"assistant","content":"from"}), Value::Null),
            chunk(json!({"content":" the cloud"}), Value::Null),
        ];
        let cut = matches!(behaviour, Behaviour::CutMidStream);
        if !cut {
            events.push(chunk(json!({}), json!("stop")));
            events.push("data: [DONE]\n\n".to_string());
        }
        return sse(events, cut);
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"id":"chatcmpl-cloud","object":"chat.completion","created":1,"model":model,
               "choices":[{"index":0,"message":{"role":"assistant","content":"from the cloud"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})
        .to_string(),
    )
        .into_response()
}

async fn anthropic_messages(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    record(&s, "/v1/messages", &headers, &body);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key != s.key || headers.get("anthropic-version").is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}).to_string(),
        )
            .into_response();
    }
    if let Behaviour::Status(code, body) = s.behaviour.lock().unwrap().clone() {
        return (StatusCode::from_u16(code).unwrap(), body).into_response();
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("?").to_string();
    // With thinking on, Anthropic answers a signed thinking block first.
    let thinks = req["thinking"]["type"] == "enabled";
    let text_index = usize::from(thinks);
    if req["stream"].as_bool() == Some(true) {
        let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut events = vec![ev(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":model,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}),
        )];
        if thinks {
            events.extend([
                ev(
                    "content_block_start",
                    json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":CLAUDE_SIGNATURE}}),
                ),
                ev(
                    "content_block_stop",
                    json!({"type":"content_block_stop","index":0}),
                ),
            ]);
        }
        events.extend(vec![
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":text_index,"content_block":{"type":"text","text":""}}),
            ),
            ev("ping", json!({"type":"ping"})),
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":text_index,"delta":{"type":"text_delta","text":"Hello"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":text_index,"delta":{"type":"text_delta","text":" from Claude"}}),
            ),
            ev(
                "content_block_stop",
                json!({"type":"content_block_stop","index":text_index}),
            ),
            ev(
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}),
            ),
            ev("message_stop", json!({"type":"message_stop"})),
        ]);
        return sse(events, false);
    }
    let mut content = Vec::new();
    if thinks {
        content.push(
            json!({"type":"thinking","thinking":"Let me think.","signature":CLAUDE_SIGNATURE}),
        );
    }
    content.push(json!({"type":"text","text":"Hello from Claude"}));
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"id":"msg_1","type":"message","role":"assistant","model":model,
               "content":content,
               "stop_reason":"end_turn","stop_sequence":null,
               "usage":{"input_tokens":12,"output_tokens":4}})
        .to_string(),
    )
        .into_response()
}

/// Serves `router` on a free loopback port from its own thread (with its own runtime); returns
/// the port and the thread.
pub fn serve_on_loopback(router: axum::Router) -> (u16, std::thread::JoinHandle<()>) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let _ = axum::serve(listener, router).await;
        });
    });
    (port, thread)
}
