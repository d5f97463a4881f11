//! Typed reads of JSON values with errors that name the config path and its source position.

use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::include::Locator;
use super::parse::{path_string, Seg};

/// `path` + `key`.
pub(crate) fn child(path: &[Seg], key: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(key.to_string()));
    p
}

pub(crate) fn index(path: &[Seg], i: usize) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// A member of an object; `null` counts as absent (JSON has no "unset").
pub(crate) fn get<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.get(key).filter(|v| !v.is_null())
}

/// How a value looks in an error message: `"abc"`, `12`, `true`, `a list`, `an object`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\"")),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Reads values of one (merged) document.
pub(crate) struct Reader<'a> {
    pub locator: &'a Locator,
}

impl Reader<'_> {
    /// An error about the value at `path`, pointing at its key.
    pub fn invalid(&self, path: &[Seg], what: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: self.locator.key_pos(path),
            config_path: path_string(path),
            what: what.into(),
        }
    }

    pub fn expected(&self, path: &[Seg], expected: &str, got: &Value) -> ConfigError {
        self.invalid(path, format!("expected {expected}, got {}", describe(got)))
    }

    pub fn object<'v>(
        &self,
        v: &'v Value,
        path: &[Seg],
    ) -> Result<&'v serde_json::Map<String, Value>, ConfigError> {
        v.as_object()
            .ok_or_else(|| self.expected(path, "an object", v))
    }

    pub fn string(&self, v: &Value, path: &[Seg]) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.expected(path, "a string", v))
    }

    pub fn bool(&self, v: &Value, path: &[Seg]) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.expected(path, "true or false", v))
    }

    /// A whole number in `min..=max`; `what` describes it (`an integer 1-65535`).
    pub fn integer(
        &self,
        v: &Value,
        path: &[Seg],
        min: u64,
        max: u64,
        what: &str,
    ) -> Result<u64, ConfigError> {
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        n.filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.expected(path, what, v))
    }

    /// A finite number >= 0.
    pub fn non_negative(&self, v: &Value, path: &[Seg]) -> Result<f64, ConfigError> {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .ok_or_else(|| self.expected(path, "a number >= 0", v))
    }

    /// A humantime duration string: `"30m"`, `"120s"`, `"1h 30m"`.
    pub fn duration(&self, v: &Value, path: &[Seg]) -> Result<Duration, ConfigError> {
        let expected = "a duration such as \"30s\", \"5m\" or \"1h\"";
        let s = v.as_str().ok_or_else(|| self.expected(path, expected, v))?;
        humantime::parse_duration(s.trim()).map_err(|_| self.expected(path, expected, v))
    }

    /// A string list (a single string counts as a list of one when `allow_single`).
    pub fn string_list(
        &self,
        v: &Value,
        path: &[Seg],
        allow_single: bool,
    ) -> Result<Vec<String>, ConfigError> {
        match v {
            Value::String(s) if allow_single => Ok(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(item, &index(path, i)))
                .collect(),
            other => Err(self.expected(path, "a list of strings", other)),
        }
    }
}
