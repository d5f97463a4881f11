//! Discovery and hot reload against the `ollama` double: the catalogue follows the config and
//! the installed models, live.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One catalogue with every case SPEC §4 distinguishes.
fn mixed_catalogue() -> Value {
    json!({
        "tags_shape": "legacy",
        "models": [
            {"name": "gpt-oss:20b"},
            {"name": "qwen3:8b", "family": "qwen3", "capabilities": ["completion", "tools", "thinking"], "context_length": 40960},
            {"name": "coder:7b", "family": "llama", "capabilities": ["completion", "tools"], "context_length": null, "num_ctx_param": 16384},
            {"name": "mystery:1b", "family": "llama", "capabilities": ["completion", "tools"], "context_length": null},
            {"name": "vision:11b", "family": "mllama", "capabilities": ["completion", "tools", "vision"], "context_length": 131072},
            {"name": "chatonly:3b", "family": "llama", "capabilities": ["completion"], "context_length": 8192},
            {"name": "nomic-embed-text:latest", "family": "nomic-bert", "capabilities": ["embedding"], "context_length": 2048}
        ]
    })
}

fn opted_in(env: &mut TestEnv) {
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
}

fn model<'a>(st: &'a Value, r: &str) -> Option<&'a Value> {
    st["models"].as_array()?.iter().find(|m| m["ref"] == r)
}

fn skipped<'a>(st: &'a Value, r: &str) -> Option<&'a Value> {
    st["skipped_models"]
        .as_array()?
        .iter()
        .find(|m| m["ref"] == r)
}

fn discovered(d: &Daemon, r: &str) -> Value {
    d.wait_until(&format!("{r} discovered"), Duration::from_secs(30), |s| {
        model(s, r).is_some_and(|m| m["available"] == true)
    })
}

#[test]
fn every_discovery_rule_against_one_catalogue() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    env.write_control(&mixed_catalogue());
    let d = env.start();
    let st = discovered(&d, "ollama/vision:11b");

    let gpt = model(&st, "ollama/gpt-oss:20b").unwrap();
    assert_eq!(gpt["source"], "discovered");
    assert_eq!(gpt["reasoning"], true, "thinking capability");
    assert_eq!(
        gpt["context_window"], 131072,
        "gptoss.context_length, not the rope key"
    );
    assert_eq!(gpt["max_tokens"], 8192);

    let qwen = model(&st, "ollama/qwen3:8b").unwrap();
    assert_eq!(
        (qwen["reasoning"].clone(), qwen["context_window"].clone()),
        (json!(true), json!(40960))
    );
    let coder = model(&st, "ollama/coder:7b").unwrap();
    assert_eq!(coder["context_window"], 16384, "num_ctx from parameters");
    assert_eq!(coder["reasoning"], false);
    let mystery = model(&st, "ollama/mystery:1b").unwrap();
    assert_eq!(
        mystery["context_window"], 8192,
        "the default when nothing says"
    );
    assert_eq!(model(&st, "ollama/vision:11b").unwrap()["tools"], true);

    let no_tools = skipped(&st, "ollama/chatonly:3b").expect("a no-tools model is skipped");
    assert_eq!(no_tools["reason"], "no tools capability");
    assert!(no_tools["fix"]
        .as_str()
        .unwrap()
        .contains("\"tools\": false"));
    assert!(model(&st, "ollama/chatonly:3b").is_none());
    let embed = skipped(&st, "ollama/nomic-embed-text:latest").expect("embedding model listed");
    assert!(embed["reason"].as_str().unwrap().contains("embedding"));

    // /api/show was asked for each (legacy /api/tags carries no capabilities).
    let shows = env
        .ollama_requests()
        .iter()
        .filter(|r| r["path"] == "/api/show")
        .count();
    assert!(shows >= 7, "{shows} /api/show calls");

    // /v1/models lists the routable catalogue.
    let (_, body) = d.get("/v1/models").unwrap();
    let ids: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"ollama/qwen3:8b".to_string()));
    assert!(!ids.contains(&"ollama/chatonly:3b".to_string()));
}

#[test]
fn require_tools_false_lets_chat_only_models_in_and_new_tags_skip_show() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    let mut cat = mixed_catalogue();
    cat["tags_shape"] = json!("current");
    env.write_control(&cat);
    env.write_own_settings("{ discovery: { requireTools: false } }");
    let d = env.start();
    let st = discovered(&d, "ollama/chatonly:3b");
    assert_eq!(model(&st, "ollama/chatonly:3b").unwrap()["tools"], false);
    assert!(
        skipped(&st, "ollama/nomic-embed-text:latest").is_some(),
        "embeddings stay out"
    );
    // ≥ 0.30 lists capabilities and context in /api/tags: no /api/show needed for those.
    let shows: Vec<Value> = env
        .ollama_requests()
        .into_iter()
        .filter(|r| r["path"] == "/api/show")
        .collect();
    assert!(
        shows
            .iter()
            .all(|r| r["body"]["model"] == "coder:7b" || r["body"]["model"] == "mystery:1b"),
        "only models without a context in /api/tags are shown: {shows:?}"
    );
}

#[test]
fn without_an_opt_in_nothing_is_discovered() {
    let env = TestEnv::new();
    let d = env.start();
    let st = d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    assert_eq!(st["discovery"]["enabled"], false);
    assert_eq!(st["models"], json!([]));
    // Nothing is discovered (no /api/show); one /api/tags per status only counts what is
    // installed and ignored, so status can say why the catalogue is empty (issue 14).
    assert!(
        !env.ollama_requests()
            .iter()
            .any(|r| r["path"] == "/api/show"),
        "no opt-in, no discovery"
    );
    let st = d.status().unwrap();
    assert!(
        st["discovery"]["ignored_installed"]
            .as_array()
            .is_some_and(|names| !names.is_empty()),
        "the installed models are counted as ignored: {st}"
    );
}

#[test]
fn an_ollama_auth_profile_opts_in() {
    let env = TestEnv::new();
    let agent = env.state.join("agents/main/agent");
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::write(
        agent.join("auth-profiles.json"),
        r#"{"version":1,"profiles":{"ollama:default":{"type":"api_key","provider":"ollama","key":"ollama-local"}}}"#,
    )
    .unwrap();
    let d = env.start();
    let st = discovered(&d, "ollama/llama3.2:3b");
    assert_eq!(st["discovery"]["enabled"], true);
}

#[test]
fn explicit_ollama_models_disable_discovery() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', models: [{{ id: 'gpt-oss:20b', name: 'mine', contextWindow: 65536 }}] }} }} }} }}",
        env.ollama_port
    ));
    let d = env.start();
    let st = d.wait_until("explicit model available", Duration::from_secs(30), |s| {
        model(s, "ollama/gpt-oss:20b").is_some_and(|m| m["available"] == true)
    });
    assert_eq!(st["discovery"]["enabled"], false);
    assert_eq!(st["models"].as_array().unwrap().len(), 1);
    assert_eq!(
        model(&st, "ollama/gpt-oss:20b").unwrap()["source"],
        "configured"
    );
    assert_eq!(
        model(&st, "ollama/gpt-oss:20b").unwrap()["context_window"],
        65536
    );
}

#[test]
fn a_pull_and_an_rm_show_up_without_a_restart() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    let models_dir = env.home.path().join("models");
    std::fs::create_dir_all(models_dir.join("manifests")).unwrap();
    env.write_control(&json!({"models": [{"name": "llama3.2:3b"}]}));
    let d = env.start();
    discovered(&d, "ollama/llama3.2:3b");

    // `ollama pull` writes blobs and a manifest under OLLAMA_MODELS.
    env.write_control(&json!({"models": [{"name": "llama3.2:3b"}, {"name": "qwen3:8b", "family": "qwen3", "capabilities": ["completion", "tools", "thinking"]}]}));
    std::fs::write(models_dir.join("manifests/qwen3-8b"), "{}").unwrap();
    discovered(&d, "ollama/qwen3:8b");

    env.write_control(&json!({"models": [{"name": "qwen3:8b", "family": "qwen3", "capabilities": ["completion", "tools", "thinking"]}]}));
    std::fs::remove_file(models_dir.join("manifests/qwen3-8b")).unwrap();
    d.wait_until("llama3.2 removed", Duration::from_secs(30), |s| {
        model(s, "ollama/llama3.2:3b").is_none()
    });
}

#[test]
fn a_failed_discovery_keeps_the_last_good_catalogue_and_says_why() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    env.write_own_settings("{ discovery: { interval: '1s' } }");
    let d = env.start();
    discovered(&d, "ollama/llama3.2:3b");
    env.write_control(&json!({"fail_status": {"status": 500, "paths": ["/api/tags"]}}));
    let st = d.wait_until("discovery error reported", Duration::from_secs(30), |s| {
        s["discovery"]["error"].is_string()
    });
    assert!(st["discovery"]["error"]
        .as_str()
        .unwrap()
        .starts_with("Failed to discover Ollama models"));
    assert!(
        model(&st, "ollama/llama3.2:3b").is_some(),
        "the last good catalogue stays"
    );
    env.write_control(&json!({}));
    d.wait_until("error cleared", Duration::from_secs(30), |s| {
        s["discovery"]["error"].is_null()
    });
}

#[test]
fn a_reload_during_a_stream_of_requests_fails_none_of_them() {
    let mut env = TestEnv::new();
    opted_in(&mut env);
    env.write_config("{ agents: { defaults: { model: 'ollama/llama3.2:3b' } } }");
    let d = env.start();
    discovered(&d, "ollama/llama3.2:3b");
    let base = d.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = r#"{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
                    let (code, text) = http_post(&format!("{base}/v1/chat/completions"), &[], body).unwrap();
                    codes.push((code, text.ends_with("data: [DONE]\n\n")));
                }
                codes
            })
        })
        .collect();
    for i in 0..10 {
        let primary = if i % 2 == 0 {
            "ollama/gpt-oss:20b"
        } else {
            "ollama/llama3.2:3b"
        };
        env.write_config(&format!(
            "{{ agents: {{ defaults: {{ model: '{primary}' }} }} }}"
        ));
        d.wait_until("reloaded", Duration::from_secs(10), |s| {
            s["routing"]["primary"] == primary
        });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<(u16, bool)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(!results.is_empty());
    let failed: Vec<_> = results
        .iter()
        .filter(|(c, done)| *c != 200 || !done)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        results.len()
    );
}
