//! The installed binary's own version: `OLLAMA_HOST=127.0.0.1:1 <bin> --version` (SPEC §3).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// How long `ollama --version` may take before we give up on it.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Proxy variables removed from the version probe's environment (both cases; Go reads both).
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("cannot run `{bin} --version`: {source}; check that the Ollama binary exists and is executable")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("`{bin} --version` did not finish within {secs} s")]
    Timeout { bin: PathBuf, secs: u64 },
    #[error("`{bin} --version` printed no version (stdout: {stdout:?}, stderr: {stderr:?})")]
    Unparsable {
        bin: PathBuf,
        stdout: String,
        stderr: String,
    },
}

/// Reads the binary's version from `ollama --version` output. `Warning: client version is X`
/// names the binary when it differs from (or cannot reach) a server; otherwise
/// `ollama version is X` is the binary's version too.
pub fn parse_version_output(stdout: &str) -> Option<String> {
    let pick = |prefix: &str| {
        stdout.lines().find_map(|line| {
            let v = line.trim().strip_prefix(prefix)?.trim();
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    pick("Warning: client version is ").or_else(|| pick("ollama version is "))
}

/// Runs `<bin> --version` pointed at a closed port, without proxy variables, with a timeout.
pub async fn binary_version(bin: &Path) -> Result<String, VersionError> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version")
        .env("OLLAMA_HOST", "127.0.0.1:1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    let child = spawn_retrying_busy(&mut cmd)
        .await
        .map_err(|source| VersionError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    let out = tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| VersionError::Timeout {
            bin: bin.to_path_buf(),
            secs: VERSION_TIMEOUT.as_secs(),
        })?
        .map_err(|source| VersionError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_version_output(&stdout).ok_or_else(|| VersionError::Unparsable {
        bin: bin.to_path_buf(),
        stdout: stdout.trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Spawns, retrying briefly on ETXTBSY: a package manager (or an editor) may still hold the
/// freshly written file open for writing when its change is noticed.
async fn spawn_retrying_busy(cmd: &mut Command) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/ollama/cli/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn no_server_output_names_the_client_version() {
        assert_eq!(
            parse_version_output(&fixture("version-no-server.stdout.txt")).as_deref(),
            Some("0.32.15")
        );
    }

    #[test]
    fn mismatch_output_names_the_client_not_the_server() {
        assert_eq!(
            parse_version_output(&fixture("version-mismatch.stdout.txt")).as_deref(),
            Some("0.32.15")
        );
    }

    #[test]
    fn matching_output_names_the_one_version() {
        assert_eq!(
            parse_version_output(&fixture("version-match.stdout.txt")).as_deref(),
            Some("0.32.15")
        );
    }

    #[test]
    fn pre_release_and_dev_versions_are_kept_verbatim() {
        assert_eq!(
            parse_version_output("ollama version is 0.12.7-rc0\r\n").as_deref(),
            Some("0.12.7-rc0")
        );
        assert_eq!(
            parse_version_output(
                "Warning: could not connect to a running Ollama instance\nWarning: client version is 0.0.0\n"
            )
            .as_deref(),
            Some("0.0.0")
        );
    }

    #[test]
    fn other_output_has_no_version() {
        assert_eq!(parse_version_output(""), None);
        assert_eq!(
            parse_version_output("Error: unknown flag: --version\n"),
            None
        );
        assert_eq!(parse_version_output("ollama version is \n"), None);
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error_naming_it() {
        let err = binary_version(Path::new("/nonexistent/ollama"))
            .await
            .unwrap_err();
        assert!(matches!(err, VersionError::Spawn { .. }));
        assert!(err.to_string().contains("/nonexistent/ollama"));
    }
}
