use std::time::{Duration, Instant};

use futures::StreamExt;
use recap_llm::{ChatRequest, LlmError, LlmProvider, Message, OpenAiCompatible};
use tokio_util::sync::CancellationToken;

use crate::fake::{FakeServer, Reply, TEST_KEY, Tail, cuts_inside, drain, endpoint, split_at};

fn request() -> ChatRequest {
    ChatRequest {
        system: "You are a test.".into(),
        messages: vec![Message::user("Say hello")],
        max_tokens: None,
        temperature: None,
    }
}

fn delta(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::Value::String(content.to_owned())
    )
}

/// A real-shaped OpenAI stream: a role-only first delta, content deltas (one multi-byte), a keep-alive
/// comment, CRLF line ends in one event, a finish chunk, a usage chunk with no choices, `[DONE]`.
fn openai_script() -> String {
    let mut s = String::new();
    s.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    s.push_str(&delta("Hello"));
    s.push_str(": keep-alive\n\n");
    s.push_str(&delta(", wörld").replace('\n', "\r\n"));
    s.push_str(&delta(" 👋"));
    s.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s
}

async fn provider_for(server: &FakeServer) -> OpenAiCompatible {
    OpenAiCompatible::new(endpoint("openai", format!("{}/v1", server.url))).unwrap()
}

#[tokio::test]
async fn openai_streams_deltas_split_across_reads() {
    let script = openai_script();
    // Cut inside "data:", inside the JSON, between "\r" and "\n", inside "ö" and "👋", inside "[DONE]".
    let cuts = cuts_inside(&script, &["data: {\"id\":\"c1\",\"object\"", "ello", "\r\n\r\n", "ö", "👋", "[DONE]"]);
    let pieces = split_at(script.as_bytes(), &cuts);
    assert!(pieces.len() >= 6);
    let server = FakeServer::start(Reply::Sse { pieces, gap: Duration::from_millis(15), tail: Tail::End }).await;
    let provider = provider_for(&server).await;

    let stream = provider.stream(request(), CancellationToken::new()).await.unwrap();
    let (chunks, error) = drain(stream).await;
    assert_eq!(error, None);
    assert_eq!(chunks, vec!["Hello", ", wörld", " 👋"]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(r.headers["authorization"], format!("Bearer {TEST_KEY}").as_str());
    assert_eq!(r.headers["accept"], "text/event-stream");
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["max_tokens"], 256);
    assert!((r.body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(
        r.body["messages"],
        serde_json::json!([{"role": "system", "content": "You are a test."}, {"role": "user", "content": "Say hello"}])
    );
}

#[tokio::test]
async fn openai_request_overrides_and_no_key_means_no_authorization_header() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![format!("{}data: [DONE]\n\n", delta("ok")).into_bytes()],
        gap: Duration::ZERO,
        tail: Tail::End,
    })
    .await;
    let mut config = endpoint("ollama", format!("{}/v1", server.url));
    config.api_key = None;
    let provider = OpenAiCompatible::new(config).unwrap();
    let mut req = request();
    req.system.clear();
    req.max_tokens = Some(42);
    req.temperature = Some(1.5);
    let text = recap_llm::complete(&provider, req, CancellationToken::new()).await.unwrap();
    assert_eq!(text, "ok");
    let r = &server.requests()[0];
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.body["max_tokens"], 42);
    assert_eq!(r.body["temperature"], 1.5);
    assert_eq!(r.body["messages"], serde_json::json!([{"role": "user", "content": "Say hello"}]));
}

#[tokio::test]
async fn openai_401_maps_the_json_error_body_without_the_key() {
    let body = serde_json::json!({"error": {
        "message": format!("Incorrect API key provided: {TEST_KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
        "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
    .to_string();
    let server = FakeServer::start(Reply::Status { status: 401, content_type: "application/json", body }).await;
    let provider = provider_for(&server).await;
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    let LlmError::Provider { status, message } = &error else { panic!("{error:?}") };
    assert_eq!(*status, 401);
    assert!(message.starts_with("Incorrect API key provided: [redacted]"), "{message}");
    assert!(!message.contains(TEST_KEY) && !message.contains("sk-test"), "{message}");
    assert_eq!(error.http_status(), 502);
}

#[tokio::test]
async fn openai_500_with_a_plain_text_body_and_a_long_message_is_truncated() {
    let body = format!("upstream exploded: {}", "x".repeat(2000));
    let server = FakeServer::start(Reply::Status { status: 500, content_type: "text/plain", body }).await;
    let provider = provider_for(&server).await;
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    let LlmError::Provider { status, message } = &error else { panic!("{error:?}") };
    assert_eq!(*status, 500);
    assert!(message.starts_with("upstream exploded: xxx"));
    assert!(message.chars().count() <= 301, "{}", message.len());
}

#[tokio::test]
async fn openai_string_error_bodies_and_rate_limits() {
    let server = FakeServer::start(Reply::Status {
        status: 404,
        content_type: "application/json",
        body: r#"{"error":"model \"llama9\" not found, try pulling it first"}"#.into(),
    })
    .await;
    let provider = provider_for(&server).await;
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert_eq!(
        error,
        LlmError::Provider { status: 404, message: "model \"llama9\" not found, try pulling it first".into() }
    );

    let server = FakeServer::start(Reply::Status {
        status: 429,
        content_type: "application/json",
        body: r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#.into(),
    })
    .await;
    let provider = provider_for(&server).await;
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert_eq!(error, LlmError::Provider { status: 429, message: "Rate limit reached".into() });
    assert_eq!(error.http_status(), 503);
}

#[tokio::test]
async fn openai_stall_before_headers_is_a_timeout() {
    let server = FakeServer::start(Reply::Stall).await;
    let mut config = endpoint("openai", format!("{}/v1", server.url));
    config.timeout = Duration::from_millis(300);
    let provider = OpenAiCompatible::new(config).unwrap();
    let started = Instant::now();
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert_eq!(error, LlmError::Timeout { after: Duration::from_millis(300) });
    assert_eq!(error.http_status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn openai_stall_mid_stream_is_a_timeout() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![delta("first").into_bytes()],
        gap: Duration::ZERO,
        tail: Tail::Hang,
    })
    .await;
    let mut config = endpoint("openai", format!("{}/v1", server.url));
    config.timeout = Duration::from_millis(300);
    let provider = OpenAiCompatible::new(config).unwrap();
    let started = Instant::now();
    let stream = provider.stream(request(), CancellationToken::new()).await.unwrap();
    let (chunks, error) = drain(stream).await;
    assert_eq!(chunks, vec!["first"]);
    assert!(matches!(error, Some(LlmError::Timeout { .. })), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn openai_cancel_mid_stream_ends_with_cancelled_and_drops_the_connection() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![delta("one").into_bytes()],
        gap: Duration::from_millis(20),
        tail: Tail::Repeat(delta("more").into_bytes()),
    })
    .await;
    let provider = provider_for(&server).await;
    let cancel = CancellationToken::new();
    let mut stream = provider.stream(request(), cancel.clone()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "one");
    assert_eq!(stream.next().await.unwrap().unwrap(), "more");
    cancel.cancel();
    assert_eq!(stream.next().await.unwrap(), Err(LlmError::Cancelled));
    assert!(stream.next().await.is_none());
    // The body was dropped with the stream's inner state: the server notices the client is gone.
    tokio::time::timeout(Duration::from_secs(5), server.client_went_away())
        .await
        .expect("the connection to the provider should be closed after cancellation");
}

#[tokio::test]
async fn openai_cancel_while_waiting_for_headers() {
    let server = FakeServer::start(Reply::Stall).await;
    let provider = provider_for(&server).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let error = provider.stream(request(), cancel).await.err().unwrap();
    assert_eq!(error, LlmError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn openai_connection_refused_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let provider = OpenAiCompatible::new(endpoint("openai", url)).unwrap();
    let error = provider.stream(request(), CancellationToken::new()).await.err().unwrap();
    assert!(matches!(error, LlmError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.http_status(), 503);
    assert!(!error.to_string().contains("127.0.0.1"), "no URL in the message: {error}");
}

#[tokio::test]
async fn openai_stream_cut_short_is_a_bad_response() {
    let server = FakeServer::start(Reply::Sse {
        pieces: vec![delta("partial").into_bytes()],
        gap: Duration::ZERO,
        tail: Tail::End,
    })
    .await;
    let provider = provider_for(&server).await;
    let stream = provider.stream(request(), CancellationToken::new()).await.unwrap();
    let (chunks, error) = drain(stream).await;
    assert_eq!(chunks, vec!["partial"]);
    assert!(matches!(error, Some(LlmError::BadResponse { .. })), "{error:?}");
    assert_eq!(error.unwrap().http_status(), 502);
}

#[tokio::test]
async fn openai_error_event_mid_stream_is_a_provider_error() {
    let script = format!(
        "{}data: {{\"error\":{{\"code\":502,\"message\":\"Upstream provider went away\"}}}}\n\n",
        delta("begin")
    );
    let server =
        FakeServer::start(Reply::Sse { pieces: vec![script.into_bytes()], gap: Duration::ZERO, tail: Tail::End }).await;
    let provider = provider_for(&server).await;
    let (chunks, error) = drain(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
    assert_eq!(chunks, vec!["begin"]);
    assert_eq!(error, Some(LlmError::Provider { status: 502, message: "Upstream provider went away".into() }));
}

#[tokio::test]
async fn openai_reasoning_is_not_forwarded() {
    let reasoning = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm, let me think\"},\"finish_reason\":null}]}\n\n";
    let script = format!(
        "{reasoning}{}{}{}{}data: [DONE]\n\n",
        delta("<thi"),
        delta("nk>private chain of thought</th"),
        delta("ink>\n\nThe answer"),
        delta(" is 42.")
    );
    let server =
        FakeServer::start(Reply::Sse { pieces: vec![script.into_bytes()], gap: Duration::ZERO, tail: Tail::End }).await;
    let provider = provider_for(&server).await;
    let text = recap_llm::complete(&provider, request(), CancellationToken::new()).await.unwrap();
    assert_eq!(text, "The answer is 42.");
}

#[tokio::test]
async fn openai_a_server_that_ignores_stream_is_accepted() {
    let body = serde_json::json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "All at once."}, "finish_reason": "stop"}]}).to_string();
    let server = FakeServer::start(Reply::Status { status: 200, content_type: "application/json", body }).await;
    let provider = provider_for(&server).await;
    let text = recap_llm::complete(&provider, request(), CancellationToken::new()).await.unwrap();
    assert_eq!(text, "All at once.");
}
