//! Server-sent events: an incremental parser for upstream streams (Anthropic, OpenAI-compatible
//! providers) and the writer for what the gateway sends to its clients.
//!
//! The parser follows the WHATWG event-stream rules: lines end with CRLF, LF or a lone CR;
//! `:` starts a comment; `data` lines of one event are joined with `\n`; a blank line
//! dispatches; `id` and `retry` are ignored (nobody reconnects through the gateway).

use bytes::Bytes;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the event had one (Anthropic always sends it; OpenAI never).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// `data: [DONE]`, the last event of every OpenAI chat stream.
pub const SSE_DONE: Bytes = Bytes::from_static(b"data: [DONE]\n\n");

/// One SSE event carrying `json`: `data: <json>\n\n`. `json` must be a single line (serde_json's
/// compact output is).
pub fn sse_data(json: &str) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Incremental parser: push bytes as they arrive, in chunks of any size, and get the events
/// completed by them.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes not yet consumed: at most one partial line.
    buf: Vec<u8>,
    /// How far into `buf` we already looked for a line end (so a long line arriving in many
    /// small chunks is not rescanned from its start every time).
    scanned: usize,
    /// Whether the stream's first bytes were checked for a UTF-8 byte-order mark.
    bom_checked: bool,
    pending: PendingEvent,
}

#[derive(Debug, Default)]
struct PendingEvent {
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feed the next bytes of the stream; returns the events they complete, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return events; // could still be a BOM; wait for more
            }
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            self.bom_checked = true;
        }

        let mut line_start = 0;
        let mut pos = self.scanned;
        loop {
            let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[pos..]) else {
                pos = self.buf.len();
                break;
            };
            let end = pos + offset;
            let next = if self.buf[end] == b'\r' {
                match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    // A CR at the very end might be the first half of a CRLF: wait.
                    None => {
                        pos = end;
                        break;
                    }
                }
            } else {
                end + 1
            };
            if let Some(event) = self.pending.line(&self.buf[line_start..end]) {
                events.push(event);
            }
            line_start = next;
            pos = next;
        }
        self.buf.drain(..line_start);
        self.scanned = pos - line_start;
        events
    }

    /// Bytes held for an event not complete yet (its partial line and its data so far): lets the
    /// caller cap an upstream that never ends an event.
    pub fn pending_len(&self) -> usize {
        self.buf.len() + self.pending.data.len()
    }

    /// The stream ended. Returns the last event if the upstream did not terminate it with a
    /// blank line (the standard says to drop it; servers that forget the final blank line are
    /// common enough that keeping it is the kinder choice).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let mut last = None;
        if !rest.is_empty() {
            let line = rest.strip_suffix(b"\r").unwrap_or(&rest);
            last = self.pending.line(line);
        }
        last.or_else(|| self.pending.line(b""))
    }
}

impl PendingEvent {
    /// Handles one line (without its terminator); returns an event when the line dispatches one.
    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // comment / keep-alive
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry, unknown fields
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            out.extend(parser.push(chunk));
        }
        out.extend(parser.finish());
        out
    }

    #[test]
    fn anthropic_style_events_with_names() {
        let input = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n";
        assert_eq!(
            parse_in_pieces(input, 1000),
            vec![
                ev(Some("message_start"), "{\"type\":\"message_start\"}"),
                ev(Some("ping"), "{\"type\": \"ping\"}"),
            ]
        );
    }

    #[test]
    fn crlf_cr_and_lf_line_ends_are_equivalent() {
        let lf = b"event: a\ndata: 1\n\ndata: 2\n\n".to_vec();
        let crlf = b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n".to_vec();
        let cr = b"event: a\rdata: 1\r\rdata: 2\r\r".to_vec();
        let want = vec![ev(Some("a"), "1"), ev(None, "2")];
        for input in [lf, crlf, cr] {
            for piece in 1..input.len() {
                assert_eq!(parse_in_pieces(&input, piece), want, "piece {piece}");
            }
        }
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let input = b"data: first\ndata:second\ndata\ndata:  third\n\n";
        assert_eq!(
            parse_in_pieces(input, 3),
            vec![ev(None, "first\nsecond\n\n third")]
        );
    }

    #[test]
    fn comments_ids_retries_and_empty_events_produce_nothing() {
        let input = b": keep-alive\n\nid: 7\nretry: 1000\n\n:another\ndata: x\n\n";
        assert_eq!(parse_in_pieces(input, 2), vec![ev(None, "x")]);
    }

    #[test]
    fn event_name_does_not_leak_into_the_next_event() {
        let input = b"event: error\ndata: a\n\ndata: b\n\n";
        assert_eq!(
            parse_in_pieces(input, 1),
            vec![ev(Some("error"), "a"), ev(None, "b")]
        );
    }

    #[test]
    fn unterminated_last_event_is_kept_at_finish() {
        assert_eq!(parse_in_pieces(b"data: tail", 4), vec![ev(None, "tail")]);
        assert_eq!(parse_in_pieces(b"data: tail\r", 4), vec![ev(None, "tail")]);
        assert_eq!(parse_in_pieces(b"data: tail\n", 4), vec![ev(None, "tail")]);
    }

    #[test]
    fn byte_order_mark_is_skipped_even_when_split() {
        let input = b"\xEF\xBB\xBFdata: x\n\n";
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece), vec![ev(None, "x")]);
        }
    }

    #[test]
    fn multibyte_utf8_split_across_chunks_survives() {
        let input = "data: héllo — 東京\n\n".as_bytes();
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                vec![ev(None, "héllo — 東京")]
            );
        }
    }

    #[test]
    fn writer_frames_json_as_one_data_event() {
        assert_eq!(&sse_data("{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(&SSE_DONE[..], b"data: [DONE]\n\n");
    }
}
