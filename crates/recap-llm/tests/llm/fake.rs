//! A local fake LLM server: records each request and answers with a scripted reply — an SSE body sent
//! in deliberately split pieces, an error status with a body, or nothing at all (a stall).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::SinkExt;
use recap_llm::{ApiKey, EndpointConfig};
use tokio::sync::Notify;

/// What happens after the scripted pieces of an SSE reply.
#[derive(Clone)]
pub enum Tail {
    /// The body ends.
    End,
    /// The body stays open and silent.
    Hang,
    /// The piece is sent again every gap, forever (until the client goes away).
    Repeat(Vec<u8>),
}

#[derive(Clone)]
pub enum Reply {
    /// `200 text/event-stream`, the pieces sent one by one with `gap` between them, then `tail`.
    Sse { pieces: Vec<Vec<u8>>, gap: Duration, tail: Tail },
    /// A complete answer with this status, content type and body.
    Status { status: u16, content_type: &'static str, body: String },
    /// No response headers, ever.
    Stall,
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

struct Shared {
    reply: Reply,
    requests: Mutex<Vec<Recorded>>,
    dropped: Notify,
}

pub struct FakeServer {
    pub url: String,
    shared: Arc<Shared>,
}

impl FakeServer {
    pub async fn start(reply: Reply) -> FakeServer {
        let shared = Arc::new(Shared { reply, requests: Mutex::new(Vec::new()), dropped: Notify::new() });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeServer { url, shared }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Resolves once the server failed to send a piece because the client had gone away.
    pub async fn client_went_away(&self) {
        self.shared.dropped.notified().await;
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    shared.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    });
    match shared.reply.clone() {
        Reply::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Body::empty())
        }
        Reply::Status { status, content_type, body } => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap(),
        Reply::Sse { pieces, gap, tail } => {
            let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(0);
            let shared = shared.clone();
            tokio::spawn(async move {
                for piece in pieces {
                    tokio::time::sleep(gap).await;
                    if tx.send(Ok(Bytes::from(piece))).await.is_err() {
                        shared.dropped.notify_one();
                        return;
                    }
                }
                match tail {
                    Tail::End => {}
                    Tail::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(tx);
                    }
                    Tail::Repeat(piece) => loop {
                        tokio::time::sleep(gap).await;
                        if tx.send(Ok(Bytes::from(piece.clone()))).await.is_err() {
                            shared.dropped.notify_one();
                            return;
                        }
                    },
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(rx))
                .unwrap()
        }
    }
}

pub const TEST_KEY: &str = "sk-test-0123456789abcdef";

/// An endpoint for `base` with short timeouts.
pub fn endpoint(name: &str, base: String) -> EndpointConfig {
    EndpointConfig {
        name: name.to_owned(),
        base_url: base,
        api_key: Some(ApiKey::new(TEST_KEY)),
        model: "test-model".to_owned(),
        temperature: 0.2,
        max_tokens: 256,
        timeout: Duration::from_millis(1500),
        connect_timeout: Duration::from_secs(2),
    }
}

/// Split one byte string at the given offsets.
pub fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        pieces.push(bytes[start..cut].to_vec());
        start = cut;
    }
    pieces.push(bytes[start..].to_vec());
    pieces
}

/// Offsets that cut `text` inside each of `needles` (just after their first byte), in order.
pub fn cuts_inside(text: &str, needles: &[&str]) -> Vec<usize> {
    let mut cuts: Vec<usize> = needles
        .iter()
        .map(|needle| text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the script")) + 1)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Drain a chunk stream: the chunks, then the error that ended it (if any). Checks that nothing follows
/// an error.
pub async fn drain(mut stream: recap_llm::ChunkStream) -> (Vec<String>, Option<recap_llm::LlmError>) {
    use futures::StreamExt;
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(error) => {
                assert!(stream.next().await.is_none(), "the stream must end after an error");
                return (chunks, Some(error));
            }
        }
    }
    (chunks, None)
}
