//! A real client: the official `anthropic` Python SDK talks to the gateway's `/v1/messages`,
//! which routes to the `ollama` double. `.ci/run` installs the SDK into `target/peer-venv`; run
//! alone, this test installs it there itself.

mod common;

use common::python_sdk::{
    ollama_received_tool_result, python_with, run_client, start_gateway_to_llama,
};
use common::*;
use serde_json::json;

const GATEWAY_TOKEN: &str = "gw-anthropic-sdk-token";

const SCRIPT: &str = r#"
import json, sys
import anthropic
client = anthropic.Anthropic(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
out = {}
m = client.messages.create(model="ollama/llama3.2:3b", max_tokens=100, system="Be brief.",
    messages=[{"role": "user", "content": "Why is the sky blue?"}])
out["text"] = m.content[0].text
out["stop"] = m.stop_reason
out["id"] = m.id
out["output_tokens"] = m.usage.output_tokens

with client.messages.stream(model="default", max_tokens=100,
        messages=[{"role": "user", "content": "Why is the sky blue?"}]) as stream:
    parts = [t for t in stream.text_stream]
    final = stream.get_final_message()
out["stream_text"] = "".join(parts)
out["stream_final_text"] = final.content[0].text
out["stream_stop"] = final.stop_reason

# Claude Code's path: the beta namespace (`?beta=true`) and count_tokens.
b = client.beta.messages.create(model="default", max_tokens=50,
    messages=[{"role": "user", "content": "hi"}], betas=["interleaved-thinking-2025-05-14"])
out["beta_text"] = b.content[0].text
out["count"] = client.messages.count_tokens(model="default", system="You are a scientist",
    messages=[{"role": "user", "content": "Hello, Claude"}]).input_tokens

# A tool round trip: the model calls get_weather, the result goes back.
tools = [{"name": "get_weather", "description": "Current weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
ask = {"role": "user", "content": "Weather in Tokyo?"}
m = client.messages.create(model="default", max_tokens=100, tools=tools, messages=[ask])
use = [c for c in m.content if c.type == "tool_use"][0]
out["tool_stop"] = m.stop_reason
out["tool_name"] = use.name
out["tool_input"] = use.input
after = client.messages.create(model="default", max_tokens=100, messages=[ask,
    {"role": "assistant", "content": m.content},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21C and sunny"}]}])
out["after_tool"] = after.content[0].text
with client.messages.stream(model="default", max_tokens=100, tools=tools, messages=[ask]) as stream:
    final = stream.get_final_message()
out["stream_tool_input"] = [c.input for c in final.content if c.type == "tool_use"]

try:
    client.messages.create(model="claude-9-opus", max_tokens=10, messages=[ask])
    out["not_found"] = None
except anthropic.NotFoundError as e:
    out["not_found"] = {"status": e.status_code, "type": e.body["error"]["type"], "message": e.body["error"]["message"]}
try:
    client.messages.create(model="default", max_tokens=10, messages=[ask], extra_body={"max_tokens": "ten"})
    out["bad_request"] = None
except anthropic.BadRequestError as e:
    out["bad_request"] = e.body["error"]["message"]
print(json.dumps(out))
"#;

#[test]
fn the_anthropic_python_sdk_talks_to_ollama_through_the_gateway() {
    let py = python_with("anthropic", "anthropic>=0.40,<1");
    let mut env = TestEnv::new();
    env.extra_env
        .push(("OPENCLAW_GATEWAY_TOKEN".into(), GATEWAY_TOKEN.into()));
    env.write_control(&json!({"tool_call": true}));
    let d = start_gateway_to_llama(&env);
    let got = run_client(
        py,
        &env,
        &d,
        "anthropic_client.py",
        SCRIPT,
        &[&d.base, GATEWAY_TOKEN],
    );
    assert!(!got["text"].as_str().unwrap().is_empty());
    assert_eq!(got["stop"], "end_turn");
    assert!(got["id"].as_str().unwrap().starts_with("msg_"));
    assert!(got["output_tokens"].as_u64().unwrap() > 0);
    assert!(!got["stream_text"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_text"], got["stream_final_text"]);
    assert_eq!(got["stream_stop"], "end_turn");
    assert!(!got["beta_text"].as_str().unwrap().is_empty());
    assert!(got["count"].as_u64().unwrap() > 0);
    assert_eq!(got["tool_stop"], "tool_use");
    assert_eq!(got["tool_name"], "get_weather");
    assert_eq!(got["tool_input"], json!({"city": "Tokyo"}));
    assert!(!got["after_tool"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_tool_input"], json!([{"city": "Tokyo"}]));
    assert_eq!(got["not_found"]["status"], 404);
    assert_eq!(got["not_found"]["type"], "not_found_error");
    assert!(got["not_found"]["message"]
        .as_str()
        .unwrap()
        .contains("claude-9-opus"));
    assert!(got["bad_request"].as_str().unwrap().contains("max_tokens"));
    // The tool result reached the model as OpenAI-style tool turn, translated to Ollama's.
    assert!(ollama_received_tool_result(&env, "21C and sunny"));
}
