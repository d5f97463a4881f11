//! Shutdown: SIGTERM with streams in flight drains them (they finish, then exit 0); a second
//! SIGTERM ends them at once; the 10 s grace expiring ends them too, still with exit 0. The
//! owned Ollama is stopped with its runner every time.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{Daemon, TestEnv};
use crate::support::*;

/// A daemon whose Ollama streams `tokens` tokens `delay_ms` apart.
fn daemon_streaming(tokens: usize, delay_ms: u64) -> (TestEnv, Daemon, u32) {
    let mut env = TestEnv::new();
    let reply: Vec<String> = (0..tokens).map(|i| format!("t{i} ")).collect();
    env.write_control(&json!({"token_delay_ms": delay_ms, "reply_tokens": reply}));
    let p = ollama_provider(&env, None);
    write_config(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    let st = d.wait_until("owned Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running" && s["ollama"]["management"] == "owned"
    });
    let ollama = st["ollama"]["pid"].as_u64().unwrap() as u32;
    (env, d, ollama)
}

/// Opens `n` streams; returns once each has its first event. Their ends arrive on the channel.
fn open_streams(d: &Daemon, n: usize) -> mpsc::Receiver<(String, bool)> {
    let (opened_tx, opened_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..n {
        let base = d.base.clone();
        let (opened, done) = (opened_tx.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut s = OpenStream::open(&base, &chat("default", true));
            s.first_event();
            let _ = opened.send(());
            let _ = done.send(s.finish());
        });
    }
    for _ in 0..n {
        opened_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the stream opens");
    }
    done_rx
}

/// A stream ended early must look ended early: an error event, or a body the client could
/// not read to its end (no final chunk), never a clean end without `[DONE]`.
fn assert_cut_visibly(body: &str, cut: bool) {
    match stream_end(body) {
        StreamEnd::Done => panic!("a cut stream claimed success:\n{body}"),
        StreamEnd::Error(_) => {}
        StreamEnd::Truncated => assert!(cut, "silently truncated:\n{body}"),
    }
}

fn assert_ollama_stopped(ollama: u32) {
    wait_for(Duration::from_secs(15), "the owned Ollama stopped", || {
        live_in_session_or_group(ollama).is_empty()
    });
}

#[test]
fn sigterm_lets_streams_in_flight_finish_then_exits_zero() {
    // 40 tokens 50 ms apart: 2 s per stream, well inside the 10 s grace.
    let (env, mut d, ollama) = daemon_streaming(40, 50);
    let ends = open_streams(&d, 5);
    let signalled = Instant::now();
    d.signal(Signal::SIGTERM);
    // No new connection is taken once draining (the listener is closed).
    wait_for(Duration::from_secs(10), "the listener closed", || {
        std::net::TcpStream::connect(("127.0.0.1", env.gateway_port)).is_err()
    });
    for _ in 0..5 {
        let (body, cut) = ends
            .recv_timeout(Duration::from_secs(30))
            .expect("a drained stream ended");
        assert_eq!(stream_end(&body), StreamEnd::Done, "cut: {cut}\n{body}");
        assert!(body.contains("t39 "), "the stream finished whole");
    }
    let status = d.wait_exit(Duration::from_secs(30));
    let exited = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    assert!(!env.state.join("openclawd/openclawd.pid").exists());
    assert_ollama_stopped(ollama);
    figure(
        "shutdown.drain_exit_s",
        format!("{:.2}", exited.as_secs_f64()),
    );
}

#[test]
fn a_second_sigterm_ends_streams_in_flight_at_once() {
    // 60 s streams: only a cut ends them early.
    let (env, mut d, ollama) = daemon_streaming(600, 100);
    let ends = open_streams(&d, 3);
    d.signal(Signal::SIGTERM);
    // The first signal was taken (draining: the listener is closed, the streams still flow).
    wait_for(Duration::from_secs(10), "the listener closed", || {
        std::net::TcpStream::connect(("127.0.0.1", env.gateway_port)).is_err()
    });
    assert!(
        ends.try_recv().is_err(),
        "a stream ended on the first SIGTERM"
    );
    let second = Instant::now();
    d.signal(Signal::SIGTERM);
    for _ in 0..3 {
        let (body, cut) = ends
            .recv_timeout(Duration::from_secs(30))
            .expect("a stream hung after the second SIGTERM");
        assert_cut_visibly(&body, cut);
    }
    let status = d.wait_exit(Duration::from_secs(30));
    let exited = second.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    // Well before the 10 s grace (and the streams' own 60 s) would have ended them.
    assert!(exited < Duration::from_secs(9), "took {exited:?}");
    assert_ollama_stopped(ollama);
    figure(
        "shutdown.second_sigterm_exit_s",
        format!("{:.2}", exited.as_secs_f64()),
    );
}

#[test]
fn the_grace_time_expiring_ends_streams_and_still_exits_zero() {
    let (_env, mut d, ollama) = daemon_streaming(600, 100);
    let ends = open_streams(&d, 3);
    let signalled = Instant::now();
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(40));
    let exited = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    for _ in 0..3 {
        let (body, cut) = ends
            .recv_timeout(Duration::from_secs(10))
            .expect("a stream outlived the daemon");
        assert_cut_visibly(&body, cut);
        // It kept flowing during the grace: far more than the first token arrived.
        assert!(body.contains("t20 "), "{body}");
    }
    // The grace is 10 s: the daemon waited it out before cutting.
    assert!(exited >= Duration::from_secs(9), "exited after {exited:?}");
    assert_ollama_stopped(ollama);
    figure(
        "shutdown.grace_expired_exit_s",
        format!("{:.2}", exited.as_secs_f64()),
    );
}
