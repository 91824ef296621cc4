//! Token counting (tiktoken) and trimming of the activity to a token budget.
//!
//! The BPE tables are embedded in `tiktoken-rs` (nothing is downloaded). Building one is expensive
//! (hundreds of milliseconds in a release build, seconds in a debug build): each encoding is built once,
//! on first use, in a process-wide `OnceLock`. A server should call [`init_tokenizer`] from
//! `spawn_blocking` at start-up so that no request pays for it on an async worker thread.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// The default token budget for `/actions` trimming (`MAX_HISTORY_TOKENS`).
pub const DEFAULT_MAX_HISTORY_TOKENS: usize = 16_000;

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, o-series; the Git Recap contract's default.
    #[default]
    O200kBase,
    /// GPT-4, GPT-3.5-turbo.
    Cl100kBase,
}

impl Encoding {
    /// The model's own encoding when it is an OpenAI model tiktoken knows; `o200k_base` otherwise
    /// (Claude, Llama, Mistral, … have tokenizers of their own; `o200k_base` is a close enough budget).
    pub fn for_model(model: &str) -> Encoding {
        match tiktoken_rs::tokenizer::get_tokenizer(model) {
            Some(tiktoken_rs::tokenizer::Tokenizer::Cl100kBase) => Encoding::Cl100kBase,
            _ => Encoding::O200kBase,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        static O200K: OnceLock<CoreBPE> = OnceLock::new();
        static CL100K: OnceLock<CoreBPE> = OnceLock::new();
        match self {
            Encoding::O200kBase => O200K.get_or_init(|| tiktoken_rs::o200k_base().expect("embedded o200k_base ranks")),
            Encoding::Cl100kBase => {
                CL100K.get_or_init(|| tiktoken_rs::cl100k_base().expect("embedded cl100k_base ranks"))
            }
        }
    }

    /// The number of tokens in `text` (special-token text such as `<|endoftext|>` counts as ordinary text).
    pub fn count(self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        self.bpe().encode_ordinary(text).len()
    }

    /// The token ids of `text` (for tests and diagnostics).
    pub fn encode(self, text: &str) -> Vec<u32> {
        self.bpe().encode_ordinary(text)
    }
}

/// Build the tables of `encoding` now. Blocking and slow: call it from `spawn_blocking` at start-up.
pub fn init_tokenizer(encoding: Encoding) {
    let _ = encoding.bpe();
}

/// The number of `o200k_base` tokens in `text`.
pub fn count_tokens(text: &str) -> usize {
    Encoding::O200kBase.count(text)
}

/// The result of [`trim_to_budget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    /// The newest entries that fit, still in time order (a suffix of the input).
    pub kept: Vec<String>,
    /// How many of the oldest entries were dropped.
    pub trimmed_count: usize,
    /// How many entries there were before trimming.
    pub total_count: usize,
    /// The tokens of the kept entries.
    pub kept_tokens: usize,
    /// `None`, or the Git Recap `/actions` notice (see [`trimmed_message`]).
    pub message: Option<String>,
}

/// Drop the oldest entries until the total tokens of the rest is at most `max_tokens`, counting with
/// `o200k_base`. `entries` are the rendered activity lines in time order (oldest first); each is counted
/// once.
pub fn trim_to_budget(entries: &[String], max_tokens: usize) -> Trimmed {
    trim_to_budget_with(Encoding::O200kBase, entries, max_tokens)
}

/// [`trim_to_budget`] with a chosen encoding.
pub fn trim_to_budget_with(encoding: Encoding, entries: &[String], max_tokens: usize) -> Trimmed {
    let counts: Vec<usize> = entries.iter().map(|e| encoding.count(e)).collect();
    let trimmed_count = trim_count(&counts, max_tokens);
    let kept = entries[trimmed_count..].to_vec();
    Trimmed {
        kept,
        trimmed_count,
        total_count: entries.len(),
        kept_tokens: counts[trimmed_count..].iter().sum(),
        message: trimmed_message(trimmed_count),
    }
}

/// How many leading items to drop so that the sum of the rest of `token_counts` is at most `max_tokens`
/// (for callers that count their own entries).
pub fn trim_count(token_counts: &[usize], max_tokens: usize) -> usize {
    let mut total: usize = token_counts.iter().sum();
    let mut dropped = 0;
    while total > max_tokens && dropped < token_counts.len() {
        total -= token_counts[dropped];
        dropped += 1;
    }
    dropped
}

/// The exact `message` of Git Recap's `/actions` response when `trimmed_count` entries were dropped
/// (`None` when none were).
pub fn trimmed_message(trimmed_count: usize) -> Option<String> {
    if trimmed_count == 0 {
        return None;
    }
    let plural = if trimmed_count == 1 { "" } else { "s" };
    Some(format!(
        "We're running the free version with a maximum token limit for contextual input. To stay within this \
         limit, we automatically trimmed {trimmed_count} older Git actionable{plural} from the context. We hope \
         you understand!"
    ))
}
