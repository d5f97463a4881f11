//! The `ollama` double, driven as the daemon drives it: a real process, real HTTP.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::Duration;
use support::*;

// ---------------------------------------------------------------- CLI

#[test]
fn version_flag_prints_the_three_real_outputs() {
    let current = Server::start();
    let old = Server::with_version("0.16.1");

    let matching = run_cli(&["-v"], &[("OLLAMA_HOST", &current.host())]);
    assert_eq!(matching.status.code(), Some(0));
    assert_eq!(matching.stdout, fixture("cli/version-match.stdout.txt"));

    let mismatch = run_cli(
        &["--version"],
        &[
            ("OLLAMA_HOST", &old.host()),
            ("OLLAMA_DOUBLE_VERSION", "0.32.15"),
        ],
    );
    assert_eq!(mismatch.status.code(), Some(0));
    assert_eq!(mismatch.stdout, fixture("cli/version-mismatch.stdout.txt"));

    let nobody = format!("127.0.0.1:{}", closed_port());
    let no_server = run_cli(&["-v"], &[("OLLAMA_HOST", &nobody)]);
    assert_eq!(no_server.status.code(), Some(0));
    assert_eq!(
        no_server.stdout,
        fixture("cli/version-no-server.stdout.txt")
    );
    assert!(no_server.stderr.is_empty());
}

#[test]
fn client_commands_without_a_server_print_the_linux_error() {
    let nobody = format!("127.0.0.1:{}", closed_port());
    for command in ["list", "ps", "run"] {
        let out = run_cli(&[command], &[("OLLAMA_HOST", &nobody)]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert_eq!(out.stderr, fixture("cli/client-no-server-linux.stderr.txt"));
    }
}

#[test]
fn list_and_ps_print_tables_from_a_running_server() {
    let server = Server::start();
    let list = run_cli(&["list"], &[("OLLAMA_HOST", &server.host())]);
    assert_eq!(list.status.code(), Some(0));
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(text.starts_with("NAME "), "{text}");
    assert!(text.contains("gpt-oss:20b") && text.contains("aa4295ac10c3"));

    server.post("/api/generate", r#"{"model":"llama3.2:3b"}"#);
    let ps = run_cli(&["ps"], &[("OLLAMA_HOST", &server.host())]);
    let text = String::from_utf8(ps.stdout).unwrap();
    assert!(
        text.contains("llama3.2:3b") && text.contains("4096"),
        "{text}"
    );
}

// ---------------------------------------------------------------- serve lifecycle

#[test]
fn port_in_use_fails_with_gos_message_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = ollama_command()
        .arg("serve")
        .env("OLLAMA_HOST", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("Error: listen tcp 127.0.0.1:{port}: bind: address already in use\n")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn startup_logs_like_the_go_server() {
    let server = Server::with_version("0.16.1");
    let stderr = server.stderr();
    assert!(stderr.contains("OLLAMA_HOST:http://127.0.0.1:0 "));
    assert!(server
        .wait_for_stderr("msg=\"Listening on")
        .ends_with(&format!(
            "msg=\"Listening on 127.0.0.1:{} (version 0.16.1)\"",
            server.port
        )));
    server.wait_for_stderr("msg=\"vram-based default context\"");
    assert!(stderr.lines().all(|l| l.starts_with("time=")), "{stderr}");
}

#[test]
fn sigterm_kills_the_runner_drops_streams_and_exits_0() {
    let mut server = Server::with_control(r#"{"token_delay_ms":200}"#);
    let runner = server.runner_pid();
    assert!(pid_alive(runner));

    let stream = send(
        server.port,
        "POST",
        "/api/chat",
        Some(br#"{"model":"llama3.2:3b","messages":[{"role":"user","content":"hi"}]}"#),
        &[],
    );
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !line.starts_with("{\"model\"") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }

    signal(server.pid(), libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(!pid_alive(runner), "runner survived SIGTERM");

    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(
        !rest.contains("\"done\":true"),
        "stream was finished: {rest}"
    );
}

#[test]
fn sigkill_orphans_the_runner() {
    let mut server = Server::start();
    let runner = server.runner_pid();
    signal(server.pid(), libc::SIGKILL);
    let status = server.wait_exit();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(pid_alive(runner), "runner died with its server");
    // Drop kills the process group, runner included.
}

#[test]
fn a_broken_stdout_pipe_kills_the_server_with_sigpipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ollama_command()
        .arg("serve")
        .env("OLLAMA_HOST", "127.0.0.1:0")
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Listening on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0);
    }
    let port: u16 = line
        .split(" (version")
        .next()
        .and_then(|s| s.rsplit(':').next())
        .unwrap()
        .parse()
        .unwrap();
    let _ = std::net::TcpStream::connect(("127.0.0.1", port)).map(|s| {
        let _ = read_response_or_eof(s);
    });
    let status = child.wait().unwrap();
    // Like Go, the dead server leaves its runner behind; clean it up with the group.
    // SAFETY: the group is the one process_group(0) created for this server.
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGKILL);
    }
    assert_eq!(status.signal(), Some(libc::SIGPIPE));
}

fn read_response_or_eof(mut s: std::net::TcpStream) -> Vec<u8> {
    use std::io::Write;
    let _ = s.write_all(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn slow_start_binds_the_port_but_answers_nothing_yet() {
    let server = Server::start_with(ServerOptions {
        envs: vec![("OLLAMA_DOUBLE_SLOW_START_MS", "60000".to_string())],
        ..Default::default()
    });
    let mut stream = send(server.port, "GET", "/", None, &[]);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert!(!server.stderr().contains("inference compute"));
}

// ---------------------------------------------------------------- byte-exact bodies

#[test]
fn version_and_tags_are_byte_exact() {
    let server = Server::start();
    let version = server.get("/api/version");
    assert_eq!(
        version.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(version.body, fixture("version.json"));

    let tags = server.get("/api/tags");
    assert_eq!(tags.status, 200);
    assert_eq!(tags.body, fixture("tags.json"));

    let root = server.get("/");
    assert_eq!(
        root.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(root.body, fixture("root.txt"));
    let head = request(server.port, "HEAD", "/", None, &[]);
    assert_eq!((head.status, head.body.len()), (200, 0));

    server.control(r#"{"tags_shape":"legacy"}"#);
    assert_eq!(
        server.get("/api/tags").body,
        fixture("tags-legacy-0.16.json")
    );

    server.control(r#"{"models":[]}"#);
    assert_eq!(server.get("/api/tags").body, fixture("tags-empty.json"));
    assert_eq!(
        server.get("/v1/models").body,
        fixture("v1-models-empty.json")
    );
    assert_eq!(server.get("/api/ps").body, fixture("ps-empty.json"));
}

#[test]
fn an_old_version_speaks_the_old_shapes() {
    let server = Server::with_version("0.16.1");
    assert_eq!(
        server.get("/api/version").body,
        fixture("version-legacy-0.16.1.json")
    );
    assert_eq!(
        server.get("/api/tags").body,
        fixture("tags-legacy-0.16.json")
    );
    let show = server.post("/api/show", r#"{"model":"llama9"}"#);
    assert_eq!(show.text(), r#"{"error":"model 'llama9' not found"}"#);
}

#[test]
fn openai_model_listing_is_byte_exact() {
    let server = Server::start();
    let models = server.get("/v1/models");
    assert_eq!(models.header("content-type"), Some("application/json"));
    assert_eq!(models.body, fixture("v1-models.json"));
    assert_eq!(
        server.get("/v1/models/gpt-oss:20b").body,
        fixture("v1-model-retrieve-gpt-oss-20b.json")
    );
    let missing = server.get("/v1/models/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["type"], "not_found_error");
}

#[test]
fn show_returns_the_fixture_bodies() {
    let server = Server::start();
    for (model, file) in [
        ("gpt-oss:20b", "show-gpt-oss-20b.json"),
        ("qwen3-coder", "show-qwen3-coder-latest.json"),
        ("llama3.2:3b", "show-llama3.2-3b.json"),
    ] {
        let res = server.post("/api/show", &format!(r#"{{"model":"{model}"}}"#));
        assert_eq!(res.status, 200);
        assert_eq!(res.body, fixture(file), "{model}");
    }
    let by_name = server.post("/api/show", r#"{"name":"llama3.2:3b"}"#);
    assert_eq!(by_name.body, fixture("show-llama3.2-3b.json"));

    let missing = server.post("/api/show", r#"{"model":"llama9:70b"}"#);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        fixture("errors/404-model-not-found-show.json")
    );
    let normalized = server.post("/api/show", r#"{"model":"llama9"}"#);
    assert_eq!(
        normalized.text(),
        r#"{"error":"model 'llama9:latest' not found"}"#
    );
}

#[test]
fn show_synthesizes_catalogue_models() {
    let server = Server::with_control(
        r#"{"models":[
            {"name":"tiny:1b","family":"qwen2","context_length":32768,"num_ctx_param":8192,
             "capabilities":["completion"],"parameter_size":"1.5B"},
            {"name":"cloudy","model_info_key":".context_length","context_length":1000},
            {"name":"mystery","context_length":null}
        ]}"#,
    );
    let tiny = server.post("/api/show", r#"{"model":"tiny:1b"}"#);
    assert_eq!(tiny.status, 200);
    let keys = keys_in_order(&tiny.text());
    assert_eq!(
        keys,
        [
            "modelfile",
            "parameters",
            "template",
            "details",
            "model_info",
            "tensors",
            "capabilities",
            "modified_at"
        ]
    );
    let body = tiny.json();
    assert_eq!(body["model_info"]["qwen2.context_length"], 32768);
    assert_eq!(body["model_info"]["general.architecture"], "qwen2");
    assert_eq!(body["parameters"], format!("{:<30} 8192", "num_ctx"));
    assert!(body["modelfile"]
        .as_str()
        .unwrap()
        .contains("PARAMETER num_ctx 8192\n"));
    assert_eq!(body["capabilities"], serde_json::json!(["completion"]));
    assert!(body["details"].get("context_length").is_none());

    let cloudy = server
        .post("/api/show", r#"{"model":"cloudy:latest"}"#)
        .json();
    assert_eq!(cloudy["model_info"][".context_length"], 1000);
    assert!(cloudy.get("parameters").is_none());

    let mystery = server.post("/api/show", r#"{"model":"mystery"}"#).json();
    let info = mystery["model_info"].as_object().unwrap();
    assert!(!info.keys().any(|k| k.ends_with(".context_length")));

    let tags = server.get("/api/tags").json();
    assert_eq!(tags["models"][0]["name"], "tiny:1b");
    assert_eq!(tags["models"][0]["details"]["context_length"], 32768);
    assert_eq!(tags["models"][1]["name"], "cloudy:latest");
    assert!(tags["models"][2]["details"].get("context_length").is_none());
    assert_eq!(
        tags["models"][1]["capabilities"],
        serde_json::json!(["completion", "tools"])
    );
}

// ---------------------------------------------------------------- errors

#[test]
fn routing_and_body_errors_match_the_fixtures() {
    let server = Server::start();
    let unknown = server.get("/health");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("content-type"), Some("text/plain"));
    assert_eq!(unknown.body, fixture("errors/404-page-not-found.txt"));

    let wrong_method = server.get("/api/chat");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.body,
        fixture("errors/405-method-not-allowed.txt")
    );

    let empty = server.post("/api/chat", "");
    assert_eq!(empty.status, 400);
    assert_eq!(empty.body, fixture("errors/400-missing-request-body.json"));

    let garbage = server.post("/api/chat", "x");
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.body, fixture("errors/400-invalid-json.json"));

    let no_model = server.post("/api/chat", r#"{"messages":[]}"#);
    assert_eq!(no_model.body, fixture("errors/400-model-is-required.json"));

    let bad_keep_alive = server.post(
        "/api/generate",
        r#"{"model":"llama3.2:3b","keep_alive":"-1"}"#,
    );
    assert_eq!(bad_keep_alive.status, 400);
    assert_eq!(
        bad_keep_alive.body,
        fixture("errors/400-keep-alive-bad-string.json")
    );

    let chat_missing = server.post(
        "/api/chat",
        r#"{"model":"llama9:70b","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(chat_missing.status, 404);
    assert_eq!(
        chat_missing.body,
        fixture("errors/404-model-not-found-chat.json")
    );

    let generate_missing = server.post("/api/generate", r#"{"model":"llama9:70b","prompt":"hi"}"#);
    assert_eq!(
        generate_missing.body,
        fixture("errors/404-model-not-found-generate.json")
    );

    let no_thinking = server.post(
        "/api/chat",
        r#"{"model":"llama3.2:3b","think":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(no_thinking.status, 400);
    assert_eq!(
        no_thinking.body,
        fixture("errors/400-does-not-support-thinking.json")
    );
}

#[test]
fn a_model_without_tools_rejects_tools() {
    let server =
        Server::with_control(r#"{"models":[{"name":"gemma:2b","capabilities":["completion"]}]}"#);
    let body = r#"{"model":"gemma:2b","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}"#;
    let native = server.post("/api/chat", body);
    assert_eq!(native.status, 400);
    assert_eq!(
        native.body,
        fixture("errors/400-does-not-support-tools.json")
    );

    let v1 = server.post("/v1/chat/completions", body);
    assert_eq!(v1.status, 400);
    assert_eq!(
        v1.json()["error"]["message"],
        "registry.ollama.ai/library/gemma:2b does not support tools"
    );
}

#[test]
fn openai_errors_match_the_fixtures() {
    let server = Server::start();
    let empty = server.post(
        "/v1/chat/completions",
        r#"{"model":"llama3.2:3b","messages":[]}"#,
    );
    assert_eq!(empty.status, 400);
    assert_eq!(empty.body, fixture("errors/v1-400-empty-messages.json"));

    let missing = server.post(
        "/v1/chat/completions",
        r#"{"model":"llama9:70b","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, fixture("errors/v1-404-model-not-found.json"));

    let no_model = server.post(
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(
        no_model.body,
        fixture("errors/v1-400-model-is-required.json")
    );

    let effort = server.post(
        "/v1/chat/completions",
        r#"{"model":"gpt-oss:20b","reasoning_effort":"extreme","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(
        effort.body,
        fixture("errors/v1-400-bad-reasoning-effort.json")
    );
}

// ---------------------------------------------------------------- chat and generate

const HELLO: &str = r#"[{"role":"user","content":"Why is the sky blue?"}]"#;

#[test]
fn chat_streams_ndjson_and_ends_with_consistent_metrics() {
    let server = Server::with_control(
        r#"{"reply_tokens":["Hi","!"," Bye"],"token_delay_ms":5,"load_duration_ms":50}"#,
    );
    let res = server.post(
        "/api/chat",
        &format!(r#"{{"model":"library/llama3.2:3b","messages":{HELLO}}}"#),
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/x-ndjson"));
    let text = res.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);

    let stream_fixture = fixture_text("chat-stream.ndjson");
    let fixture_lines: Vec<&str> = stream_fixture.lines().collect();
    assert_eq!(keys_in_order(lines[0]), keys_in_order(fixture_lines[0]));
    assert_eq!(
        keys_in_order(lines[3]),
        keys_in_order(fixture_lines.last().unwrap())
    );

    let chunks = res.lines();
    let content: String = chunks[..3]
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content, "Hi! Bye");
    assert!(
        chunks.iter().all(|c| c["model"] == "library/llama3.2:3b"),
        "echoed as sent"
    );
    let done = &chunks[3];
    assert_eq!(done["done"], true);
    assert_eq!(done["done_reason"], "stop");
    assert_eq!(done["eval_count"], 3);
    let n = |k: &str| done[k].as_u64().unwrap();
    assert!(n("load_duration") >= 50_000_000, "load slept 50ms: {done}");
    assert!(
        n("total_duration") >= n("load_duration") + n("prompt_eval_duration") + n("eval_duration")
    );

    // Loaded now: no second load.
    let again = server.post(
        "/api/chat",
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO},"stream":false}}"#),
    );
    assert_eq!(
        again.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        keys_in_order(&again.text()),
        keys_in_order(&fixture_text("chat-nonstream.json"))
    );
    let body = again.json();
    assert_eq!(body["message"]["content"], "Hi! Bye");
    assert!(body["load_duration"].as_u64().unwrap() < 50_000_000);
}

#[test]
fn thinking_models_think_before_answering() {
    let server = Server::start();
    let chunks = server
        .post(
            "/api/chat",
            &format!(r#"{{"model":"gpt-oss:20b","messages":{HELLO}}}"#),
        )
        .lines();
    let thinking_fixture: Vec<serde_json::Value> = fixture_text("chat-stream-thinking.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let thinking: Vec<&serde_json::Value> = chunks
        .iter()
        .take_while(|c| c["message"].get("thinking").is_some())
        .collect();
    assert_eq!(thinking.len(), 12);
    for (ours, theirs) in thinking.iter().zip(&thinking_fixture) {
        assert_eq!(ours["message"], theirs["message"]);
    }
    assert!(chunks[12]["message"].get("thinking").is_none());
    assert_ne!(chunks[12]["message"]["content"], "");

    let no_think = server
        .post(
            "/api/chat",
            &format!(r#"{{"model":"gpt-oss:20b","think":false,"messages":{HELLO}}}"#),
        )
        .lines();
    assert!(no_think
        .iter()
        .all(|c| c["message"].get("thinking").is_none()));
}

#[test]
fn tool_calls_follow_the_fixture() {
    let server = Server::with_control(r#"{"tool_call":true}"#);
    let body = format!(
        r#"{{"model":"qwen3-coder:latest","messages":{HELLO},
        "tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{}}}}}}]}}"#
    );
    let chunks = server.post("/api/chat", &body).lines();
    assert_eq!(chunks.len(), 2);
    let call = &chunks[0]["message"]["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    assert!(id.len() == 13 && id.starts_with("call_"), "{id}");
    assert!(id[5..]
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_eq!(
        call["function"],
        serde_json::json!({"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}})
    );
    assert_eq!(chunks[1]["done_reason"], "stop");

    let v1 = server
        .post(
            "/v1/chat/completions",
            &body.replace("\"messages\"", "\"stream\":false,\"messages\""),
        )
        .json();
    assert_eq!(v1["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v1["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Tokyo\"}"
    );

    // Without tools in the request the model just answers.
    let plain = server
        .post(
            "/api/chat",
            &format!(r#"{{"model":"qwen3-coder:latest","messages":{HELLO}}}"#),
        )
        .lines();
    assert!(plain
        .iter()
        .all(|c| c["message"].get("tool_calls").is_none()));
}

#[test]
fn generate_preloads_and_unloads_like_the_fixtures() {
    let server = Server::start();
    let preload = server.post("/api/generate", r#"{"model":"llama3.2:3b"}"#);
    assert_eq!(
        keys_in_order(&preload.text()),
        keys_in_order(&fixture_text("generate-preload.json"))
    );
    let mut body = preload.json();
    body["created_at"] = serde_json::Value::Null;
    let mut expected: serde_json::Value =
        serde_json::from_slice(&fixture("generate-preload.json")).unwrap();
    expected["created_at"] = serde_json::Value::Null;
    assert_eq!(body, expected);

    let ps = server.get("/api/ps").json();
    assert_eq!(ps["models"][0]["name"], "llama3.2:3b");
    assert_eq!(ps["models"][0]["context_length"], 4096);
    assert_eq!(
        keys_in_order(&serde_json::to_string(&ps["models"][0]).unwrap()).len(),
        8
    );

    let unload = server
        .post("/api/generate", r#"{"model":"llama3.2:3b","keep_alive":0}"#)
        .json();
    assert_eq!(unload["done_reason"], "unload");
    assert_eq!(server.get("/api/ps").body, fixture("ps-empty.json"));

    let chat_load = server.post(
        "/api/chat",
        r#"{"model":"gpt-oss:20b","messages":[],"keep_alive":-1}"#,
    );
    assert_eq!(
        keys_in_order(&chat_load.text()),
        keys_in_order(&fixture_text("chat-preload.json"))
    );
    assert_eq!(chat_load.json()["done_reason"], "load");
    let ps = server.get("/api/ps").json();
    assert!(ps["models"][0]["expires_at"]
        .as_str()
        .unwrap()
        .starts_with("23"));

    let streamed = server
        .post(
            "/api/generate",
            r#"{"model":"llama3.2:3b","prompt":"Why?"}"#,
        )
        .lines();
    let last = streamed.last().unwrap();
    let generate_fixture = fixture_text("generate-stream.ndjson");
    assert_eq!(
        keys_in_order(&serde_json::to_string(last).unwrap()).len(),
        keys_in_order(generate_fixture.lines().last().unwrap()).len()
    );
    assert!(last["context"].is_array());
}

#[test]
fn openai_stream_uses_the_current_format_and_ends_with_done() {
    let server = Server::start();
    let res = server.post(
        "/v1/chat/completions",
        &format!(
            r#"{{"model":"llama3.2:3b","stream":true,"stream_options":{{"include_usage":true}},"messages":{HELLO}}}"#
        ),
    );
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let text = res.text();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let fixture = fixture_text("v1-chat-stream.sse");
    let expected_count = fixture.split("\n\n").filter(|e| !e.is_empty()).count() - 1;
    assert_eq!(events.len(), expected_count);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(events[1]["choices"][0]["delta"].get("role").is_none());
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = events.last().unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 23);
    let id = &events[0]["id"];
    assert!(events
        .iter()
        .all(|e| &e["id"] == id && e["system_fingerprint"] == "fp_ollama"));

    let whole = server.post(
        "/v1/chat/completions",
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO}}}"#),
    );
    assert_eq!(whole.header("content-type"), Some("application/json"));
    assert!(whole.body.ends_with(b"}\n"));
    assert_eq!(
        keys_in_order(&whole.text()),
        keys_in_order(&fixture_text("v1-chat-completion.json"))
    );
}

#[test]
fn openai_stream_of_an_old_server_uses_the_legacy_format() {
    let server = Server::with_version("0.16.1");
    let text = server
        .post(
            "/v1/chat/completions",
            &format!(r#"{{"model":"llama3.2:3b","stream":true,"messages":{HELLO}}}"#),
        )
        .text();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(events
        .iter()
        .all(|e| e["choices"][0]["delta"]["role"] == "assistant"));
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["delta"]["content"], "");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

// ---------------------------------------------------------------- scripted faults

#[test]
fn fail_status_answers_scripted_errors_on_chosen_paths() {
    let server = Server::with_control(
        r#"{"fail_status":{"status":500,"body":"{\"error\":\"llama-server process has terminated: signal: killed\"}","paths":["/api/chat"]}}"#,
    );
    let chat = server.post(
        "/api/chat",
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO}}}"#),
    );
    assert_eq!(chat.status, 500);
    assert_eq!(chat.body, fixture("errors/500-runner-crashed.json"));
    assert_eq!(server.get("/api/tags").status, 200);

    server.control(r#"{"fail_status":{"status":503,"paths":["/v1/*","/api/generate"]}}"#);
    let v1 = server.post("/v1/chat/completions", "{}");
    assert_eq!(v1.status, 503);
    assert_eq!(v1.body, fixture("errors/v1-503-server-busy.json"));
    let native = server.post("/api/generate", "{}");
    assert_eq!(native.body, fixture("errors/503-server-busy.json"));
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn crash_after_requests_kills_the_server_but_not_its_runner() {
    let mut server = Server::with_control(r#"{"crash_after_requests":2}"#);
    let runner = server.runner_pid();
    assert_eq!(server.get("/api/version").body, fixture("version.json"));
    assert_eq!(server.get("/api/tags").body, fixture("tags.json"));
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(2));
    assert!(pid_alive(runner));
    let refused = std::net::TcpStream::connect(("127.0.0.1", server.port));
    assert!(refused.is_err());
}

#[test]
fn midstream_error_ends_the_stream_with_an_error_line() {
    let server = Server::with_control(r#"{"midstream_error_after":3}"#);
    let res = server.post(
        "/api/chat",
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO}}}"#),
    );
    assert_eq!(res.status, 200);
    let text = res.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    let expected = fixture_text("errors/chat-midstream-error.ndjson");
    assert_eq!(lines[3], expected.lines().last().unwrap());

    let v1 = server
        .post(
            "/v1/chat/completions",
            &format!(r#"{{"model":"llama3.2:3b","stream":true,"messages":{HELLO}}}"#),
        )
        .text();
    assert_eq!(v1.matches("data: ").count(), 3);
    assert!(!v1.contains("[DONE]"));

    let whole = server.post(
        "/api/chat",
        &format!(r#"{{"model":"llama3.2:3b","stream":false,"messages":{HELLO}}}"#),
    );
    assert_eq!(whole.status, 500);
}

#[test]
fn hang_reads_requests_but_never_answers() {
    let server = Server::with_control(r#"{"hang":true}"#);
    let mut stream = send(
        server.port,
        "POST",
        "/api/chat",
        Some(b"{\"model\":\"x\"}"),
        &[],
    );
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(stream.read(&mut buf).is_err());
    eventually("the hung request is logged", || {
        !server.logged_requests().is_empty()
    });
    assert_eq!(server.logged_requests()[0]["body"]["model"], "x");

    server.control("{}");
    assert_eq!(server.get("/").status, 200);
}

// ---------------------------------------------------------------- middleware and logs

#[test]
fn loopback_servers_check_the_host_header() {
    let server = Server::start();
    let foreign = request(
        server.port,
        "GET",
        "/api/tags",
        None,
        &[("Host", "evil.example")],
    );
    assert_eq!(foreign.status, 403);
    assert!(foreign.body.is_empty());
    assert_eq!(foreign.header("content-type"), None);
    for allowed in ["localhost:11434", "192.168.1.5", "box.internal", "[::1]:1"] {
        let res = request(
            server.port,
            "GET",
            "/api/version",
            None,
            &[("Host", allowed)],
        );
        assert_eq!(res.status, 200, "{allowed}");
    }
    let bad_origin = request(
        server.port,
        "GET",
        "/",
        None,
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(bad_origin.status, 403);
    let good_origin = request(
        server.port,
        "GET",
        "/",
        None,
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(good_origin.status, 200);

    let open = Server::start_with(ServerOptions {
        host: Some("0.0.0.0:0".to_string()),
        ..Default::default()
    });
    let res = request(
        open.port,
        "GET",
        "/api/version",
        None,
        &[("Host", "evil.example")],
    );
    assert_eq!(res.status, 200);
}

#[test]
fn every_request_is_logged_to_the_request_log() {
    let server = Server::start();
    server.post("/api/show", r#"{"model":"gpt-oss:20b"}"#);
    server.post("/api/chat", "not json");
    server.get("/api/version");
    let log = server.logged_requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[0],
        serde_json::json!({"method":"POST","path":"/api/show","host":server.host(),"body":{"model":"gpt-oss:20b"}})
    );
    assert_eq!(log[1]["body"], "not json");
    assert_eq!(log[2]["method"], "GET");
    assert_eq!(log[2]["body"], "");
}

#[test]
fn gin_access_lines_go_to_stdout() {
    let server = Server::start();
    server.get("/api/version");
    server.get("/nope");
    eventually("two access lines", || server.stdout().lines().count() >= 2);
    let stdout = server.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("[GIN] "));
    assert!(lines[0].contains(" | 200 | "), "{}", lines[0]);
    assert!(
        lines[0].ends_with("|       127.0.0.1 | GET      \"/api/version\""),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(" | 404 | "));
}

// ---------------------------------------------------------------- install and upgrade

/// Installs (or atomically upgrades) an `ollama` wrapper script pinning a version.
fn install_wrapper(bin_dir: &std::path::Path, version: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let target = bin_dir.join("ollama");
    let tmp = bin_dir.join(".ollama.new");
    std::fs::write(
        &tmp,
        format!("#!/bin/sh\nOLLAMA_DOUBLE_VERSION={version} exec {BIN} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &target).unwrap();
    target
}

#[test]
fn an_upgraded_binary_reports_a_mismatch_against_the_old_server() {
    let bin_dir = tempfile::tempdir().unwrap();
    let wrapper = install_wrapper(bin_dir.path(), "0.16.1");
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&wrapper)
        .arg("serve")
        .env_remove("OLLAMA_DOUBLE_VERSION")
        .env("OLLAMA_HOST", "127.0.0.1:0")
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Listening on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0);
    }
    assert!(line.contains("(version 0.16.1)"), "{line}");
    let addr = line
        .split("Listening on ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();

    install_wrapper(bin_dir.path(), "0.32.15");
    let out = std::process::Command::new(&wrapper)
        .arg("-v")
        .env("OLLAMA_HOST", &addr)
        .output()
        .unwrap();
    assert_eq!(out.stdout, fixture("cli/version-mismatch.stdout.txt"));

    let own = std::process::Command::new(&wrapper)
        .arg("-v")
        .env("OLLAMA_HOST", format!("127.0.0.1:{}", closed_port()))
        .output()
        .unwrap();
    assert!(String::from_utf8(own.stdout)
        .unwrap()
        .ends_with("Warning: client version is 0.32.15\n"));

    // SAFETY: the group created for this server (the wrapper exec'd into it).
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

// ---------------------------------------------------------------- streams vs fixtures

#[test]
fn streams_match_the_fixtures_up_to_times_ids_and_metrics() {
    let server = Server::with_control(
        r#"{"tool_call":true,"reply_tokens":["Hello","!"," How"," can"," I"," help"," you"," today","?"]}"#,
    );
    let tools =
        r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]"#;
    let same = |body: &str, path: &str, file: &str| {
        let ours = server.post(path, body).text();
        assert_eq!(
            blank_values(&ours, VOLATILE),
            blank_values(&fixture_text(file), VOLATILE),
            "{file}"
        );
    };
    same(
        &format!(r#"{{"model":"gpt-oss:20b","messages":{HELLO}}}"#),
        "/api/chat",
        "chat-stream-thinking.ndjson",
    );
    same(
        &format!(r#"{{"model":"qwen3-coder:latest",{tools},"messages":{HELLO}}}"#),
        "/api/chat",
        "chat-stream-tools.ndjson",
    );
    same(
        &format!(r#"{{"model":"gpt-oss:20b","stream":true,"messages":{HELLO}}}"#),
        "/v1/chat/completions",
        "v1-chat-stream-thinking.sse",
    );
    same(
        &format!(r#"{{"model":"qwen3-coder:latest","stream":true,{tools},"messages":{HELLO}}}"#),
        "/v1/chat/completions",
        "v1-chat-stream-tools.sse",
    );
    same(
        &format!(r#"{{"model":"qwen3-coder:latest",{tools},"messages":{HELLO}}}"#),
        "/v1/chat/completions",
        "v1-chat-completion-tools.json",
    );

    server.control("{}");
    same(
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO}}}"#),
        "/api/chat",
        "chat-stream.ndjson",
    );
    same(
        &format!(r#"{{"model":"llama3.2:3b","stream":false,"messages":{HELLO}}}"#),
        "/api/chat",
        "chat-nonstream.json",
    );
    same(
        &format!(
            r#"{{"model":"llama3.2:3b","stream":true,"stream_options":{{"include_usage":true}},"messages":{HELLO}}}"#
        ),
        "/v1/chat/completions",
        "v1-chat-stream.sse",
    );
    same(
        &format!(r#"{{"model":"llama3.2:3b","messages":{HELLO}}}"#),
        "/v1/chat/completions",
        "v1-chat-completion.json",
    );
    same(
        r#"{"model":"llama3.2:3b"}"#,
        "/api/generate",
        "generate-preload.json",
    );
    same(
        r#"{"model":"llama3.2:3b","keep_alive":0}"#,
        "/api/generate",
        "generate-unload.json",
    );
    same(
        r#"{"model":"gpt-oss:20b","messages":[]}"#,
        "/api/chat",
        "chat-preload.json",
    );
    same(
        r#"{"model":"gpt-oss:20b","messages":[],"keep_alive":"0"}"#,
        "/api/chat",
        "chat-unload.json",
    );
}

#[test]
fn an_old_server_streams_the_legacy_sse_fixture() {
    let server = Server::with_version("0.16.1");
    let ours = server
        .post(
            "/v1/chat/completions",
            &format!(
                r#"{{"model":"llama3.2:3b","stream":true,"stream_options":{{"include_usage":true}},"messages":{HELLO}}}"#
            ),
        )
        .text();
    assert_eq!(
        blank_values(&ours, VOLATILE),
        blank_values(&fixture_text("v1-chat-stream-legacy.sse"), VOLATILE)
    );
}

#[test]
fn an_invalid_control_file_keeps_the_previous_control_and_warns() {
    let server = Server::with_control(r#"{"fail_status":{"status":503,"paths":["/api/tags"]}}"#);
    assert_eq!(server.get("/api/tags").status, 503);
    server.control(r#"{"fail_status":{"status":503},"typo_key":1}"#);
    assert_eq!(server.get("/api/tags").status, 503);
    assert_eq!(
        server.get("/").status,
        200,
        "the broken file was not applied"
    );
    server.wait_for_stderr("unknown field `typo_key`");
    std::fs::remove_file(server.control_path()).unwrap();
    assert_eq!(server.get("/api/tags").body, fixture("tags.json"));
}
