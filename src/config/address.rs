//! Where Ollama answers: `OLLAMA_HOST` in every form Ollama's own `envconfig.Host()` accepts,
//! and a provider `baseUrl`.

use std::net::IpAddr;

use super::types::OllamaAddress;

const DEFAULT_PORT: u16 = 11434;

/// Parses an `OLLAMA_HOST` value the way Ollama does (`envconfig/config.go` `Host()`), then maps
/// it to an address one can connect to (`ConnectableHost()`: `0.0.0.0`, `::` and an empty host
/// mean this machine).
///
/// | input | result |
/// |---|---|
/// | `""` | `http://127.0.0.1:11434` |
/// | `1.2.3.4`, `example.com` | port 11434 |
/// | `example.com:1234`, `:1234` (→ 127.0.0.1) | that port |
/// | `[::1]`, `::1`, `[::1]:1234` | IPv6 |
/// | `http://h` / `https://h` | default port 80 / 443 |
/// | `https://example.com/ollama` | path kept in `base_url` |
/// | `ollama.com` | `https://ollama.com:443` |
/// | a bad port (`:66000`, `:-1`) | the default port |
pub fn parse_ollama_host(s: &str) -> OllamaAddress {
    // Ollama's `Var()` trims spaces and surrounding quotes.
    let s = s.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    let (mut scheme, hostport, default_port) = match s.split_once("://") {
        None if s == "ollama.com" => ("https".to_string(), "ollama.com:443", 443),
        None => ("http".to_string(), s, DEFAULT_PORT),
        Some(("http", rest)) => ("http".to_string(), rest, 80),
        Some(("https", rest)) => ("https".to_string(), rest, 443),
        Some((other, rest)) => (other.to_ascii_lowercase(), rest, DEFAULT_PORT),
    };
    if scheme != "http" && scheme != "https" {
        // Only HTTP(S) can be dialled; Ollama would fail the same way later.
        scheme = "http".into();
    }
    let (hostport, path) = match hostport.split_once('/') {
        Some((hp, path)) => (hp, path.trim_end_matches('/')),
        None => (hostport, ""),
    };
    let (host, port) = match split_host_port(hostport) {
        Some((host, port)) => (host.to_string(), port.to_string()),
        None => {
            let bare = hostport.trim_start_matches('[').trim_end_matches(']');
            let host = match bare.parse::<IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) if hostport.is_empty() => "127.0.0.1".to_string(),
                Err(_) => hostport.to_string(),
            };
            (host, default_port.to_string())
        }
    };
    let port = port
        .parse::<i64>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    let host = connectable(&host);
    let loopback = is_loopback(&host);
    let mut address = OllamaAddress {
        base_url: String::new(),
        host,
        port,
        loopback,
    };
    address.base_url = format!("{scheme}://{}", address.host_port());
    if !path.is_empty() {
        address.base_url.push('/');
        address.base_url.push_str(path);
    }
    address
}

/// A provider `baseUrl` (`http://127.0.0.1:11434/v1/`) as an Ollama address: trailing `/`s and a
/// trailing `/v1` removed.
pub(crate) fn ollama_address_from_base_url(base_url: &str) -> OllamaAddress {
    let mut url = base_url.trim().trim_end_matches('/');
    if let Some(stripped) = url.strip_suffix("/v1") {
        url = stripped.trim_end_matches('/');
    }
    parse_ollama_host(url)
}

/// Go's `net.SplitHostPort`, returning `None` where Go returns an error.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = hostport.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn connectable(host: &str) -> String {
    match host {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        h => h.to_string(),
    }
}

/// 127.0.0.0/8, `::1` (and IPv4-mapped loopback), or `localhost`.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}
