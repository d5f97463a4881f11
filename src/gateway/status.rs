//! `/status` (SPEC §7) and `/ready`.
//!
//! [`StatusReport`] is the one status type: the gateway builds it here, serves it as JSON, and
//! every CLI command (`status`, `models`, `start`/`restart`, `bench`, `doctor`) and the
//! monitoring page read it back as the same struct. Field names are the stable `/status` keys of
//! SPEC §7; fields are only ever added.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::state::GatewayState;
use crate::config::Api;
use crate::discovery::{ModelSource, SkippedModel};
use crate::housekeeping::HousekeepingStatus;
use crate::ollama::client::{LoadedModel, OllamaClient};
use crate::ollama::{OllamaState, OllamaStatus};

/// How long `/status` waits for Ollama's `/api/ps` and `/api/tags`: it must stay quick when
/// Ollama hangs.
const OLLAMA_QUERY_TIMEOUT: Duration = Duration::from_millis(800);

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Everything `/status` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon: DaemonReport,
    /// Healthy, or each reason it is degraded with its fix. Computed by [`StatusReport::assess`].
    #[serde(default)]
    pub health: Health,
    pub ollama: OllamaReport,
    pub config: ConfigReport,
    pub routing: RoutingReport,
    /// The routable catalogue (and configured models that cannot be routed, with why).
    pub models: Vec<ModelEntry>,
    /// Installed models discovery left out, with the reason and the fix.
    pub skipped_models: Vec<SkippedModel>,
    pub discovery: DiscoveryReport,
    pub gateway: GatewayReport,
    pub housekeeping: HousekeepingStatus,
    #[serde(default)]
    pub logs: LogPaths,
}

/// The openclawd process itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonReport {
    pub version: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub uptime_secs: u64,
}

/// The supervisor's published [`OllamaStatus`] (its keys at the top level of `ollama`), plus
/// what `/status` asked Ollama itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OllamaReport {
    #[serde(flatten)]
    pub status: OllamaStatus,
    /// Models Ollama holds in memory (`/api/ps`), soonest to unload last; `None` when Ollama
    /// was not running or did not answer.
    #[serde(default)]
    pub loaded: Option<Vec<LoadedModel>>,
}

/// The OpenClaw config the daemon runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    pub path: PathBuf,
    /// 0 until a config loaded; +1 per successful reload.
    pub generation: u64,
    pub loaded_at: String,
    /// The last reload's error (file:line and what to do); the previous config stays in use.
    pub error: Option<String>,
    /// Things the loaded config does that are probably not meant (typos, with file:line).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `agents.defaults.model`: the chain a request for `default` walks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingReport {
    pub primary: Option<String>,
    pub fallbacks: Vec<String>,
    /// alias → ref.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// One catalogue model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// `provider/id`.
    #[serde(rename = "ref")]
    pub model_ref: String,
    pub provider: String,
    pub id: String,
    pub source: ModelSource,
    pub tools: Option<bool>,
    pub reasoning: bool,
    pub context_window: Option<u64>,
    pub max_tokens: Option<u64>,
    /// Routable right now: not unroutable, not cooling down, its Ollama running.
    pub available: bool,
    /// RFC 3339; set while failures keep it out of routing.
    pub cooldown_until: Option<String>,
    /// Why it can never be routed as configured (self-loop, unsupported api).
    pub unroutable: Option<String>,
    /// Served by the Ollama openclawd supervises (so its availability follows `ollama.state`).
    #[serde(default)]
    pub on_supervised_ollama: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryReport {
    /// Discovery applies: opted in and no explicit `models.providers.ollama.models`.
    pub enabled: bool,
    /// The last discovery's error (the previous models are kept).
    pub error: Option<String>,
    /// Opted in (`OLLAMA_API_KEY` or an `ollama:*` auth profile).
    #[serde(default)]
    pub opted_in: bool,
    /// With discovery off: models installed in Ollama (`/api/tags`) that are not in the
    /// catalogue, so nothing routes to them. `None` when not known (discovery on, or Ollama
    /// did not answer).
    #[serde(default)]
    pub ignored_installed: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayReport {
    /// The address the gateway is bound to.
    pub listen: String,
    /// The address the current config asks for; differs from `listen` until a restart.
    #[serde(default)]
    pub configured_listen: Option<String>,
    pub requests_total: u64,
    pub fallbacks_total: u64,
}

/// Where the logs are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPaths {
    /// openclawd's own log file (`openclawd start`, launchd).
    pub openclawd: PathBuf,
    /// The owned Ollama's stdout and stderr.
    pub ollama: PathBuf,
    /// When systemd runs openclawd its log is the journal: the command that shows it.
    #[serde(default)]
    pub journal: Option<String>,
}

impl LogPaths {
    pub fn under(state_dir: &Path) -> LogPaths {
        LogPaths {
            openclawd: state_dir.join("logs").join("openclawd.log"),
            ollama: crate::ollama::logfile::log_path(state_dir),
            journal: None,
        }
    }
}

/// Healthy (a request for `default` is answered by the primary now, and nothing else needs
/// doing) or degraded, with one [`Problem`] per reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    pub problems: Vec<Problem>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            healthy: true,
            problems: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    ConfigError,
    ConfigWarning,
    NoPrimary,
    PrimaryUnavailable,
    OllamaNotRunning,
    OllamaVersionMismatch,
    ModelsIgnored,
    PendingRestart,
}

/// One reason the daemon is degraded: what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
    pub fix: String,
}

fn problem(kind: ProblemKind, message: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem {
        kind,
        message: message.into(),
        fix: fix.into(),
    }
}

impl ModelEntry {
    /// The entry for a catalogue model; what is only known to a running daemon (availability,
    /// cooldown, the supervised Ollama) is passed in.
    pub fn of(
        m: &crate::discovery::CatalogModel,
        available: bool,
        cooldown_until: Option<String>,
        on_supervised_ollama: bool,
    ) -> ModelEntry {
        ModelEntry {
            model_ref: m.model_ref.clone(),
            provider: m.provider.clone(),
            id: m.id.clone(),
            source: m.source,
            tools: m.config.tools,
            reasoning: m.config.reasoning,
            context_window: m.config.context_window,
            max_tokens: m.config.max_tokens,
            available,
            cooldown_until,
            unroutable: m.unroutable.clone(),
            on_supervised_ollama,
        }
    }
}

impl StatusReport {
    /// The model a request for `default` goes to first (aliases resolved).
    pub fn primary_ref(&self) -> Option<&str> {
        let p = self.routing.primary.as_deref()?;
        Some(self.routing.aliases.get(p).map(String::as_str).unwrap_or(p))
    }

    pub fn model(&self, model_ref: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.model_ref == model_ref)
    }

    /// Every reason the daemon is degraded, in the order a person should fix them.
    pub fn assess(&self) -> Health {
        let mut out = Vec::new();
        if let Some(err) = &self.config.error {
            out.push(problem(
                ProblemKind::ConfigError,
                format!("config error: {err}"),
                format!(
                    "fix {}; openclawd reloads it by itself (the previous config stays in use until then)",
                    self.config.path.display()
                ),
            ));
        }
        for w in &self.config.warnings {
            out.push(problem(
                ProblemKind::ConfigWarning,
                format!("config warning: {w}"),
                format!(
                    "edit {}; openclawd reloads it by itself",
                    self.config.path.display()
                ),
            ));
        }
        let o = &self.ollama.status;
        let ollama_down = o.state != OllamaState::Running;
        if ollama_down {
            out.push(self.ollama_problem());
        }
        if let Some(cmd) = &o.version_mismatch {
            out.push(problem(
                ProblemKind::OllamaVersionMismatch,
                format!(
                    "Ollama version mismatch: the server runs {} but the installed binary is {}",
                    o.server_version.as_deref().unwrap_or("?"),
                    o.binary_version.as_deref().unwrap_or("?")
                ),
                cmd.clone(),
            ));
        }
        match self.primary_ref() {
            None => out.push(problem(
                ProblemKind::NoPrimary,
                "no primary model: a request for `default` has no model to go to",
                format!(
                    "set agents.defaults.model.primary in {} (e.g. \"ollama/gpt-oss:20b\")",
                    self.config.path.display()
                ),
            )),
            Some(primary) => {
                if let Some(p) = self.primary_problem(primary, ollama_down) {
                    out.push(p);
                }
            }
        }
        if let Some(ignored) = self.discovery.ignored_installed.as_ref() {
            if !self.discovery.enabled && !ignored.is_empty() {
                let fix = if self.discovery.opted_in {
                    "add them to models.providers.ollama.models (or remove that list to discover every installed model)".to_string()
                } else {
                    "set OLLAMA_API_KEY=ollama-local (any value) where openclawd runs (`openclawd install` passes it to the service), or list them in models.providers.ollama.models".to_string()
                };
                out.push(problem(
                    ProblemKind::ModelsIgnored,
                    format!(
                        "{} installed Ollama model{} ignored ({}): discovery is not opted in",
                        ignored.len(),
                        if ignored.len() == 1 { "" } else { "s" },
                        ignored.join(", ")
                    ),
                    fix,
                ));
            }
        }
        if let Some(wanted) = &self.gateway.configured_listen {
            if *wanted != self.gateway.listen {
                out.push(problem(
                    ProblemKind::PendingRestart,
                    format!(
                        "restart pending: the config asks to listen on {wanted}, the gateway is bound to {}",
                        self.gateway.listen
                    ),
                    "openclawd restart (it hands over without dropping requests)",
                ));
            }
        }
        Health {
            healthy: out.is_empty(),
            problems: out,
        }
    }

    fn ollama_problem(&self) -> Problem {
        let o = &self.ollama.status;
        let logs = format!("`openclawd logs --ollama` ({})", self.logs.ollama.display());
        let last = o
            .last_restart_reason
            .as_deref()
            .map(|r| format!(", last: {r}"))
            .unwrap_or_default();
        let (message, fix) = match o.state {
            OllamaState::Starting => (
                format!("Ollama is starting at {}", o.base_url),
                format!("wait a few seconds; if it stays starting, see {logs}"),
            ),
            OllamaState::Restarting => (
                {
                    let when = match o.next_restart_in(SystemTime::now()) {
                        Some(d) if !d.is_zero() => format!(" in {:.1} s", d.as_secs_f64()),
                        _ => String::new(),
                    };
                    let attempt = o
                        .restart_attempt
                        .map(|a| format!("attempt {a}, "))
                        .unwrap_or_default();
                    format!(
                        "Ollama is restarting{when} ({attempt}{} restart{} so far{last})",
                        o.restarts,
                        if o.restarts == 1 { "" } else { "s" }
                    )
                },
                format!("openclawd restarts it by itself; if it keeps crashing, see {logs}"),
            ),
            OllamaState::CrashLoop => (
                format!(
                    "Ollama is in a crash loop ({} restarts{last}); openclawd stopped restarting it",
                    o.restarts
                ),
                format!("see {logs}, fix the cause, then `openclawd restart`"),
            ),
            OllamaState::Stopped => (
                format!("Ollama is stopped ({})", o.base_url),
                "openclawd restart (or `ollama serve` when ollama.manage is off)".to_string(),
            ),
            OllamaState::Unreachable => (
                format!("Ollama is unreachable at {}", o.base_url),
                "start Ollama there (`ollama serve`), or correct OLLAMA_HOST / models.providers.ollama.baseUrl".to_string(),
            ),
            OllamaState::Running => (String::from("Ollama is running"), String::new()),
        };
        problem(ProblemKind::OllamaNotRunning, message, fix)
    }

    /// Why the primary cannot answer now, unless the reason is an Ollama that is down (said once,
    /// by [`Self::ollama_problem`]).
    fn primary_problem(&self, primary: &str, ollama_down: bool) -> Option<Problem> {
        let unavailable = |why: String, fix: String| {
            Some(problem(
                ProblemKind::PrimaryUnavailable,
                format!("primary model {primary} is not routable: {why}"),
                fix,
            ))
        };
        let Some(m) = self.model(primary) else {
            if let Some(sk) = self.skipped_models.iter().find(|s| s.model_ref == primary) {
                return unavailable(format!("skipped ({})", sk.reason), sk.fix.clone());
            }
            let fix = match primary.strip_prefix("ollama/") {
                Some(id) if self.discovery.enabled => format!("ollama pull {id}"),
                Some(id) => format!(
                    "ollama pull {id}, and opt in to discovery (OLLAMA_API_KEY) or list it in models.providers.ollama.models"
                ),
                None => format!(
                    "declare it in models.providers in {}, or choose another primary",
                    self.config.path.display()
                ),
            };
            return unavailable("not in the catalogue".into(), fix);
        };
        if m.available {
            return None;
        }
        if let Some(why) = &m.unroutable {
            return unavailable(
                why.clone(),
                format!("correct its provider in {}", self.config.path.display()),
            );
        }
        if let Some(until) = &m.cooldown_until {
            return unavailable(
                format!("in cooldown after failures until {until}"),
                "requests go to the fallbacks meanwhile; see `openclawd logs` for the failures"
                    .into(),
            );
        }
        if m.on_supervised_ollama && ollama_down {
            return None;
        }
        unavailable("unavailable".into(), "see `openclawd logs`".into())
    }
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
        Some(p) if p.api == Api::Ollama => state.local_ollama_down(&p.base_url).is_none(),
        Some(_) => true,
        None => false,
    }
}

fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[derive(Deserialize)]
struct TagsBody {
    #[serde(default)]
    models: Option<Vec<TagName>>,
}

#[derive(Deserialize)]
struct TagName {
    name: String,
}

/// `GET base_url + path` on the supervised Ollama, parsed; `None` on any failure.
async fn ask_ollama<T: serde::de::DeserializeOwned>(
    state: &GatewayState,
    base_url: &str,
    host: &str,
    path: &str,
) -> Option<T> {
    let resp = state
        .upstreams
        .direct
        .get(format!("{}{path}", base_url.trim_end_matches('/')))
        .header(reqwest::header::HOST, host)
        .timeout(OLLAMA_QUERY_TIMEOUT)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The systemd unit running this process, when it is openclawd's: its journal is the log.
fn journal_command() -> Option<String> {
    // Set by systemd for every unit it runs.
    std::env::var_os("INVOCATION_ID")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let unit = crate::procinfo::service_unit(&cgroup)?;
    Some(if unit.user {
        format!("journalctl --user -u {}", unit.name)
    } else {
        format!("journalctl -u {}", unit.name)
    })
}

fn listen_of(bind: std::net::IpAddr, port: u16) -> String {
    SocketAddr::new(bind, port).to_string()
}

/// Builds `/status`: the daemon's published state plus `/api/ps` (and, with discovery off,
/// `/api/tags`) asked of the supervised Ollama when it runs.
pub async fn status_report(state: &GatewayState) -> StatusReport {
    let snapshot = state.config.load_full();
    let catalog = state.catalog.load_full();
    let ollama = state.ollama.borrow().clone();
    let now = SystemTime::now();
    let uptime = now
        .duration_since(state.started_at)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let models: Vec<ModelEntry> = catalog
        .models
        .iter()
        .map(|m| {
            ModelEntry::of(
                m,
                model_available(state, &m.model_ref),
                state.cooldowns.until_wallclock(&m.model_ref).map(rfc3339),
                catalog.providers.get(&m.provider).is_some_and(|p| {
                    p.api == Api::Ollama && same_base(&p.base_url, &ollama.base_url)
                }),
            )
        })
        .collect();

    let running = ollama.state == OllamaState::Running;
    let ollama_base = ollama.base_url.clone();
    let host = snapshot.ollama.host_port();
    let (ps, tags) = if running {
        let want_tags = !catalog.discovery_enabled;
        tokio::join!(
            async {
                match OllamaClient::new(&snapshot.ollama) {
                    Ok(client) if same_base(client.base_url(), &ollama.base_url) => {
                        client.loaded_models().await.ok()
                    }
                    _ => None,
                }
            },
            async {
                if want_tags {
                    ask_ollama::<TagsBody>(state, &ollama.base_url, &host, "/api/tags").await
                } else {
                    None
                }
            }
        )
    } else {
        (None, None)
    };
    let loaded = ps.map(|mut v| {
        v.sort_by(|a, b| b.expires_at.cmp(&a.expires_at));
        v
    });
    let ignored_installed = tags.map(|t| {
        t.models
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.name)
            .filter(|name| {
                !catalog.models.iter().any(|c| {
                    c.id == *name
                        && catalog.providers.get(&c.provider).is_some_and(|p| {
                            p.api == Api::Ollama && same_base(&p.base_url, &ollama_base)
                        })
                })
            })
            .collect::<Vec<String>>()
    });

    let m = &state.metrics;
    let mut logs = LogPaths::under(&snapshot.paths.state_dir);
    logs.journal = journal_command();
    let mut report = StatusReport {
        daemon: DaemonReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            started_at: rfc3339(state.started_at),
            uptime_secs: uptime,
        },
        health: Health::default(),
        ollama: OllamaReport {
            status: ollama,
            loaded,
        },
        config: ConfigReport {
            path: snapshot.paths.config_file.clone(),
            generation: snapshot.generation,
            loaded_at: rfc3339(snapshot.loaded_at),
            error: state.config_error.load_full().map(|e| e.to_string()),
            warnings: snapshot.warnings.clone(),
        },
        routing: RoutingReport {
            primary: catalog.primary.clone(),
            fallbacks: catalog.fallbacks.clone(),
            aliases: catalog.aliases.clone(),
        },
        models,
        skipped_models: catalog.skipped.clone(),
        discovery: DiscoveryReport {
            enabled: catalog.discovery_enabled,
            error: catalog.discovery_error.clone(),
            opted_in: snapshot.discovery_opt_in,
            ignored_installed,
        },
        gateway: GatewayReport {
            listen: state.listen.to_string(),
            configured_listen: Some(listen_of(snapshot.gateway.bind_addr, snapshot.gateway.port)),
            requests_total: m.requests_total.load(std::sync::atomic::Ordering::Relaxed),
            fallbacks_total: m.fallbacks_total.load(std::sync::atomic::Ordering::Relaxed),
        },
        housekeeping: state.housekeeping.borrow().clone(),
        logs,
    };
    report.health = report.assess();
    report
}
