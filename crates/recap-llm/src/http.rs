//! What the HTTP providers share: client construction, sending with timeouts and cancellation, turning
//! a non-2xx answer into a safe [`LlmError::Provider`], and turning a streamed body into SSE events.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::LlmError;
use crate::provider::or_cancelled;
use crate::settings::ApiKey;
use crate::sse::{SseEvent, SseParser};

/// Longest provider error message passed on, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 300;
/// Largest error body read from a provider.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Everything an HTTP provider client needs. Built by [`crate::LlmSettings::provider`], or by hand.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Name for logs (`openai`, `groq`, `ollama`, `anthropic`, …).
    pub name: String,
    /// The API root, without a trailing slash: `https://api.openai.com/v1` for chat completions
    /// (the client appends `/chat/completions`), `https://api.anthropic.com` for Anthropic (the client
    /// appends `/v1/messages`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (OpenAI-compatible; omitted when `None`) or `x-api-key` (Anthropic).
    pub api_key: Option<ApiKey>,
    pub model: String,
    /// Default when the request sets none.
    pub temperature: f32,
    /// Default when the request sets none.
    pub max_tokens: u32,
    /// Longest wait for the response headers, and for each next piece of the stream.
    pub timeout: Duration,
    /// Longest wait for the TCP/TLS connection.
    pub connect_timeout: Duration,
}

pub(crate) fn build_client(config: &EndpointConfig) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("recap/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::unavailable(format!("could not set up the HTTP client: {}", describe(&e.without_url()))))
}

/// Send `request`; wait at most `timeout` for the response headers; map a non-2xx answer to
/// [`LlmError::Provider`].
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    config: &EndpointConfig,
    cancel: &CancellationToken,
) -> Result<reqwest::Response, LlmError> {
    let timeout = config.timeout;
    let response = or_cancelled(cancel, tokio::time::timeout(timeout, request.send()))
        .await?
        .map_err(|_| LlmError::Timeout { after: timeout })?
        .map_err(|e| map_reqwest_error(e, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = or_cancelled(cancel, tokio::time::timeout(timeout, read_capped(response, MAX_ERROR_BODY_BYTES)))
        .await?
        .unwrap_or_default();
    let message = error_message(status, &body, config.api_key.as_ref());
    tracing::warn!(provider = %config.name, status = status.as_u16(), %message, "LLM provider answered with an error");
    Err(LlmError::Provider { status: status.as_u16(), message })
}

async fn read_capped(response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(bytes)) = stream.next().await {
        body.extend_from_slice(&bytes);
        if body.len() >= cap {
            body.truncate(cap);
            break;
        }
    }
    body
}

/// Read a whole (small, non-streamed) 2xx body, bounded by `timeout` and a size cap.
pub(crate) async fn read_body(
    response: reqwest::Response,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, LlmError> {
    const CAP: usize = 16 * 1024 * 1024;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        match or_cancelled(cancel, tokio::time::timeout(timeout, stream.next())).await? {
            Err(_) => return Err(LlmError::Timeout { after: timeout }),
            Ok(None) => return Ok(body),
            Ok(Some(Err(e))) => return Err(map_reqwest_error(e, timeout)),
            Ok(Some(Ok(bytes))) => {
                body.extend_from_slice(&bytes);
                if body.len() > CAP {
                    return Err(LlmError::bad_response("the response body is too large"));
                }
            }
        }
    }
}

pub(crate) fn map_reqwest_error(error: reqwest::Error, timeout: Duration) -> LlmError {
    let error = error.without_url();
    if error.is_timeout() {
        LlmError::Timeout { after: timeout }
    } else if error.is_connect() {
        LlmError::unavailable(format!("could not connect: {}", describe(&error)))
    } else if error.is_body() || error.is_decode() {
        LlmError::unavailable(format!("the connection was lost: {}", describe(&error)))
    } else {
        LlmError::unavailable(describe(&error))
    }
}

/// The error and its sources, `: `-joined (reqwest's own Display hides the useful part in the source).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The message to show for a provider's error answer: the JSON error body's message (OpenAI
/// `{"error": {"message"}}`, Anthropic `{"error": {"type", "message"}}`, Ollama `{"error": "…"}`, or a
/// top-level `message`/`detail`), else the plain-text body, else the status reason; keys redacted,
/// whitespace collapsed, truncated to [`MAX_ERROR_MESSAGE_CHARS`].
pub fn error_message(status: reqwest::StatusCode, body: &[u8], api_key: Option<&ApiKey>) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| json_error_message(&v));
    let text = match from_json {
        Some(message) => message,
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.starts_with('<') {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.to_owned()
            }
        }
    };
    safe_message(&text, api_key)
}

/// The message inside a JSON error value, if it has one.
pub(crate) fn json_error_message(value: &serde_json::Value) -> Option<String> {
    let pick = |v: &serde_json::Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(error) = value.get("error") {
        if let Some(message) = pick(error) {
            return Some(message);
        }
        if let Some(message) = error.get("message").and_then(pick) {
            return Some(message);
        }
        if let Some(kind) = error.get("type").and_then(pick) {
            return Some(kind);
        }
    }
    value.get("message").and_then(pick).or_else(|| value.get("detail").and_then(pick))
}

/// Collapse whitespace, redact anything key-like, truncate.
pub(crate) fn safe_message(text: &str, api_key: Option<&ApiKey>) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(key) = api_key {
        let key = key.expose();
        if key.len() >= 4 {
            text = text.replace(key, "[redacted]");
        }
    }
    let words: Vec<String> = text
        .split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_' && c != '*');
            let key_like = ["sk-", "sk_", "gsk_", "xai-", "nvapi-", "Bearer"]
                .iter()
                .any(|p| bare.starts_with(p) && bare.len() > 8)
                || (bare.contains("***") && bare.len() > 8);
            if key_like { "[redacted]".to_owned() } else { word.to_owned() }
        })
        .collect();
    let text = words.join(" ");
    truncate_chars(&text, MAX_ERROR_MESSAGE_CHARS)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The SSE events of a streamed 2xx body. Waits at most `idle` for each next network read; a stall
/// gives one `Err(Timeout)`, a broken connection one `Err(Unavailable)`, and the stream ends after it.
pub(crate) fn sse_events(
    response: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<SseEvent, LlmError>> + Send {
    sse_events_from(response.bytes_stream(), idle)
}

fn sse_events_from<B, T>(body: B, idle: Duration) -> impl Stream<Item = Result<SseEvent, LlmError>> + Send
where
    B: Stream<Item = reqwest::Result<T>> + Send + 'static,
    T: AsRef<[u8]>,
{
    struct State<B> {
        body: Option<Pin<Box<B>>>,
        parser: SseParser,
        queue: VecDeque<SseEvent>,
    }
    let state = State { body: Some(Box::pin(body)), parser: SseParser::new(), queue: VecDeque::new() };
    futures::stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(event) = state.queue.pop_front() {
                return Some((Ok(event), state));
            }
            let body = state.body.as_mut()?;
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    state.body = None;
                    return Some((Err(LlmError::Timeout { after: idle }), state));
                }
                Ok(Some(Ok(bytes))) => {
                    let mut out = Vec::new();
                    if state.parser.push(bytes.as_ref(), &mut out).is_err() {
                        state.body = None;
                        return Some((Err(LlmError::bad_response("an event-stream line was too long")), state));
                    }
                    state.queue.extend(out);
                }
                Ok(Some(Err(e))) => {
                    state.body = None;
                    return Some((Err(map_reqwest_error(e, idle)), state));
                }
                Ok(None) => {
                    state.body = None;
                    state.queue.extend(state.parser.finish());
                }
            }
        }
    })
}

/// What a provider's event handler decides for one event.
pub(crate) enum Step {
    /// Text to pass on (may be empty: nothing to emit).
    Text(String),
    /// The answer is complete.
    Done,
    /// The provider reported an error; end the stream with it.
    Fail(LlmError),
}

/// Turns provider events into chunks.
pub(crate) trait EventHandler: Send + 'static {
    fn on_event(&mut self, event: SseEvent) -> Step;
    /// The body ended without [`Step::Done`]: text still held back, or an error.
    fn on_eof(&mut self) -> Result<String, LlmError>;
    /// Text held back at [`Step::Done`].
    fn flush(&mut self) -> String;
}

/// Drive `handler` over `events` into a chunk stream (without cancellation; wrap it in
/// [`crate::provider::cancellable`]).
pub(crate) fn chunks<E, H>(events: E, handler: H) -> impl Stream<Item = Result<String, LlmError>> + Send + 'static
where
    E: Stream<Item = Result<SseEvent, LlmError>> + Send + 'static,
    H: EventHandler,
{
    struct State<H> {
        events: Option<BoxStream<'static, Result<SseEvent, LlmError>>>,
        handler: H,
    }
    let state = State { events: Some(events.boxed()), handler };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            let events = state.events.as_mut()?;
            let item = match events.next().await {
                Some(Ok(event)) => match state.handler.on_event(event) {
                    Step::Text(text) if text.is_empty() => continue,
                    Step::Text(text) => Ok(text),
                    Step::Done => {
                        state.events = None;
                        let rest = state.handler.flush();
                        if rest.is_empty() {
                            return None;
                        }
                        Ok(rest)
                    }
                    Step::Fail(error) => {
                        state.events = None;
                        Err(error)
                    }
                },
                Some(Err(error)) => {
                    state.events = None;
                    Err(error)
                }
                None => {
                    state.events = None;
                    match state.handler.on_eof() {
                        Ok(rest) if rest.is_empty() => return None,
                        other => other,
                    }
                }
            };
            return Some((item, state));
        }
    })
}
