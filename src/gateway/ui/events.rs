//! `GET /events`: the page's live feed, as Server-Sent Events.
//!
//! On connect: `status` (the `/status` report), `requests` (the ring and the chart history) and
//! `bench` (the last `openclawd bench`, if one ran). Then `request` for each request as it
//! finishes, and `status` again whenever it changed. Nothing is sent while nothing changes
//! (a comment line every [`KEEPALIVE`] tells a dead connection from a quiet one), so an open
//! page costs the daemon a few microseconds every [`CHECK_EVERY`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::gateway::requests::RequestRecord;
use crate::gateway::state::GatewayState;
use crate::gateway::status::{status_report, StatusReport};

/// How often the report is rebuilt to look for changes the daemon does not announce (a config
/// reload, a cooldown that ended, a housekeeping round).
const CHECK_EVERY: Duration = Duration::from_secs(2);
const KEEPALIVE: Duration = Duration::from_secs(15);
/// A bench report larger than this is not sent (it is a few KB).
const BENCH_MAX_BYTES: u64 = 1 << 20;

pub async fn events(State(state): State<Arc<GatewayState>>) -> Response {
    let feed = Feed::new(state);
    let body = futures_util::stream::unfold(feed, |mut feed| async move {
        let bytes = feed.next().await?;
        Some((Ok::<Bytes, Infallible>(bytes), feed))
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// One connected page.
struct Feed {
    state: Arc<GatewayState>,
    ollama: Option<watch::Receiver<crate::ollama::OllamaStatus>>,
    housekeeping: Option<watch::Receiver<crate::housekeeping::HousekeepingStatus>>,
    requests: broadcast::Receiver<RequestRecord>,
    ready: VecDeque<Bytes>,
    /// The last report sent, without the field that changes every second.
    last_status: Option<StatusReport>,
    bench_path: PathBuf,
    bench_seen: Option<SystemTime>,
    check: Interval,
    last_write: Instant,
    started: bool,
    /// The token this page was let in with: a reload that changes it ends the feed, and the
    /// page has to present the new one.
    admitted_with: Option<String>,
}

impl Feed {
    fn new(state: Arc<GatewayState>) -> Feed {
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let bench_path = bench_path(&state);
        let admitted_with = state.config.load().gateway.token.clone();
        Feed {
            admitted_with,
            ollama: Some(state.ollama.clone()),
            housekeeping: Some(state.housekeeping.clone()),
            requests: state.requests.subscribe(),
            state,
            ready: VecDeque::new(),
            last_status: None,
            bench_path,
            bench_seen: None,
            check,
            last_write: Instant::now(),
            started: false,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            self.status_if_changed().await;
            self.push("requests", &self.state.requests.snapshot());
            self.bench_if_changed();
        }
        loop {
            if let Some(b) = self.ready.pop_front() {
                self.last_write = Instant::now();
                return Some(b);
            }
            tokio::select! {
                _ = self.state.stopping.cancelled() => return None,
                open = changed(&mut self.ollama) => {
                    if !open { self.ollama = None; }
                    self.status_if_changed().await;
                }
                open = changed(&mut self.housekeeping) => {
                    if !open { self.housekeeping = None; }
                    self.status_if_changed().await;
                }
                got = self.requests.recv() => match got {
                    // The counters in the report catch up at the next check: a burst of
                    // requests does not rebuild the report once per request.
                    Ok(r) => self.push("request", &r),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.push("requests", &self.state.requests.snapshot());
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.check.tick() => {
                    if self.state.config.load().gateway.token != self.admitted_with {
                        return None;
                    }
                    self.status_if_changed().await;
                    self.bench_if_changed();
                    if self.ready.is_empty() && self.last_write.elapsed() >= KEEPALIVE {
                        self.ready.push_back(Bytes::from_static(b": keepalive\n\n"));
                    }
                }
            }
        }
    }

    fn push(&mut self, event: &str, data: &impl Serialize) {
        match serde_json::to_string(data) {
            Ok(json) => self
                .ready
                .push_back(Bytes::from(format!("event: {event}\ndata: {json}\n\n"))),
            Err(e) => tracing::warn!("cannot encode the {event} event: {e}"),
        }
    }

    async fn status_if_changed(&mut self) {
        let report = status_report(&self.state).await;
        let mut stable = report.clone();
        stable.daemon.uptime_secs = 0;
        if self.last_status.as_ref() != Some(&stable) {
            self.last_status = Some(stable);
            self.push("status", &report);
        }
    }

    fn bench_if_changed(&mut self) {
        let Ok(meta) = std::fs::metadata(&self.bench_path) else {
            return;
        };
        let modified = meta.modified().ok();
        if modified == self.bench_seen || meta.len() > BENCH_MAX_BYTES {
            return;
        }
        self.bench_seen = modified;
        match std::fs::read(&self.bench_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
        {
            Ok(report) => self.push("bench", &report),
            Err(e) => tracing::warn!("cannot read {}: {e}", self.bench_path.display()),
        }
    }
}

fn bench_path(state: &GatewayState) -> PathBuf {
    super::bench_file(&state.config.load().paths.state_dir)
}

/// Waits for a change; `false` once the sender is gone (then never again).
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
