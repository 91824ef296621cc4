//! The one error type of the LLM layer.
//!
//! Every message here is safe to show to an end user: provider error bodies are truncated and scrubbed of
//! anything that looks like an API key before they get here, and transport errors never carry the URL.

use std::time::Duration;

/// What went wrong while talking to a language model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider did not answer (connect, first byte, or the next piece of the stream) in time.
    #[error("the language model did not answer within {} s", .after.as_secs_f32())]
    Timeout {
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The provider answered with an error: a non-2xx status, or an error event inside the stream.
    /// `message` comes from the provider's JSON error body, truncated and with keys redacted.
    #[error("{message} (status {status})")]
    Provider {
        /// The HTTP status of the provider's answer (for an in-stream error event, the status that
        /// error type stands for).
        status: u16,
        /// The provider's own explanation, safe to show.
        message: String,
    },
    /// The provider could not be reached (connection refused, DNS, TLS, connection lost mid-stream).
    #[error("the language model is unavailable: {message}")]
    Unavailable {
        /// What failed, without URLs or credentials.
        message: String,
    },
    /// The caller cancelled the request through its `CancellationToken`.
    #[error("the request was cancelled")]
    Cancelled,
    /// The provider answered 2xx but with something that is not the streaming protocol we speak
    /// (malformed JSON, a stream that ended without its terminator, …).
    #[error("the language model sent an unexpected response: {message}")]
    BadResponse {
        /// What was wrong with it.
        message: String,
    },
}

impl LlmError {
    /// The HTTP status the server should answer with when this error ends a request:
    /// 504 for a timeout; 503 when the provider is unreachable or says it is overloaded or rate limiting
    /// (its 429, 503 and 529); 502 for every other provider failure and bad responses; 499 (client closed
    /// request) for a cancellation, which normally has nobody left to answer to.
    pub fn http_status(&self) -> u16 {
        match self {
            LlmError::Timeout { .. } => 504,
            LlmError::Unavailable { .. } => 503,
            LlmError::Provider { status: 429 | 503 | 529, .. } => 503,
            LlmError::Provider { .. } | LlmError::BadResponse { .. } => 502,
            LlmError::Cancelled => 499,
        }
    }

    pub(crate) fn bad_response(message: impl Into<String>) -> Self {
        LlmError::BadResponse { message: message.into() }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        LlmError::Unavailable { message: message.into() }
    }
}
