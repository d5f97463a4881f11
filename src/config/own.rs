//! openclawd's own settings, `<state>/openclawd/openclawd.json` (SPEC §9): JSON5, optional,
//! every field defaulted, checked strictly (an unknown key is an error naming it and its line).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::include::Locator;
use super::parse::{parse_document, Seg};
use super::read::{child, Reader};
use super::types::{OwnSettings, ReclaimPolicy, SessionsAction};

const TOP: &[&str] = &["ollama", "discovery", "gateway", "sessions"];
const OLLAMA: &[&str] = &["manage", "bin", "preload", "keepAlive", "startTimeout"];
const DISCOVERY: &[&str] = &["requireTools", "interval", "defaultContextWindow"];
const GATEWAY: &[&str] = &["reclaim", "maxBodyBytes", "holdForOllama"];
const SESSIONS: &[&str] = &["maxBytes", "action", "interval"];

/// Reads the own settings file; a missing (or blank) file gives the defaults.
pub(crate) fn load_own(file: &Path, home: Option<&Path>) -> Result<OwnSettings, ConfigError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OwnSettings::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: file.to_path_buf(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(OwnSettings::default());
    }
    let mut doc = parse_document(file, text)?;
    let value = std::mem::take(&mut doc.value);
    let locator = Locator::single(doc);
    parse_own(&value, &Reader { locator: &locator }, home)
}

fn parse_own(
    value: &Value,
    r: &Reader<'_>,
    home: Option<&Path>,
) -> Result<OwnSettings, ConfigError> {
    let mut own = OwnSettings::default();
    let root = r.object(value, &[])?;
    check_keys(r, root, &[], TOP)?;

    if let Some(v) = root.get("ollama") {
        let path = child(&[], "ollama");
        let section = r.object(v, &path)?;
        check_keys(r, section, &path, OLLAMA)?;
        for (k, v) in section {
            let p = child(&path, k);
            match k.as_str() {
                "manage" => own.ollama.manage = r.bool(v, &p)?,
                "bin" => {
                    let s = r.string(v, &p)?;
                    if s.trim().is_empty() {
                        return Err(r.invalid(&p, "expected a path or a command name, got \"\""));
                    }
                    own.ollama.bin = Some(if s.contains('/') {
                        super::paths::user_path(s.trim(), home)
                    } else {
                        PathBuf::from(s.trim())
                    });
                }
                "preload" => own.ollama.preload = r.bool(v, &p)?,
                "keepAlive" => own.ollama.keep_alive = keep_alive(r, v, &p)?,
                "startTimeout" => own.ollama.start_timeout = r.duration(v, &p)?,
                _ => {}
            }
        }
    }
    if let Some(v) = root.get("discovery") {
        let path = child(&[], "discovery");
        let section = r.object(v, &path)?;
        check_keys(r, section, &path, DISCOVERY)?;
        for (k, v) in section {
            let p = child(&path, k);
            match k.as_str() {
                "requireTools" => own.discovery.require_tools = r.bool(v, &p)?,
                "interval" => own.discovery.interval = r.duration(v, &p)?,
                "defaultContextWindow" => {
                    own.discovery.default_context_window =
                        r.integer(v, &p, 1, u64::MAX, "a positive integer (tokens)")?
                }
                _ => {}
            }
        }
    }
    if let Some(v) = root.get("gateway") {
        let path = child(&[], "gateway");
        let section = r.object(v, &path)?;
        check_keys(r, section, &path, GATEWAY)?;
        for (k, v) in section {
            let p = child(&path, k);
            match k.as_str() {
                "reclaim" => {
                    own.gateway.reclaim = match v.as_str() {
                        Some("stale") => ReclaimPolicy::Stale,
                        Some("force") => ReclaimPolicy::Force,
                        Some("never") => ReclaimPolicy::Never,
                        _ => return Err(r.expected(&p, "\"stale\", \"force\" or \"never\"", v)),
                    }
                }
                "maxBodyBytes" => {
                    let max = usize::MAX as u64;
                    own.gateway.max_body_bytes =
                        r.integer(v, &p, 1, max, "a positive integer (bytes)")? as usize
                }
                "holdForOllama" => own.gateway.hold_for_ollama = hold_budget(r, v, &p)?,
                _ => {}
            }
        }
    }
    if let Some(v) = root.get("sessions") {
        let path = child(&[], "sessions");
        let section = r.object(v, &path)?;
        check_keys(r, section, &path, SESSIONS)?;
        for (k, v) in section {
            let p = child(&path, k);
            match k.as_str() {
                "maxBytes" => {
                    own.sessions.max_bytes =
                        r.integer(v, &p, 1, u64::MAX, "a positive integer (bytes)")?
                }
                "action" => {
                    own.sessions.action = match v.as_str() {
                        Some("clear") => SessionsAction::Clear,
                        Some("prune") => SessionsAction::Prune,
                        _ => return Err(r.expected(&p, "\"clear\" or \"prune\"", v)),
                    }
                }
                "interval" => own.sessions.interval = r.duration(v, &p)?,
                _ => {}
            }
        }
    }
    Ok(own)
}

fn check_keys(
    r: &Reader<'_>,
    section: &serde_json::Map<String, Value>,
    path: &[Seg],
    known: &[&'static str],
) -> Result<(), ConfigError> {
    // Report the first unknown key in file order, which is what a reader scans.
    let mut unknown: Vec<(Option<usize>, Vec<Seg>)> = section
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            let p = child(path, k);
            let offset = r.locator.find(&p).and_then(|(_, s)| s.key);
            (offset, p)
        })
        .collect();
    unknown.sort_by_key(|(offset, _)| *offset);
    match unknown.into_iter().next() {
        Some((_, p)) => Err(ConfigError::UnknownKey {
            at: r.locator.key_pos(&p),
            config_path: super::parse::path_string(&p),
            known: known.to_vec(),
        }),
        None => Ok(()),
    }
}

/// The longest `gateway.holdForOllama` accepted: a request held longer than this has been
/// abandoned by any client, and a bounded value keeps `Instant + budget` from overflowing.
pub(crate) const MAX_HOLD_FOR_OLLAMA: Duration = Duration::from_secs(3600);

/// `gateway.holdForOllama`: a duration (`"30s"`, `"2m"`) or a number of seconds; `0` (or `"0"`)
/// means never hold.
fn hold_budget(r: &Reader<'_>, v: &Value, path: &[Seg]) -> Result<Duration, ConfigError> {
    let expected = "a duration such as \"30s\" or \"2m\" (at most 1h; 0 = never hold)";
    let budget = match v {
        Value::String(s) if s.trim() == "0" => Some(Duration::ZERO),
        Value::String(s) => humantime::parse_duration(s.trim()).ok(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f <= MAX_HOLD_FOR_OLLAMA.as_secs_f64())
            .map(Duration::from_secs_f64),
        _ => None,
    };
    budget
        .filter(|d| *d <= MAX_HOLD_FOR_OLLAMA)
        .ok_or_else(|| r.expected(path, expected, v))
}

/// Ollama's `keep_alive`: a Go duration string (`"30m"`, `"0"`, `"-1m"` = forever) or a number
/// of seconds (kept as a Go duration string, since the string `"-1"` is rejected by Ollama).
fn keep_alive(r: &Reader<'_>, v: &Value, path: &[Seg]) -> Result<String, ConfigError> {
    let expected = "a duration such as \"30m\" or \"-1m\" (forever), or a number of seconds";
    match v {
        Value::String(s) if is_go_duration(s.trim()) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(format!("{n}s")),
        other => Err(r.expected(path, expected, other)),
    }
}

/// Go's `time.ParseDuration` grammar: `[-+]?` then one or more `<number><unit>`, or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !matches!(
            &rest[..unit_end],
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"
        ) {
            return false;
        }
        rest = &rest[unit_end..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for ok in ["0", "5m", "-1m", "1h30m", "1.5s", "+2h", "300ms"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["-1", "", "5", "1d", "m", "5 m", "1..5s"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }
}
