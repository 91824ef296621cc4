//! GitLab's REST API v4 (`GITLAB_URL`, default `https://gitlab.com`; a `/pat` `base_url` on the
//! same origin selects a path-prefixed install). `PRIVATE-TOKEN` header, `per_page=100`, and the
//! `X-Next-Page` header (else `Link`) for pagination. Contract section 7.2.

use std::collections::HashMap;

use futures::FutureExt;
use reqwest::{RequestBuilder, Url};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    Credential, MAX_PAGES, ProviderKind, RepoRef, UpstreamError, authors_or_identity, authors_or_login, endpoint_at,
    fetch_json, iso_ceil, iso_floor, join_ordered, next_link, parse_time, same_name,
};
use crate::{
    error::{ApiError, ApiResult},
    gitrecap::{
        activity::Filters,
        model::{Entry, EntryKind},
        sessions::{NewSession, Session},
    },
    state::AppState,
};

const KIND: ProviderKind = ProviderKind::Gitlab;

/// The instance of a session (what `/pat` validated against).
fn instance<'a>(state: &'a AppState, session: &'a Session) -> &'a str {
    session.base_url.as_deref().unwrap_or(&state.settings.gitrecap.gitlab_url)
}

/// The instance `/pat` asked for: the configured one, or a URL on its origin. Any other host is
/// refused, so a caller cannot make the server send requests wherever it likes.
fn requested_instance(state: &AppState, requested: Option<&str>) -> ApiResult<String> {
    let configured = &state.settings.gitrecap.gitlab_url;
    let Some(raw) = requested.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(configured.clone()) };
    let refuse = || {
        ApiError::bad_request("base_url is not an allowed GitLab instance")
            .with_details(json!({ "base_url": raw, "allowed": configured }))
    };
    let url = Url::parse(raw).map_err(|_| refuse())?;
    let allowed = Url::parse(configured).map_err(|_| refuse())?;
    if url.origin() != allowed.origin() || url.query().is_some() || !url.username().is_empty() {
        return Err(refuse());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn api(instance: &str, segments: &[&str]) -> ApiResult<Url> {
    endpoint_at(&format!("{}/api/v4", instance.trim_end_matches('/')), segments)
}

fn request(state: &AppState, token: &str, url: Url) -> RequestBuilder {
    state.gitrecap.http.get(url).header("PRIVATE-TOKEN", token)
}

#[derive(Debug, Deserialize)]
struct User {
    username: String,
    name: Option<String>,
    email: Option<String>,
    commit_email: Option<String>,
    public_email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Project {
    id: i64,
    name: String,
    path_with_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Commit {
    id: String,
    #[serde(default)]
    message: String,
    author_name: Option<String>,
    author_email: Option<String>,
    authored_date: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Author {
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: i64,
    #[serde(default)]
    title: String,
    updated_at: Option<String>,
    author: Option<Author>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    #[serde(default)]
    title: String,
    project_id: Option<i64>,
    created_at: Option<String>,
}

/// Every page of a listing: `X-Next-Page` (an empty value ends it), else `Link: rel="next"`.
async fn list<T: DeserializeOwned>(state: &AppState, token: &str, first: Url) -> Result<Vec<T>, UpstreamError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (page, headers, current) = fetch_json::<Vec<T>>(request(state, token, url.clone())).await?;
        pages += 1;
        let empty = page.is_empty();
        items.extend(page);
        if empty || pages >= MAX_PAGES {
            break;
        }
        let next_page = headers.get("x-next-page").and_then(|v| v.to_str().ok()).map(str::trim);
        next = match next_page {
            Some("") => None,
            Some(n) if n.parse::<u32>().is_ok() => {
                let mut url = url;
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != "page")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs).append_pair("page", n);
                Some(url)
            }
            _ => next_link(&headers, &current),
        };
    }
    Ok(items)
}

pub async fn validate(state: &AppState, credential: &Credential) -> ApiResult<NewSession> {
    let instance = requested_instance(state, credential.base_url.as_deref())?;
    let url = api(&instance, &["user"])?;
    let (user, _, _) =
        fetch_json::<User>(request(state, &credential.secret, url)).await.map_err(|e| e.at_validation(KIND))?;
    let mut aliases: Vec<String> = Vec::new();
    for alias in [user.name, user.email, user.commit_email, user.public_email].into_iter().flatten() {
        if !alias.trim().is_empty() && !aliases.iter().any(|a| same_name(a, &alias)) {
            aliases.push(alias);
        }
    }
    let username = if user.username.trim().is_empty() { "unknown".to_owned() } else { user.username.clone() };
    Ok(NewSession {
        provider: KIND,
        username,
        login: user.username,
        aliases,
        base_url: Some(instance),
        user_id: None,
        ip: Some(credential.ip),
    })
}

async fn projects(state: &AppState, instance: &str, token: &str) -> ApiResult<Vec<RepoRef>> {
    let mut url = api(instance, &["projects"])?;
    url.query_pairs_mut().append_pair("membership", "true").append_pair("per_page", "100");
    let projects = list::<Project>(state, token, url).await.map_err(|e| e.into_api(KIND))?;
    Ok(projects
        .into_iter()
        .map(|p| RepoRef {
            full_name: p.path_with_namespace.unwrap_or_else(|| p.name.clone()),
            name: p.name,
            key: p.id.to_string(),
        })
        .collect())
}

pub async fn repos(state: &AppState, session: &Session) -> ApiResult<Vec<RepoRef>> {
    projects(state, instance(state, session), &session.token(state)?).await
}

fn tolerate<T>(result: Result<Vec<T>, UpstreamError>, what: &str, repo: &str) -> ApiResult<Vec<T>> {
    match result {
        Err(e) if e.is_missing() => {
            tracing::debug!(repo, what, error = ?e, "skipping a GitLab listing");
            Ok(Vec::new())
        }
        other => other.map_err(|e| e.into_api(KIND)),
    }
}

struct Who<'a> {
    /// `author_username` of merge requests.
    usernames: &'a [String],
    /// Matched against commits' `author_name` and `author_email`.
    names: &'a [String],
}

async fn project_activity(
    state: &AppState,
    instance: &str,
    token: &str,
    project: &RepoRef,
    filters: &Filters,
    who: &Who<'_>,
) -> ApiResult<Vec<Entry>> {
    let mut entries = Vec::new();
    for username in who.usernames {
        let mut url = api(instance, &["projects", &project.key, "merge_requests"])?;
        url.query_pairs_mut()
            .append_pair("state", "all")
            .append_pair("author_username", username)
            .append_pair("updated_after", &iso_floor(filters.start))
            .append_pair("updated_before", &iso_ceil(filters.end))
            .append_pair("per_page", "100");
        let mrs = tolerate(list::<MergeRequest>(state, token, url).await, "merge requests", &project.name)?;
        for mr in mrs {
            let Some(updated) = parse_time(mr.updated_at.as_deref()).filter(|t| filters.in_window(*t)) else {
                continue;
            };
            let author = mr.author.as_ref().and_then(|a| a.username.as_deref());
            entries
                .push(Entry::new(EntryKind::PullRequest, &project.name, &mr.title, updated).pr(mr.iid).author(author));
            let mut url = api(instance, &["projects", &project.key, "merge_requests", &mr.iid.to_string(), "commits"])?;
            url.query_pairs_mut().append_pair("per_page", "100");
            let commits = tolerate(list::<Commit>(state, token, url).await, "merge request commits", &project.name)?;
            for c in commits {
                let Some(at) = parse_time(c.authored_date.as_deref()).filter(|t| filters.in_window(*t)) else {
                    continue;
                };
                entries.push(
                    Entry::new(EntryKind::CommitFromPr, &project.name, &c.message, at)
                        .sha(&c.id)
                        .pr_title(&mr.title)
                        .author(c.author_name.as_deref()),
                );
            }
        }
    }

    // GitLab's `author` parameter matches a name or an e-mail, not a username: fetch the window
    // and match authors here.
    let mut url = api(instance, &["projects", &project.key, "repository", "commits"])?;
    url.query_pairs_mut().append_pair("since", &iso_floor(filters.start)).append_pair("per_page", "100");
    let commits = tolerate(list::<Commit>(state, token, url).await, "commits", &project.name)?;
    for c in commits {
        let Some(at) = parse_time(c.authored_date.as_deref()).filter(|t| filters.in_window(*t)) else { continue };
        let matches = who.names.iter().any(|a| {
            c.author_name.as_deref().is_some_and(|n| same_name(a, n))
                || c.author_email.as_deref().is_some_and(|e| same_name(a, e))
        });
        if matches {
            entries.push(
                Entry::new(EntryKind::Commit, &project.name, &c.message, at)
                    .sha(&c.id)
                    .author(c.author_name.as_deref()),
            );
        }
    }
    Ok(entries)
}

/// Open issues assigned to the user, created in the window; a failure means "no issues".
async fn issues(state: &AppState, instance: &str, token: &str, filters: &Filters, projects: &[RepoRef]) -> Vec<Entry> {
    let Ok(mut url) = api(instance, &["issues"]) else { return Vec::new() };
    url.query_pairs_mut()
        .append_pair("scope", "assigned_to_me")
        .append_pair("state", "opened")
        .append_pair("created_after", &iso_floor(filters.start))
        .append_pair("created_before", &iso_ceil(filters.end))
        .append_pair("per_page", "100");
    let issues = match list::<Issue>(state, token, url).await {
        Ok(issues) => issues,
        Err(e) => {
            tracing::warn!(error = ?e, "GitLab issues could not be fetched; continuing without them");
            return Vec::new();
        }
    };
    let by_id: HashMap<String, &RepoRef> = projects.iter().map(|p| (p.key.clone(), p)).collect();
    issues
        .into_iter()
        .filter_map(|i| {
            let at = parse_time(i.created_at.as_deref()).filter(|t| filters.in_window(*t))?;
            let project = by_id.get(&i.project_id?.to_string())?;
            filters
                .wants_repo(&project.name, &project.full_name)
                .then(|| Entry::new(EntryKind::Issue, &project.name, &i.title, at))
        })
        .collect()
}

pub async fn activity(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    let token = session.token(state)?;
    let instance = instance(state, session);
    let usernames = authors_or_login(filters, session);
    let names = authors_or_identity(filters, session);
    if names.is_empty() {
        return Err(ApiError::bad_request("No author to look for").with_details(json!({ "provider": KIND.as_str() })));
    }
    let all = projects(state, instance, &token).await?;
    let selected: Vec<&RepoRef> = all.iter().filter(|p| filters.wants_repo(&p.name, &p.full_name)).collect();
    let who = Who { usernames: &usernames, names: &names };
    let fetches = selected
        .into_iter()
        .map(|project| project_activity(state, instance, &token, project, filters, &who).boxed())
        .collect();
    let mut entries = join_ordered(fetches).await?;
    entries.extend(issues(state, instance, &token, filters, &all).await);
    Ok(entries)
}
