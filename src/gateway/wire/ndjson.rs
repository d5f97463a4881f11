//! Newline-delimited JSON framing (Ollama's native streams): split byte chunks into lines.

use bytes::{Bytes, BytesMut};

/// Incremental line splitter. Lines come out without their `\n` (and without a `\r` before it);
/// blank lines are skipped. Each line shares the splitter's buffer (no copy).
#[derive(Debug, Default)]
pub struct NdjsonSplitter {
    buf: BytesMut,
    /// How far into `buf` we already looked for `\n`.
    scanned: usize,
}

impl NdjsonSplitter {
    pub fn new() -> NdjsonSplitter {
        NdjsonSplitter::default()
    }

    /// Feed the next bytes; returns the lines they complete, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let mut line = self.buf.split_to(self.scanned + offset + 1);
            self.scanned = 0;
            line.truncate(line.len() - 1);
            if let Some(line) = non_blank(line) {
                lines.push(line);
            }
        }
        self.scanned = self.buf.len();
        lines
    }

    /// The stream ended: the last line if it had no `\n`.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        non_blank(self.buf.split())
    }

    /// Bytes of the current unfinished line (lets the caller cap runaway lines).
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }
}

fn non_blank(mut line: BytesMut) -> Option<Bytes> {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(line.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_in_pieces(input: &[u8], piece: usize) -> Vec<Bytes> {
        let mut splitter = NdjsonSplitter::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            out.extend(splitter.push(chunk));
        }
        out.extend(splitter.finish());
        out
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let input = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        for piece in 1..=input.len() {
            assert_eq!(
                split_in_pieces(input, piece),
                vec![
                    Bytes::from_static(b"{\"a\":1}"),
                    Bytes::from_static(b"{\"b\":2}"),
                    Bytes::from_static(b"{\"c\":3}"),
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn final_line_without_newline_is_returned_by_finish() {
        let mut splitter = NdjsonSplitter::new();
        assert_eq!(
            splitter.push(b"{\"a\":1}\n{\"err"),
            vec![Bytes::from_static(b"{\"a\":1}")]
        );
        assert_eq!(splitter.pending_len(), 5);
        assert!(splitter.push(b"or\":\"x\"}").is_empty());
        assert_eq!(
            splitter.finish(),
            Some(Bytes::from_static(b"{\"error\":\"x\"}"))
        );
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn crlf_and_blank_lines_are_tolerated() {
        assert_eq!(
            split_in_pieces(b"\r\n{\"a\":1}\r\n\n  \n{\"b\":2}", 2),
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\":2}")
            ]
        );
    }
}
