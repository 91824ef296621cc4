//! The provider trait and the request/stream types every provider shares.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::LlmError;

/// Who wrote a message of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The wire name (`"user"`, `"assistant"`), the same for OpenAI and Anthropic.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of the conversation (the system prompt is [`ChatRequest::system`], not a message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Message { role: Role::User, content: content.into() }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// A chat request, in the subset every supported provider understands.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The system prompt; empty means none.
    pub system: String,
    pub messages: Vec<Message>,
    /// Output token limit; `None` uses the provider's configured default (`LLM_MAX_TOKENS`).
    pub max_tokens: Option<u32>,
    /// Sampling temperature; `None` uses the provider's configured default (`LLM_TEMPERATURE`).
    pub temperature: Option<f32>,
}

impl ChatRequest {
    /// The content of the last user message, if any.
    pub fn last_user_message(&self) -> Option<&str> {
        self.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.as_str())
    }
}

/// The text deltas of one answer, in order. Ends after the last delta, or after the first error.
/// `'static`, so the caller can move it into a task that outlives the provider borrow.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<String, LlmError>> + Send + 'static>>;

/// A language model that streams its answer.
///
/// Object-safe: keep one as `Arc<dyn LlmProvider>`. `stream` resolves once the provider has accepted the
/// request (so an authentication failure or an unreachable server is an `Err` here, before any chunk);
/// later failures arrive as an `Err` item, after which the stream ends. Cancelling `cancel` at any point
/// ends the work with [`LlmError::Cancelled`] and drops the connection to the provider.
pub trait LlmProvider: Send + Sync {
    /// A short name for logs and metrics: `offline`, `openai`, `groq`, `anthropic`, …
    fn name(&self) -> &str;

    /// The model that answers (`offline` for the built-in provider).
    fn model(&self) -> &str;

    /// Send `request` and stream the answer.
    fn stream(&self, request: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<ChunkStream, LlmError>>;
}

/// Run `request` and collect the whole answer (for non-streamed endpoints such as `?stream=false`).
pub async fn complete(
    provider: &dyn LlmProvider,
    request: ChatRequest,
    cancel: CancellationToken,
) -> Result<String, LlmError> {
    let mut stream = provider.stream(request, cancel).await?;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk?);
    }
    Ok(text)
}

/// Wrap `inner` so that cancelling `cancel` yields one `Err(Cancelled)`, drops `inner` (and with it any
/// connection it holds) and ends the stream. An error from `inner` also ends the stream.
pub fn cancellable<S>(inner: S, cancel: CancellationToken) -> ChunkStream
where
    S: Stream<Item = Result<String, LlmError>> + Send + 'static,
{
    Box::pin(Cancellable { inner: Some(Box::pin(inner)), cancelled: Box::pin(cancel.cancelled_owned()), done: false })
}

struct Cancellable {
    inner: Option<ChunkStream>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Stream for Cancellable {
    type Item = Result<String, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.cancelled.poll_unpin(cx).is_ready() {
            self.inner = None;
            self.done = true;
            return Poll::Ready(Some(Err(LlmError::Cancelled)));
        }
        let Some(inner) = self.inner.as_mut() else {
            self.done = true;
            return Poll::Ready(None);
        };
        match inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Err(error))) => {
                self.inner = None;
                self.done = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.inner = None;
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Await `fut` unless `cancel` fires first.
pub(crate) async fn or_cancelled<F: Future>(cancel: &CancellationToken, fut: F) -> Result<F::Output, LlmError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(LlmError::Cancelled),
        out = fut => Ok(out),
    }
}
