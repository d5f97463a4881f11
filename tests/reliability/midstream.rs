//! Mid-stream death: the owned Ollama is SIGKILLed while 20 streams are open. Every client
//! stream ends with an SSE error event (no hang, no truncation dressed up as success), and new
//! requests are answered once the supervisor has restarted it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::common::TestEnv;
use crate::support::*;

const STREAMS: usize = 20;

#[test]
fn ollama_killed_under_twenty_open_streams_ends_each_with_an_error_event_and_recovers() {
    let mut env = TestEnv::new();
    // 200 tokens 50 ms apart: each stream would last 10 s.
    let tokens: Vec<String> = (0..200).map(|i| format!("t{i} ")).collect();
    env.write_control(&json!({"token_delay_ms": 50, "reply_tokens": tokens}));
    let p = ollama_provider(&env, None);
    write_config(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    let st = d.wait_until("owned Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running" && s["ollama"]["management"] == "owned"
    });
    let pid = st["ollama"]["pid"].as_u64().unwrap() as u32;

    // Open every stream and wait until each has its first event.
    let (opened_tx, opened_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    for i in 0..STREAMS {
        let base = d.base.clone();
        let opened = opened_tx.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let mut s = OpenStream::open(&base, &chat("ollama/llama3.2:3b", true));
            s.first_event();
            let _ = opened.send(i);
            let (body, cut) = s.finish();
            let _ = done.send((i, body, cut, Instant::now()));
        });
    }
    for _ in 0..STREAMS {
        opened_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every stream opens");
    }
    let killed_at = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();

    let mut slowest = Duration::ZERO;
    for _ in 0..STREAMS {
        let (i, body, cut, ended) = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a stream hung after Ollama died");
        slowest = slowest.max(ended - killed_at);
        match stream_end(&body) {
            StreamEnd::Error(msg) => assert!(!msg.is_empty()),
            other => panic!("stream {i} ended {other:?} (cut: {cut}):\n{body}"),
        }
        assert!(!body.contains("[DONE]"), "stream {i} claimed success");
    }

    // During the outage a request is refused cleanly (or already served by the new server).
    let resp = d.chat(
        &chat("ollama/llama3.2:3b", false),
        &[("x-openclawd-no-fallback", "1")],
    );
    let code = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert!(
        code == 200 || (code == 502 && is_openai_error(&text)),
        "HTTP {code}: {text}"
    );

    d.wait_until("a new Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
            && s["ollama"]["pid"].as_u64().is_some_and(|p| p as u32 != pid)
    });
    let recovered = killed_at.elapsed();
    env.write_control(&json!({}));
    for stream in [false, true] {
        let resp = d.chat(&chat("ollama/llama3.2:3b", stream), &[]);
        assert_eq!(resp.status(), 200);
        let body = resp.text().unwrap();
        if stream {
            assert_eq!(stream_end(&body), StreamEnd::Done, "{body}");
        }
    }
    figure(
        "midstream.all_20_error_events_within_s",
        format!("{:.2}", slowest.as_secs_f64()),
    );
    figure(
        "midstream.recovered_s",
        format!("{:.2}", recovered.as_secs_f64()),
    );
}
