//! The push route's retry rules against a fake server: 429/5xx are retried (honouring
//! Retry-After), 400/401/404 are not.

use std::time::{Duration, Instant};

use recap_client::{Api, ApiError, RetryPolicy, api::CommitPayload};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

const PUSH: &str = "/api/v1/sync/projects/p/repos/r/commits";

fn commit() -> CommitPayload {
    CommitPayload {
        sha: "a".repeat(40),
        author_name: "A".into(),
        author_email: "a@x".into(),
        committer_name: "A".into(),
        committer_email: "a@x".into(),
        commit_date: "2026-01-02T12:00:00+02:00".into(),
        message_title: "t".into(),
        message_body: None,
        additions: 1,
        deletions: 0,
        files_changed: 1,
        is_merge: false,
        parent_count: 1,
    }
}

fn api(server: &MockServer, attempts: u32) -> Api {
    let retry = RetryPolicy {
        attempts,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        cap_retry_after: Duration::from_secs(5),
    };
    Api::new(&server.uri(), Some("tgl_key".into()), retry).unwrap()
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "total": 1, "inserted": 1, "skipped": 0, "errors": 0, "last_ingested_sha": "a".repeat(40), "details": []
    }))
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(PUSH)).respond_with(created()).expect(1).mount(&server).await;
    let started = Instant::now();
    let result = api(&server, 3).push("p", "r", &[commit()]).await.unwrap();
    assert_eq!(result.inserted, 1);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After: 1 was honoured");
    let sent: serde_json::Value = server.received_requests().await.unwrap()[1].body_json().unwrap();
    assert_eq!(sent["commits"][0]["commit_date"], "2026-01-02T12:00:00+02:00");
    assert_eq!(sent["commits"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_up_to_the_attempt_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(PUSH)).respond_with(ResponseTemplate::new(500)).expect(3).mount(&server).await;
    let err = api(&server, 3).push("p", "r", &[commit()]).await.unwrap_err();
    assert!(matches!(err, ApiError::Exhausted { attempts: 3, .. }), "{err}");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(PUSH)).respond_with(created()).expect(1).mount(&server).await;
    assert_eq!(api(&server, 3).push("p", "r", &[commit()]).await.unwrap().inserted, 1);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for status in [400u16, 401, 403, 404, 422] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(PUSH))
            .respond_with(ResponseTemplate::new(status).set_body_json(serde_json::json!({"detail": "no"})))
            .expect(1)
            .mount(&server)
            .await;
        let err = api(&server, 5).push("p", "r", &[commit()]).await.unwrap_err();
        match status {
            401 => assert!(matches!(err, ApiError::Unauthorized), "{err}"),
            404 => assert!(matches!(err, ApiError::NotFound(_)), "{err}"),
            _ => assert!(matches!(err, ApiError::Refused { status: s, .. } if s == status), "{err}"),
        }
    }
}

#[tokio::test]
async fn a_200_is_not_success_for_the_push_route() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(PUSH)).respond_with(ResponseTemplate::new(200)).expect(1).mount(&server).await;
    let err = api(&server, 3).push("p", "r", &[commit()]).await.unwrap_err();
    assert!(matches!(err, ApiError::Refused { status: 200, .. }), "{err}");
}

#[tokio::test]
async fn network_errors_are_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let retry = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(20),
        cap_retry_after: Duration::from_secs(1),
    };
    let api = Api::new(&format!("http://{address}"), None, retry).unwrap();
    let err = api.push("p", "r", &[commit()]).await.unwrap_err();
    assert!(matches!(err, ApiError::Exhausted { attempts: 3, ref last } if last.contains("network")), "{err}");
}
