//! GitHub's REST API (`GITHUB_API_URL`, default `https://api.github.com`; GitHub Enterprise is
//! `https://host/api/v3`). `Authorization: Bearer`, the versioned JSON media type, `per_page=100`
//! and the `Link: rel="next"` header for pagination. Contract section 7.1.

use futures::FutureExt;
use reqwest::{RequestBuilder, Url, header::ACCEPT};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    Credential, MAX_PAGES, ProviderKind, RepoRef, UpstreamError, authors_or_login, endpoint_at, fetch_json, iso_floor,
    join_ordered, next_link, parse_time, same_name,
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

const KIND: ProviderKind = ProviderKind::Github;

fn base(state: &AppState) -> &str {
    &state.settings.oauth.github_api_url
}

fn request(state: &AppState, token: &str, url: Url) -> RequestBuilder {
    state
        .gitrecap
        .http
        .get(url)
        .bearer_auth(token)
        .header(ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    name: String,
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct Login {
    login: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GitPerson {
    name: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GitCommit {
    author: Option<GitPerson>,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct Commit {
    sha: String,
    commit: GitCommit,
    author: Option<Login>,
}

impl Commit {
    fn authored(&self) -> Option<time::OffsetDateTime> {
        parse_time(self.commit.author.as_ref().and_then(|a| a.date.as_deref()))
    }
    fn author_name(&self) -> Option<&str> {
        self.author
            .as_ref()
            .and_then(|a| a.login.as_deref())
            .or_else(|| self.commit.author.as_ref().and_then(|a| a.name.as_deref()))
    }
}

#[derive(Debug, Deserialize)]
struct Pull {
    number: i64,
    #[serde(default)]
    title: String,
    user: Option<Login>,
    updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IssueRepo {
    name: String,
    full_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    #[serde(default)]
    title: String,
    created_at: Option<String>,
    repository: Option<IssueRepo>,
    pull_request: Option<serde_json::Value>,
}

/// Every page of a listing, following `Link: rel="next"` (same origin only) until `stop` is true
/// for an item of the last page fetched.
async fn list<T: DeserializeOwned>(
    state: &AppState,
    token: &str,
    first: Url,
    stop: impl Fn(&T) -> bool,
) -> Result<Vec<T>, UpstreamError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (page, headers, url) = fetch_json::<Vec<T>>(request(state, token, url)).await?;
        pages += 1;
        let done = page.is_empty() || page.iter().any(&stop) || pages >= MAX_PAGES;
        items.extend(page);
        if !done {
            next = next_link(&headers, &url);
        }
    }
    Ok(items)
}

/// Who the token belongs to (`GET /user`).
pub async fn validate(state: &AppState, credential: &Credential) -> ApiResult<NewSession> {
    let url = endpoint_at(base(state), &["user"])?;
    let (user, _, _) =
        fetch_json::<User>(request(state, &credential.secret, url)).await.map_err(|e| e.at_validation(KIND))?;
    let username = if user.login.trim().is_empty() { "unknown".to_owned() } else { user.login.clone() };
    Ok(NewSession {
        provider: KIND,
        username,
        login: user.login,
        aliases: [user.name, user.email].into_iter().flatten().filter(|a| !a.trim().is_empty()).collect(),
        base_url: None,
        user_id: None,
        ip: Some(credential.ip),
    })
}

async fn list_repos(state: &AppState, token: &str) -> ApiResult<Vec<RepoRef>> {
    let mut url = endpoint_at(base(state), &["user", "repos"])?;
    url.query_pairs_mut()
        .append_pair("affiliation", "owner,collaborator,organization_member")
        .append_pair("per_page", "100");
    let repos = list::<Repo>(state, token, url, |_| false).await.map_err(|e| e.into_api(KIND))?;
    Ok(repos.into_iter().map(|r| RepoRef { name: r.name, key: r.full_name.clone(), full_name: r.full_name }).collect())
}

pub async fn repos(state: &AppState, session: &Session) -> ApiResult<Vec<RepoRef>> {
    list_repos(state, &session.token(state)?).await
}

/// A per-repository listing: an empty, missing or inaccessible repository has no activity.
fn tolerate<T>(result: Result<Vec<T>, UpstreamError>, what: &str, repo: &str) -> ApiResult<Vec<T>> {
    match result {
        Err(e) if e.is_missing() => {
            tracing::debug!(repo, what, error = ?e, "skipping a GitHub listing");
            Ok(Vec::new())
        }
        other => other.map_err(|e| e.into_api(KIND)),
    }
}

fn repo_url(state: &AppState, repo: &RepoRef, tail: &[&str]) -> ApiResult<Url> {
    let (owner, name) = repo.key.split_once('/').unwrap_or(("", repo.key.as_str()));
    let mut segments = vec!["repos", owner, name];
    segments.extend_from_slice(tail);
    endpoint_at(base(state), &segments)
}

async fn repo_activity(
    state: &AppState,
    token: &str,
    repo: &RepoRef,
    filters: &Filters,
    authors: &[String],
) -> ApiResult<Vec<Entry>> {
    let mut entries = Vec::new();

    // Pull requests, most recently updated first: stop once they are older than the window.
    let mut url = repo_url(state, repo, &["pulls"])?;
    url.query_pairs_mut()
        .append_pair("state", "all")
        .append_pair("sort", "updated")
        .append_pair("direction", "desc")
        .append_pair("per_page", "100");
    let older = |p: &Pull| parse_time(p.updated_at.as_deref()).is_some_and(|t| t < filters.start);
    let pulls = tolerate(list::<Pull>(state, token, url, older).await, "pulls", &repo.name)?;
    for pull in pulls {
        let login = pull.user.as_ref().and_then(|u| u.login.as_deref()).unwrap_or("");
        let Some(updated) = parse_time(pull.updated_at.as_deref()) else { continue };
        if !filters.in_window(updated) || !authors.iter().any(|a| same_name(a, login)) {
            continue;
        }
        entries.push(
            Entry::new(EntryKind::PullRequest, &repo.name, &pull.title, updated).pr(pull.number).author(Some(login)),
        );
        let mut url = repo_url(state, repo, &["pulls", &pull.number.to_string(), "commits"])?;
        url.query_pairs_mut().append_pair("per_page", "100");
        let commits = tolerate(list::<Commit>(state, token, url, |_| false).await, "pull commits", &repo.name)?;
        for c in commits {
            let Some(at) = c.authored().filter(|t| filters.in_window(*t)) else { continue };
            entries.push(
                Entry::new(EntryKind::CommitFromPr, &repo.name, &c.commit.message, at)
                    .sha(&c.sha)
                    .pr_title(&pull.title)
                    .author(c.author_name()),
            );
        }
    }

    // Commits of the default branch per author, since the start (not `until`: it filters on the
    // committer date and would drop commits authored inside the window).
    for author in authors {
        let mut url = repo_url(state, repo, &["commits"])?;
        url.query_pairs_mut()
            .append_pair("author", author)
            .append_pair("since", &iso_floor(filters.start))
            .append_pair("per_page", "100");
        let older = |c: &Commit| c.authored().is_some_and(|t| t < filters.start);
        let commits = tolerate(list::<Commit>(state, token, url, older).await, "commits", &repo.name)?;
        for c in commits {
            let Some(at) = c.authored().filter(|t| filters.in_window(*t)) else { continue };
            entries.push(
                Entry::new(EntryKind::Commit, &repo.name, &c.commit.message, at).sha(&c.sha).author(c.author_name()),
            );
        }
    }
    Ok(entries)
}

/// Open issues assigned to the user, newest first, across repositories (pull requests skipped,
/// `repo_filter` applied). A failure here is logged and means "no issues".
async fn issues(state: &AppState, token: &str, filters: &Filters) -> Vec<Entry> {
    let url = match endpoint_at(base(state), &["issues"]) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("filter", "assigned")
                .append_pair("state", "open")
                .append_pair("sort", "created")
                .append_pair("direction", "desc")
                .append_pair("per_page", "100");
            url
        }
        Err(_) => return Vec::new(),
    };
    let older = |i: &Issue| parse_time(i.created_at.as_deref()).is_some_and(|t| t < filters.start);
    let issues = match list::<Issue>(state, token, url, older).await {
        Ok(issues) => issues,
        Err(e) => {
            tracing::warn!(error = ?e, "GitHub issues could not be fetched; continuing without them");
            return Vec::new();
        }
    };
    issues
        .into_iter()
        .filter(|i| i.pull_request.is_none())
        .filter_map(|i| {
            let at = parse_time(i.created_at.as_deref()).filter(|t| filters.in_window(*t))?;
            let repo = i.repository?;
            let full = repo.full_name.unwrap_or_else(|| repo.name.clone());
            filters.wants_repo(&repo.name, &full).then(|| Entry::new(EntryKind::Issue, repo.name, &i.title, at))
        })
        .collect()
}

pub async fn activity(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    let token = session.token(state)?;
    let authors = authors_or_login(filters, session);
    if authors.is_empty() {
        return Err(ApiError::bad_request("No author to look for").with_details(json!({ "provider": KIND.as_str() })));
    }
    let repos: Vec<RepoRef> =
        list_repos(state, &token).await?.into_iter().filter(|r| filters.wants_repo(&r.name, &r.full_name)).collect();
    let fetches = repos.iter().map(|repo| repo_activity(state, &token, repo, filters, &authors).boxed()).collect();
    let mut entries = join_ordered(fetches).await?;
    entries.extend(issues(state, &token, filters).await);
    Ok(entries)
}
