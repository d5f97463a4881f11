//! A real client: the official `openai` Python SDK's Responses API (`client.responses`) talks
//! to the gateway's `/v1/responses`, which routes to the `ollama` double. `.ci/run` installs the
//! SDK into `target/peer-venv`; run alone, this test installs it there itself.

mod common;

use common::python_sdk::{
    ollama_received_tool_result, python_with, run_client, start_gateway_to_llama,
};
use common::*;
use serde_json::json;

const SCRIPT: &str = r#"
import json, sys
import openai
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)
out = {}
r = client.responses.create(model="ollama/llama3.2:3b", input="Why is the sky blue?",
    instructions="Be brief.", store=False)
out["text"] = r.output_text
out["status"] = r.status
out["id"] = r.id
out["usage"] = r.usage.total_tokens

types, deltas, final = [], [], None
for ev in client.responses.create(model="default", input="Why is the sky blue?", stream=True, store=False):
    types.append(ev.type)
    if ev.type == "response.output_text.delta":
        deltas.append(ev.delta)
    if ev.type == "response.completed":
        final = ev.response
out["types"] = types
out["stream_text"] = "".join(deltas)
out["final_text"] = final.output_text

# A function-call round trip, history rebuilt from the output items as Codex does.
tools = [{"type": "function", "name": "get_weather", "description": "Current weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
history = [{"role": "user", "content": "Weather in Tokyo?"}]
r = client.responses.create(model="default", input=history, tools=tools, store=False)
calls = [o for o in r.output if o.type == "function_call"]
out["call_name"] = calls[0].name
out["call_args"] = json.loads(calls[0].arguments)
history += r.output
history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "21C and sunny"})
after = client.responses.create(model="default", input=history, store=False)
out["after_tool"] = after.output_text

with client.responses.stream(model="default", input="Weather in Tokyo?", tools=tools, store=False) as s:
    for _ in s:
        pass
    fr = s.get_final_response()
out["stream_call_args"] = [json.loads(o.arguments) for o in fr.output if o.type == "function_call"]

try:
    client.responses.create(model="default", input="hi", previous_response_id="resp_123")
    out["previous"] = None
except openai.BadRequestError as e:
    out["previous"] = {"status": e.status_code, "param": e.body.get("param"), "message": e.message}
try:
    client.responses.create(model="gpt-9", input="hi", store=False)
    out["not_found"] = None
except openai.NotFoundError as e:
    out["not_found"] = e.status_code
print(json.dumps(out))
"#;

#[test]
fn the_openai_sdks_responses_api_talks_to_ollama_through_the_gateway() {
    let py = python_with("openai", "openai>=1.40,<4");
    let env = TestEnv::new();
    env.write_control(&json!({"tool_call": true}));
    let d = start_gateway_to_llama(&env);
    let got = run_client(
        py,
        &env,
        &d,
        "responses_client.py",
        SCRIPT,
        &[&format!("{}/v1", d.base)],
    );
    assert!(!got["text"].as_str().unwrap().is_empty());
    assert_eq!(got["status"], "completed");
    assert!(got["id"].as_str().unwrap().starts_with("resp_"));
    assert!(got["usage"].as_u64().unwrap() > 0);
    let types: Vec<&str> = got["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(types[0], "response.created");
    assert_eq!(types.last(), Some(&"response.completed"));
    assert!(types.contains(&"response.output_item.done"));
    assert!(!got["stream_text"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_text"], got["final_text"]);
    assert_eq!(got["call_name"], "get_weather");
    assert_eq!(got["call_args"], json!({"city": "Tokyo"}));
    assert!(!got["after_tool"].as_str().unwrap().is_empty());
    assert_eq!(got["stream_call_args"], json!([{"city": "Tokyo"}]));
    assert_eq!(got["previous"]["status"], 400);
    assert_eq!(got["previous"]["param"], "previous_response_id");
    assert_eq!(got["not_found"], 404);
    assert!(ollama_received_tool_result(&env, "21C and sunny"));
}
