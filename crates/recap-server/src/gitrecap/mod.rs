//! Git Recap: short-lived provider sessions (GitHub, GitLab, Azure DevOps, or the repositories
//! already ingested into Recap) and the activity feed built from them (`/repos`, `/actions`,
//! `/api/v1/activity`). The wire contract is `shared/docs/contracts/gitrecap.md`.
//!
//! The pieces other modules use (the WebSocket recap stream, for one):
//! - [`sessions::get`] turns a client's `session_id` into its [`sessions::Session`] (404
//!   `Session not found` when unknown, expired or tampered with);
//! - [`activity::collect`] fetches that session's activity for a [`activity::Filters`] window,
//!   de-duplicated and sorted; [`activity::trim`] and [`activity::render`] make the `/actions` text.

pub mod activity;
pub mod model;
pub mod providers;
pub mod routes;
pub mod sessions;

use std::time::Duration;

use oauth2::url::Url;

use crate::{accounts::oauth::ClientCredentials, config::ConfigError};

pub use routes::router;

/// `SESSION_TTL`, `MAX_HISTORY_TOKENS`, `GITLAB_URL`, `AZURE_DEVOPS_URL` and the Git Recap
/// frontend's own OAuth app (`VITE_GITHUB_CLIENT_ID`/`VITE_GITHUB_CLIENT_SECRET`, falling back to
/// `GITHUB_CLIENT_ID`/`GITHUB_CLIENT_SECRET`). GitHub's API and OAuth base URLs are the OAuth
/// module's `GITHUB_API_URL` and `GITHUB_OAUTH_URL`.
#[derive(Debug, Clone)]
pub struct GitRecapSettings {
    /// Lifetime of a provider session, counted from its creation (no renewal).
    pub session_ttl: Duration,
    /// Token budget of the `/actions` text; older entries are dropped beyond it.
    pub max_history_tokens: usize,
    /// The GitLab instance (`https://gitlab.com` or a self-hosted one), without `/api/v4`.
    pub gitlab_url: String,
    /// Where Azure DevOps organizations live (`https://dev.azure.com`, or an Azure DevOps Server
    /// collection host). A `/pat` `organization_url` must be on this origin.
    pub azure_devops_url: String,
    /// The OAuth app the Git Recap frontend sends users to, when it is not Recap's own.
    pub github_client: Option<ClientCredentials>,
}

impl Default for GitRecapSettings {
    fn default() -> Self {
        GitRecapSettings {
            session_ttl: Duration::from_secs(300),
            max_history_tokens: 16_000,
            gitlab_url: "https://gitlab.com".into(),
            azure_devops_url: "https://dev.azure.com".into(),
            github_client: None,
        }
    }
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

fn http_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let ok = Url::parse(&value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if !ok {
        return Err(invalid(var, format!("{value:?} is not an http(s) URL")));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl GitRecapSettings {
    /// Reads the settings from a lookup that already trims and drops empty values.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<GitRecapSettings, ConfigError> {
        let mut s = GitRecapSettings::default();
        if let Some(v) = get("SESSION_TTL") {
            let secs: u64 =
                v.parse().map_err(|_| invalid("SESSION_TTL", format!("{v:?} is not a number of seconds")))?;
            if secs == 0 {
                return Err(invalid("SESSION_TTL", "must be greater than zero"));
            }
            s.session_ttl = Duration::from_secs(secs);
        }
        if let Some(v) = get("MAX_HISTORY_TOKENS") {
            s.max_history_tokens = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("MAX_HISTORY_TOKENS", format!("{v:?} is not a positive number")))?;
        }
        if let Some(v) = get("GITLAB_URL") {
            s.gitlab_url = http_url("GITLAB_URL", v)?;
        }
        if let Some(v) = get("AZURE_DEVOPS_URL") {
            s.azure_devops_url = http_url("AZURE_DEVOPS_URL", v)?;
        }
        s.github_client = match (get("VITE_GITHUB_CLIENT_ID"), get("VITE_GITHUB_CLIENT_SECRET")) {
            (Some(client_id), Some(client_secret)) => Some(ClientCredentials { client_id, client_secret }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("VITE_GITHUB_CLIENT_SECRET", "is required when VITE_GITHUB_CLIENT_ID is set"));
            }
            (None, Some(_)) => {
                return Err(invalid("VITE_GITHUB_CLIENT_ID", "is required when VITE_GITHUB_CLIENT_SECRET is set"));
            }
        };
        Ok(s)
    }
}

/// What the Git Recap module keeps for the life of the app: its session store and the HTTP
/// client for the providers.
pub struct GitRecap {
    pub sessions: sessions::SessionStore,
    pub(crate) http: reqwest::Client,
}

impl GitRecap {
    pub fn new(
        settings: &crate::config::Settings,
        redis: Option<std::sync::Arc<crate::redis::RedisHandle>>,
    ) -> anyhow::Result<GitRecap> {
        Ok(GitRecap { sessions: sessions::SessionStore::new(settings, redis), http: providers::http_client()? })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<GitRecapSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GitRecapSettings::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = parse(&[]).unwrap();
        assert_eq!((s.session_ttl, s.max_history_tokens), (Duration::from_secs(300), 16_000));
        assert_eq!(
            (s.gitlab_url.as_str(), s.azure_devops_url.as_str()),
            ("https://gitlab.com", "https://dev.azure.com")
        );
        let s = parse(&[("SESSION_TTL", "5"), ("MAX_HISTORY_TOKENS", "100"), ("GITLAB_URL", "https://git.example/")])
            .unwrap();
        assert_eq!((s.session_ttl, s.max_history_tokens), (Duration::from_secs(5), 100));
        assert_eq!(s.gitlab_url, "https://git.example");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("SESSION_TTL", "0"),
            ("SESSION_TTL", "soon"),
            ("MAX_HISTORY_TOKENS", "-1"),
            ("GITLAB_URL", "gitlab.example"),
            ("AZURE_DEVOPS_URL", "ftp://x"),
            ("VITE_GITHUB_CLIENT_ID", "id"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            let expected = if var == "VITE_GITHUB_CLIENT_ID" { "VITE_GITHUB_CLIENT_SECRET" } else { var };
            assert_eq!(err.var, expected, "{var}={value}");
        }
    }
}
