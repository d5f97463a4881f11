//! `doctor`.
use std::process::ExitCode;
use super::GlobalArgs;
pub fn doctor(_global: &GlobalArgs, _json: bool) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
