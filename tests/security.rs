//! What a reload may not do: a config edit never lowers security (SPEC §2). A gateway reachable
//! from the network keeps requiring its token even when the token is deleted from the file.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn removing_the_token_of_a_lan_gateway_is_refused_and_the_old_token_keeps_working() {
    let env = TestEnv::new();
    env.write_own_settings("{ ollama: { manage: false } }");
    env.write_config("{ gateway: { bind: 'lan', auth: { token: 'lan-secret-1' } } }");
    let mut d = env.start();
    d.token = Some("lan-secret-1".into());
    assert_eq!(d.get("/v1/models").map(|(c, _)| c), Some(200));
    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(anonymous, Some(401), "a LAN gateway needs its token");

    env.write_config("{ gateway: { bind: 'lan' } }");
    let st = d.wait_until("the edit refused", Duration::from_secs(10), |s| {
        s["config"]["error"].is_string()
    });
    let error = st["config"]["error"].as_str().unwrap();
    assert!(error.contains("without a token"), "{error}");
    assert!(error.contains("previous token stays in force"), "{error}");
    assert_eq!(
        st["config"]["generation"], 1,
        "the snapshot was not swapped"
    );

    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(
        anonymous,
        Some(401),
        "still closed to anyone without the token"
    );
    assert_eq!(
        d.get("/v1/models").map(|(c, _)| c),
        Some(200),
        "old token works"
    );

    // Putting a token back (even a new one) is a normal reload.
    env.write_config("{ gateway: { bind: 'lan', auth: { token: 'lan-secret-2' } } }");
    d.token = Some("lan-secret-2".into());
    d.wait_until("the new token in force", Duration::from_secs(10), |s| {
        s["config"]["error"].is_null() && s["config"]["generation"] == 2
    });
    let anonymous = http_get(&format!("{}/v1/models", d.base)).map(|(c, _)| c);
    assert_eq!(anonymous, Some(401));
}

mod upstream_hygiene {
    //! What an upstream may not do to a request: hold a model forever with `Retry-After`, pull
    //! the provider's key to another host with a redirect, or make a cut stream unreadable.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::Response;
    use axum::routing::post;
    use axum::Router;
    use serde_json::{json, Value};

    use crate::common::cloud::FakeCloud;
    use crate::common::*;

    const KEY: &str = "sk-hygiene-key";

    /// Serves `router` on a loopback port from its own thread.
    fn serve(router: Router) -> u16 {
        crate::common::cloud::serve_on_loopback(router).0
    }

    fn config(
        env: &mut TestEnv,
        primary_base: &str,
        primary_api: &str,
        fallback: Option<&FakeCloud>,
    ) {
        env.extra_env.push(("HYGIENE_KEY".into(), KEY.into()));
        env.write_own_settings("{ ollama: { manage: false } }");
        let fallback_provider = fallback
            .map(|b| {
                format!(
                    ", b: {{ baseUrl: '{}/v1', apiKey: '${{HYGIENE_KEY}}', api: 'openai-completions', models: [ {{ id: 'm1', name: 'M1' }} ] }}",
                    b.base()
                )
            })
            .unwrap_or_default();
        let fallbacks = if fallback.is_some() { "'b/m1'" } else { "" };
        env.write_config(&format!(
            "{{ models: {{ providers: {{
                a: {{ baseUrl: '{primary_base}', apiKey: '${{HYGIENE_KEY}}', api: '{primary_api}', models: [ {{ id: 'm1', name: 'M1' }} ] }}{fallback_provider} }} }},
               agents: {{ defaults: {{ model: {{ primary: 'a/m1', fallbacks: [{fallbacks}] }} }} }} }}"
        ));
    }

    fn hello(stream: bool) -> Value {
        json!({"model": "default", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn a_huge_retry_after_cools_the_model_for_an_hour_at_most_and_the_fallback_answers() {
        let hits = Arc::new(Mutex::new(0u32));
        let counted = hits.clone();
        let port = serve(Router::new().route(
            "/v1/chat/completions",
            post(move || {
                let counted = counted.clone();
                async move {
                    *counted.lock().unwrap() += 1;
                    Response::builder()
                        .status(429)
                        .header("retry-after", "18446744073709551615")
                        .header("content-type", "application/json")
                        .body(Body::from(r#"{"error":{"message":"slow down"}}"#))
                        .unwrap()
                }
            }),
        ));
        let b = FakeCloud::openai(KEY);
        let mut env = TestEnv::new();
        config(
            &mut env,
            &format!("http://127.0.0.1:{port}/v1"),
            "openai-completions",
            Some(&b),
        );
        let d = env.start();
        for round in 0..3 {
            let resp = d.chat(&hello(false), &[]);
            assert_eq!(resp.status(), 200, "round {round}");
            assert_eq!(resp.headers()["x-openclawd-model"], "b/m1");
        }
        assert_eq!(*hits.lock().unwrap(), 1, "a cools down after its 429");
        let st = d.status().unwrap();
        let a = model_status(&st, "a/m1");
        let until = humantime::parse_rfc3339(a["cooldown_until"].as_str().unwrap()).unwrap();
        let left = until.duration_since(std::time::SystemTime::now()).unwrap();
        assert!(
            left <= Duration::from_secs(3600) && left > Duration::from_secs(3500),
            "{left:?}"
        );
    }

    #[test]
    fn a_redirect_is_never_followed_so_the_key_stays_home() {
        let caught: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let catcher = caught.clone();
        let catcher_port = serve(Router::new().fallback(move |headers: HeaderMap| {
            let catcher = catcher.clone();
            async move {
                catcher.lock().unwrap().push(headers);
                StatusCode::OK
            }
        }));
        let redirecting = serve(Router::new().fallback(move || async move {
            Response::builder()
                .status(307)
                .header(
                    "location",
                    format!("http://127.0.0.1:{catcher_port}/v1/messages"),
                )
                .body(Body::empty())
                .unwrap()
        }));
        let b = FakeCloud::openai(KEY);
        let mut env = TestEnv::new();
        // anthropic-messages sends the key as `x-api-key`, which reqwest would carry along.
        config(
            &mut env,
            &format!("http://127.0.0.1:{redirecting}"),
            "anthropic-messages",
            Some(&b),
        );
        let d = env.start();
        // Alone, the attempt fails and the person is told why.
        let resp = d.chat(&hello(false), &[("x-openclawd-no-fallback", "1")]);
        assert_eq!(resp.status(), 502);
        let body = resp.text().unwrap();
        assert!(body.contains("redirected to http://127.0.0.1:"), "{body}");
        assert!(body.contains("baseUrl"), "{body}");
        // With it, the fallback answers (a is cooling down after the failed attempt).
        let resp = d.chat(&hello(false), &[]);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-openclawd-model"], "b/m1");
        assert_eq!(resp.headers()["x-openclawd-fallback"], "true");
        assert!(
            caught.lock().unwrap().is_empty(),
            "the other host saw the request"
        );
    }

    #[test]
    fn a_stream_cut_mid_event_ends_with_whole_events_then_the_error() {
        let port = serve(Router::new().route(
            "/v1/chat/completions",
            post(|| async {
                let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
                    Ok("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hel\"}}]}\n\n"),
                    Ok("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wo"),
                    Err(std::io::Error::other("cut")),
                ];
                // 100 ms apart, so each piece leaves on its own before the cut.
                let paced = futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    it.next().map(|c| (c, it))
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(paced))
                    .unwrap()
            }),
        ));
        let mut env = TestEnv::new();
        config(
            &mut env,
            &format!("http://127.0.0.1:{port}/v1"),
            "openai-completions",
            None,
        );
        let d = env.start();
        let resp = d.chat(&hello(true), &[]);
        assert_eq!(resp.status(), 200);
        let body = resp.text().unwrap_or_default();
        let events: Vec<&str> = body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        assert!(events.len() >= 2, "{body:?}");
        for e in &events {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            serde_json::from_str::<Value>(data).unwrap_or_else(|err| panic!("{err}: {data:?}"));
        }
        let last: Value =
            serde_json::from_str(events.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains("upstream"),
            "{last}"
        );
        let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], "hel");
    }
}
