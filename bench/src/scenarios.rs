//! Scenarios 1–5: each system measured in the same rounds, the order rotated every round
//! (interleaved), figures taken per round and then the median over rounds. "Added" figures are
//! the median over rounds of (system − its direct baseline in the same round).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::load::{self, Framing, StreamSample, Target};
use crate::procfs;
use crate::report::{self, added_us, mb, opt_added, opt_us, ratio, us, Section, Table};
use crate::stats::{max_f64, median_f64, percentile};
use crate::systems::{FAST, LITELLM_KEY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sys {
    Direct,
    Openclawd,
    Litellm,
    DirectOllama,
    OpenclawdOllama,
}

impl Sys {
    pub fn label(self) -> &'static str {
        match self {
            Sys::Direct => "direct → mock (OpenAI API)",
            Sys::Openclawd => "**openclawd** → mock (`openai-completions`)",
            Sys::Litellm => "LiteLLM → mock (OpenAI API)",
            Sys::DirectOllama => "direct → mock (Ollama `/api/chat`)",
            Sys::OpenclawdOllama => "**openclawd** → mock (`ollama` native)",
        }
    }

    /// The direct run this system is compared with.
    pub fn baseline(self) -> Sys {
        match self {
            Sys::Direct | Sys::Openclawd | Sys::Litellm => Sys::Direct,
            Sys::DirectOllama | Sys::OpenclawdOllama => Sys::DirectOllama,
        }
    }

    pub fn is_direct(self) -> bool {
        self == self.baseline()
    }
}

/// How much of everything to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rounds: usize,
    pub warmup: usize,
    pub s1_rounds: usize,
    pub s1_requests: usize,
    pub s1_requests_litellm: usize,
    /// Requests per round sent after `s1_think` of idle time (0: skip).
    pub s1_idle_requests: usize,
    pub s1_think: Duration,
    pub s2_concurrency: usize,
    pub s2_duration: Duration,
    pub s2_duration_litellm: Duration,
    pub stream_model: &'static str,
    pub short_stream_model: &'static str,
    /// Streams per round at concurrency 1 (short streams).
    pub s3_sequential: usize,
    /// Concurrency levels measured every round (besides 1).
    pub s3_levels: Vec<usize>,
    /// LiteLLM joins the rounds' levels up to this one (higher ones only in the ladder).
    pub s3_litellm_max_level: usize,
    /// Levels tried once per system after the rounds, stopping at the first stall.
    pub s3_ladder: Vec<usize>,
    pub s3_pace: Duration,
    pub s4_requests: usize,
    pub s6_iterations: usize,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            rounds: 5,
            warmup: 300,
            s1_rounds: 10,
            s1_requests: 1000,
            s1_requests_litellm: 100,
            s1_idle_requests: 50,
            s1_think: Duration::from_millis(20),
            s2_concurrency: 64,
            s2_duration: Duration::from_secs(2),
            s2_duration_litellm: Duration::from_secs(4),
            stream_model: crate::systems::STREAM,
            short_stream_model: crate::systems::SHORT_STREAM,
            s3_sequential: 10,
            s3_levels: vec![64, 512],
            s3_litellm_max_level: 64,
            s3_ladder: vec![8, 64, 128, 256, 512],
            s3_pace: Duration::from_millis(20),
            s4_requests: 30,
            s6_iterations: 10,
        }
    }

    /// The CI smoke: every code path once, about ten seconds.
    pub fn smoke() -> Plan {
        Plan {
            rounds: 1,
            warmup: 20,
            s1_rounds: 1,
            s1_requests: 200,
            s1_requests_litellm: 20,
            s1_idle_requests: 5,
            s1_think: Duration::from_millis(20),
            s2_concurrency: 16,
            s2_duration: Duration::from_millis(400),
            s2_duration_litellm: Duration::from_millis(400),
            stream_model: crate::systems::SMOKE_STREAM,
            short_stream_model: crate::systems::SMOKE_STREAM,
            s3_sequential: 2,
            s3_levels: vec![8],
            s3_litellm_max_level: 8,
            s3_ladder: vec![],
            s3_pace: Duration::from_millis(5),
            s4_requests: 10,
            s6_iterations: 1,
        }
    }

    pub fn dead_models(&self) -> usize {
        2 + self.rounds * self.s4_requests
    }
}

/// The running systems.
pub struct Rig {
    pub mock: SocketAddr,
    pub mock_pid: i32,
    pub openclawd: SocketAddr,
    pub openclawd_pid: i32,
    pub litellm: Option<(SocketAddr, i32)>,
}

impl Rig {
    pub fn systems(&self) -> Vec<Sys> {
        let mut v = vec![Sys::Direct, Sys::Openclawd];
        if self.litellm.is_some() {
            v.push(Sys::Litellm);
        }
        v.extend([Sys::DirectOllama, Sys::OpenclawdOllama]);
        v
    }

    pub fn target(&self, sys: Sys, model: &str, stream: bool) -> Target {
        match sys {
            Sys::Direct => Target::chat(
                self.mock,
                "/v1/chat/completions",
                model,
                stream,
                Framing::Sse,
                None,
            ),
            Sys::DirectOllama => {
                Target::chat(self.mock, "/api/chat", model, stream, Framing::Ndjson, None)
            }
            Sys::Openclawd => Target::chat(
                self.openclawd,
                "/v1/chat/completions",
                &format!("mock/{model}"),
                stream,
                Framing::Sse,
                None,
            ),
            Sys::OpenclawdOllama => Target::chat(
                self.openclawd,
                "/v1/chat/completions",
                &format!("ollama/{model}"),
                stream,
                Framing::Sse,
                None,
            ),
            Sys::Litellm => Target::chat(
                self.litellm.map(|l| l.0).unwrap_or(self.mock),
                "/v1/chat/completions",
                model,
                stream,
                Framing::Sse,
                Some(LITELLM_KEY),
            ),
        }
    }

    /// The process whose CPU and memory a system costs: the gateway, or the mock for direct.
    pub fn pid(&self, sys: Sys) -> i32 {
        match sys {
            Sys::Direct | Sys::DirectOllama => self.mock_pid,
            Sys::Openclawd | Sys::OpenclawdOllama => self.openclawd_pid,
            Sys::Litellm => self.litellm.map(|l| l.1).unwrap_or(self.mock_pid),
        }
    }
}

/// The order of `systems` in round `r`: rotated, and reversed every other round, so no system
/// always runs first, last, or right after the same neighbour (LiteLLM keeps working for a
/// moment after its window).
fn rotated<T: Copy>(systems: &[T], r: usize) -> Vec<T> {
    let mut v = systems.to_vec();
    if !v.is_empty() {
        let k = (r / 2) % v.len();
        v.rotate_left(k);
        if r % 2 == 1 {
            v.reverse();
        }
    }
    v
}

/// After a LiteLLM window, let its background work finish before the next system is measured.
async fn settle(s: Sys) {
    if s == Sys::Litellm {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The headline figures the goals are judged on.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub added_p50_c1_us: Option<f64>,
    pub added_p99_c1_us: Option<f64>,
    pub added_p50_idle_us: Option<f64>,
    pub added_ttft_p99_c1_us: Option<f64>,
    pub added_ttft_p99_c64_us: Option<f64>,
    pub added_gap_p99_512_us: Option<f64>,
    pub added_ttft_p50_512_us: Option<f64>,
    pub max_streams_openclawd: Option<usize>,
    pub cpu_per_request_us: Option<f64>,
    pub cpu_per_request_ollama_us: Option<f64>,
    pub litellm_cpu_per_request_us: Option<f64>,
    pub rps_openclawd: Option<f64>,
    pub rps_litellm: Option<f64>,
    pub idle_rss: Option<u64>,
    pub rss_512: Option<u64>,
    pub rss_s2: Option<u64>,
    pub rss_after: Option<u64>,
    pub failover_added_p99_us: Option<f64>,
}

/// Samples the resident memory of some processes until stopped; the peak of each.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<u64>>,
}

impl RssWatch {
    pub fn start(pids: Vec<i32>) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = vec![0u64; pids.len()];
            // Bounded: stops when told, or after an hour at the latest.
            for _ in 0..72_000 {
                for (i, p) in pids.iter().enumerate() {
                    peak[i] = peak[i].max(procfs::tree_rss_bytes(*p));
                }
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        });
        RssWatch { stop, task }
    }

    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

fn us_of(d: Option<Duration>) -> f64 {
    d.map(report::dur_us).unwrap_or(f64::NAN)
}

/// Per-round figures of one system.
#[derive(Default)]
struct Rounds(BTreeMap<Sys, Vec<f64>>);

impl Rounds {
    fn push(&mut self, s: Sys, v: f64) {
        self.0.entry(s).or_default().push(v);
    }
    fn median(&self, s: Sys) -> Option<f64> {
        self.0.get(&s).and_then(|v| {
            median_f64(
                &v.iter()
                    .copied()
                    .filter(|x| x.is_finite())
                    .collect::<Vec<_>>(),
            )
        })
    }
    /// Median over rounds of (s − baseline) in the same round.
    fn added(&self, s: Sys) -> Option<f64> {
        let a = self.0.get(&s)?;
        let b = self.0.get(&s.baseline())?;
        let d: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(x, y)| x - y)
            .filter(|x| x.is_finite())
            .collect();
        median_f64(&d)
    }
}

// ---- 1. added latency, non-streaming, concurrency 1 -------------------------------------------

pub async fn s1_latency(rig: &Rig, plan: &Plan, figs: &mut Figures) -> Section {
    let mut sec = Section {
        title: "1. Added latency, non-streaming, concurrency 1".into(),
        text: format!(
            "One connection, one request at a time, back to back, {} requests per system per \
             round ({} for LiteLLM), {} rounds, order rotated each round, {} warm-up requests \
             first. Latency = request written → last byte of the answer. *Added* = median over \
             rounds of (system − direct in the same round).",
            plan.s1_requests, plan.s1_requests_litellm, plan.s1_rounds, plan.warmup
        ),
        ..Default::default()
    };
    let systems = rig.systems();
    for s in &systems {
        let t = rig.target(*s, FAST, false);
        if let Err(e) =
            load::sequential(&t, plan.warmup, 0, Instant::now() + Duration::from_secs(60)).await
        {
            sec.problems
                .push(format!("{}: warm-up failed: {e}", s.label()));
        }
    }
    let (mut p50, mut p99) = (Rounds::default(), Rounds::default());
    let (mut idle50, mut idle99) = (Rounds::default(), Rounds::default());
    for r in 0..plan.s1_rounds {
        for s in rotated(&systems, r) {
            if plan.s1_idle_requests > 0 {
                let n = if s == Sys::Litellm {
                    plan.s1_idle_requests.min(20)
                } else {
                    plan.s1_idle_requests
                };
                let t = rig.target(s, FAST, false);
                match load::sequential_after_idle(
                    &t,
                    n,
                    plan.s1_think,
                    Instant::now() + Duration::from_secs(30),
                )
                .await
                {
                    Ok(lat) => {
                        idle50.push(s, us_of(percentile(&lat, 0.50)));
                        idle99.push(s, us_of(percentile(&lat, 0.99)));
                    }
                    Err(e) => {
                        sec.problems.push(format!(
                            "{} round {} (after idle): {e}",
                            s.label(),
                            r + 1
                        ));
                        idle50.push(s, f64::NAN);
                        idle99.push(s, f64::NAN);
                    }
                }
                settle(s).await;
            }
            let n = if s == Sys::Litellm {
                plan.s1_requests_litellm
            } else {
                plan.s1_requests
            };
            let t = rig.target(s, FAST, false);
            match load::sequential(&t, 0, n, Instant::now() + Duration::from_secs(60)).await {
                Ok(lat) => {
                    p50.push(s, us_of(percentile(&lat, 0.50)));
                    p99.push(s, us_of(percentile(&lat, 0.99)));
                }
                Err(e) => {
                    sec.problems
                        .push(format!("{} round {}: {e}", s.label(), r + 1));
                    p50.push(s, f64::NAN);
                    p99.push(s, f64::NAN);
                }
            }
            settle(s).await;
        }
    }
    let mut t = Table::new(&[
        "system",
        "p50",
        "p99",
        "added p50",
        "added p99",
        "p50 ÷ direct",
        "p99 of each round",
    ]);
    for s in &systems {
        let direct = s.is_direct();
        t.row(vec![
            s.label().into(),
            opt_us(p50.median(*s)),
            opt_us(p99.median(*s)),
            if direct {
                "—".into()
            } else {
                opt_added(p50.added(*s))
            },
            if direct {
                "—".into()
            } else {
                opt_added(p99.added(*s))
            },
            ratio(
                p50.median(*s)
                    .zip(p50.median(s.baseline()))
                    .map(|(a, b)| a / b),
            ),
            p99.0
                .get(s)
                .map(|v| {
                    v.iter()
                        .map(|x| format!("{x:.0}"))
                        .collect::<Vec<_>>()
                        .join(" · ")
                        + " µs"
                })
                .unwrap_or_default(),
        ]);
    }
    sec.tables.push(t);
    if plan.s1_idle_requests > 0 {
        let mut t = Table::new(&[
            &format!("after {} ms idle", plan.s1_think.as_millis()),
            "p50",
            "p99",
            "added p50",
            "added p99",
        ]);
        for s in &systems {
            let direct = s.is_direct();
            t.row(vec![
                s.label().into(),
                opt_us(idle50.median(*s)),
                opt_us(idle99.median(*s)),
                if direct {
                    "—".into()
                } else {
                    opt_added(idle50.added(*s))
                },
                if direct {
                    "—".into()
                } else {
                    opt_added(idle99.added(*s))
                },
            ]);
        }
        // Measured now, not quoted: the cost of one wake-up from idle on this machine.
        let samples = plan.s1_idle_requests.clamp(5, 100);
        let wake = tokio::task::spawn_blocking(move || crate::reference::wake_cost(samples))
            .await
            .ok()
            .flatten();
        let wake_text = match wake {
            Some((idle, hot)) => format!(
                "on this machine, in this run, a thread woken from idle answers a 1-byte ping in \
                 {} (p50), {} when hot",
                us(idle),
                us(hot)
            ),
            None => "the wake-up cost could not be measured in this run".into(),
        };
        sec.text.push_str(&format!(
            "\n\nThe second table sends {} requests per system per round on a warm connection, \
             each after {} ms of idle time, as a chat client does between messages (LiteLLM: \
             at most 20). Every process then starts cold: its thread wakes from `epoll_wait`, \
             its caches were used by others. A gateway adds one hop each way, so two more \
             wake-ups than direct access; {wake_text} (direct access itself goes from {} back \
             to back to {} after idle).",
            plan.s1_idle_requests,
            plan.s1_think.as_millis(),
            opt_us(p50.median(Sys::Direct)),
            opt_us(idle50.median(Sys::Direct)),
        ));
        sec.tables.push(t);
        figs.added_p50_idle_us = idle50.added(Sys::Openclawd);
    }
    figs.added_p50_c1_us = p50.added(Sys::Openclawd);
    figs.added_p99_c1_us = p99.added(Sys::Openclawd);
    sec
}

// ---- 2. throughput at concurrency 64, CPU per request ------------------------------------------

pub async fn s2_throughput(rig: &Rig, plan: &Plan, figs: &mut Figures) -> Section {
    let c = plan.s2_concurrency;
    let mut sec = Section {
        title: format!("2. Throughput at concurrency {c}, CPU time per request"),
        text: format!(
            "{c} connections sending back to back for {:.1} s per system per round ({:.1} s for \
             LiteLLM), {} rounds, order rotated. CPU = utime + stime of the process (for LiteLLM, \
             its whole process tree) from `/proc/<pid>/stat` before and after each window, \
             summed over the rounds and divided by the requests answered. On a 2-core machine \
             shared with the load client and the mock, requests/s is bounded by the machine; CPU \
             per request is the figure that carries over.",
            plan.s2_duration.as_secs_f64(),
            plan.s2_duration_litellm.as_secs_f64(),
            plan.rounds
        ),
        ..Default::default()
    };
    let systems = rig.systems();
    let (mut rps, mut p50, mut p99) = (Rounds::default(), Rounds::default(), Rounds::default());
    let mut cpu: BTreeMap<Sys, (f64, f64, u64, u64)> = BTreeMap::new(); // gateway s, mock s, ok, errors
    for r in 0..plan.rounds {
        for s in rotated(&systems, r) {
            let t = rig.target(s, FAST, false);
            let d = if s == Sys::Litellm {
                plan.s2_duration_litellm
            } else {
                plan.s2_duration
            };
            let gw0 = procfs::cpu_secs(rig.pid(s));
            let mock0 = procfs::cpu_secs(rig.mock_pid);
            let res = load::closed_loop(&t, c, d).await;
            let gw = procfs::cpu_secs(rig.pid(s)) - gw0;
            let mock = procfs::cpu_secs(rig.mock_pid) - mock0;
            let ok = res.latencies.len() as u64;
            rps.push(s, ok as f64 / res.elapsed.as_secs_f64());
            p50.push(s, us_of(percentile(&res.latencies, 0.5)));
            p99.push(s, us_of(percentile(&res.latencies, 0.99)));
            settle(s).await;
            let e = cpu.entry(s).or_default();
            e.0 += gw;
            e.1 += mock;
            e.2 += ok;
            e.3 += res.errors;
            if res.errors > 0 {
                sec.problems.push(format!(
                    "{} round {}: {} errors (first: {})",
                    s.label(),
                    r + 1,
                    res.errors,
                    res.first_error.unwrap_or_default()
                ));
            }
        }
    }
    let per_req = |s: Sys, mock: bool| -> Option<f64> {
        let (g, m, ok, _) = cpu.get(&s)?;
        (*ok > 0).then(|| if mock { m } else { g } / *ok as f64 * 1e6)
    };
    let mut t = Table::new(&[
        "system",
        "requests/s",
        "÷ direct",
        "p50",
        "p99",
        "errors",
        "gateway CPU / request",
        "requests per gateway CPU-second",
        "mock CPU / request",
    ]);
    for s in &systems {
        let gw = if s.is_direct() {
            None
        } else {
            per_req(*s, false)
        };
        t.row(vec![
            s.label().into(),
            rps.median(*s)
                .map(|v| format!("{v:.0}"))
                .unwrap_or("—".into()),
            ratio(
                rps.median(*s)
                    .zip(rps.median(s.baseline()))
                    .map(|(a, b)| a / b),
            ),
            opt_us(p50.median(*s)),
            opt_us(p99.median(*s)),
            cpu.get(s).map(|c| c.3.to_string()).unwrap_or("—".into()),
            gw.map(us).unwrap_or("—".into()),
            gw.map(|g| format!("{:.0}", 1e6 / g)).unwrap_or("—".into()),
            opt_us(per_req(*s, true)),
        ]);
    }
    sec.tables.push(t);
    figs.cpu_per_request_us = per_req(Sys::Openclawd, false);
    figs.cpu_per_request_ollama_us = per_req(Sys::OpenclawdOllama, false);
    figs.litellm_cpu_per_request_us = per_req(Sys::Litellm, false);
    figs.rps_openclawd = rps.median(Sys::Openclawd);
    figs.rps_litellm = rps.median(Sys::Litellm);
    if let (Some(o), Some(l)) = (figs.cpu_per_request_us, figs.litellm_cpu_per_request_us) {
        sec.notes.push(format!(
            "Throughput per CPU: openclawd answers {:.0} requests per CPU-second, LiteLLM {:.0}: **{:.0}×**.",
            1e6 / o,
            1e6 / l,
            l / o
        ));
    }
    sec.notes.push(format!(
        "CPU figures come from `/proc` clock ticks ({} per second); each window holds \
         hundreds of ticks for openclawd and the mock.",
        procfs::clock_ticks()
    ));
    sec
}

// ---- 3. streaming -----------------------------------------------------------------------------

/// A stream stalls when it fails, ends early, or goes quiet this long (10 × the 20 ms pace).
pub const STALL_GAP: Duration = Duration::from_millis(200);

fn stalled(s: &StreamSample) -> bool {
    s.error.is_some() || !s.complete || s.events == 0 || s.gaps.iter().any(|g| *g > STALL_GAP)
}

#[derive(Default)]
struct LevelFigures {
    ttft_p50: Rounds,
    ttft_p99: Rounds,
    gap_p99: Rounds,
    stalls: BTreeMap<Sys, (usize, usize)>,
    cpu: BTreeMap<Sys, (f64, usize)>,
    rss: BTreeMap<Sys, u64>,
    first_problem: BTreeMap<Sys, String>,
    /// Streams that failed or ended without their end marker (not merely slow).
    failed: BTreeMap<Sys, usize>,
}

async fn run_level(rig: &Rig, plan: &Plan, s: Sys, level: usize) -> (Vec<StreamSample>, f64, u64) {
    let pid = rig.pid(s);
    let cpu0 = procfs::cpu_secs(pid);
    let watch = RssWatch::start(vec![pid]);
    let samples = if level == 1 {
        // One keep-alive connection, warmed by one request, as an SDK client holds it.
        let t = rig.target(s, plan.short_stream_model, true);
        let mut v = Vec::new();
        match load::Conn::open(t.addr).await {
            Ok(mut conn) => {
                let _ = conn.call(&rig.target(s, FAST, false)).await;
                for _ in 0..plan.s3_sequential {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    v.push(conn.stream(&t, deadline).await);
                }
            }
            Err(e) => v.push(StreamSample {
                error: Some(e),
                ..Default::default()
            }),
        }
        v
    } else {
        let t = rig.target(s, plan.stream_model, true);
        let warm = rig.target(s, FAST, false);
        let deadline = Instant::now() + Duration::from_secs(30);
        load::streams(&t, &warm, level, plan.s3_pace, deadline).await
    };
    let cpu = procfs::cpu_secs(pid) - cpu0;
    let rss = watch.finish().await.first().copied().unwrap_or(0);
    (samples, cpu, rss)
}

pub async fn s3_streaming(rig: &Rig, plan: &Plan, figs: &mut Figures) -> Section {
    let mut sec =
        Section {
            title: "3. Streaming".into(),
            text: format!(
            "The mock streams `{}` ({} content chunks paced {} ms; the role chunk rides with the \
             first, the finish chunk and `[DONE]` with the last). Concurrency 1 uses {} short \
             streams (`{}`) one after the other per round; higher levels open one connection \
             per stream, warm each with one request, then start all streams within one pace \
             period. Time to first token (TTFT) = request written → first event \
             read; inter-chunk gap = time between consecutive events read by the client. A stream \
             *stalls* if it fails, ends without its end marker, or any gap exceeds {} ms. {} \
             rounds, order rotated; added = median over rounds of (system − direct in the same \
             round). LiteLLM joins the rounds up to concurrency {}. A stream's first request \
             comes after the previous stream's 20 ms pauses, so TTFT carries the wake-from-idle \
             cost shown in the second table of §1.",
            plan.stream_model,
            crate::mock::Shape::from_model(plan.stream_model).chunks,
            crate::mock::Shape::from_model(plan.stream_model).pace.as_millis(),
            plan.s3_sequential,
            plan.short_stream_model,
            STALL_GAP.as_millis(),
            plan.rounds,
            plan.s3_litellm_max_level,
        ),
            ..Default::default()
        };
    let systems = rig.systems();
    let mut levels = vec![1usize];
    levels.extend(plan.s3_levels.iter().copied());
    let mut per_level: BTreeMap<usize, LevelFigures> = BTreeMap::new();
    for r in 0..plan.rounds {
        for &level in &levels {
            let in_level: Vec<Sys> = systems
                .iter()
                .copied()
                .filter(|s| *s != Sys::Litellm || level <= plan.s3_litellm_max_level)
                .collect();
            for s in rotated(&in_level, r) {
                let (samples, cpu, rss) = run_level(rig, plan, s, level).await;
                settle(s).await;
                let lf = per_level.entry(level).or_default();
                let ttft: Vec<Duration> = samples.iter().filter_map(|x| x.ttft).collect();
                let gaps: Vec<Duration> = samples
                    .iter()
                    .flat_map(|x| x.gaps.iter().copied())
                    .collect();
                lf.ttft_p50.push(s, us_of(percentile(&ttft, 0.5)));
                lf.ttft_p99.push(s, us_of(percentile(&ttft, 0.99)));
                lf.gap_p99.push(s, us_of(percentile(&gaps, 0.99)));
                let n_stalled = samples.iter().filter(|x| stalled(x)).count();
                *lf.failed.entry(s).or_default() += samples
                    .iter()
                    .filter(|x| x.error.is_some() || !x.complete)
                    .count();
                let e = lf.stalls.entry(s).or_default();
                e.0 += n_stalled;
                e.1 += samples.len();
                let c = lf.cpu.entry(s).or_default();
                c.0 += cpu;
                c.1 += samples.len();
                let m = lf.rss.entry(s).or_default();
                *m = (*m).max(rss);
                if n_stalled > 0 {
                    if let Some(bad) = samples.iter().find(|x| stalled(x)) {
                        let why = bad.error.clone().unwrap_or_else(|| {
                            let worst = bad.gaps.iter().max().copied().unwrap_or_default();
                            format!("largest gap {:.0} ms", worst.as_secs_f64() * 1e3)
                        });
                        lf.first_problem.entry(s).or_insert(why);
                    }
                }
            }
        }
    }
    for (&level, lf) in &per_level {
        let mut t = Table::new(&[
            &format!("concurrency {level}"),
            "TTFT p50",
            "TTFT p99",
            "added TTFT p50",
            "added TTFT p99",
            "gap p99",
            "added gap p99",
            "stalled streams",
            "gateway CPU / stream",
            "peak RSS",
        ]);
        for s in &systems {
            let Some((stalls, total)) = lf.stalls.get(s) else {
                continue;
            };
            let direct = s.is_direct();
            let cpu = lf
                .cpu
                .get(s)
                .filter(|c| c.1 > 0)
                .map(|c| c.0 / c.1 as f64 * 1e6);
            t.row(vec![
                s.label().into(),
                opt_us(lf.ttft_p50.median(*s)),
                opt_us(lf.ttft_p99.median(*s)),
                if direct {
                    "—".into()
                } else {
                    opt_added(lf.ttft_p50.added(*s))
                },
                if direct {
                    "—".into()
                } else {
                    opt_added(lf.ttft_p99.added(*s))
                },
                opt_us(lf.gap_p99.median(*s)),
                if direct {
                    "—".into()
                } else {
                    opt_added(lf.gap_p99.added(*s))
                },
                format!("{stalls} / {total}"),
                if direct {
                    "—".into()
                } else {
                    cpu.map(us).unwrap_or("—".into())
                },
                mb(lf.rss.get(s).copied()),
            ]);
            if *stalls > 0 {
                sec.notes.push(format!(
                    "{} at concurrency {level}: {stalls} of {total} streams stalled ({}).",
                    s.label(),
                    lf.first_problem.get(s).cloned().unwrap_or_default()
                ));
                let failed = lf.failed.get(s).copied().unwrap_or(0);
                if failed > 0
                    && (s.is_direct() || matches!(s, Sys::Openclawd | Sys::OpenclawdOllama))
                {
                    // A failed or truncated stream is a bug; a slow one is only a figure.
                    sec.problems.push(format!(
                        "{} at concurrency {level}: {failed} streams failed or ended early",
                        s.label()
                    ));
                }
            }
        }
        sec.tables.push(t);
    }
    figs.added_ttft_p99_c1_us = per_level
        .get(&1)
        .and_then(|l| l.ttft_p99.added(Sys::Openclawd));
    figs.added_ttft_p99_c64_us = per_level
        .get(&64)
        .and_then(|l| l.ttft_p99.added(Sys::Openclawd));
    figs.added_gap_p99_512_us = per_level
        .get(&512)
        .and_then(|l| l.gap_p99.added(Sys::Openclawd));
    figs.added_ttft_p50_512_us = per_level
        .get(&512)
        .and_then(|l| l.ttft_p50.added(Sys::Openclawd));
    figs.rss_512 = per_level.get(&512).and_then(|l| {
        [Sys::Openclawd, Sys::OpenclawdOllama]
            .iter()
            .filter_map(|s| l.rss.get(s))
            .max()
            .copied()
    });

    // The ladder: the most concurrent streams each system carries with no stall.
    if !plan.s3_ladder.is_empty() {
        let mut t = Table::new(&[
            "system",
            "most concurrent streams with no stall",
            "first stall",
        ]);
        for s in &systems {
            let mut best: Option<usize> = None;
            let mut first_stall = "none up to the top of the ladder".to_string();
            // Levels already passed in every round count; the ladder goes on from there.
            for &level in &plan.s3_ladder {
                let (samples, _, _) = run_level(rig, plan, *s, level).await;
                let bad: Vec<&StreamSample> = samples.iter().filter(|x| stalled(x)).collect();
                if bad.is_empty() {
                    best = Some(level);
                } else {
                    let why = bad[0].error.clone().unwrap_or_else(|| {
                        format!(
                            "largest gap {:.0} ms",
                            bad[0]
                                .gaps
                                .iter()
                                .max()
                                .copied()
                                .unwrap_or_default()
                                .as_secs_f64()
                                * 1e3
                        )
                    });
                    first_stall = format!(
                        "{level}: {} of {} stalled ({why})",
                        bad.len(),
                        samples.len()
                    );
                    break;
                }
            }
            if *s == Sys::Openclawd {
                figs.max_streams_openclawd = best;
            }
            t.row(vec![
                s.label().into(),
                best.map(|b| b.to_string()).unwrap_or("none".into()),
                first_stall,
            ]);
        }
        sec.text.push_str(&format!(
            "\n\nThe ladder below runs once per system after the rounds, at {:?} concurrent \
             streams, and stops at the first level with a stall.",
            plan.s3_ladder
        ));
        sec.tables.push(t);
    }
    sec
}

// ---- 4. failover --------------------------------------------------------------------------------

pub async fn s4_failover(rig: &Rig, plan: &Plan, figs: &mut Figures) -> Section {
    let mut sec = Section {
        title: "4. Failover: the primary's port refuses → the fallback answers".into(),
        text: format!(
            "openclawd's `dead` provider points at a loopback port nothing listens on; its \
             chain falls back to `mock/fast`. *First failure*: each request names a model that \
             has not failed yet (`dead/d<k>`), so openclawd really connects, is refused, and \
             falls over. *In cooldown*: a model that failed before is skipped without a \
             connection attempt (SPEC §5 cooldown). {} requests per kind per round, {} rounds, \
             rotated, compared with the same request sent directly to the mock.",
            plan.s4_requests, plan.rounds
        ),
        ..Default::default()
    };
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Kind {
        Direct,
        Fresh,
        Cooling,
    }
    let mut next_dead = 1usize;
    // d0 fails once now, so it is in cooldown for the whole scenario (30 s first step).
    let cooling = Target::chat(
        rig.openclawd,
        "/v1/chat/completions",
        "dead/d0",
        false,
        Framing::Sse,
        None,
    );
    if let Err(e) = load::sequential(&cooling, 0, 1, Instant::now() + Duration::from_secs(10)).await
    {
        sec.problems
            .push(format!("the first failover did not answer: {e}"));
    }
    let direct = rig.target(Sys::Direct, FAST, false);
    let mut res: BTreeMap<Kind, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let kinds = [Kind::Direct, Kind::Fresh, Kind::Cooling];
    for r in 0..plan.rounds {
        for k in rotated(&kinds, r) {
            let lat: Result<Vec<Duration>, String> = match k {
                Kind::Direct => {
                    load::sequential(
                        &direct,
                        0,
                        plan.s4_requests,
                        Instant::now() + Duration::from_secs(30),
                    )
                    .await
                }
                Kind::Cooling => {
                    load::sequential(
                        &cooling,
                        0,
                        plan.s4_requests,
                        Instant::now() + Duration::from_secs(30),
                    )
                    .await
                }
                Kind::Fresh => {
                    let mut v = Vec::new();
                    let mut err = None;
                    match load::Conn::open(rig.openclawd).await {
                        Ok(mut conn) => {
                            for _ in 0..plan.s4_requests {
                                let t = Target::chat(
                                    rig.openclawd,
                                    "/v1/chat/completions",
                                    &format!("dead/d{next_dead}"),
                                    false,
                                    Framing::Sse,
                                    None,
                                );
                                next_dead += 1;
                                match conn.call(&t).await {
                                    Ok(d) => v.push(d),
                                    Err(e) => {
                                        err = Some(e);
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => err = Some(e),
                    }
                    match err {
                        Some(e) => Err(e),
                        None => Ok(v),
                    }
                }
            };
            let e = res.entry(k).or_default();
            match lat {
                Ok(l) => {
                    e.0.push(us_of(percentile(&l, 0.5)));
                    e.1.push(us_of(percentile(&l, 0.99)));
                }
                Err(err) => {
                    sec.problems
                        .push(format!("failover round {}: {err}", r + 1));
                    e.0.push(f64::NAN);
                    e.1.push(f64::NAN);
                }
            }
        }
    }
    let added = |k: Kind, p99: bool| -> Option<f64> {
        let a = res.get(&k)?;
        let b = res.get(&Kind::Direct)?;
        let (a, b) = if p99 { (&a.1, &b.1) } else { (&a.0, &b.0) };
        median_f64(
            &a.iter()
                .zip(b)
                .map(|(x, y)| x - y)
                .filter(|x| x.is_finite())
                .collect::<Vec<_>>(),
        )
    };
    let med = |k: Kind, p99: bool| -> Option<f64> {
        let a = res.get(&k)?;
        median_f64(if p99 { &a.1 } else { &a.0 })
    };
    let mut t = Table::new(&["request", "p50", "p99", "added p50", "added p99"]);
    for (k, label) in [
        (Kind::Direct, "direct → mock"),
        (
            Kind::Fresh,
            "**openclawd**: first failure (connection refused) → fallback",
        ),
        (
            Kind::Cooling,
            "**openclawd**: primary in cooldown → fallback",
        ),
    ] {
        let direct = k == Kind::Direct;
        t.row(vec![
            label.into(),
            opt_us(med(k, false)),
            opt_us(med(k, true)),
            if direct {
                "—".into()
            } else {
                opt_added(added(k, false))
            },
            if direct {
                "—".into()
            } else {
                opt_added(added(k, true))
            },
        ]);
    }
    sec.tables.push(t);
    figs.failover_added_p99_us = added(Kind::Fresh, true);
    sec
}

// ---- 5. memory ----------------------------------------------------------------------------------

pub struct Memory {
    pub idle: BTreeMap<&'static str, u64>,
    pub after: BTreeMap<&'static str, u64>,
    pub s2: BTreeMap<&'static str, u64>,
    pub s3: BTreeMap<&'static str, u64>,
}

pub fn s5_memory(m: &Memory, figs: &mut Figures, s3_top: usize) -> Section {
    let mut sec = Section {
        title: "5. Memory (RSS)".into(),
        text: format!(
            "`VmRSS` from `/proc/<pid>/status` (LiteLLM: its process tree). *Idle*: after start \
             and readiness, before any request. *Scenario 2* / *scenario 3*: the peak sampled \
             every 50 ms during those scenarios (scenario 3 includes {s3_top} concurrent \
             streams). *After*: 3 s after the last load."
        ),
        ..Default::default()
    };
    let mut t = Table::new(&[
        "process",
        "idle",
        "peak, scenario 2",
        "peak, scenario 3",
        "after",
    ]);
    for name in ["openclawd", "LiteLLM", "mock upstream"] {
        if !m.idle.contains_key(name) {
            continue;
        }
        t.row(vec![
            name.into(),
            mb(m.idle.get(name).copied()),
            mb(m.s2.get(name).copied()),
            mb(m.s3.get(name).copied()),
            mb(m.after.get(name).copied()),
        ]);
    }
    sec.tables.push(t);
    figs.idle_rss = m.idle.get("openclawd").copied();
    figs.rss_after = m.after.get("openclawd").copied();
    sec
}

/// Median and max over iterations, for scenario 6.
pub fn median_max(v: &[f64]) -> (Option<f64>, Option<f64>) {
    (median_f64(v), max_f64(v))
}

pub fn added_row(v: Option<f64>) -> String {
    v.map(added_us).unwrap_or("—".into())
}
