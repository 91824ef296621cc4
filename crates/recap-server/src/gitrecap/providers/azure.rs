//! Azure DevOps Services / Server REST API 7.1, on an organization URL (`https://dev.azure.com/org`,
//! which must be on `AZURE_DEVOPS_URL`'s origin). Basic auth with an empty user and the PAT,
//! `api-version` on every call, and `x-ms-continuationtoken` (else `$top`/`$skip`) for
//! pagination. Contract section 7.3.

use futures::FutureExt;
use reqwest::{RequestBuilder, Url};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    Credential, MAX_PAGES, ProviderKind, RepoRef, UpstreamError, authors_or_login, endpoint_at, fetch_json, iso_ceil,
    iso_floor, join_ordered, parse_time, same_name,
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

const KIND: ProviderKind = ProviderKind::Azure;
const API_VERSION: &str = "7.1";
const PAGE: usize = 100;
/// Work items per `workitems?ids=` call (the API's limit).
const WORK_ITEM_BATCH: usize = 200;

/// The organization URL `/pat` named: required, on the configured origin, with a path (the
/// organization or collection), no credentials or query.
fn requested_org(state: &AppState, raw: Option<&str>) -> ApiResult<String> {
    let raw = raw
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("Missing required field: organization_url"))?;
    let configured = &state.settings.gitrecap.azure_devops_url;
    let refuse = |why: &str| {
        ApiError::bad_request(format!("organization_url is not an allowed Azure DevOps organization: {why}"))
            .with_details(json!({ "organization_url": raw, "allowed": configured }))
    };
    let url = Url::parse(raw).map_err(|_| refuse("not a URL"))?;
    let allowed = Url::parse(configured).map_err(|_| refuse("AZURE_DEVOPS_URL is not a URL"))?;
    if url.origin() != allowed.origin() {
        return Err(refuse("another host"));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it carries a query or credentials"));
    }
    let path = url.path().trim_matches('/');
    if path.is_empty() || path.len() <= allowed.path().trim_matches('/').len() {
        return Err(refuse("no organization in the path"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn org(session: &Session) -> ApiResult<&str> {
    session.base_url.as_deref().ok_or_else(|| ApiError::internal(anyhow::anyhow!("Azure session without organization")))
}

fn api(org: &str, segments: &[&str], version: &str) -> ApiResult<Url> {
    let mut url = endpoint_at(org, segments)?;
    url.query_pairs_mut().append_pair("api-version", version);
    Ok(url)
}

fn with_auth(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.basic_auth("", Some(token))
}

#[derive(Debug, Deserialize)]
struct List<T> {
    value: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct PropertyValue {
    #[serde(rename = "$value")]
    value: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Properties {
    #[serde(rename = "Account")]
    account: Option<PropertyValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    id: Option<String>,
    provider_display_name: Option<String>,
    properties: Option<Properties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionData {
    authenticated_user: Option<Identity>,
}

#[derive(Debug, Deserialize)]
struct Project {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Repository {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct GitUserDate {
    name: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Commit {
    commit_id: String,
    author: Option<GitUserDate>,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityRef {
    unique_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullRequest {
    pull_request_id: i64,
    #[serde(default)]
    title: String,
    created_by: Option<IdentityRef>,
    creation_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WiqlResult {
    #[serde(default)]
    work_items: Vec<WorkItemRef>,
}

#[derive(Debug, Deserialize)]
struct WorkItemRef {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct WorkItem {
    fields: serde_json::Map<String, serde_json::Value>,
}

/// How a listing pages.
#[derive(Clone, Copy)]
enum Paging {
    /// `x-ms-continuationtoken` only.
    Continuation,
    /// `x-ms-continuationtoken` when sent, else these `$top`/`$skip` parameters.
    Skip { top: &'static str, skip: &'static str },
}

/// Every page of a listing until `stop` is true for an item of the last page fetched.
async fn list<T: DeserializeOwned>(
    state: &AppState,
    token: &str,
    first: Url,
    paging: Paging,
    stop: impl Fn(&T) -> bool,
) -> Result<Vec<T>, UpstreamError> {
    let with = |extra: &[(&str, String)]| {
        let mut url = first.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in extra {
                pairs.append_pair(k, v);
            }
        }
        url
    };
    let mut items = Vec::new();
    let mut skip = 0usize;
    let mut next = Some(match paging {
        Paging::Skip { top, skip: skip_key } => with(&[(top, PAGE.to_string()), (skip_key, "0".into())]),
        Paging::Continuation => first.clone(),
    });
    let mut pages = 0;
    while let Some(url) = next.take() {
        let (page, headers, _) = fetch_json::<List<T>>(with_auth(state.gitrecap.http.get(url), token)).await?;
        pages += 1;
        let count = page.value.len();
        let done = count == 0 || page.value.iter().any(&stop) || pages >= MAX_PAGES;
        items.extend(page.value);
        if done {
            break;
        }
        let continuation =
            headers.get("x-ms-continuationtoken").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        next = match (continuation, paging) {
            (Some(token), Paging::Skip { top, .. }) => {
                Some(with(&[(top, PAGE.to_string()), ("continuationToken", token.into())]))
            }
            (Some(token), Paging::Continuation) => Some(with(&[("continuationToken", token.into())])),
            (None, Paging::Skip { top, skip: skip_key }) if count >= PAGE => {
                skip += count;
                Some(with(&[(top, PAGE.to_string()), (skip_key, skip.to_string())]))
            }
            _ => None,
        };
    }
    Ok(items)
}

pub async fn validate(state: &AppState, credential: &Credential) -> ApiResult<NewSession> {
    let org = requested_org(state, credential.organization_url.as_deref())?;
    let url = api(&org, &["_apis", "connectionData"], "7.1-preview")?;
    let (data, _, _) = fetch_json::<ConnectionData>(with_auth(state.gitrecap.http.get(url), &credential.secret))
        .await
        .map_err(|e| e.at_validation(KIND))?;
    let user = data.authenticated_user.ok_or_else(|| super::bad_credentials(KIND))?;
    let account = user
        .properties
        .as_ref()
        .and_then(|p| p.account.as_ref())
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .filter(|a| !a.trim().is_empty());
    let display = user.provider_display_name.clone().filter(|d| !d.trim().is_empty());
    // An anonymous caller (no or a refused credential on a public organization) has no account.
    if user.id.is_none() || (account.is_none() && display.as_deref().is_none_or(|d| d == "Anonymous")) {
        return Err(super::bad_credentials(KIND));
    }
    let login = account.clone().or_else(|| display.clone()).unwrap_or_default();
    Ok(NewSession {
        provider: KIND,
        username: if login.is_empty() { "unknown".into() } else { login.clone() },
        login,
        aliases: display.into_iter().collect(),
        base_url: Some(org),
        user_id: None,
        ip: Some(credential.ip),
    })
}

pub async fn repos(state: &AppState, session: &Session) -> ApiResult<Vec<RepoRef>> {
    let org = org(session)?;
    let token = session.token(state)?;
    let url = api(org, &["_apis", "projects"], API_VERSION)?;
    let projects = list::<Project>(state, &token, url, Paging::Skip { top: "$top", skip: "$skip" }, |_| false)
        .await
        .map_err(|e| e.into_api(KIND))?;
    let token = &token;
    let fetches = projects
        .iter()
        .map(|project| {
            async move {
                let url = api(org, &[&project.id, "_apis", "git", "repositories"], API_VERSION)?;
                let repos = match list::<Repository>(state, token, url, Paging::Continuation, |_| false).await {
                    Err(e) if e.is_missing() => Vec::new(),
                    other => other.map_err(|e| e.into_api(KIND))?,
                };
                Ok(repos
                    .into_iter()
                    .map(|r| RepoRef {
                        full_name: format!("{}/{}", project.name, r.name),
                        name: r.name,
                        key: format!("{}/{}", project.id, r.id),
                    })
                    .collect())
            }
            .boxed()
        })
        .collect();
    join_ordered(fetches).await
}

fn tolerate<T>(result: Result<Vec<T>, UpstreamError>, what: &str, repo: &str) -> ApiResult<Vec<T>> {
    match result {
        Err(e) if e.is_missing() => {
            tracing::debug!(repo, what, error = ?e, "skipping an Azure DevOps listing");
            Ok(Vec::new())
        }
        other => other.map_err(|e| e.into_api(KIND)),
    }
}

fn repo_api(org: &str, repo: &RepoRef, tail: &[&str]) -> ApiResult<Url> {
    let (project, id) = repo.key.split_once('/').unwrap_or(("", repo.key.as_str()));
    let mut segments = vec![project, "_apis", "git", "repositories", id];
    segments.extend_from_slice(tail);
    api(org, &segments, API_VERSION)
}

async fn repo_activity(
    state: &AppState,
    org: &str,
    token: &str,
    repo: &RepoRef,
    filters: &Filters,
    authors: &[String],
) -> ApiResult<Vec<Entry>> {
    let mut entries = Vec::new();

    // Pull requests come newest first: stop paging once they were created before the window.
    let mut url = repo_api(org, repo, &["pullrequests"])?;
    url.query_pairs_mut().append_pair("searchCriteria.status", "all");
    let older = |p: &PullRequest| parse_time(p.creation_date.as_deref()).is_some_and(|t| t < filters.start);
    let paging = Paging::Skip { top: "$top", skip: "$skip" };
    let pulls = tolerate(list::<PullRequest>(state, token, url, paging, older).await, "pull requests", &repo.name)?;
    for pr in pulls {
        let creator = pr.created_by.as_ref().and_then(|c| c.unique_name.as_deref()).unwrap_or("");
        let Some(created) = parse_time(pr.creation_date.as_deref()).filter(|t| filters.in_window(*t)) else { continue };
        if !authors.iter().any(|a| same_name(a, creator)) {
            continue;
        }
        entries.push(
            Entry::new(EntryKind::PullRequest, &repo.name, &pr.title, created)
                .pr(pr.pull_request_id)
                .author(Some(creator)),
        );
        let url = repo_api(org, repo, &["pullRequests", &pr.pull_request_id.to_string(), "commits"])?;
        let commits = tolerate(
            list::<Commit>(state, token, url, Paging::Continuation, |_| false).await,
            "pull request commits",
            &repo.name,
        )?;
        for c in commits {
            let author = c.author.as_ref();
            let Some(at) = parse_time(author.and_then(|a| a.date.as_deref())).filter(|t| filters.in_window(*t)) else {
                continue;
            };
            entries.push(
                Entry::new(EntryKind::CommitFromPr, &repo.name, &c.comment, at)
                    .sha(&c.commit_id)
                    .pr_title(&pr.title)
                    .author(author.and_then(|a| a.name.as_deref())),
            );
        }
    }

    for author in authors {
        let mut url = repo_api(org, repo, &["commits"])?;
        url.query_pairs_mut()
            .append_pair("searchCriteria.author", author)
            .append_pair("searchCriteria.fromDate", &iso_floor(filters.start))
            .append_pair("searchCriteria.toDate", &iso_ceil(filters.end));
        let paging = Paging::Skip { top: "searchCriteria.$top", skip: "searchCriteria.$skip" };
        let commits = tolerate(list::<Commit>(state, token, url, paging, |_| false).await, "commits", &repo.name)?;
        for c in commits {
            let a = c.author.as_ref();
            let Some(at) = parse_time(a.and_then(|a| a.date.as_deref())).filter(|t| filters.in_window(*t)) else {
                continue;
            };
            entries.push(
                Entry::new(EntryKind::Commit, &repo.name, &c.comment, at)
                    .sha(&c.commit_id)
                    .author(a.and_then(|a| a.name.as_deref())),
            );
        }
    }
    Ok(entries)
}

/// Work items assigned to the user and created in the window (WIQL, then their fields in batches
/// of 200). They belong to no repository (`"N/A"`), so a `repo_filter` leaves them out unless it
/// names `N/A`. A failure means "no issues".
async fn work_items(state: &AppState, org: &str, token: &str, filters: &Filters) -> Vec<Entry> {
    if !filters.wants_repo("N/A", "N/A") {
        return Vec::new();
    }
    let fetched = async {
        let url = api(org, &["_apis", "wit", "wiql"], API_VERSION).map_err(|_| UpstreamError::Decode)?;
        // WIQL compares dates by day; the exact window is applied below.
        let day = |t: time::OffsetDateTime| t.date().to_string();
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE [System.AssignedTo] = @Me AND [System.CreatedDate] >= '{}' \
             AND [System.CreatedDate] <= '{}' ORDER BY [System.CreatedDate] DESC",
            day(filters.start),
            day(filters.end)
        );
        let request = with_auth(state.gitrecap.http.post(url), token).json(&json!({ "query": query }));
        let (result, _, _) = fetch_json::<WiqlResult>(request).await?;
        let ids: Vec<String> = result.work_items.iter().map(|w| w.id.to_string()).collect();
        let mut items = Vec::new();
        for batch in ids.chunks(WORK_ITEM_BATCH) {
            let mut url = api(org, &["_apis", "wit", "workitems"], API_VERSION).map_err(|_| UpstreamError::Decode)?;
            url.query_pairs_mut()
                .append_pair("ids", &batch.join(","))
                .append_pair("fields", "System.Title,System.CreatedDate");
            let (page, _, _) = fetch_json::<List<WorkItem>>(with_auth(state.gitrecap.http.get(url), token)).await?;
            items.extend(page.value);
        }
        Ok::<_, UpstreamError>(items)
    };
    let items = match fetched.await {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = ?e, "Azure DevOps work items could not be fetched; continuing without them");
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|item| {
            let title = item.fields.get("System.Title").and_then(|v| v.as_str()).unwrap_or("");
            let at = parse_time(item.fields.get("System.CreatedDate").and_then(|v| v.as_str()))
                .filter(|t| filters.in_window(*t))?;
            Some(Entry::new(EntryKind::Issue, "N/A", title, at))
        })
        .collect()
}

pub async fn activity(state: &AppState, session: &Session, filters: &Filters) -> ApiResult<Vec<Entry>> {
    let org = org(session)?;
    let token = session.token(state)?;
    let authors = authors_or_login(filters, session);
    if authors.is_empty() {
        return Err(ApiError::bad_request("No author to look for").with_details(json!({ "provider": KIND.as_str() })));
    }
    let selected: Vec<RepoRef> =
        repos(state, session).await?.into_iter().filter(|r| filters.wants_repo(&r.name, &r.full_name)).collect();
    let fetches =
        selected.iter().map(|repo| repo_activity(state, org, &token, repo, filters, &authors).boxed()).collect();
    let mut entries = join_ordered(fetches).await?;
    entries.extend(work_items(state, org, &token, filters).await);
    Ok(entries)
}
