//! LLM configuration from the environment (Git Recap contract section 9), and building the provider.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LLM_PROVIDER` | `offline` unless `LLM_API_KEY` or `LLM_BASE_URL` is set, then `openai` / `openai_compatible` | see [`ProviderKind`] |
//! | `LLM_API_KEY` | – | required for hosted providers; optional for `openai_compatible`, `ollama`, `vllm`, `llamacpp` |
//! | `LLM_MODEL` | – | required except for `offline` |
//! | `LLM_BASE_URL` | the provider's | API root (`…/v1` for chat completions; `https://api.anthropic.com` for Anthropic) |
//! | `LLM_TEMPERATURE` | 0 | 0–2 |
//! | `LLM_MAX_TOKENS` | 12000 | max output tokens |
//! | `LLM_TIMEOUT` | 60 | seconds to wait for the answer to start, and between two pieces of it |
//! | `LLM_CONNECT_TIMEOUT` | 10 | seconds to wait for the connection |
//! | `MAX_HISTORY_TOKENS` | 16000 | `/actions` trimming budget |
//!
//! An empty variable counts as unset.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::LlmError;
use crate::anthropic::Anthropic;
use crate::http::EndpointConfig;
use crate::offline::OfflineProvider;
use crate::openai::OpenAiCompatible;
use crate::provider::LlmProvider;
use crate::tokens::{DEFAULT_MAX_HISTORY_TOKENS, Encoding};

/// A provider credential. `Debug` never shows it; read it with [`ApiKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// A hosted or local server that speaks OpenAI-style chat completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    OpenAi,
    Groq,
    OpenRouter,
    DeepSeek,
    Mistral,
    Nvidia,
    /// Gemini through its OpenAI-compatible endpoint.
    Gemini,
    /// xAI Grok.
    Grok,
    /// Z.ai (GLM).
    Zai,
    Ollama,
    Vllm,
    LlamaCpp,
    /// Any other server; needs `LLM_BASE_URL`.
    Custom,
}

impl Vendor {
    pub fn name(self) -> &'static str {
        match self {
            Vendor::OpenAi => "openai",
            Vendor::Groq => "groq",
            Vendor::OpenRouter => "openrouter",
            Vendor::DeepSeek => "deepseek",
            Vendor::Mistral => "mistral",
            Vendor::Nvidia => "nvidia",
            Vendor::Gemini => "gemini",
            Vendor::Grok => "grok",
            Vendor::Zai => "zai",
            Vendor::Ollama => "ollama",
            Vendor::Vllm => "vllm",
            Vendor::LlamaCpp => "llamacpp",
            Vendor::Custom => "openai_compatible",
        }
    }

    /// The API root used when `LLM_BASE_URL` is not set.
    pub fn default_base_url(self) -> Option<&'static str> {
        Some(match self {
            Vendor::OpenAi => "https://api.openai.com/v1",
            Vendor::Groq => "https://api.groq.com/openai/v1",
            Vendor::OpenRouter => "https://openrouter.ai/api/v1",
            Vendor::DeepSeek => "https://api.deepseek.com/v1",
            Vendor::Mistral => "https://api.mistral.ai/v1",
            Vendor::Nvidia => "https://integrate.api.nvidia.com/v1",
            Vendor::Gemini => "https://generativelanguage.googleapis.com/v1beta/openai",
            Vendor::Grok => "https://api.x.ai/v1",
            Vendor::Zai => "https://api.z.ai/api/paas/v4",
            Vendor::Ollama => "http://localhost:11434/v1",
            Vendor::Vllm => "http://localhost:8000/v1",
            Vendor::LlamaCpp => "http://localhost:8080/v1",
            Vendor::Custom => return None,
        })
    }

    /// Hosted services need a key; local servers usually do not.
    pub fn requires_key(self) -> bool {
        !matches!(self, Vendor::Ollama | Vendor::Vllm | Vendor::LlamaCpp | Vendor::Custom)
    }
}

/// Which provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// The built-in offline writer.
    Offline,
    /// OpenAI-style chat completions.
    OpenAiCompatible(Vendor),
    /// The Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// Parse an `LLM_PROVIDER` value (case-insensitive; `-` and `_` alike). `None` for an unknown name.
    pub fn parse(value: &str) -> Option<ProviderKind> {
        let name = value.trim().to_ascii_lowercase().replace('-', "_");
        Some(match name.as_str() {
            "offline" | "builtin" | "built_in" | "none" => ProviderKind::Offline,
            "anthropic" | "claude" => ProviderKind::Anthropic,
            "openai" => ProviderKind::OpenAiCompatible(Vendor::OpenAi),
            "openai_compatible" | "openai_compat" | "compatible" | "custom" => {
                ProviderKind::OpenAiCompatible(Vendor::Custom)
            }
            "groq" => ProviderKind::OpenAiCompatible(Vendor::Groq),
            "openrouter" => ProviderKind::OpenAiCompatible(Vendor::OpenRouter),
            "deepseek" => ProviderKind::OpenAiCompatible(Vendor::DeepSeek),
            "mistral" => ProviderKind::OpenAiCompatible(Vendor::Mistral),
            "nvidia" => ProviderKind::OpenAiCompatible(Vendor::Nvidia),
            "gemini" | "google" => ProviderKind::OpenAiCompatible(Vendor::Gemini),
            "grok" | "xai" => ProviderKind::OpenAiCompatible(Vendor::Grok),
            "zai" | "z.ai" => ProviderKind::OpenAiCompatible(Vendor::Zai),
            "ollama" => ProviderKind::OpenAiCompatible(Vendor::Ollama),
            "vllm" => ProviderKind::OpenAiCompatible(Vendor::Vllm),
            "llamacpp" | "llama.cpp" | "llama_cpp" => ProviderKind::OpenAiCompatible(Vendor::LlamaCpp),
            _ => return None,
        })
    }

    /// The name used in logs and [`LlmProvider::name`].
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Offline => "offline",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAiCompatible(vendor) => vendor.name(),
        }
    }
}

/// A configuration error, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub message: String,
}

impl SettingsError {
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        SettingsError { variable, message: message.into() }
    }
}

/// The LLM settings of a server. `Debug` redacts the key.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    pub provider: ProviderKind,
    /// The API root in use (the explicit `LLM_BASE_URL` or the provider's default); `None` for offline.
    pub base_url: Option<String>,
    pub api_key: Option<ApiKey>,
    /// `None` for offline.
    pub model: Option<String>,
    pub temperature: f32,
    pub max_tokens: u32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_history_tokens: usize,
}

impl Default for LlmSettings {
    /// The offline provider with the contract's defaults.
    fn default() -> Self {
        LlmSettings {
            provider: ProviderKind::Offline,
            base_url: None,
            api_key: None,
            model: None,
            temperature: 0.0,
            max_tokens: 12_000,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_history_tokens: DEFAULT_MAX_HISTORY_TOKENS,
        }
    }
}

impl LlmSettings {
    /// Read the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Read the settings through `lookup` (the server passes its own source: env, a map in tests, …).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |key: &str| lookup(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let defaults = LlmSettings::default();

        let api_key = get("LLM_API_KEY").map(ApiKey::new);
        let explicit_base = match get("LLM_BASE_URL") {
            Some(url) => Some(parse_base_url(&url)?),
            None => None,
        };
        let provider = match get("LLM_PROVIDER") {
            Some(value) if value.eq_ignore_ascii_case("auto") => None,
            Some(value) => Some(ProviderKind::parse(&value).ok_or_else(|| {
                SettingsError::new(
                    "LLM_PROVIDER",
                    format!(
                        "unknown provider '{value}' (expected offline, openai, openai_compatible, anthropic, groq, \
                         openrouter, deepseek, mistral, nvidia, gemini, grok, zai, ollama, vllm or llamacpp)"
                    ),
                )
            })?),
            None => None,
        };
        let provider = provider.unwrap_or(match (&api_key, &explicit_base) {
            (Some(_), None) => ProviderKind::OpenAiCompatible(Vendor::OpenAi),
            (_, Some(_)) => ProviderKind::OpenAiCompatible(Vendor::Custom),
            (None, None) => ProviderKind::Offline,
        });

        let temperature = match get("LLM_TEMPERATURE") {
            Some(v) => v.parse::<f32>().ok().filter(|t| t.is_finite() && (0.0..=2.0).contains(t)).ok_or_else(|| {
                SettingsError::new("LLM_TEMPERATURE", format!("must be a number from 0 to 2, got '{v}'"))
            })?,
            None => defaults.temperature,
        };
        let max_tokens = match get("LLM_MAX_TOKENS") {
            Some(v) => v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                SettingsError::new("LLM_MAX_TOKENS", format!("must be a positive integer, got '{v}'"))
            })?,
            None => defaults.max_tokens,
        };
        let timeout = match get("LLM_TIMEOUT") {
            Some(v) => parse_seconds("LLM_TIMEOUT", &v)?,
            None => defaults.timeout,
        };
        let connect_timeout = match get("LLM_CONNECT_TIMEOUT") {
            Some(v) => parse_seconds("LLM_CONNECT_TIMEOUT", &v)?,
            None => defaults.connect_timeout,
        };
        let max_history_tokens = match get("MAX_HISTORY_TOKENS") {
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                SettingsError::new("MAX_HISTORY_TOKENS", format!("must be a positive integer, got '{v}'"))
            })?,
            None => defaults.max_history_tokens,
        };

        let common = LlmSettings { temperature, max_tokens, timeout, connect_timeout, max_history_tokens, ..defaults };
        let name = provider.name();
        match provider {
            ProviderKind::Offline => Ok(LlmSettings { provider, model: get("LLM_MODEL"), ..common }),
            ProviderKind::OpenAiCompatible(vendor) => {
                let base_url = match explicit_base.or_else(|| vendor.default_base_url().map(str::to_owned)) {
                    Some(url) => url,
                    None => {
                        return Err(SettingsError::new(
                            "LLM_BASE_URL",
                            format!("is required when LLM_PROVIDER={name}"),
                        ));
                    }
                };
                if vendor.requires_key() && api_key.is_none() {
                    return Err(SettingsError::new("LLM_API_KEY", format!("is required when LLM_PROVIDER={name}")));
                }
                let model = get("LLM_MODEL")
                    .ok_or_else(|| SettingsError::new("LLM_MODEL", format!("is required when LLM_PROVIDER={name}")))?;
                Ok(LlmSettings { provider, base_url: Some(base_url), api_key, model: Some(model), ..common })
            }
            ProviderKind::Anthropic => {
                if api_key.is_none() && explicit_base.is_none() {
                    return Err(SettingsError::new("LLM_API_KEY", "is required when LLM_PROVIDER=anthropic"));
                }
                let model = get("LLM_MODEL")
                    .ok_or_else(|| SettingsError::new("LLM_MODEL", "is required when LLM_PROVIDER=anthropic"))?;
                let base_url = explicit_base.unwrap_or_else(|| "https://api.anthropic.com".to_owned());
                Ok(LlmSettings { provider, base_url: Some(base_url), api_key, model: Some(model), ..common })
            }
        }
    }

    /// The model name (`offline` for the offline provider).
    pub fn model_name(&self) -> &str {
        match self.provider {
            ProviderKind::Offline => "offline",
            _ => self.model.as_deref().unwrap_or("offline"),
        }
    }

    /// The tokenizer for trimming: the model's when tiktoken knows it, `o200k_base` otherwise.
    pub fn encoding(&self) -> Encoding {
        Encoding::for_model(self.model_name())
    }

    /// The endpoint configuration of an HTTP provider (`None` for offline).
    pub fn endpoint(&self) -> Option<EndpointConfig> {
        if self.provider == ProviderKind::Offline {
            return None;
        }
        Some(EndpointConfig {
            name: self.provider.name().to_owned(),
            base_url: self.base_url.clone()?,
            api_key: self.api_key.clone(),
            model: self.model.clone()?,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
        })
    }

    /// Build the configured provider. Cheap; build it once and share the `Arc`.
    pub fn build_provider(&self) -> Result<Arc<dyn LlmProvider>, LlmError> {
        let endpoint = || {
            self.endpoint()
                .ok_or_else(|| LlmError::unavailable("the LLM provider is not fully configured (base URL and model)"))
        };
        Ok(match self.provider {
            ProviderKind::Offline => Arc::new(OfflineProvider::new()),
            ProviderKind::OpenAiCompatible(_) => Arc::new(OpenAiCompatible::new(endpoint()?)?),
            ProviderKind::Anthropic => Arc::new(Anthropic::new(endpoint()?)?),
        })
    }
}

fn parse_base_url(value: &str) -> Result<String, SettingsError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| SettingsError::new("LLM_BASE_URL", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SettingsError::new("LLM_BASE_URL", "must be an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SettingsError::new("LLM_BASE_URL", "must not have a query or fragment"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn parse_seconds(variable: &'static str, value: &str) -> Result<Duration, SettingsError> {
    let number = value.strip_suffix('s').unwrap_or(value).trim();
    number
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            SettingsError::new(variable, format!("must be a number of seconds greater than 0, got '{value}'"))
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<LlmSettings, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LlmSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_offline() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.provider, ProviderKind::Offline);
        assert_eq!((s.temperature, s.max_tokens, s.max_history_tokens), (0.0, 12_000, 16_000));
        assert_eq!(s.model_name(), "offline");
        assert_eq!(s.build_provider().unwrap().name(), "offline");
        assert_eq!(settings(&[("LLM_API_KEY", "  "), ("LLM_PROVIDER", "")]).unwrap().provider, ProviderKind::Offline);
    }

    #[test]
    fn a_key_selects_openai_and_a_base_url_selects_a_compatible_server() {
        let s = settings(&[("LLM_API_KEY", "sk-test"), ("LLM_MODEL", "gpt-4o-mini")]).unwrap();
        assert_eq!(s.provider, ProviderKind::OpenAiCompatible(Vendor::OpenAi));
        assert_eq!(s.base_url.as_deref(), Some("https://api.openai.com/v1"));
        let s = settings(&[("LLM_BASE_URL", "http://127.0.0.1:11434/v1/"), ("LLM_MODEL", "llama3")]).unwrap();
        assert_eq!(s.provider, ProviderKind::OpenAiCompatible(Vendor::Custom));
        assert_eq!(s.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert!(s.api_key.is_none());
    }

    #[test]
    fn named_providers_and_their_defaults() {
        let s = settings(&[("LLM_PROVIDER", "Anthropic"), ("LLM_API_KEY", "k"), ("LLM_MODEL", "claude-sonnet-4-5")])
            .unwrap();
        assert_eq!(s.provider, ProviderKind::Anthropic);
        assert_eq!(s.base_url.as_deref(), Some("https://api.anthropic.com"));
        let s = settings(&[("LLM_PROVIDER", "groq"), ("LLM_API_KEY", "k"), ("LLM_MODEL", "m")]).unwrap();
        assert_eq!(s.base_url.as_deref(), Some("https://api.groq.com/openai/v1"));
        let s = settings(&[("LLM_PROVIDER", "ollama"), ("LLM_MODEL", "qwen3")]).unwrap();
        assert_eq!(s.base_url.as_deref(), Some("http://localhost:11434/v1"));
        assert_eq!(s.build_provider().unwrap().name(), "ollama");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("LLM_PROVIDER", "skynet")], "LLM_PROVIDER"),
            (&[("LLM_API_KEY", "k")], "LLM_MODEL"),
            (&[("LLM_PROVIDER", "openai"), ("LLM_MODEL", "m")], "LLM_API_KEY"),
            (&[("LLM_PROVIDER", "openai_compatible"), ("LLM_MODEL", "m")], "LLM_BASE_URL"),
            (&[("LLM_BASE_URL", "ftp://x"), ("LLM_MODEL", "m")], "LLM_BASE_URL"),
            (&[("LLM_TEMPERATURE", "hot")], "LLM_TEMPERATURE"),
            (&[("LLM_TEMPERATURE", "3")], "LLM_TEMPERATURE"),
            (&[("LLM_MAX_TOKENS", "0")], "LLM_MAX_TOKENS"),
            (&[("LLM_TIMEOUT", "-1")], "LLM_TIMEOUT"),
            (&[("MAX_HISTORY_TOKENS", "lots")], "MAX_HISTORY_TOKENS"),
        ];
        for (vars, variable) in cases {
            let error = settings(vars).unwrap_err();
            assert_eq!(error.variable, *variable, "{vars:?}");
            assert!(error.to_string().starts_with(variable));
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let s = settings(&[("LLM_API_KEY", "sk-very-secret-key"), ("LLM_MODEL", "m")]).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("sk-very-secret-key"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn timeouts_and_numbers_parse() {
        let s = settings(&[
            ("LLM_TIMEOUT", "2.5"),
            ("LLM_CONNECT_TIMEOUT", "3s"),
            ("LLM_TEMPERATURE", "0.7"),
            ("LLM_MAX_TOKENS", "512"),
        ])
        .unwrap();
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!((s.temperature, s.max_tokens), (0.7, 512));
    }
}
