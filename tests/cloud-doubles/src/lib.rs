//! Loopback doubles of two cloud APIs the gateway speaks to: Google's Gemini `generateContent`
//! ([`gemini`]) and OpenAI's Responses API ([`responses`]). Each is a real HTTP server with the
//! vendor's paths, key check, body shapes, stream framing and error bodies (taken from
//! `shared/fixtures/{gemini,openai-responses}`), scripted by a control file. See README.md.

pub mod gemini;
pub mod responses;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Binds `--listen ADDR` (or `CLOUD_DOUBLE_LISTEN`, default `127.0.0.1:0`), prints
/// `Listening on ADDR` on stdout, serves until killed. Returns the exit code.
pub fn serve(router: Router) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("CLOUD_DOUBLE_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: --listen {listen}: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: tokio runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("Error: listen tcp {addr}: {e}");
                return 1;
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut out = std::io::stdout();
        let _ = writeln!(out, "Listening on {local}");
        let _ = out.flush();
        // Small writes go out at once, as from the gateway and the ollama double (Nagle would
        // hold each stream chunk until the previous one is acknowledged).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        match axum::serve(listener, router).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: serve: {e}");
                1
            }
        }
    })
}

/// The key every request must carry (`CLOUD_DOUBLE_KEY`, default `test-key`).
pub fn expected_key() -> String {
    std::env::var("CLOUD_DOUBLE_KEY").unwrap_or_else(|_| "test-key".into())
}

/// The control file (`CLOUD_DOUBLE_CONTROL`), re-read on every request. A missing file means
/// defaults; an unreadable or invalid one keeps the last valid control and says so on stderr.
pub fn control<T: DeserializeOwned + Default + Clone + Send + 'static>(
    last: &'static Mutex<Option<T>>,
) -> T {
    let Some(path) = std::env::var_os("CLOUD_DOUBLE_CONTROL").map(PathBuf::from) else {
        return T::default();
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return T::default(),
        Err(e) => {
            eprintln!(
                "level=WARN msg=\"control file unreadable\" path={} error=\"{e}\"",
                path.display()
            );
            return last.lock().ok().and_then(|l| l.clone()).unwrap_or_default();
        }
    };
    match serde_json::from_str::<T>(&text) {
        Ok(c) => {
            if let Ok(mut l) = last.lock() {
                *l = Some(c.clone());
            }
            c
        }
        Err(e) => {
            eprintln!("level=WARN msg=\"control file invalid, keeping the last valid one\" path={} error=\"{e}\"", path.display());
            last.lock().ok().and_then(|l| l.clone()).unwrap_or_default()
        }
    }
}

/// Appends one JSON line per request to `CLOUD_DOUBLE_LOG`, before the request is answered:
/// `{"method","path","query","headers","body"}` (`body` parsed when it is JSON, else text).
pub fn log_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
    let Some(path) = std::env::var_os("CLOUD_DOUBLE_LOG") else {
        return;
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(body).into_owned()));
    let line = serde_json::json!({
        "method": method.as_str(), "path": uri.path(), "query": uri.query(),
        "headers": headers, "body": body,
    });
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// 2-space indented JSON with a trailing newline, as Google and OpenAI send whole bodies.
pub fn pretty(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// JSON the way Gemini's stream chunks are written: one line, `": "` after keys, no space
/// after commas (`{"candidates": [{"content": {"parts": [...],"role": "model"}}]}`).
pub fn python_style(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, ColonSpace);
    if value.serialize(&mut ser).is_err() {
        return "null".into();
    }
    String::from_utf8(out).unwrap_or_default()
}

struct ColonSpace;

impl serde_json::ser::Formatter for ColonSpace {
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// One piece of a streamed body.
pub enum Piece {
    Bytes(Bytes),
    /// Pause before the next piece.
    Sleep(Duration),
    /// Drop the connection here (the client sees a body that ends abruptly).
    Cut,
}

/// A streamed response body made of `pieces`.
pub fn stream_body(pieces: Vec<Piece>) -> Body {
    use futures_util::StreamExt;
    let stream = futures_util::stream::iter(pieces)
        .then(|piece| async move {
            match piece {
                Piece::Bytes(b) => Some(Ok::<Bytes, std::io::Error>(b)),
                Piece::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    None
                }
                Piece::Cut => {
                    // Let what was sent reach the client first: hyper drops buffered bytes
                    // when a body fails.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some(Err(std::io::Error::other(
                        "connection cut by the control file",
                    )))
                }
            }
        })
        .filter_map(|x| async move { x });
    Body::from_stream(stream)
}

/// A response with `status`, `content-type` and `body`.
pub fn respond(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = axum::http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
    }
    r
}

/// A rough token count (4 bytes a token, at least 1), the same on every call.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4).max(1)
}

/// `n` random characters of `[A-Za-z0-9]`.
pub fn random_id(n: usize) -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}
