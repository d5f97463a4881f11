//! Typed extraction of the parts of `openclaw.json` openclawd uses. Unknown keys are ignored
//! (OpenClaw owns that schema); every value openclawd reads is type-checked with an error that
//! names its config path and position.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;

use super::address::ollama_address_from_base_url;
use super::error::ConfigError;
use super::parse::{path_string, Seg};
use super::paths::env_value;
use super::read::{child, describe, get, index, Reader};
use super::subst::is_env_var_name;
use super::types::{
    Api, BindMode, Cost, ModelConfig, ModelEntry, ModelSelection, OllamaAddress, Overrides,
    ProviderConfig,
};

pub(crate) const DEFAULT_GATEWAY_PORT: u16 = 18789;

fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key(k.to_string())).collect()
}

/// Follows `keys` from the root; `Ok(None)` when a step is absent, an error when a step that
/// must be an object is something else.
fn lookup<'v>(
    r: &Reader<'_>,
    root: &'v Value,
    keys: &[&str],
) -> Result<Option<&'v Value>, ConfigError> {
    let mut cur = root;
    for (i, k) in keys.iter().enumerate() {
        if !cur.is_object() {
            return Err(r.expected(&path(&keys[..i]), "an object", cur));
        }
        match get(cur, k) {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// `models.providers.ollama.baseUrl`, if configured.
pub(crate) fn ollama_base_url(r: &Reader<'_>, root: &Value) -> Result<Option<String>, ConfigError> {
    let keys = ["models", "providers", "ollama", "baseUrl"];
    match lookup(r, root, &keys)? {
        Some(v) => {
            let s = r.string(v, &path(&keys))?;
            Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        }
        None => Ok(None),
    }
}

/// SPEC §2 "ollama address": the ollama provider's `baseUrl`, `OLLAMA_HOST`, 127.0.0.1:11434.
pub(crate) fn ollama_address(
    base_url: Option<&str>,
    env: &BTreeMap<String, String>,
) -> OllamaAddress {
    match base_url {
        Some(url) => ollama_address_from_base_url(url),
        None => super::address::parse_ollama_host(env_value(env, "OLLAMA_HOST").unwrap_or("")),
    }
}

/// `models.providers`.
pub(crate) fn providers(
    r: &Reader<'_>,
    root: &Value,
    env: &BTreeMap<String, String>,
    ollama: &OllamaAddress,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, ProviderConfig>, ConfigError> {
    let keys = ["models", "providers"];
    let mut out = BTreeMap::new();
    let Some(v) = lookup(r, root, &keys)? else {
        return Ok(out);
    };
    let base = path(&keys);
    for (id, pv) in r.object(v, &base)? {
        if pv.is_null() {
            continue;
        }
        let p = child(&base, id);
        out.insert(id.clone(), provider(r, id, pv, &p, env, ollama, warnings)?);
    }
    Ok(out)
}

fn provider(
    r: &Reader<'_>,
    id: &str,
    v: &Value,
    p: &[Seg],
    env: &BTreeMap<String, String>,
    ollama: &OllamaAddress,
    warnings: &mut Vec<String>,
) -> Result<ProviderConfig, ConfigError> {
    r.object(v, p)?;
    let api = match get(v, "api") {
        Some(a) => Api::parse(r.string(a, &child(p, "api"))?.trim()),
        None if id == "ollama" => Api::Ollama,
        None => Api::OpenAiCompletions,
    };
    let base_url = match get(v, "baseUrl") {
        Some(b) => {
            let bp = child(p, "baseUrl");
            let s = r.string(b, &bp)?;
            let url = s.trim().trim_end_matches('/');
            let lower = url.to_ascii_lowercase();
            let has_host = url
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty());
            if !(lower.starts_with("http://") || lower.starts_with("https://")) || !has_host {
                return Err(r.expected(&bp, "an http:// or https:// URL", b));
            }
            url.to_string()
        }
        None if id == "ollama" => match api {
            Api::Ollama => ollama.base_url.clone(),
            _ => format!("{}/v1", ollama.base_url),
        },
        None => {
            return Err(r.invalid(
                p,
                format!("provider \"{id}\" has no baseUrl; add baseUrl (e.g. \"https://host/v1\")"),
            ))
        }
    };
    let api_key = match get(v, "apiKey") {
        Some(k) => api_key(r, k, &child(p, "apiKey"), env, warnings)?,
        None => None,
    };
    let mut headers = BTreeMap::new();
    if let Some(h) = get(v, "headers") {
        let hp = child(p, "headers");
        for (name, value) in r.object(h, &hp)? {
            let vp = child(&hp, name);
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => return Err(r.expected(&vp, "a string", other)),
            };
            headers.insert(name.clone(), value);
        }
    }
    let (models_explicit, models) = match get(v, "models") {
        Some(m) => {
            let mp = child(p, "models");
            let Value::Array(items) = m else {
                return Err(r.expected(&mp, "a list of models", m));
            };
            let models = items
                .iter()
                .enumerate()
                .map(|(i, item)| model(r, item, &index(&mp, i)))
                .collect::<Result<Vec<_>, _>>()?;
            (true, models)
        }
        None => (false, Vec::new()),
    };
    let timeout = if let Some(t) = get(v, "timeoutSeconds") {
        let secs = r.non_negative(t, &child(p, "timeoutSeconds"))?;
        Some(Duration::from_secs_f64(secs.min(1e9)))
    } else if let Some(t) = get(v, "timeout") {
        let ms = r.integer(
            t,
            &child(p, "timeout"),
            0,
            u64::MAX,
            "a whole number of milliseconds",
        )?;
        Some(Duration::from_millis(ms))
    } else {
        None
    };
    Ok(ProviderConfig {
        id: id.to_string(),
        base_url,
        api,
        api_key,
        headers,
        models_explicit,
        models,
        timeout: timeout.filter(|t| !t.is_zero()),
    })
}

/// `apiKey`: a literal; a bare env-var name that is set (`"LITELLM_KEY"`) resolves to its
/// value; a SecretRef `{source: "env", id}` reads that variable.
fn api_key(
    r: &Reader<'_>,
    v: &Value,
    p: &[Seg],
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if is_env_var_name(s) {
                if let Some(value) = env.get(s).filter(|v| !v.is_empty()) {
                    return Ok(Some(value.clone()));
                }
            }
            Ok(Some(s.to_string()))
        }
        Value::Object(o) => {
            let source = o.get("source").and_then(Value::as_str);
            let id = o.get("id").and_then(Value::as_str);
            match (source, id) {
                (Some("env"), Some(name)) => match env.get(name).filter(|v| !v.is_empty()) {
                    Some(value) => Ok(Some(value.clone())),
                    None => {
                        warnings.push(format!(
                            "{}: environment variable {name} is not set; provider has no API key",
                            path_string(p)
                        ));
                        Ok(None)
                    }
                },
                (Some(other), _) => {
                    warnings.push(format!(
                        "{}: secret source \"{other}\" is not supported by openclawd; \
                         provider has no API key",
                        path_string(p)
                    ));
                    Ok(None)
                }
                _ => Err(r.expected(p, "a string or {source: \"env\", id: \"VAR\"}", v)),
            }
        }
        other => Err(r.expected(p, "a string", other)),
    }
}

fn model(r: &Reader<'_>, v: &Value, p: &[Seg]) -> Result<ModelConfig, ConfigError> {
    r.object(v, p)?;
    let id = match get(v, "id") {
        Some(id) => r.string(id, &child(p, "id"))?.trim().to_string(),
        None => String::new(),
    };
    if id.is_empty() {
        return Err(r.invalid(p, "a model needs a non-empty \"id\""));
    }
    let name = match get(v, "name") {
        Some(n) => r.string(n, &child(p, "name"))?,
        None => id.clone(),
    };
    let reasoning = match get(v, "reasoning") {
        Some(b) => r.bool(b, &child(p, "reasoning"))?,
        None => false,
    };
    let tools = match get(v, "tools") {
        Some(b) => Some(r.bool(b, &child(p, "tools"))?),
        None => None,
    };
    let input = match get(v, "input") {
        Some(i) => r.string_list(i, &child(p, "input"), false)?,
        None => vec!["text".to_string()],
    };
    let positive = |key: &str| -> Result<Option<u64>, ConfigError> {
        match get(v, key) {
            Some(n) => Ok(Some(r.integer(
                n,
                &child(p, key),
                1,
                u64::MAX,
                "a positive integer",
            )?)),
            None => Ok(None),
        }
    };
    let context_window = positive("contextWindow")?;
    let max_tokens = positive("maxTokens")?;
    let mut cost = Cost::default();
    if let Some(c) = get(v, "cost") {
        let cp = child(p, "cost");
        r.object(c, &cp)?;
        let field = |key: &str| -> Result<f64, ConfigError> {
            match get(c, key) {
                Some(n) => r.non_negative(n, &child(&cp, key)),
                None => Ok(0.0),
            }
        };
        cost = Cost {
            input: field("input")?,
            output: field("output")?,
            cache_read: field("cacheRead")?,
            cache_write: field("cacheWrite")?,
        };
    }
    Ok(ModelConfig {
        id,
        name,
        reasoning,
        tools,
        input,
        context_window,
        max_tokens,
        cost,
    })
}

/// `agents.defaults.model`: a string, or `{primary, fallbacks}`; the seeds' singular
/// `fallback` (a string or a list) is accepted too.
pub(crate) fn model_selection(r: &Reader<'_>, root: &Value) -> Result<ModelSelection, ConfigError> {
    let keys = ["agents", "defaults", "model"];
    let p = path(&keys);
    let mut sel = ModelSelection::default();
    match lookup(r, root, &keys)? {
        None => {}
        Some(Value::String(s)) => {
            sel.primary = Some(s.trim().to_string()).filter(|s| !s.is_empty())
        }
        Some(v @ Value::Object(_)) => {
            if let Some(primary) = get(v, "primary") {
                let s = r.string(primary, &child(&p, "primary"))?;
                sel.primary = Some(s.trim().to_string()).filter(|s| !s.is_empty());
            }
            for key in ["fallbacks", "fallback"] {
                if let Some(f) = get(v, key) {
                    for fallback in r.string_list(f, &child(&p, key), true)? {
                        let fallback = fallback.trim().to_string();
                        if !fallback.is_empty() && !sel.fallbacks.contains(&fallback) {
                            sel.fallbacks.push(fallback);
                        }
                    }
                }
            }
        }
        Some(other) => {
            return Err(r.expected(&p, "a model ref string or {primary, fallbacks}", other))
        }
    }
    Ok(sel)
}

/// `agents.defaults.models`: per-ref alias and params.
pub(crate) fn model_entries(
    r: &Reader<'_>,
    root: &Value,
) -> Result<BTreeMap<String, ModelEntry>, ConfigError> {
    let keys = ["agents", "defaults", "models"];
    let p = path(&keys);
    let mut out = BTreeMap::new();
    let Some(v) = lookup(r, root, &keys)? else {
        return Ok(out);
    };
    for (model_ref, entry) in r.object(v, &p)? {
        let ep = child(&p, model_ref);
        let mut e = ModelEntry::default();
        if !entry.is_null() {
            r.object(entry, &ep)?;
            if let Some(alias) = get(entry, "alias") {
                let a = r.string(alias, &child(&ep, "alias"))?;
                e.alias = Some(a.trim().to_string()).filter(|a| !a.is_empty());
            }
            if let Some(params) = get(entry, "params") {
                e.params = r.object(params, &child(&ep, "params"))?.clone();
            }
        }
        out.insert(model_ref.clone(), e);
    }
    Ok(out)
}

/// One `agents.list` entry as configured.
pub(crate) struct AgentEntry {
    pub id: String,
    pub default: bool,
    pub agent_dir: Option<String>,
}

/// `agents.list`; `main` when it is empty. Exactly one entry is the default: the first marked
/// `default: true`, else the first (OpenClaw's rule).
pub(crate) fn agents(
    r: &Reader<'_>,
    root: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<AgentEntry>, ConfigError> {
    let keys = ["agents", "list"];
    let p = path(&keys);
    let mut out: Vec<AgentEntry> = Vec::new();
    if let Some(v) = lookup(r, root, &keys)? {
        let Value::Array(items) = v else {
            return Err(r.expected(&p, "a list of agents", v));
        };
        for (i, item) in items.iter().enumerate() {
            let ip = index(&p, i);
            r.object(item, &ip)?;
            let id = match get(item, "id") {
                Some(id) => r.string(id, &child(&ip, "id"))?.trim().to_string(),
                None => String::new(),
            };
            if id.is_empty() {
                return Err(r.invalid(&ip, "an agent needs a non-empty \"id\""));
            }
            let default = match get(item, "default") {
                Some(d) => r.bool(d, &child(&ip, "default"))?,
                None => false,
            };
            let agent_dir = match get(item, "agentDir") {
                Some(d) => Some(r.string(d, &child(&ip, "agentDir"))?),
                None => None,
            };
            if out.iter().any(|a| a.id == id) {
                warnings.push(format!(
                    "{}: agent id \"{id}\" is listed twice; the first entry is used",
                    path_string(&ip)
                ));
                continue;
            }
            out.push(AgentEntry {
                id,
                default,
                agent_dir,
            });
        }
    }
    if out.is_empty() {
        out.push(AgentEntry {
            id: "main".into(),
            default: true,
            agent_dir: None,
        });
    }
    let defaults = out.iter().filter(|a| a.default).count();
    if defaults > 1 {
        warnings.push("agents.list: several agents have default: true; the first is used".into());
    }
    let first_default = out.iter().position(|a| a.default).unwrap_or(0);
    for (i, a) in out.iter_mut().enumerate() {
        a.default = i == first_default;
    }
    Ok(out)
}

/// `session.store`.
pub(crate) fn session_store(r: &Reader<'_>, root: &Value) -> Result<Option<String>, ConfigError> {
    let keys = ["session", "store"];
    match lookup(r, root, &keys)? {
        Some(v) => {
            Ok(Some(r.string(v, &path(&keys))?.trim().to_string()).filter(|s| !s.is_empty()))
        }
        None => Ok(None),
    }
}

/// Gateway port, bind and token (SPEC §2).
pub(crate) struct Gateway {
    pub port: u16,
    pub bind: BindMode,
    pub bind_addr: IpAddr,
    pub token: Option<String>,
}

pub(crate) fn gateway(
    r: &Reader<'_>,
    root: &Value,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Gateway, ConfigError> {
    // Port: --port, OPENCLAW_GATEWAY_PORT, gateway.port, 18789.
    let config_port = match lookup(r, root, &["gateway", "port"])? {
        Some(v) => Some(r.integer(
            v,
            &path(&["gateway", "port"]),
            1,
            65535,
            "an integer 1-65535",
        )? as u16),
        None => None,
    };
    let env_port = env_value(env, "OPENCLAW_GATEWAY_PORT").and_then(|s| match s.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            // OpenClaw ignores an unparsable value too.
            warnings.push(format!(
                "OPENCLAW_GATEWAY_PORT={s:?} is not a port number (1-65535); ignored"
            ));
            None
        }
    });
    let port = overrides
        .port
        .or(env_port)
        .or(config_port)
        .unwrap_or(DEFAULT_GATEWAY_PORT);

    // Bind: --bind, gateway.bind (+ customBindHost), loopback.
    let loopback = (BindMode::Loopback, IpAddr::V4(Ipv4Addr::LOCALHOST));
    let lan = (BindMode::Lan, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (bind, bind_addr) = if let Some(flag) = &overrides.bind {
        match flag.trim() {
            "loopback" => loopback,
            "lan" => lan,
            other => match other
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => (BindMode::Custom, ip),
                Err(_) => {
                    return Err(ConfigError::Override {
                        flag: "--bind",
                        what: format!("expected loopback, lan or an IP address, got {other:?}"),
                    })
                }
            },
        }
    } else {
        let bp = path(&["gateway", "bind"]);
        match lookup(r, root, &["gateway", "bind"])? {
            None => loopback,
            Some(v) => match v.as_str().map(str::trim) {
                Some("loopback" | "auto" | "tailnet") => loopback,
                Some("lan") => lan,
                Some("custom") => {
                    let hp = path(&["gateway", "customBindHost"]);
                    let host = lookup(r, root, &["gateway", "customBindHost"])?;
                    let ip = host
                        .and_then(Value::as_str)
                        .and_then(|h| h.trim().parse::<IpAddr>().ok());
                    match (ip, host) {
                        (Some(ip), _) => (BindMode::Custom, ip),
                        (None, Some(h)) => return Err(r.expected(&hp, "an IP address", h)),
                        (None, None) => {
                            return Err(r.invalid(
                                &bp,
                                "bind is \"custom\" but gateway.customBindHost is not set; \
                                 add customBindHost (an IP address)",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(r.expected(
                        &bp,
                        "\"loopback\", \"lan\", \"tailnet\", \"auto\" or \"custom\"",
                        v,
                    ))
                }
            },
        }
    };

    // Token: gateway.auth.token, OPENCLAW_GATEWAY_TOKEN.
    let config_token = match lookup(r, root, &["gateway", "auth", "token"])? {
        Some(v) => Some(r.string(v, &path(&["gateway", "auth", "token"]))?),
        None => None,
    };
    let token = config_token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| env_value(env, "OPENCLAW_GATEWAY_TOKEN").map(str::to_string));

    Ok(Gateway {
        port,
        bind,
        bind_addr,
        token,
    })
}

/// The config root must be an object.
pub(crate) fn check_root(r: &Reader<'_>, root: &Value) -> Result<(), ConfigError> {
    if root.is_object() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            at: r.locator.value_pos(&[]),
            config_path: "top level".into(),
            what: format!("expected an object {{ ... }}, got {}", describe(root)),
        })
    }
}
