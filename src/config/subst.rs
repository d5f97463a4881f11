//! `${VAR}` substitution and `env.vars`, following OpenClaw's `src/config/env-substitution.ts`
//! and `src/config/env-vars.ts`:
//! - only names matching `[A-Z_][A-Z0-9_]*` are substituted; anything else (`${foo}`) stays as is;
//! - `$${VAR}` is the escape for a literal `${VAR}`;
//! - a missing or empty variable is an error naming it and the config path;
//! - only string values are substituted (never keys);
//! - `env.vars` entries, and plain string keys directly under `env` (other than `vars` and
//!   `shellEnv`), fill variables the environment lacks (or holds only blanks).

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ConfigError;
use super::include::Locator;
use super::parse::{path_string, Seg};

pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Substitutes one string. `Err(name)` names the first missing or empty variable.
pub(crate) fn substitute_str(
    value: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    if !value.contains('$') {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let rest = &value[i..];
        if !rest.starts_with('$') {
            let c = rest.chars().next().unwrap_or('\0');
            out.push(c);
            i += c.len_utf8().max(1);
            continue;
        }
        // Escaped: `$${VAR}` -> `${VAR}`.
        if let Some(name) = rest.strip_prefix("$${").and_then(reference_name) {
            out.push_str("${");
            out.push_str(name);
            out.push('}');
            i += 3 + name.len() + 1;
            continue;
        }
        // Substitution: `${VAR}` -> its value.
        if let Some(name) = rest.strip_prefix("${").and_then(reference_name) {
            match env.get(name) {
                Some(v) if !v.is_empty() => out.push_str(v),
                _ => return Err(name.to_string()),
            }
            i += 2 + name.len() + 1;
            continue;
        }
        out.push('$');
        i += 1;
    }
    Ok(out)
}

/// The text up to the first `}` when it is a valid variable name.
fn reference_name(after_brace: &str) -> Option<&str> {
    let end = after_brace.find('}')?;
    let name = &after_brace[..end];
    is_env_var_name(name).then_some(name)
}

/// Substitutes every string value in `value`; errors point at the occurrence in its file.
pub(crate) fn substitute_tree(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    locator: &Locator,
) -> Result<(), ConfigError> {
    walk(value, env, locator, &mut Vec::new())
}

fn walk(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    locator: &Locator,
    path: &mut Vec<Seg>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => match substitute_str(s, env) {
            Ok(new) => {
                *s = new;
                Ok(())
            }
            Err(var) => Err(ConfigError::MissingEnvVar {
                at: locator.occurrence_pos(path, &format!("${{{var}}}")),
                config_path: path_string(path),
                var,
            }),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                let r = walk(item, env, locator, path);
                path.pop();
                r?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                path.push(Seg::Key(k.clone()));
                let r = walk(v, env, locator, path);
                path.pop();
                r?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The variables the config's `env` section sets (before substitution, as OpenClaw applies
/// them).
pub(crate) fn config_env_vars(config: &Value) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    let Some(env) = config.get("env").and_then(Value::as_object) else {
        return entries;
    };
    if let Some(vars) = env.get("vars").and_then(Value::as_object) {
        for (k, v) in vars {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                entries.insert(k.clone(), s.to_string());
            }
        }
    }
    for (k, v) in env {
        if k == "vars" || k == "shellEnv" {
            continue;
        }
        if let Some(s) = v.as_str().filter(|s| !s.trim().is_empty()) {
            entries.insert(k.clone(), s.to_string());
        }
    }
    entries
}

/// `env` plus the config's variables for keys `env` lacks (or holds only blanks, as OpenClaw).
pub(crate) fn merge_env(
    env: &BTreeMap<String, String>,
    config_vars: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged = env.clone();
    for (k, v) in config_vars {
        let present = merged.get(&k).is_some_and(|cur| !cur.trim().is_empty());
        if !present {
            merged.insert(k, v);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn uppercase_references_are_replaced() {
        let e = env(&[("A_1", "x"), ("B", "y")]);
        assert_eq!(substitute_str("${A_1}-${B}/${A_1}", &e).unwrap(), "x-y/x");
    }

    #[test]
    fn lowercase_and_malformed_references_stay() {
        let e = env(&[]);
        for s in [
            "${foo}", "${Foo}", "${1A}", "${A", "$A", "$", "a$b", "${}", "é${x}",
        ] {
            assert_eq!(substitute_str(s, &e).unwrap(), s);
        }
    }

    #[test]
    fn double_dollar_escapes_a_literal_reference() {
        let e = env(&[]);
        assert_eq!(substitute_str("$${MISSING}", &e).unwrap(), "${MISSING}");
        assert_eq!(substitute_str("$${lower}", &e).unwrap(), "$${lower}");
        let e = env(&[("X", "v")]);
        assert_eq!(substitute_str("$$${X}", &e).unwrap(), "$${X}");
    }

    #[test]
    fn missing_or_empty_variables_are_named() {
        let e = env(&[("EMPTY", "")]);
        assert_eq!(substitute_str("a${NOPE}", &e).unwrap_err(), "NOPE");
        assert_eq!(substitute_str("${EMPTY}", &e).unwrap_err(), "EMPTY");
    }
}
