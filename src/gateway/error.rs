//! The one gateway error type, rendered in the error shape of the API the client called
//! ([`Dialect`]): OpenAI's `{"error":{"message","type","param","code"}}` (chat completions,
//! Responses) or Anthropic's `{"type":"error","error":{"type","message"},"request_id"}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is larger than the limit of {limit} bytes; send a smaller request or raise gateway.maxBodyBytes in openclawd.json")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {} s; send the whole body without pausing", limit.as_secs())]
    BodyTimeout { limit: std::time::Duration },
    #[error("{0}")]
    AllAttemptsFailed(String),
    #[error("{0}")]
    NotReady(String),
    /// An upstream answered a client error (e.g. 400 for a malformed request) that no other
    /// model would answer differently: relayed as is.
    #[error("upstream answered {status}")]
    Upstream {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        GatewayError::BadRequest {
            message: message.into(),
            param: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::AllAttemptsFailed(_) => StatusCode::BAD_GATEWAY,
            GatewayError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream { status, .. } => *status,
        }
    }

    fn kind(&self) -> (&'static str, Option<&'static str>) {
        match self {
            GatewayError::BadRequest { .. } => ("invalid_request_error", None),
            GatewayError::Unauthorized(_) => ("authentication_error", Some("invalid_api_key")),
            GatewayError::NotFound(_) => ("not_found_error", Some("model_not_found")),
            GatewayError::MethodNotAllowed(_) => ("invalid_request_error", None),
            GatewayError::PayloadTooLarge { .. } => {
                ("invalid_request_error", Some("request_too_large"))
            }
            GatewayError::BodyTimeout { .. } => ("invalid_request_error", Some("request_timeout")),
            GatewayError::AllAttemptsFailed(_) => ("api_error", Some("all_attempts_failed")),
            GatewayError::NotReady(_) => ("api_error", Some("not_ready")),
            GatewayError::Upstream { .. } => ("api_error", None),
        }
    }
}

/// The inbound API a client speaks, which decides how errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI chat completions and everything else (`/v1/models`, unknown paths).
    OpenAi,
    /// Anthropic Messages (`/v1/messages…`).
    Anthropic,
    /// OpenAI Responses (`/v1/responses`): OpenAI's shape, 2-space indented as OpenAI sends it.
    Responses,
}

impl Dialect {
    /// The dialect of a request path (the query is not part of it).
    pub fn for_path(path: &str) -> Dialect {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Dialect::Anthropic
        } else if path == "/v1/responses" || path.starts_with("/v1/responses/") {
            Dialect::Responses
        } else {
            Dialect::OpenAi
        }
    }
}

/// Anthropic's `error.type` for an HTTP status (docs.claude.com/en/api/errors).
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn anthropic_error_body(kind: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message},
            "request_id": format!("req_{}", super::wire::openai::new_call_id().trim_start_matches("call_"))})
        .to_string(),
    )
}

/// `error.message` of an OpenAI-shaped error body, else the body as text.
fn relayed_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object { message: String },
        Text(String),
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body {
            error: Inner::Object { message } | Inner::Text(message),
        }) => message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

impl GatewayError {
    /// This error as `dialect`'s error response.
    pub fn render(self, dialect: Dialect) -> Response {
        let status = self.status();
        let mut resp = match (dialect, self) {
            (
                Dialect::OpenAi,
                GatewayError::Upstream {
                    content_type, body, ..
                },
            ) => {
                let mut resp = (status, body).into_response();
                if let Some(ct) = content_type {
                    resp.headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, ct);
                }
                return resp;
            }
            (Dialect::Anthropic, e) => {
                let message = match &e {
                    GatewayError::Upstream { body, .. } => relayed_message(body),
                    other => other.to_string(),
                };
                let body = anthropic_error_body(anthropic_error_type(status), &message);
                (status, body).into_response()
            }
            (dialect, e) => {
                let (kind, code, message) = match &e {
                    GatewayError::Upstream { body, .. } => (
                        super::wire::openai::error_type_for_status(status.as_u16()),
                        None,
                        relayed_message(body),
                    ),
                    other => {
                        let (kind, code) = other.kind();
                        (kind, code, other.to_string())
                    }
                };
                let param = match &e {
                    GatewayError::BadRequest { param, .. } => param.as_deref(),
                    _ => None,
                };
                let body = if dialect == Dialect::Responses {
                    let value = super::wire::openai::error_value(&message, kind, param, code);
                    Bytes::from(serde_json::to_string_pretty(&value).unwrap_or_default())
                } else {
                    super::wire::openai::error_body(&message, kind, param, code)
                };
                (status, body).into_response()
            }
        };
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(status, StatusCode::UNAUTHORIZED) && dialect != Dialect::Anthropic {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.render(Dialect::OpenAi)
    }
}

impl From<super::wire::WireError> for GatewayError {
    fn from(e: super::wire::WireError) -> GatewayError {
        match e {
            super::wire::WireError::BadRequest { message, param } => {
                GatewayError::BadRequest { message, param }
            }
        }
    }
}
