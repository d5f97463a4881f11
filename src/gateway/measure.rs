//! How fast a streamed chat completion is, as its client sees it: time to first token, decode
//! speed and total time. One definition, shared by `openclawd bench` (which reads the gateway's
//! streams) and the gateway's `/metrics` histograms (which watch the streams it sends).
//!
//! Definitions:
//! * a *token chunk* is an OpenAI `chat.completion.chunk` whose delta carries content,
//!   reasoning (`reasoning` or `reasoning_content`) or tool calls; role-only, finish and usage
//!   chunks are not tokens;
//! * *time to first token* (TTFT): from `started` (the request was sent, or arrived) to the
//!   first token chunk;
//! * *decode speed*: the tokens after the first, over the time from the first token chunk to the
//!   last one. The token count is the upstream's `usage.completion_tokens` when the stream
//!   reports it ([`TokenSource::Usage`]), else the number of token chunks
//!   ([`TokenSource::CountedChunks`], about one token each for Ollama and most local servers);
//! * *total*: from `started` to the end of the stream.
//!
//! Ollama's native timings (`load_duration` and friends) do not exist in OpenAI's wire format;
//! the gateway adds them to its non-streamed Ollama answers under [`EXTENSION_KEY`]
//! (see [`native_timings`]).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::metrics::Metrics;
pub use super::wire::ollama::{add_native_timings, native_timings, EXTENSION_KEY};
use super::wire::sse::SseParser;

/// The largest unfinished event the meter holds (a chunk of a real answer is a few hundred bytes).
const MAX_METERED_EVENT: usize = 1 << 20;
use super::wire::SseStream;

/// Where a decode speed's token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `usage.completion_tokens` reported by the upstream.
    Usage,
    /// Token chunks counted on the stream (the upstream reported no usage).
    CountedChunks,
}

impl TokenSource {
    pub fn label(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::CountedChunks => "chunks",
        }
    }
}

/// The measurement of one finished stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTiming {
    pub ttft: Option<Duration>,
    pub total: Duration,
    /// Tokens generated: `usage.completion_tokens`, else the token chunks counted.
    pub completion_tokens: u64,
    pub token_source: TokenSource,
    /// `None` when it cannot be measured: fewer than two token chunks, or no time between them.
    pub tokens_per_second: Option<f64>,
    pub token_chunks: u64,
    /// `data: [DONE]` was seen: the answer is complete.
    pub done: bool,
    /// The message of an error event (`data: {"error":{..}}`), which ends a failed stream.
    pub error: Option<String>,
}

/// Reads a chat completion stream's bytes as they arrive and times it.
#[derive(Debug)]
pub struct StreamMeter {
    started: Instant,
    parser: SseParser,
    /// An event outgrew [`MAX_METERED_EVENT`]: the rest of the stream is not measured.
    gave_up: bool,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
    token_chunks: u64,
    usage_completion_tokens: Option<u64>,
    done: bool,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaView<'a>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl DeltaView<'_> {
    fn carries_tokens(&self) -> bool {
        let text = |t: &Option<Cow<'_, str>>| t.as_deref().is_some_and(|t| !t.is_empty());
        text(&self.content)
            || text(&self.reasoning)
            || text(&self.reasoning_content)
            || self.tool_calls.as_ref().is_some_and(|c| !c.is_empty())
    }
}

/// Whether a chat chunk's delta carries a token, read without parsing it: `None` when the event
/// may hold `usage` or an `error`, or a field the scan cannot judge — then it is parsed.
///
/// Sound on valid JSON: a key `"content"` cannot occur inside a string (its quotes would be
/// escaped), so a match is a key, and its value's first byte tells empty from not.
fn scan_delta(data: &str) -> Option<bool> {
    // (key, whether its value is a list rather than a string); `None`: parse the event.
    const KEYS: [(&[u8], Option<bool>); 6] = [
        (b"\"content\"", Some(false)),
        (b"\"reasoning\"", Some(false)),
        (b"\"reasoning_content\"", Some(false)),
        (b"\"tool_calls\"", Some(true)),
        (b"\"usage\"", None),
        (b"\"error\"", None),
    ];
    let bytes = data.as_bytes();
    let mut tokens = false;
    // One pass over the quotes (memchr): each is checked against the few keys that matter.
    for q in memchr::memchr_iter(b'"', bytes) {
        let at = &bytes[q..];
        let Some((key, list)) = KEYS.iter().find(|(k, _)| at.starts_with(k)) else {
            continue;
        };
        let Some(rest) = at[key.len()..].trim_ascii_start().strip_prefix(b":") else {
            continue; // a value that happens to read like a key: not one
        };
        let list = (*list)?;
        let value = rest.trim_ascii_start();
        match (value.first()?, list) {
            (b'n', _) if value.starts_with(b"null") => {}
            (b'"', false) if value.get(1) == Some(&b'"') => {}
            (b'"', false) => tokens = true,
            (b'[', true) if value[1..].trim_ascii_start().first() == Some(&b']') => {}
            (b'[', true) => tokens = true,
            _ => return None,
        }
    }
    Some(tokens)
}

impl StreamMeter {
    /// `started`: when the request was sent (client side) or arrived (gateway side).
    pub fn new(started: Instant) -> StreamMeter {
        StreamMeter {
            started,
            parser: SseParser::new(),
            gave_up: false,
            first_token_at: None,
            last_token_at: None,
            token_chunks: 0,
            usage_completion_tokens: None,
            done: false,
            error: None,
        }
    }

    /// Reads bytes of the stream that arrived at `at`. Returns the time to first token when
    /// these bytes carried the first one.
    pub fn observe(&mut self, bytes: &[u8], at: Instant) -> Option<Duration> {
        let had_first = self.first_token_at.is_some();
        if self.gave_up {
            return None;
        }
        for event in self.parser.push(bytes) {
            self.event(&event.data, at);
        }
        // An event that never ends would grow without bound: stop metering this stream (the
        // relay itself caps and ends it).
        if self.parser.pending_len() > MAX_METERED_EVENT {
            self.gave_up = true;
            self.parser = SseParser::new();
        }
        if had_first {
            None
        } else {
            self.ttft()
        }
    }

    /// `data: [DONE]` was seen: the answer is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Time to first token, once seen.
    pub fn ttft(&self) -> Option<Duration> {
        self.first_token_at
            .map(|t| t.saturating_duration_since(self.started))
    }

    fn event(&mut self, data: &str, at: Instant) {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        // Most events are plain deltas: read from their bytes whether they carry a token.
        // Only an event that may hold usage or an error (or one the scan cannot tell) is parsed.
        if let Some(tokens) = scan_delta(data) {
            if tokens {
                self.token_chunks += 1;
                self.first_token_at.get_or_insert(at);
                self.last_token_at = Some(at);
            }
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChunkView<'_>>(data) else {
            return; // not a chunk we understand; it carries nothing we measure
        };
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| error.as_str().map(str::to_owned))
                .unwrap_or_else(|| error.to_string());
            self.error = Some(message);
            return;
        }
        if let Some(n) = chunk.usage.and_then(|u| u.completion_tokens) {
            self.usage_completion_tokens = Some(n);
        }
        if chunk
            .choices
            .iter()
            .any(|c| c.delta.as_ref().is_some_and(DeltaView::carries_tokens))
        {
            self.token_chunks += 1;
            self.first_token_at.get_or_insert(at);
            self.last_token_at = Some(at);
        }
    }

    /// The stream ended at `at`.
    pub fn finish(mut self, at: Instant) -> StreamTiming {
        if let Some(event) = self.parser.finish().filter(|_| !self.gave_up) {
            self.event(&event.data, at);
        }
        let (completion_tokens, token_source) = match self.usage_completion_tokens {
            Some(n) => (n, TokenSource::Usage),
            None => (self.token_chunks, TokenSource::CountedChunks),
        };
        let tokens_per_second = match (self.first_token_at, self.last_token_at) {
            (Some(first), Some(last)) => decode_rate(completion_tokens, last - first),
            _ => None,
        };
        StreamTiming {
            ttft: self.ttft(),
            total: at.saturating_duration_since(self.started),
            completion_tokens,
            token_source,
            tokens_per_second,
            token_chunks: self.token_chunks,
            done: self.done,
            error: self.error,
        }
    }
}

/// Tokens after the first over the time between the first token and the last: the first token's
/// cost belongs to the time to first token, not to decoding.
pub fn decode_rate(completion_tokens: u64, first_to_last: Duration) -> Option<f64> {
    let secs = first_to_last.as_secs_f64();
    (completion_tokens >= 2 && secs > 0.0).then(|| (completion_tokens - 1) as f64 / secs)
}

/// Watches a stream on its way to the client without holding anything back: each chunk is
/// passed on the moment it is polled, and a copy is read by a [`StreamMeter`]. Records the time
/// to first token when the first token goes out, and the decode speed when `[DONE]` goes out
/// (a stream that fails or is cut short has no decode speed).
pub fn metered(
    inner: SseStream,
    started: Instant,
    metrics: Arc<Metrics>,
    model_ref: String,
) -> SseStream {
    metered_then(inner, started, metrics, model_ref, None)
}

/// Called once with a stream's timing when it ends: completed, failed, or dropped early.
pub type OnStreamEnd = Box<dyn FnOnce(&StreamTiming) + Send>;

/// [`metered`], and `on_end` gets the stream's timing when it ends (the request log).
pub fn metered_then(
    inner: SseStream,
    started: Instant,
    metrics: Arc<Metrics>,
    model_ref: String,
    on_end: Option<OnStreamEnd>,
) -> SseStream {
    Box::pin(Metered {
        inner,
        meter: Some(StreamMeter::new(started)),
        metrics,
        model_ref,
        on_end,
    })
}

struct Metered {
    inner: SseStream,
    /// `None` once the answer was complete and recorded.
    meter: Option<StreamMeter>,
    metrics: Arc<Metrics>,
    model_ref: String,
    on_end: Option<OnStreamEnd>,
}

impl Stream for Metered {
    type Item = bytes::Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = this.inner.as_mut().poll_next(cx);
        if let (Poll::Ready(Some(bytes)), Some(meter)) = (&polled, this.meter.as_mut()) {
            let now = Instant::now();
            let m = &this.metrics;
            if let Some(ttft) = meter.observe(bytes, now) {
                m.model(&m.ttft, &this.model_ref, ttft.as_secs_f64());
            }
            // Recorded as `[DONE]` leaves, before the client can read it and ask /metrics.
            if meter.is_done() {
                if let Some(meter) = this.meter.take() {
                    let timing = meter.finish(now);
                    if let (None, Some(rate)) = (&timing.error, timing.tokens_per_second) {
                        m.model(&m.tokens_per_second, &this.model_ref, rate);
                    }
                    if let Some(on_end) = this.on_end.take() {
                        on_end(&timing);
                    }
                }
            }
        }
        polled
    }
}

impl Drop for Metered {
    /// A stream that ends without `[DONE]` (an upstream error, a client that went away).
    fn drop(&mut self) {
        if let (Some(meter), Some(on_end)) = (self.meter.take(), self.on_end.take()) {
            on_end(&meter.finish(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::ollama::OllamaMetrics;
    use futures_util::StreamExt;

    const ROLE: &[u8] = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n";

    fn content(text: &str) -> Vec<u8> {
        format!("data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n", serde_json::to_string(text).unwrap()).into_bytes()
    }

    const FINISH: &[u8] =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    const DONE: &[u8] = b"data: [DONE]\n\n";

    fn usage(n: u64) -> Vec<u8> {
        format!("data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n", n + 3).into_bytes()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counted_chunks_give_ttft_rate_and_total() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(t0);
        assert_eq!(
            m.observe(ROLE, t0 + ms(100)),
            None,
            "a role chunk is no token"
        );
        assert_eq!(m.observe(&content("Hel"), t0 + ms(200)), Some(ms(200)));
        for i in 1..=10 {
            assert_eq!(m.observe(&content("lo"), t0 + ms(200 + 50 * i)), None);
        }
        m.observe(FINISH, t0 + ms(760));
        m.observe(DONE, t0 + ms(760));
        let t = m.finish(t0 + ms(770));
        assert_eq!(t.ttft, Some(ms(200)));
        assert_eq!(t.total, ms(770));
        assert_eq!(t.token_source, TokenSource::CountedChunks);
        assert_eq!(t.completion_tokens, 11);
        assert_eq!(t.token_chunks, 11);
        // 10 tokens after the first in 500 ms.
        assert!((t.tokens_per_second.unwrap() - 20.0).abs() < 1e-9);
        assert!(t.done);
        assert_eq!(t.error, None);
    }

    #[test]
    fn usage_wins_over_counted_chunks() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(t0);
        // A provider that sends several tokens per chunk.
        m.observe(&content("one two three"), t0 + ms(100));
        m.observe(&content("four five six"), t0 + ms(300));
        m.observe(&[FINISH, &usage(21), DONE].concat(), t0 + ms(310));
        let t = m.finish(t0 + ms(310));
        assert_eq!(t.token_source, TokenSource::Usage);
        assert_eq!(t.completion_tokens, 21);
        assert!((t.tokens_per_second.unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn events_split_across_reads_and_reasoning_and_tool_calls_count() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(t0);
        let reasoning =
            b"data: {\"choices\":[{\"delta\":{\"content\":\"\",\"reasoning\":\"Hmm\"}}]}\n\n";
        let (a, b) = reasoning.split_at(20);
        assert_eq!(m.observe(a, t0 + ms(10)), None);
        assert_eq!(m.observe(b, t0 + ms(20)), Some(ms(20)));
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"ok\"}}]}\n\n",
            t0 + ms(30),
        );
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
            t0 + ms(40),
        );
        m.observe(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n",
            t0 + ms(50),
        );
        let t = m.finish(t0 + ms(60));
        assert_eq!(t.token_chunks, 3);
        assert!(!t.done, "no [DONE]: incomplete");
    }

    #[test]
    fn the_byte_scan_agrees_with_the_parse() {
        let parsed = |data: &str| {
            let chunk: ChunkView<'_> = serde_json::from_str(data).expect(data);
            chunk
                .choices
                .iter()
                .any(|c| c.delta.as_ref().is_some_and(DeltaView::carries_tokens))
        };
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content" : "x"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":null,"reasoning":"hmm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"say \"content\": \"\" now"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[ ]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"content\":\"\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[]}"#,
        ];
        for data in chunks {
            assert_eq!(scan_delta(data), Some(parsed(data)), "{data}");
        }
        // Usage, errors and shapes the scan cannot judge are parsed.
        for data in [
            r#"{"choices":[],"usage":{"completion_tokens":3}}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
        ] {
            assert_eq!(scan_delta(data), None, "{data}");
        }
    }

    #[test]
    fn an_error_event_is_reported() {
        let t0 = Instant::now();
        let mut m = StreamMeter::new(t0);
        m.observe(&content("a"), t0 + ms(1));
        m.observe(
            b"data: {\"error\":{\"message\":\"runner crashed\",\"type\":\"api_error\",\"param\":null,\"code\":null}}\n\n",
            t0 + ms(2),
        );
        let t = m.finish(t0 + ms(3));
        assert_eq!(t.error.as_deref(), Some("runner crashed"));
        assert!(!t.done);
        assert_eq!(t.tokens_per_second, None, "one token: no decode speed");
    }

    #[test]
    fn decode_rate_needs_two_tokens_and_some_time() {
        assert_eq!(decode_rate(1, ms(100)), None);
        assert_eq!(decode_rate(5, Duration::ZERO), None);
        assert_eq!(decode_rate(5, ms(400)), Some(10.0));
    }

    #[test]
    fn native_timings_are_milliseconds_under_the_extension_key() {
        let m = OllamaMetrics {
            load_duration: Some(ms(2310)),
            eval_count: Some(7),
            eval_duration: Some(ms(350)),
            ..Default::default()
        };
        let mut body = serde_json::json!({"object": "chat.completion"});
        add_native_timings(&mut body, &m);
        assert_eq!(
            body[EXTENSION_KEY],
            serde_json::json!({"load_duration_ms": 2310.0, "eval_ms": 350.0, "eval_count": 7})
        );
        let mut untouched = serde_json::json!({});
        add_native_timings(&mut untouched, &OllamaMetrics::default());
        assert_eq!(untouched, serde_json::json!({}));
    }

    #[tokio::test]
    async fn a_stream_cut_short_has_a_ttft_but_no_decode_speed() {
        let chunks: Vec<bytes::Bytes> = vec![content("a").into(), content("b").into()];
        let metrics = Arc::new(Metrics::default());
        let s = metered(
            Box::pin(futures_util::stream::iter(chunks)),
            Instant::now(),
            metrics.clone(),
            "ollama/m".into(),
        );
        assert_eq!(s.count().await, 2);
        let text = metrics.render();
        assert!(text.contains("openclawd_time_to_first_token_seconds_count{model=\"ollama/m\"} 1"));
        assert!(!text.contains("openclawd_tokens_per_second_count{model=\"ollama/m\"}"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wrapper_passes_chunks_through_unchanged_and_records_both_histograms() {
        let chunks: Vec<bytes::Bytes> = vec![
            ROLE.to_vec().into(),
            content("a").into(),
            content("b").into(),
            content("c").into(),
            [FINISH, DONE].concat().into(),
        ];
        let delayed = futures_util::stream::iter(chunks.clone()).then(|c| async move {
            tokio::time::sleep(ms(100)).await;
            c
        });
        let metrics = Arc::new(Metrics::default());
        let out: Vec<bytes::Bytes> = metered(
            Box::pin(delayed),
            Instant::now(),
            metrics.clone(),
            "ollama/m".into(),
        )
        .collect()
        .await;
        assert_eq!(out, chunks);
        let text = metrics.render();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("model=\"ollama/m\""))
                .unwrap_or_else(|| panic!("{name} in\n{text}"))
                .to_string()
        };
        let value = |name: &str| -> f64 {
            let l = line(name);
            l.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(value("openclawd_time_to_first_token_seconds_count"), 1.0);
        assert!((value("openclawd_time_to_first_token_seconds_sum") - 0.2).abs() < 1e-9);
        assert_eq!(value("openclawd_tokens_per_second_count"), 1.0);
        // Two tokens after the first in 200 ms.
        assert!((value("openclawd_tokens_per_second_sum") - 10.0).abs() < 1e-9);
    }
}
