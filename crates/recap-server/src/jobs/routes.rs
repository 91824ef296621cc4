//! `/api/v1/admin/jobs`: the queue as an admin sees it. List by state and kind, counts, one job,
//! retry a dead or failed job, cancel a pending one.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{JobCountsOut, JobListParams, JobOut},
    service::{self, Actor, JobAdminError},
    store,
};
use crate::{
    accounts::auth::AdminUser,
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::{
        extract::{Path, Query},
        pagination::{Page, PageParams},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(job_counts))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
}

fn job_not_found(raw_id: &str) -> ApiError {
    ApiError::not_found("Job not found").with_details(serde_json::json!({ "job_id": raw_id }))
}

fn parse_id(raw_id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw_id).map_err(|_| job_not_found(raw_id))
}

fn admin_error(e: JobAdminError, raw_id: &str) -> ApiError {
    match e {
        JobAdminError::NotFound => job_not_found(raw_id),
        JobAdminError::WrongState { message, state } => {
            ApiError::bad_request(message).with_details(serde_json::json!({ "job_id": raw_id, "state": state }))
        }
        JobAdminError::UnknownKind(kind) => ApiError::bad_request(format!("Unknown job kind {kind}")),
        JobAdminError::Db(e) => ApiError::internal(e),
    }
}

/// Jobs, newest first, optionally of one state and/or kind.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "jobs", security(("bearer" = [])), params(JobListParams),
    responses((status = 200, body = Page<JobOut>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn list_jobs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(params): Query<JobListParams>,
) -> ApiResult<axum::Json<Page<JobOut>>> {
    let paging = PageParams { page: params.page, size: params.size }.validate()?;
    let job_state = params.state.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = job_state
        && !store::STATES.contains(&s)
    {
        return Err(ApiError::validation(vec![FieldError::new(
            vec!["query".into(), "state".into()],
            format!("must be one of {}", store::STATES.join(", ")),
            "enum",
        )]));
    }
    let kind = params.kind.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (rows, total) = store::list(&state.db, job_state, kind, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(JobOut::from).collect(), total, paging)))
}

/// How many jobs are in each state.
#[utoipa::path(get, path = "/api/v1/admin/jobs/counts", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobCountsOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
async fn job_counts(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<axum::Json<JobCountsOut>> {
    let mut counts: std::collections::BTreeMap<String, i64> =
        store::STATES.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for (s, n) in store::counts(&state.db).await? {
        counts.insert(s, n);
    }
    let total = counts.values().sum();
    Ok(axum::Json(JobCountsOut { counts, total }))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn get_job(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<JobOut>> {
    let id = parse_id(&raw_id)?;
    let job = store::by_id(&state.db, id).await?.ok_or_else(|| job_not_found(&raw_id))?;
    Ok(axum::Json(JobOut::from(&job)))
}

/// Retry a dead or failed job: back to `pending`, due now, with one more attempt.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{job_id}/retry", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobOut), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn retry_job(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<JobOut>> {
    let id = parse_id(&raw_id)?;
    let actor = Actor { user_id: Some(admin.user.id), ip: Some(admin.ip) };
    let job = service::retry(&state.db, id, actor).await.map_err(|e| admin_error(e, &raw_id))?;
    Ok(axum::Json(JobOut::from(&job)))
}

/// Cancel a pending job.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{job_id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobOut), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn cancel_job(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<JobOut>> {
    let id = parse_id(&raw_id)?;
    let actor = Actor { user_id: Some(admin.user.id), ip: Some(admin.ip) };
    let job = service::cancel(&state.db, id, actor).await.map_err(|e| admin_error(e, &raw_id))?;
    Ok(axum::Json(JobOut::from(&job)))
}
