use std::time::{Duration, Instant};

use futures::StreamExt;
use recap_llm::{Anthropic, ChatRequest, LlmError, LlmProvider, Message};
use tokio_util::sync::CancellationToken;

use crate::fake::{FakeServer, Reply, TEST_KEY, Tail, cuts_inside, drain, endpoint, split_at};

fn request() -> ChatRequest {
    ChatRequest {
        system: "You are a test.".into(),
        messages: vec![Message::user("Say hello")],
        max_tokens: None,
        temperature: Some(1.7),
    }
}

fn event(kind: &str, data: &str) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

fn text_delta(text: &str) -> String {
    event(
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
            serde_json::Value::String(text.into())
        ),
    )
}

/// A real-shaped Messages stream, with a thinking block that must not be forwarded.
fn anthropic_script() -> String {
    [
        event("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"test-model","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#),
        event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#),
        event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"secret reasoning"}}"#),
        event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        event("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#),
        event("ping", r#"{"type": "ping"}"#),
        text_delta("Hello"),
        text_delta(", wörld"),
        text_delta(" 👋"),
        event("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#),
        event("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .concat()
}

#[tokio::test]
async fn anthropic_streams_text_deltas_split_across_reads() {
    let script = anthropic_script().replace('\n', "\r\n");
    let cuts = cuts_inside(
        &script,
        &[
            "event: content_block_delta",
            "text_delta",
            "ello",
            "\r\n\r\nevent: content_block_stop",
            "ö",
            "👋",
            "message_stop\"}",
        ],
    );
    let server = FakeServer::start(Reply::Sse {
        pieces: split_at(script.as_bytes(), &cuts),
        gap: Duration::from_millis(15),
        tail: Tail::End,
    })
    .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let (chunks, error) = drain(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(chunks, vec!["Hello", ", wörld", " 👋"]);

    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(r.headers["x-api-key"], TEST_KEY);
    assert_eq!(r.headers["anthropic-version"], "2023-06-01");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["system"], "You are a test.");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["max_tokens"], 256);
    assert_eq!(r.body["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(r.body["messages"], serde_json::json!([{"role": "user", "content": "Say hello"}]));
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_is_a_provider_error() {
    let script = [
        event("message_start", r#"{"type":"message_start","message":{"id":"msg_1","content":[]}}"#),
        text_delta("Hel"),
        event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
    ]
    .concat();
    let server =
        FakeServer::start(Reply::Sse { pieces: vec![script.into_bytes()], gap: Duration::ZERO, tail: Tail::Hang })
            .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let (chunks, error) = drain(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
    assert_eq!(chunks, vec!["Hel"]);
    let error = error.unwrap();
    assert_eq!(error, LlmError::Provider { status: 529, message: "Overloaded".into() });
    assert_eq!(error.http_status(), 503);
}

#[tokio::test]
async fn anthropic_401_maps_the_error_body() {
    let server = FakeServer::start(Reply::Status {
        status: 401,
        content_type: "application/json",
        body: r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#.into(),
    })
    .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert_eq!(error, LlmError::Provider { status: 401, message: "invalid x-api-key".into() });
}

#[tokio::test]
async fn anthropic_500_with_an_html_body_uses_the_status_reason() {
    let server = FakeServer::start(Reply::Status {
        status: 500,
        content_type: "text/html",
        body: "<html><body>Internal error</body></html>".into(),
    })
    .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert_eq!(error, LlmError::Provider { status: 500, message: "Internal Server Error".into() });
}

#[tokio::test]
async fn anthropic_stall_mid_stream_is_a_timeout() {
    let script =
        [event("message_start", r#"{"type":"message_start","message":{"id":"m"}}"#), text_delta("first")].concat();
    let server =
        FakeServer::start(Reply::Sse { pieces: vec![script.into_bytes()], gap: Duration::ZERO, tail: Tail::Hang })
            .await;
    let mut config = endpoint("anthropic", server.url.clone());
    config.timeout = Duration::from_millis(300);
    let provider = Anthropic::new(config).unwrap();
    let started = Instant::now();
    let (chunks, error) = drain(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
    assert_eq!(chunks, vec!["first"]);
    assert_eq!(error, Some(LlmError::Timeout { after: Duration::from_millis(300) }));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn anthropic_stall_before_headers_is_a_timeout() {
    let server = FakeServer::start(Reply::Stall).await;
    let mut config = endpoint("anthropic", server.url.clone());
    config.timeout = Duration::from_millis(300);
    let provider = Anthropic::new(config).unwrap();
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn anthropic_cancel_mid_stream_ends_with_cancelled_and_drops_the_connection() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![
            event("message_start", r#"{"type":"message_start","message":{"id":"m"}}"#).into_bytes(),
            text_delta("one").into_bytes(),
        ],
        gap: Duration::from_millis(20),
        tail: Tail::Repeat(text_delta("more").into_bytes()),
    })
    .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let cancel = CancellationToken::new();
    let mut stream = provider.stream(request(), cancel.clone()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "one");
    assert_eq!(stream.next().await.unwrap().unwrap(), "more");
    cancel.cancel();
    assert_eq!(stream.next().await.unwrap(), Err(LlmError::Cancelled));
    assert!(stream.next().await.is_none());
    tokio::time::timeout(Duration::from_secs(5), server.client_went_away())
        .await
        .expect("the connection to the provider should be closed after cancellation");
}

#[tokio::test]
async fn anthropic_stream_without_message_stop_is_a_bad_response() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![text_delta("cut").into_bytes()],
        gap: Duration::ZERO,
        tail: Tail::End,
    })
    .await;
    let provider = Anthropic::new(endpoint("anthropic", server.url.clone())).unwrap();
    let (chunks, error) = drain(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
    assert_eq!(chunks, vec!["cut"]);
    assert!(matches!(error, Some(LlmError::BadResponse { .. })), "{error:?}");
}
