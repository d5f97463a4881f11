//! The routable catalogue: configured providers merged with what discovery found.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Discovery;
use crate::config::{Api, ModelConfig, ProviderConfig, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    Discovered,
    Configured,
}

/// One model the gateway may route to (or knows and cannot, with `unroutable` saying why).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogModel {
    /// `provider/id`.
    pub model_ref: String,
    pub provider: String,
    pub id: String,
    pub source: ModelSource,
    pub config: ModelConfig,
    /// Why this model can never be routed as configured (self-loop, unsupported api).
    pub unroutable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedModel {
    #[serde(rename = "ref")]
    pub model_ref: String,
    pub reason: String,
    pub fix: String,
}

/// Everything routing needs, rebuilt after each config swap and each discovery run.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Effective providers: the configured ones plus the implicit `ollama` one.
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: Vec<CatalogModel>,
    pub skipped: Vec<SkippedModel>,
    /// alias → ref.
    pub aliases: BTreeMap<String, String>,
    pub primary: Option<String>,
    pub fallbacks: Vec<String>,
    /// Set when the last discovery failed (the previous discovered models are kept).
    pub discovery_error: Option<String>,
    /// Discovery applies to this config (opted in and no explicit ollama model list).
    pub discovery_enabled: bool,
    /// Providers on this machine or a private network (never through a proxy), worked out
    /// once per catalogue rather than per request.
    pub local_providers: std::collections::BTreeSet<String>,
    /// Each provider's API key, resolved once per catalogue in OpenClaw's order (an auth
    /// profile, the provider's env var, `apiKey`), from the snapshot its providers came from.
    pub api_keys: BTreeMap<String, String>,
}

impl Catalog {
    pub fn get(&self, model_ref: &str) -> Option<&CatalogModel> {
        self.models.iter().find(|m| m.model_ref == model_ref)
    }

    pub fn is_local(&self, provider: &str) -> bool {
        self.local_providers.contains(provider)
    }
}

/// Discovery runs for this config (SPEC §4): opted in, and `models.providers.ollama` does not
/// list models explicitly.
pub fn discovery_enabled(snapshot: &Snapshot) -> bool {
    snapshot.discovery_opt_in
        && !snapshot
            .providers
            .get("ollama")
            .is_some_and(|p| p.models_explicit)
}

/// Merges `snapshot`'s providers with the last discovery. `self_listen` is the gateway's own
/// address: a provider pointing there would route to itself and is left out.
pub fn build_catalog(
    snapshot: &Snapshot,
    discovery: Option<&Discovery>,
    discovery_error: Option<String>,
    self_listen: Option<SocketAddr>,
) -> Catalog {
    let mut providers = snapshot.providers.clone();
    let enabled = discovery_enabled(snapshot);
    let mut skipped = Vec::new();
    let mut discovered_ids: Vec<String> = Vec::new();

    if enabled {
        let ollama = providers
            .entry("ollama".to_string())
            .or_insert_with(|| ProviderConfig {
                id: "ollama".into(),
                base_url: snapshot.ollama.base_url.clone(),
                api: Api::Ollama,
                api_key: Some("ollama-local".into()),
                headers: BTreeMap::new(),
                models_explicit: false,
                models: Vec::new(),
                timeout: None,
            });
        for m in discovery.map(|d| d.models.as_slice()).unwrap_or_default() {
            let model_ref = format!("ollama/{}", m.name);
            if let Some(why) = &m.not_chat {
                skipped.push(SkippedModel {
                    model_ref,
                    reason: why.clone(),
                    fix: "nothing to do: use it for embeddings, not chat".into(),
                });
                continue;
            }
            if !m.tools && snapshot.own.discovery.require_tools {
                skipped.push(SkippedModel {
                    model_ref,
                    reason: "no tools capability".into(),
                    fix: format!(
                        "declare it in models.providers.ollama.models with \"tools\": false, \
                         or set discovery.requireTools: false in {}",
                        snapshot.paths.own_file.display()
                    ),
                });
                continue;
            }
            if ollama.models.iter().any(|x| x.id == m.name) {
                continue;
            }
            discovered_ids.push(m.name.clone());
            ollama.models.push(ModelConfig {
                id: m.name.clone(),
                name: m.name.clone(),
                reasoning: m.reasoning,
                tools: Some(m.tools),
                input: if m.vision {
                    vec!["text".into(), "image".into()]
                } else {
                    vec!["text".into()]
                },
                context_window: Some(m.context_window),
                max_tokens: Some(m.max_tokens),
                cost: Default::default(),
            });
        }
        for (name, why) in discovery.map(|d| d.failed.as_slice()).unwrap_or_default() {
            skipped.push(SkippedModel {
                model_ref: format!("ollama/{name}"),
                reason: format!("could not inspect it: {why}"),
                fix: "check `ollama show` for this model; discovery retries every minute".into(),
            });
        }
    }

    let mut models = Vec::new();
    for (pid, p) in &providers {
        let unroutable = provider_unroutable(p, self_listen);
        for m in &p.models {
            let source = if pid == "ollama" && discovered_ids.contains(&m.id) {
                ModelSource::Discovered
            } else {
                ModelSource::Configured
            };
            models.push(CatalogModel {
                model_ref: format!("{pid}/{}", m.id),
                provider: pid.clone(),
                id: m.id.clone(),
                source,
                config: m.clone(),
                unroutable: unroutable.clone(),
            });
        }
    }

    let aliases = snapshot
        .model_entries
        .iter()
        .filter_map(|(r, e)| e.alias.clone().map(|a| (a, r.clone())))
        .collect();

    let local_providers = providers
        .iter()
        .filter(|(_, p)| is_local(&p.base_url))
        .map(|(id, _)| id.clone())
        .collect();
    let api_keys = providers
        .values()
        .filter_map(|p| Some((p.id.clone(), snapshot.api_key(p)?)))
        .collect();
    Catalog {
        local_providers,
        api_keys,
        providers,
        models,
        skipped,
        aliases,
        primary: snapshot.model.primary.clone(),
        fallbacks: snapshot.model.fallbacks.clone(),
        discovery_error,
        discovery_enabled: enabled,
    }
}

fn provider_unroutable(p: &ProviderConfig, self_listen: Option<SocketAddr>) -> Option<String> {
    if let Api::Other(api) = &p.api {
        return Some(format!(
            "api \"{api}\" is not supported by openclawd's gateway (ollama, openai-completions, openai-responses, anthropic-messages, google-generative-ai are)"
        ));
    }
    let listen = self_listen?;
    let url = reqwest::Url::parse(&p.base_url).ok()?;
    let port = url.port_or_known_default()?;
    let host = url.host_str()?.trim_matches(|c| c == '[' || c == ']');
    let same_host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == listen.ip() || (ip.is_loopback() && listen.ip().is_loopback()),
        Err(_) => host == "localhost" && listen.ip().is_loopback(),
    } || listen.ip().is_unspecified();
    (same_host && port == listen.port()).then(|| {
        format!(
            "baseUrl {} is openclawd's own gateway: routing there would loop",
            p.base_url
        )
    })
}

/// Loopback or private addresses: never through a proxy.
pub fn is_local(base_url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        None => false,
    }
}
