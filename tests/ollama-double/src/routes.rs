//! gin's router as Ollama configures it: CORS, the Host-header check, the route table,
//! trailing-slash redirects, 404/405 texts; plus the scripted `fail_status`.

use crate::control::FailStatus;
use crate::fixtures;
use crate::host::split_host_port;
use crate::reply::{self, Reply};
use crate::server::{Req, State};
use crate::{api, gojson, openai};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Root,
    Version,
    Status,
    Tags,
    Show,
    Ps,
    Chat,
    Generate,
    NativeNotImplemented,
    V1Chat,
    V1Models,
    V1Model,
    V1NotImplemented,
}

const GET_HEAD: &[&str] = &["GET", "HEAD"];
const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];

/// routes.go `GenerateRoutes` (HEAD).
const ROUTES: &[(&str, &[&str], Handler)] = &[
    ("/", GET_HEAD, Handler::Root),
    ("/api/version", GET_HEAD, Handler::Version),
    ("/api/status", GET, Handler::Status),
    ("/api/pull", POST, Handler::NativeNotImplemented),
    ("/api/push", POST, Handler::NativeNotImplemented),
    ("/api/create", POST, Handler::NativeNotImplemented),
    ("/api/copy", POST, Handler::NativeNotImplemented),
    ("/api/me", POST, Handler::NativeNotImplemented),
    ("/api/signout", POST, Handler::NativeNotImplemented),
    ("/api/tags", GET_HEAD, Handler::Tags),
    ("/api/show", POST, Handler::Show),
    ("/api/delete", &["DELETE"], Handler::NativeNotImplemented),
    (
        "/api/blobs/:digest",
        &["POST", "HEAD"],
        Handler::NativeNotImplemented,
    ),
    ("/api/ps", GET, Handler::Ps),
    ("/api/generate", POST, Handler::Generate),
    ("/api/chat", POST, Handler::Chat),
    ("/api/embed", POST, Handler::NativeNotImplemented),
    ("/api/embeddings", POST, Handler::NativeNotImplemented),
    ("/v1/chat/completions", POST, Handler::V1Chat),
    ("/v1/completions", POST, Handler::V1NotImplemented),
    ("/v1/embeddings", POST, Handler::V1NotImplemented),
    ("/v1/responses", POST, Handler::V1NotImplemented),
    ("/v1/audio/transcriptions", POST, Handler::V1NotImplemented),
    ("/v1/messages", POST, Handler::V1NotImplemented),
    ("/v1/models", GET, Handler::V1Models),
    ("/v1/models/:model", GET, Handler::V1Model),
    (
        "/api/experimental/web_search",
        POST,
        Handler::NativeNotImplemented,
    ),
    (
        "/api/experimental/web_fetch",
        POST,
        Handler::NativeNotImplemented,
    ),
    (
        "/api/experimental/model-recommendations",
        GET,
        Handler::NativeNotImplemented,
    ),
    (
        "/api/user/keys/:encodedKey",
        &["DELETE"],
        Handler::NativeNotImplemented,
    ),
];

/// Matches `path` against a gin pattern; returns the `:param` value if any.
fn matches(pattern: &str, path: &str) -> Option<Option<String>> {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    let mut param = None;
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(s)) if p.starts_with(':') => {
                if s.is_empty() {
                    return None;
                }
                param = Some(s.to_string());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn find_route(method: &str, path: &str) -> Option<(Handler, Option<String>)> {
    ROUTES.iter().find_map(|(pattern, methods, handler)| {
        if !methods.contains(&method) {
            return None;
        }
        matches(pattern, path).map(|param| (*handler, param))
    })
}

fn path_known_for_other_method(path: &str) -> bool {
    ROUTES
        .iter()
        .any(|(pattern, _, _)| matches(pattern, path).is_some())
}

/// gin uses the decoded `URL.Path`.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `http.Redirect` as gin's trailing-slash redirect uses it.
fn redirect(method: &str, location: &str) -> Reply {
    let (code, text) = if method == "GET" {
        (301, "Moved Permanently")
    } else {
        (307, "Temporary Redirect")
    };
    let reply = if method == "GET" || method == "HEAD" {
        Reply::bytes(
            code,
            Some("text/html; charset=utf-8"),
            format!("<a href=\"{location}\">{text}</a>.\n\n"),
        )
    } else {
        Reply::empty(code)
    };
    reply.with_header("Location", location)
}

fn origin_allowed(state: &State, origin: &str) -> bool {
    const BROWSER_EXTENSIONS: &[&str] = &[
        "chrome-extension://",
        "safari-extension://",
        "moz-extension://",
        "ms-browser-extension://",
    ];
    if BROWSER_EXTENSIONS.iter().any(|p| origin.starts_with(p)) {
        return true;
    }
    let mut allowed: Vec<String> = state.origins.clone();
    for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
        for scheme in ["http", "https"] {
            allowed.push(format!("{scheme}://{host}"));
            allowed.push(format!("{scheme}://{host}:*"));
        }
    }
    for scheme in ["app", "file", "tauri", "vscode-webview", "vscode-file"] {
        allowed.push(format!("{scheme}://*"));
    }
    allowed.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        match rule.split_once('*') {
            Some((prefix, suffix)) => {
                origin.len() >= prefix.len() + suffix.len()
                    && origin.starts_with(prefix)
                    && origin.ends_with(suffix)
            }
            None => rule == origin,
        }
    })
}

enum Gate {
    Pass,
    Answer(Reply),
}

/// gin-contrib/cors as Ollama configures it.
fn cors(state: &State, req: &Req) -> (Gate, Option<String>) {
    let Some(origin) = req.origin.as_deref().filter(|o| !o.is_empty()) else {
        return (Gate::Pass, None);
    };
    if origin == format!("http://{}", req.host) || origin == format!("https://{}", req.host) {
        return (Gate::Pass, None);
    }
    if !origin_allowed(state, origin) {
        return (Gate::Answer(Reply::empty(403)), None);
    }
    if req.method == "OPTIONS" {
        let reply = Reply::empty(204)
            .with_header("Access-Control-Allow-Origin", origin)
            .with_header(
                "Access-Control-Allow-Methods",
                "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
            )
            .with_header("Access-Control-Max-Age", "43200")
            .with_header("Vary", "Origin");
        return (Gate::Answer(reply), None);
    }
    (Gate::Pass, Some(origin.to_string()))
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// routes.go `allowedHostsMiddleware` (only when listening on loopback).
fn host_check(state: &State, req: &Req) -> Gate {
    if !state.loopback {
        return Gate::Pass;
    }
    let host = split_host_port(&req.host)
        .map(|(h, _)| h)
        .unwrap_or_else(|()| req.host.clone());
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_loopback() || is_private(ip) || ip.is_unspecified() {
            return Gate::Pass;
        }
    }
    let lower = host.to_ascii_lowercase();
    let allowed_name = lower.is_empty()
        || lower == "localhost"
        || (!state.hostname.is_empty() && lower == state.hostname.to_ascii_lowercase())
        || [".localhost", ".local", ".internal"]
            .iter()
            .any(|tld| lower.ends_with(tld));
    if allowed_name {
        if req.method == "OPTIONS" {
            return Gate::Answer(Reply::empty(204));
        }
        return Gate::Pass;
    }
    Gate::Answer(Reply::empty(403))
}

fn is_v1(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// The scripted failure, in the path's dialect unless a body is given.
fn fail_reply(fail: &FailStatus, path: &str) -> Reply {
    let status = fail.status;
    let body = match &fail.body {
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => gojson::marshal(other),
        None => {
            let message = match status {
                500 => fixtures::error_text(fixtures::RUNNER_CRASHED),
                503 => fixtures::error_text(fixtures::SERVER_BUSY),
                499 => fixtures::error_text(fixtures::REQUEST_CANCELED),
                _ => hyper::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_ascii_lowercase(),
            };
            return if is_v1(path) {
                Reply::v1_error(status, &message)
            } else {
                Reply::gin_error(status, &message)
            };
        }
    };
    let is_json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
    let content_type = match (is_json, is_v1(path)) {
        (true, true) => reply::V1_JSON,
        (true, false) => reply::GIN_JSON,
        (false, _) => reply::GIN_TEXT,
    };
    Reply::bytes(status, Some(content_type), body)
}

pub async fn dispatch(state: &Arc<State>, req: &Req) -> Reply {
    let (gate, cors_origin) = cors(state, req);
    if let Gate::Answer(reply) = gate {
        return reply;
    }
    if let Gate::Answer(reply) = host_check(state, req) {
        return reply;
    }
    let mut reply = route(state, req).await;
    if let Some(origin) = cors_origin {
        reply = reply
            .with_header("Access-Control-Allow-Origin", origin)
            .with_header("Vary", "Origin");
    }
    reply
}

async fn route(state: &Arc<State>, req: &Req) -> Reply {
    if let Some(fail) = &req.control.fail_status {
        if fail.applies_to(&req.path) {
            return fail_reply(fail, &req.path);
        }
    }
    let path = percent_decode(&req.path);
    let method = req.method.as_str();
    let Some((handler, param)) = find_route(method, &path) else {
        if path.len() > 1 && path.ends_with('/') {
            let trimmed = &path[..path.len() - 1];
            if find_route(method, trimmed).is_some() {
                return redirect(method, trimmed);
            }
        }
        if path_known_for_other_method(&path) {
            return Reply::bytes(405, Some(reply::PLAIN_TEXT), "405 method not allowed");
        }
        return Reply::bytes(404, Some(reply::PLAIN_TEXT), "404 page not found");
    };
    match handler {
        Handler::Root => Reply::bytes(200, Some(reply::GIN_TEXT), "Ollama is running"),
        Handler::Version => Reply::gin_json(200, &serde_json::json!({ "version": state.version })),
        Handler::Status => Reply::gin_json(
            200,
            &serde_json::json!({"cloud": {"disabled": false, "source": "none"}}),
        ),
        Handler::Tags => api::tags(state, req),
        Handler::Show => api::show(state, req),
        Handler::Ps => api::ps(state),
        Handler::Chat => api::chat(state, req).await,
        Handler::Generate => api::generate(state, req).await,
        Handler::NativeNotImplemented => Reply::gin_error(
            500,
            &format!("ollama-double does not implement {} {}", req.method, path),
        ),
        Handler::V1Chat => openai::chat_completions(state, req).await,
        Handler::V1Models => openai::models(state, req),
        Handler::V1Model => openai::model(state, req, param.as_deref().unwrap_or("")),
        Handler::V1NotImplemented => Reply::v1_error(
            500,
            &format!("ollama-double does not implement {} {}", req.method, path),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gin_patterns() {
        assert_eq!(
            matches("/v1/models/:model", "/v1/models/gpt-oss:20b"),
            Some(Some("gpt-oss:20b".to_string()))
        );
        assert_eq!(matches("/v1/models/:model", "/v1/models/"), None);
        assert_eq!(matches("/api/tags", "/api/tags"), Some(None));
        assert_eq!(matches("/", "/"), Some(None));
        assert_eq!(
            percent_decode("/v1/models/gpt-oss%3A20b"),
            "/v1/models/gpt-oss:20b"
        );
    }
}
