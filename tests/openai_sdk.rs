//! A real client: the official `openai` Python SDK talks to the gateway, which talks to the
//! `ollama` double. `.ci/run` installs the SDK into `target/peer-venv`; run alone, this test
//! installs it there itself.

mod common;

use common::python_sdk::{python_with, run_client, start_gateway_to_llama};
use common::*;

const SCRIPT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
out = {}
r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
out["text"] = r.choices[0].message.content
out["finish"] = r.choices[0].finish_reason
parts = []
usage = None
stream = client.chat.completions.create(model="ollama/llama3.2:3b", stream=True,
    stream_options={"include_usage": True}, messages=[{"role": "user", "content": "hi"}])
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
out["stream_text"] = "".join(parts)
out["stream_usage"] = usage
out["models"] = [m.id for m in client.models.list()]
print(json.dumps(out))
"#;

#[test]
fn the_openai_python_sdk_chats_through_the_gateway_streaming_and_not() {
    let py = python_with("openai", "openai>=1.40,<4");
    let env = TestEnv::new();
    let d = start_gateway_to_llama(&env);
    let got = run_client(
        py,
        &env,
        &d,
        "client.py",
        SCRIPT,
        &[&format!("{}/v1", d.base)],
    );
    assert!(!got["text"].as_str().unwrap().is_empty());
    assert_eq!(got["finish"], "stop");
    assert!(!got["stream_text"].as_str().unwrap().is_empty());
    assert!(got["stream_usage"].as_u64().unwrap() > 0);
    assert_eq!(got["models"][0], "ollama/llama3.2:3b");
}
