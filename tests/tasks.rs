//! The task tree: a lost task is never silent. A restartable task that panics is logged by name
//! and started again (the catalogue keeps following Ollama); a task the daemon cannot work
//! without ends → the daemon stops with a non-zero exit, naming it, so its service manager
//! restarts it. Faults come from the debug-build hook `OPENCLAWD_TEST_FAULT`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn model_listed(st: &serde_json::Value, r: &str) -> bool {
    st["models"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["ref"] == r && m["available"] == true))
}

#[test]
fn a_panicking_discovery_task_is_restarted_and_the_catalogue_keeps_refreshing() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    env.extra_env
        .push(("OPENCLAWD_TEST_FAULT".into(), "discovery=panic".into()));
    env.write_own_settings("{ discovery: { interval: '1s' } }");
    env.write_control(&json!({"models": [{"name": "llama3.2:3b"}]}));
    let d = env.start();

    wait_for(Duration::from_secs(10), "the panic logged by name", || {
        d.log_text()
            .contains("task discovery panicked: injected fault")
    });
    assert!(
        d.log_text().contains("restarting it in"),
        "{}",
        d.log_text()
    );
    d.wait_until(
        "discovered after the restart",
        Duration::from_secs(30),
        |s| model_listed(s, "ollama/llama3.2:3b"),
    );

    // A model pulled later still shows up: the restarted task is the one refreshing.
    env.write_control(&json!({"models": [
        {"name": "llama3.2:3b"},
        {"name": "qwen3:8b", "family": "qwen3", "capabilities": ["completion", "tools"]}
    ]}));
    d.wait_until("the new model discovered", Duration::from_secs(30), |s| {
        model_listed(s, "ollama/qwen3:8b")
    });
    assert_eq!(
        d.log_text().matches("task discovery panicked").count(),
        1,
        "restarted once, then healthy"
    );
}

#[test]
fn losing_the_gateway_task_stops_the_daemon_with_a_non_zero_exit_naming_it() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OPENCLAWD_TEST_FAULT".into(), "gateway=end".into()));
    let mut d = env.spawn_with(&["run"]);
    let started = Instant::now();
    let status = d.wait_exit(Duration::from_secs(15));
    // The fault fires 300 ms after the start; the stop itself must not wait for a drain.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exited after {:?}\n{}",
        started.elapsed(),
        d.log_text()
    );
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("task gateway ended"), "{log}");
    assert!(log.contains("stops (exit 1)"), "{log}");
}
