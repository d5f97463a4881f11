//! Drives a translating stream: upstream bytes → framer → translator → OpenAI SSE bytes.
//! Holds the answer back until its first event exists, so a failure before that can still
//! fall over to the next model.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{AttemptError, FailureClass, SseStream};
use crate::gateway::wire::openai::sse_error_event;
use crate::gateway::wire::sse::{SseEvent, SseParser};
use crate::gateway::wire::{is_context_overflow, TranslateEvent};

/// A framer plus translator for one upstream dialect.
pub trait StreamTranslate: Send + 'static {
    fn push(&mut self, chunk: &[u8]) -> Vec<TranslateEvent>;
    /// The upstream closed; anything still owed (or the error of a premature end).
    fn finish(&mut self) -> Vec<TranslateEvent>;
    /// Called once when the answer ended well, e.g. to record tokens/s.
    fn completed(&mut self) {}
}

/// The translator of one SSE dialect's events (Anthropic Messages, Gemini, OpenAI Responses).
pub trait SseEventTranslator: Send + 'static {
    /// Who sends these events, for error messages ("Gemini", "the Responses API").
    const UPSTREAM: &'static str;
    fn feed(&mut self, event: &SseEvent) -> Vec<TranslateEvent>;
    /// The upstream closed; anything still owed (or the error of a premature end).
    fn finish(&mut self) -> Vec<TranslateEvent>;
}

/// SSE framing in front of an event translator: the one [`StreamTranslate`] of every SSE
/// dialect. An event that never ends (a wrong server streaming a download) is not buffered
/// without bound.
pub struct SseTranslated<T> {
    events: SseParser,
    translator: T,
}

impl<T> SseTranslated<T> {
    pub fn new(translator: T) -> SseTranslated<T> {
        SseTranslated {
            events: SseParser::new(),
            translator,
        }
    }
}

impl<T: SseEventTranslator> StreamTranslate for SseTranslated<T> {
    fn push(&mut self, chunk: &[u8]) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        for ev in self.events.push(chunk) {
            out.extend(self.translator.feed(&ev));
        }
        if self.events.pending_len() > super::MAX_UNFRAMED_BYTES {
            out.push(TranslateEvent::UpstreamError(format!(
                "{} sent more than {} MiB without ending an event; is the provider's baseUrl right?",
                T::UPSTREAM,
                super::MAX_UNFRAMED_BYTES >> 20
            )));
        }
        out
    }

    fn finish(&mut self) -> Vec<TranslateEvent> {
        let mut out = Vec::new();
        if let Some(ev) = self.events.finish() {
            out.extend(self.translator.feed(&ev));
        }
        out.extend(self.translator.finish());
        out
    }
}

type Upstream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, super::UpstreamError>> + Send>>;

struct Driver<T> {
    upstream: Upstream,
    translator: T,
    pending: VecDeque<Bytes>,
    ended: bool,
    /// Bytes received since the translator last produced anything: a line or event that
    /// never ends (a wrong server streaming a download) must not be buffered without bound.
    unframed: usize,
}

enum Step {
    Event(Bytes),
    Error(String),
    Eof,
}

impl<T: StreamTranslate> Driver<T> {
    fn absorb(&mut self, events: Vec<TranslateEvent>) -> Option<String> {
        for e in events {
            match e {
                TranslateEvent::Sse(b) => self.pending.push_back(b),
                TranslateEvent::UpstreamError(msg) => return Some(msg),
            }
        }
        None
    }

    async fn next_step(&mut self) -> Step {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Step::Event(b);
            }
            if self.ended {
                return Step::Eof;
            }
            let events = match self.upstream.next().await {
                Some(Ok(chunk)) => {
                    let events = self.translator.push(&chunk);
                    self.unframed = if events.is_empty() {
                        self.unframed.saturating_add(chunk.len())
                    } else {
                        0
                    };
                    if self.unframed > super::MAX_UNFRAMED_BYTES {
                        self.ended = true;
                        return Step::Error(format!(
                            "the upstream sent more than {} MiB without completing one line or event; is the provider's baseUrl right?",
                            super::MAX_UNFRAMED_BYTES >> 20
                        ));
                    }
                    events
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Step::Error(format!("upstream connection failed: {e}"));
                }
                None => {
                    self.ended = true;
                    let events = self.translator.finish();
                    if let Some(msg) = self.absorb(events) {
                        return Step::Error(msg);
                    }
                    self.translator.completed();
                    continue;
                }
            };
            if let Some(msg) = self.absorb(events) {
                self.ended = true;
                return Step::Error(msg);
            }
        }
    }
}

/// Waits (up to `first_byte`) for the first translated event, then streams the rest. After
/// the first byte the same budget bounds each silence: an upstream that stalls mid-answer
/// ends the stream with an error event instead of holding the client forever.
pub async fn drive<T: StreamTranslate>(
    upstream: impl Stream<Item = Result<Bytes, super::UpstreamError>> + Send + 'static,
    translator: T,
    first_byte: Duration,
) -> Result<SseStream, AttemptError> {
    let mut d = Driver {
        upstream: Box::pin(upstream),
        translator,
        pending: VecDeque::new(),
        ended: false,
        unframed: 0,
    };
    let first = match tokio::time::timeout(first_byte, d.next_step()).await {
        Err(_) => {
            return Err(AttemptError::new(
                FailureClass::Timeout,
                format!("no first token within {first_byte:?}"),
            ))
        }
        Ok(Step::Event(b)) => b,
        Ok(Step::Error(msg)) => {
            let class = if is_context_overflow(&msg) {
                FailureClass::ContextLength
            } else {
                FailureClass::ServerError
            };
            return Err(AttemptError::new(class, msg));
        }
        Ok(Step::Eof) => {
            return Err(AttemptError::new(
                FailureClass::ServerError,
                "the upstream answered nothing",
            ))
        }
    };
    d.pending.push_front(first);
    let stream = futures_util::stream::unfold((d, false), move |(mut d, done)| async move {
        if done {
            return None;
        }
        let step = match tokio::time::timeout(first_byte, d.next_step()).await {
            Ok(step) => step,
            Err(_) => Step::Error(super::stalled_message(first_byte)),
        };
        match step {
            Step::Event(b) => Some((b, (d, false))),
            Step::Error(msg) => {
                tracing::warn!("stream failed after its first byte: {msg}");
                Some((sse_error_event(&msg, "api_error"), (d, true)))
            }
            Step::Eof => None,
        }
    });
    Ok(Box::pin(stream))
}
