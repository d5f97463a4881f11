//! Output the way the Go server writes it: slog text lines on stderr, gin access lines on
//! stdout, and death by SIGPIPE when either pipe is broken.
//!
//! Go ignores EPIPE on sockets but lets a write to a broken fd 1 or 2 kill the process with
//! SIGPIPE. Rust ignores SIGPIPE process-wide, and hyper writes to sockets with `writev` (which
//! raises SIGPIPE), so restoring the default handler globally would kill the server whenever a
//! client hangs up mid-stream. Instead, a broken stdout/stderr write restores the default
//! handler and raises SIGPIPE itself: same observable death, no socket casualties.

use crate::gojson::go_quote;
use crate::timefmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

fn die_of_sigpipe() -> ! {
    // SAFETY: resetting a signal disposition and raising it; nothing else runs afterwards.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

fn write_or_die(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
    }
}

pub fn stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    write_or_die(out.write_all(bytes).and_then(|()| out.flush()));
}

pub fn stderr(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    write_or_die(err.write_all(bytes).and_then(|()| err.flush()));
}

/// slog's text-handler quoting: bare when safe, Go-quoted otherwise.
fn slog_value(v: &str) -> String {
    let needs_quotes = v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || !c.is_ascii_graphic());
    if needs_quotes {
        go_quote(v)
    } else {
        v.to_string()
    }
}

/// One slog line: `time=... level=INFO source=routes.go:2008 msg="..." k=v ...`.
pub fn slog(level: &str, source: &str, msg: &str, attrs: &[(&str, &str)]) {
    let mut line = format!(
        "time={} level={level} source={source} msg={}",
        timefmt::local(SystemTime::now()).slog(),
        slog_value(msg)
    );
    for (k, v) in attrs {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&slog_value(v));
    }
    line.push('\n');
    stderr(line.as_bytes());
}

/// A line that is already formatted after `msg=` (used for the fixture's `server config`).
pub fn slog_raw(level: &str, source: &str, rest: &str) {
    let line = format!(
        "time={} level={level} source={source} {rest}\n",
        timefmt::local(SystemTime::now()).slog()
    );
    stderr(line.as_bytes());
}

pub fn info(source: &str, msg: &str, attrs: &[(&str, &str)]) {
    slog("INFO", source, msg, attrs);
}

pub fn warn(msg: &str, attrs: &[(&str, &str)]) {
    slog("WARN", "double.go:1", msg, attrs);
}

/// gin's default access line (no colours, as when stdout is not a terminal).
pub fn gin_access(status: u16, latency: Duration, client_ip: &str, method: &str, path: &str) {
    let line = format!(
        "[GIN] {} | {status:3} | {:>13} | {client_ip:>15} | {method:<7}  {}\n",
        timefmt::local(SystemTime::now()).gin(),
        timefmt::go_duration(latency),
        go_quote(path)
    );
    stdout(line.as_bytes());
}
