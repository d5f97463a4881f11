//! Model discovery (SPEC §4): asks Ollama which models are installed (`/api/tags`, then
//! `/api/show` 8 at a time) and merges them with the configured providers into the
//! [`Catalog`] the router reads.

pub mod catalog;
mod run;

pub use catalog::{build_catalog, Catalog, CatalogModel, ModelSource, SkippedModel};
pub use run::{CatalogStore, DiscoveryTask};

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{OwnDiscovery, Snapshot};

const TAGS_TIMEOUT: Duration = Duration::from_secs(5);
const SHOW_TIMEOUT: Duration = Duration::from_secs(3);
const SHOW_CONCURRENCY: usize = 8;
/// OpenClaw inspects at most 200 models; so do we.
const MAX_SHOWN: usize = 200;
const DEFAULT_MAX_TOKENS: u64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("Failed to discover Ollama models: {base_url}/api/tags: {reason}. Is Ollama running there? (`openclawd status` shows its state)")]
    Tags { base_url: String, reason: String },
}

/// One installed Ollama model after inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredModel {
    pub name: String,
    pub tools: bool,
    pub reasoning: bool,
    pub vision: bool,
    pub context_window: u64,
    pub max_tokens: u64,
    /// `None` for chat models; else why the model cannot be routed at all.
    pub not_chat: Option<String>,
}

/// The result of one discovery run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    pub models: Vec<DiscoveredModel>,
    /// Models whose `/api/show` failed; kept out with the reason.
    pub failed: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Option<Vec<TagModel>>,
}

#[derive(Deserialize)]
struct TagModel {
    name: String,
    #[serde(default)]
    details: TagDetails,
    /// Ollama ≥ 0.30 lists capabilities in `/api/tags` directly.
    #[serde(default)]
    capabilities: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct TagDetails {
    #[serde(default)]
    context_length: Option<u64>,
}

/// What `/api/show` (or a new enough `/api/tags`) told us about one model.
#[derive(Debug, Default)]
struct ModelFacts {
    capabilities: Option<Vec<String>>,
    context_length: Option<u64>,
    num_ctx: Option<u64>,
}

/// Runs one discovery against `base_url` (no `/v1`). `client` must not use a proxy for it.
pub async fn discover(
    client: &reqwest::Client,
    base_url: &str,
    host_header: &str,
    settings: &OwnDiscovery,
) -> Result<Discovery, DiscoveryError> {
    let tags_err = |reason: String| DiscoveryError::Tags {
        base_url: base_url.to_string(),
        reason,
    };
    let resp = client
        .get(format!("{base_url}/api/tags"))
        .header(reqwest::header::HOST, host_header)
        .timeout(TAGS_TIMEOUT)
        .send()
        .await
        .map_err(|e| tags_err(describe_reqwest(&e)))?;
    if !resp.status().is_success() {
        return Err(tags_err(format!("HTTP {}", resp.status().as_u16())));
    }
    let tags: Tags = resp
        .json()
        .await
        .map_err(|e| tags_err(format!("unexpected body: {e}")))?;
    let mut listed = tags.models.unwrap_or_default();
    listed.truncate(MAX_SHOWN);

    let results: Vec<(String, Result<ModelFacts, String>)> = stream::iter(listed)
        .map(|m| async move {
            let from_tags = match (&m.capabilities, m.details.context_length) {
                (Some(caps), Some(ctx)) => Some(ModelFacts {
                    capabilities: Some(caps.clone()),
                    context_length: Some(ctx),
                    num_ctx: None,
                }),
                _ => None,
            };
            let facts = match from_tags {
                Some(f) => Ok(f),
                None => show(client, base_url, host_header, &m.name).await,
            };
            (m.name, facts)
        })
        .buffered(SHOW_CONCURRENCY)
        .collect()
        .await;

    let mut out = Discovery::default();
    for (name, facts) in results {
        match facts {
            Ok(f) => out.models.push(classify(name, f, settings)),
            Err(why) => out.failed.push((name, why)),
        }
    }
    Ok(out)
}

async fn show(
    client: &reqwest::Client,
    base_url: &str,
    host_header: &str,
    name: &str,
) -> Result<ModelFacts, String> {
    let resp = client
        .post(format!("{base_url}/api/show"))
        .header(reqwest::header::HOST, host_header)
        .timeout(SHOW_TIMEOUT)
        .json(&serde_json::json!({ "model": name }))
        .send()
        .await
        .map_err(|e| format!("/api/show failed: {}", describe_reqwest(&e)))?;
    if !resp.status().is_success() {
        return Err(format!(
            "/api/show answered HTTP {}",
            resp.status().as_u16()
        ));
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("/api/show body: {e}"))?;
    Ok(facts_from_show(&body))
}

fn facts_from_show(body: &Value) -> ModelFacts {
    let capabilities = body.get("capabilities").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    // The first key (Go sorts map keys) ending in ".context_length" exactly:
    // `gptoss.rope.scaling.original_context_length` must not match.
    let context_length = body
        .get("model_info")
        .and_then(Value::as_object)
        .and_then(|info| {
            let mut keys: Vec<&String> = info
                .keys()
                .filter(|k| k.ends_with(".context_length"))
                .collect();
            keys.sort();
            keys.first()
                .and_then(|k| info.get(*k))
                .and_then(Value::as_u64)
        });
    let num_ctx = body
        .get("parameters")
        .and_then(Value::as_str)
        .and_then(parse_num_ctx);
    ModelFacts {
        capabilities,
        context_length,
        num_ctx,
    }
}

/// `parameters` is Modelfile text: `num_ctx                        32768`.
fn parse_num_ctx(parameters: &str) -> Option<u64> {
    parameters.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("num_ctx"), Some(v)) => v.parse().ok(),
            _ => None,
        }
    })
}

fn reasoning_by_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["r1", "reasoning", "think", "reason"]
        .iter()
        .any(|p| lower.contains(p))
}

fn classify(name: String, facts: ModelFacts, settings: &OwnDiscovery) -> DiscoveredModel {
    let caps = facts.capabilities.as_deref();
    let has = |c: &str| caps.is_some_and(|caps| caps.iter().any(|x| x == c));
    let reasoning = match caps {
        Some(_) => has("thinking"),
        None => reasoning_by_name(&name),
    };
    let not_chat = match caps {
        Some(_) if !has("completion") => Some(if has("embedding") {
            "embedding-only model (not a chat model)".to_string()
        } else {
            "no completion capability (not a chat model)".to_string()
        }),
        _ => None,
    };
    let context_window = facts
        .context_length
        .or(facts.num_ctx)
        .filter(|c| *c > 0)
        .unwrap_or(settings.default_context_window);
    DiscoveredModel {
        tools: has("tools"),
        reasoning,
        vision: has("vision"),
        max_tokens: DEFAULT_MAX_TOKENS.min(context_window),
        context_window,
        not_chat,
        name,
    }
}

/// A short cause for a failed request, without reqwest's URL noise.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if e.is_connect() {
        format!("cannot connect ({cause})")
    } else {
        cause
    }
}

/// Runs one discovery for `snapshot` if it applies, and returns its catalogue.
pub async fn discover_once(snapshot: &Snapshot) -> Catalog {
    if !catalog::discovery_enabled(snapshot) {
        return build_catalog(snapshot, None, None, None);
    }
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(c) => c,
        Err(e) => return build_catalog(snapshot, None, Some(e.to_string()), None),
    };
    match discover(
        &client,
        &snapshot.ollama.base_url,
        &snapshot.ollama.host_port(),
        &snapshot.own.discovery,
    )
    .await
    {
        Ok(d) => build_catalog(snapshot, Some(&d), None, None),
        Err(e) => build_catalog(snapshot, None, Some(e.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let p = format!(
            "{}/tests/fixtures/ollama/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn settings() -> OwnDiscovery {
        crate::config::OwnSettings::default().discovery
    }

    #[test]
    fn gpt_oss_context_comes_from_its_own_key_not_the_rope_key() {
        let facts = facts_from_show(&fixture("show-gpt-oss-20b.json"));
        assert_eq!(facts.context_length, Some(131072));
        let m = classify("gpt-oss:20b".into(), facts, &settings());
        assert!(m.tools && m.reasoning && m.not_chat.is_none());
        assert_eq!(m.max_tokens, 8192);
    }

    #[test]
    fn num_ctx_parameter_is_the_second_source_then_the_default() {
        let body = serde_json::json!({"capabilities":["completion"],"model_info":{},
            "parameters":"stop \"x\"\nnum_ctx                        4096"});
        let m = classify("m".into(), facts_from_show(&body), &settings());
        assert_eq!((m.context_window, m.max_tokens), (4096, 4096));
        let body = serde_json::json!({"capabilities":["completion","tools"]});
        let m = classify("m".into(), facts_from_show(&body), &settings());
        assert_eq!(m.context_window, 8192);
    }

    #[test]
    fn reasoning_falls_back_to_the_name_only_without_capabilities() {
        let m = classify("deepseek-r1:8b".into(), ModelFacts::default(), &settings());
        assert!(m.reasoning);
        let body = serde_json::json!({"capabilities":["completion"]});
        let m = classify("deepseek-r1:8b".into(), facts_from_show(&body), &settings());
        assert!(!m.reasoning);
    }

    #[test]
    fn embedding_models_are_not_chat_models() {
        let body = serde_json::json!({"capabilities":["embedding"]});
        let m = classify(
            "nomic-embed-text".into(),
            facts_from_show(&body),
            &settings(),
        );
        assert!(m.not_chat.unwrap().contains("embedding"));
    }
}
