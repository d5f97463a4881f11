//! Provider adapters: one call to one upstream model, classified on failure so the chain
//! knows whether to try the next model. Streams are returned only once their first byte is
//! in hand: until then a failure is still invisible to the client and can fall over.

mod anthropic;
mod gemini;
mod http;
mod ollama;
mod openai;
mod responses;
mod translate;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use bytes::Bytes;
use serde_json::Value;

use super::metrics::Metrics;
use super::wire::chat_body::ChatBody;
use super::wire::ir::SameApiExtras;
use crate::config::{Api, ProviderConfig};
use crate::discovery::CatalogModel;
use http::{LocalClient, Outbound, UpstreamError, UpstreamResponse};

/// A stream of OpenAI SSE bytes for the client. Upstream failures after the first byte are
/// already turned into an SSE error event inside it.
pub use super::wire::SseStream;

pub enum Answer {
    Json {
        body: Bytes,
        content_type: HeaderValue,
    },
    Stream(SseStream),
}

/// Why an attempt failed, in the terms the chain decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Connect,
    Timeout,
    RateLimited,
    ServerError,
    ModelNotFound,
    Auth,
    ContextLength,
    /// A client error no other model would answer differently: relayed, no fallback.
    ClientError,
    /// This provider cannot do what the request needs (a server tool of another API): the
    /// next model is tried, and this one is not cooled down — nothing is wrong with it.
    Unsupported,
}

impl FailureClass {
    pub fn falls_over(self) -> bool {
        !matches!(self, FailureClass::ClientError)
    }

    pub fn label(self) -> &'static str {
        match self {
            FailureClass::Connect => "connect",
            FailureClass::Timeout => "timeout",
            FailureClass::RateLimited => "rate_limited",
            FailureClass::ServerError => "server_error",
            FailureClass::ModelNotFound => "model_not_found",
            FailureClass::Auth => "auth",
            FailureClass::ContextLength => "context_length",
            FailureClass::ClientError => "client_error",
            FailureClass::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug)]
pub struct AttemptError {
    pub class: FailureClass,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// For `ClientError`: the upstream's status and body, relayed as is.
    pub relay: Option<(StatusCode, Option<HeaderValue>, Bytes)>,
}

impl AttemptError {
    fn new(class: FailureClass, message: impl Into<String>) -> Self {
        AttemptError {
            class,
            message: message.into(),
            retry_after: None,
            relay: None,
        }
    }

    pub(crate) fn from_upstream(e: &UpstreamError, phase: &str) -> Self {
        let class = if e.timeout {
            FailureClass::Timeout
        } else {
            FailureClass::Connect
        };
        AttemptError::new(class, format!("{phase}: {e}"))
    }
}

/// Everything one attempt needs to know about its target.
pub struct Target<'a> {
    pub model: &'a CatalogModel,
    pub provider: &'a ProviderConfig,
    pub api_key: Option<String>,
    /// `agents.defaults.models[ref].params`.
    pub params: &'a serde_json::Map<String, Value>,
    pub first_byte_timeout: Duration,
    /// The upstream is on this machine (no proxy; `Host` rewritten for Ollama).
    pub local: bool,
}

/// The HTTP clients, one pool each: loopback/private traffic never sees a proxy.
pub struct Upstreams {
    /// Plain HTTP on this machine: hyper directly (see [`http`]).
    local: LocalClient,
    /// TLS or another host on this machine or the LAN: reqwest, never through a proxy.
    pub direct: reqwest::Client,
    pub proxied: reqwest::Client,
    pub metrics: Arc<Metrics>,
    endpoints: Endpoints,
}

/// Parsed endpoint URLs by provider base URL. Parsing one (`url`, with IDNA for the host) cost
/// more per request than everything else reqwest does (issue 18's profile); a clone is a copy.
#[derive(Default)]
struct Endpoints {
    by_base: std::sync::Mutex<std::collections::HashMap<String, Vec<Endpoint>>>,
}

#[derive(Clone)]
struct Endpoint {
    path: &'static str,
    url: reqwest::Url,
    /// The same, for hyper, when it is plain HTTP.
    uri: Option<Uri>,
}

/// Base URLs remembered at most; a config that churns through more starts the cache afresh.
const MAX_CACHED_BASES: usize = 256;

impl Endpoints {
    // The error every attempt fails with; built only when a baseUrl is not a URL.
    #[allow(clippy::result_large_err)]
    fn get(&self, base: &str, path: &'static str) -> Result<Endpoint, AttemptError> {
        let mut by_base = self.by_base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = by_base
            .get(base)
            .and_then(|paths| paths.iter().find(|e| e.path == path))
        {
            return Ok(known.clone());
        }
        let url = reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| {
            // As reqwest would have: this model cannot be reached, the next one may be.
            AttemptError::new(
                FailureClass::Connect,
                format!(
                    "the provider's baseUrl {base:?} is not a URL ({e}); fix it in openclaw.json"
                ),
            )
        })?;
        if by_base.len() >= MAX_CACHED_BASES && !by_base.contains_key(base) {
            by_base.clear();
        }
        let endpoint = Endpoint {
            path,
            uri: http::plain_http_uri(&url),
            url,
        };
        by_base
            .entry(base.to_owned())
            .or_default()
            .push(endpoint.clone());
        Ok(endpoint)
    }
}

impl Upstreams {
    pub fn new(metrics: Arc<Metrics>) -> Result<Upstreams, reqwest::Error> {
        let base = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(1024)
                // A redirect would carry `x-api-key` (and other provider headers) to another
                // host: an answer that redirects is a failed attempt, never followed.
                .redirect(reqwest::redirect::Policy::none())
        };
        Ok(Upstreams {
            local: http::local_client(),
            direct: base().no_proxy().build()?,
            proxied: base().build()?,
            metrics,
            endpoints: Endpoints::default(),
        })
    }

    /// POSTs `body` (JSON) to `{baseUrl}{path}` with `headers`: over hyper when the upstream is
    /// plain HTTP on this machine, else over reqwest.
    #[allow(clippy::result_large_err)]
    fn post_json(
        &self,
        target: &Target<'_>,
        path: &'static str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Outbound<'_>, AttemptError> {
        let endpoint = self.endpoints.get(&target.provider.base_url, path)?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match endpoint.uri {
            Some(uri) if target.local => {
                let mut req = Request::post(uri)
                    .body(http_body_util::Full::new(body))
                    .map_err(|e| AttemptError::new(FailureClass::Connect, e.to_string()))?;
                *req.headers_mut() = headers;
                Ok(Outbound::Local(&self.local, req))
            }
            _ => Ok(self
                .client(target)
                .post(endpoint.url)
                .headers(headers)
                .body(body)
                .into()),
        }
    }

    fn client(&self, target: &Target<'_>) -> &reqwest::Client {
        if target.local {
            &self.direct
        } else {
            &self.proxied
        }
    }

    /// One attempt at `target`. `req` is the request as an OpenAI chat completions body;
    /// `extras` are the client's fields only a provider speaking the client's API can take.
    pub async fn call(
        &self,
        target: &Target<'_>,
        req: &ChatBody,
        extras: &SameApiExtras,
        stream: bool,
    ) -> Result<Answer, AttemptError> {
        // A server tool runs only where the client's own API is spoken: another provider
        // would answer as if the tool had been offered when it was not.
        if let Some(tool) = extras.server_tool_types().first() {
            let speaks_it = match extras {
                SameApiExtras::AnthropicMessages { .. } => {
                    target.provider.api == Api::AnthropicMessages
                }
                SameApiExtras::OpenAiResponses { .. } => {
                    target.provider.api == Api::OpenAiResponses
                }
                SameApiExtras::None => true,
            };
            if !speaks_it {
                return Err(AttemptError::new(
                    FailureClass::Unsupported,
                    format!(
                        "cannot offer the {tool} tool (the client's API's own): only function tools are routed to a {} provider",
                        target.provider.api.as_str()
                    ),
                ));
            }
        }
        match target.provider.api {
            // The pass-through forwards the client's bytes; the others translate the parsed body.
            // A body translated from another inbound API carries the client's reasoning as
            // `reasoning_effort`, which OpenAI refuses for a model that does not reason: it goes
            // only to a model configured as reasoning. (A chat completions client's own body is
            // forwarded as sent, untouched and uncopied.)
            // Anthropic's `thinking: disabled` arrives as effort `none`, which only some OpenAI
            // models take (the o-series refuse it): off is left to the model's default.
            Api::OpenAiCompletions
                if !matches!(extras, SameApiExtras::None)
                    && req.value().get("reasoning_effort").is_some_and(|effort| {
                        !target.model.config.reasoning
                            || (effort == "none"
                                && matches!(extras, SameApiExtras::AnthropicMessages { .. }))
                    }) =>
            {
                let mut value = req.value().clone();
                if let Some(obj) = value.as_object_mut() {
                    obj.remove("reasoning_effort");
                }
                openai::call(self, target, &ChatBody::from_value(value), stream).await
            }
            Api::OpenAiCompletions => openai::call(self, target, req, stream).await,
            Api::Ollama => {
                let translated = !matches!(extras, SameApiExtras::None);
                ollama::call(self, target, req.value(), translated, stream).await
            }
            Api::AnthropicMessages => {
                anthropic::call(self, target, req.value(), extras, stream).await
            }
            Api::GoogleGenerativeAi => gemini::call(self, target, req.value(), stream).await,
            Api::OpenAiResponses => {
                responses::call(self, target, req.value(), extras, stream).await
            }
            Api::Other(ref api) => Err(AttemptError::new(
                FailureClass::ClientError,
                format!("api {api} is not supported"),
            )),
        }
    }
}

/// Classifies a non-2xx upstream answer.
pub fn classify_status(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: Bytes,
    message: String,
) -> AttemptError {
    let code = status.as_u16();
    let class = match code {
        // Redirects are never followed (they would carry the provider's key to another host).
        300..=399 => FailureClass::ServerError,
        401 | 403 => FailureClass::Auth,
        404 => FailureClass::ModelNotFound,
        408 => FailureClass::Timeout,
        429 => FailureClass::RateLimited,
        413 => FailureClass::ContextLength,
        500..=599 => FailureClass::ServerError,
        _ if crate::gateway::wire::is_context_overflow(&message) => FailureClass::ContextLength,
        _ => FailureClass::ClientError,
    };
    let retry_after = retry_after(headers);
    let relay = (class == FailureClass::ClientError).then(|| {
        let ct = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
        (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            ct,
            body,
        )
    });
    AttemptError {
        class,
        message: match headers.get(reqwest::header::LOCATION) {
            Some(to) if status.is_redirection() => format!(
                "HTTP {code}: redirected to {}; openclawd does not follow an upstream's \
                 redirects (they would carry the provider's key to another host): set the \
                 provider's baseUrl to the final address",
                to.to_str().unwrap_or("?")
            ),
            _ => format!("HTTP {code}: {message}"),
        },
        retry_after,
        relay,
    }
}

/// `Retry-After` in (possibly fractional) seconds. An upstream may ask for anything; an hour is
/// the most a model is benched for.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::gateway::wire::parse_delay_seconds)
        .map(|d| d.min(MAX_RETRY_AFTER))
}

impl AttemptError {
    /// A request this provider cannot express: the client's fault, answered 400, no fallback.
    pub(crate) fn untranslatable(e: crate::gateway::wire::WireError) -> Self {
        AttemptError {
            class: FailureClass::ClientError,
            message: e.to_string(),
            retry_after: None,
            relay: Some((
                StatusCode::BAD_REQUEST,
                Some(HeaderValue::from_static("application/json")),
                e.to_openai_body(),
            )),
        }
    }
}

/// How an upstream's error bodies reach the client when they are relayed (no fallback).
#[derive(Clone, Copy)]
pub(crate) enum ErrorDialect {
    /// Already OpenAI-shaped: relay the bytes as they are.
    OpenAi,
    /// Another dialect: extract the message with this and wrap it in OpenAI's shape.
    Translated(fn(&[u8]) -> String),
    /// A dialect whose error bodies decide the class (Gemini's 400 for a wrong key).
    Classified(fn(StatusCode, &reqwest::header::HeaderMap, Bytes) -> AttemptError),
}

/// Sends `out` within the first-byte `budget`; a non-2xx answer becomes a classified failure.
pub(crate) async fn send<'a>(
    out: impl Into<Outbound<'a>>,
    budget: Duration,
    dialect: ErrorDialect,
) -> Result<UpstreamResponse, AttemptError> {
    let resp = match tokio::time::timeout(budget, out.into().send()).await {
        Err(_) => {
            return Err(AttemptError::new(
                FailureClass::Timeout,
                format!("no answer within {budget:?}"),
            ))
        }
        Ok(Err(e)) => return Err(AttemptError::from_upstream(&e, "request failed")),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let raw = read_error_body(resp).await;
    Err(match dialect {
        ErrorDialect::Classified(classify) => classify(status, &headers, raw),
        ErrorDialect::OpenAi => {
            let message = openai::openai_error_message(&raw);
            classify_status(status, &headers, raw, message)
        }
        ErrorDialect::Translated(extract) => {
            let message = extract(&raw);
            let mut err = classify_status(status, &headers, Bytes::new(), message.clone());
            if let Some(relay) = err.relay.as_mut() {
                use crate::gateway::wire::openai as oai;
                relay.1 = Some(HeaderValue::from_static("application/json"));
                relay.2 = oai::error_body(&message, oai::INVALID_REQUEST_ERROR, None, None);
            }
            err
        }
    })
}

/// The error a client reads when a stream went silent for its whole budget.
pub(crate) fn stalled_message(budget: Duration) -> String {
    format!(
        "the upstream sent nothing for {} s mid-answer (timeout); the stream was ended",
        budget.as_secs_f64()
    )
}

/// The largest whole (non-streaming) answer read from an upstream. Nothing real comes close;
/// a wrong `baseUrl` serving a download must not be buffered until memory runs out.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 << 20;
/// The most a stream may send without completing one line or event (same reason).
pub(crate) const MAX_UNFRAMED_BYTES: usize = 16 << 20;

/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Error bodies are only quoted: their first bytes are enough.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Reads a whole non-streamed answer of at most `MAX_ANSWER_BYTES` within `budget`.
pub(crate) async fn read_body(
    mut resp: UpstreamResponse,
    budget: Duration,
) -> Result<Bytes, AttemptError> {
    let read = async move {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| AttemptError::from_upstream(&e, "reading the answer"))?
        {
            if out.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AttemptError::new(
                    FailureClass::ServerError,
                    format!(
                        "the answer is larger than {} MiB; is the provider's baseUrl right?",
                        MAX_ANSWER_BYTES >> 20
                    ),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    };
    tokio::time::timeout(budget, read)
        .await
        .map_err(|_| AttemptError::new(FailureClass::Timeout, "the answer did not complete"))?
}

/// Reads a whole JSON answer within `budget`.
pub(crate) async fn read_json(
    resp: UpstreamResponse,
    budget: Duration,
) -> Result<Value, AttemptError> {
    let bytes = read_body(resp, budget).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        AttemptError::new(
            FailureClass::ServerError,
            format!("the upstream answered something that is not JSON: {e}"),
        )
    })
}

/// Reads the start of an error body (at most 64 KiB, 5 s), never failing.
pub(crate) async fn read_error_body(mut resp: UpstreamResponse) -> Bytes {
    let mut out = bytes::BytesMut::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            out.extend_from_slice(&chunk);
            if out.len() >= MAX_ERROR_BODY_BYTES {
                out.truncate(MAX_ERROR_BODY_BYTES);
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    out.freeze()
}

/// Shortens an upstream body for an error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}
