//! Config diagnostics end to end (SPEC §2, issue 14): a typo in a section openclawd reads and a
//! syntax error each show in `/status` with file:line:col and words a person uses; a bad
//! `gateway.holdForOllama` is a config error naming the key.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn warnings(st: &Value) -> Vec<String> {
    st["config"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_typo_shows_in_status_with_its_place_and_goes_when_fixed() {
    let env = TestEnv::new();
    env.write_config(
        "{\n  agents: {\n    defaults: {\n      modle: 'ollama/gpt-oss:20b',\n    },\n  },\n}\n",
    );
    let d = env.start();
    let expected = format!(
        "{}:4:7: unknown key \"agents.defaults.modle\" — did you mean \"model\"?",
        env.config_path().display()
    );
    let st = d.wait_until("the typo warning", Duration::from_secs(10), |s| {
        !warnings(s).is_empty()
    });
    assert_eq!(warnings(&st), vec![expected.clone()]);
    assert!(st["config"]["error"].is_null(), "a typo is a warning: {st}");
    assert_eq!(
        d.log_text().matches(&expected).count(),
        1,
        "logged once:\n{}",
        d.log_text()
    );

    env.write_config(
        "{\n  agents: {\n    defaults: {\n      model: 'ollama/gpt-oss:20b',\n    },\n  },\n}\n",
    );
    let st = d.wait_until("the typo fixed", Duration::from_secs(10), |s| {
        s["config"]["generation"].as_u64() >= Some(2)
    });
    assert_eq!(warnings(&st), Vec::<String>::new());
    assert_eq!(st["routing"]["primary"], "ollama/gpt-oss:20b");
}

#[test]
fn syntax_errors_name_the_line_in_words_at_start_and_on_reload() {
    let env = TestEnv::new();
    let file = env.config_path().display().to_string();
    // A missing comma at start: degraded, the error says where the comma belongs.
    env.write_config("{\n  gateway: {\n    mode: 'local'\n    bind: 'loopback',\n  },\n}\n");
    let d = env.start();
    let error = |s: &Value| s["config"]["error"].as_str().unwrap_or("").to_string();
    let st = d.wait_until("config error", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    assert!(
        error(&st).starts_with(&format!(
            "{file}:3:18: missing \",\" after the value on line 3."
        )),
        "{st}"
    );

    // Each broken edit replaces the error with its own place and words.
    let cases = [
        (
            "{\n  gateway: { mode: 'local' }},\n  agents: {},\n}\n",
            format!("{file}:2:29: unexpected \"}}\""),
        ),
        (
            "{\n  gateway: {\n    mode: \"local,\n  },\n}\n",
            format!("{file}:3:11: unterminated string starting on line 3"),
        ),
        (
            "{\n  gateway: { mode: local },\n}\n",
            format!("{file}:2:20: unquoted text \"local\""),
        ),
        (
            "{\n  gateway: {},\n}\n}\n",
            format!("{file}:4:1: unexpected \"}}\" after the end of the document"),
        ),
    ];
    for (text, want) in cases {
        env.write_config(text);
        let st = d.wait_until(&want, Duration::from_secs(10), |s| {
            error(s).starts_with(&want)
        });
        let got = error(&st);
        let without_unexpected = got.replace("unexpected", "");
        for internal in ["expected", "EOI", "-->"] {
            assert!(
                !without_unexpected.contains(internal),
                "parser words: {got}"
            );
        }
    }

    env.write_config("{\n  gateway: { mode: 'local' },\n}\n");
    d.wait_until("the fix clears the error", Duration::from_secs(10), |s| {
        s["config"]["error"].is_null()
    });
}

#[test]
fn a_hold_for_ollama_that_is_not_a_duration_is_a_config_error_naming_the_key() {
    let env = TestEnv::new();
    env.write_own_settings("{\n  gateway: {\n    holdForOllama: 'abc',\n  },\n}\n");
    let d = env.start();
    let st = d.wait_until("config error", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let own = env.state.join("openclawd/openclawd.json");
    let err = st["config"]["error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "{}:3:5: gateway.holdForOllama: expected a duration such as \"30s\"",
            own.display()
        )),
        "{err}"
    );
}
