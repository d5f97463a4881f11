//! A loopback TCP relay in front of the gateway that keeps a copy of both directions of every
//! connection, so a test can say exactly what a real client sent (paths, headers, bodies) and
//! what it got back, without the client knowing. HTTP/1.1 only (what the CLI clients speak to
//! an `http://` base URL); the bytes are relayed untouched.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One HTTP/1.1 message as it crossed the relay (body de-chunked).
#[derive(Debug, Clone)]
pub struct Message {
    /// `POST /v1/messages?beta=true HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request target of a request (`/v1/messages?beta=true`).
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request and the response it got (`None` when the connection ended first).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Message,
    pub response: Option<Message>,
}

#[derive(Default)]
struct Connection {
    upstream: Vec<u8>,
    downstream: Vec<u8>,
}

pub struct HttpRecorder {
    pub port: u16,
    connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>>,
}

impl HttpRecorder {
    /// Listens on a free loopback port and relays every connection to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> HttpRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let port = listener.local_addr().unwrap().port();
        let connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>> = Arc::default();
        let all = connections.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let conn = Arc::new(Mutex::new(Connection::default()));
                all.lock().unwrap().push(conn.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = conn.clone();
                thread::spawn(move || {
                    pump(client, server, |b| up.lock().unwrap().upstream.extend(b))
                });
                thread::spawn(move || pump(s2, c2, |b| conn.lock().unwrap().downstream.extend(b)));
            }
        });
        HttpRecorder { port, connections }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every exchange so far, connection by connection, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        let conns = self.connections.lock().unwrap();
        let mut out = Vec::new();
        for c in conns.iter() {
            let c = c.lock().unwrap();
            let requests = parse_messages(&c.upstream);
            let mut responses = parse_messages(&c.downstream).into_iter();
            for request in requests {
                out.push(Exchange {
                    request,
                    response: responses.next(),
                });
            }
        }
        out
    }
}

/// An HTTP(S) proxy that forwards nothing: handed to a client as `HTTPS_PROXY`/`HTTP_PROXY`
/// (with loopback in `NO_PROXY`), it turns any attempt to reach another host into a refusal
/// and records where the client tried to go (`CONNECT statsig.anthropic.com:443 HTTP/1.1`).
pub struct ProxyTrap {
    pub port: u16,
    attempts: Arc<Mutex<Vec<String>>>,
}

impl ProxyTrap {
    pub fn start() -> ProxyTrap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy trap");
        let port = listener.local_addr().unwrap().port();
        let attempts: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = attempts.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = seen.clone();
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while find(&head, b"\r\n").is_none() && head.len() < 8192 {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head);
                    let line = line.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push(line);
                    let _ = conn.write_all(
                        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        ProxyTrap { port, attempts }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines of every attempt to leave the machine.
    pub fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }
}

/// Copies `from` → `to`, keeping a copy, until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, mut keep: impl FnMut(&[u8])) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The HTTP/1.1 messages in one direction of a connection. A message cut short (the relay was
/// read while it was still streaming) is returned with the body so far.
pub fn parse_messages(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(head_end) = find(bytes, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let rest = &bytes[head_end + 4..];
        let chunked = msg
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length = msg
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        let used = if chunked {
            dechunk(rest, &mut msg.body)
        } else if let Some(n) = length {
            let n = n.min(rest.len());
            msg.body.extend_from_slice(&rest[..n]);
            n
        } else if msg.start.starts_with("HTTP/") && !msg.start.contains(" 204 ") {
            // A response without a length runs to the end of the connection.
            msg.body.extend_from_slice(rest);
            rest.len()
        } else {
            0
        };
        out.push(msg);
        bytes = &rest[used..];
    }
    out
}

/// Decodes a chunked body into `body`; returns the bytes of `data` it used.
fn dechunk(data: &[u8], body: &mut Vec<u8>) -> usize {
    let mut at = 0;
    while let Some(line_end) = find(&data[at..], b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[at..at + line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return data.len();
        };
        at += line_end + 2;
        if size == 0 {
            // The last chunk, then (no trailers) the final CRLF.
            return (at + 2).min(data.len());
        }
        let end = (at + size).min(data.len());
        body.extend_from_slice(&data[at..end]);
        at = (end + 2).min(data.len());
    }
    data.len()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_chunked_responses_on_one_connection_come_apart() {
        let up = b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
        let reqs = parse_messages(up);
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].target(), "/a?x=1");
        assert_eq!(reqs[0].body, b"hi");
        assert_eq!(reqs[1].target(), "/b");
        let down = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let resps = parse_messages(down);
        assert_eq!(resps.len(), 2);
        assert_eq!(resps[0].body, b"abcde");
        assert_eq!(resps[1].header("Content-Length"), Some("0"));
    }
}
