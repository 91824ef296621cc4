//! OpenAI-compatible chat completions (`POST {base}/chat/completions`, `stream: true`).
//!
//! Speaks only the subset every compatible server implements — OpenAI, Ollama, vLLM, llama.cpp,
//! OpenRouter, Groq, DeepSeek, Mistral, NVIDIA, Gemini's compatibility endpoint: `model`, `messages`
//! (`system` + `user`/`assistant`), `stream`, `temperature`, `max_tokens`. Reads `choices[0].delta.content`
//! from `data:` events until `data: [DONE]` (or a `finish_reason` followed by the end of the body);
//! `reasoning_content` deltas and inline `<think>` spans are not forwarded. A server that ignores
//! `stream` and answers one JSON completion is accepted too.

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::LlmError;
use crate::http::{self, EndpointConfig, EventHandler, Step};
use crate::provider::{ChatRequest, ChunkStream, LlmProvider, cancellable};
use crate::sse::SseEvent;
use crate::think::ThinkFilter;

/// Client for one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    config: EndpointConfig,
    endpoint: String,
    client: reqwest::Client,
}

impl OpenAiCompatible {
    pub fn new(config: EndpointConfig) -> Result<Self, LlmError> {
        let client = http::build_client(&config)?;
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        Ok(OpenAiCompatible { config, endpoint, client })
    }

    /// The JSON body sent for `request`.
    pub fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(|m| json!({"role": m.role.as_str(), "content": m.content})));
        json!({
            "model": self.config.model,
            "messages": messages,
            "stream": true,
            "temperature": request.temperature.unwrap_or(self.config.temperature),
            "max_tokens": request.max_tokens.unwrap_or(self.config.max_tokens),
        })
    }

    async fn start(&self, request: ChatRequest, cancel: CancellationToken) -> Result<ChunkStream, LlmError> {
        let mut builder = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&self.body(&request));
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = http::send(builder, &self.config, &cancel).await?;
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            let body = http::read_body(response, self.config.timeout, &cancel).await?;
            let text = whole_completion(&body, &self.config)?;
            return Ok(cancellable(futures::stream::iter((!text.is_empty()).then_some(Ok(text))), cancel));
        }
        let events = http::sse_events(response, self.config.timeout);
        let handler = Handler { filter: ThinkFilter::new(), finished: false, config: self.config.clone() };
        Ok(cancellable(http::chunks(events, handler), cancel))
    }
}

impl LlmProvider for OpenAiCompatible {
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

/// A non-streamed completion (`choices[0].message.content`), for servers that ignore `stream`.
fn whole_completion(body: &[u8], config: &EndpointConfig) -> Result<String, LlmError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| LlmError::bad_response("the completion was not valid JSON"))?;
    if let Some(error) = provider_error(&value, config) {
        return Err(error);
    }
    let content = value
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::bad_response("the completion had no choices[0].message.content"))?;
    let mut filter = ThinkFilter::new();
    let mut text = filter.push(content);
    text.push_str(&filter.finish());
    Ok(text)
}

/// An `{"error": …}` object inside a 2xx answer or stream event (OpenRouter, vLLM and others send these
/// mid-stream).
fn provider_error(value: &Value, config: &EndpointConfig) -> Option<LlmError> {
    let error = value.get("error")?;
    if error.is_null() {
        return None;
    }
    let status = error
        .get("code")
        .or_else(|| error.get("status"))
        .and_then(|c| c.as_u64().or_else(|| c.as_str().and_then(|s| s.parse().ok())))
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502) as u16;
    let message = http::json_error_message(value).unwrap_or_else(|| "the provider reported an error".to_owned());
    Some(LlmError::Provider { status, message: http::safe_message(&message, config.api_key.as_ref()) })
}

struct Handler {
    filter: ThinkFilter,
    /// A `finish_reason` was seen: the answer is complete even if `[DONE]` never comes.
    finished: bool,
    config: EndpointConfig,
}

impl EventHandler for Handler {
    fn on_event(&mut self, event: SseEvent) -> Step {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Step::Done;
        }
        if data.is_empty() {
            return Step::Text(String::new());
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(value) => value,
            Err(_) => return Step::Fail(LlmError::bad_response("a stream event was not valid JSON")),
        };
        if let Some(error) = provider_error(&value, &self.config) {
            return Step::Fail(error);
        }
        let Some(choice) = value.pointer("/choices/0") else {
            // Usage-only or keep-alive chunks carry no choices.
            return Step::Text(String::new());
        };
        if choice.get("finish_reason").is_some_and(|r| !r.is_null()) {
            self.finished = true;
        }
        match choice.pointer("/delta/content").and_then(Value::as_str) {
            Some(content) => Step::Text(self.filter.push(content)),
            None => Step::Text(String::new()),
        }
    }

    fn on_eof(&mut self) -> Result<String, LlmError> {
        if self.finished {
            Ok(self.filter.finish())
        } else {
            Err(LlmError::bad_response("the stream ended before the answer was complete"))
        }
    }

    fn flush(&mut self) -> String {
        self.filter.finish()
    }
}
