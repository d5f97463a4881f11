//! The supervisor's HTTP client for Ollama: never through a proxy, and with
//! `Host: 127.0.0.1:<port>` for a local server (Ollama answers 403 to a foreign Host on a
//! loopback bind).

use std::time::Duration;

use reqwest::header::HOST;
use serde::{Deserialize, Serialize};

use crate::config::OllamaAddress;

/// Liveness probe timeout (SPEC §3).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// `/api/ps` answers from memory: as quick as a probe, a little slack.
pub const PS_TIMEOUT: Duration = Duration::from_secs(2);
/// A preload may cold-load a large model from disk.
pub const PRELOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// Nothing accepts connections at the address.
    #[error("connection refused at {0}")]
    Refused(String),
    /// Connected (or tried to) but no answer in time: starting, or hung.
    #[error("no answer from {0} within the timeout")]
    Timeout(String),
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// Answered, but not like Ollama's `{"version": "..."}`.
    #[error("{0} did not answer like Ollama: {1}")]
    NotOllama(String, String),
    #[error("request to {0} failed: {1}")]
    Other(String, String),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for Ollama: {0}")]
pub struct ClientBuildError(String);

#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    base_url: String,
    host_header: Option<String>,
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

/// A model Ollama holds in memory (`GET /api/ps`, what `ollama ps` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// `llama3.2:3b`.
    pub name: String,
    /// Bytes in memory, VRAM included.
    pub size: u64,
    /// Bytes of it in GPU memory (0 on CPU).
    #[serde(default)]
    pub size_vram: u64,
    /// When Ollama unloads it, as Ollama writes it (RFC 3339 with the server's UTC offset,
    /// nanoseconds; a year far ahead for `keep_alive: -1`).
    pub expires_at: String,
}

#[derive(Deserialize)]
struct PsBody {
    models: Vec<LoadedModel>,
}

impl OllamaClient {
    pub fn new(address: &OllamaAddress) -> Result<OllamaClient, ClientBuildError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(OllamaClient {
            http,
            base_url: address.base_url.clone(),
            // A remote server may sit behind a virtual host: keep its own Host there.
            host_header: address
                .loopback
                .then(|| format!("127.0.0.1:{}", address.port)),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{}", self.base_url, path));
        match &self.host_header {
            Some(h) => req.header(HOST, h),
            None => req,
        }
    }

    fn classify(&self, url: &str, e: reqwest::Error) -> ProbeError {
        if e.is_timeout() {
            ProbeError::Timeout(url.to_string())
        } else if e.is_connect() {
            ProbeError::Refused(url.to_string())
        } else {
            ProbeError::Other(url.to_string(), e.to_string())
        }
    }

    /// `GET /api/version` with a 1 s timeout; the server's version when it answers like Ollama.
    pub async fn version(&self) -> Result<String, ProbeError> {
        let url = format!("{}/api/version", self.base_url);
        let resp = self
            .request(reqwest::Method::GET, "/api/version")
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.classify(&url, e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.classify(&url, e))?;
        if !status.is_success() {
            return Err(ProbeError::Status {
                url,
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        serde_json::from_str::<VersionBody>(&body)
            .map(|v| v.version)
            .map_err(|_| ProbeError::NotOllama(url, body.chars().take(200).collect()))
    }

    /// `GET /api/ps`: the models loaded now.
    pub async fn loaded_models(&self) -> Result<Vec<LoadedModel>, ProbeError> {
        let url = format!("{}/api/ps", self.base_url);
        let resp = self
            .request(reqwest::Method::GET, "/api/ps")
            .timeout(PS_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.classify(&url, e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.classify(&url, e))?;
        if !status.is_success() {
            return Err(ProbeError::Status {
                url,
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        parse_ps(&body).map_err(|e| ProbeError::NotOllama(url, e.to_string()))
    }

    /// Loads `model` into memory (`POST /api/generate` without a prompt) so the first real
    /// request does not pay the cold load.
    pub async fn preload(&self, model: &str, keep_alive: &str) -> Result<(), ProbeError> {
        let url = format!("{}/api/generate", self.base_url);
        let resp = self
            .request(reqwest::Method::POST, "/api/generate")
            .timeout(PRELOAD_TIMEOUT)
            .json(&serde_json::json!({"model": model, "keep_alive": keep_alive}))
            .send()
            .await
            .map_err(|e| self.classify(&url, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(ProbeError::Status {
            url,
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        })
    }
}

/// The body of `/api/ps`.
fn parse_ps(body: &str) -> Result<Vec<LoadedModel>, serde_json::Error> {
    serde_json::from_str::<PsBody>(body).map(|b| b.models)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/ollama/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn loaded_models_read_ollamas_ps_answer() {
        let models = parse_ps(&fixture("ps.json")).unwrap();
        assert_eq!(
            models,
            vec![
                LoadedModel {
                    name: "llama3.2:3b".into(),
                    size: 3_722_340_352,
                    size_vram: 3_722_340_352,
                    expires_at: "2318-12-02T10:03:24.266869658-07:00".into(),
                },
                LoadedModel {
                    name: "gpt-oss:20b".into(),
                    size: 14_306_329_600,
                    size_vram: 14_306_329_600,
                    expires_at: "2026-08-22T10:21:07.412093851-07:00".into(),
                },
            ]
        );
    }

    #[test]
    fn nothing_loaded_is_an_empty_list() {
        assert_eq!(parse_ps(&fixture("ps-empty.json")).unwrap(), vec![]);
    }

    #[test]
    fn an_answer_without_models_is_an_error() {
        assert!(parse_ps(r#"{"error":"not found"}"#).is_err());
    }
}
