//! TEMPORARY SHIM until wip-house merges.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct HousekeepingStatus { pub sessions_cleared_total: u64, pub port_reclaims_total: u64, pub last_action: Option<String> }
