//! The providers a session can speak to, and what they share: one HTTP client (10 s timeout, a
//! User-Agent, redirects followed only within the same origin, so a token never travels to
//! another host), the mapping of upstream failures to our errors, and small helpers.
//!
//! Each provider answers three questions: who does this credential belong to ([`validate`]),
//! which repositories can it see ([`repos`]), and what happened in a window ([`activity`]). The
//! activity comes back in the order the pipeline de-duplicates it in: pull requests and their
//! commits first, then plain commits, then issues.

pub mod azure;
pub mod github;
pub mod gitlab;
pub mod local;

use std::{net::IpAddr, time::Duration};

use axum::http::StatusCode;
use reqwest::{RequestBuilder, Response, Url, header::HeaderMap};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    activity::Filters,
    model::Entry,
    sessions::{NewSession, Session},
};
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

pub const USER_AGENT: &str = concat!("recap/", env!("CARGO_PKG_VERSION"), " (Git Recap)");
/// Upstream calls in flight at once for one request (per-repository fetches).
pub(crate) const CONCURRENCY: usize = 4;
/// Pages followed per listing at most (100 items each), a guard against endless pagination.
pub(crate) const MAX_PAGES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Github,
    Gitlab,
    Azure,
    /// Repositories already ingested into Recap.
    Local,
}

impl ProviderKind {
    /// The `provider` of `/pat`: case-insensitive, with the original's spellings and aliases;
    /// absent means GitHub.
    pub fn parse(raw: Option<&str>) -> ApiResult<ProviderKind> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(ProviderKind::Github) };
        let normalised = raw.to_ascii_lowercase().replace(['_', '-'], " ");
        match normalised.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
            "github" => Ok(ProviderKind::Github),
            "gitlab" => Ok(ProviderKind::Gitlab),
            "azure" | "azure devops" | "azuredevops" | "ado" => Ok(ProviderKind::Azure),
            "local" | "recap" => Ok(ProviderKind::Local),
            "url" => Err(ApiError::bad_request("Unsupported provider")
                .with_details(json!({ "provider": raw, "reason": "repository URLs (clone) are not supported yet" }))),
            _ => Err(ApiError::bad_request("Unsupported provider").with_details(json!({ "provider": raw }))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Github => "github",
            ProviderKind::Gitlab => "gitlab",
            ProviderKind::Azure => "azure_devops",
            ProviderKind::Local => "local",
        }
    }

    /// The name in messages.
    pub fn display(self) -> &'static str {
        match self {
            ProviderKind::Github => "GitHub",
            ProviderKind::Gitlab => "GitLab",
            ProviderKind::Azure => "Azure DevOps",
            ProviderKind::Local => "Recap",
        }
    }
}

/// A credential presented to `/pat` (or obtained by `/external-signup`).
pub struct Credential {
    pub kind: ProviderKind,
    pub secret: String,
    pub base_url: Option<String>,
    pub organization_url: Option<String>,
    pub ip: IpAddr,
}

/// A repository a session can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// Short name (what `/repos` lists and `repo_filter` matches).
    pub name: String,
    /// `owner/name` (GitHub), `path_with_namespace` (GitLab), `project/name` (Azure DevOps,
    /// Recap).
    pub full_name: String,
    /// How the provider addresses it: `owner/name`, a project id, `projectId/repoId`, a UUID.
    pub key: String,
}

/// Checks the credential against the provider's "current user" call.
pub async fn validate(state: &AppState, credential: &Credential) -> ApiResult<NewSession> {
    match credential.kind {
        ProviderKind::Github => github::validate(state, credential).await,
        ProviderKind::Gitlab => gitlab::validate(state, credential).await,
        ProviderKind::Azure => azure::validate(state, credential).await,
        ProviderKind::Local => local::validate(state, credential).await,
    }
}

/// The session's repositories, in provider order.
pub async fn repos(state: &AppState, session: &Session) -> ApiResult<Vec<RepoRef>> {
    match session.provider {
        ProviderKind::Github => github::repos(state, session).await,
        ProviderKind::Gitlab => gitlab::repos(state, session).await,
        ProviderKind::Azure => azure::repos(state, session).await,
        ProviderKind::Local => local::repos(state, session).await,
    }
}

/// Raw activity of the window, not yet de-duplicated or sorted.
pub async fn activity(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    match session.provider {
        ProviderKind::Github => github::activity(state, session, filters).await,
        ProviderKind::Gitlab => gitlab::activity(state, session, filters).await,
        ProviderKind::Azure => azure::activity(state, session, filters).await,
        ProviderKind::Local => local::activity(state, session, filters).await,
    }
}

/// The providers' HTTP client. Redirects are followed only to the same origin (scheme, host and
/// port): GitHub redirects renamed repositories within its API, and anything else would carry a
/// `PRIVATE-TOKEN` or `Authorization` header to a host it was not meant for.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin && attempt.previous().len() < 5 { attempt.follow() } else { attempt.stop() }
    });
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(USER_AGENT)
        .redirect(policy)
        .build()?)
}

/// Why a provider call failed.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// 401 (or Azure's 203 sign-in page): the credential was refused.
    Unauthorized,
    /// 429, or GitHub's 403 with an exhausted rate limit.
    RateLimited(Option<u64>),
    /// Any other non-success status.
    Status(u16),
    /// Connection refused, DNS, TLS or the 10 s timeout.
    Unreachable(&'static str),
    /// A success whose body was not what the API documents.
    Decode,
}

impl UpstreamError {
    fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status(s) => Some(*s),
            _ => None,
        }
    }

    /// A 404/403/409-style answer about one resource (an empty or inaccessible repository).
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self.status(), Some(403 | 404 | 409 | 410 | 451))
    }

    /// The error a request answers when a provider call failed mid-way.
    pub(crate) fn into_api(self, provider: ProviderKind) -> ApiError {
        let name = provider.display();
        let details = |reason: &str| json!({ "provider": provider.as_str(), "reason": reason });
        match self {
            UpstreamError::Unauthorized => ApiError::unauthorized(format!("Upstream {name} error: bad credentials"))
                .with_details(details("bad_credentials")),
            UpstreamError::RateLimited(retry_after) => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "EXTERNAL_SERVICE_ERROR",
                    format!("Upstream {name} error: rate limited"),
                )
                .with_details(
                    json!({ "provider": provider.as_str(), "reason": "rate_limited", "retry_after": retry_after }),
                );
                e.retry_after = retry_after;
                e
            }
            UpstreamError::Status(status) => bad_gateway(format!("Upstream {name} error: HTTP {status}"))
                .with_details(json!({ "provider": provider.as_str(), "upstream_status": status })),
            UpstreamError::Unreachable(what) => {
                bad_gateway(format!("Upstream {name} error: {what}")).with_details(details("unreachable"))
            }
            UpstreamError::Decode => bad_gateway(format!("Upstream {name} error: unexpected response"))
                .with_details(details("unexpected_response")),
        }
    }

    /// The error `/pat` answers when the "current user" call failed: a refused credential is the
    /// caller's problem (401), anything else the provider's (502/503).
    pub(crate) fn at_validation(self, provider: ProviderKind) -> ApiError {
        match self {
            UpstreamError::Unauthorized | UpstreamError::Status(403) => bad_credentials(provider),
            other => other.into_api(provider),
        }
    }
}

pub(crate) fn bad_credentials(provider: ProviderKind) -> ApiError {
    ApiError::unauthorized(format!("Failed to initialize {} fetcher: bad credentials", provider.display()))
        .with_details(json!({ "provider": provider.as_str() }))
}

pub(crate) fn bad_gateway(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "EXTERNAL_SERVICE_ERROR", message)
}

/// Sends a request and sorts its status into success or an [`UpstreamError`].
pub(crate) async fn send(request: RequestBuilder) -> Result<Response, UpstreamError> {
    let response = request.send().await.map_err(|e| {
        tracing::warn!(error = %e, "a Git Recap provider call failed");
        UpstreamError::Unreachable(if e.is_timeout() { "timed out" } else { "unreachable" })
    })?;
    let status = response.status().as_u16();
    let headers = response.headers();
    let header_u64 =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let retry_after = header_u64("retry-after").or_else(|| {
        header_u64("x-ratelimit-reset")
            .map(|reset| reset.saturating_sub(OffsetDateTime::now_utc().unix_timestamp().max(0) as u64).max(1))
    });
    match status {
        203 | 401 => Err(UpstreamError::Unauthorized),
        429 => Err(UpstreamError::RateLimited(retry_after)),
        403 if header_u64("x-ratelimit-remaining") == Some(0) || headers.contains_key("retry-after") => {
            Err(UpstreamError::RateLimited(retry_after))
        }
        200..=299 => Ok(response),
        _ => {
            tracing::warn!(status, url = %redact(response.url()), "a Git Recap provider answered an error");
            Err(UpstreamError::Status(status))
        }
    }
}

/// Sends a request and decodes its JSON body; returns the headers too (for pagination).
pub(crate) async fn fetch_json<T: DeserializeOwned>(
    request: RequestBuilder,
) -> Result<(T, HeaderMap, Url), UpstreamError> {
    let response = send(request).await?;
    let headers = response.headers().clone();
    let url = response.url().clone();
    let bytes = response.bytes().await.map_err(|e| {
        tracing::warn!(error = %e, "reading a Git Recap provider answer failed");
        UpstreamError::Unreachable(if e.is_timeout() { "timed out" } else { "unreachable" })
    })?;
    let value = serde_json::from_slice::<T>(&bytes).map_err(|e| {
        tracing::warn!(error = %e, url = %redact(&url), "a Git Recap provider answer did not decode");
        UpstreamError::Decode
    })?;
    Ok((value, headers, url))
}

/// A URL for a log line: no query string (it can hold author names and e-mails).
fn redact(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// The `rel="next"` target of a `Link` header, when it stays on `current`'s origin.
pub(crate) fn next_link(headers: &HeaderMap, current: &Url) -> Option<Url> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim().trim_start_matches('<').trim_end_matches('>');
            let is_next = pieces.any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let url = current.join(target).ok()?;
                return (url.origin() == current.origin()).then_some(url);
            }
        }
    }
    None
}

/// A provider's base URL plus path segments, each percent-encoded as one segment.
pub(crate) fn endpoint_at(base: &str, segments: &[&str]) -> ApiResult<Url> {
    let bad = |what: &str| ApiError::internal(anyhow::anyhow!("bad provider URL {base:?}: {what}"));
    let mut url = Url::parse(base.trim_end_matches('/')).map_err(|e| bad(&e.to_string()))?;
    url.path_segments_mut().map_err(|_| bad("cannot be a base"))?.pop_if_empty().extend(segments);
    Ok(url)
}

/// Pull requests and their commits first, then plain commits, then issues: the order in which
/// the first occurrence of a SHA wins.
pub(crate) fn collection_rank(kind: super::model::EntryKind) -> u8 {
    use super::model::EntryKind;
    match kind {
        EntryKind::PullRequest | EntryKind::CommitFromPr => 0,
        EntryKind::Commit => 1,
        EntryKind::Issue => 2,
    }
}

/// An RFC 3339 timestamp from a provider, in UTC.
pub(crate) fn parse_time(raw: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw?.trim(), &Rfc3339).ok().and_then(crate::time::supported_utc)
}

/// `2025-03-14T00:00:00Z`, rounded down to the second (lower bounds sent upstream).
pub(crate) fn iso_floor(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(at);
    crate::time::rfc3339(at)
}

/// Rounded up to the second (upper bounds sent upstream; the exact window is applied here).
pub(crate) fn iso_ceil(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let floor = at.replace_nanosecond(0).unwrap_or(at);
    crate::time::rfc3339(if floor == at { at } else { floor + time::Duration::SECOND })
}

pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The author filter of a request: the explicit list, or the session's login.
pub(crate) fn authors_or_login(filters: &Filters, session: &Session) -> Vec<String> {
    match &filters.authors {
        Some(list) => list.clone(),
        None => vec![session.login.clone()].into_iter().filter(|l| !l.is_empty()).collect(),
    }
}

/// The author filter matched against commit names and e-mails: the explicit list, or the
/// session's login and aliases.
pub(crate) fn authors_or_identity(filters: &Filters, session: &Session) -> Vec<String> {
    match &filters.authors {
        Some(list) => list.clone(),
        None => std::iter::once(session.login.clone())
            .chain(session.aliases.iter().cloned())
            .filter(|a| !a.trim().is_empty())
            .collect(),
    }
}

/// Runs the futures with bounded concurrency, keeping their order; the first error wins.
/// (Boxed futures rather than a stream `map` closure: such closures trip the compiler's
/// higher-ranked `Send` check inside axum handlers.)
pub(crate) async fn join_ordered<'a, T: Send + 'a>(
    futures: Vec<futures::future::BoxFuture<'a, ApiResult<Vec<T>>>>,
) -> ApiResult<Vec<T>> {
    use futures::StreamExt;
    let results: Vec<ApiResult<Vec<T>>> = futures::stream::iter(futures).buffered(CONCURRENCY).collect().await;
    let mut out = Vec::new();
    for result in results {
        out.extend(result?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_case_insensitive_with_aliases() {
        for (raw, kind) in [
            (None, ProviderKind::Github),
            (Some("GitHub"), ProviderKind::Github),
            (Some("GITLAB"), ProviderKind::Gitlab),
            (Some("Azure Devops"), ProviderKind::Azure),
            (Some("azure_devops"), ProviderKind::Azure),
            (Some("azure"), ProviderKind::Azure),
            (Some("recap"), ProviderKind::Local),
            (Some("Local"), ProviderKind::Local),
        ] {
            assert_eq!(ProviderKind::parse(raw).unwrap(), kind, "{raw:?}");
        }
        for raw in ["bitbucket", "URL"] {
            let e = ProviderKind::parse(Some(raw)).unwrap_err();
            assert_eq!((e.status.as_u16(), e.report.message.as_str()), (400, "Unsupported provider"));
        }
    }

    #[test]
    fn link_headers_are_followed_on_the_same_origin_only() {
        let current = Url::parse("https://api.github.com/user/repos?per_page=100").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            r#"<https://api.github.com/user/repos?per_page=100&page=2>; rel="next", <https://api.github.com/user/repos?per_page=100&page=5>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers, &current).unwrap().as_str(),
            "https://api.github.com/user/repos?per_page=100&page=2"
        );
        headers.insert("link", r#"<https://evil.example/x?page=2>; rel="next""#.parse().unwrap());
        assert_eq!(next_link(&headers, &current), None);
        headers.insert("link", r#"<https://api.github.com/x?page=1>; rel="prev""#.parse().unwrap());
        assert_eq!(next_link(&headers, &current), None);
    }

    #[test]
    fn bounds_round_outwards_to_the_second() {
        let t = time::macros::datetime!(2025-03-14 23:59:59.999999 UTC);
        assert_eq!(iso_floor(t), "2025-03-14T23:59:59Z");
        assert_eq!(iso_ceil(t), "2025-03-15T00:00:00Z");
        assert_eq!(iso_ceil(time::macros::datetime!(2025-03-14 10:00:00 +02:00)), "2025-03-14T08:00:00Z");
        assert_eq!(
            parse_time(Some("2025-03-14T10:00:00.000+02:00")),
            Some(time::macros::datetime!(2025-03-14 08:00:00 UTC))
        );
    }
}
