//! The HTTP server: routes, token check, body limit, and the accept loop with graceful drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::api;
use super::chat::chat_completions;
use super::error::{Dialect, GatewayError};
use super::state::GatewayState;
use super::status::{readiness, status_report, StatusReport};

/// Slow-drip headers (slowloris) are cut off after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole request body must arrive within this (a slow-drip body would otherwise hold a
/// connection, and one of the `MAX_CONNECTIONS` slots, forever).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections beyond this wait in the accept queue.
const MAX_CONNECTIONS: usize = 4096;

pub fn router(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/health", get(health).head(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/v1/chat/completions", post(chat_completions))
        // Claude Code adds `?beta=true`; routing is on the path alone.
        .route("/v1/messages", post(api::messages))
        .route("/v1/messages/count_tokens", post(api::count_tokens))
        .route("/v1/responses", post(api::responses))
        .route("/", get(root))
        .merge(super::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One layer (each costs a boxed future per request): the token, then the body limit.
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        // `admit` enforces the live gateway.maxBodyBytes with the API's own 413.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"ok": true, "status": "live"}))
}

async fn ready(State(state): State<Arc<GatewayState>>) -> Response {
    match readiness(&state) {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": why})),
        )
            .into_response(),
    }
}

async fn status(State(state): State<Arc<GatewayState>>) -> Json<StatusReport> {
    Json(status_report(&state).await)
}

async fn metrics(State(state): State<Arc<GatewayState>>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn model_object(id: &str, owned_by: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": owned_by})
}

fn created_secs(state: &GatewayState) -> u64 {
    state
        .config
        .load()
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn list_models(State(state): State<Arc<GatewayState>>) -> Json<Value> {
    let catalog = state.catalog.load();
    let created = created_secs(&state);
    let mut data: Vec<Value> = catalog
        .models
        .iter()
        .filter(|m| m.unroutable.is_none())
        .map(|m| model_object(&m.model_ref, &m.provider, created))
        .collect();
    for alias in catalog.aliases.keys() {
        data.push(model_object(alias, "openclawd", created));
    }
    Json(json!({"object": "list", "data": data}))
}

async fn get_model(
    State(state): State<Arc<GatewayState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let catalog = state.catalog.load();
    let created = created_secs(&state);
    if let Some(m) = catalog.get(&id).filter(|m| m.unroutable.is_none()) {
        return Ok(Json(model_object(&m.model_ref, &m.provider, created)));
    }
    if catalog.aliases.contains_key(&id) {
        return Ok(Json(model_object(&id, "openclawd", created)));
    }
    Err(GatewayError::NotFound(format!(
        "The model `{id}` does not exist. GET /v1/models lists the available ones."
    )))
}

/// A browser gets the monitoring page; an API client probing `/` gets the JSON 404 it expects.
async fn root(state: State<Arc<GatewayState>>, req: Request) -> Response {
    if super::ui::wants_html(req.headers()) {
        super::ui::page(state, req.headers().clone()).await
    } else {
        not_found(req).await
    }
}

async fn not_found(req: Request) -> Response {
    GatewayError::NotFound(format!(
        "Unknown path {}: openclawd serves /v1/chat/completions, /v1/messages, /v1/messages/count_tokens, /v1/responses, /v1/models, /health, /ready, /status and /metrics, and the monitoring page at / (open it in a browser).",
        req.uri().path()
    ))
    .render(Dialect::for_path(req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    GatewayError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
    .render(Dialect::for_path(req.uri().path()))
}

/// Every request passes here: the token check, then the body limit.
async fn admit(State(state): State<Arc<GatewayState>>, req: Request, next: Next) -> Response {
    let (limit, refused) = {
        let config = state.config.load();
        let refused = config
            .gateway
            .token
            .as_deref()
            .and_then(|expected| refuse_without_token(expected, &req));
        (config.own.gateway.max_body_bytes, refused)
    };
    match refused {
        Some(answer) => answer,
        None => with_body_limit(limit, req, next).await,
    }
}

/// With a token configured, every route but `/health` needs `Authorization: Bearer <token>`
/// (or, as Anthropic clients send it, `x-api-key: <token>`): the refusal, or `None` to go on.
fn refuse_without_token(expected: &str, req: &Request) -> Option<Response> {
    if req.uri().path() == "/health" || super::ui::is_public(req.uri().path()) {
        return None;
    }
    let dialect = Dialect::for_path(req.uri().path());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    match presented {
        Some(p) if bool::from(p.as_bytes().ct_eq(expected.as_bytes())) => None,
        Some(_) => Some(GatewayError::Unauthorized(
            "Invalid bearer token. Use gateway.auth.token from openclaw.json (or OPENCLAW_GATEWAY_TOKEN).".into(),
        )
        .render(dialect)),
        None => Some(GatewayError::Unauthorized(
            "Missing bearer token: send `Authorization: Bearer <gateway.auth.token>` (or `x-api-key: <gateway.auth.token>`).".into(),
        )
        .render(dialect)),
    }
}

/// Bodies over the limit get a 413 in the API's shape, whether announced or streamed.
async fn with_body_limit(limit: usize, req: Request, next: Next) -> Response {
    let dialect = Dialect::for_path(req.uri().path());
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return GatewayError::PayloadTooLarge { limit }.render(dialect);
    }
    let (parts, body) = req.into_parts();
    let Ok(read) = tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await
    else {
        return GatewayError::BodyTimeout {
            limit: BODY_READ_TIMEOUT,
        }
        .render(dialect);
    };
    match read {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                GatewayError::PayloadTooLarge { limit }.render(dialect)
            } else {
                GatewayError::bad_request(format!("could not read the request body: {e}"))
                    .render(dialect)
            }
        }
    }
}

/// Accepts connections until `shutdown`, then stops accepting and drains in-flight requests
/// for up to `drain`. Returns when every connection is closed or the drain time is over.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    drain: Duration,
    hard_stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain time of {drain:?} over; closing the remaining connections"),
        _ = hard_stop.cancelled() => {},
    }
}
