//! Recap's LLM layer.
//!
//! - [`LlmProvider`]: a model that streams its answer as [`ChunkStream`], cancellable through a
//!   `CancellationToken`; errors are one [`LlmError`] enum (map it with [`LlmError::http_status`]).
//! - Providers: [`OpenAiCompatible`] (chat completions over SSE: OpenAI, Ollama, vLLM, llama.cpp,
//!   OpenRouter, Groq, DeepSeek, Mistral, …), [`Anthropic`] (Messages API), and [`OfflineProvider`], the
//!   default without a key, which writes a deterministic recap from the activity itself.
//! - [`LlmSettings::from_lookup`] reads `LLM_*` and `MAX_HISTORY_TOKENS`; [`LlmSettings::build_provider`]
//!   builds the provider.
//! - [`RecapTask`] builds the Git Recap prompts (`recap`, `release`, `pull_request`) for every provider.
//! - [`count_tokens`] and [`trim_to_budget`]: tiktoken counting and oldest-first trimming with the
//!   `/actions` message. Call [`init_tokenizer`] in `spawn_blocking` at start-up: building the BPE is slow.

pub mod activity;
pub mod anthropic;
mod error;
pub mod http;
pub mod offline;
pub mod openai;
pub mod prompt;
pub mod provider;
pub mod settings;
pub mod sse;
pub mod think;
pub mod tokens;

pub use anthropic::Anthropic;
pub use error::LlmError;
pub use http::EndpointConfig;
pub use offline::OfflineProvider;
pub use openai::OpenAiCompatible;
pub use prompt::{DEFAULT_BULLETS, MAX_BULLETS, RecapKind, RecapTask, pick_remarks};
pub use provider::{ChatRequest, ChunkStream, LlmProvider, Message, Role, cancellable, complete};
pub use settings::{ApiKey, LlmSettings, ProviderKind, SettingsError, Vendor};
pub use tokens::{
    DEFAULT_MAX_HISTORY_TOKENS, Encoding, Trimmed, count_tokens, init_tokenizer, trim_to_budget, trim_to_budget_with,
    trimmed_message,
};
pub use tokio_util::sync::CancellationToken;
