//! `openclawd bench`: the per-model speed test the seeds' §4 ("模型性能基准测试") left empty
//! (SPEC §7). Everything goes through the running daemon's gateway, so the figures are what
//! OpenClaw actually gets, routing and translation included.
//!
//! For each model: one non-streamed warm-up (its answer carries Ollama's native `load_duration`
//! in the gateway's `openclawd` extension field, see `gateway::measure::EXTENSION_KEY`), then N
//! streamed runs with `stream_options.include_usage`, timed by `gateway::measure::StreamMeter` —
//! the same code that feeds `/metrics`. Every request carries `x-openclawd-no-fallback: 1`, so a
//! failing model is reported instead of silently answered by another.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::status::{daemon_endpoint, fetch_status, runtime, Fetched, Paint, EXIT_NOT_RUNNING};
use super::GlobalArgs;
use crate::gateway::measure::{StreamMeter, TokenSource, EXTENSION_KEY};
use crate::gateway::status::{ModelEntry, StatusReport};

/// The fixed prompt: long enough an answer to measure decoding, the same for every model.
pub const DEFAULT_PROMPT: &str = "Explain in about 200 words how a hash map works, \
     including what happens on a collision.";
/// The warm-up only has to load the model.
const WARMUP_MAX_TOKENS: u32 = 16;
/// A cold load of a large model on a slow disk takes minutes; the gateway allows 300 s to the
/// first byte of a local Ollama, and the answer itself needs time too.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Models to test as given (refs, aliases or ids); empty = the whole catalogue.
    pub models: Vec<String>,
    pub runs: u32,
    pub prompt: String,
    pub max_tokens: u32,
    pub json: bool,
}

/// Median and range of one metric across the successful runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 0 {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// One timed, streamed run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub ok: bool,
    pub error: Option<String>,
    pub ttft_ms: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub total_ms: f64,
    pub completion_tokens: Option<u64>,
    pub token_source: Option<TokenSource>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// The ref that answered (or, when nothing did, the one asked for).
    pub model: String,
    /// As given with `--model`, or the catalogue ref.
    pub requested: String,
    /// At least one timed run succeeded.
    pub ok: bool,
    /// Not tested because discovery left it out of routing: the reason and the fix. A skipped
    /// model is neither a success nor a failure.
    pub skipped: Option<String>,
    /// Why the model failed, or, when only some runs failed, the last run's error.
    pub error: Option<String>,
    pub provider: Option<String>,
    pub context_window: Option<u64>,
    pub tools: Option<bool>,
    pub reasoning: Option<bool>,
    /// Ollama's native `load_duration` of the warm-up (near 0 when the model was loaded).
    pub load_ms: Option<f64>,
    /// The warm-up's whole round trip (non-streamed, `max_tokens` 16).
    pub warmup_ms: Option<f64>,
    /// The upstream's own timings of the warm-up (Ollama: `openclawd` extension field).
    pub warmup_native: Option<Value>,
    pub ttft_ms: Option<Spread>,
    pub tokens_per_second: Option<Spread>,
    pub total_ms: Option<Spread>,
    pub completion_tokens: Option<Spread>,
    /// Where the token counts behind `tokens_per_second` came from.
    pub token_source: Option<TokenSource>,
    pub runs_ok: u32,
    pub runs_failed: u32,
    pub runs: Vec<RunReport>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub gateway: String,
    pub prompt: String,
    pub runs: u32,
    pub max_tokens: u32,
    pub succeeded: usize,
    /// Tested and no run answered (skipped models are not failures).
    pub failed: usize,
    /// Not tested: not routable (see each row's `skipped`).
    pub skipped: usize,
    /// Sorted: fastest decode first, then failures, skipped models last.
    pub models: Vec<ModelReport>,
    pub fastest: Option<String>,
    pub fastest_with_tools: Option<String>,
    pub conclusion: String,
}

pub fn bench(global: &GlobalArgs, opts: BenchOptions) -> anyhow::Result<ExitCode> {
    let (base, token, _) = daemon_endpoint(global);
    let rt = runtime()?;
    let status = match rt.block_on(fetch_status(&base, token.as_deref())) {
        Fetched::Running(st) => st,
        Fetched::Unreadable(why) => anyhow::bail!("{why}"),
        Fetched::NotRunning => {
            if opts.json {
                println!(
                    "{}",
                    json!({"running": false, "address": base,
                       "error": "openclawd is not running"})
                );
            } else {
                eprintln!("openclawd is not running (nothing answered at {base}/status).");
                eprintln!("`openclawd bench` measures through the running gateway: start it with `openclawd run` (foreground) or install the service.");
            }
            return Ok(ExitCode::from(EXIT_NOT_RUNNING));
        }
    };
    let report = rt.block_on(run_bench(&base, token.as_deref(), &status, &opts))?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if report.succeeded > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What to test: `(requested, why it is skipped)`. Skipped models (discovered but not
/// routable, e.g. no tools capability) get a row saying so instead of a request.
fn targets(status: &StatusReport, opts: &BenchOptions) -> Vec<(String, Option<String>)> {
    let skipped = |name: &str| {
        status
            .skipped_models
            .iter()
            .find(|sk| {
                sk.model_ref == name
                    || sk
                        .model_ref
                        .split_once('/')
                        .is_some_and(|(_, id)| id == name)
            })
            .map(|sk| format!("{} (fix: {})", sk.reason, sk.fix))
    };
    if !opts.models.is_empty() {
        return opts
            .models
            .iter()
            .map(|m| {
                let why = lookup(status, m).is_none().then(|| skipped(m)).flatten();
                (m.clone(), why)
            })
            .collect();
    }
    status
        .models
        .iter()
        .map(|m| (m.model_ref.clone(), None))
        .chain(
            status
                .skipped_models
                .iter()
                .map(|sk| (sk.model_ref.clone(), skipped(&sk.model_ref))),
        )
        .collect()
}

/// The `/status` entry of a model: by ref, alias or bare id.
fn lookup<'a>(status: &'a StatusReport, name: &str) -> Option<&'a ModelEntry> {
    status
        .model(name)
        .or_else(|| {
            status
                .routing
                .aliases
                .get(name)
                .and_then(|r| status.model(r))
        })
        .or_else(|| {
            let mut ids = status.models.iter().filter(|m| m.id == name);
            match (ids.next(), ids.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
}

async fn run_bench(
    base: &str,
    token: Option<&str>,
    status: &StatusReport,
    opts: &BenchOptions,
) -> anyhow::Result<BenchReport> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(3))
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let gw = Gateway {
        client,
        url: format!("{base}/v1/chat/completions"),
        token: token.map(str::to_owned),
    };
    let targets = targets(status, opts);
    let to_run = targets.iter().filter(|(_, e)| e.is_none()).count() as u64;
    let bar = progress_bar(opts.json, to_run * (1 + u64::from(opts.runs)));

    let mut reports = Vec::new();
    for (requested, skip) in targets {
        let mut row = ModelReport {
            model: requested.clone(),
            requested: requested.clone(),
            ok: false,
            skipped: None,
            error: None,
            provider: None,
            context_window: None,
            tools: None,
            reasoning: None,
            load_ms: None,
            warmup_ms: None,
            warmup_native: None,
            ttft_ms: None,
            tokens_per_second: None,
            total_ms: None,
            completion_tokens: None,
            token_source: None,
            runs_ok: 0,
            runs_failed: 0,
            runs: Vec::new(),
        };
        if let Some(why) = skip {
            row.skipped = Some(why);
            describe(&mut row, status);
            reports.push(row);
            continue;
        }

        bar.set_message(format!("{requested}: warm-up (loads the model)"));
        let warm = gw.warm_up(&requested, &opts.prompt).await;
        bar.inc(1);
        match warm {
            Err(why) => {
                row.error = Some(why);
                bar.inc(u64::from(opts.runs));
            }
            Ok(w) => {
                if let Some(answered_by) = w.answered_by {
                    row.model = answered_by;
                }
                row.warmup_ms = Some(ms(w.elapsed));
                row.load_ms = w
                    .native
                    .as_ref()
                    .and_then(|n| n.get("load_duration_ms"))
                    .and_then(Value::as_f64);
                row.warmup_native = w.native;
                for i in 1..=opts.runs {
                    bar.set_message(format!("{requested}: run {i}/{}", opts.runs));
                    let run = gw
                        .timed_run(&requested, &opts.prompt, opts.max_tokens)
                        .await;
                    bar.inc(1);
                    row.runs.push(run);
                }
                summarize(&mut row);
            }
        }
        describe(&mut row, status);
        reports.push(row);
    }
    bar.finish_and_clear();
    Ok(conclude(base, opts, reports))
}

fn progress_bar(json: bool, steps: u64) -> ProgressBar {
    // The bar goes to stderr, but only when a person watches stdout: never in scripts.
    if json || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {elapsed:>4} {bar:20} {pos}/{len} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Context window, tools, reasoning and provider from `/status`.
fn describe(row: &mut ModelReport, status: &StatusReport) {
    let entry = lookup(status, &row.model).or_else(|| lookup(status, &row.requested));
    let Some(m) = entry else {
        return;
    };
    row.model = m.model_ref.clone();
    row.provider = Some(m.provider.clone());
    row.context_window = m.context_window;
    row.tools = m.tools;
    row.reasoning = Some(m.reasoning);
}

fn summarize(row: &mut ModelReport) {
    let good: Vec<&RunReport> = row.runs.iter().filter(|r| r.ok).collect();
    row.runs_ok = good.len() as u32;
    row.runs_failed = (row.runs.len() - good.len()) as u32;
    row.ok = !good.is_empty();
    row.error = row.runs.iter().rev().find_map(|r| r.error.clone());
    let spread = |f: &dyn Fn(&RunReport) -> Option<f64>| {
        Spread::of(&good.iter().filter_map(|r| f(r)).collect::<Vec<f64>>())
    };
    row.ttft_ms = spread(&|r| r.ttft_ms);
    row.tokens_per_second = spread(&|r| r.tokens_per_second);
    row.total_ms = spread(&|r| Some(r.total_ms));
    row.completion_tokens = spread(&|r| r.completion_tokens.map(|n| n as f64));
    row.token_source = good.iter().find_map(|r| r.token_source);
}

fn conclude(base: &str, opts: &BenchOptions, mut models: Vec<ModelReport>) -> BenchReport {
    let speed = |m: &ModelReport| m.tokens_per_second.map(|s| s.median);
    // Successful rows by decode speed (unmeasurable speed after them), then failures in order,
    // then the skipped models.
    let rank = |m: &ModelReport| match (m.ok, m.skipped.is_some()) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 2,
    };
    models.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| match (a.ok && b.ok, speed(a), speed(b)) {
                (false, _, _) => std::cmp::Ordering::Equal,
                (true, Some(x), Some(y)) => y.total_cmp(&x),
                (true, Some(_), None) => std::cmp::Ordering::Less,
                (true, None, Some(_)) => std::cmp::Ordering::Greater,
                (true, None, None) => std::cmp::Ordering::Equal,
            })
    });
    let succeeded = models.iter().filter(|m| m.ok).count();
    let skipped = models.iter().filter(|m| m.skipped.is_some()).count();
    let fastest = models.iter().find(|m| m.ok && speed(m).is_some());
    let fastest_tools = models
        .iter()
        .find(|m| m.ok && speed(m).is_some() && m.tools == Some(true));
    let summary = |m: &ModelReport| {
        let mut s = format!("{} at {:.1} tok/s", m.model, speed(m).unwrap_or_default());
        if let Some(t) = m.ttft_ms {
            s.push_str(&format!(", first token in {}", human_ms(t.median)));
        }
        s.push_str(&format!(
            " (median of {} run{})",
            m.runs_ok,
            if m.runs_ok == 1 { "" } else { "s" }
        ));
        s
    };
    let conclusion = match (fastest_tools, fastest) {
        (Some(t), Some(f)) if t.model == f.model => {
            format!("Fastest model with tools: {}.", summary(t))
        }
        (Some(t), Some(f)) => format!(
            "Fastest model with tools: {}; {} is faster but has no tools (OpenClaw's agents need them).",
            summary(t),
            f.model
        ),
        (None, Some(f)) => format!(
            "No model with tools answered; the fastest model was {}.",
            summary(f)
        ),
        _ if succeeded > 0 => {
            "Models answered, but too briefly to measure a decode speed: raise --max-tokens."
                .to_string()
        }
        _ if models.is_empty() => {
            "No models to test: the gateway's catalogue is empty (see `openclawd models`)."
                .to_string()
        }
        _ if skipped == models.len() => {
            "No routable model to test: every one is skipped (see the reasons above).".to_string()
        }
        _ => "No model answered: see the reasons above.".to_string(),
    };
    BenchReport {
        gateway: base.to_string(),
        prompt: opts.prompt.clone(),
        runs: opts.runs,
        max_tokens: opts.max_tokens,
        succeeded,
        failed: models.len() - succeeded - skipped,
        skipped,
        fastest: fastest.map(|m| m.model.clone()),
        fastest_with_tools: fastest_tools.map(|m| m.model.clone()),
        models,
        conclusion,
    }
}

struct Gateway {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

struct WarmUp {
    elapsed: Duration,
    answered_by: Option<String>,
    native: Option<Value>,
}

impl Gateway {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .post(&self.url)
            .header("x-openclawd-no-fallback", "1")
            .json(body);
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    async fn warm_up(&self, model: &str, prompt: &str) -> Result<WarmUp, String> {
        let body = json!({
            "model": model, "stream": false, "max_tokens": WARMUP_MAX_TOKENS,
            "messages": [{"role": "user", "content": prompt}],
        });
        let started = Instant::now();
        let resp = self
            .post(&body)
            .send()
            .await
            .map_err(|e| request_failed(&e))?;
        let answered_by = answered_by(&resp);
        if !resp.status().is_success() {
            return Err(gateway_error(resp).await);
        }
        let value: Value = resp
            .json()
            .await
            .map_err(|e| format!("the gateway's answer was not JSON: {e}"))?;
        Ok(WarmUp {
            elapsed: started.elapsed(),
            answered_by,
            native: value.get(EXTENSION_KEY).cloned(),
        })
    }

    async fn timed_run(&self, model: &str, prompt: &str, max_tokens: u32) -> RunReport {
        let body = json!({
            "model": model, "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        });
        let started = Instant::now();
        let failed = |error: String| RunReport {
            ok: false,
            error: Some(error),
            ttft_ms: None,
            tokens_per_second: None,
            total_ms: ms(started.elapsed()),
            completion_tokens: None,
            token_source: None,
        };
        let resp = match self.post(&body).send().await {
            Ok(r) => r,
            Err(e) => return failed(request_failed(&e)),
        };
        if !resp.status().is_success() {
            return failed(gateway_error(resp).await);
        }
        let mut meter = StreamMeter::new(started);
        let mut stream = resp.bytes_stream();
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    meter.observe(&bytes, Instant::now());
                }
                Err(e) => {
                    broken = Some(format!("the stream broke: {}", describe_reqwest(&e)));
                    break;
                }
            }
        }
        let t = meter.finish(Instant::now());
        let error = t.error.clone().or(broken).or_else(|| {
            (!t.done).then(|| "the stream ended without [DONE] (incomplete answer)".to_string())
        });
        RunReport {
            ok: error.is_none(),
            error,
            ttft_ms: t.ttft.map(ms),
            tokens_per_second: t.tokens_per_second.map(|r| round_to(r, 3)),
            total_ms: ms(t.total),
            completion_tokens: Some(t.completion_tokens),
            token_source: Some(t.token_source),
        }
    }
}

fn answered_by(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-openclawd-model")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn request_failed(e: &reqwest::Error) -> String {
    format!("the request to the gateway failed: {}", describe_reqwest(e))
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    crate::discovery::describe_reqwest(e)
}

/// The gateway's OpenAI-shaped error answer (`{"error": {"message": ...}}`).
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    message: String,
}

/// The reason in a gateway error answer, without the chain's framing (there is one model).
async fn gateway_error(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
    // The gateway's chain framing, `All models failed (1): <ref>: <reason>`: the reason alone
    // (it carries the upstream's own status).
    match message.strip_prefix("All models failed (1): ") {
        Some(m) => m
            .split_once(": ")
            .map_or(m, |(_, reason)| reason)
            .to_string(),
        None => format!("HTTP {}: {message}", status.as_u16()),
    }
}

/// Milliseconds, to the microsecond (more digits would be noise in the JSON).
fn ms(d: Duration) -> f64 {
    round_to(d.as_secs_f64() * 1000.0, 3)
}

fn round_to(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// `840 ms`, `2.31 s`.
fn human_ms(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

/// `840 ms (790–910)`, `2.31 s (2.20–2.45)`; the median alone when the runs agree.
fn human_ms_spread(s: &Spread) -> String {
    let (scale, unit, digits) = if s.median < 1000.0 {
        (1.0, "ms", 0)
    } else {
        (1000.0, "s", 2)
    };
    let f = |v: f64| format!("{:.*}", digits, v / scale);
    if f(s.min) == f(s.max) {
        format!("{} {unit}", f(s.median))
    } else {
        format!("{} {unit} ({}–{})", f(s.median), f(s.min), f(s.max))
    }
}

fn rate_spread(s: &Spread) -> String {
    let f = |v: f64| format!("{v:.1}");
    if f(s.min) == f(s.max) {
        f(s.median)
    } else {
        format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
    }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

/// The table a person compares at a glance, then the conclusion.
pub fn render_table(report: &BenchReport, paint: &dyn Fn(Cell, &str) -> String) -> String {
    let header = [
        "MODEL",
        "CONTEXT",
        "TOOLS",
        "REASONING",
        "LOAD",
        "TTFT",
        "TOK/S",
        "TOTAL",
    ];
    let mut rows: Vec<(bool, Vec<String>)> = Vec::new();
    let mut counted = false;
    for m in &report.models {
        let mut cells = vec![
            m.model.clone(),
            m.context_window
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            yes_no(m.tools).to_string(),
            yes_no(m.reasoning).to_string(),
        ];
        if m.ok {
            let mut rate = m
                .tokens_per_second
                .as_ref()
                .map_or_else(|| "-".to_string(), rate_spread);
            if m.token_source == Some(TokenSource::CountedChunks) && m.tokens_per_second.is_some() {
                rate.push('*');
                counted = true;
            }
            cells.extend([
                m.load_ms.map_or_else(|| "-".to_string(), human_ms),
                m.ttft_ms
                    .as_ref()
                    .map_or_else(|| "-".to_string(), human_ms_spread),
                rate,
                m.total_ms
                    .as_ref()
                    .map_or_else(|| "-".to_string(), human_ms_spread),
            ]);
        }
        rows.push((m.ok, cells));
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for (_, cells) in &rows {
        for (i, c) in cells.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let pad = |i: usize, s: &str| {
        let n = widths[i].saturating_sub(s.chars().count());
        // Numbers right-aligned, words left-aligned.
        if (4..8).contains(&i) || i == 1 {
            format!("{}{s}", " ".repeat(n))
        } else {
            format!("{s}{}", " ".repeat(n))
        }
    };
    let mut out = String::new();
    let head: Vec<String> = header.iter().enumerate().map(|(i, h)| pad(i, h)).collect();
    out.push_str(&paint(Cell::Header, head.join("  ").trim_end()));
    out.push('\n');
    for (m, (ok, cells)) in report.models.iter().zip(&rows) {
        let mut line: Vec<String> = cells.iter().enumerate().map(|(i, c)| pad(i, c)).collect();
        if *ok {
            if let (Some(e), true) = (&m.error, m.runs_failed > 0) {
                line.push(paint(
                    Cell::Warn,
                    &format!("{}/{} runs failed: {e}", m.runs_failed, m.runs.len()),
                ));
            }
        } else if let Some(why) = &m.skipped {
            line.push(paint(Cell::Warn, &format!("skipped: {why}")));
        } else {
            line.push(paint(
                Cell::Failed,
                &format!("FAILED: {}", m.error.as_deref().unwrap_or("no answer")),
            ));
        }
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&format!(
        "{} of {} models answered{}; per model one warm-up, then {} streamed run{} of at most {} \
         tokens: median (min–max).\n",
        report.succeeded,
        report.models.len() - report.skipped,
        match report.skipped {
            0 => String::new(),
            n => format!(" ({n} skipped, not routable)"),
        },
        report.runs,
        if report.runs == 1 { "" } else { "s" },
        report.max_tokens,
    ));
    out.push_str(
        "LOAD: Ollama's model load time during the warm-up (near 0 when it was loaded already). \
         TTFT: time to first token. TOK/S: decode speed after the first token.\n",
    );
    if counted {
        out.push_str("* counted stream chunks: the upstream reported no token usage.\n");
    }
    out.push_str(&paint(Cell::Conclusion, &report.conclusion));
    out.push('\n');
    out
}

/// What a piece of the table is, for colour.
#[derive(Debug, Clone, Copy)]
pub enum Cell {
    Header,
    Failed,
    Warn,
    Conclusion,
}

fn print_table(report: &BenchReport) {
    let p = Paint::new();
    let paint = |cell: Cell, s: &str| match cell {
        Cell::Header | Cell::Conclusion => p.bold(s),
        Cell::Failed => p.red(s),
        Cell::Warn => p.yellow(s),
    };
    print!("{}", render_table(report, &paint));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, tps: Option<f64>, tools: bool, ok: bool) -> ModelReport {
        let s = |v: f64| Spread {
            median: v,
            min: v * 0.9,
            max: v * 1.1,
        };
        ModelReport {
            model: model.into(),
            requested: model.into(),
            ok,
            skipped: None,
            error: (!ok).then(|| "HTTP 502: in cooldown".to_string()),
            provider: Some("ollama".into()),
            context_window: Some(32768),
            tools: Some(tools),
            reasoning: Some(false),
            load_ms: ok.then_some(2310.0),
            warmup_ms: None,
            warmup_native: None,
            ttft_ms: ok.then(|| s(120.0)),
            tokens_per_second: tps.map(s),
            total_ms: ok.then(|| s(3200.0)),
            completion_tokens: None,
            token_source: ok.then_some(TokenSource::Usage),
            runs_ok: if ok { 3 } else { 0 },
            runs_failed: 0,
            runs: Vec::new(),
        }
    }

    fn opts() -> BenchOptions {
        BenchOptions {
            models: Vec::new(),
            runs: 3,
            prompt: DEFAULT_PROMPT.into(),
            max_tokens: 256,
            json: false,
        }
    }

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn rows_sort_by_speed_and_the_conclusion_names_the_fastest_with_tools() {
        let report = conclude(
            "http://127.0.0.1:1",
            &opts(),
            vec![
                row("ollama/slow", Some(10.0), true, true),
                row("ollama/broken", None, true, false),
                row("ollama/fast-no-tools", Some(90.0), false, true),
                row("ollama/mid", Some(40.0), true, true),
            ],
        );
        let order: Vec<&str> = report.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(
            order,
            [
                "ollama/fast-no-tools",
                "ollama/mid",
                "ollama/slow",
                "ollama/broken"
            ]
        );
        assert_eq!(report.fastest_with_tools.as_deref(), Some("ollama/mid"));
        assert_eq!(report.fastest.as_deref(), Some("ollama/fast-no-tools"));
        assert_eq!((report.succeeded, report.failed), (3, 1));
        assert!(report.conclusion.starts_with(
            "Fastest model with tools: ollama/mid at 40.0 tok/s, first token in 120 ms"
        ));

        let text = render_table(&report, &|_, s| s.to_string());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("MODEL"));
        assert!(lines[2].contains("ollama/mid") && lines[2].contains("40.0 (36.0–44.0)"));
        assert!(lines[2].contains("2.31 s") && lines[2].contains("120 ms (108–132)"));
        assert!(lines[4].contains("FAILED: HTTP 502: in cooldown"));
        assert!(text.contains(&report.conclusion));
    }

    #[test]
    fn a_skipped_model_is_a_row_saying_why_and_not_a_failure() {
        let mut gemma = row("ollama/gemma:2b", None, false, false);
        gemma.error = None;
        gemma.skipped = Some("no tools capability (fix: set requireTools: false)".into());
        let report = conclude(
            "http://127.0.0.1:1",
            &opts(),
            vec![
                gemma,
                row("ollama/broken", None, true, false),
                row("ollama/mid", Some(40.0), true, true),
            ],
        );
        assert_eq!((report.succeeded, report.failed, report.skipped), (1, 1, 1));
        let text = render_table(&report, &|_, s| s.to_string());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("ollama/mid"), "{text}");
        assert!(lines[2].contains("FAILED: HTTP 502"), "{text}");
        assert!(
            lines[3].starts_with("ollama/gemma:2b")
                && lines[3]
                    .ends_with("skipped: no tools capability (fix: set requireTools: false)"),
            "{text}"
        );
        assert!(!lines[3].contains("FAILED"), "{text}");
        assert!(
            text.contains("1 of 2 models answered (1 skipped, not routable)"),
            "{text}"
        );
    }

    #[test]
    fn nothing_answered_says_so() {
        let report = conclude(
            "http://127.0.0.1:1",
            &opts(),
            vec![row("ollama/a", None, true, false)],
        );
        assert_eq!(report.succeeded, 0);
        assert_eq!(
            report.conclusion,
            "No model answered: see the reasons above."
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ms(840.4), "840 ms");
        assert_eq!(human_ms(2310.0), "2.31 s");
        let one = Spread {
            median: 50.0,
            min: 50.2,
            max: 49.8,
        };
        assert_eq!(human_ms_spread(&one), "50 ms");
    }
}
