//! Anthropic Messages API (`POST {base}/v1/messages`, `stream: true`).
//!
//! Headers `x-api-key` and `anthropic-version: 2023-06-01`. Forwards `content_block_delta` events whose
//! delta is `text_delta` (`delta.text`); thinking, signature and tool-input deltas are not forwarded.
//! `message_stop` ends the answer; an `error` event ends it with [`LlmError::Provider`].

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::LlmError;
use crate::http::{self, EndpointConfig, EventHandler, Step};
use crate::provider::{ChatRequest, ChunkStream, LlmProvider, cancellable};
use crate::sse::SseEvent;

/// The API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Client for the Anthropic Messages API (or a server that speaks it).
#[derive(Debug, Clone)]
pub struct Anthropic {
    config: EndpointConfig,
    endpoint: String,
    client: reqwest::Client,
}

impl Anthropic {
    pub fn new(config: EndpointConfig) -> Result<Self, LlmError> {
        let client = http::build_client(&config)?;
        let endpoint = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        Ok(Anthropic { config, endpoint, client })
    }

    /// The JSON body sent for `request`. Anthropic's temperature range is 0–1, so it is clamped.
    pub fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> =
            request.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})).collect();
        let mut body = json!({
            "model": self.config.model,
            "max_tokens": request.max_tokens.unwrap_or(self.config.max_tokens),
            "messages": messages,
            "stream": true,
            "temperature": request.temperature.unwrap_or(self.config.temperature).clamp(0.0, 1.0),
        });
        if !request.system.is_empty() {
            body["system"] = Value::String(request.system.clone());
        }
        body
    }

    async fn start(&self, request: ChatRequest, cancel: CancellationToken) -> Result<ChunkStream, LlmError> {
        let mut builder = self
            .client
            .post(&self.endpoint)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.body(&request));
        if let Some(key) = &self.config.api_key {
            builder = builder.header("x-api-key", key.expose());
        }
        let response = http::send(builder, &self.config, &cancel).await?;
        let events = http::sse_events(response, self.config.timeout);
        Ok(cancellable(http::chunks(events, Handler { config: self.config.clone() }), cancel))
    }
}

impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<ChunkStream, LlmError>> {
        Box::pin(self.start(request, cancel))
    }
}

/// The HTTP status an Anthropic error type stands for (its documented error table).
pub fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

struct Handler {
    config: EndpointConfig,
}

impl EventHandler for Handler {
    fn on_event(&mut self, event: SseEvent) -> Step {
        let value: Value = match serde_json::from_str(&event.data) {
            Ok(value) => value,
            Err(_) => return Step::Fail(LlmError::bad_response("a stream event was not valid JSON")),
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        match kind {
            "content_block_delta" => {
                let delta = value.get("delta");
                let is_text =
                    delta.and_then(|d| d.get("type")).and_then(Value::as_str).is_none_or(|t| t == "text_delta");
                match delta.and_then(|d| d.get("text")).and_then(Value::as_str) {
                    Some(text) if is_text => Step::Text(text.to_owned()),
                    _ => Step::Text(String::new()),
                }
            }
            "message_stop" => Step::Done,
            "error" => {
                let error_type = value.pointer("/error/type").and_then(Value::as_str).unwrap_or("api_error");
                let message = http::json_error_message(&value).unwrap_or_else(|| error_type.to_owned());
                Step::Fail(LlmError::Provider {
                    status: status_for_error_type(error_type),
                    message: http::safe_message(&message, self.config.api_key.as_ref()),
                })
            }
            // message_start, content_block_start/stop, message_delta, ping, and future event types.
            _ => Step::Text(String::new()),
        }
    }

    fn on_eof(&mut self) -> Result<String, LlmError> {
        Err(LlmError::bad_response("the stream ended before message_stop"))
    }

    fn flush(&mut self) -> String {
        String::new()
    }
}
