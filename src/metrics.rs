//! Prometheus metrics (`GET /metrics`), via `prometheus-client`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub model: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

type HistogramFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~54 min.
    Histogram::new(exponential_buckets(0.0001, 2.5, 20))
}

fn rate_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 1.6, 18))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub fallbacks: Counter,
    pub upstream_latency: HistogramFamily,
    pub ttft: HistogramFamily,
    pub tokens_per_second: HistogramFamily,
    pub overhead: Histogram,
    pub ollama_restarts: Gauge,
    pub discovery_runs: Family<ResultLabels, Counter>,
    pub port_reclaims: Gauge,
    pub sessions_cleared: Gauge,
    /// Requests held while the supervised Ollama (re)started, and how long each waited.
    pub ollama_holds: Counter,
    pub ollama_hold_seconds: Histogram,
    /// Plain totals for `/status`.
    pub requests_total: AtomicU64,
    pub fallbacks_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("openclawd");
        let requests = Family::<RequestLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let fallbacks = Counter::default();
        let upstream_latency =
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let ttft = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let tokens_per_second =
            HistogramFamily::new_with_constructor(rate_histogram as fn() -> Histogram);
        let overhead = Histogram::new(exponential_buckets(0.00001, 2.0, 20));
        let ollama_restarts = Gauge::default();
        let discovery_runs = Family::<ResultLabels, Counter>::default();
        let port_reclaims = Gauge::default();
        let sessions_cleared = Gauge::default();
        let ollama_holds = Counter::default();
        let ollama_hold_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "gateway_requests",
            "Chat completion requests by the model that answered (or the first asked) and status",
            requests.clone(),
        );
        registry.register(
            "gateway_attempts",
            "Upstream attempts by model and outcome",
            attempts.clone(),
        );
        registry.register(
            "gateway_fallbacks",
            "Requests answered by a model other than the first choice",
            fallbacks.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time from sending upstream to the first byte of its answer",
            upstream_latency.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from the request arriving to the first token sent to the client",
            ttft.clone(),
        );
        registry.register(
            "tokens_per_second",
            "Decode speed of streamed answers as sent to the client (see gateway::measure)",
            tokens_per_second.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Time spent in openclawd itself: total minus waiting for upstreams",
            overhead.clone(),
        );
        registry.register(
            "ollama_restarts",
            "Restarts of the supervised Ollama server",
            ollama_restarts.clone(),
        );
        registry.register(
            "discovery_runs",
            "Ollama model discovery runs by result",
            discovery_runs.clone(),
        );
        registry.register(
            "port_reclaims",
            "Times the gateway port was freed from a stale gateway",
            port_reclaims.clone(),
        );
        registry.register(
            "sessions_cleared",
            "sessions.json entries or files cleared by the sessions guard",
            sessions_cleared.clone(),
        );
        registry.register(
            "gateway_ollama_holds",
            "Requests held while the supervised Ollama was starting or restarting",
            ollama_holds.clone(),
        );
        registry.register(
            "gateway_ollama_hold_seconds",
            "How long a held request waited for the supervised Ollama",
            ollama_hold_seconds.clone(),
        );
        Metrics {
            registry,
            ollama_holds,
            ollama_hold_seconds,
            requests,
            attempts,
            fallbacks,
            upstream_latency,
            ttft,
            tokens_per_second,
            overhead,
            ollama_restarts,
            discovery_runs,
            port_reclaims,
            sessions_cleared,
            requests_total: AtomicU64::new(0),
            fallbacks_total: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn record_request(&self, model: &str, status: u16, fell_back: bool) {
        self.requests
            .get_or_create(&RequestLabels {
                model: model.to_string(),
                status,
            })
            .inc();
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if fell_back {
            self.fallbacks.inc();
            self.fallbacks_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_attempt(&self, model: &str, outcome: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                model: model.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn model(&self, family: &HistogramFamily, model: &str, value: f64) {
        family
            .get_or_create(&ModelLabels {
                model: model.to_string(),
            })
            .observe(value);
    }
}
