use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::store::{self, AuditFilter, AuditRow};
use crate::{
    accounts::auth::AdminUser,
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::{
        extract::Query,
        pagination::{Page, PageParams},
    },
    state::AppState,
    time::rfc3339,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Actor (user id).
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub since: Option<String>,
    /// RFC 3339 upper bound (inclusive).
    pub until: Option<String>,
    pub page: Option<i64>,
    pub size: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub details: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: String,
}

impl From<AuditRow> for AuditOut {
    fn from(r: AuditRow) -> Self {
        AuditOut {
            id: r.id,
            actor_id: r.actor_id,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            details: r.details,
            ip_address: r.ip_address,
            created_at: rfc3339(r.created_at),
        }
    }
}

fn parse_time(value: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                ApiError::validation(vec![FieldError::new(
                    vec!["query".into(), name.into()],
                    "must be an RFC 3339 timestamp",
                    "datetime_parsing",
                )])
            })
        })
        .transpose()
}

/// The audit log, newest first (admin). Filters combine.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = Page<AuditOut>), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(params): Query<AuditParams>,
) -> ApiResult<axum::Json<Page<AuditOut>>> {
    let paging = PageParams { page: params.page, size: params.size }.validate()?;
    let filter = AuditFilter {
        actor_id: params.user_id,
        action: params.action,
        resource_type: params.resource_type,
        resource_id: params.resource_id,
        since: parse_time(params.since.as_deref(), "since")?,
        until: parse_time(params.until.as_deref(), "until")?,
    };
    let (rows, total) = store::list(&state.db, &filter, paging).await?;
    Ok(axum::Json(Page::new(rows.into_iter().map(AuditOut::from).collect(), total, paging)))
}
