//! Scenario 8 (issue 16): the other inbound APIs and clouds, beside the OpenAI pass-through.
//!
//! Anthropic Messages in (`POST /v1/messages`) → openclawd → the mock's Ollama `/api/chat`
//! (provider `ollama`), and chat completions in → openclawd → the Gemini double
//! (`google-generative-ai`, `:generateContent`), each compared with the same upstream reached
//! directly, in the same interleaved rounds as openclawd's OpenAI pass-through and its direct
//! baseline. Latency at concurrency 1 (added = median over rounds of system − direct in the same
//! round); CPU per request at concurrency 64, exact (`procfs::usage`, as scenario 7), for
//! openclawd and for the upstream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::load::{self, Framing, Target};
use crate::procfs::{self, Usage};
use crate::report::{added_us, opt_us, us, Section, Table};
use crate::stats::{median_f64, percentile};
use crate::systems::{FAST, GEMINI_KEY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sys {
    DirectOpenAi,
    PassThrough,
    DirectOllama,
    MessagesToOllama,
    DirectGemini,
    ChatToGemini,
}

const SYSTEMS: [Sys; 6] = [
    Sys::DirectOpenAi,
    Sys::PassThrough,
    Sys::DirectOllama,
    Sys::MessagesToOllama,
    Sys::DirectGemini,
    Sys::ChatToGemini,
];

impl Sys {
    fn label(self, stream: bool) -> &'static str {
        match self {
            Sys::DirectGemini if stream => {
                "direct → Gemini double (`:streamGenerateContent?alt=sse`)"
            }
            Sys::DirectOpenAi => "direct → mock (OpenAI `/v1/chat/completions`)",
            Sys::PassThrough => {
                "**openclawd** chat completions → mock (`openai-completions`, pass-through)"
            }
            Sys::DirectOllama => "direct → mock (Ollama `/api/chat`)",
            Sys::MessagesToOllama => "**openclawd** `/v1/messages` → mock (`ollama` native)",
            Sys::DirectGemini => "direct → Gemini double (`:generateContent`)",
            Sys::ChatToGemini => {
                "**openclawd** chat completions → Gemini double (`google-generative-ai`)"
            }
        }
    }

    fn baseline(self) -> Sys {
        match self {
            Sys::DirectOpenAi | Sys::PassThrough => Sys::DirectOpenAi,
            Sys::DirectOllama | Sys::MessagesToOllama => Sys::DirectOllama,
            Sys::DirectGemini | Sys::ChatToGemini => Sys::DirectGemini,
        }
    }

    fn is_direct(self) -> bool {
        self == self.baseline()
    }
}

/// The running processes scenario 8 drives.
pub struct CloudRig {
    pub mock: SocketAddr,
    pub mock_pid: i32,
    pub gemini: SocketAddr,
    pub gemini_pid: i32,
    pub openclawd: SocketAddr,
    pub openclawd_pid: i32,
}

const PROMPT: &str = "Say something for the benchmark.";

impl CloudRig {
    fn target(&self, s: Sys, stream: bool) -> Target {
        match s {
            Sys::DirectOpenAi => Target::chat(
                self.mock,
                "/v1/chat/completions",
                FAST,
                stream,
                Framing::Sse,
                None,
            ),
            Sys::PassThrough => Target::chat(
                self.openclawd,
                "/v1/chat/completions",
                &format!("mock/{FAST}"),
                stream,
                Framing::Sse,
                None,
            ),
            Sys::DirectOllama => {
                Target::chat(self.mock, "/api/chat", FAST, stream, Framing::Ndjson, None)
            }
            Sys::MessagesToOllama => Target::raw(
                self.openclawd,
                "/v1/messages",
                json!({
                    "model": format!("ollama/{FAST}"),
                    "max_tokens": 1024,
                    "stream": stream,
                    "messages": [{"role": "user", "content": PROMPT}],
                }),
                stream.then_some(Framing::AnthropicSse),
            )
            .header("anthropic-version", "2023-06-01"),
            Sys::DirectGemini => Target::raw(
                self.gemini,
                &if stream {
                    format!("/v1beta/models/{FAST}:streamGenerateContent?alt=sse")
                } else {
                    format!("/v1beta/models/{FAST}:generateContent")
                },
                json!({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}),
                stream.then_some(Framing::GeminiSse),
            )
            .header("x-goog-api-key", GEMINI_KEY),
            Sys::ChatToGemini => Target::chat(
                self.openclawd,
                "/v1/chat/completions",
                &format!("gemini/{FAST}"),
                stream,
                Framing::Sse,
                None,
            ),
        }
    }

    /// (openclawd's pid when it is in the path, the upstream's pid)
    fn pids(&self, s: Sys) -> (Option<i32>, i32) {
        let upstream = match s.baseline() {
            Sys::DirectGemini => self.gemini_pid,
            _ => self.mock_pid,
        };
        ((!s.is_direct()).then_some(self.openclawd_pid), upstream)
    }
}

#[derive(Debug, Clone)]
pub struct CloudPlan {
    pub rounds: usize,
    pub warmup: usize,
    /// Requests (or streams) per system per round at concurrency 1.
    pub c1_requests: usize,
    pub concurrency: usize,
    pub window: Duration,
    pub streaming: bool,
}

impl CloudPlan {
    pub fn full() -> CloudPlan {
        CloudPlan {
            rounds: 5,
            warmup: 200,
            c1_requests: 500,
            concurrency: 64,
            window: Duration::from_secs(1),
            streaming: true,
        }
    }

    pub fn smoke() -> CloudPlan {
        CloudPlan {
            rounds: 1,
            warmup: 5,
            c1_requests: 30,
            concurrency: 16,
            window: Duration::from_millis(200),
            streaming: true,
        }
    }
}

/// Figures of one system in one mode, over all rounds.
#[derive(Default)]
struct Acc {
    p50: Vec<f64>,
    p99: Vec<f64>,
    ok: u64,
    errors: u64,
    gw: Usage,
    up: Usage,
    rps: Vec<f64>,
}

/// What the goals or the report's summary may quote.
#[derive(Debug, Clone, Default)]
pub struct CloudFigures {
    /// (added p50, added p99) at concurrency 1, non-streaming.
    pub messages_added_c1: Option<(f64, f64)>,
    pub gemini_added_c1: Option<(f64, f64)>,
    pub pass_through_added_c1: Option<(f64, f64)>,
    /// openclawd CPU per request at the top concurrency, non-streaming.
    pub messages_cpu_us: Option<f64>,
    pub gemini_cpu_us: Option<f64>,
    pub pass_through_cpu_us: Option<f64>,
}

fn us_of(d: Option<Duration>) -> f64 {
    d.map(crate::report::dur_us).unwrap_or(f64::NAN)
}

/// The order of the systems in round `r`: rotated, reversed every other round.
fn rotated(r: usize) -> Vec<Sys> {
    let mut v = SYSTEMS.to_vec();
    v.rotate_left((r / 2) % SYSTEMS.len());
    if r % 2 == 1 {
        v.reverse();
    }
    v
}

/// Concurrency 1: (p50, p99) in µs of `n` requests (time to the last byte), or of `n` streams'
/// time to first event.
async fn one_at_a_time(t: &Target, n: usize, stream: bool) -> Result<(f64, f64), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let lat = if stream {
        let mut conn = load::Conn::open(t.addr).await?;
        let mut ttft = Vec::with_capacity(n);
        for _ in 0..n {
            let s = conn.stream(t, deadline).await;
            if let Some(e) = s.error {
                return Err(e);
            }
            ttft.push(s.ttft.ok_or("a stream with no event")?);
        }
        ttft
    } else {
        load::sequential(t, 0, n, deadline).await?
    };
    if lat.len() < n {
        return Err(format!(
            "only {} of {n} answered before the deadline",
            lat.len()
        ));
    }
    Ok((us_of(percentile(&lat, 0.5)), us_of(percentile(&lat, 0.99))))
}

pub async fn s8_clouds(rig: &CloudRig, plan: &CloudPlan, figs: &mut CloudFigures) -> Section {
    let c = plan.concurrency;
    let mut sec = Section {
        title: "8. Other inbound APIs and clouds (issue 16)".into(),
        text: format!(
            "Anthropic Messages in (`POST /v1/messages`) → openclawd → the mock's Ollama \
             `/api/chat` (provider `ollama`), and chat completions in → openclawd → the Gemini \
             double (`tests/cloud-doubles`, `gemini-double`: axum, the real API's validation and \
             2-space-indented bodies; provider `google-generative-ai`, `:generateContent` / \
             `:streamGenerateContent?alt=sse`), each beside the same upstream reached directly, \
             in the same interleaved rounds as openclawd's OpenAI pass-through and its direct \
             baseline: {} rounds, order rotated. Both upstreams answer the same 16 pieces of \
             text (the mock's `fast`; the double's control file sets `reply_tokens`), one \
             stream event each. *Concurrency 1*: {} requests per system per \
             round on one warm connection ({} warm-up requests first); non-streaming latency = \
             request written → last byte, streaming = time to the first event; *added* = median \
             over rounds of (system − its direct baseline in the same round). *Concurrency {c}*: \
             {c} connections back to back for {:.1} s per system per round; CPU per request = \
             the process's scheduler runtime over all its threads (`/proc/<pid>/task/*/schedstat`, \
             as §7), summed over the rounds, divided by the requests answered. *÷ pass-through* \
             divides openclawd's CPU per request by its OpenAI pass-through's in the same rounds.",
            plan.rounds,
            plan.c1_requests,
            plan.warmup,
            plan.window.as_secs_f64(),
        ),
        ..Default::default()
    };
    let modes: &[bool] = if plan.streaming {
        &[false, true]
    } else {
        &[false]
    };
    for &stream in modes {
        for s in SYSTEMS {
            let t = rig.target(s, stream);
            if let Err(e) = one_at_a_time(&t, plan.warmup.max(1), stream).await {
                sec.problems.push(format!(
                    "{} ({}): warm-up failed: {e}",
                    s.label(stream),
                    if stream { "streaming" } else { "non-streaming" }
                ));
            }
        }
    }
    let mut acc: BTreeMap<(bool, Sys), Acc> = BTreeMap::new();
    for r in 0..plan.rounds {
        for &stream in modes {
            for s in rotated(r) {
                let t = rig.target(s, stream);
                let mode = if stream { "streaming" } else { "non-streaming" };
                let a = acc.entry((stream, s)).or_default();
                match one_at_a_time(&t, plan.c1_requests, stream).await {
                    Ok((p50, p99)) => {
                        a.p50.push(p50);
                        a.p99.push(p99);
                    }
                    Err(e) => {
                        a.p50.push(f64::NAN);
                        a.p99.push(f64::NAN);
                        sec.problems.push(format!(
                            "{} ({mode}) at concurrency 1, round {}: {e}",
                            s.label(stream),
                            r + 1
                        ));
                    }
                }
                let (gw_pid, up_pid) = rig.pids(s);
                let gw0 = gw_pid.map(procfs::usage).unwrap_or_default();
                let up0 = procfs::usage(up_pid);
                let res = load::closed_loop(&t, c, plan.window).await;
                a.gw += gw_pid.map(procfs::usage).unwrap_or_default() - gw0;
                a.up += procfs::usage(up_pid) - up0;
                let ok = res.latencies.len() as u64;
                a.ok += ok;
                a.errors += res.errors;
                a.rps.push(ok as f64 / res.elapsed.as_secs_f64().max(1e-9));
                if res.errors > 0 {
                    sec.problems.push(format!(
                        "{} ({mode}) at concurrency {c}, round {}: {} errors (first: {})",
                        s.label(stream),
                        r + 1,
                        res.errors,
                        res.first_error.unwrap_or_default()
                    ));
                }
            }
        }
    }
    let per = |a: &Acc, v: u64| (a.ok > 0).then(|| v as f64 / a.ok as f64);
    for &stream in modes {
        let added = |s: Sys, f: fn(&Acc) -> &Vec<f64>| -> Option<f64> {
            let a = acc.get(&(stream, s))?;
            let b = acc.get(&(stream, s.baseline()))?;
            let d: Vec<f64> = f(a)
                .iter()
                .zip(f(b))
                .map(|(x, y)| x - y)
                .filter(|x| x.is_finite())
                .collect();
            median_f64(&d)
        };
        let gw_cpu = |s: Sys| -> Option<f64> {
            let a = acc.get(&(stream, s))?;
            per(a, a.gw.cpu_ns)
                .map(|ns| ns / 1e3)
                .filter(|_| !s.is_direct())
        };
        let pass_through = gw_cpu(Sys::PassThrough);
        let (c1, what) = if stream {
            ("streaming", "time to first event")
        } else {
            ("non-streaming", "latency")
        };
        let mut t = Table::new(&[
            &format!("{c1}: concurrency 1 {what}, concurrency {c} CPU"),
            "p50",
            "p99",
            "added p50",
            "added p99",
            &format!("requests/s at {c}"),
            "openclawd CPU / request",
            "÷ pass-through",
            "openclawd switches / request",
            "upstream CPU / request",
            "errors",
        ]);
        for s in SYSTEMS {
            let Some(a) = acc.get(&(stream, s)) else {
                continue;
            };
            let direct = s.is_direct();
            let signed = |v: Option<f64>| {
                if direct {
                    "—".to_string()
                } else {
                    v.map(added_us).unwrap_or("—".into())
                }
            };
            let cpu = gw_cpu(s);
            t.row(vec![
                s.label(stream).into(),
                opt_us(median_f64(&a.p50)),
                opt_us(median_f64(&a.p99)),
                signed(added(s, |a| &a.p50)),
                signed(added(s, |a| &a.p99)),
                median_f64(&a.rps)
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or("—".into()),
                cpu.map(us).unwrap_or("—".into()),
                cpu.zip(pass_through)
                    .map(|(g, p)| format!("{:.2}×", g / p))
                    .unwrap_or("—".into()),
                per(a, a.gw.switches)
                    .filter(|_| !direct)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or("—".into()),
                per(a, a.up.cpu_ns)
                    .map(|ns| us(ns / 1e3))
                    .unwrap_or("—".into()),
                a.errors.to_string(),
            ]);
        }
        sec.tables.push(t);
        if !stream {
            let pair = |s: Sys| added(s, |a| &a.p50).zip(added(s, |a| &a.p99));
            figs.messages_added_c1 = pair(Sys::MessagesToOllama);
            figs.gemini_added_c1 = pair(Sys::ChatToGemini);
            figs.pass_through_added_c1 = pair(Sys::PassThrough);
            figs.messages_cpu_us = gw_cpu(Sys::MessagesToOllama);
            figs.gemini_cpu_us = gw_cpu(Sys::ChatToGemini);
            figs.pass_through_cpu_us = pass_through;
        }
    }
    // The upstream's own cost differs per path; what openclawd adds is its CPU column.
    if let (Some(m), Some(g), Some(p)) = (
        figs.messages_cpu_us,
        figs.gemini_cpu_us,
        figs.pass_through_cpu_us,
    ) {
        sec.notes.push(format!(
            "Non-streaming, openclawd's CPU per request: {} for Anthropic Messages → Ollama \
             (parsed into the internal representation, re-encoded for `/api/chat`, the answer \
             translated back), {} for chat completions → Gemini (translated both ways), {} for \
             the pass-through (no translation). The upstream columns are each upstream's own \
             cost per request (the Gemini double validates and pretty-prints, so it costs more \
             than the mock) and are not part of openclawd's figure.",
            us(m),
            us(g),
            us(p)
        ));
    }
    sec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_path_is_compared_with_its_own_upstream_reached_directly() {
        for s in SYSTEMS {
            assert!(s.baseline().is_direct());
            for stream in [false, true] {
                assert_eq!(
                    s.is_direct(),
                    !s.label(stream).contains("openclawd"),
                    "{s:?}"
                );
            }
        }
        let orders: Vec<Vec<Sys>> = (0..4).map(rotated).collect();
        assert_ne!(orders[0], orders[1]);
        assert_ne!(orders[0], orders[2]);
        for o in orders {
            assert_eq!(o.len(), SYSTEMS.len());
        }
    }

    #[test]
    fn requests_speak_each_api() {
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let rig = CloudRig {
            mock: a,
            mock_pid: 1,
            gemini: a,
            gemini_pid: 2,
            openclawd: a,
            openclawd_pid: 3,
        };
        let m = rig.target(Sys::MessagesToOllama, true);
        let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body["max_tokens"], 1024);
        assert_eq!(m.framing, Some(Framing::AnthropicSse));
        let g = rig.target(Sys::DirectGemini, false);
        assert!(g.path.ends_with(":generateContent"));
        assert!(g
            .headers
            .iter()
            .any(|(k, v)| *k == "x-goog-api-key" && v == GEMINI_KEY));
        assert_eq!(rig.pids(Sys::DirectGemini), (None, 2));
        assert_eq!(rig.pids(Sys::ChatToGemini), (Some(3), 2));
        assert_eq!(rig.pids(Sys::MessagesToOllama), (Some(3), 1));
    }
}
