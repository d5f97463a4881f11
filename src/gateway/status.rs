//! `/status` (SPEC §7) and `/ready`.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::state::GatewayState;

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Ready when a snapshot is loaded and at least one model of the primary chain is routable.
pub fn readiness(state: &GatewayState) -> Result<(), String> {
    if let Some(err) = state.config_error.load_full() {
        if state.config.load().generation == 0 {
            return Err(format!("no valid configuration loaded: {err}"));
        }
    }
    let catalog = state.catalog.load();
    let mut chain: Vec<&str> = catalog.primary.iter().map(String::as_str).collect();
    chain.extend(catalog.fallbacks.iter().map(String::as_str));
    if chain.is_empty() {
        return if catalog
            .models
            .iter()
            .any(|m| model_available(state, &m.model_ref))
        {
            Ok(())
        } else {
            Err("no model is routable: configure models.providers or install an Ollama model with tools".into())
        };
    }
    if chain.iter().any(|r| model_available(state, r)) {
        Ok(())
    } else {
        Err(format!(
            "no model of the primary chain is routable right now: {}",
            chain.join(", ")
        ))
    }
}

/// Routable now: in the catalogue, not unroutable, not cooling down, its Ollama up.
pub fn model_available(state: &GatewayState, model_ref: &str) -> bool {
    let catalog = state.catalog.load();
    let Some(m) = catalog.get(model_ref) else {
        return false;
    };
    if m.unroutable.is_some() || state.cooldowns.remaining(model_ref).is_some() {
        return false;
    }
    match catalog.providers.get(&m.provider) {
        Some(p) if p.api == crate::config::Api::Ollama => {
            state.local_ollama_down(&p.base_url).is_none()
        }
        Some(_) => true,
        None => false,
    }
}

pub fn status_json(state: &GatewayState) -> Value {
    let snapshot = state.config.load();
    let catalog = state.catalog.load();
    let now = SystemTime::now();
    let uptime = now
        .duration_since(state.started_at)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let models: Vec<Value> = catalog
        .models
        .iter()
        .map(|m| {
            json!({
                "ref": m.model_ref,
                "provider": m.provider,
                "id": m.id,
                "source": m.source,
                "tools": m.config.tools,
                "reasoning": m.config.reasoning,
                "context_window": m.config.context_window,
                "max_tokens": m.config.max_tokens,
                "available": model_available(state, &m.model_ref),
                "cooldown_until": state.cooldowns.until_wallclock(&m.model_ref).map(rfc3339),
                "unroutable": m.unroutable,
            })
        })
        .collect();
    let m = &state.metrics;
    json!({
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "started_at": rfc3339(state.started_at),
            "uptime_secs": uptime,
        },
        "ollama": serde_json::to_value(&*state.ollama.borrow()).unwrap_or(Value::Null),
        "config": {
            "path": snapshot.paths.config_file,
            "generation": snapshot.generation,
            "loaded_at": rfc3339(snapshot.loaded_at),
            "error": state.config_error.load_full().map(|e| e.to_string()),
            "warnings": snapshot.warnings,
        },
        "routing": {
            "primary": catalog.primary,
            "fallbacks": catalog.fallbacks,
            "aliases": catalog.aliases,
        },
        "models": models,
        "skipped_models": catalog.skipped,
        "discovery": {
            "enabled": catalog.discovery_enabled,
            "error": catalog.discovery_error,
        },
        "gateway": {
            "listen": state.listen.to_string(),
            "requests_total": m.requests_total.load(std::sync::atomic::Ordering::Relaxed),
            "fallbacks_total": m.fallbacks_total.load(std::sync::atomic::Ordering::Relaxed),
        },
        "housekeeping": serde_json::to_value(&*state.housekeeping.borrow()).unwrap_or(Value::Null),
    })
}
