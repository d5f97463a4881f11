//! Hangs: a server that accepts connections and never answers. The supervisor must see it
//! (3 failed probes) and restart it; a request caught by a hung upstream must get a fallback
//! or a clean error within its budget (`timeoutSeconds`), also when the upstream stalls after
//! its first token.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cloud::FakeCloud;
use crate::common::TestEnv;
use crate::support::*;

#[test]
fn a_hung_owned_ollama_is_detected_and_restarted() {
    let mut env = TestEnv::new();
    let p = ollama_provider(&env, None);
    write_config(&mut env, &[p], "ollama/llama3.2:3b", &[], "");
    let d = env.start();
    let st = d.wait_until("owned Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running" && s["ollama"]["management"] == "owned"
    });
    let hung_pid = st["ollama"]["pid"].as_u64().unwrap() as u32;

    let hung_at = Instant::now();
    env.write_control(&json!({"hang": true}));
    let st = d.wait_until("the hang detected", Duration::from_secs(60), |s| {
        s["ollama"]["last_restart_reason"]
            .as_str()
            .is_some_and(|r| r.contains("hung"))
    });
    let detected = hung_at.elapsed();
    assert!(
        st["ollama"]["restarts"].as_u64().unwrap_or(0) <= 1,
        "{st:#}"
    );
    // The replacement must be able to answer: the fault is over.
    env.write_control(&json!({}));
    let st = d.wait_until("a new Ollama running", Duration::from_secs(60), |s| {
        s["ollama"]["state"] == "running"
            && s["ollama"]["pid"]
                .as_u64()
                .is_some_and(|p| p as u32 != hung_pid)
    });
    let recovered = hung_at.elapsed();
    assert_eq!(st["ollama"]["restarts"], 1);
    assert!(
        live_in_session_or_group(hung_pid).is_empty(),
        "the hung server's processes must be gone"
    );
    let resp = d.chat(&chat("ollama/llama3.2:3b", false), &[]);
    assert_eq!(resp.status(), 200);
    figure("hang.detected_s", format!("{:.2}", detected.as_secs_f64()));
    figure(
        "hang.recovered_s",
        format!("{:.2}", recovered.as_secs_f64()),
    );
}

#[test]
fn a_request_caught_by_a_hung_upstream_falls_back_or_fails_cleanly_within_its_budget() {
    const BUDGET_SECS: u64 = 2;
    // Generous slack: only "bounded by the budget, not by the client's patience" is checked.
    let bound = Duration::from_secs(BUDGET_SECS + 10);
    let mut env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    let stuck = ExtraDouble::start(env.home.path(), "stuck", &json!({"hang": true}));
    let stall = ExtraDouble::start(
        env.home.path(),
        "stall",
        &json!({"token_delay_ms": 600000, "reply_tokens": ["first", " never"]}),
    );
    let cloud = FakeCloud::openai(CLOUD_KEY);
    let stalling_cloud = StallingSse::start(Duration::from_secs(60));
    let providers = [
        ollama_provider_at("stuck", stuck.port, Some(BUDGET_SECS)),
        ollama_provider_at("stall", stall.port, Some(BUDGET_SECS)),
        openai_provider("cloud", &cloud.base()),
        openai_provider("stallcloud", &stalling_cloud.base()).replace(
            "api: 'openai-completions'",
            &format!("api: 'openai-completions', timeoutSeconds: {BUDGET_SECS}"),
        ),
    ];
    write_config(&mut env, &providers, "stuck/llama3.2:3b", &["cloud/m1"], "");
    let d = env.start();
    d.wait_until("cloud available", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["ref"] == "cloud/m1" && m["available"] == true)
        })
    });

    // Non-streaming: the hung primary times out, the fallback answers.
    let t = Instant::now();
    let resp = d.chat(&chat("stuck/llama3.2:3b", false), &[]);
    let fallback_plain = t.elapsed();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "cloud/m1");
    assert_eq!(resp.headers()["x-openclawd-fallback"], "true");
    assert!(fallback_plain < bound, "took {fallback_plain:?}");

    // Streaming: the same, before any byte reached the client.
    let t = Instant::now();
    let resp = d.chat(&chat("stuck/gpt-oss:20b", true), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "cloud/m1");
    let body = resp.text().unwrap();
    let fallback_stream = t.elapsed();
    assert_eq!(stream_end(&body), StreamEnd::Done, "{body}");
    assert!(fallback_stream < bound, "took {fallback_stream:?}");

    // Pinned to the hung model: a clean 502 naming the timeout.
    let t = Instant::now();
    let resp = d.chat(
        &chat("stuck/qwen3-coder:latest", false),
        &[("x-openclawd-no-fallback", "1")],
    );
    let pinned = t.elapsed();
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(is_openai_error(&text), "{text}");
    assert!(text.contains("timeout"), "{text}");
    assert!(pinned < bound, "took {pinned:?}");

    // Stalled after the first token: the stream ends with an error event, no hang.
    let t = Instant::now();
    let resp = d.chat(&chat("stall/llama3.2:3b", true), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], "stall/llama3.2:3b");
    let body = resp.text().unwrap();
    let stalled = t.elapsed();
    match stream_end(&body) {
        StreamEnd::Error(_) => {}
        other => panic!("a stalled stream must end with an error event, got {other:?}: {body}"),
    }
    assert!(
        body.contains("first"),
        "the first token was relayed: {body}"
    );
    assert!(stalled < bound, "took {stalled:?}");

    // The same through the OpenAI pass-through.
    let t = Instant::now();
    let resp = d.chat(&chat("stallcloud/m1", true), &[]);
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    let stalled_cloud = t.elapsed();
    assert!(matches!(stream_end(&body), StreamEnd::Error(_)), "{body}");
    assert!(body.contains("first"), "{body}");
    assert!(stalled_cloud < bound, "took {stalled_cloud:?}");

    // A stalled non-streaming answer is bounded too.
    let t = Instant::now();
    let resp = d.chat(
        &chat("stall/gpt-oss:20b", false),
        &[("x-openclawd-no-fallback", "1")],
    );
    let stalled_plain = t.elapsed();
    assert_eq!(resp.status(), 502);
    assert!(is_openai_error(&resp.text().unwrap()));
    assert!(stalled_plain < bound, "took {stalled_plain:?}");

    let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
    figure("hang.request.fallback_plain_s", secs(fallback_plain));
    figure("hang.request.fallback_stream_s", secs(fallback_stream));
    figure("hang.request.pinned_502_s", secs(pinned));
    figure("hang.request.midstream_stall_error_s", secs(stalled));
    figure("hang.request.stalled_plain_502_s", secs(stalled_plain));
    figure(
        "hang.request.passthrough_stall_error_s",
        secs(stalled_cloud),
    );
}
