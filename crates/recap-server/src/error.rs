//! The one error type at the HTTP edge, and the JSON envelope every error response carries.
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` only attaches an [`ErrorReport`] to the
//! response; the envelope middleware ([`crate::http::envelope`]) renders the body, because only it
//! knows the request id. The same middleware turns error responses produced outside our handlers
//! (unknown route, wrong method, body limit, timeout, panic) into the same envelope.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;

/// One entry of a 422 request-validation `detail` list (FastAPI's shape).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: Vec<Value>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        FieldError { loc, msg: msg.into(), kind: kind.into() }
    }
}

/// What the envelope middleware needs to render an error body.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub field_errors: Option<Vec<FieldError>>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: handlers return `Result<_, ApiError>` everywhere, and a small error keeps every
    /// `Ok` small too.
    pub report: Box<ErrorReport>,
    /// Seconds for `Retry-After` (429 and some 503s).
    pub retry_after: Option<u64>,
    /// The cause of a 500, logged and never sent.
    source: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            report: Box::new(ErrorReport { code, message: message.into(), details: None, field_errors: None }),
            retry_after: None,
            source: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.report.details = Some(details);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AUTHORIZATION_ERROR", message)
    }
    /// A domain rule rejected otherwise well-formed input.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", message)
    }
    /// Request validation: `detail` becomes the list of field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", "Request validation failed");
        e.report.field_errors = Some(errors);
        e
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            format!("Too many requests. Retry in {retry_after} seconds."),
        )
        .with_details(serde_json::json!({ "retry_after": retry_after }));
        e.retry_after = Some(retry_after);
        e
    }
    /// An unexpected failure: the cause goes to the log, the client sees a generic message.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal server error");
        e.source = Some(cause.into());
        e
    }

    /// The envelope for a status produced outside our handlers (a bare 404, 405, 413, 408, ...).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("NOT_FOUND", "Not found".to_owned()),
            StatusCode::METHOD_NOT_ALLOWED => ("METHOD_NOT_ALLOWED", "Method not allowed".to_owned()),
            StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "Request body too large".to_owned()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type".to_owned()),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ("TIMEOUT", "Request timed out".to_owned()),
            StatusCode::UNAUTHORIZED => ("AUTHENTICATION_ERROR", "Not authenticated".to_owned()),
            StatusCode::FORBIDDEN => ("AUTHORIZATION_ERROR", "Forbidden".to_owned()),
            StatusCode::TOO_MANY_REQUESTS => ("RATE_LIMIT_EXCEEDED", "Too many requests".to_owned()),
            StatusCode::UNPROCESSABLE_ENTITY => ("VALIDATION_ERROR", "Unprocessable request".to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => ("SERVICE_UNAVAILABLE", "Service unavailable".to_owned()),
            s if s.is_server_error() => ("INTERNAL_ERROR", "Internal server error".to_owned()),
            s => ("BAD_REQUEST", s.canonical_reason().unwrap_or("Bad request").to_owned()),
        };
        Self::new(status, code, message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.source {
            // Logged inside the request span, so the line carries the request id.
            tracing::error!(error = format!("{cause:#}"), "request failed with an internal error");
        }
        let mut response = self.status.into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(*self.report);
        response
    }
}

/// The envelope as documented in ARCHITECTURE.md ("HTTP conventions").
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// The message, or on request validation the list of field errors.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Always `"error"`.
    pub status: &'static str,
    /// The HTTP status code.
    pub code: u16,
    pub error: ErrorBody,
    pub request_id: String,
    pub timestamp: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ErrorEnvelope {
    pub fn new(status: StatusCode, report: &ErrorReport, request_id: &str) -> Self {
        let detail = match &report.field_errors {
            Some(list) => serde_json::to_value(list).unwrap_or(Value::Null),
            None => Value::String(report.message.clone()),
        };
        ErrorEnvelope {
            detail,
            status: "error",
            code: status.as_u16(),
            error: ErrorBody {
                code: report.code.to_owned(),
                message: report.message.clone(),
                details: report.details.clone(),
            },
            request_id: request_id.to_owned(),
            timestamp: crate::time::now_rfc3339(),
        }
    }
}
