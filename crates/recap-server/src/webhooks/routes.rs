//! `/api/v1/webhooks`: the caller's own webhooks. Someone else's webhook, an unknown id and a
//! malformed id all answer the same 404 `Webhook not found`.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    events::{CATALOGUE, EventInfo},
    model::{DeliveryOut, RetryOut, SecretOut, TestOut, WebhookCreatedOut, WebhookIn, WebhookOut, WebhookPatch},
    service::{self, webhook_not_found},
    store,
};
use crate::{
    accounts::auth::CurrentUser,
    error::{ApiResult, ErrorEnvelope},
    http::{
        extract::{Json, Path, Query},
        pagination::{Page, PageParams},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(list_events))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(get_secret))
        .routes(routes!(regenerate_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

/// The caller's webhooks, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<WebhookOut>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<WebhookOut>>> {
    let paging = params.validate()?;
    let (rows, total) = store::list(&state.db, caller.user.id, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(WebhookOut::from).collect(), total, paging)))
}

/// Create a webhook. The answer carries its `secret` (generated when none is given).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = WebhookIn,
    responses((status = 201, body = WebhookCreatedOut), (status = 401, body = ErrorEnvelope),
        (status = 422, description = "Invalid fields, or a URL that is or resolves to a private, loopback, link-local or metadata address", body = ErrorEnvelope)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(input): Json<WebhookIn>,
) -> ApiResult<(StatusCode, axum::Json<WebhookCreatedOut>)> {
    let new = input.validate()?;
    let (row, secret) = service::create(&state, caller.user.id, caller.ip, new).await?;
    Ok((StatusCode::CREATED, axum::Json(WebhookCreatedOut { webhook: WebhookOut::from(&row), secret })))
}

/// The events Recap emits, with what their `data` holds.
#[utoipa::path(get, path = "/api/v1/webhooks/events", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = Vec<EventInfo>), (status = 401, body = ErrorEnvelope)))]
async fn list_events(_caller: CurrentUser) -> axum::Json<&'static [EventInfo]> {
    axum::Json(CATALOGUE)
}

/// One of the caller's webhooks (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<WebhookOut>> {
    let hook = service::owned(&state, caller.user.id, &raw_id).await?;
    Ok(axum::Json(WebhookOut::from(&hook)))
}

/// Change any of the create fields and `is_active`; `is_active: true` re-enables a disabled webhook.
#[utoipa::path(patch, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)), request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn patch_webhook(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<axum::Json<WebhookOut>> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| webhook_not_found(&raw_id))?;
    let changes = patch.validate()?;
    let row = service::update(&state, caller.user.id, caller.ip, &raw_id, id, changes).await?;
    Ok(axum::Json(WebhookOut::from(&row)))
}

/// Delete a webhook, its delivery log and its pending deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| webhook_not_found(&raw_id))?;
    service::delete(&state, caller.user.id, caller.ip, &raw_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's signing secret (owner only; audited).
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}/secret", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = SecretOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_secret(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<SecretOut>> {
    let secret = service::reveal_secret(&state, caller.user.id, caller.ip, &raw_id).await?;
    Ok(axum::Json(SecretOut { secret }))
}

/// Replace the signing secret with a new generated one.
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/regenerate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = SecretOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn regenerate_secret(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<SecretOut>> {
    let secret = service::rotate_secret(&state, caller.user.id, caller.ip, &raw_id).await?;
    Ok(axum::Json(SecretOut { secret }))
}

/// Send a `webhook.test` event now (synchronously, once, logged) and report the outcome.
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path)),
    responses((status = 200, body = TestOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn test_webhook(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<TestOut>> {
    let result = service::test(&state, caller.user.id, &raw_id).await?;
    Ok(axum::Json(TestOut { success: result.success, status_code: result.status, message: result.summary() }))
}

/// The webhook's delivery log, one entry per attempt, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("webhook_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<DeliveryOut>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<DeliveryOut>>> {
    let hook = service::owned(&state, caller.user.id, &raw_id).await?;
    let paging = params.validate()?;
    let (rows, total) = store::list_deliveries(&state.db, hook.id, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(DeliveryOut::from).collect(), total, paging)))
}

/// Deliver again the delivery a log entry belongs to: one more attempt, due now (202).
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    security(("bearer" = [])), params(("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path, description = "A delivery log entry id")),
    responses((status = 202, body = RetryOut), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn retry_delivery(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path((raw_id, raw_delivery_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<RetryOut>)> {
    let (enqueued, delivery_id) =
        service::retry_delivery(&state, caller.user.id, caller.ip, &raw_id, &raw_delivery_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RetryOut { message: "Delivery retry scheduled".into(), delivery_id, job_id: enqueued.id }),
    ))
}
