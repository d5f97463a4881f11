//! `OLLAMA_HOST` parsing, a port of `envconfig.Host()` and `net.SplitHostPort`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The server address `envconfig.Host()` derives from `OLLAMA_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaHost {
    pub scheme: String,
    /// Host without brackets; empty means "all interfaces" (listen) / "local system" (dial).
    pub host: String,
    pub port: String,
    pub path: String,
    /// Set when the port was invalid and replaced by the default (Go logs a warning).
    pub invalid_port: Option<String>,
}

impl OllamaHost {
    /// `url.URL.Host`, i.e. `net.JoinHostPort(host, port)`.
    pub fn host_port(&self) -> String {
        join_host_port(&self.host, &self.port)
    }

    /// `url.URL.String()` as the server logs it in `server config`.
    pub fn url(&self) -> String {
        let mut url = format!("{}://{}", self.scheme, self.host_port());
        if !self.path.is_empty() {
            url.push('/');
            url.push_str(&self.path);
        }
        url
    }

    pub fn port_number(&self) -> u16 {
        self.port.trim_start_matches('+').parse().unwrap_or(11434)
    }
}

/// Go's `envconfig.Var`: trims spaces, then surrounding quotes.
pub fn env_var(key: &str) -> String {
    let raw = std::env::var(key).unwrap_or_default();
    raw.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

pub fn from_env() -> OllamaHost {
    parse(&env_var("OLLAMA_HOST"))
}

/// `envconfig.Host()` for one raw value.
pub fn parse(raw: &str) -> OllamaHost {
    let s = raw.trim();
    let mut default_port = "11434";
    let (scheme, hostport) = match s.split_once("://") {
        None if s == "ollama.com" => ("https".to_string(), "ollama.com:443".to_string()),
        None => ("http".to_string(), s.to_string()),
        Some((scheme, rest)) => {
            if scheme == "http" {
                default_port = "80";
            } else if scheme == "https" {
                default_port = "443";
            }
            (scheme.to_string(), rest.to_string())
        }
    };
    let (hostport, path) = match hostport.split_once('/') {
        Some((hp, p)) => (hp.to_string(), p.to_string()),
        None => (hostport, String::new()),
    };
    let (host, mut port) = match split_host_port(&hostport) {
        Ok(hp) => hp,
        Err(()) => {
            let trimmed = hostport.trim_matches(|c| c == '[' || c == ']');
            let host = if let Ok(ip) = trimmed.parse::<IpAddr>() {
                ip.to_string()
            } else if !hostport.is_empty() {
                hostport.clone()
            } else {
                "127.0.0.1".to_string()
            };
            (host, default_port.to_string())
        }
    };
    let mut invalid_port = None;
    match port.parse::<i64>() {
        Ok(n) if (0..=65535).contains(&n) => {}
        _ => {
            invalid_port = Some(port.clone());
            port = default_port.to_string();
        }
    }
    OllamaHost {
        scheme,
        host,
        port,
        path,
        invalid_port,
    }
}

/// `net.SplitHostPort`; any error is reported as `Err(())` (callers only need "failed").
pub fn split_host_port(hostport: &str) -> Result<(String, String), ()> {
    let i = hostport.rfind(':').ok_or(())?;
    let (host, j, k);
    if hostport.starts_with('[') {
        let end = hostport.find(']').ok_or(())?;
        if end + 1 != i {
            return Err(());
        }
        host = hostport[1..end].to_string();
        j = 1;
        k = end + 1;
    } else {
        host = hostport[..i].to_string();
        if host.contains(':') {
            return Err(());
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return Err(());
    }
    Ok((host, hostport[i + 1..].to_string()))
}

pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why a listen failed, worded like Go's `*net.OpError`.
pub fn listen_error(
    host: &OllamaHost,
    resolved: Option<SocketAddr>,
    err: &std::io::Error,
) -> String {
    let addr = match resolved {
        Some(a) if host.host.is_empty() => format!(":{}", a.port()),
        Some(a) => a.to_string(),
        None => host.host_port(),
    };
    format!("listen tcp {addr}: bind: {}", go_errno_text(err))
}

/// Go's Linux errno strings (lower-case `strerror`).
pub fn go_errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EADDRINUSE) => "address already in use".to_string(),
        Some(libc::EADDRNOTAVAIL) => "cannot assign requested address".to_string(),
        Some(libc::EACCES) => "permission denied".to_string(),
        Some(libc::ECONNREFUSED) => "connection refused".to_string(),
        _ => {
            let text = err.to_string();
            let text = match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
                None => text,
            }
        }
    }
}

/// Addresses to bind for the server, in Go's preference order (IPv4 first for names).
pub fn listen_candidates(host: &OllamaHost) -> Result<Vec<SocketAddr>, String> {
    let port = host.port_number();
    if host.host.is_empty() {
        return Ok(vec![
            SocketAddr::new(IpAddr::from([0u16; 8]), port),
            SocketAddr::new(IpAddr::from([0u8; 4]), port),
        ]);
    }
    if let Ok(ip) = host.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| format!("listen tcp: lookup {}: no such host", host.host))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.truncate(1);
    if addrs.is_empty() {
        return Err(format!("listen tcp: lookup {}: no such host", host.host));
    }
    Ok(addrs)
}

/// Where the CLI dials: Go dials the local system for an empty host.
pub fn dial_candidates(host: &OllamaHost) -> Vec<SocketAddr> {
    let port = host.port_number();
    let name = if host.host.is_empty() {
        "127.0.0.1"
    } else {
        host.host.as_str()
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    (name, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> String {
        parse(raw).url()
    }

    #[test]
    fn go_envconfig_host_table() {
        assert_eq!(url(""), "http://127.0.0.1:11434");
        assert_eq!(url("1.2.3.4"), "http://1.2.3.4:11434");
        assert_eq!(url(":1234"), "http://:1234");
        assert_eq!(url("example.com"), "http://example.com:11434");
        assert_eq!(url("example.com:1234"), "http://example.com:1234");
        assert_eq!(url("[::1]"), "http://[::1]:11434");
        assert_eq!(url("::1"), "http://[::1]:11434");
        assert_eq!(url("[::]"), "http://[::]:11434");
        assert_eq!(url("[::1]:1337"), "http://[::1]:1337");
        assert_eq!(url("http://1.2.3.4"), "http://1.2.3.4:80");
        assert_eq!(url("https://1.2.3.4"), "https://1.2.3.4:443");
        assert_eq!(url("http://1.2.3.4:4321"), "http://1.2.3.4:4321");
        assert_eq!(
            url("https://example.com/ollama"),
            "https://example.com:443/ollama"
        );
        assert_eq!(url("ollama.com"), "https://ollama.com:443");
        assert_eq!(url(":66000"), "http://:11434");
        assert_eq!(url(":-1"), "http://:11434");
        assert_eq!(url("0.0.0.0"), "http://0.0.0.0:11434");
    }
}
