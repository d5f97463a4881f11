//! Ollama supervision (SPEC §3): start or adopt `ollama serve`, keep it healthy, follow
//! upgrades of the installed binary, and leave no orphaned server or runner behind.
//!
//! [`spawn`] starts the supervisor task and returns a [`SupervisorHandle`]; everything else
//! (discovery, `/status`) reads [`OllamaStatus`] from its watch channel.

pub mod client;
pub mod inflight;
pub mod logfile;
pub mod managers;
pub mod process;
pub mod record;
mod signals;
mod supervisor;
pub mod version;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::backoff::Backoff;
use crate::config::{Api, OllamaAddress, Snapshot};

pub use inflight::{InFlight, InFlightGuard};
pub use record::stop_recorded;
pub use supervisor::spawn;

/// A model to load as soon as Ollama is healthy, so the first request does not pay the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preload {
    /// Ollama's model name (`gpt-oss:20b`), without the `ollama/` provider prefix.
    pub model: String,
    /// `keep_alive` sent with the preload (`30m`).
    pub keep_alive: String,
}

/// Everything the supervisor needs; timings are fields so tests can shorten them.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorSettings {
    pub address: OllamaAddress,
    /// The `ollama` executable (absolute, or a name looked up on `PATH`).
    pub bin: PathBuf,
    /// `false`: never spawn; only probe and report.
    pub manage: bool,
    /// `<state>`: `logs/ollama.log` and `openclawd/ollama.json` live under it.
    pub state_dir: PathBuf,
    pub preload: Option<Preload>,
    /// How long a spawned server may take to answer its first probe.
    pub start_timeout: Duration,
    /// Liveness probe period of a running server (2 s).
    pub probe_interval: Duration,
    /// How long an adopted server's own manager gets to bring it back before we spawn ours.
    pub adopt_grace: Duration,
    /// Periodic re-check of the installed binary's version (10 min).
    pub version_check_interval: Duration,
    /// Delay between restarts after crashes, from the second crash in a row (the first
    /// restarts at once): SPEC §3, 1 s doubling to 60 s, ±10 %.
    pub restart_backoff: Backoff,
    /// How long a restart openclawd decides itself (upgrade, config change) waits for the
    /// requests in flight to this Ollama to finish (30 s).
    pub drain_timeout: Duration,
}

impl SupervisorSettings {
    /// The SPEC defaults for one address, binary and state directory.
    pub fn new(address: OllamaAddress, bin: PathBuf, state_dir: PathBuf) -> SupervisorSettings {
        SupervisorSettings {
            address,
            bin,
            manage: true,
            state_dir,
            preload: None,
            start_timeout: Duration::from_secs(120),
            probe_interval: Duration::from_secs(2),
            adopt_grace: Duration::from_secs(5),
            version_check_interval: Duration::from_secs(600),
            restart_backoff: Backoff::ollama_restart(),
            drain_timeout: Duration::from_secs(30),
        }
    }

    /// Settings from a config snapshot: address, binary, `ollama.manage`, `ollama.startTimeout`,
    /// and the primary model as preload when it is an Ollama model and `ollama.preload` is on.
    pub fn from_snapshot(snapshot: &Snapshot) -> SupervisorSettings {
        let own = &snapshot.own.ollama;
        let mut s = SupervisorSettings::new(
            snapshot.ollama.clone(),
            snapshot.paths.ollama_bin.clone(),
            snapshot.paths.state_dir.clone(),
        );
        s.manage = own.manage;
        s.start_timeout = own.start_timeout;
        s.preload = if own.preload {
            primary_ollama_model(snapshot).map(|model| Preload {
                model,
                keep_alive: own.keep_alive.clone(),
            })
        } else {
            None
        };
        s
    }
}

/// The primary model's Ollama name when the primary (or the ref its alias names) is served by
/// the Ollama provider.
fn primary_ollama_model(snapshot: &Snapshot) -> Option<String> {
    let primary = snapshot.model.primary.as_deref()?;
    let model_ref = if primary.contains('/') {
        primary.to_string()
    } else {
        snapshot
            .model_entries
            .iter()
            .find(|(_, e)| e.alias.as_deref() == Some(primary))
            .map(|(r, _)| r.clone())?
    };
    let (provider, model) = model_ref.split_once('/')?;
    let is_ollama = provider == "ollama"
        || snapshot
            .providers
            .get(provider)
            .is_some_and(|p| p.api == Api::Ollama);
    (is_ollama && !model.is_empty()).then(|| model.to_string())
}

/// `/status` `ollama.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OllamaState {
    Running,
    Starting,
    Restarting,
    Stopped,
    Unreachable,
    CrashLoop,
}

impl OllamaState {
    /// The `/status` spelling (`crash_loop`).
    pub fn as_str(&self) -> &'static str {
        match self {
            OllamaState::Running => "running",
            OllamaState::Starting => "starting",
            OllamaState::Restarting => "restarting",
            OllamaState::Stopped => "stopped",
            OllamaState::Unreachable => "unreachable",
            OllamaState::CrashLoop => "crash_loop",
        }
    }
}

/// `/status` `ollama.management`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Management {
    Owned,
    Adopted,
    Remote,
}

/// The supervisor's view of Ollama, published on every change (`/status` `ollama`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OllamaStatus {
    pub state: OllamaState,
    /// `None` while no server is known (local, nothing answers, none of ours).
    pub management: Option<Management>,
    pub pid: Option<u32>,
    pub base_url: String,
    pub server_version: Option<String>,
    pub binary_version: Option<String>,
    /// Restarts of the supervised server, kept across a handover and a crash of openclawd.
    pub restarts: u64,
    pub last_restart_reason: Option<String>,
    /// When the last restart happened (RFC 3339, UTC).
    #[serde(default)]
    pub last_restart_at: Option<String>,
    /// While restarting after crashes: which attempt in a row this is (1 = the first, which
    /// is immediate).
    #[serde(default)]
    pub restart_attempt: Option<u32>,
    /// When the waiting restart is due (RFC 3339, UTC, milliseconds); `None` unless one waits.
    #[serde(default)]
    pub next_restart_at: Option<String>,
    /// Incremented on every transition into `running`: discovery re-runs when it changes.
    pub healthy_epoch: u64,
    /// Server and binary versions differ and openclawd cannot fix it: the exact command (or
    /// action) the user must run.
    pub version_mismatch: Option<String>,
}

impl OllamaStatus {
    fn initial(settings: &SupervisorSettings) -> OllamaStatus {
        OllamaStatus {
            state: OllamaState::Starting,
            management: None,
            pid: None,
            base_url: settings.address.base_url.clone(),
            server_version: None,
            binary_version: None,
            restarts: 0,
            last_restart_reason: None,
            last_restart_at: None,
            restart_attempt: None,
            next_restart_at: None,
            healthy_epoch: 0,
            version_mismatch: None,
        }
    }

    /// How long until the waiting restart, seen at `now` (zero once due); `None` when no
    /// restart waits: `restarting in 8.7 s (attempt 4)`.
    pub fn next_restart_in(&self, now: SystemTime) -> Option<Duration> {
        let at = humantime::parse_rfc3339(self.next_restart_at.as_deref()?).ok()?;
        Some(at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// RFC 3339 with milliseconds, UTC: the wall-clock spelling of the status' times.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// How [`SupervisorHandle::shutdown`] treats an owned server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    /// SIGTERM the owned process group, 10 s grace, SIGKILL, reap; remove `ollama.json`.
    Stop,
    /// Leave the owned server running and `ollama.json` in place for the next openclawd.
    Handover,
}

enum Command {
    Reconfigure(Box<SupervisorSettings>),
    CheckVersion,
    Shutdown(ShutdownKind, oneshot::Sender<()>),
}

/// Talks to the supervisor task. Cloning shares the same supervisor. Dropping every handle
/// detaches the supervisor like a [`ShutdownKind::Handover`].
#[derive(Clone)]
pub struct SupervisorHandle {
    pub status: watch::Receiver<OllamaStatus>,
    cmds: mpsc::UnboundedSender<Command>,
    in_flight: InFlight,
}

impl SupervisorHandle {
    /// The gauge of requests in flight to the supervised Ollama: hold an
    /// [`InFlight::enter`] guard for each, so a restart openclawd decides waits for them.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.clone()
    }

    /// The current status.
    pub fn current(&self) -> OllamaStatus {
        self.status.borrow().clone()
    }

    /// Applies new settings; the mode is re-decided when the address, `manage` or the state
    /// directory changed.
    pub fn reconfigure(&self, settings: SupervisorSettings) {
        let _ = self.cmds.send(Command::Reconfigure(Box::new(settings)));
    }

    /// Re-reads the installed binary's version now and acts on a mismatch.
    pub fn check_version_now(&self) {
        let _ = self.cmds.send(Command::CheckVersion);
    }

    /// Stops supervising and returns once done (at most ~15 s for a [`ShutdownKind::Stop`]).
    /// A restart under way is cut short: its drain ends, its stop completes.
    pub async fn shutdown(&self, kind: ShutdownKind) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.cmds.send(Command::Shutdown(kind, done_tx)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        BindMode, GatewayConfig, ModelEntry, ModelSelection, OwnSettings, ProviderConfig,
        ResolvedPaths,
    };
    use std::collections::BTreeMap;

    fn snapshot(primary: Option<&str>) -> Snapshot {
        Snapshot {
            generation: 1,
            loaded_at: std::time::SystemTime::now(),
            paths: ResolvedPaths {
                state_dir: "/home/u/.openclaw".into(),
                config_file: "/home/u/.openclaw/openclaw.json".into(),
                included_files: vec![],
                own_file: "/home/u/.openclaw/openclawd/openclawd.json".into(),
                auth_files: vec![],
                ollama_bin: "/usr/local/bin/ollama".into(),
            },
            providers: BTreeMap::new(),
            model: ModelSelection {
                primary: primary.map(String::from),
                fallbacks: vec![],
            },
            model_entries: BTreeMap::new(),
            agents: vec![],
            gateway: GatewayConfig {
                port: 18789,
                bind: BindMode::Loopback,
                bind_addr: "127.0.0.1".parse().unwrap(),
                token: None,
            },
            session_store: None,
            auth_profiles: BTreeMap::new(),
            env: BTreeMap::new(),
            ollama: OllamaAddress {
                base_url: "http://127.0.0.1:11434".into(),
                host: "127.0.0.1".into(),
                port: 11434,
                loopback: true,
            },
            discovery_opt_in: true,
            own: OwnSettings::default(),
            warnings: vec![],
        }
    }

    #[test]
    fn settings_from_a_snapshot_take_spec_defaults_and_preload_the_ollama_primary() {
        let s = SupervisorSettings::from_snapshot(&snapshot(Some("ollama/gpt-oss:20b")));
        assert_eq!(s.bin, PathBuf::from("/usr/local/bin/ollama"));
        assert_eq!(s.state_dir, PathBuf::from("/home/u/.openclaw"));
        assert!(s.manage);
        assert_eq!(s.start_timeout, Duration::from_secs(120));
        assert_eq!(s.probe_interval, Duration::from_secs(2));
        assert_eq!(s.adopt_grace, Duration::from_secs(5));
        assert_eq!(s.version_check_interval, Duration::from_secs(600));
        assert_eq!(
            s.preload,
            Some(Preload {
                model: "gpt-oss:20b".into(),
                keep_alive: "30m".into()
            })
        );
    }

    #[test]
    fn only_an_ollama_primary_is_preloaded_and_only_when_enabled() {
        let cloud = SupervisorSettings::from_snapshot(&snapshot(Some("anthropic/claude-x")));
        assert_eq!(cloud.preload, None);
        assert_eq!(
            SupervisorSettings::from_snapshot(&snapshot(None)).preload,
            None
        );

        let mut off = snapshot(Some("ollama/gpt-oss:20b"));
        off.own.ollama.preload = false;
        assert_eq!(SupervisorSettings::from_snapshot(&off).preload, None);

        // An alias, and a differently named provider speaking the Ollama api.
        let mut aliased = snapshot(Some("fast"));
        aliased.model_entries.insert(
            "local/qwen3-coder:30b".into(),
            ModelEntry {
                alias: Some("fast".into()),
                params: Default::default(),
            },
        );
        aliased.providers.insert(
            "local".into(),
            ProviderConfig {
                id: "local".into(),
                base_url: "http://127.0.0.1:11434".into(),
                api: Api::Ollama,
                api_key: None,
                headers: BTreeMap::new(),
                models_explicit: false,
                models: vec![],
                timeout: None,
            },
        );
        assert_eq!(
            SupervisorSettings::from_snapshot(&aliased)
                .preload
                .map(|p| p.model),
            Some("qwen3-coder:30b".into())
        );
    }

    #[test]
    fn status_serializes_with_the_status_keys() {
        let settings = SupervisorSettings::new(
            snapshot(None).ollama,
            "/usr/bin/ollama".into(),
            "/tmp".into(),
        );
        let mut st = OllamaStatus::initial(&settings);
        st.state = OllamaState::CrashLoop;
        st.management = Some(Management::Owned);
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["state"], "crash_loop");
        assert_eq!(v["management"], "owned");
        assert_eq!(v["base_url"], "http://127.0.0.1:11434");
        for key in [
            "pid",
            "server_version",
            "binary_version",
            "restarts",
            "last_restart_reason",
            "last_restart_at",
            "restart_attempt",
            "next_restart_at",
            "healthy_epoch",
            "version_mismatch",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        let back: OllamaStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, st);
    }

    #[test]
    fn the_wait_before_the_next_restart_is_read_from_the_wall_time() {
        let settings = SupervisorSettings::new(
            snapshot(None).ollama,
            "/usr/bin/ollama".into(),
            "/tmp".into(),
        );
        let mut st = OllamaStatus::initial(&settings);
        assert_eq!(st.next_restart_in(SystemTime::now()), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        st.next_restart_at = Some(rfc3339(now + Duration::from_millis(8_700)));
        assert_eq!(st.next_restart_in(now), Some(Duration::from_millis(8_700)));
        assert_eq!(
            st.next_restart_in(now + Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
    }
}
