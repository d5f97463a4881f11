//! The recent requests the monitoring page shows: a bounded ring of the last [`RING_CAPACITY`]
//! finished chat requests, per-model minute buckets of TTFT and tokens/s over the last hour, and
//! a broadcast of each request as it finishes. Only timings and model names are kept: never a
//! request body, a header or a key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::measure::StreamTiming;

/// Requests kept for the table.
pub const RING_CAPACITY: usize = 200;
/// Minutes of per-model history kept for the charts.
pub const SERIES_MINUTES: u64 = 60;
/// Models with chart history; the one idle longest is dropped past this (model names come from
/// the catalogue, but a long-running daemon sees models come and go).
pub const SERIES_MODELS: usize = 32;
/// Live subscribers that fall further behind than this get a fresh snapshot instead.
const BROADCAST_CAPACITY: usize = 64;

/// One finished chat request, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When it arrived, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The `model` the client asked for (an alias, a ref, `default`), if it named one.
    pub asked: Option<String>,
    /// The catalogue ref that answered; `None` when nothing did.
    pub answered: Option<String>,
    /// Models tried (skipped ones not counted).
    pub attempts: u32,
    /// Answered by a model after the first of the chain.
    pub fallback: bool,
    /// The HTTP status the client got.
    pub status: u16,
    /// `None` when the answer was complete; else what went wrong, in words.
    pub outcome: Option<String>,
    pub stream: bool,
    pub ttft_ms: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub duration_ms: f64,
}

/// One minute of one model's requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteBucket {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub requests: u32,
    pub ttft_ms_sum: f64,
    pub ttft_n: u32,
    pub tps_sum: f64,
    pub tps_n: u32,
}

/// What a page needs when it connects: the ring and the chart history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestsSnapshot {
    pub capacity: usize,
    /// Oldest first.
    pub requests: Vec<RequestRecord>,
    /// Per answering model, oldest minute first.
    pub series: BTreeMap<String, Vec<MinuteBucket>>,
}

/// What the chat handler learns about a request while it routes it.
#[derive(Debug, Clone)]
pub struct RequestTrace {
    pub started: Instant,
    pub at: SystemTime,
    pub asked: Option<String>,
    pub answered: Option<String>,
    pub attempts: u32,
    pub fallback: bool,
    /// The answer is a stream: it is logged when the stream ends, not when the handler returns.
    pub streaming: bool,
}

/// Longer `model` strings are cut: the client chooses them, the ring must stay small.
const ASKED_MAX_CHARS: usize = 120;

impl RequestTrace {
    pub fn begin(started: Instant) -> RequestTrace {
        RequestTrace {
            started,
            at: SystemTime::now(),
            asked: None,
            answered: None,
            attempts: 0,
            fallback: false,
            streaming: false,
        }
    }

    pub fn set_asked(&mut self, model: Option<&str>) {
        self.asked = model.map(|m| match m.char_indices().nth(ASKED_MAX_CHARS) {
            Some((cut, _)) => format!("{}…", &m[..cut]),
            None => m.to_string(),
        });
    }

    fn record(self, status: u16, stream: bool) -> RequestRecord {
        RequestRecord {
            at_ms: unix_ms(self.at),
            asked: self.asked,
            answered: self.answered,
            attempts: self.attempts,
            fallback: self.fallback,
            status,
            outcome: None,
            stream,
            ttft_ms: None,
            tokens_per_second: None,
            duration_ms: ms(self.started.elapsed()),
        }
    }

    /// A request answered whole (or refused): nothing more to wait for.
    pub fn finished(self, status: u16) -> RequestRecord {
        self.record(status, false)
    }

    /// A streamed answer, when its stream ended (completed, failed or cut off by the client).
    pub fn stream_ended(self, timing: &StreamTiming) -> RequestRecord {
        let mut r = self.record(200, true);
        r.duration_ms = ms(timing.total);
        r.ttft_ms = timing.ttft.map(ms);
        r.outcome = match (&timing.error, timing.done) {
            (Some(e), _) => Some(format!("stream error: {e}")),
            (None, false) => Some("cut off before the end".into()),
            (None, true) => None,
        };
        if r.outcome.is_none() {
            r.tokens_per_second = timing.tokens_per_second;
        }
        r
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Inner {
    ring: VecDeque<RequestRecord>,
    series: BTreeMap<String, VecDeque<MinuteBucket>>,
}

/// The ring, the chart history and the live feed. Cheap to record into: one short lock, no
/// allocation beyond the record itself once the ring is full.
pub struct RequestLog {
    inner: Mutex<Inner>,
    live: broadcast::Sender<RequestRecord>,
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog {
            inner: Mutex::new(Inner::default()),
            live: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }
}

impl RequestLog {
    pub fn record(&self, r: RequestRecord) {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(model) = &r.answered {
                add_to_series(&mut inner.series, model, &r);
            }
            if inner.ring.len() == RING_CAPACITY {
                inner.ring.pop_front();
            }
            inner.ring.push_back(r.clone());
        }
        // No page open: nobody to tell.
        let _ = self.live.send(r);
    }

    pub fn snapshot(&self) -> RequestsSnapshot {
        let now_minute = unix_ms(SystemTime::now()) / 60_000;
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        RequestsSnapshot {
            capacity: RING_CAPACITY,
            requests: inner.ring.iter().cloned().collect(),
            series: inner
                .series
                .iter()
                .map(|(model, buckets)| {
                    let recent = buckets
                        .iter()
                        .filter(|b| b.minute + SERIES_MINUTES > now_minute)
                        .cloned()
                        .collect::<Vec<_>>();
                    (model.clone(), recent)
                })
                .filter(|(_, b)| !b.is_empty())
                .collect(),
        }
    }

    /// Each request as it finishes, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RequestRecord> {
        self.live.subscribe()
    }

    /// Records held (ring plus chart buckets): what the boundedness test checks.
    pub fn held(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (
            inner.ring.len(),
            inner.series.values().map(VecDeque::len).sum(),
        )
    }
}

fn add_to_series(
    series: &mut BTreeMap<String, VecDeque<MinuteBucket>>,
    model: &str,
    r: &RequestRecord,
) {
    let minute = r.at_ms / 60_000;
    if !series.contains_key(model) && series.len() >= SERIES_MODELS {
        let idlest = series
            .iter()
            .min_by_key(|(_, b)| b.back().map(|b| b.minute).unwrap_or(0))
            .map(|(m, _)| m.clone());
        if let Some(m) = idlest {
            series.remove(&m);
        }
    }
    // The model is usually there already: no key copied for it.
    if !series.contains_key(model) {
        series.insert(model.to_owned(), VecDeque::new());
    }
    let Some(buckets) = series.get_mut(model) else {
        return;
    };
    if buckets.back().map_or(true, |b| b.minute < minute) {
        buckets.push_back(MinuteBucket {
            minute,
            ..MinuteBucket::default()
        });
    }
    while buckets
        .front()
        .is_some_and(|b| b.minute + SERIES_MINUTES <= minute)
    {
        buckets.pop_front();
    }
    // A request that arrived in an earlier minute but finished now lands in the latest bucket.
    if let Some(b) = buckets.back_mut() {
        b.requests += 1;
        if let Some(t) = r.ttft_ms {
            b.ttft_ms_sum += t;
            b.ttft_n += 1;
        }
        if let Some(t) = r.tokens_per_second {
            b.tps_sum += t;
            b.tps_n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_ms: u64, model: &str, ttft: f64) -> RequestRecord {
        RequestRecord {
            at_ms,
            asked: Some("default".into()),
            answered: Some(model.into()),
            attempts: 1,
            fallback: false,
            status: 200,
            outcome: None,
            stream: true,
            ttft_ms: Some(ttft),
            tokens_per_second: Some(40.0),
            duration_ms: 100.0,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_requests_in_order() {
        let log = RequestLog::default();
        for i in 0..(RING_CAPACITY as u64 + 50) {
            log.record(request(1_000 + i, "ollama/a", i as f64));
        }
        let snap = log.snapshot();
        assert_eq!(snap.requests.len(), RING_CAPACITY);
        assert_eq!(snap.requests[0].at_ms, 1_050, "the oldest 50 were dropped");
        assert_eq!(
            snap.requests.last().map(|r| r.at_ms),
            Some(1_000 + RING_CAPACITY as u64 + 49)
        );
    }

    #[test]
    fn minute_buckets_average_per_model_and_forget_after_an_hour() {
        let mut series = BTreeMap::new();
        let m0 = 29_000_000u64; // some minute
        for (minute, ttft) in [(m0, 100.0), (m0, 300.0), (m0 + 1, 50.0)] {
            add_to_series(&mut series, "ollama/a", &request(minute * 60_000, "", ttft));
        }
        let a = &series["ollama/a"];
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].requests, a[0].ttft_ms_sum, a[0].ttft_n),
            (2, 400.0, 2)
        );
        add_to_series(
            &mut series,
            "ollama/a",
            &request((m0 + SERIES_MINUTES) * 60_000, "", 1.0),
        );
        let a = &series["ollama/a"];
        assert_eq!(
            a.front().map(|b| b.minute),
            Some(m0 + 1),
            "minute m0 aged out"
        );
    }

    #[test]
    fn chart_history_holds_a_bounded_number_of_models() {
        let log = RequestLog::default();
        for i in 0..(SERIES_MODELS * 3) {
            log.record(request(60_000 * i as u64, &format!("m/{i}"), 1.0));
        }
        let (ring, buckets) = log.held();
        assert_eq!(ring, SERIES_MODELS * 3);
        assert_eq!(buckets, SERIES_MODELS);
    }

    #[test]
    fn a_cut_off_stream_says_so_and_has_no_speed() {
        let trace = RequestTrace::begin(Instant::now());
        let timing = StreamTiming {
            ttft: Some(Duration::from_millis(120)),
            total: Duration::from_millis(900),
            completion_tokens: 5,
            token_source: super::super::measure::TokenSource::CountedChunks,
            tokens_per_second: Some(12.0),
            token_chunks: 5,
            done: false,
            error: None,
        };
        let r = trace.stream_ended(&timing);
        assert_eq!(r.outcome.as_deref(), Some("cut off before the end"));
        assert_eq!(r.tokens_per_second, None);
        assert_eq!(r.ttft_ms, Some(120.0));
        assert_eq!(r.duration_ms, 900.0);
    }
}
