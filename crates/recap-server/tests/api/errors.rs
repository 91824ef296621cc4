//! Every error path answers the envelope, with the right status, and leaks nothing.

use std::time::Duration;

use axum::{
    Router,
    routing::{get, post},
};
use recap_server::{
    http::extract::{Json, Path, Query},
    state::AppState,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    engine_tests,
    helpers::{Engine, assert_envelope, spawn, spawn_with},
};

#[derive(Deserialize)]
struct Commit {
    #[allow(dead_code)]
    sha: String,
    #[allow(dead_code)]
    additions: u32,
}

#[derive(Deserialize)]
struct Batch {
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Paging {
    #[allow(dead_code)]
    page: u32,
}

/// Routes that fail on purpose, mounted behind the real platform layer.
fn failing_routes() -> Router<AppState> {
    Router::new()
        .route("/test/echo", post(|Json(batch): Json<Batch>| async move { axum::Json(batch.commits.len()) }))
        .route("/test/query", get(|Query(_): Query<Paging>| async { "ok" }))
        .route("/test/things/{id}", get(|Path(id): Path<uuid::Uuid>| async move { id.to_string() }))
        .route(
            "/test/panic",
            get(|| async {
                if true {
                    panic!("connection to postgres://app:hunter2@db failed");
                }
                "unreachable"
            }),
        )
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

async fn app_with_failing_routes(engine: Engine) -> Option<crate::helpers::TestApp> {
    spawn_with(
        engine,
        |s| {
            s.max_body_bytes = 1024;
            s.request_timeout = Duration::from_secs(1);
        },
        failing_routes(),
    )
    .await
}

engine_tests!(unknown_route_and_wrong_method, malformed_and_mistyped_bodies, panics_and_timeouts);

async fn unknown_route_and_wrong_method(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let body = assert_envelope(app.get("/api/v1/nothing-here").await, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Not found");
    assert_eq!(body["error"]["details"], Value::Null);

    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    let body = assert_envelope(response, 405, "METHOD_NOT_ALLOWED").await;
    assert_eq!(body["detail"], "Method not allowed");
    assert!(allow.unwrap_or_default().contains("GET"));
}

async fn malformed_and_mistyped_bodies(engine: Engine) {
    let Some(app) = app_with_failing_routes(engine).await else { return };

    let ok = app.post_raw("/test/echo", r#"{"commits": [{"sha": "a", "additions": 1}]}"#).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1");

    let body = assert_envelope(app.post_raw("/test/echo", "{\"commits\": [").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    assert_eq!(body["detail"][0]["loc"][0], "body");
    assert!(body["detail"][0]["loc"][1].is_u64(), "{body}");

    let body = assert_envelope(
        app.post_raw("/test/echo", r#"{"commits": [{"sha": "a", "additions": 1}, {"sha": "b", "additions": "many"}]}"#)
            .await,
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["detail"][0]["loc"], serde_json::json!(["body", "commits", 1, "additions"]));
    assert_eq!(body["detail"][0]["type"], "type_error");

    let body =
        assert_envelope(app.post_raw("/test/echo", r#"{"commits": [{"sha": "a"}]}"#).await, 422, "VALIDATION_ERROR")
            .await;
    assert_eq!(body["detail"][0]["loc"], serde_json::json!(["body", "commits", 0, "additions"]));
    assert_eq!(body["detail"][0]["msg"], "Field required");

    let body = assert_envelope(app.post_raw("/test/echo", "").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "missing");

    let body = assert_envelope(app.get("/test/query?page=abc").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], serde_json::json!(["query", "page"]));

    // A malformed id is a resource that does not exist.
    assert_envelope(app.get("/test/things/not-a-uuid").await, 404, "NOT_FOUND").await;
    let id = uuid::Uuid::new_v4();
    assert_eq!(app.get(&format!("/test/things/{id}")).await.text().await.unwrap(), id.to_string());

    // Over the body limit, with a declared length and with a streamed (chunked) body.
    let big = format!(r#"{{"commits": [], "pad": "{}"}}"#, "x".repeat(4096));
    let body = assert_envelope(app.post_raw("/test/echo", big.clone()).await, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(body["detail"], "Request body too large");
    let stream = futures::stream::iter(
        big.into_bytes().chunks(512).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let response = app.post_raw("/test/echo", reqwest::Body::wrap_stream(stream)).await;
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE").await;
}

async fn panics_and_timeouts(engine: Engine) {
    let Some(app) = app_with_failing_routes(engine).await else { return };
    let response = app.get("/test/panic").await;
    let body = assert_envelope(response, 500, "INTERNAL_ERROR").await;
    assert_eq!(body["detail"], "Internal server error");
    assert!(!body.to_string().contains("hunter2"), "the cause must stay in the log: {body}");
    // The server survives the panic.
    assert_eq!(app.get("/health").await.status(), 200);

    let started = std::time::Instant::now();
    let body = assert_envelope(app.get("/test/slow").await, 504, "TIMEOUT").await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(body["detail"], "Request timed out");
}

#[tokio::test]
async fn request_ids_are_echoed_generated_or_replaced() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let response = app.client.get(app.url("/health")).header("x-request-id", "trace-abc.123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");

    let response = app.get("/api/v1/nope").await;
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], generated.as_str());

    // Too long (or not visible ASCII): replaced, so logs cannot be stuffed through the header.
    let long = "a".repeat(129);
    let response = app.client.get(app.url("/health")).header("x-request-id", &long).send().await.unwrap();
    let replaced = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, long);
    assert!(uuid::Uuid::parse_str(replaced).is_ok());
    let response = app.client.get(app.url("/health")).header("x-request-id", "has space").send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"], "has space");
}
