//! The supervisor's HTTP client for Ollama: never through a proxy, and with
//! `Host: 127.0.0.1:<port>` for a local server (Ollama answers 403 to a foreign Host on a
//! loopback bind).

use std::time::Duration;

use reqwest::header::HOST;
use serde::Deserialize;

use crate::config::OllamaAddress;

/// Liveness probe timeout (SPEC §3).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
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
