//! The fake model: what gets generated, how long it takes, and the metrics it reports.
//!
//! Timing follows the real server: loading (`load_duration_ms`, only when the model is not
//! loaded) and prompt evaluation (`first_token_delay_ms`) happen before the response headers;
//! `token_delay_ms` separates streamed chunks. Every reported duration is measured, so
//! `total_duration >= load_duration + prompt_eval_duration + eval_duration` always holds.

use crate::control::{Control, Model};
use crate::fixtures;
use crate::server::{KeepAlive, State};
use crate::timefmt;
use bytes::Bytes;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

/// One unit of output.
#[derive(Debug, Clone)]
pub enum Piece {
    Thinking(String),
    Content(String),
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
}

/// What a request will produce.
pub struct Plan {
    pub pieces: Vec<Piece>,
    pub done_reason: &'static str,
    pub prompt_tokens: u64,
    pub eval_count: u64,
}

/// Durations spent before the first chunk.
pub struct Timing {
    pub started: Instant,
    pub load: Duration,
    pub prompt_eval: Duration,
}

/// Go's `api.Metrics` (all omitempty).
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    #[serde(skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_duration: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a streaming encoder is asked to write.
pub enum StreamEvent<'a> {
    Piece {
        piece: &'a Piece,
        index: usize,
    },
    Done {
        metrics: &'a Metrics,
        reason: &'a str,
    },
    Error(&'a str),
}

pub fn now_rfc3339() -> String {
    timefmt::utc(SystemTime::now()).rfc3339_nano()
}

/// `call_` + 8 random `[a-z0-9]`, like routes.go `toolCallId`.
pub fn tool_call_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("call_{suffix}")
}

/// Rough token count of some prompt text (4 bytes per token).
pub fn tokens_of(text_len: usize) -> u64 {
    (text_len as u64).div_ceil(4)
}

/// Builds the output for one request.
pub fn plan(
    control: &Control,
    model: &Model,
    thinking: bool,
    tools_requested: bool,
    prompt_tokens: u64,
    num_predict: Option<i64>,
) -> Plan {
    let mut pieces = Vec::new();
    if thinking {
        let tokens = control
            .thinking_tokens
            .clone()
            .unwrap_or_else(fixtures::default_thinking_tokens);
        pieces.extend(tokens.into_iter().map(Piece::Thinking));
    }
    let tool_call = if tools_requested && model.has("tools") {
        control.tool_call.call()
    } else {
        None
    };
    match tool_call {
        Some((name, arguments)) => pieces.push(Piece::ToolCall {
            id: tool_call_id(),
            name,
            arguments,
        }),
        None => {
            let tokens = control
                .reply_tokens
                .clone()
                .unwrap_or_else(fixtures::default_reply_tokens);
            pieces.extend(tokens.into_iter().map(Piece::Content));
        }
    }
    let mut eval_count: u64 = pieces
        .iter()
        .map(|p| match p {
            Piece::ToolCall {
                name, arguments, ..
            } => 10 + tokens_of(name.len() + arguments.to_string().len()),
            _ => 1,
        })
        .sum();
    let mut done_reason = "stop";
    if let Some(limit) = num_predict.filter(|n| *n >= 0).map(|n| n as u64) {
        if (limit as usize) < pieces.len() {
            pieces.truncate(limit as usize);
            eval_count = limit;
            done_reason = "length";
        }
    }
    Plan {
        pieces,
        done_reason,
        prompt_tokens: prompt_tokens.max(1),
        eval_count,
    }
}

/// The context a loaded model gets: request `num_ctx`, else the Modelfile's, else
/// `OLLAMA_CONTEXT_LENGTH`, else 4096 (the VRAM-based default on a small machine); never more
/// than the model was trained for.
pub fn effective_context(state: &State, model: &Model, requested: Option<u64>) -> u64 {
    let wanted = requested
        .or(model.num_ctx_param)
        .or((state.context_length_env > 0).then_some(state.context_length_env))
        .unwrap_or(4096);
    match model.context_length {
        Some(max) if max > 0 => wanted.min(max),
        _ => wanted,
    }
}

/// Loads the model if needed and waits out prompt evaluation (before any response byte).
pub async fn prepare(
    state: &State,
    control: &Control,
    model: &Model,
    context_length: u64,
    keep_alive: KeepAlive,
    started: Instant,
) -> Timing {
    let load_started = Instant::now();
    if !state.is_loaded(&model.name) && control.load_duration_ms > 0 {
        sleep(Duration::from_millis(control.load_duration_ms)).await;
    }
    // keep_alive 0 still loads for this request; the model goes away when it is answered.
    let hold = match keep_alive {
        KeepAlive::For(d) if d.is_zero() => KeepAlive::For(Duration::from_secs(60)),
        other => other,
    };
    state.set_loaded(model, context_length, hold);
    let load = load_started.elapsed();
    let eval_started = Instant::now();
    if control.first_token_delay_ms > 0 {
        sleep(Duration::from_millis(control.first_token_delay_ms)).await;
    }
    Timing {
        started,
        load,
        prompt_eval: eval_started.elapsed(),
    }
}

fn nanos(d: Duration) -> u64 {
    (d.as_nanos().min(u128::from(u64::MAX)) as u64).max(1)
}

fn metrics(plan: &Plan, timing: &Timing, eval: Duration) -> Metrics {
    Metrics {
        total_duration: nanos(timing.started.elapsed()),
        load_duration: nanos(timing.load),
        prompt_eval_count: plan.prompt_tokens,
        prompt_eval_duration: nanos(timing.prompt_eval),
        eval_count: plan.eval_count,
        eval_duration: nanos(eval),
    }
}

/// Everything a generation needs after `prepare`.
pub struct Run {
    pub state: Arc<State>,
    pub model: Model,
    pub context_length: u64,
    pub keep_alive: KeepAlive,
    pub plan: Plan,
    pub timing: Timing,
    pub token_delay: Duration,
    pub midstream_error_after: Option<u64>,
}

impl Run {
    pub fn new(
        state: Arc<State>,
        control: &Control,
        model: Model,
        context_length: u64,
        keep_alive: KeepAlive,
        plan: Plan,
        timing: Timing,
    ) -> Self {
        Self {
            state,
            model,
            context_length,
            keep_alive,
            plan,
            timing,
            token_delay: Duration::from_millis(control.token_delay_ms),
            midstream_error_after: control.midstream_error_after,
        }
    }

    /// The model stays loaded for keep_alive from now (or unloads for 0).
    fn finish(&self) {
        self.state
            .set_loaded(&self.model, self.context_length, self.keep_alive);
    }

    /// The runner "crashed": the model is gone.
    fn crash(&self) {
        self.state.unload(&self.model.name);
    }

    /// Generates without streaming; `Err` is the runner's error text.
    pub async fn until_done(self) -> Result<(Plan, Metrics), String> {
        let eval_started = Instant::now();
        let produced = match self.midstream_error_after {
            Some(n) => (n as usize).min(self.plan.pieces.len()),
            None => self.plan.pieces.len(),
        };
        for _ in 0..produced {
            sleep(self.token_delay).await;
        }
        if self.midstream_error_after.is_some() {
            self.crash();
            return Err(fixtures::midstream_error_text());
        }
        self.finish();
        let m = metrics(&self.plan, &self.timing, eval_started.elapsed());
        Ok((self.plan, m))
    }

    /// Streams the plan through `encode`, one chunk per piece, then the done (or error) chunk.
    pub fn stream<F>(self, mut encode: F) -> mpsc::Receiver<Bytes>
    where
        F: FnMut(StreamEvent<'_>) -> Vec<u8> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let eval_started = Instant::now();
            let error_text = fixtures::midstream_error_text();
            for (index, piece) in self.plan.pieces.iter().enumerate() {
                if index > 0 {
                    sleep(self.token_delay).await;
                }
                if self.midstream_error_after == Some(index as u64) {
                    self.crash();
                    send(&tx, encode(StreamEvent::Error(&error_text))).await;
                    return;
                }
                let chunk = encode(StreamEvent::Piece { piece, index });
                if !send(&tx, chunk).await {
                    // The client went away; Go notices on the next write and stops too.
                    self.finish();
                    return;
                }
            }
            if !self.plan.pieces.is_empty() {
                sleep(self.token_delay).await;
            }
            if self.midstream_error_after.is_some() {
                self.crash();
                send(&tx, encode(StreamEvent::Error(&error_text))).await;
                return;
            }
            self.finish();
            let m = metrics(&self.plan, &self.timing, eval_started.elapsed());
            let chunk = encode(StreamEvent::Done {
                metrics: &m,
                reason: self.plan.done_reason,
            });
            send(&tx, chunk).await;
        });
        rx
    }
}

/// Sends a non-empty chunk; false once the client has gone away.
async fn send(tx: &mpsc::Sender<Bytes>, chunk: Vec<u8>) -> bool {
    if chunk.is_empty() {
        return true;
    }
    tx.send(chunk.into()).await.is_ok()
}

/// Go's `time.ParseDuration`, in nanoseconds, with Go's error texts.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", crate::gojson::go_quote(orig));
    let mut s = orig;
    let mut negative = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            negative = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|b| !(*b == b'.' || b.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                crate::gojson::go_quote(orig)
            ));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::gojson::go_quote(unit),
                    crate::gojson::go_quote(orig)
                ))
            }
        };
        let number: f64 = format!(
            "{}.{}",
            if int_part.is_empty() { "0" } else { int_part },
            if frac_part.is_empty() { "0" } else { frac_part }
        )
        .parse()
        .map_err(|_| invalid())?;
        total += number * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let ns = total as i64;
    Ok(if negative { -ns } else { ns })
}

/// `keep_alive` as `api.Duration.UnmarshalJSON` reads it.
pub fn keep_alive_from(value: Option<&Value>, default: KeepAlive) -> Result<KeepAlive, String> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(0.0);
            if secs < 0.0 {
                Ok(KeepAlive::Forever)
            } else {
                Ok(KeepAlive::For(Duration::from_secs_f64(secs.min(9.2e9))))
            }
        }
        Some(Value::String(s)) => {
            let ns = parse_go_duration(s)?;
            if ns < 0 {
                Ok(KeepAlive::Forever)
            } else {
                Ok(KeepAlive::For(Duration::from_nanos(ns as u64)))
            }
        }
        Some(Value::Bool(_)) => Err("Unsupported type: 'bool'".to_string()),
        Some(Value::Array(_)) => Err("Unsupported type: 'slice'".to_string()),
        Some(Value::Object(_)) => Err("Unsupported type: 'map'".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(
            parse_go_duration("-1"),
            Err("time: missing unit in duration \"-1\"".to_string())
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".to_string())
        );
    }
}
