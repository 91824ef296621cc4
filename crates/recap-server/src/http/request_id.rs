//! `X-Request-ID`: echoed when the client sent a sane one, generated otherwise, on every response.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, available to handlers and middleware as a request extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// At most 128 visible ASCII characters; anything else is replaced so logs stay clean.
fn acceptable(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(bytes).into_owned())
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id =
        request.headers().get(&X_REQUEST_ID).and_then(acceptable).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let header = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    request.headers_mut().insert(X_REQUEST_ID.clone(), header.clone());
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    response
}
