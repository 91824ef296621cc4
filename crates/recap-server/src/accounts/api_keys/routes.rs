use axum::{extract::State, http::StatusCode};
use time::{Duration, OffsetDateTime};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    SCOPES, flush_usage,
    model::{ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, ApiKeyRevokedOut, ListParams},
    store,
};
use crate::{
    accounts::auth::{CurrentUser, Invalidation},
    audit::{self, AuditEntry},
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::extract::{Json, Path, Query},
    state::AppState,
    webhooks,
};

pub fn router() -> OpenApiRouter<AppState> {
    // The original served only the trailing-slash spelling; both answer directly, no redirect.
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(create_key_no_slash, list_keys_no_slash))
        .routes(routes!(revoke_key))
}

fn validate(input: &ApiKeyIn) -> Result<(String, String, Option<i64>), ApiError> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 255 {
        errors.push(FieldError::new(
            vec!["body".into(), "name".into()],
            "must be 1 to 255 characters",
            "string_length",
        ));
    }
    let scopes = input.scopes.as_deref().map(str::trim).unwrap_or("sync:commits,read:repos").to_owned();
    let parts: Vec<&str> = scopes.split(',').map(str::trim).collect();
    if parts.is_empty()
        || !parts.iter().all(|p| SCOPES.contains(p))
        || parts.len() != parts.iter().collect::<std::collections::HashSet<_>>().len()
    {
        errors.push(FieldError::new(
            vec!["body".into(), "scopes".into()],
            "must be one of 'sync:commits', 'read:repos', 'sync:commits,read:repos'",
            "enum",
        ));
    }
    if let Some(days) = input.expires_in_days
        && !(1..=365).contains(&days)
    {
        errors.push(FieldError::new(
            vec!["body".into(), "expires_in_days".into()],
            "must be between 1 and 365",
            "value_error",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((name, parts.join(","), input.expires_in_days))
}

/// Create an API key; `full_key` is shown in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys/", tag = "api-keys", security(("bearer" = [])), request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyCreatedOut), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_key(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(input): Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, axum::Json<ApiKeyCreatedOut>)> {
    let (name, scopes, days) = validate(&input)?;
    let (full_key, prefix) = super::generate();
    let key_hash = state.auth.hash_api_key(&full_key);
    let expires_at = days.map(|d| OffsetDateTime::now_utc() + Duration::days(d));
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        &store::NewKey {
            user_id: caller.user.id,
            name: &name,
            prefix: &prefix,
            key_hash: &key_hash,
            scopes: &scopes,
            expires_at,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::new("create_api_key", Some(caller.user.id), Some(caller.ip))
            .resource("api_key", row.id)
            .details(format!("Created API key '{name}' with prefix {prefix}")),
    )
    .await?;
    let out = ApiKeyOut::from(&row);
    webhooks::emit(&mut tx, caller.user.id, webhooks::events::API_KEY_CREATED, serde_json::json!(out)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(ApiKeyCreatedOut { key: out, full_key })))
}

/// Create an API key (same as with the trailing slash).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyCreatedOut), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_key_no_slash(
    state: State<AppState>,
    caller: CurrentUser,
    input: Json<ApiKeyIn>,
) -> ApiResult<(StatusCode, axum::Json<ApiKeyCreatedOut>)> {
    create_key(state, caller, input).await
}

/// The caller's API keys, newest first; revoked ones with `include_revoked=true`.
#[utoipa::path(get, path = "/api/v1/api-keys/", tag = "api-keys", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Vec<ApiKeyOut>), (status = 401, body = ErrorEnvelope)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<ApiKeyOut>>> {
    // The caller asked for current figures: write the buffered usage first.
    flush_usage(&state.auth, &state.db).await;
    let rows = store::list_for_user(&state.db, caller.user.id, params.include_revoked).await?;
    Ok(axum::Json(rows.iter().map(ApiKeyOut::from).collect()))
}

/// The caller's API keys (same as with the trailing slash).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Vec<ApiKeyOut>), (status = 401, body = ErrorEnvelope)))]
async fn list_keys_no_slash(
    state: State<AppState>,
    caller: CurrentUser,
    params: Query<ListParams>,
) -> ApiResult<axum::Json<Vec<ApiKeyOut>>> {
    list_keys(state, caller, params).await
}

/// Revoke one of the caller's keys; the next request with it gets 401.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiKeyRevokedOut), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ApiKeyRevokedOut>> {
    let mut tx = state.db.begin().await?;
    let key =
        store::owned(&mut tx, caller.user.id, id).await?.ok_or_else(|| ApiError::not_found("API key not found"))?;
    if key.status == "revoked" {
        return Err(ApiError::bad_request("API key already revoked"));
    }
    let revoked = store::revoke(&mut tx, id).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("revoke_api_key", Some(caller.user.id), Some(caller.ip))
            .resource("api_key", id)
            .details(format!("Revoked API key '{}' ({})", revoked.name, revoked.prefix)),
    )
    .await?;
    let out = ApiKeyOut::from(&revoked);
    webhooks::emit(&mut tx, caller.user.id, webhooks::events::API_KEY_REVOKED, serde_json::json!(out)).await?;
    tx.commit().await?;
    state.auth.invalidate(Invalidation::ApiKey(revoked.prefix.clone())).await;
    Ok(axum::Json(ApiKeyRevokedOut {
        message: format!("API key '{}' has been revoked", revoked.name),
        revoked_key: out,
    }))
}
