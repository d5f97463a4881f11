//! TEMPORARY SHIM until wip-super merges.
use serde::Serialize;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OllamaState { #[default] Starting, Running, Restarting, Stopped, Unreachable, CrashLoop }
impl OllamaState { pub fn as_str(&self) -> &'static str { "x" } }
#[derive(Debug, Clone, Serialize, Default)]
pub struct OllamaStatus { pub state: OllamaState, pub base_url: String, pub restarts: u64, pub healthy_epoch: u64 }
