//! The sync routes of the league contract (`/api/v1/sync/...`, JWT or API key) and the commit
//! queries (`/api/v1/repos/{repo_id}/commits|stats`, and the original `/api/v1/commits/...` paths).

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{model::*, service, store::CommitFilter};
use crate::{
    accounts::auth::ApiCaller,
    error::{ApiError, ApiResult, ErrorEnvelope},
    http::{
        extract::{Path, Query},
        pagination::{Page, PageParams},
        rate_limit::{Decision, apply_headers},
    },
    state::AppState,
    time::rfc3339,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push_commits))
        .routes(routes!(sync_status))
        .routes(routes!(request_pull_sync))
        .routes(routes!(test_connection))
        .routes(routes!(list_commits))
        .routes(routes!(get_commit))
        .routes(routes!(repo_stats))
        .routes(routes!(list_commits_legacy))
        .routes(routes!(stats_legacy))
        .routes(routes!(commit_by_id_legacy))
        .routes(routes!(commit_by_sha_legacy))
}

/// The raw request body; the push route parses it itself (see `model::parse_push`).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| ApiError::from_status(rejection.status()))
    }
}

/// A response carrying the `X-RateLimit-*` headers of `decision`.
fn limited(decision: &Decision, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    apply_headers(response.headers_mut(), decision);
    response
}

fn refused(decision: &Decision) -> Response {
    limited(decision, ApiError::rate_limited(decision.retry_after_secs))
}

/// Push a batch of commits (gitleague-client's sync).
///
/// JWT or API key with scope `sync:commits`; the project's owner or a maintainer. 1 to 1000
/// commits, all or nothing: any invalid commit rejects the request (422) and stores nothing.
/// Commits the repository already holds are skipped (`Commit already exists`); `details` follows
/// the request order. `{repo_id}` is the repository's id or its name within the project.
/// Limited to `SYNC_RATE_LIMIT` (default 100) requests per minute per API key (per user for a JWT).
#[utoipa::path(post, path = "/api/v1/sync/projects/{project_id}/repos/{repo_id}/commits", tag = "sync",
    security(("bearer" = [])),
    params(("project_id" = Uuid, Path), ("repo_id" = String, Path, description = "Repository id, or its name within the project")),
    request_body = SyncCommitsIn,
    responses(
        (status = 201, body = SyncCommitsOut),
        (status = 400, description = "Not a push repository", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Missing scope, pending user or project viewer", body = ErrorEnvelope),
        (status = 404, description = "Project not found / Repository not found", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
        (status = 500, body = ErrorEnvelope),
    ))]
async fn push_commits(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((project_id, repo_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Response {
    if let Err(e) = caller.require_scope("sync:commits") {
        return e.into_response();
    }
    let key = match &caller.api_key {
        Some(key) => format!("key:{}", key.id),
        None => format!("user:{}", caller.user.id),
    };
    let decision = state.sync.push_limit.check(&key).await;
    if !decision.allowed {
        return refused(&decision);
    }
    // The ingest runs to its end even if the client goes away meanwhile, so a repository is never
    // left `syncing` by a dropped request.
    let outcome = tokio::spawn(async move {
        service::push(&state.db, &state.sync.writer, caller.user.id, Some(caller.ip), &project_id, &repo_id, &body)
            .await
    })
    .await;
    match outcome {
        Ok(Ok(out)) => limited(&decision, (StatusCode::CREATED, axum::Json(out))),
        Ok(Err(e)) => limited(&decision, e),
        Err(e) => limited(&decision, ApiError::internal(e)),
    }
}

/// The sync status of a repository.
///
/// JWT or API key with `sync:commits` or `read:repos`; any role in the project; pull
/// repositories too. Limited per client IP and path.
#[utoipa::path(get, path = "/api/v1/sync/projects/{project_id}/repos/{repo_id}/status", tag = "sync",
    security(("bearer" = [])),
    params(("project_id" = Uuid, Path), ("repo_id" = String, Path, description = "Repository id, or its name within the project")),
    responses(
        (status = 200, body = SyncStatusOut),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "Project not found / Repository not found", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
async fn sync_status(
    State(state): State<AppState>,
    caller: ApiCaller,
    uri: Uri,
    Path((project_id, repo_id)): Path<(String, String)>,
) -> Response {
    if caller.require_scope("sync:commits").is_err()
        && let Err(e) = caller.require_scope("read:repos")
    {
        return e.into_response();
    }
    let decision = state.sync.status_limit.check(&format!("{}|{}", caller.ip, uri.path())).await;
    if !decision.allowed {
        return refused(&decision);
    }
    match service::status(&state.db, caller.user.id, &project_id, &repo_id).await {
        Ok(out) => limited(&decision, axum::Json(out)),
        Err(e) => limited(&decision, e),
    }
}

/// The optional body of `POST /api/v1/repos/{repo_id}/sync`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullSyncIn {
    /// Read the whole history again instead of starting after `last_ingested_sha`.
    #[serde(default)]
    pub force: bool,
}

/// Pull a `pull` repository from its `remote_url` now.
///
/// The project's owner or a maintainer (an API key needs `sync:commits`). The sync runs as a
/// background job; `GET …/status` shows its progress (`syncing`, then `healthy` or `error` with
/// the reason). At most one sync per repository is queued: asking again while one is pending or
/// running answers with that job (`queued: false`). A remote that cannot be pulled (SSH, a local
/// path outside `PULL_LOCAL_ROOTS`, an address the outbound guard refuses) is a 400 now.
#[utoipa::path(post, path = "/api/v1/repos/{repo_id}/sync", tag = "sync", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path)),
    request_body(content = Option<PullSyncIn>, description = "Optional; `{}` or no body for an incremental sync"),
    responses(
        (status = 202, body = super::pull::SyncRequestedOut),
        (status = 400, description = "Not a pull repository, no remote_url, or a remote that cannot be pulled", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Viewer of the project, or an API key without sync:commits", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn request_pull_sync(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(repo_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, axum::Json<super::pull::SyncRequestedOut>)> {
    caller.require_scope("sync:commits")?;
    let input: PullSyncIn = if body.iter().all(u8::is_ascii_whitespace) {
        PullSyncIn::default()
    } else {
        crate::http::extract::parse_json(&body)?
    };
    let out = super::pull::request(&state, caller.user.id, Some(caller.ip), &repo_id, input.force).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(out)))
}

/// Check that a remote can be pulled before creating or changing a repository.
///
/// Lists the remote's branches with the rules and the isolated git of pull sync (SSRF guard,
/// `PULL_LOCAL_ROOTS`, https-only tokens). A remote that cannot be reached or used is a 200 with
/// `success: false` and the reason; `success` is true when a sync would find its branch (`main`
/// falls back to the default branch). Any signed-in user (an API key needs `sync:commits`);
/// 20 tests per user and minute.
#[utoipa::path(post, path = "/api/v1/repos/test-connection", tag = "sync", security(("bearer" = [])),
    request_body = super::pull::TestConnectionIn,
    responses(
        (status = 200, body = super::pull::TestConnectionOut),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
async fn test_connection(
    State(state): State<AppState>,
    caller: ApiCaller,
    crate::http::extract::Json(input): crate::http::extract::Json<super::pull::TestConnectionIn>,
) -> Response {
    if let Err(e) = caller.require_scope("sync:commits") {
        return e.into_response();
    }
    let decision = state.sync.test_connection_limit.check(&caller.user.id.to_string()).await;
    if !decision.allowed {
        return refused(&decision);
    }
    limited(&decision, axum::Json(super::pull::test_connection(&state, input).await))
}

fn reader(caller: &ApiCaller) -> ApiResult<()> {
    caller.require_scope("read:repos")
}

/// Commits of a repository, newest first.
///
/// JWT with a role in the project, or an API key with `read:repos`.
#[utoipa::path(get, path = "/api/v1/repos/{repo_id}/commits", tag = "commits", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path), CommitsQuery),
    responses((status = 200, body = Page<CommitOut>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_commits(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(repo_id): Path<String>,
    Query(q): Query<CommitsQuery>,
) -> ApiResult<axum::Json<Page<CommitOut>>> {
    reader(&caller)?;
    let paging = PageParams { page: q.page, size: q.size }.validate()?;
    let filter = CommitFilter::new(q.author, None, q.since.as_deref(), q.until.as_deref(), q.merges)?;
    let (rows, total) = service::list_commits(&state.db, caller.user.id, &repo_id, &filter, paging).await?;
    Ok(axum::Json(Page::new(rows.into_iter().map(CommitOut::from).collect(), total, paging)))
}

/// One commit of a repository by its full SHA.
#[utoipa::path(get, path = "/api/v1/repos/{repo_id}/commits/{sha}", tag = "commits", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path), ("sha" = String, Path, description = "The full 40-digit SHA")),
    responses((status = 200, body = CommitOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "Repository not found / Commit not found", body = ErrorEnvelope)))]
async fn get_commit(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((repo_id, sha)): Path<(String, String)>,
) -> ApiResult<axum::Json<CommitOut>> {
    reader(&caller)?;
    let row = service::get_commit(&state.db, caller.user.id, &repo_id, &sha).await?;
    Ok(axum::Json(CommitOut::from(row)))
}

/// Activity of a repository: totals, per author and per UTC day (optionally within since/until).
#[utoipa::path(get, path = "/api/v1/repos/{repo_id}/stats", tag = "commits", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path), StatsQuery),
    responses((status = 200, body = RepoStatsOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn repo_stats(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(repo_id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<RepoStatsOut>> {
    reader(&caller)?;
    let filter = CommitFilter::new(None, q.author_email, q.since.as_deref(), q.until.as_deref(), None)?;
    let s = service::stats(&state.db, caller.user.id, &repo_id, &filter).await?;
    Ok(axum::Json(RepoStatsOut {
        repo_id: s.repo.id,
        since: filter.since.map(rfc3339),
        until: filter.until.map(rfc3339),
        total_commits: s.totals.commits,
        total_additions: s.totals.additions,
        total_deletions: s.totals.deletions,
        total_files_changed: s.totals.files_changed,
        merge_commits: s.totals.merges,
        unique_authors: s.totals.authors,
        active_days: s.totals.active_days,
        first_commit_at: s.totals.first_commit_at.map(rfc3339),
        last_commit_at: s.totals.last_commit_at.map(rfc3339),
        authors: s.authors.into_iter().map(AuthorStatsOut::from).collect(),
        days: s.days.into_iter().map(DayStatsOut::from).collect(),
    }))
}

/// Commits of a repository (the league contract's original path), newest first.
#[utoipa::path(get, path = "/api/v1/commits/repos/{repo_id}/commits", tag = "commits", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path), LegacyCommitsQuery),
    responses((status = 200, body = LegacyCommitPage), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_commits_legacy(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(repo_id): Path<String>,
    Query(q): Query<LegacyCommitsQuery>,
) -> ApiResult<axum::Json<LegacyCommitPage>> {
    reader(&caller)?;
    let paging = PageParams { page: q.page, size: q.per_page }.validate_as("per_page")?;
    let filter = CommitFilter::new(None, q.author_email, q.since.as_deref(), q.until.as_deref(), None)?;
    let (rows, total) = service::list_commits(&state.db, caller.user.id, &repo_id, &filter, paging).await?;
    let page = Page::new(rows.into_iter().map(CommitOut::from).collect(), total, paging);
    Ok(axum::Json(LegacyCommitPage {
        items: page.items,
        total: page.total,
        page: page.page,
        size: page.size,
        pages: page.pages,
        per_page: page.size,
    }))
}

/// Commit totals of a repository (the league contract's original path).
#[utoipa::path(get, path = "/api/v1/commits/repos/{repo_id}/commits/stats", tag = "commits", security(("bearer" = [])),
    params(("repo_id" = Uuid, Path), StatsQuery),
    responses((status = 200, body = LegacyStatsOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn stats_legacy(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(repo_id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<LegacyStatsOut>> {
    reader(&caller)?;
    let filter = CommitFilter::new(None, q.author_email, q.since.as_deref(), q.until.as_deref(), None)?;
    let totals = service::totals(&state.db, caller.user.id, &repo_id, &filter).await?;
    Ok(axum::Json(LegacyStatsOut::from(&totals)))
}

/// A commit by id (`<repo_id>:<sha>`, as `id` in commit answers; a bare SHA also works).
#[utoipa::path(get, path = "/api/v1/commits/commits/{commit_id}", tag = "commits", security(("bearer" = [])),
    params(("commit_id" = String, Path)),
    responses((status = 200, body = CommitOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "Commit not found", body = ErrorEnvelope)))]
async fn commit_by_id_legacy(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(commit_id): Path<String>,
) -> ApiResult<axum::Json<CommitOut>> {
    reader(&caller)?;
    Ok(axum::Json(CommitOut::from(service::commit_by_id(&state.db, caller.user.id, &commit_id).await?)))
}

/// A commit by SHA, in any repository the caller can read.
#[utoipa::path(get, path = "/api/v1/commits/commits/sha/{sha}", tag = "commits", security(("bearer" = [])),
    params(("sha" = String, Path)),
    responses((status = 200, body = CommitOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "Commit not found", body = ErrorEnvelope)))]
async fn commit_by_sha_legacy(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(sha): Path<String>,
) -> ApiResult<axum::Json<CommitOut>> {
    reader(&caller)?;
    Ok(axum::Json(CommitOut::from(service::find_commit(&state.db, caller.user.id, &sha).await?)))
}
