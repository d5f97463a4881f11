//! Figures for the closing notes, not assertions: run with
//! `cargo test --release --test measure -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().unwrap())
}

#[test]
#[ignore]
fn measure_config_edit_to_routing_visible() {
    let env = TestEnv::new();
    env.write_config("{ agents: { defaults: { model: 'ollama/a0' } } }");
    let d = env.start();
    d.wait_until("first", Duration::from_secs(10), |s| {
        s["routing"]["primary"] == "ollama/a0"
    });
    let mut times = Vec::new();
    for i in 1..=20 {
        let primary = format!("ollama/a{i}");
        let t = Instant::now();
        env.write_config(&format!(
            "{{ agents: {{ defaults: {{ model: '{primary}' }} }} }}"
        ));
        loop {
            if d.status()
                .is_some_and(|s| s["routing"]["primary"] == primary.as_str())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        times.push(t.elapsed());
    }
    let (med, max) = median_max(times);
    println!("config edit -> routing visible (20 edits): median {med:?}, max {max:?}");
}

#[test]
#[ignore]
fn measure_discovery_of_200_models_and_pull_to_routable() {
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OLLAMA_API_KEY".into(), "ollama-local".into()));
    let models_dir = env.home.path().join("models");
    std::fs::create_dir_all(&models_dir).unwrap();
    env.write_control(&json!({"models": [{"name": "llama3.2:3b"}], "tags_shape": "legacy"}));
    let d = env.start();
    d.wait_until("one model", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|m| m.len() == 1)
    });

    let many: Vec<Value> = (0..200)
        .map(|i| json!({"name": format!("m{i}:7b"), "family": "llama", "capabilities": ["completion", "tools"], "context_length": 32768}))
        .collect();
    let t = Instant::now();
    env.write_control(&json!({"models": many, "tags_shape": "legacy"}));
    std::fs::write(models_dir.join("touch"), "x").unwrap();
    d.wait_until("200 models", Duration::from_secs(60), |s| {
        s["models"].as_array().is_some_and(|m| m.len() == 200)
    });
    println!(
        "discovery of a 200-model catalogue (legacy tags: 200 /api/show): {:?}",
        t.elapsed()
    );

    let mut times = Vec::new();
    let mut names: Vec<Value> = vec![json!({"name": "llama3.2:3b"})];
    for i in 0..10 {
        names.push(json!({"name": format!("pulled{i}:1b"), "family": "llama", "capabilities": ["completion", "tools"]}));
        let r = format!("ollama/pulled{i}:1b");
        let t = Instant::now();
        env.write_control(&json!({"models": names, "tags_shape": "legacy"}));
        std::fs::write(models_dir.join(format!("manifest{i}")), "x").unwrap();
        loop {
            if d.status().is_some_and(|s| {
                s["models"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["ref"] == r.as_str()))
            }) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        times.push(t.elapsed());
    }
    let (med, max) = median_max(times);
    println!("pull -> model routable (10 pulls): median {med:?}, max {max:?}");
}

#[test]
#[ignore]
fn measure_added_latency_c1_non_streaming() {
    let env = TestEnv::new();
    // The double answers at once: what remains is HTTP and the gateway.
    env.write_control(
        &json!({"token_delay_ms": 0, "first_token_delay_ms": 0, "load_duration_ms": 0}),
    );
    env.write_config(&format!(
        "{{ models: {{ providers: {{ local: {{ baseUrl: 'http://127.0.0.1:{}/v1', api: 'openai-completions', apiKey: 'x', models: [{{ id: 'llama3.2:3b', name: 'l' }}] }} }} }}, agents: {{ defaults: {{ model: 'local/llama3.2:3b' }} }} }}",
        env.ollama_port
    ));
    let d = env.start();
    d.wait_until("ollama up", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let body = json!({"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]});
    let direct = format!("{}/v1/chat/completions", env.ollama_base());
    let via = format!("{}/v1/chat/completions", d.base);
    let time = |url: &str| {
        let t = Instant::now();
        let r = client.post(url).json(&body).send().unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().unwrap();
        t.elapsed()
    };
    for _ in 0..50 {
        time(&direct);
        time(&via);
    }
    let (mut dv, mut vv) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        dv.push(time(&direct));
        vv.push(time(&via));
    }
    dv.sort();
    vv.sort();
    let p = |v: &Vec<Duration>, q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    println!(
        "c=1, 1000 requests, pass-through to the double's /v1: direct p50 {:?} p99 {:?}; via openclawd p50 {:?} p99 {:?}; added p50 {:?} p99 {:?}",
        p(&dv, 0.5), p(&dv, 0.99), p(&vv, 0.5), p(&vv, 0.99),
        p(&vv, 0.5).saturating_sub(p(&dv, 0.5)), p(&vv, 0.99).saturating_sub(p(&dv, 0.99))
    );
}
