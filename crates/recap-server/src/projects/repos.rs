//! Repositories of a project. Served at `/api/v1/projects/{id}/repos` and at the league
//! contract's original `/api/v1/repos/projects/{id}/repos`.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    access::{ProjectRole, require_project, require_repo},
    model::*,
    store::{self, RepoFields, RepoRow},
};
use crate::{
    accounts::auth::CurrentUser,
    audit::{self, AuditEntry},
    db::is_unique_violation,
    error::{ApiError, ApiResult, ErrorEnvelope},
    http::{
        extract::{Json, Path, Query},
        pagination::{Page, PageParams},
    },
    state::AppState,
    sync::writer::write_tx,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_repo, list_repos))
        .routes(routes!(create_repo_legacy, list_repos_legacy))
        .routes(routes!(get_repo, patch_repo, delete_repo))
}

/// The host of an http(s) remote, lower-cased; `None` for anything else.
fn remote_host(remote_url: Option<&str>) -> Option<String> {
    let url = reqwest::Url::parse(remote_url?.trim()).ok()?;
    url.host_str().map(str::to_ascii_lowercase)
}

fn duplicate(name: &str) -> ApiError {
    ApiError::already_exists(format!("A repository named '{name}' already exists in this project"))
}

/// Checked repository fields: the merge of `current` (for a patch) and the input.
struct Checked {
    name: String,
    remote_url: Option<String>,
    remote_type: Option<String>,
    branch: String,
    sync_frequency: Option<String>,
    sync_method: &'static str,
    credentials: Option<Option<String>>,
}

fn check(state: &AppState, input: RepoPatch, current: Option<&RepoRow>) -> Result<Checked, ApiError> {
    let mut errors = Vec::new();
    let name = match (&input.name, current) {
        (Some(n), _) => text(n, "name", 1, 255, &mut errors),
        (None, Some(c)) => c.name.clone(),
        (None, None) => text("", "name", 1, 255, &mut errors),
    };
    let branch = match (&input.branch, current) {
        (Some(b), _) => text(b, "branch", 1, 255, &mut errors),
        (None, Some(c)) => c.branch.clone(),
        (None, None) => "main".to_owned(),
    };
    let remote_url = match (&input.remote_url, current) {
        (Some(u), _) => Some(text(u, "remote_url", 1, 2048, &mut errors)),
        (None, c) => c.and_then(|c| c.remote_url.clone()),
    };
    let remote_type = match (&input.remote_type, current) {
        (Some(t), _) => remote_type(Some(t), &mut errors),
        (None, c) => c.and_then(|c| c.remote_type.clone()),
    };
    let sync_method = match (&input.sync_method, current) {
        (None, Some(c)) => {
            if c.sync_method == "pull" {
                "pull"
            } else {
                "push_client"
            }
        }
        (m, _) => sync_method(m.as_deref(), &mut errors).unwrap_or("push_client"),
    };
    let sync_frequency = match (&input.sync_frequency, current) {
        (Some(f), _) => Some(f.trim().to_owned()).filter(|f| !f.is_empty()),
        (None, c) => c.and_then(|c| c.sync_frequency.clone()),
    };
    let credentials = match &input.credentials {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v @ serde_json::Value::Object(_)) => Some(Some(state.sealer.seal(&v.to_string())?)),
        Some(_) => {
            errors.push(crate::error::FieldError::new(
                vec!["body".into(), "credentials".into()],
                "must be an object",
                "type_error",
            ));
            None
        }
    };
    finish(Checked { name, remote_url, remote_type, branch, sync_frequency, sync_method, credentials }, errors)
}

async fn create(
    state: &AppState,
    caller: &CurrentUser,
    project_id: &str,
    input: RepoIn,
) -> ApiResult<(StatusCode, axum::Json<RepoOut>)> {
    let (project, _) = require_project(&state.db, project_id, caller.user.id, ProjectRole::Maintainer).await?;
    let patch = RepoPatch {
        name: Some(input.name),
        remote_url: input.remote_url,
        remote_type: input.remote_type,
        branch: input.branch,
        sync_frequency: input.sync_frequency,
        sync_method: input.sync_method,
        credentials: input.credentials,
    };
    let c = check(state, patch, None)?;
    let mut tx = state.db.begin().await?;
    let repo = store::insert_repo(
        &mut tx,
        project.id,
        &RepoFields {
            name: &c.name,
            remote_url: c.remote_url.as_deref(),
            remote_type: c.remote_type.as_deref(),
            branch: &c.branch,
            sync_frequency: c.sync_frequency.as_deref(),
            sync_method: c.sync_method,
            credentials_encrypted: c.credentials.flatten().as_deref(),
        },
    )
    .await
    .map_err(|e| if is_unique_violation(&e) { duplicate(&c.name) } else { e.into() })?;
    audit::record(
        &mut tx,
        AuditEntry::new("create_repository", Some(caller.user.id), Some(caller.ip))
            .resource("repository", repo.id)
            .details(format!("Created repository '{}' ({})", repo.name, repo.sync_method)),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(RepoOut::from(&repo))))
}

async fn list(
    state: &AppState,
    caller: &CurrentUser,
    project_id: &str,
    params: PageParams,
) -> ApiResult<axum::Json<Page<RepoOut>>> {
    let paging = params.validate()?;
    let (project, _) = require_project(&state.db, project_id, caller.user.id, ProjectRole::Viewer).await?;
    let (rows, total) = store::list_repos(&state.db, project.id, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(RepoOut::from).collect(), total, paging)))
}

/// Add a repository (owner or maintainer). `sync_method` is honoured as given.
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/repos", tag = "repositories", security(("bearer" = [])), params(("project_id" = Uuid, Path)), request_body = RepoIn,
    responses((status = 201, body = RepoOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_repo(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Json(input): Json<RepoIn>,
) -> ApiResult<(StatusCode, axum::Json<RepoOut>)> {
    create(&state, &caller, &project_id, input).await
}

/// The project's repositories (any role).
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/repos", tag = "repositories", security(("bearer" = [])), params(("project_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<RepoOut>), (status = 404, body = ErrorEnvelope)))]
async fn list_repos(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<RepoOut>>> {
    list(&state, &caller, &project_id, params).await
}

/// Add a repository (the league contract's original path).
#[utoipa::path(post, path = "/api/v1/repos/projects/{project_id}/repos", tag = "repositories", security(("bearer" = [])), params(("project_id" = Uuid, Path)), request_body = RepoIn,
    responses((status = 201, body = RepoOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_repo_legacy(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Json(input): Json<RepoIn>,
) -> ApiResult<(StatusCode, axum::Json<RepoOut>)> {
    create(&state, &caller, &project_id, input).await
}

/// The project's repositories (the league contract's original path).
#[utoipa::path(get, path = "/api/v1/repos/projects/{project_id}/repos", tag = "repositories", security(("bearer" = [])), params(("project_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<RepoOut>), (status = 404, body = ErrorEnvelope)))]
async fn list_repos_legacy(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<RepoOut>>> {
    list(&state, &caller, &project_id, params).await
}

/// One repository (any role in its project).
#[utoipa::path(get, path = "/api/v1/repos/{repo_id}", tag = "repositories", security(("bearer" = [])), params(("repo_id" = Uuid, Path)),
    responses((status = 200, body = RepoOut), (status = 404, body = ErrorEnvelope)))]
async fn get_repo(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(repo_id): Path<String>,
) -> ApiResult<axum::Json<RepoOut>> {
    let (repo, _) = require_repo(&state.db, &repo_id, caller.user.id, ProjectRole::Viewer).await?;
    Ok(axum::Json(RepoOut::from(&repo)))
}

/// Change a repository (owner or maintainer); `credentials: null` removes stored credentials, and
/// so does moving `remote_url` to another host without sending new ones (a stored token is never
/// sent to a host it was not given for).
#[utoipa::path(patch, path = "/api/v1/repos/{repo_id}", tag = "repositories", security(("bearer" = [])), params(("repo_id" = Uuid, Path)), request_body = RepoPatch,
    responses((status = 200, body = RepoOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn patch_repo(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(repo_id): Path<String>,
    Json(patch): Json<RepoPatch>,
) -> ApiResult<axum::Json<RepoOut>> {
    let (repo, _) = require_repo(&state.db, &repo_id, caller.user.id, ProjectRole::Maintainer).await?;
    let c = check(&state, patch, Some(&repo))?;
    let credentials = match c.credentials {
        Some(new) => new,
        None if remote_host(c.remote_url.as_deref()) != remote_host(repo.remote_url.as_deref()) => None,
        None => repo.credentials_encrypted.clone(),
    };
    let mut tx = state.db.begin().await?;
    let updated = store::update_repo(
        &mut tx,
        repo.id,
        &RepoFields {
            name: &c.name,
            remote_url: c.remote_url.as_deref(),
            remote_type: c.remote_type.as_deref(),
            branch: &c.branch,
            sync_frequency: c.sync_frequency.as_deref(),
            sync_method: c.sync_method,
            credentials_encrypted: credentials.as_deref(),
        },
    )
    .await
    .map_err(|e| if is_unique_violation(&e) { duplicate(&c.name) } else { e.into() })?;
    audit::record(
        &mut tx,
        AuditEntry::new("update_repository", Some(caller.user.id), Some(caller.ip)).resource("repository", repo.id),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(RepoOut::from(&updated)))
}

/// Delete a repository and its commits (owner or maintainer). Through the ingest writer (see
/// `write_scoring`): a large repository takes a while to subtract and delete.
#[utoipa::path(delete, path = "/api/v1/repos/{repo_id}", tag = "repositories", security(("bearer" = [])), params(("repo_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_repo(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(repo_id): Path<String>,
) -> ApiResult<StatusCode> {
    let (repo, _) = require_repo(&state.db, &repo_id, caller.user.id, ProjectRole::Maintainer).await?;
    write_tx!(alone: &state.sync.writer, &state.db, |tx| async {
        store::lock_repositories(tx, store::RepoLock::Repository, repo.id).await?;
        // Its commits leave the project's leaderboards with it.
        crate::league::stats::remove_repository(tx, repo.project_id, repo.id).await?;
        store::delete_repo(tx, repo.id).await?;
        audit::record(
            tx,
            AuditEntry::new("delete_repository", Some(caller.user.id), Some(caller.ip))
                .resource("repository", repo.id)
                .details(format!("Deleted repository '{}'", repo.name)),
        )
        .await
    }
    .await)?;
    crate::sync::pull::forget_cache(&state.settings.sync.pull, repo.id).await;
    Ok(StatusCode::NO_CONTENT)
}
