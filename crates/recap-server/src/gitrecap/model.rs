//! Request and response types of the Git Recap routes, and the activity entry they are built from.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// `POST /pat`. The frontend posts it as `text/plain`; the body is parsed as JSON regardless.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PatIn {
    /// The provider credential: a personal access token, or for `local` a Recap access token or
    /// API key.
    pub pat: Option<String>,
    /// Alias of `pat`.
    pub token: Option<String>,
    /// `GitHub` (default), `GitLab`, `Azure Devops` or `local`/`recap`; compared case-insensitively.
    pub provider: Option<String>,
    /// GitLab instance URL; must be the configured `GITLAB_URL`'s origin.
    pub base_url: Option<String>,
    /// Azure DevOps organization URL, e.g. `https://dev.azure.com/myorg` (required for Azure).
    pub organization_url: Option<String>,
    /// Sent by the frontend; ignored.
    #[schema(value_type = Option<Object>)]
    pub session_id: Option<serde_json::Value>,
}

/// A new provider session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Opaque, URL-safe; valid for `SESSION_TTL` seconds from now.
    pub session_id: String,
    /// The provider login (`"unknown"` when the provider names none).
    pub username: String,
}

/// `GET /external-signup`: the Git Recap frontend's OAuth callback.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExternalSignupParams {
    /// The frontend's app name; ignored.
    pub app: String,
    /// The OAuth authorization `code` GitHub sent back to the frontend.
    #[serde(rename = "accessToken")]
    #[param(rename = "accessToken")]
    pub access_token: String,
    /// Must be `GitHub` (any case).
    pub provider: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReposParams {
    pub session_id: String,
}

/// The session's repositories, by short name in provider order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReposOut {
    pub repos: Vec<String>,
    /// The same repositories by full name (`owner/name`); `repo_filter` accepts either.
    pub repos_full: Vec<String>,
}

/// Query of `GET /actions` (documentation only: it is parsed from the raw query so that list
/// parameters may be repeated).
#[allow(dead_code)]
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsParams {
    pub session_id: String,
    /// ISO date or datetime (offsets converted to UTC; a date means 00:00 UTC). Default: `end_date` − 7 days.
    pub start_date: Option<String>,
    /// ISO date or datetime; a date means the end of that day (UTC). Default: now.
    pub end_date: Option<String>,
    /// Short (or full) repository names; repeated or comma-separated. Absent = all.
    pub repo_filter: Option<Vec<String>>,
    /// Author logins, names or e-mails; repeated or comma-separated. Absent = the session's identity.
    pub authors: Option<Vec<String>>,
}

/// The `/actions` answer the Git Recap frontend reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionsOut {
    /// The activity text (one block per day), `""` when there is none.
    pub actions: String,
    /// Set when entries were trimmed to fit the token budget.
    pub message: Option<String>,
    /// Entries dropped (oldest first) to fit `MAX_HISTORY_TOKENS`.
    pub trimmed_count: usize,
    /// Entries before trimming.
    pub total_count: usize,
}

/// Query of `GET /api/v1/activity` (documentation only; parsed from the raw query).
#[allow(dead_code)]
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// A Git Recap session (any provider); or
    pub session_id: Option<String>,
    /// a Recap project the signed-in caller is a member of (needs a bearer token).
    pub project_id: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub repo_filter: Option<Vec<String>>,
    /// For a project: absent = every author.
    pub authors: Option<Vec<String>>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 50).
    pub size: Option<i64>,
}

/// What one activity entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Commit,
    CommitFromPr,
    PullRequest,
    Issue,
}

impl EntryKind {
    /// The label of the activity text: `_` → space, each word capitalised.
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Commit => "Commit",
            EntryKind::CommitFromPr => "Commit From Pr",
            EntryKind::PullRequest => "Pull Request",
            EntryKind::Issue => "Issue",
        }
    }
}

/// One piece of activity, as every provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Short repository name (`"N/A"` for Azure work items).
    pub repo: String,
    /// The commit message (trimmed, may span lines) or the PR/issue title.
    pub message: String,
    /// UTC.
    pub timestamp: OffsetDateTime,
    pub sha: Option<String>,
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
    pub author: Option<String>,
}

impl Entry {
    pub fn new(kind: EntryKind, repo: impl Into<String>, message: &str, timestamp: OffsetDateTime) -> Entry {
        Entry {
            kind,
            repo: repo.into(),
            message: message.trim().to_owned(),
            timestamp: timestamp.to_offset(time::UtcOffset::UTC),
            sha: None,
            pr_number: None,
            pr_title: None,
            author: None,
        }
    }
    pub fn sha(mut self, sha: impl Into<String>) -> Entry {
        self.sha = Some(sha.into());
        self
    }
    pub fn pr(mut self, number: i64) -> Entry {
        self.pr_number = Some(number);
        self
    }
    pub fn pr_title(mut self, title: &str) -> Entry {
        self.pr_title = Some(title.trim().to_owned());
        self
    }
    pub fn author(mut self, author: Option<&str>) -> Entry {
        self.author = author.map(str::to_owned).filter(|a| !a.is_empty());
        self
    }
}

/// One entry of `GET /api/v1/activity`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEntryOut {
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub repo: String,
    pub message: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub sha: Option<String>,
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
    pub author: Option<String>,
}

impl From<&Entry> for ActivityEntryOut {
    fn from(e: &Entry) -> Self {
        ActivityEntryOut {
            kind: e.kind,
            repo: e.repo.clone(),
            message: e.message.clone(),
            timestamp: crate::time::rfc3339(e.timestamp),
            sha: e.sha.clone(),
            pr_number: e.pr_number,
            pr_title: e.pr_title.clone(),
            author: e.author.clone(),
        }
    }
}
