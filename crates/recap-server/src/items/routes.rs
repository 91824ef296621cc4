//! `/api/v1/items`: the caller's own items. Someone else's item, an unknown id and a malformed id
//! all answer the same 404, so ids reveal nothing.

use axum::{extract::State, http::StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{ItemIn, ItemOut, ItemPatch},
    store,
};
use crate::{
    accounts::auth::CurrentUser,
    error::{ApiError, ApiResult, ErrorEnvelope},
    http::{
        extract::{Json, Path, Query},
        pagination::{Page, PageParams},
    },
    state::AppState,
    webhooks,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_items, create_item)).routes(routes!(get_item, patch_item, delete_item))
}

fn item_not_found(raw_id: &str) -> ApiError {
    ApiError::not_found("Item not found").with_details(serde_json::json!({ "item_id": raw_id }))
}

/// A malformed id names no item: the same 404 as an unknown one.
fn parse_id(raw_id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw_id).map_err(|_| item_not_found(raw_id))
}

/// The caller's items, newest first.
#[utoipa::path(get, path = "/api/v1/items", tag = "items", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<ItemOut>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_items(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<ItemOut>>> {
    let paging = params.validate()?;
    let (rows, total) = store::list(&state.db, caller.user.id, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(ItemOut::from).collect(), total, paging)))
}

/// Create an item owned by the caller.
#[utoipa::path(post, path = "/api/v1/items", tag = "items", security(("bearer" = [])), request_body = ItemIn,
    responses((status = 201, body = ItemOut), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_item(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(input): Json<ItemIn>,
) -> ApiResult<(StatusCode, axum::Json<ItemOut>)> {
    let new = input.validate()?;
    let mut tx = state.db.begin().await?;
    let row = store::insert(&mut tx, caller.user.id, &new).await?;
    let out = ItemOut::from(&row);
    webhooks::emit(&mut tx, caller.user.id, webhooks::events::ITEM_CREATED, serde_json::json!(out)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// One of the caller's items.
#[utoipa::path(get, path = "/api/v1/items/{item_id}", tag = "items", security(("bearer" = [])),
    params(("item_id" = Uuid, Path)),
    responses((status = 200, body = ItemOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_item(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<axum::Json<ItemOut>> {
    let id = parse_id(&raw_id)?;
    let row = store::by_id(&state.db, caller.user.id, id).await?.ok_or_else(|| item_not_found(&raw_id))?;
    Ok(axum::Json(ItemOut::from(&row)))
}

/// Change some fields of one of the caller's items; fields not sent stay as they are.
#[utoipa::path(patch, path = "/api/v1/items/{item_id}", tag = "items", security(("bearer" = [])),
    params(("item_id" = Uuid, Path)), request_body = ItemPatch,
    responses((status = 200, body = ItemOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn patch_item(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
    Json(patch): Json<ItemPatch>,
) -> ApiResult<axum::Json<ItemOut>> {
    let id = parse_id(&raw_id)?;
    let changes = patch.validate()?;
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, caller.user.id, id, &changes).await?.ok_or_else(|| item_not_found(&raw_id))?;
    let out = ItemOut::from(&row);
    webhooks::emit(&mut tx, caller.user.id, webhooks::events::ITEM_UPDATED, serde_json::json!(out)).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// Delete one of the caller's items.
#[utoipa::path(delete, path = "/api/v1/items/{item_id}", tag = "items", security(("bearer" = [])),
    params(("item_id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_item(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&raw_id)?;
    let mut tx = state.db.begin().await?;
    let deleted = store::delete(&mut tx, caller.user.id, id).await?;
    if !deleted {
        return Err(item_not_found(&raw_id));
    }
    webhooks::emit(&mut tx, caller.user.id, webhooks::events::ITEM_DELETED, serde_json::json!({ "id": id })).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
