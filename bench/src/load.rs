//! The load client: one keep-alive HTTP/1.1 connection per worker (hyper, `TCP_NODELAY`),
//! per-request latency, and for streams the arrival time of every event (SSE `data:` event or
//! NDJSON line). Every loop is bounded by a count and a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// OpenAI chat completions: `data:` events ending with `data: [DONE]`.
    Sse,
    /// Ollama's native stream: JSON lines, the last with `"done":true`.
    Ndjson,
    /// Anthropic Messages: `event:` + `data:` pairs ending with `message_stop`.
    AnthropicSse,
    /// Gemini `streamGenerateContent?alt=sse`: `data:` chunks, the last with a `finishReason`.
    GeminiSse,
}

/// One kind of request against one server.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub body: Bytes,
    pub auth: Option<String>,
    /// More request headers (e.g. `x-goog-api-key`).
    pub headers: Vec<(&'static str, String)>,
    /// `Some` for streamed requests.
    pub framing: Option<Framing>,
}

impl Target {
    pub fn chat(
        addr: SocketAddr,
        path: &str,
        model: &str,
        stream: bool,
        framing: Framing,
        auth: Option<&str>,
    ) -> Target {
        let body = serde_json::json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say something for the benchmark."}],
        });
        Target {
            addr,
            path: path.to_string(),
            body: Bytes::from(body.to_string()),
            auth: auth.map(str::to_string),
            headers: Vec::new(),
            framing: stream.then_some(framing),
        }
    }

    /// A request with a body of another API (Anthropic Messages, Gemini); `framing` when it
    /// streams.
    pub fn raw(
        addr: SocketAddr,
        path: &str,
        body: serde_json::Value,
        framing: Option<Framing>,
    ) -> Target {
        Target {
            addr,
            path: path.to_string(),
            body: Bytes::from(body.to_string()),
            auth: None,
            headers: Vec::new(),
            framing,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Target {
        self.headers.push((name, value.to_string()));
        self
    }
}

pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

/// A streamed answer as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct StreamSample {
    /// Request written → first event.
    pub ttft: Option<Duration>,
    /// Gaps between consecutive events (events read together count as a 0 gap).
    pub gaps: Vec<Duration>,
    pub events: u32,
    /// The end marker (`[DONE]` / `"done":true`) arrived.
    pub complete: bool,
    pub error: Option<String>,
    pub total: Duration,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            host: addr.to_string(),
        })
    }

    fn request(&self, t: &Target) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(t.path.as_str())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "application/json");
        if let Some(a) = &t.auth {
            b = b.header(AUTHORIZATION, format!("Bearer {a}"));
        }
        for (k, v) in &t.headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Full::new(t.body.clone()))
            .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    /// One whole request; the time from writing it to the last byte of the answer.
    pub async fn call(&mut self, t: &Target) -> Result<Duration, String> {
        self.send.ready().await.map_err(|e| e.to_string())?;
        let req = self.request(t);
        let started = Instant::now();
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let took = started.elapsed();
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok(took)
    }

    /// One streamed request, recording when each event arrives. Gives up at `deadline`.
    pub async fn stream(&mut self, t: &Target, deadline: Instant) -> StreamSample {
        let mut s = StreamSample::default();
        let framing = t.framing.unwrap_or(Framing::Sse);
        if let Err(e) = self.send.ready().await {
            s.error = Some(e.to_string());
            return s;
        }
        let req = self.request(t);
        let started = Instant::now();
        let resp = match tokio::time::timeout_at(deadline, self.send.send_request(req)).await {
            Err(_) => {
                s.error = Some("no answer before the deadline".into());
                return s;
            }
            Ok(Err(e)) => {
                s.error = Some(e.to_string());
                return s;
            }
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            s.error = Some(format!("HTTP {}", resp.status()));
            return s;
        }
        let mut body = resp.into_body();
        let mut last: Option<Instant> = None;
        // Ollama's final line carries ~200 bytes of counters after `"done":true`.
        let mut tail: Vec<u8> = Vec::with_capacity(TAIL + 64);
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    s.error = Some("stream not finished before the deadline".into());
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    s.error = Some(e.to_string());
                    break;
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let now = Instant::now();
            let n = count_events(&data, framing);
            if n > 0 {
                match last {
                    None => s.ttft = Some(now - started),
                    Some(prev) => s.gaps.push(now - prev),
                }
                for _ in 1..n {
                    s.gaps.push(Duration::ZERO);
                }
                last = Some(now);
                s.events += n;
            }
            tail.extend_from_slice(&data);
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
        }
        s.total = started.elapsed();
        s.complete = s.error.is_none() && is_complete(&tail, framing);
        if s.error.is_none() && !s.complete {
            s.error = Some("the stream ended without its end marker".into());
        }
        s
    }
}

/// How many trailing bytes are kept to find the end marker (Gemini's last chunk carries its
/// usage and ids after the `finishReason`).
const TAIL: usize = 2048;

fn count_events(data: &[u8], framing: Framing) -> u32 {
    match framing {
        Framing::Sse | Framing::AnthropicSse | Framing::GeminiSse => {
            data.windows(5).filter(|w| w == b"data:").count() as u32
        }
        Framing::Ndjson => data.iter().filter(|b| **b == b'\n').count() as u32,
    }
}

fn is_complete(tail: &[u8], framing: Framing) -> bool {
    let needle: &[u8] = match framing {
        Framing::Sse => b"[DONE]",
        Framing::Ndjson => b"\"done\":true",
        Framing::AnthropicSse => b"event: message_stop",
        Framing::GeminiSse => b"\"finishReason\"",
    };
    tail.windows(needle.len()).any(|w| w == needle)
}

/// `n` requests one after the other on one connection (after `warmup` unrecorded ones).
pub async fn sequential(
    t: &Target,
    warmup: usize,
    n: usize,
    deadline: Instant,
) -> Result<Vec<Duration>, String> {
    let mut conn = Conn::open(t.addr).await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..warmup + n {
        if Instant::now() > deadline {
            break;
        }
        let took = match conn.call(t).await {
            Ok(d) => d,
            Err(e) => {
                // A broken connection: reopen once and go on; an HTTP error ends the run.
                if e.starts_with("HTTP ") {
                    return Err(e);
                }
                conn = Conn::open(t.addr).await?;
                continue;
            }
        };
        if i >= warmup {
            out.push(took);
        }
    }
    Ok(out)
}

/// `n` requests one after the other on one warm connection, each after `think` of idle time
/// (as a chat client sends its next message): what a request costs when nothing is hot.
pub async fn sequential_after_idle(
    t: &Target,
    n: usize,
    think: Duration,
    deadline: Instant,
) -> Result<Vec<Duration>, String> {
    let mut conn = Conn::open(t.addr).await?;
    conn.call(t).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(think).await;
        out.push(conn.call(t).await?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// A closed loop: `concurrency` workers, each on its own connection, sending back to back
/// for `duration`.
pub async fn closed_loop(t: &Target, concurrency: usize, duration: Duration) -> LoadResult {
    let started = Instant::now();
    let stop = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let t = t.clone();
        workers.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            let mut conn = match Conn::open(t.addr).await {
                Ok(c) => c,
                Err(e) => {
                    r.errors += 1;
                    r.first_error = Some(e);
                    return r;
                }
            };
            // Bounded by time, and by a count no real run reaches.
            for _ in 0..10_000_000u64 {
                if Instant::now() >= stop {
                    break;
                }
                match conn.call(&t).await {
                    Ok(d) => r.latencies.push(d),
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                        match Conn::open(t.addr).await {
                            Ok(c) => conn = c,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            r
        }));
    }
    let mut all = LoadResult::default();
    for w in workers {
        if let Ok(r) = w.await {
            all.latencies.extend(r.latencies);
            all.errors += r.errors;
            if all.first_error.is_none() {
                all.first_error = r.first_error;
            }
        }
    }
    all.elapsed = started.elapsed();
    all
}

/// `concurrency` streams at once, each on its own keep-alive connection warmed by one `warm`
/// request (so accepting and setting up connections is not part of the time to first token),
/// their starts spread over `spread` as real clients arrive. Streams still running at
/// `deadline` count as failed.
pub async fn streams(
    t: &Target,
    warm: &Target,
    concurrency: usize,
    spread: Duration,
    deadline: Instant,
) -> Vec<StreamSample> {
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let (t, warm, ready) = (t.clone(), warm.clone(), ready.clone());
        let offset = spread.mul_f64(i as f64 / concurrency.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            let conn = match Conn::open(t.addr).await {
                Ok(mut c) => c.call(&warm).await.map(|_| c),
                Err(e) => Err(e),
            };
            ready.wait().await;
            tokio::time::sleep(offset).await;
            match conn {
                Ok(mut c) => c.stream(&t, deadline).await,
                Err(e) => StreamSample {
                    error: Some(format!("warm-up: {e}")),
                    ..Default::default()
                },
            }
        }));
    }
    let mut out = Vec::with_capacity(concurrency);
    for task in tasks {
        out.push(task.await.unwrap_or_else(|e| StreamSample {
            error: Some(format!("client task failed: {e}")),
            ..Default::default()
        }));
    }
    out
}

/// A plain GET (status JSON, health checks). `None` when nothing answers within `limit`.
pub async fn get(addr: SocketAddr, path: &str, limit: Duration) -> Option<(u16, Bytes)> {
    let fut = async {
        let mut conn = Conn::open(addr).await.ok()?;
        conn.send.ready().await.ok()?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, conn.host.as_str())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let resp = conn.send.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(limit, fut).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_per_framing() {
        assert_eq!(
            count_events(b"data: {}\n\ndata: [DONE]\n\n", Framing::Sse),
            2
        );
        assert_eq!(count_events(b"{}\n{}\n", Framing::Ndjson), 2);
        assert!(is_complete(b"...data: [DONE]\n\n", Framing::Sse));
        assert!(is_complete(b"{\"done\":true}\n", Framing::Ndjson));
        assert!(!is_complete(b"{\"done\":false}\n", Framing::Ndjson));
    }
}
