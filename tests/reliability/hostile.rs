//! Hostile input: malformed, oversized, deeply nested and mistyped bodies, slow-drip headers
//! and bodies, oversized headers, and 10 000 idle connections. Each gets a 4xx with OpenAI's
//! error body (or, for connection-level abuse, is closed), and the daemon keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::sse::sse_data;
use crate::common::{Daemon, TestEnv};
use crate::support::*;

fn hostile_daemon() -> (TestEnv, Daemon) {
    let mut env = TestEnv::new();
    let p = ollama_provider(&env, None);
    write_config(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    (env, d)
}

fn post_raw(port: u16, body: &[u8], extra_headers: &str) -> Option<(u16, String)> {
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request(port, &req, Duration::from_secs(60))
}

/// Still serving: health answers and a real chat goes through.
fn assert_still_serving(d: &Daemon) {
    let (code, _) = d.get("/health").expect("health answers");
    assert_eq!(code, 200);
    let resp = d.chat(&chat("default", false), &[]);
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
}

#[test]
fn malformed_and_deeply_nested_bodies_get_a_400_with_an_openai_error() {
    let (env, d) = hostile_daemon();
    let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let deep_inside = format!(
        "{{\"messages\":[{{\"role\":\"user\",\"content\":{}\"x\"{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("null", b"null".to_vec()),
        ("empty array", b"[]".to_vec()),
        (
            "array",
            b"[{\"role\":\"user\",\"content\":\"hi\"}]".to_vec(),
        ),
        ("string", b"\"hello\"".to_vec()),
        ("number", b"42".to_vec()),
        ("true", b"true".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("truncated", b"{\"model\":".to_vec()),
        ("trailing garbage", b"{\"messages\":[]} xyz".to_vec()),
        ("invalid UTF-8", b"\xff\xfe\xfd".to_vec()),
        (
            "invalid UTF-8 in a string",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xc0\"}]}".to_vec(),
        ),
        (
            "lone surrogate escape",
            br#"{"messages":[{"role":"user","content":"\ud800"}]}"#.to_vec(),
        ),
        ("100 000 nested arrays", deep_arrays.into_bytes()),
        ("100 000 nested objects", deep_objects.into_bytes()),
        (
            "100 000 nested arrays in a message",
            deep_inside.into_bytes(),
        ),
        (
            "number out of range",
            br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}"#.to_vec(),
        ),
        (
            "NUL bytes",
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\0\0".to_vec(),
        ),
    ];
    for (name, body) in &cases {
        let (code, text) = post_raw(env.gateway_port, body, "")
            .unwrap_or_else(|| panic!("{name}: connection closed without an answer"));
        assert!(
            (400..500).contains(&code) && is_openai_error(&text),
            "{name}: HTTP {code}: {text}"
        );
    }
    figure(
        "hostile.malformed_bodies",
        format!("{} cases, each a 4xx with an OpenAI error", cases.len()),
    );
    assert_still_serving(&d);
}

/// Every field of a chat request, set to every wrong JSON type.
#[test]
fn a_wrong_type_in_any_field_is_a_clean_4xx_or_is_tolerated_never_a_5xx() {
    let (env, d) = hostile_daemon();
    let fields = [
        "model",
        "messages",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stream_options",
        "user",
        "logprobs",
        "messages.0",
        "messages.0.role",
        "messages.0.content",
        "messages.0.name",
        "messages.0.tool_calls",
        "messages.0.tool_call_id",
        "messages.0.content.0",
        "messages.0.content.0.type",
        "messages.0.content.0.text",
        "messages.0.content.0.image_url",
        "tools.0",
        "tools.0.function",
        "tools.0.function.name",
        "tools.0.function.parameters",
    ];
    let wrong = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(""),
        json!("x"),
        json!([]),
        json!([null]),
        json!({}),
        json!({"a": {"b": []}}),
    ];
    let base = json!({
        "model": "default",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    });
    let mut tolerated = 0;
    let mut refused = 0;
    let mut bad = Vec::new();
    for field in fields {
        for value in &wrong {
            for stream in [false, true] {
                let mut body = base.clone();
                body["stream"] = json!(stream);
                set_path(&mut body, field, value.clone());
                let text = body.to_string();
                let Some((code, answer)) = post_raw(env.gateway_port, text.as_bytes(), "") else {
                    bad.push(format!("{field}={value} stream={stream}: closed"));
                    continue;
                };
                match code {
                    200 => match tolerated_answer_fault(&answer) {
                        None => tolerated += 1,
                        Some(fault) => bad.push(format!(
                            "{field}={value} stream={stream}: HTTP 200 but {fault}"
                        )),
                    },
                    400..=499 if is_openai_error(&answer) => refused += 1,
                    _ => bad.push(format!(
                        "{field}={value} stream={stream}: HTTP {code}: {answer}"
                    )),
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} bad answers:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // What was tolerated must not have reached Ollama in a shape it refuses: a wrong option
    // type makes real Ollama answer 500 (`option "temperature" must be of type float32`,
    // api/types.go FromMap via handleScheduleError), which the gateway would take for a
    // server failure and cool the model down for every client.
    let refused_by_ollama: Vec<String> = env
        .ollama_requests()
        .iter()
        .filter(|r| r["path"] == "/api/chat")
        .filter_map(|r| ollama_option_error(&r["body"]["options"]))
        .collect();
    assert!(
        refused_by_ollama.is_empty(),
        "{} requests reached Ollama with options it answers 500 to, e.g. {:?}",
        refused_by_ollama.len(),
        &refused_by_ollama[..refused_by_ollama.len().min(5)]
    );
    figure(
        "hostile.wrong_types",
        format!("{} requests: {refused} refused with an OpenAI 4xx, {tolerated} tolerated (200), 0 other", refused + tolerated),
    );
    // No client mistake put the model in cooldown for everyone else.
    assert_still_serving(&d);
    let st = d.status().unwrap();
    let cooling: Vec<&Value> = st["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["cooldown_until"].is_null())
        .collect();
    assert!(
        cooling.is_empty(),
        "client errors cooled models down: {cooling:?}"
    );
}

/// What is wrong with a 200 that tolerated a mistyped field, if anything: the answer must be a
/// complete chat completion, or a stream of chunks that ends with `[DONE]`. An error inside a
/// 200 (an SSE error event, an error body) is a server fault the status code hides.
fn tolerated_answer_fault(body: &str) -> Option<String> {
    let events = sse_data(body);
    if events.is_empty() {
        let v: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return Some(format!("a body that is neither SSE nor JSON ({e}): {body}")),
        };
        if v.get("error").is_some() {
            return Some(format!("an error body: {body}"));
        }
        if v["object"] != "chat.completion" || !v["choices"][0]["message"].is_object() {
            return Some(format!("not a chat completion: {body}"));
        }
        return None;
    }
    for e in events.iter().filter(|e| *e != "[DONE]") {
        match serde_json::from_str::<Value>(e) {
            Ok(v) if v.get("error").is_some() => return Some(format!("an SSE error event: {e}")),
            Ok(v) if v["object"] == "chat.completion.chunk" => {}
            _ => return Some(format!("an event that is not a chunk: {e}")),
        }
    }
    match stream_end(body) {
        StreamEnd::Done => None,
        end => Some(format!("a stream that ends {end:?}: {body}")),
    }
}

/// The error real Ollama's `Options.FromMap` gives for these `options`, if any.
fn ollama_option_error(options: &Value) -> Option<String> {
    const FLOATS: &[&str] = &[
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    ];
    const INTS: &[&str] = &[
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
    ];
    let options = options.as_object()?;
    for (key, value) in options {
        if value.is_null() {
            continue;
        }
        let ok = if FLOATS.contains(&key.as_str()) || INTS.contains(&key.as_str()) {
            value.is_number()
        } else if key == "stop" {
            value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
        } else {
            true
        };
        if !ok {
            return Some(format!("option {key:?} = {value}"));
        }
    }
    None
}

/// Sets `value` at a dotted path (`messages.0.content`), creating nothing: a missing parent
/// means the path does not apply and the body is left as is.
fn set_path(body: &mut Value, path: &str, value: Value) {
    let mut at = body;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        let next = match part.parse::<usize>() {
            Ok(idx) => at.get_mut(idx),
            Err(_) => {
                if last {
                    if let Some(obj) = at.as_object_mut() {
                        obj.insert(part.to_string(), value);
                    }
                    return;
                }
                at.get_mut(*part)
            }
        };
        match next {
            Some(n) if last => {
                *n = value;
                return;
            }
            Some(n) => at = n,
            None => return,
        }
    }
}

#[test]
fn a_17_mib_body_is_refused_with_413_announced_or_streamed() {
    let (env, d) = hostile_daemon();
    let mut body = br#"{"messages":[{"role":"user","content":""#.to_vec();
    body.extend(std::iter::repeat(b'a').take(17 << 20));
    body.extend_from_slice(br#""}]}"#);
    // Announced with Content-Length.
    let (code, text) = post_raw(env.gateway_port, &body, "").expect("an answer");
    assert_eq!(code, 413, "{text}");
    assert!(is_openai_error(&text), "{text}");
    // Streamed with chunked encoding, no length announced.
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for piece in body.chunks(1 << 20) {
        req.extend(format!("{:x}\r\n", piece.len()).into_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (code, text) =
        raw_request(env.gateway_port, &req, Duration::from_secs(60)).expect("an answer");
    assert_eq!(code, 413, "{text}");
    assert!(is_openai_error(&text), "{text}");
    assert_still_serving(&d);
}

#[test]
fn oversized_headers_are_refused_or_closed() {
    let (env, d) = hostile_daemon();
    let big = format!("X-Big: {}\r\n", "a".repeat(1 << 20));
    match post_raw(env.gateway_port, b"{}", &big) {
        None => {}
        Some((code, _)) => assert!((400..500).contains(&code), "HTTP {code}"),
    }
    // A 200 KB request target.
    let long_path = format!(
        "GET /v1/models/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    match raw_request(
        env.gateway_port,
        long_path.as_bytes(),
        Duration::from_secs(30),
    ) {
        None => {}
        Some((code, _)) => assert!((400..500).contains(&code), "HTTP {code}"),
    }
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    match post_raw(env.gateway_port, b"{}", &many) {
        None => {}
        Some((code, _)) => assert!((400..500).contains(&code), "HTTP {code}"),
    }
    assert_still_serving(&d);
}

/// Drips `drip` one byte at a time, `gap` apart, until the server answers or closes; returns
/// how long that took and what it answered.
fn drip_until_closed(
    port: u16,
    head: &[u8],
    drip: &[u8],
    gap: Duration,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let start = Instant::now();
    s.write_all(head).unwrap();
    let mut answer = Vec::new();
    for b in drip.iter().cycle() {
        assert!(start.elapsed() < limit, "still open after {limit:?}");
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => return (start.elapsed(), answer),
            Ok(n) => {
                // An answer: read it to the close.
                answer.extend_from_slice(&buf[..n]);
                let took = start.elapsed();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.read_to_end(&mut answer);
                return (took, answer);
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (start.elapsed(), answer),
        }
        if s.write_all(&[*b]).is_err() {
            return (start.elapsed(), answer);
        }
        std::thread::sleep(gap);
    }
    unreachable!()
}

#[test]
fn slow_drip_headers_and_bodies_are_cut_off() {
    let (env, d) = hostile_daemon();
    let port = env.gateway_port;
    let slow_headers = std::thread::spawn(move || {
        drip_until_closed(
            port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            b"X-Slow: a\r\n",
            Duration::from_millis(500),
            Duration::from_secs(40),
        )
    });
    let slow_body = std::thread::spawn(move || {
        drip_until_closed(
            port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
            b" ",
            Duration::from_millis(500),
            Duration::from_secs(90),
        )
    });
    // Served meanwhile.
    assert_still_serving(&d);
    let (headers_cut, _) = slow_headers.join().unwrap();
    let (body_cut, answer) = slow_body.join().unwrap();
    // The dripped body gets a 408 in OpenAI's shape before the close.
    let (code, text) = parse_response(&answer).expect("an answer before the close");
    assert_eq!(code, 408, "{text}");
    assert!(is_openai_error(&text), "{text}");
    assert_still_serving(&d);
    figure(
        "hostile.slowloris_headers_closed_after_s",
        format!("{:.1}", headers_cut.as_secs_f64()),
    );
    figure(
        "hostile.slow_body_408_after_s",
        format!("{:.1}", body_cut.as_secs_f64()),
    );
}

/// Opens up to `n` connections that never send a byte; returns the ones that connected.
async fn open_idle(port: u16, n: usize) -> (Vec<tokio::net::TcpStream>, usize) {
    use futures_util::StreamExt;
    let results: Vec<Option<tokio::net::TcpStream>> = futures_util::stream::iter(0..n)
        .map(|_| async move {
            tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            .ok()
            .and_then(Result::ok)
        })
        .buffer_unordered(512)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_none()).count();
    (results.into_iter().flatten().collect(), failed)
}

/// Waits until the server closed `conn` (EOF or reset); `None` after `limit`.
async fn closed_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), conn.read(&mut buf)).await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// How one idle connection ended.
enum IdleEnd {
    /// The server closed it (header read timeout) while it sat idle.
    Closed,
    /// The kernel's SYN cookies completed it on our side only (the accept queue was full); it
    /// never reached the daemon. Shown by a byte sent on it being refused at once.
    NeverAccepted,
    /// Still open: the daemon holds it.
    Held,
}

async fn idle_end(mut conn: tokio::net::TcpStream) -> IdleEnd {
    use tokio::io::AsyncWriteExt;
    if closed_within(&mut conn, Duration::from_secs(60))
        .await
        .is_some()
    {
        return IdleEnd::Closed;
    }
    // Still open on our side after 60 s: send a byte. A real connection waiting in the
    // accept queue gets accepted and timed out (10 s); a phantom one is reset at once.
    let _ = conn.write_all(b"G").await;
    match closed_within(&mut conn, Duration::from_secs(20)).await {
        Some(_) => IdleEnd::NeverAccepted,
        None => IdleEnd::Held,
    }
}

/// Floods the gateway with 10 000 connections that never send a byte. The daemon holds at
/// most its connection limit, answers a new client, closes every idle one it accepted (its
/// descriptors return to normal while we still hold ours) and keeps serving. With
/// `account_each`, also checks each connection from the client side.
fn idle_flood(account_each: bool) {
    let (env, d) = hostile_daemon();
    let port = env.gateway_port;
    let pid = d.pid() as u32;
    let base_fds = fd_count(pid).unwrap();
    let rt = runtime();
    // The daemon's open descriptors, sampled through the flood.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(fd_count(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let (conns, failed) = rt.block_on(open_idle(port, 10_000));
    let n = conns.len();
    // A new client gets through (at worst once idle ones time out and free their slots).
    let t = Instant::now();
    let (code, _) = crate::common::http_get(&format!("{}/health", d.base))
        .expect("health answers while flooded");
    let health_wait = t.elapsed();
    assert_eq!(code, 200);
    // Every idle connection the daemon accepted, it closes: its descriptors come back down
    // while all of ours are still open.
    let t = Instant::now();
    wait_for(
        Duration::from_secs(90),
        "the daemon's descriptors back to normal",
        || fd_count(pid).is_some_and(|f| f <= base_fds + 16),
    );
    let drained = t.elapsed() + health_wait;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flooded_fds = sampler.join().unwrap();
    // The connection limit (4096) bounds what the daemon holds.
    assert!(
        flooded_fds <= base_fds + 4096 + 16,
        "daemon fds {flooded_fds}"
    );
    let mut detail = String::new();
    if account_each {
        let ends: Vec<IdleEnd> = rt.block_on(async {
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|c| tokio::spawn(idle_end(c)))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let held = ends.iter().filter(|e| matches!(e, IdleEnd::Held)).count();
        let phantom = ends
            .iter()
            .filter(|e| matches!(e, IdleEnd::NeverAccepted))
            .count();
        assert_eq!(
            held, 0,
            "{held} of {n} idle connections are held open by the daemon"
        );
        detail =
            format!(", {phantom} of them completed by SYN cookies only (refused on first byte)");
    } else {
        drop(conns);
    }
    assert_still_serving(&d);
    figure(
        "hostile.idle_connections",
        format!(
            "10000 attempted: {n} connected ({failed} not completed by the kernel within 3 s){detail}; daemon fds {base_fds} → peak {flooded_fds}; /health answered after {:.1} s; every accepted one closed, daemon fds back to normal after {:.1} s",
            health_wait.as_secs_f64(),
            drained.as_secs_f64()
        ),
    );
}

#[test]
fn ten_thousand_idle_connections_are_bounded_and_closed_and_the_daemon_keeps_serving() {
    idle_flood(false);
}

#[test]
#[ignore = "long: follows each of the 10 000 connections to its end (~90 s)"]
fn ten_thousand_idle_connections_each_end_closed_or_never_reach_the_daemon() {
    idle_flood(true);
}

/// A broken upstream (a wrong `baseUrl`, a proxy gone mad) that streams an endless line: the
/// gateway must not buffer it without bound while it waits for the line to end.
#[test]
fn an_upstream_streaming_an_endless_line_does_not_grow_the_daemon_without_bound() {
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let runaway = RunawayUpstream::start(
        "application/x-ndjson",
        b"{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"",
        Duration::from_secs(60),
    );
    // 20 s budget: with the 300 s default of a local Ollama the daemon was OOM-killed first.
    let providers = [ollama_provider_at("runaway", runaway.port, Some(20))];
    write_config(&mut env, &providers, "runaway/llama3.2:3b", &[], "");
    let d = env.start();
    let pid = d.pid() as u32;
    let before = rss_kib(pid).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let t = Instant::now();
    let mut outcomes = Vec::new();
    // One model per mode: a failed attempt puts its model in cooldown.
    for (model, stream) in [
        ("runaway/llama3.2:3b", true),
        ("runaway/gpt-oss:20b", false),
    ] {
        let resp = d.chat(&chat(model, stream), &[("x-openclawd-no-fallback", "1")]);
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        // Refused as a failed attempt (well before the 20 s budget would have ended it).
        assert_eq!(code, 502, "stream={stream}: {text}");
        assert!(
            is_openai_error(&text) && text.contains("MiB"),
            "stream={stream}: {text}"
        );
        outcomes.push(format!("stream={stream}: HTTP {code}"));
    }
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    figure(
        "hostile.runaway_upstream",
        format!(
            "RSS {before} KiB → peak {peak} KiB in {:.1} s; {outcomes:?}",
            took.as_secs_f64()
        ),
    );
    assert!(
        peak < before + 256 * 1024,
        "the daemon grew from {before} KiB to {peak} KiB buffering an endless upstream line"
    );
    assert_still_serving_health(&d);
}

fn assert_still_serving_health(d: &Daemon) {
    assert_eq!(d.get("/health").expect("health answers").0, 200);
}
