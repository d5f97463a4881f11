//! Reload storm: 100 rewrites of openclaw.json alternating valid and invalid while requests
//! flow. No request fails, every invalid file is reported (file:line) while the last good
//! config stays in force, and after the storm the last valid config is the one in force.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::TestEnv;
use crate::support::*;

const REWRITES: usize = 100;
/// The first rewrites wait until the daemon acted on each one; the rest come back to back.
const ACKNOWLEDGED: usize = 40;

/// Rewrite `i`: odd ones are valid (so the last, 99, is), even ones are broken on line `i + 1`.
fn rewrite(env: &TestEnv, provider: &str, i: usize) {
    if i % 2 == 1 {
        env.write_config(&valid_config(provider, i));
    } else {
        env.write_config(&format!(
            "{}{{ agents: {{ defaults: {{ model: 'ollama/llama3.2:3b' }} }}, }} }}",
            "\n".repeat(i)
        ));
    }
}

fn primary_of(i: usize) -> &'static str {
    if i % 4 == 1 {
        "ollama/gpt-oss:20b"
    } else {
        "ollama/llama3.2:3b"
    }
}

fn valid_config(provider: &str, i: usize) -> String {
    let primary = primary_of(i);
    config_text(
        &[provider.to_string()],
        primary,
        &[],
        &format!("'{primary}': {{ alias: 'storm-{i}' }}"),
    )
}

#[test]
fn a_hundred_config_rewrites_under_load_fail_no_request_and_leave_the_last_valid_config() {
    let mut env = TestEnv::new();
    let provider = ollama_provider(&env, None);
    write_config(
        &mut env,
        std::slice::from_ref(&provider),
        "ollama/llama3.2:3b",
        &[],
        "",
    );
    env.extra_env
        .push(("OLLAMA_DOUBLE_LOG".into(), "/dev/null".into()));
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });

    // Requests flow for the whole storm.
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new(LoadResult::default()));
    let loader = {
        let (stop, totals, base) = (stop.clone(), totals.clone(), d.base.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            let client = async_client(16);
            while !stop.load(Ordering::Relaxed) {
                let r = rt.block_on(load(&client, &base, "default", 64, false, 16));
                let mut t = totals.lock().unwrap();
                t.ok += r.ok;
                t.errors += r.errors;
                t.elapsed += r.elapsed;
                for s in r.samples {
                    if t.samples.len() < 5 {
                        t.samples.push(s);
                    }
                }
            }
        })
    };

    let started = Instant::now();
    let mut generation = d.status().unwrap()["config"]["generation"]
        .as_u64()
        .unwrap();
    for i in 0..ACKNOWLEDGED {
        rewrite(&env, &provider, i);
        if i % 2 == 1 {
            generation += 1;
            let primary = primary_of(i);
            d.wait_until(
                &format!("rewrite {i} applied"),
                Duration::from_secs(20),
                |s| {
                    s["config"]["generation"] == generation
                        && s["config"]["error"].is_null()
                        && s["routing"]["primary"] == primary
                },
            );
        } else {
            let at = format!("openclaw.json:{}:", i + 1);
            let st = d.wait_until(
                &format!("rewrite {i} reported"),
                Duration::from_secs(20),
                |s| {
                    s["config"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains(&at))
                },
            );
            assert_eq!(
                st["config"]["generation"], generation,
                "a broken file was applied"
            );
        }
    }
    for i in ACKNOWLEDGED..REWRITES {
        rewrite(&env, &provider, i);
        std::thread::sleep(Duration::from_millis((i as u64 * 7) % 30));
    }
    let last = REWRITES - 1;
    let alias = format!("storm-{last}");
    let model_ids = || -> Vec<String> {
        d.get("/v1/models")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| {
                v["data"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|m| m["id"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    };
    wait_for(
        Duration::from_secs(20),
        "the last valid config in force",
        || model_ids().contains(&alias),
    );
    let st = d.status().unwrap();
    assert!(st["config"]["error"].is_null(), "{st:#}");
    assert_eq!(st["routing"]["primary"], primary_of(last));
    assert!(st["config"]["generation"].as_u64().unwrap() > generation);
    let storm = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();

    // Only the last valid rewrite's alias is left, and it routes.
    let ids = model_ids();
    let aliases: Vec<&String> = ids.iter().filter(|m| m.starts_with("storm-")).collect();
    assert_eq!(aliases, vec![&alias], "{ids:?}");
    let resp = d.chat(&chat(&alias, false), &[]);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-openclawd-model"], primary_of(last));

    let totals = totals.lock().unwrap().clone();
    assert!(totals.ok > 0);
    assert_eq!(
        totals.errors,
        0,
        "{} of {} requests failed during the storm: {:?}",
        totals.errors,
        totals.ok + totals.errors,
        totals.samples
    );
    let log = d.log_text();
    let reported = log.matches("config not reloaded").count();
    let reloaded = log.matches("configuration reloaded").count();
    assert!(reported >= ACKNOWLEDGED / 2, "{reported} errors logged");
    figure(
        "reload.storm",
        format!(
            "{REWRITES} rewrites in {:.1} s, {} requests, 0 failed; {reloaded} reloads applied, {reported} invalid files reported; final generation {}",
            storm.as_secs_f64(),
            totals.ok,
            st["config"]["generation"]
        ),
    );
}
