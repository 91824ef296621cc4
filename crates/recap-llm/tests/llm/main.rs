//! Integration tests of recap-llm: the HTTP clients against local fake SSE servers, the offline
//! provider, token counting and trimming.

mod anthropic;
mod fake;
mod offline;
mod openai;
mod tokens;
