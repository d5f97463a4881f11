//! Model resolution (SPEC §5): a request's `model` → the [`FallbackChain`] of refs to try, and
//! the per-model cooldowns that make the chain skip a model that just failed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::error::GatewayError;
use crate::backoff::Backoff;
use crate::discovery::Catalog;

/// The refs to try for one request, in order, de-duplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackChain {
    pub refs: Vec<String>,
}

/// Names that mean "the configured primary" (OpenClaw's agent-first names included).
fn means_primary(model: &str) -> bool {
    matches!(model, "" | "default" | "openclaw" | "openclaw/default")
        || model.starts_with("openclaw/")
        || model.starts_with("openclaw:")
}

/// Resolves a requested model name to one ref of `catalog`.
pub fn resolve_ref(catalog: &Catalog, requested: Option<&str>) -> Result<String, GatewayError> {
    let requested = requested.map(str::trim).unwrap_or("");
    if means_primary(requested) {
        if let Some(p) = &catalog.primary {
            return Ok(catalog.aliases.get(p).cloned().unwrap_or_else(|| p.clone()));
        }
        return catalog
            .models
            .iter()
            .find(|m| m.unroutable.is_none())
            .map(|m| m.model_ref.clone())
            .ok_or_else(|| {
                GatewayError::NotFound(
                    "no model requested, no agents.defaults.model.primary configured, and no \
                     model is routable; configure models.providers in openclaw.json or install \
                     an Ollama model"
                        .into(),
                )
            });
    }
    if let Some(r) = catalog.aliases.get(requested) {
        return Ok(r.clone());
    }
    if catalog.get(requested).is_some() {
        return Ok(requested.to_string());
    }
    let bare: Vec<&str> = catalog
        .models
        .iter()
        .filter(|m| m.id == requested)
        .map(|m| m.model_ref.as_str())
        .collect();
    match bare.as_slice() {
        [one] => Ok(one.to_string()),
        [] => {
            // A configured chain entry that is not (yet) in the catalogue is still a known ref.
            if catalog.primary.as_deref() == Some(requested)
                || catalog.fallbacks.iter().any(|f| f == requested)
            {
                return Ok(requested.to_string());
            }
            let mut known: Vec<&str> = catalog.aliases.keys().map(String::as_str).collect();
            known.extend(catalog.models.iter().map(|m| m.model_ref.as_str()));
            Err(GatewayError::NotFound(format!(
                "The model `{requested}` does not exist. Available: {}",
                if known.is_empty() {
                    "none (no provider is configured and no Ollama model was discovered)".into()
                } else {
                    known.join(", ")
                }
            )))
        }
        many => Err(GatewayError::BadRequest {
            message: format!(
                "The model `{requested}` is ambiguous: it matches {}. Use the full provider/id ref.",
                many.join(", ")
            ),
            param: Some("model".into()),
        }),
    }
}

/// The chain for a request: the resolved model, then the configured fallbacks, unless pinned.
pub fn chain_for(
    catalog: &Catalog,
    requested: Option<&str>,
    pinned: bool,
) -> Result<FallbackChain, GatewayError> {
    let first = resolve_ref(catalog, requested)?;
    let mut refs = vec![first];
    if !pinned {
        for f in &catalog.fallbacks {
            let r = catalog.aliases.get(f).cloned().unwrap_or_else(|| f.clone());
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
    }
    Ok(FallbackChain { refs })
}

struct CooldownEntry {
    backoff: Backoff,
    until: Instant,
}

/// The longest cooldown, whatever an upstream's `Retry-After` says.
const MAX_COOLDOWN: Duration = Duration::from_secs(3600);

/// Per-model cooldowns: 30 s, 60 s, 5 min (SPEC §5); `Retry-After` is a floor.
#[derive(Default)]
pub struct Cooldowns {
    entries: Mutex<HashMap<String, CooldownEntry>>,
}

impl Cooldowns {
    /// Remaining cooldown of `model_ref`, if any.
    pub fn remaining(&self, model_ref: &str) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(model_ref)
            .filter(|e| e.until > now)
            .map(|e| e.until - now)
    }

    /// Records a failure of `model_ref`; returns the cooldown applied.
    pub fn fail(&self, model_ref: &str, retry_after: Option<Duration>) -> Duration {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries
            .entry(model_ref.to_string())
            .or_insert_with(|| CooldownEntry {
                backoff: Backoff::model_cooldown(),
                until: now,
            });
        let wait = entry
            .backoff
            .next_delay()
            .max(retry_after.unwrap_or_default());
        // `wait` comes partly from outside (Retry-After): never let it overflow the clock.
        let wait = wait.min(MAX_COOLDOWN);
        entry.until = now.checked_add(wait).unwrap_or(now);
        wait
    }

    /// A success ends the cooldown and resets its schedule.
    pub fn succeed(&self, model_ref: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(model_ref);
    }

    /// Forget cooldowns of refs matching `pred` (e.g. Ollama's models once it is back up).
    pub fn clear_where(&self, pred: impl Fn(&str) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|k, _| !pred(k));
    }

    /// Wall-clock end of the cooldown, for `/status`.
    pub fn until_wallclock(&self, model_ref: &str) -> Option<SystemTime> {
        self.remaining(model_ref).map(|d| SystemTime::now() + d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::discovery::{CatalogModel, ModelSource};

    fn model(provider: &str, id: &str) -> CatalogModel {
        CatalogModel {
            model_ref: format!("{provider}/{id}"),
            provider: provider.into(),
            id: id.into(),
            source: ModelSource::Configured,
            config: ModelConfig {
                id: id.into(),
                name: id.into(),
                reasoning: false,
                tools: None,
                input: vec!["text".into()],
                context_window: None,
                max_tokens: None,
                cost: Default::default(),
            },
            unroutable: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            models: vec![
                model("ollama", "gpt-oss:20b"),
                model("ollama", "qwen3-coder:30b"),
                model("openrouter", "z-ai/glm-4.5-air"),
                model("a", "dup"),
                model("b", "dup"),
            ],
            aliases: [("local".to_string(), "ollama/gpt-oss:20b".to_string())].into(),
            primary: Some("ollama/gpt-oss:20b".into()),
            fallbacks: vec![
                "ollama/qwen3-coder:30b".into(),
                "ollama/gpt-oss:20b".into(),
                "openrouter/z-ai/glm-4.5-air".into(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn every_resolution_form() {
        let c = catalog();
        for (asked, want) in [
            (None, "ollama/gpt-oss:20b"),
            (Some("default"), "ollama/gpt-oss:20b"),
            (Some("openclaw"), "ollama/gpt-oss:20b"),
            (Some("openclaw/main"), "ollama/gpt-oss:20b"),
            (Some("local"), "ollama/gpt-oss:20b"),
            (
                Some("openrouter/z-ai/glm-4.5-air"),
                "openrouter/z-ai/glm-4.5-air",
            ),
            (Some("z-ai/glm-4.5-air"), "openrouter/z-ai/glm-4.5-air"),
            (Some("qwen3-coder:30b"), "ollama/qwen3-coder:30b"),
        ] {
            assert_eq!(resolve_ref(&c, asked).unwrap(), want, "{asked:?}");
        }
    }

    #[test]
    fn unknown_model_lists_what_exists_and_ambiguous_ids_are_refused() {
        let c = catalog();
        let err = resolve_ref(&c, Some("llama9")).unwrap_err();
        assert_eq!(err.status(), 404);
        assert!(err.to_string().contains("ollama/qwen3-coder:30b"));
        assert_eq!(resolve_ref(&c, Some("dup")).unwrap_err().status(), 400);
    }

    #[test]
    fn chain_is_the_resolved_model_then_fallbacks_deduplicated() {
        let c = catalog();
        let chain = chain_for(&c, Some("coder-not-alias-but-id-qwen3-coder:30b"), false);
        assert!(chain.is_err());
        let chain = chain_for(&c, Some("qwen3-coder:30b"), false).unwrap();
        assert_eq!(
            chain.refs,
            vec![
                "ollama/qwen3-coder:30b",
                "ollama/gpt-oss:20b",
                "openrouter/z-ai/glm-4.5-air"
            ]
        );
        let pinned = chain_for(&c, Some("qwen3-coder:30b"), true).unwrap();
        assert_eq!(pinned.refs, vec!["ollama/qwen3-coder:30b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_skips_then_expires_and_steps_up() {
        let cd = Cooldowns::default();
        assert_eq!(cd.fail("m", None), Duration::from_secs(30));
        assert!(cd.remaining("m").is_some());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(cd.remaining("m").is_none());
        assert_eq!(cd.fail("m", None), Duration::from_secs(60));
        assert_eq!(
            cd.fail("m", Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        cd.succeed("m");
        assert!(cd.remaining("m").is_none());
        assert_eq!(cd.fail("m", None), Duration::from_secs(30));
    }
}
