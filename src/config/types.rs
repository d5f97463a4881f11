//! The typed, immutable view of every file openclawd reads. Built once per (re)load by
//! [`crate::config::load`], then shared as `Arc<Snapshot>`; never mutated or re-read ad hoc.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Everything the daemon knows about its configuration at one instant.
#[derive(Clone)]
pub struct Snapshot {
    /// Incremented by the watcher on every successful swap (1 = first load).
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub paths: ResolvedPaths,
    /// `models.providers`, keyed by provider id, as configured (before discovery merges in).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `agents.defaults.model`.
    pub model: ModelSelection,
    /// `agents.defaults.models`: per-ref alias and params.
    pub model_entries: BTreeMap<String, ModelEntry>,
    /// `agents.list` (always holds at least the default agent `main`).
    pub agents: Vec<AgentConfig>,
    pub gateway: GatewayConfig,
    /// `session.store` template (may hold `{agentId}` and a leading `~`).
    pub session_store: Option<String>,
    /// Credentials from every agent's `auth-profiles.json`, keyed by profile id
    /// (`provider:name`). The default agent's profiles win on a clash.
    pub auth_profiles: BTreeMap<String, AuthProfile>,
    /// The environment the config was resolved against: the process environment plus
    /// `env.vars` entries for keys the process lacked. Provider key lookups use this.
    pub env: BTreeMap<String, String>,
    /// Where Ollama lives (SPEC §2 "ollama address").
    pub ollama: OllamaAddress,
    /// Implicit Ollama discovery is opted in (`OLLAMA_API_KEY` or an `ollama:*` profile).
    pub discovery_opt_in: bool,
    /// openclawd's own settings (`<state>/openclawd/openclawd.json`).
    pub own: OwnSettings,
    /// Non-fatal findings (dropped auth profiles, ignored keys) to log once per load.
    pub warnings: Vec<String>,
}

/// Every path this load resolved, for status output and for the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPaths {
    pub state_dir: PathBuf,
    pub config_file: PathBuf,
    /// Files pulled in by `$include`, in load order (watched too).
    pub included_files: Vec<PathBuf>,
    /// `<state>/openclawd/openclawd.json` (may not exist).
    pub own_file: PathBuf,
    /// `auth-profiles.json` of every agent (existing or not), default agent first.
    pub auth_files: Vec<PathBuf>,
    /// `ollama` executable to spawn (`--ollama-bin`, `OPENCLAWD_OLLAMA_BIN`, `ollama.bin`, PATH).
    pub ollama_bin: PathBuf,
}

/// The `api` of a provider: which adapter speaks to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    Ollama,
    OpenAiCompletions,
    AnthropicMessages,
    /// Google's Gemini API (`generateContent`).
    GoogleGenerativeAi,
    /// OpenAI's Responses API (`POST /responses`).
    OpenAiResponses,
    /// Any other OpenClaw api (`bedrock-converse-stream`, ...): kept, not routed.
    Other(String),
}

impl Api {
    pub fn parse(s: &str) -> Api {
        match s {
            "ollama" => Api::Ollama,
            "openai-completions" => Api::OpenAiCompletions,
            "anthropic-messages" => Api::AnthropicMessages,
            "google-generative-ai" => Api::GoogleGenerativeAi,
            "openai-responses" => Api::OpenAiResponses,
            other => Api::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Api::Ollama => "ollama",
            Api::OpenAiCompletions => "openai-completions",
            Api::AnthropicMessages => "anthropic-messages",
            Api::GoogleGenerativeAi => "google-generative-ai",
            Api::OpenAiResponses => "openai-responses",
            Api::Other(s) => s,
        }
    }
}

#[derive(Clone)]
pub struct ProviderConfig {
    pub id: String,
    /// As configured, trailing `/` removed.
    pub base_url: String,
    /// `api`; a provider without one is `openai-completions` (OpenClaw's default).
    pub api: Api,
    /// `apiKey` after `${VAR}` substitution (a bare env-var name is resolved from `env`).
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// `models` was present in the config (an explicit list disables discovery for ollama).
    pub models_explicit: bool,
    pub models: Vec<ModelConfig>,
    /// `timeoutSeconds` or the seeds' `timeout` (ms): overrides first-byte timeouts.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub id: String,
    pub name: String,
    pub reasoning: bool,
    /// `tools` when stated; discovered models always state it.
    pub tools: Option<bool>,
    /// `["text"]` or `["text","image"]`.
    pub input: Vec<String>,
    pub context_window: Option<u64>,
    pub max_tokens: Option<u64>,
    pub cost: Cost,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
    #[serde(rename = "cacheRead")]
    pub cache_read: f64,
    #[serde(rename = "cacheWrite")]
    pub cache_write: f64,
}

/// `agents.defaults.model`: a string, or `{primary, fallbacks}` (the seeds' `fallback` too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelSelection {
    pub primary: Option<String>,
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelEntry {
    pub alias: Option<String>,
    /// `params`, e.g. `num_ctx`, `temperature`, `keep_alive`.
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub id: String,
    pub default: bool,
    /// The agent's `agent/` dir (`agentDir`, `OPENCLAW_AGENT_DIR` for `main`, else
    /// `<state>/agents/<id>/agent`).
    pub agent_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Loopback,
    Lan,
    Custom,
}

#[derive(Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `--port`, `OPENCLAW_GATEWAY_PORT`, `gateway.port`, 18789.
    pub port: u16,
    pub bind: BindMode,
    /// The address to bind, resolved from `bind` (+ `customBindHost`) or `--bind`.
    pub bind_addr: IpAddr,
    /// `gateway.auth.token`, else `OPENCLAW_GATEWAY_TOKEN`.
    pub token: Option<String>,
}

/// One credential from `auth-profiles.json`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthProfile {
    pub id: String,
    pub provider: String,
    pub credential: Credential,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey { key: String },
    Token { token: String },
    OAuth { access: String },
}

impl Credential {
    /// The secret sent upstream.
    pub fn secret(&self) -> &str {
        match self {
            Credential::ApiKey { key } => key,
            Credential::Token { token } => token,
            Credential::OAuth { access } => access,
        }
    }
}

// Secrets never reach logs: Debug prints the kind only.
impl std::fmt::Debug for AuthProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.credential {
            Credential::ApiKey { .. } => "api_key",
            Credential::Token { .. } => "token",
            Credential::OAuth { .. } => "oauth",
        };
        f.debug_struct("AuthProfile")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("type", &kind)
            .finish()
    }
}

/// Where Ollama answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaAddress {
    /// `http://host:port`, no trailing `/` or `/v1`.
    pub base_url: String,
    pub host: String,
    pub port: u16,
    /// The host is a loopback address (or `localhost`): we may spawn and signal.
    pub loopback: bool,
}

impl OllamaAddress {
    /// `host:port` for `OLLAMA_HOST` and the `Host` header (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `<state>/openclawd/openclawd.json` (SPEC §9). Every field defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnSettings {
    pub ollama: OwnOllama,
    pub discovery: OwnDiscovery,
    pub gateway: OwnGateway,
    pub sessions: OwnSessions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OwnOllama {
    pub manage: bool,
    pub bin: Option<PathBuf>,
    pub preload: bool,
    pub keep_alive: String,
    pub start_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OwnDiscovery {
    pub require_tools: bool,
    pub interval: Duration,
    pub default_context_window: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimPolicy {
    Stale,
    Force,
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OwnGateway {
    pub reclaim: ReclaimPolicy,
    pub max_body_bytes: usize,
    /// `gateway.holdForOllama`: how long a request whose next model is on the supervised local
    /// Ollama waits for it while it is starting or restarting, before the chain goes on.
    /// `Duration::ZERO` = never hold. At most one hour.
    pub hold_for_ollama: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsAction {
    Clear,
    Prune,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OwnSessions {
    pub max_bytes: u64,
    pub action: SessionsAction,
    pub interval: Duration,
}

impl Default for OwnSettings {
    fn default() -> Self {
        OwnSettings {
            ollama: OwnOllama {
                manage: true,
                bin: None,
                preload: true,
                keep_alive: "30m".into(),
                start_timeout: Duration::from_secs(120),
            },
            discovery: OwnDiscovery {
                require_tools: true,
                interval: Duration::from_secs(60),
                default_context_window: 8192,
            },
            gateway: OwnGateway {
                reclaim: ReclaimPolicy::Stale,
                max_body_bytes: 16 * 1024 * 1024,
                hold_for_ollama: Duration::from_secs(30),
            },
            sessions: OwnSessions {
                max_bytes: 10 * 1024 * 1024,
                action: SessionsAction::Clear,
                interval: Duration::from_secs(300),
            },
        }
    }
}

/// What the command line says; wins over files and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub port: Option<u16>,
    /// `loopback`, `lan`, or an IP address.
    pub bind: Option<String>,
    pub ollama_bin: Option<PathBuf>,
}

/// One `sessions.json` to guard (see [`crate::config::session_stores`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStore {
    pub agent_id: String,
    pub path: PathBuf,
}

// Secrets never reach logs: the Debug output of everything that holds one shows only whether
// it is set (and the environment only its variable names).

/// What Debug prints in place of a secret.
struct Redacted(bool);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0 { "Some(<redacted>)" } else { "None" })
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .field("api", &self.api)
            .field("api_key", &Redacted(self.api_key.is_some()))
            // Header values often carry credentials (`Authorization`, `x-api-key`).
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("models_explicit", &self.models_explicit)
            .field("models", &self.models)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("bind_addr", &self.bind_addr)
            .field("token", &Redacted(self.token.is_some()))
            .finish()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("loaded_at", &self.loaded_at)
            .field("paths", &self.paths)
            .field("providers", &self.providers)
            .field("model", &self.model)
            .field("model_entries", &self.model_entries)
            .field("agents", &self.agents)
            .field("gateway", &self.gateway)
            .field("session_store", &self.session_store)
            .field("auth_profiles", &self.auth_profiles)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("ollama", &self.ollama)
            .field("discovery_opt_in", &self.discovery_opt_in)
            .field("own", &self.own)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl ResolvedPaths {
    /// Every file a change to which means "reload": the config, its includes, openclawd's own
    /// settings and every agent's `auth-profiles.json` (existing or not).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_file.clone()];
        files.extend(self.included_files.iter().cloned());
        files.push(self.own_file.clone());
        files.extend(self.auth_files.iter().cloned());
        files
    }
}

impl Snapshot {
    /// API keys in OpenClaw's order: auth profile, provider env var, `apiKey` in config.
    pub fn api_key(&self, provider: &ProviderConfig) -> Option<String> {
        let id = &provider.id;
        let default_profile = format!("{id}:default");
        let profile = self
            .auth_profiles
            .get(&default_profile)
            .or_else(|| self.auth_profiles.values().find(|p| &p.provider == id));
        if let Some(p) = profile {
            return Some(p.credential.secret().to_string());
        }
        let var = format!("{}_API_KEY", id.to_ascii_uppercase().replace('-', "_"));
        // Google's key has its own name in OpenClaw (and Google's SDKs): GEMINI_API_KEY.
        let google = (provider.api == Api::GoogleGenerativeAi).then_some("GEMINI_API_KEY");
        for var in std::iter::once(var.as_str()).chain(google) {
            if let Some(v) = self.env.get(var).filter(|v| !v.is_empty()) {
                return Some(v.clone());
            }
        }
        provider.api_key.clone().filter(|k| !k.is_empty())
    }
}
