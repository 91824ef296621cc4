//! HTTP calls to the Recap server: health, status and push, with retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API key (401)")]
    Unauthorized,
    #[error("repository not found: {0} (404)")]
    NotFound(String),
    #[error("request refused with status {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: String },
}

/// Retry policy for the push route: `attempts` total tries, exponential backoff from `base`,
/// capped at `cap`; a `Retry-After` in seconds is honoured (capped at `cap_retry_after`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    pub cap_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(attempts: u32) -> Self {
        RetryPolicy {
            attempts: attempts.max(1),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            cap_retry_after: Duration::from_secs(120),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitPayload {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
    pub commit_date: String,
    pub message_title: String,
    pub message_body: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub files_changed: u64,
    pub is_merge: bool,
    pub parent_count: u32,
}

impl CommitPayload {
    pub fn from_record(r: recap_git::CommitRecord) -> Self {
        let or = |s: String, d: &str| if s.trim().is_empty() { d.to_owned() } else { s };
        let mut title: String = r.message_title.chars().take(500).collect();
        if title.trim().is_empty() {
            title = "(no commit message)".to_owned();
        }
        let date = r
            .commit_date
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| r.commit_date.unix_timestamp().to_string());
        CommitPayload {
            sha: r.sha,
            author_name: or(r.author_name, "Unknown").chars().take(255).collect(),
            author_email: or(r.author_email, "unknown@unknown.local").chars().take(255).collect(),
            committer_name: or(r.committer_name, "Unknown").chars().take(255).collect(),
            committer_email: or(r.committer_email, "unknown@unknown.local").chars().take(255).collect(),
            commit_date: date,
            message_title: title,
            message_body: r.message_body,
            additions: r.additions,
            deletions: r.deletions,
            files_changed: r.files_changed,
            is_merge: r.is_merge,
            parent_count: r.parent_count,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoStatus {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub last_ingested_sha: Option<String>,
    #[serde(default)]
    pub total_commits: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PushResult {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub inserted: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub last_ingested_sha: Option<String>,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    pub retry: RetryPolicy,
}

impl Api {
    pub fn new(base: &str, key: Option<String>, retry: RetryPolicy) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("recap-push/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned(), key, retry })
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => rb.bearer_auth(key),
            None => rb,
        }
    }

    fn repo_url(&self, project: &str, repo: &str, tail: &str) -> String {
        format!("{}/api/v1/sync/projects/{project}/repos/{repo}/{tail}", self.base)
    }

    pub async fn health(&self) -> Result<(), ApiError> {
        let url = format!("{}/health", self.base);
        let response = self
            .auth(self.http.get(&url))
            .send()
            .await
            .map_err(|e| ApiError::Exhausted { attempts: 1, last: format!("{url}: {e}") })?;
        match response.status().as_u16() {
            200 => Ok(()),
            401 => Err(ApiError::Unauthorized),
            status => Err(ApiError::Refused { status, body: response.text().await.unwrap_or_default() }),
        }
    }

    pub async fn status(&self, project: &str, repo: &str) -> Result<RepoStatus, ApiError> {
        let url = self.repo_url(project, repo, "status");
        self.send_with_retry(repo, || self.auth(self.http.get(&url)), 200).await
    }

    pub async fn push(&self, project: &str, repo: &str, commits: &[CommitPayload]) -> Result<PushResult, ApiError> {
        let url = self.repo_url(project, repo, "commits");
        let body = serde_json::json!({"commits": commits, "client_version": crate::CLIENT_VERSION});
        self.send_with_retry(repo, || self.auth(self.http.post(&url)).json(&body), 201).await
    }

    /// Sends a request until it succeeds with `expect`; retries 429, 5xx and network errors only.
    async fn send_with_retry<T: serde::de::DeserializeOwned>(
        &self,
        repo: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
        expect: u16,
    ) -> Result<T, ApiError> {
        let mut last = String::new();
        for attempt in 0..self.retry.attempts {
            let mut wait = self.retry.backoff(attempt);
            match build().send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == expect {
                        let text =
                            response.text().await.map_err(|e| ApiError::Refused { status, body: e.to_string() })?;
                        return serde_json::from_str(&text).map_err(|e| ApiError::Refused {
                            status,
                            body: format!("unexpected answer ({e}): {text}"),
                        });
                    }
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let body = response.text().await.unwrap_or_default();
                    match status {
                        401 => return Err(ApiError::Unauthorized),
                        404 => return Err(ApiError::NotFound(repo.to_owned())),
                        429 | 500..=599 => {
                            if let Some(secs) = retry_after {
                                wait = Duration::from_secs(secs).min(self.retry.cap_retry_after);
                            }
                            last = format!("status {status}: {body}");
                        }
                        _ => return Err(ApiError::Refused { status, body }),
                    }
                }
                Err(e) => last = format!("network error: {e}"),
            }
            if attempt + 1 < self.retry.attempts {
                tokio::time::sleep(wait).await;
            }
        }
        Err(ApiError::Exhausted { attempts: self.retry.attempts, last })
    }
}
