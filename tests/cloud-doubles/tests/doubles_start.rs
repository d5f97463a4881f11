//! Each double starts, says where it listens, and refuses a request without its key — as the
//! real APIs do. (This integration test also makes `cargo test --workspace` build the double
//! executables that openclawd's provider tests start.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn start(exe: &str) -> (std::process::Child, u16) {
    let mut child = Command::new(exe)
        .env_clear()
        .env("CLOUD_DOUBLE_KEY", "k-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the double");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    (child, port)
}

fn post(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "{}";
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn gemini_refuses_a_request_without_a_key() {
    let (mut child, port) = start(env!("CARGO_BIN_EXE_gemini-double"));
    let answer = post(port, "/v1beta/models/gemini-2.5-flash:generateContent");
    let _ = child.kill();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[test]
fn responses_refuses_a_request_without_a_key() {
    let (mut child, port) = start(env!("CARGO_BIN_EXE_responses-double"));
    let answer = post(port, "/v1/responses");
    let _ = child.kill();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}
