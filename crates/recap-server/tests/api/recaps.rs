//! Streamed recaps: the Git Recap WebSocket protocol and project recaps over HTTP.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::helpers::{Engine, TestApp, spawn, spawn_with};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, path: &str) -> Socket {
    let url = format!("{}{}", app.address.replace("http://", "ws://"), path);
    tokio_tungstenite::connect_async(url).await.expect("the socket is accepted").0
}

/// Every frame until the socket closes or `</end>` arrives; returns (frames, close code).
async fn read_generation(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a frame within 10 s") {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                let end = frame["chunk"] == "</end>";
                frames.push(frame);
                if end {
                    // An error generation closes right after; a good one stays open.
                    if frames.iter().any(|f| f.get("error").is_some()) {
                        let close = match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap() {
                            Some(Ok(Message::Close(Some(frame)))) => Some(frame.code),
                            other => panic!("expected a close frame, got {other:?}"),
                        };
                        return (frames, close);
                    }
                    return (frames, None);
                }
            }
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            other => panic!("socket ended without </end>: {other:?}"),
        }
    }
}

/// A Git Recap session over the caller's own Recap projects (`provider: local`).
async fn local_session(app: &TestApp) -> String {
    let user = app.signed_in("ada@example.com").await;
    // `text/plain`, as the real frontend sends it.
    let response = app
        .client
        .post(app.url("/pat"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(json!({"pat": user.access_token, "provider": "local"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    body["session_id"].as_str().unwrap().to_owned()
}

const ACTIONS: &str = "2026-03-01:\n - [Commit] in api: fix: crash on empty input\n - [Commit] in web: feat: dark mode\n\n2026-03-02:\n - [Pull Request] in docs: Add install guide (PR #7)\n\n";

#[tokio::test]
async fn a_recap_streams_chunks_and_ends_with_the_marker() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let session = local_session(&app).await;
    let mut socket = connect(&app, &format!("/ws/{session}")).await;
    let started = Instant::now();
    socket.send(Message::Text(json!({"actions": ACTIONS, "n": 3}).to_string().into())).await.unwrap();
    let (frames, close) = read_generation(&mut socket).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(close, None, "the socket stays open after a good generation");
    assert!(frames.len() > 2, "streamed in several chunks: {frames:?}");
    assert_eq!(frames.iter().filter(|f| f["chunk"] == "</end>").count(), 1);
    let text: String = frames.iter().map(|f| f["chunk"].as_str().unwrap()).filter(|c| *c != "</end>").collect();
    for repo in ["api", "web", "docs"] {
        assert!(text.contains(repo), "the recap mentions {repo}: {text}");
    }
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with("- ")).count(), 3, "{text}");

    // The same socket serves another request; `n` may be a numeric string.
    socket.send(Message::Text(json!({"actions": ACTIONS, "n": "5"}).to_string().into())).await.unwrap();
    let (frames, _) = read_generation(&mut socket).await;
    assert_eq!(frames.last().unwrap()["chunk"], "</end>");
}

#[tokio::test]
async fn every_failure_is_an_error_frame_then_the_marker_then_a_close() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let session = local_session(&app).await;
    let cases: Vec<(String, Option<String>, &str)> = vec![
        ("/ws/not-a-session".into(), None, "Session not found"),
        (format!("/ws/{session}/poem"), None, "Invalid action type"),
        (format!("/ws/{session}"), Some("not json".into()), "Invalid JSON"),
        (
            format!("/ws/{session}"),
            Some(json!({"actions": "x", "n": 16}).to_string()),
            "Validation error: N must be <= 15",
        ),
        (
            format!("/ws/{session}"),
            Some(json!({"actions": "x", "n": 0}).to_string()),
            "Validation error: N must be >= 1",
        ),
        (
            format!("/ws/{session}/recap"),
            Some(json!({"n": 3}).to_string()),
            "Validation error: Message content is required",
        ),
    ];
    for (path, frame, expected) in cases {
        let mut socket = connect(&app, &path).await;
        if let Some(frame) = frame {
            socket.send(Message::Text(frame.into())).await.unwrap();
        }
        let (frames, close) = read_generation(&mut socket).await;
        assert_eq!(frames.len(), 2, "{path}: {frames:?}");
        assert_eq!(frames[0], json!({"error": expected, "chunk": ""}), "{path}");
        assert_eq!(frames[1], json!({"chunk": "</end>"}));
        assert_eq!(close, Some(CloseCode::Policy), "{path}");
    }
}

#[tokio::test]
async fn a_provider_failure_mid_stream_still_ends_the_generation() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};
    // An OpenAI-compatible server that starts streaming, then breaks off without [DONE].
    let llm = MockServer::start().await;
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Partial \"}}]}\n\n";
    Mock::given(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body),
        )
        .mount(&llm)
        .await;
    let base = format!("{}/v1", llm.uri());
    let Some(app) = spawn_with(
        Engine::Sqlite,
        move |s| {
            s.llm = recap_llm::LlmSettings::from_lookup(|k| match k {
                "LLM_BASE_URL" => Some(base.clone()),
                "LLM_API_KEY" => Some("sk-test-key".into()),
                "LLM_MODEL" => Some("test-model".into()),
                _ => None,
            })
            .unwrap()
        },
        Default::default(),
    )
    .await
    else {
        return;
    };
    let session = local_session(&app).await;
    let mut socket = connect(&app, &format!("/ws/{session}")).await;
    socket.send(Message::Text(json!({"actions": ACTIONS}).to_string().into())).await.unwrap();
    let (frames, close) = read_generation(&mut socket).await;
    assert_eq!(frames.first().unwrap()["chunk"], "Partial ");
    let error = &frames[frames.len() - 2];
    assert!(error["error"].as_str().unwrap().starts_with("LLM provider error:"), "{frames:?}");
    assert!(!error.to_string().contains("sk-test-key"));
    assert_eq!(frames.last().unwrap()["chunk"], "</end>");
    assert_eq!(close, Some(CloseCode::Error));
}

#[tokio::test]
async fn project_recaps_over_http() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let owner = app.signed_in("owner@example.com").await;
    let project: Value = app
        .post_as("/api/v1/projects", &owner.access_token)
        .json(&json!({"name": "P", "slug": "p"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = project["id"].as_str().unwrap();
    for name in ["engine", "portal"] {
        let repo: Value = app
            .post_as(&format!("/api/v1/projects/{pid}/repos"), &owner.access_token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let commit = json!({
            "sha": format!("{:040x}", name.len()), "author_name": "Ada", "author_email": "ada@example.com",
            "committer_name": "Ada", "committer_email": "ada@example.com",
            "commit_date": (time::OffsetDateTime::now_utc() - time::Duration::hours(3)).format(&time::format_description::well_known::Rfc3339).unwrap(),
            "message_title": format!("feat: {name} work"), "additions": 3, "deletions": 1, "files_changed": 1,
        });
        let r = app
            .post_as(
                &format!("/api/v1/sync/projects/{pid}/repos/{}/commits", repo["id"].as_str().unwrap()),
                &owner.access_token,
            )
            .json(&json!({"commits": [commit]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let json: Value = app
        .get_as(&format!("/api/v1/projects/{pid}/recap?stream=false&n=2"), &owner.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["commits"], 2);
    let recap = json["recap"].as_str().unwrap();
    assert!(recap.contains("engine") && recap.contains("portal"), "{recap}");

    let response = app.get_as(&format!("/api/v1/projects/{pid}/recap"), &owner.access_token).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = response.text().await.unwrap();
    let events: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(events.len() > 2);
    assert_eq!(events.last().unwrap()["chunk"], "</end>");

    let outsider = app.signed_in("out@example.com").await;
    let r = app.get_as(&format!("/api/v1/projects/{pid}/recap"), &outsider.access_token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = app.get_as(&format!("/api/v1/projects/{pid}/recap?n=99"), &owner.access_token).send().await.unwrap();
    assert_eq!(r.status(), 422);
}
