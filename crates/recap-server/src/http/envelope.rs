//! Renders every error response as the JSON envelope, whoever produced it.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::request_id::RequestId;
use crate::error::{ApiError, ErrorEnvelope, ErrorReport};

pub async fn error_envelope(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let report = match response.extensions().get::<ErrorReport>() {
        Some(report) => report.clone(),
        // A handler that deliberately answered JSON (e.g. readiness' 503 report) keeps its body.
        None if is_json(&response) => return response,
        None => *ApiError::from_status(status).report,
    };
    render(response, status, &report, &request_id)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

fn render(response: Response, status: StatusCode, report: &ErrorReport, request_id: &str) -> Response {
    let envelope = ErrorEnvelope::new(status, report, request_id);
    let body = serde_json::to_vec(&envelope).expect("the envelope serialises");
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}

/// `CatchPanicLayer`'s handler: the panic message goes to the log (inside the request span, so with
/// the request id); the client gets the generic 500 envelope.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("<non-string panic payload>");
    tracing::error!(panic = message, "handler panicked");
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(*ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR).report);
    response
}
