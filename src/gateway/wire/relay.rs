//! An OpenAI chat completion stream (what the chain's providers answer) rewritten in another
//! inbound API's stream format: SSE framing → [`OpenAiChunkDecoder`] → IR events → an
//! [`EventWriter`]. Pure and incremental: push bytes in chunks of any size, get bytes out.

use super::anthropic_in::MessagesStreamWriter;
use super::ir::{OpenAiChunkDecoder, StreamEvent};
use super::responses_in::ResponsesStreamWriter;
use super::sse::SseParser;

/// Writes IR events in an inbound API's stream format.
pub trait EventWriter {
    /// Appends the bytes for `event` (zero or more complete SSE events) to `out`.
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>);
}

impl EventWriter for MessagesStreamWriter {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        MessagesStreamWriter::write(self, event, out)
    }
}

impl EventWriter for ResponsesStreamWriter {
    fn write(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        ResponsesStreamWriter::write(self, event, out)
    }
}

/// The whole pipeline for one answer.
#[derive(Debug)]
pub struct Relay<W> {
    parser: SseParser,
    decoder: OpenAiChunkDecoder,
    writer: W,
}

impl<W: EventWriter> Relay<W> {
    pub fn new(writer: W) -> Relay<W> {
        Relay {
            parser: SseParser::new(),
            decoder: OpenAiChunkDecoder::new(),
            writer,
        }
    }

    /// The next upstream bytes; returns the client bytes they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.push(chunk) {
            for e in self.decoder.feed(&ev) {
                self.writer.write(&e, &mut out);
            }
        }
        out
    }

    /// The upstream closed: whatever is still owed (the end of the answer, or an error event
    /// when the upstream stopped before the answer was complete).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        if let Some(ev) = self.parser.finish() {
            events.extend(self.decoder.feed(&ev));
        }
        events.extend(self.decoder.finish());
        let mut out = Vec::new();
        for e in &events {
            self.writer.write(e, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::responses_in::Echo;

    /// A text answer, then a tool call, with usage: as Ollama's OpenAI layer and the gateway's
    /// own translators write it.
    const OPENAI_STREAM: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning\":\"Hmm\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me check \\u00e9t\\u00e9.\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\r\n\r\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Tokyo\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":9,\"total_tokens\":40}}\n\n\
data: [DONE]\n\n";

    fn echo() -> Echo {
        Echo {
            id: "resp_test".into(),
            created_at: 1,
            model: "ollama/m".into(),
            instructions: None,
            max_output_tokens: None,
            temperature: None,
            top_p: None,
            tools: Vec::new(),
            effort: None,
            summary: None,
            tool_choice: serde_json::json!("auto"),
            parallel_tool_calls: true,
            fields: serde_json::Map::new(),
        }
    }

    fn run<W: EventWriter>(writer: W, pieces: &[&[u8]]) -> Vec<u8> {
        let mut relay = Relay::new(writer);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(relay.push(p));
        }
        out.extend(relay.finish());
        out
    }

    #[test]
    fn both_translators_give_the_same_bytes_at_every_split_point() {
        let anthropic = || MessagesStreamWriter::new("msg_1".into(), "ollama/m".into());
        let responses = || ResponsesStreamWriter::new(echo());
        let whole_a = run(anthropic(), &[OPENAI_STREAM]);
        let whole_r = run(responses(), &[OPENAI_STREAM]);
        let text = String::from_utf8(whole_a.clone()).unwrap();
        assert!(text.contains("\"thinking_delta\""));
        assert!(text.contains("été"));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        let text = String::from_utf8(whole_r.clone()).unwrap();
        assert!(text.contains("event: response.completed\n"));
        assert!(text.contains("\"arguments\":\"{\\\"city\\\":\\\"Tokyo\\\"}\""));
        for at in 0..=OPENAI_STREAM.len() {
            let pieces = [&OPENAI_STREAM[..at], &OPENAI_STREAM[at..]];
            assert_eq!(
                run(anthropic(), &pieces),
                whole_a,
                "anthropic, split at {at}"
            );
            assert_eq!(
                run(responses(), &pieces),
                whole_r,
                "responses, split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = OPENAI_STREAM.chunks(1).collect();
        assert_eq!(run(anthropic(), &bytes), whole_a);
        assert_eq!(run(responses(), &bytes), whole_r);
    }

    #[test]
    fn a_stream_cut_short_ends_in_each_apis_error_event() {
        let cut = &OPENAI_STREAM[..200];
        let a = String::from_utf8(run(
            MessagesStreamWriter::new("msg_1".into(), "m".into()),
            &[cut],
        ))
        .unwrap();
        assert!(a.contains("event: error\n"), "{a}");
        assert!(!a.contains("message_stop"));
        let r = String::from_utf8(run(ResponsesStreamWriter::new(echo()), &[cut])).unwrap();
        assert!(r.contains("event: error\n"), "{r}");
        assert!(r.contains("event: response.failed\n"));
        assert!(!r.contains("response.completed"));
    }
}
