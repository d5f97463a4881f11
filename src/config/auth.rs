//! `agents/<id>/agent/auth-profiles.json`: `{version, profiles: {id: {type, provider, ...}}}`.
//! Like OpenClaw's `coerceAuthStore`, entries with an unknown `type` or no `provider` are dropped
//! (here with a warning); a missing file has no profiles.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::error::ConfigError;
use super::parse::parse_document;
use super::types::{AuthProfile, Credential};

/// Adds the profiles of `file` to `into`; ids already present (from the default agent, read
/// first) are kept.
pub(crate) fn load_auth_file(
    file: &Path,
    into: &mut BTreeMap<String, AuthProfile>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: file.to_path_buf(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        warnings.push(format!(
            "{}: empty file; no auth profiles read",
            file.display()
        ));
        return Ok(());
    }
    let doc = parse_document(file, text)?;
    let Some(profiles) = doc.value.get("profiles").and_then(Value::as_object) else {
        warnings.push(format!(
            "{}: no \"profiles\" object; no auth profiles read",
            file.display()
        ));
        return Ok(());
    };
    for (id, entry) in profiles {
        match profile(id, entry) {
            Ok(p) => {
                into.entry(id.clone()).or_insert(p);
            }
            Err(why) => warnings.push(format!(
                "{}: auth profile \"{id}\" dropped: {why}",
                file.display()
            )),
        }
    }
    Ok(())
}

fn profile(id: &str, entry: &Value) -> Result<AuthProfile, String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let provider = field("provider").ok_or("it has no \"provider\"")?;
    let kind = entry.get("type").and_then(Value::as_str).unwrap_or("");
    let (secret_field, make): (&str, fn(String) -> Credential) = match kind {
        "api_key" => ("key", |key| Credential::ApiKey { key }),
        "token" => ("token", |token| Credential::Token { token }),
        "oauth" => ("access", |access| Credential::OAuth { access }),
        other => {
            return Err(format!(
                "unknown type {} (expected \"api_key\", \"token\" or \"oauth\")",
                super::read::describe(entry.get("type").unwrap_or(&Value::String(other.into())))
            ))
        }
    };
    let secret = field(secret_field).ok_or_else(|| format!("it has no \"{secret_field}\""))?;
    Ok(AuthProfile {
        id: id.to_string(),
        provider: provider.to_string(),
        credential: make(secret.to_string()),
    })
}
