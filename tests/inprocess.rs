//! The in-process gateway harness: `App::build` on a bound listener inside the test, no
//! openclawd process, no Ollama (`ollama.manage: false`). Fast checks of routing, fallbacks,
//! auth and reload rules beside the end-to-end suites.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cloud::{Behaviour, FakeCloud};
use common::model_status;
use openclawd::config::{self, Overrides};
use openclawd::daemon::{self, App};
use openclawd::housekeeping::HousekeepingStatus;
use serde_json::{json, Value};

const KEY_A: &str = "sk-a-test";
const KEY_B: &str = "sk-b-test";

struct InProcess {
    home: tempfile::TempDir,
    base: String,
    shutdown: tokio_util::sync::CancellationToken,
    rt: Option<tokio::runtime::Runtime>,
    done: Option<tokio::task::JoinHandle<std::process::ExitCode>>,
}

impl InProcess {
    /// Starts the daemon's task tree with `openclaw` as openclaw.json (JSON5).
    fn start(openclaw: &str) -> InProcess {
        let home = tempfile::tempdir().unwrap();
        let state = home.path().join(".openclaw");
        std::fs::create_dir_all(state.join("openclawd")).unwrap();
        std::fs::write(state.join("openclaw.json"), openclaw).unwrap();
        std::fs::write(
            state.join("openclawd").join("openclawd.json"),
            "{ ollama: { manage: false } }",
        )
        .unwrap();
        let env: BTreeMap<String, String> = [
            ("HOME", home.path().display().to_string()),
            ("OPENCLAW_STATE_DIR", state.display().to_string()),
            ("KEY_A", KEY_A.into()),
            ("KEY_B", KEY_B.into()),
            // Nothing listens here: the supervisor watches an Ollama that is not running.
            ("OLLAMA_HOST", format!("127.0.0.1:{}", common::free_port())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let overrides = Overrides {
            state_dir: Some(state.clone()),
            ..Overrides::default()
        };
        let mut snapshot = config::load(&overrides, &env).expect("config loads");
        snapshot.generation = 1;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (app, listen) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let app = App::build(daemon::app::Start {
                snapshot,
                config_error: None,
                listener,
                overrides,
                env,
                housekeeping: HousekeepingStatus::default(),
                pid_file: false,
            })
            .expect("App::build");
            let listen: SocketAddr = app.listen();
            (app, listen)
        });
        let shutdown = app.shutdown.clone();
        let done = rt.spawn(app.run());
        InProcess {
            home,
            base: format!("http://{listen}"),
            shutdown,
            rt: Some(rt),
            done: Some(done),
        }
    }

    fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, BTreeMap<String, String>, String) {
        let client = reqwest::blocking::Client::new();
        let mut req = client.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        (status, headers, resp.text().unwrap_or_default())
    }

    fn status(&self) -> Value {
        let body = reqwest::blocking::get(format!("{}/status", self.base))
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let (Some(rt), Some(done)) = (self.rt.take(), self.done.take()) {
            let _ =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), done).await });
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn two_clouds(a: &FakeCloud, b: &FakeCloud) -> String {
    format!(
        "{{ models: {{ providers: {{
            a: {{ baseUrl: '{}/v1', apiKey: '${{KEY_A}}', api: 'openai-completions', models: [ {{ id: 'm1', name: 'M1' }} ] }},
            b: {{ baseUrl: '{}/v1', apiKey: '${{KEY_B}}', api: 'openai-completions', models: [ {{ id: 'm1', name: 'M1' }} ] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'a/m1', fallbacks: ['b/m1'] }} }} }} }}",
        a.base(),
        b.base()
    )
}

fn hello() -> Value {
    json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]})
}

#[test]
fn the_primary_answers_with_its_own_key() {
    let (a, b) = (FakeCloud::openai(KEY_A), FakeCloud::openai(KEY_B));
    let app = InProcess::start(&two_clouds(&a, &b));
    let (status, headers, body) = app.post("/v1/chat/completions", &[], &hello());
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-openclawd-model"], "a/m1");
    assert_eq!(headers["x-openclawd-attempts"], "1");
    assert_eq!(a.received().len(), 1);
    assert!(b.received().is_empty());
    assert_eq!(
        a.received()[0].headers["authorization"],
        format!("Bearer {KEY_A}")
    );
}

#[test]
fn a_failing_primary_falls_over_to_the_fallback_and_cools_down() {
    let (a, b) = (FakeCloud::openai(KEY_A), FakeCloud::openai(KEY_B));
    a.set(Behaviour::Status(
        503,
        r#"{"error":{"message":"overloaded"}}"#.into(),
    ));
    let app = InProcess::start(&two_clouds(&a, &b));
    let (status, headers, body) = app.post("/v1/chat/completions", &[], &hello());
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-openclawd-model"], "b/m1");
    assert_eq!(headers["x-openclawd-fallback"], "true");
    assert_eq!(headers["x-openclawd-attempts"], "2");
    // a is cooling down: the next request goes straight to b.
    let (status, headers, _) = app.post("/v1/chat/completions", &[], &hello());
    assert_eq!(status, 200);
    assert_eq!(headers["x-openclawd-attempts"], "1");
    assert_eq!(headers["x-openclawd-model"], "b/m1");
    assert_eq!(a.received().len(), 1);
    let st = app.status();
    let a_model = model_status(&st, "a/m1");
    assert_eq!(a_model["available"], false, "{a_model}");
}

#[test]
fn a_config_edit_reroutes_without_a_restart() {
    let (a, b) = (FakeCloud::openai(KEY_A), FakeCloud::openai(KEY_B));
    let app = InProcess::start(&two_clouds(&a, &b));
    let path = app.home.path().join(".openclaw").join("openclaw.json");
    let swapped =
        two_clouds(&a, &b).replace("primary: 'a/m1', fallbacks: ['b/m1']", "primary: 'b/m1'");
    // The watcher starts with the task tree, a moment after `App::build` returns: an edit made
    // before it watches is not an edit it can see, so edit until the reload shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    // Rewrites while it waits may each reload: wait for the new primary, not for generation 2.
    while app.status()["routing"]["primary"] != "b/m1" {
        assert!(
            Instant::now() < deadline,
            "reload not seen: {}",
            app.status()
        );
        std::fs::write(&path, &swapped).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let (status, headers, _) = app.post("/v1/chat/completions", &[], &hello());
    assert_eq!(status, 200);
    assert_eq!(headers["x-openclawd-model"], "b/m1");
}
