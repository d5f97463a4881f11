//! One upstream exchange — the request out; status, headers and body back — over hyper's
//! client directly for a plain-HTTP upstream on this machine, and reqwest (proxies, TLS) for
//! the rest.
//!
//! Why two: reqwest parses the URL twice more per request (its redirect policy turns the `Uri`
//! back into a `Url`, and the answer carries one), with IDNA for the host — 12 % of openclawd's
//! instructions per pass-through request (`scripts/bench-instructions.py`, issue 18). Local
//! traffic needs none of what that buys; cloud traffic needs proxies and TLS.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, Request, StatusCode, Uri};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Connecting to an upstream: loopback answers at once or refuses; a LAN host is dead after this.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle upstream connections are kept this long for the next request.
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle upstream connections kept per host: enough for a burst of 512 streams and then some.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 1024;

/// The client for plain-HTTP upstreams on this machine (no proxy, no TLS, no redirects).
pub(crate) type LocalClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn local_client() -> LocalClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(connector)
}

/// A request ready to go out on one of the two clients.
pub(crate) enum Outbound<'a> {
    Cloud(reqwest::RequestBuilder),
    Local(&'a LocalClient, Request<Full<Bytes>>),
}

impl From<reqwest::RequestBuilder> for Outbound<'_> {
    fn from(rb: reqwest::RequestBuilder) -> Self {
        Outbound::Cloud(rb)
    }
}

impl Outbound<'_> {
    /// Sends it; the answer's body is still to be read.
    pub(crate) async fn send(self) -> Result<UpstreamResponse, UpstreamError> {
        match self {
            Outbound::Cloud(rb) => {
                let resp = rb.send().await.map_err(|e| UpstreamError::reqwest(&e))?;
                Ok(UpstreamResponse {
                    status: resp.status(),
                    headers: resp.headers().clone(),
                    body: Body::Cloud(resp),
                })
            }
            Outbound::Local(client, req) => {
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| UpstreamError::hyper_client(&e))?;
                let (parts, body) = resp.into_parts();
                Ok(UpstreamResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body: Body::Local(body),
                })
            }
        }
    }
}

/// `uri` if `url` is a plain-HTTP URL hyper can take as is.
pub(crate) fn plain_http_uri(url: &reqwest::Url) -> Option<Uri> {
    (url.scheme() == "http")
        .then(|| url.as_str().parse::<Uri>().ok())
        .flatten()
}

/// Why an upstream exchange failed, already in words for the attempt's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamError {
    pub message: String,
    pub timeout: bool,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl UpstreamError {
    pub(crate) fn reqwest(e: &reqwest::Error) -> UpstreamError {
        UpstreamError {
            message: crate::discovery::describe_reqwest(e),
            timeout: e.is_timeout(),
        }
    }

    fn hyper_client(e: &hyper_util::client::legacy::Error) -> UpstreamError {
        let cause = innermost(e);
        UpstreamError {
            message: if e.is_connect() {
                format!("cannot connect ({cause})")
            } else {
                cause
            },
            timeout: false,
        }
    }

    fn hyper(e: &hyper::Error) -> UpstreamError {
        UpstreamError {
            message: innermost(e),
            timeout: e.is_timeout(),
        }
    }
}

/// The deepest cause: "Connection refused (os error 111)", not "client error (Connect)".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    cause
}

/// An upstream's answer: status and headers in hand, the body to read.
pub(crate) struct UpstreamResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
}

enum Body {
    Cloud(reqwest::Response),
    Local(hyper::body::Incoming),
}

impl UpstreamResponse {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        match &mut self.body {
            Body::Cloud(resp) => resp.chunk().await.map_err(|e| UpstreamError::reqwest(&e)),
            Body::Local(body) => std::future::poll_fn(|cx| poll_data(Pin::new(&mut *body), cx))
                .await
                .transpose(),
        }
    }

    /// The body as a stream of pieces; it ends after the first error.
    pub(crate) fn bytes_stream(self) -> BodyStream {
        match self.body {
            Body::Cloud(resp) => BodyStream::Cloud(Box::pin(resp.bytes_stream())),
            Body::Local(body) => BodyStream::Local(Some(body)),
        }
    }
}

/// [`UpstreamResponse::bytes_stream`].
pub(crate) enum BodyStream {
    Cloud(Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>),
    /// `None` once ended.
    Local(Option<hyper::body::Incoming>),
}

impl Stream for BodyStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            BodyStream::Cloud(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|next| next.map(|r| r.map_err(|e| UpstreamError::reqwest(&e)))),
            BodyStream::Local(slot) => {
                let Some(body) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                let next = std::task::ready!(poll_data(Pin::new(body), cx));
                if !matches!(next, Some(Ok(_))) {
                    *slot = None;
                }
                Poll::Ready(next)
            }
        }
    }
}

/// The next data frame of a hyper body; trailers carry nothing a client of ours reads.
fn poll_data(
    mut body: Pin<&mut hyper::body::Incoming>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, UpstreamError>>> {
    loop {
        match std::task::ready!(body.as_mut().poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(UpstreamError::hyper(&e)))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}
