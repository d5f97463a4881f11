//! The client side of the `ollama` CLI: `-v`/`--version`, `list`, `ps`, and the Linux
//! "could not connect" error for everything else.

use crate::fixtures;
use crate::host::{self, OllamaHost};
use crate::log;
use crate::timefmt;
use crate::version;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

/// The real client has no timeout; the double gives up after 2 s so a wedged server cannot
/// wedge a test.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Commands the real CLI has (besides `serve`, `runner`, `list`, `ps`).
pub const OTHER_COMMANDS: &[&str] = &[
    "create", "show", "run", "stop", "pull", "push", "signin", "signout", "cp", "rm", "launch",
];

#[derive(Debug)]
enum ClientError {
    /// Connection refused (and the like): the CLI treats it as "no server".
    Refused(String),
    Other(String),
}

impl ClientError {
    fn text(&self) -> &str {
        match self {
            ClientError::Refused(s) | ClientError::Other(s) => s,
        }
    }
}

fn base_path(h: &OllamaHost) -> String {
    if h.path.is_empty() {
        String::new()
    } else {
        format!("/{}", h.path.trim_matches('/'))
    }
}

fn decode_chunked(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// One HTTP/1.1 request to the server named by `OLLAMA_HOST`.
fn request(h: &OllamaHost, method: &str, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
    let url = format!("{}{}{}", h.url(), "", path);
    if h.scheme == "https" {
        return Err(ClientError::Other(format!(
            "Get \"{url}\": ollama-double cannot speak TLS"
        )));
    }
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let addrs = host::dial_candidates(h);
    let mut last_error = format!("dial tcp {}: no such host", h.host_port());
    let mut refused = false;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => {
                refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                last_error = format!("dial tcp {addr}: connect: {}", host::go_errno_text(&e));
            }
        }
    }
    let Some(mut stream) = stream else {
        let message = format!("{method} \"{url}\": {last_error}");
        return Err(if refused {
            ClientError::Refused(message)
        } else {
            ClientError::Other(message)
        });
    };
    let timeout_error =
        || ClientError::Other(format!("{method} \"{url}\": context deadline exceeded"));
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ollama/{} (amd64 linux) Go/go1.24.1\r\nAccept: application/json\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        base_path(h),
        h.host_port(),
        version::own()
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|_| timeout_error())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(timeout_error());
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(timeout_error())
            }
            Err(_) => break,
        }
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(ClientError::Other(format!("{method} \"{url}\": EOF")));
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        decode_chunked(body)
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// `ollama -v` / `--version`: the server's version, then the client's if they differ.
pub fn version() -> i32 {
    let client_version = version::own();
    let h = host::from_env();
    let server_version: Result<String, ()> = match request(&h, "GET", "/api/version") {
        Ok((status, body)) if status < 400 => serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| {
                v.get("version")
                    .and_then(|s| s.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .map_err(|_| ()),
        _ => Err(()),
    };
    let mut out = String::new();
    if server_version.is_err() {
        out.push_str("Warning: could not connect to a running Ollama instance\n");
    }
    let server_version = server_version.unwrap_or_default();
    if !server_version.is_empty() {
        out.push_str(&format!("ollama version is {server_version}\n"));
    }
    if server_version != client_version {
        out.push_str(&format!("Warning: client version is {client_version}\n"));
    }
    log::stdout(out.as_bytes());
    0
}

/// `checkServerHeartbeat` (HEAD /) with the Linux wording when nothing answers.
fn heartbeat(h: &OllamaHost) -> Result<(), i32> {
    match request(h, "HEAD", "/") {
        Ok((status, _)) if status < 400 => Ok(()),
        Ok((status, _)) => {
            log::stderr(format!("Error: {status}\n").as_bytes());
            Err(1)
        }
        Err(ClientError::Refused(_)) => {
            log::stderr(fixtures::CLIENT_NO_SERVER);
            Err(1)
        }
        Err(other) => {
            log::stderr(format!("Error: {}\n", other.text()).as_bytes());
            Err(1)
        }
    }
}

/// `format.HumanBytes`.
fn human_bytes(b: u64) -> String {
    let (value, unit) = match b {
        b if b >= 1_000_000_000 => (b as f64 / 1e9, "GB"),
        b if b >= 1_000_000 => (b as f64 / 1e6, "MB"),
        b if b >= 1_000 => (b as f64 / 1e3, "KB"),
        b => (b as f64, "B"),
    };
    if value >= 10.0 || value == value.trunc() {
        format!("{} {unit}", value as u64)
    } else {
        format!("{value:.1} {unit}")
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// `format.HumanTime`, roughly: `3 days ago`, `4 minutes from now`.
fn human_time(unix: i64) -> String {
    let now = timefmt::unix_seconds(SystemTime::now());
    let (delta, suffix) = if unix <= now {
        (now - unix, "ago")
    } else {
        (unix - now, "from now")
    };
    if delta > 100 * 365 * 86_400 {
        return "Forever".to_string();
    }
    let text = match delta {
        d if d < 1 => return "Less than a second ".to_string() + suffix,
        d if d < 60 => plural(d, "second"),
        d if d < 3600 => plural(d / 60, "minute"),
        d if d < 86_400 => plural(d / 3600, "hour"),
        d if d < 7 * 86_400 => plural(d / 86_400, "day"),
        d if d < 30 * 86_400 => plural(d / (7 * 86_400), "week"),
        d if d < 365 * 86_400 => plural(d / (30 * 86_400), "month"),
        d => plural(d / (365 * 86_400), "year"),
    };
    format!("{text} {suffix}")
}

/// tablewriter as `ollama list` configures it: left-aligned, 4-space padding, no borders.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            out.push_str(cell);
            out.push_str(&" ".repeat(widths[c] - cell.chars().count() + 4));
        }
        out.push('\n');
    }
    out
}

fn fetch_json(h: &OllamaHost, path: &str) -> Result<serde_json::Value, i32> {
    match request(h, "GET", path) {
        Ok((status, body)) if status < 400 => serde_json::from_slice(&body).map_err(|e| {
            log::stderr(format!("Error: {e}\n").as_bytes());
            1
        }),
        Ok((_, body)) => {
            let text = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            log::stderr(format!("Error: {text}\n").as_bytes());
            Err(1)
        }
        Err(e) => {
            log::stderr(format!("Error: {}\n", e.text()).as_bytes());
            Err(1)
        }
    }
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|s| s.as_str()).unwrap_or("")
}

fn short_id(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

pub fn list() -> i32 {
    let h = host::from_env();
    if let Err(code) = heartbeat(&h) {
        return code;
    }
    let tags = match fetch_json(&h, "/api/tags") {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ID".to_string(),
        "SIZE".to_string(),
        "MODIFIED".to_string(),
    ]];
    for m in tags
        .get("models")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        rows.push(vec![
            str_of(m, "name").to_string(),
            short_id(str_of(m, "digest")),
            human_bytes(m.get("size").and_then(|s| s.as_u64()).unwrap_or(0)),
            timefmt::parse_rfc3339_unix(str_of(m, "modified_at"))
                .map(human_time)
                .unwrap_or_default(),
        ]);
    }
    log::stdout(table(&rows).as_bytes());
    0
}

pub fn ps() -> i32 {
    let h = host::from_env();
    if let Err(code) = heartbeat(&h) {
        return code;
    }
    let loaded = match fetch_json(&h, "/api/ps") {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut rows = vec![["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for m in loaded
        .get("models")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        let size = m.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
        let vram = m.get("size_vram").and_then(|s| s.as_u64()).unwrap_or(0);
        let processor = if vram == 0 {
            "100% CPU".to_string()
        } else if vram >= size {
            "100% GPU".to_string()
        } else {
            let cpu = (size - vram) * 100 / size.max(1);
            format!("{cpu}%/{}% CPU/GPU", 100 - cpu)
        };
        rows.push(vec![
            str_of(m, "name").to_string(),
            short_id(str_of(m, "digest")),
            human_bytes(size),
            processor,
            m.get("context_length")
                .and_then(|c| c.as_u64())
                .map(|c| c.to_string())
                .unwrap_or_default(),
            timefmt::parse_rfc3339_unix(str_of(m, "expires_at"))
                .map(human_time)
                .unwrap_or_default(),
        ]);
    }
    log::stdout(table(&rows).as_bytes());
    0
}

/// A real command the double does not implement: same "no server" error, else a clear note.
pub fn unsupported(command: &str) -> i32 {
    let h = host::from_env();
    if let Err(code) = heartbeat(&h) {
        return code;
    }
    log::stderr(format!("Error: ollama-double does not implement '{command}'\n").as_bytes());
    1
}

pub fn unknown(command: &str) -> i32 {
    log::stderr(
        format!(
            "Error: unknown command \"{command}\" for \"ollama\"\nRun 'ollama --help' for usage.\n"
        )
        .as_bytes(),
    );
    1
}

pub fn help() -> i32 {
    log::stdout(
        b"Large language model runner\n\nUsage:\n  ollama [flags]\n  ollama [command]\n\nAvailable Commands:\n  serve       Start ollama\n  create      Create a model\n  show        Show information for a model\n  run         Run a model\n  stop        Stop a running model\n  pull        Pull a model from a registry\n  push        Push a model to a registry\n  signin      Sign in to ollama.com\n  signout     Sign out from ollama.com\n  list        List models\n  ps          List running models\n  cp          Copy a model\n  rm          Remove a model\n  help        Help about any command\n\nFlags:\n  -h, --help      help for ollama\n  -v, --version   Show version information\n\nUse \"ollama [command] --help\" for more information about a command.\n",
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_go() {
        assert_eq!(human_bytes(18_556_700_761), "18 GB");
        assert_eq!(human_bytes(2_019_393_189), "2.0 GB");
        assert_eq!(human_bytes(3_000_000_000), "3 GB");
    }
}
