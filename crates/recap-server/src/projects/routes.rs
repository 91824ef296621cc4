use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    access::{ProjectRole, require_project},
    model::*,
    store,
};
use crate::{
    accounts::{auth::CurrentUser, model::Email, store as accounts_store},
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
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, patch_project, delete_project))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
}

/// Create a project; the caller becomes its owner. Guests cannot.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])), request_body = ProjectIn,
    responses((status = 201, body = ProjectOut), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_project(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(input): Json<ProjectIn>,
) -> ApiResult<(StatusCode, axum::Json<ProjectOut>)> {
    if caller.user.is_guest() {
        return Err(ApiError::forbidden("Guests cannot create projects; create an account first"));
    }
    let mut errors = Vec::new();
    let name = text(&input.name, "name", 1, 255, &mut errors);
    let slug = slug(&input.slug, &mut errors);
    let description = input.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    finish((), errors)?;
    let mut tx = state.db.begin().await?;
    let id =
        store::insert_project(&mut tx, &name, &slug, description.as_deref(), caller.user.id).await.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::already_exists(format!("A project with slug '{slug}' already exists"))
                    .with_details(serde_json::json!({"slug": slug}))
            } else {
                e.into()
            }
        })?;
    audit::record(
        &mut tx,
        AuditEntry::new("create_project", Some(caller.user.id), Some(caller.ip))
            .resource("project", id)
            .details(format!("Created project '{name}' ({slug})")),
    )
    .await?;
    tx.commit().await?;
    let (project, role) = store::project_with_role(&state.db, id, caller.user.id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("created project vanished")))?;
    Ok((StatusCode::CREATED, axum::Json(ProjectOut::new(&project, &role))))
}

/// Projects the caller holds a role in, newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<ProjectOut>), (status = 401, body = ErrorEnvelope)))]
async fn list_projects(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<ProjectOut>>> {
    let paging = params.validate()?;
    let (rows, total) = store::list_projects(&state.db, caller.user.id, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(|(p, r)| ProjectOut::new(p, r)).collect(), total, paging)))
}

/// One project with its repositories (any role; 404 for outsiders).
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectDetailOut), (status = 404, body = ErrorEnvelope)))]
async fn get_project(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProjectDetailOut>> {
    let (project, role) = require_project(&state.db, &id, caller.user.id, ProjectRole::Viewer).await?;
    let (repos, _) =
        store::list_repos(&state.db, project.id, crate::http::pagination::Paging { page: 1, size: 1000 }).await?;
    Ok(axum::Json(ProjectDetailOut {
        project: ProjectOut::new(&project, role.as_str()),
        repos: repos.iter().map(RepoOut::from).collect(),
    }))
}

/// Rename or describe a project (owner or maintainer).
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ProjectPatch,
    responses((status = 200, body = ProjectOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn patch_project(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<axum::Json<ProjectOut>> {
    let (project, role) = require_project(&state.db, &id, caller.user.id, ProjectRole::Maintainer).await?;
    let mut errors = Vec::new();
    let name = match &patch.name {
        Some(n) => text(n, "name", 1, 255, &mut errors),
        None => project.name.clone(),
    };
    let description = match &patch.description {
        Some(d) => Some(d.trim().to_owned()).filter(|d| !d.is_empty()),
        None => project.description.clone(),
    };
    finish((), errors)?;
    let mut tx = state.db.begin().await?;
    store::update_project(&mut tx, project.id, &name, description.as_deref()).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("update_project", Some(caller.user.id), Some(caller.ip)).resource("project", project.id),
    )
    .await?;
    tx.commit().await?;
    let (project, _) = store::project_with_role(&state.db, project.id, caller.user.id)
        .await?
        .ok_or_else(super::access::project_not_found)?;
    Ok(axum::Json(ProjectOut::new(&project, role.as_str())))
}

/// Delete a project with its repositories and commits (owner). Through the ingest writer, like
/// every long write that touches commits (see `league::routes::write_scoring`).
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_project(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (project, _) = require_project(&state.db, &id, caller.user.id, ProjectRole::Owner).await?;
    write_tx!(alone: &state.sync.writer, &state.db, |tx| async {
        store::delete_project(tx, project.id).await?;
        audit::record(
            tx,
            AuditEntry::new("delete_project", Some(caller.user.id), Some(caller.ip))
                .resource("project", project.id)
                .details(format!("Deleted project '{}'", project.name)),
        )
        .await
    }
    .await)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The project's members (any role).
#[utoipa::path(get, path = "/api/v1/projects/{id}/members", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<MemberOut>), (status = 404, body = ErrorEnvelope)))]
async fn list_members(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<MemberOut>>> {
    let (project, _) = require_project(&state.db, &id, caller.user.id, ProjectRole::Viewer).await?;
    let members = store::list_members(&state.db, project.id).await?;
    Ok(axum::Json(members.iter().map(MemberOut::from).collect()))
}

/// Add a member or change a member's role (owner).
#[utoipa::path(post, path = "/api/v1/projects/{id}/members", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = MemberIn,
    responses((status = 201, body = MemberOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn add_member(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(input): Json<MemberIn>,
) -> ApiResult<(StatusCode, axum::Json<MemberOut>)> {
    let (project, _) = require_project(&state.db, &id, caller.user.id, ProjectRole::Owner).await?;
    let role = ProjectRole::parse(input.role.trim()).ok_or_else(|| {
        ApiError::validation(vec![crate::error::FieldError::new(
            vec!["body".into(), "role".into()],
            "must be owner, maintainer or viewer",
            "enum",
        )])
    })?;
    let user = match (&input.user_id, &input.email) {
        (Some(uid), _) => accounts_store::user_by_id(&state.db, *uid).await?,
        (None, Some(email)) => match Email::parse(email) {
            Some(e) => accounts_store::user_by_email(&state.db, e.as_str()).await?,
            None => None,
        },
        (None, None) => {
            return Err(ApiError::validation(vec![crate::error::FieldError::new(
                vec!["body".into(), "user_id".into()],
                "user_id or email is required",
                "missing",
            )]));
        }
    }
    .ok_or_else(|| ApiError::not_found("User not found"))?;
    let mut tx = state.db.begin().await?;
    if user.id == caller.user.id && role != ProjectRole::Owner && store::count_owners(&mut tx, project.id).await? <= 1 {
        return Err(ApiError::bad_request("A project needs at least one owner"));
    }
    store::upsert_member(&mut tx, project.id, user.id, role.as_str()).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("add_project_member", Some(caller.user.id), Some(caller.ip))
            .resource("project", project.id)
            .details(format!("{} as {}", user.id, role.as_str())),
    )
    .await?;
    tx.commit().await?;
    let member = store::list_members(&state.db, project.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user.id)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("member vanished")))?;
    Ok((StatusCode::CREATED, axum::Json(MemberOut::from(&member))))
}

/// Remove a member (owner); the last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user_id}", tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn remove_member(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (project, _) = require_project(&state.db, &id, caller.user.id, ProjectRole::Owner).await?;
    let user_id = Uuid::parse_str(&user_id).map_err(|_| ApiError::not_found("Member not found"))?;
    let role = store::member_role(&state.db, project.id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Member not found"))?;
    let mut tx = state.db.begin().await?;
    if role == "owner" && store::count_owners(&mut tx, project.id).await? <= 1 {
        return Err(ApiError::bad_request("A project needs at least one owner"));
    }
    store::remove_member(&mut tx, project.id, user_id).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("remove_project_member", Some(caller.user.id), Some(caller.ip))
            .resource("project", project.id)
            .details(user_id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
