//! The one gateway error type. Every failure a client sees renders OpenAI's error body
//! `{"error":{"message","type","param","code"}}` with the right status.

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

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let GatewayError::Upstream {
            content_type, body, ..
        } = self
        {
            let mut resp = (status, body).into_response();
            if let Some(ct) = content_type {
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, ct);
            }
            return resp;
        }
        let (kind, code) = self.kind();
        let param = match &self {
            GatewayError::BadRequest { param, .. } => param.as_deref(),
            _ => None,
        };
        let body = super::wire::openai::error_body(&self.to_string(), kind, param, code);
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(status, StatusCode::UNAUTHORIZED) {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
