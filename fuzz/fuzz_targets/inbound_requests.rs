//! The typed inbound request parsers (`/v1/messages`, `/v1/messages/count_tokens`,
//! `/v1/responses`, `/v1/chat/completions`) and their translation into the IR and back out to
//! OpenAI's wire: arbitrary bytes must never panic; a refusal always says what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclawd::gateway::wire::chat_in::{self, ChatCompletionRequest};
use openclawd::gateway::wire::{anthropic_in, responses_in, WireError};

fn said_why(e: &WireError) {
    match e {
        WireError::BadRequest { message, .. } => assert!(!message.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    match anthropic_in::parse(data).and_then(|r| r.to_ir()) {
        Ok(ir) => {
            let _ = ir.to_openai();
        }
        Err(e) => said_why(&e),
    }
    match anthropic_in::parse_count(data).and_then(|r| r.estimate()) {
        Ok(_) => {}
        Err(e) => said_why(&e),
    }
    match responses_in::parse(data).and_then(|r| r.to_ir()) {
        Ok(ir) => {
            let _ = ir.to_openai();
        }
        Err(e) => said_why(&e),
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        match chat_in::validate(&v) {
            Ok(()) => {
                let view = ChatCompletionRequest::parse(&v).expect("validated bodies parse");
                if let Ok(ir) = view.to_ir() {
                    let _ = ir.to_openai();
                }
            }
            Err(e) => said_why(&e),
        }
    }
});
