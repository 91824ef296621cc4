//! Webhook logic and its transaction boundaries. Handlers parse and authorise; this decides.

use std::net::IpAddr;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    delivery::{self, AttemptResult, Deliver},
    events,
    model::{NewWebhook, WebhookChanges},
    signing, store,
};
use crate::{
    audit::{self, AuditEntry},
    error::{ApiError, ApiResult},
    http::ssrf::UrlError,
    jobs::{self, Enqueue, Enqueued, Unique},
    state::AppState,
};

pub fn webhook_not_found(raw_id: &str) -> ApiError {
    ApiError::not_found("Webhook not found").with_details(json!({ "webhook_id": raw_id }))
}

/// The URL's host must not be (or resolve to) an address the SSRF guard refuses: 422 with the reason.
async fn check_destination(state: &AppState, url: &str) -> ApiResult<()> {
    match state.jobs.context().outbound.guard().check_url(url).await {
        Ok(_) => Ok(()),
        Err(UrlError::Refused { host, refusal }) => {
            let why = if host == refusal.address.to_string() {
                refusal.to_string()
            } else {
                format!("{host} resolves to {refusal}")
            };
            Err(ApiError::unprocessable(format!("Webhook URL not allowed: {why}")).with_details(json!({
                "url": url, "host": host, "address": refusal.address.to_string(), "reason": refusal.reason
            })))
        }
        Err(UrlError::Invalid(message)) => Err(ApiError::unprocessable(format!("Webhook URL not allowed: {message}"))),
    }
}

fn seal(state: &AppState, secret: &str) -> ApiResult<String> {
    state.sealer.seal(secret).map_err(ApiError::internal)
}

fn open(state: &AppState, sealed: &str) -> ApiResult<String> {
    state.sealer.open(sealed).map_err(ApiError::internal)
}

/// Creates a webhook; returns it with its secret (generated when none was given).
pub async fn create(
    state: &AppState,
    owner: Uuid,
    ip: IpAddr,
    new: NewWebhook,
) -> ApiResult<(store::WebhookRow, String)> {
    check_destination(state, &new.url).await?;
    let secret = new.secret.clone().unwrap_or_else(signing::generate_secret);
    let sealed = seal(state, &secret)?;
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        id,
        &store::NewWebhook {
            owner_id: owner,
            name: new.name.as_deref(),
            url: &new.url,
            events: &new.events,
            description: new.description.as_deref(),
            secret_sealed: &sealed,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry::new("create_webhook", Some(owner), Some(ip)).resource("webhook", id).details(format!(
            "Created webhook to {} for {}",
            row.url,
            row.events.0.join(", ")
        )),
    )
    .await?;
    tx.commit().await?;
    Ok((row, secret))
}

/// Applies a change. Re-enabling clears the failure state.
pub async fn update(
    state: &AppState,
    owner: Uuid,
    ip: IpAddr,
    raw_id: &str,
    id: Uuid,
    changes: WebhookChanges,
) -> ApiResult<store::WebhookRow> {
    if let Some(url) = &changes.url {
        check_destination(state, url).await?;
    }
    let secret_sealed = changes.secret.as_deref().map(|s| seal(state, s)).transpose()?;
    let mut changed: Vec<&str> = Vec::new();
    for (name, set) in [
        ("url", changes.url.is_some()),
        ("events", changes.events.is_some()),
        ("name", changes.name.is_some()),
        ("description", changes.description.is_some()),
        ("secret", changes.secret.is_some()),
        ("is_active", changes.is_active.is_some()),
    ] {
        if set {
            changed.push(name);
        }
    }
    let store_changes = store::Changes {
        url: changes.url,
        events: changes.events,
        name: changes.name,
        description: changes.description,
        secret_sealed,
        is_active: changes.is_active,
    };
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, owner, id, &store_changes).await?.ok_or_else(|| webhook_not_found(raw_id))?;
    audit::record(
        &mut tx,
        AuditEntry::new("update_webhook", Some(owner), Some(ip))
            .resource("webhook", id)
            .details(format!("Changed {}", if changed.is_empty() { "nothing".into() } else { changed.join(", ") })),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes a webhook, its delivery log, and cancels its pending deliveries.
pub async fn delete(state: &AppState, owner: Uuid, ip: IpAddr, raw_id: &str, id: Uuid) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    if !store::delete(&mut tx, owner, id).await? {
        return Err(webhook_not_found(raw_id));
    }
    let cancelled =
        jobs::store::cancel_pending_with_key_prefix(&mut tx, &delivery::job_key_prefix(id), "the webhook was deleted")
            .await?;
    audit::record(
        &mut tx,
        AuditEntry::new("delete_webhook", Some(owner), Some(ip))
            .resource("webhook", id)
            .details(format!("Deleted webhook; {cancelled} pending deliveries cancelled")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The owner's webhook or 404.
pub async fn owned(state: &AppState, owner: Uuid, raw_id: &str) -> ApiResult<store::WebhookRow> {
    let id = Uuid::parse_str(raw_id).map_err(|_| webhook_not_found(raw_id))?;
    store::owned(&state.db, owner, id).await?.ok_or_else(|| webhook_not_found(raw_id))
}

/// The secret, for its owner (audited).
pub async fn reveal_secret(state: &AppState, owner: Uuid, ip: IpAddr, raw_id: &str) -> ApiResult<String> {
    let hook = owned(state, owner, raw_id).await?;
    let secret = open(state, &hook.secret_sealed)?;
    let mut tx = state.db.begin().await?;
    audit::record(&mut tx, AuditEntry::new("view_webhook_secret", Some(owner), Some(ip)).resource("webhook", hook.id))
        .await?;
    tx.commit().await?;
    Ok(secret)
}

/// A new generated secret; the old one stops signing at once.
pub async fn rotate_secret(state: &AppState, owner: Uuid, ip: IpAddr, raw_id: &str) -> ApiResult<String> {
    let id = Uuid::parse_str(raw_id).map_err(|_| webhook_not_found(raw_id))?;
    let secret = signing::generate_secret();
    let changes = store::Changes { secret_sealed: Some(seal(state, &secret)?), ..store::Changes::default() };
    let mut tx = state.db.begin().await?;
    store::update(&mut tx, owner, id, &changes).await?.ok_or_else(|| webhook_not_found(raw_id))?;
    audit::record(&mut tx, AuditEntry::new("rotate_webhook_secret", Some(owner), Some(ip)).resource("webhook", id))
        .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Sends `webhook.test` now, once, and logs the attempt. It neither retries nor counts towards
/// disabling the endpoint, and it works on a disabled webhook (to check it before re-enabling).
pub async fn test(state: &AppState, owner: Uuid, raw_id: &str) -> ApiResult<AttemptResult> {
    let hook = owned(state, owner, raw_id).await?;
    let secret = open(state, &hook.secret_sealed)?;
    let data = json!({ "message": "This is a test webhook delivery" });
    let job = Deliver {
        webhook_id: hook.id,
        delivery_id: Uuid::now_v7(),
        event: events::WEBHOOK_TEST.to_owned(),
        body: signing::envelope(events::WEBHOOK_TEST, OffsetDateTime::now_utc(), &data),
    };
    let ctx = state.jobs.context();
    let result = delivery::send(
        &ctx.outbound,
        &hook.url,
        &secret,
        job.delivery_id,
        &job.event,
        &job.body,
        state.settings.webhooks.timeout,
    )
    .await;
    let mut tx = state.db.begin().await?;
    store::insert_attempt(&mut tx, &result.log(&job, None)).await?;
    tx.commit().await?;
    Ok(result)
}

/// Schedules one more attempt of the delivery that log entry `delivery_row_id` belongs to (same
/// `webhook-id`, same body), due now. A delivery whose automatic retry is still pending is made
/// due now instead of queued twice.
pub async fn retry_delivery(
    state: &AppState,
    owner: Uuid,
    ip: IpAddr,
    raw_id: &str,
    raw_delivery_id: &str,
) -> ApiResult<(Enqueued, Uuid)> {
    let hook = owned(state, owner, raw_id).await?;
    let not_found = || {
        ApiError::not_found("Delivery not found")
            .with_details(json!({ "webhook_id": raw_id, "delivery_id": raw_delivery_id }))
    };
    let row_id = Uuid::parse_str(raw_delivery_id).map_err(|_| not_found())?;
    let row = store::delivery(&state.db, hook.id, row_id).await?.ok_or_else(not_found)?;
    if !hook.is_active {
        return Err(ApiError::bad_request("The webhook is disabled; enable it before retrying deliveries")
            .with_details(json!({ "webhook_id": raw_id })));
    }
    let job = Deliver {
        webhook_id: hook.id,
        delivery_id: row.delivery_id,
        event: row.event.clone(),
        body: row.payload.clone(),
    };
    let options = Enqueue {
        unique: Some(Unique::WhileUnfinished(delivery::job_key(hook.id, row.delivery_id))),
        max_attempts: Some(1),
        ..Enqueue::default()
    };
    let mut tx = state.db.begin().await?;
    let enqueued = jobs::enqueue(&mut tx, &job, options).await?;
    if !enqueued.created && enqueued.state == "pending" {
        jobs::store::run_now(&mut tx, enqueued.id).await?;
    }
    audit::record(
        &mut tx,
        AuditEntry::new("retry_webhook_delivery", Some(owner), Some(ip))
            .resource("webhook", hook.id)
            .details(format!("Retry of delivery {} ({})", row.delivery_id, row.event)),
    )
    .await?;
    tx.commit().await?;
    Ok((enqueued, row.delivery_id))
}
