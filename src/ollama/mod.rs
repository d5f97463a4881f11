//! TEMPORARY SHIM until wip-super merges.
use serde::Serialize;
use tokio::sync::watch;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OllamaState {
    #[default]
    Starting,
    Running,
    Restarting,
    Stopped,
    Unreachable,
    CrashLoop,
}
impl OllamaState {
    pub fn as_str(&self) -> &'static str {
        "x"
    }
}
#[derive(Debug, Clone, Serialize, Default)]
pub struct OllamaStatus {
    pub state: OllamaState,
    pub base_url: String,
    pub restarts: u64,
    pub healthy_epoch: u64,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    Stop,
    Handover,
}
pub struct SupervisorSettings;
impl SupervisorSettings {
    pub fn from_snapshot(_: &crate::config::Snapshot) -> Self {
        SupervisorSettings
    }
}
#[derive(Clone)]
pub struct SupervisorHandle {
    pub status: watch::Receiver<OllamaStatus>,
}
impl SupervisorHandle {
    pub fn reconfigure(&self, _: SupervisorSettings) {}
    pub async fn shutdown(&self, _: ShutdownKind) {}
}
pub fn spawn(_: SupervisorSettings) -> SupervisorHandle {
    let (_t, r) = watch::channel(OllamaStatus::default());
    SupervisorHandle { status: r }
}
