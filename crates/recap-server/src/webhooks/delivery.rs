//! Sending a delivery: one `webhook.deliver` job per (event, webhook), one logged row per attempt.
//!
//! An attempt POSTs the stored body with the signature headers ([`super::signing`]), waits at most
//! `WEBHOOK_TIMEOUT` (10 s), follows no redirect and counts only a 2xx answer as delivered. A
//! failed attempt is retried after the delays of `WEBHOOK_RETRY_SCHEDULE` (5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h); the job is dead after the last. Every attempt of a delivery carries the same
//! `webhook-id` (the delivery id), so a receiver can drop duplicates (delivery is at least once).
//!
//! An endpoint whose attempts have all failed for `WEBHOOK_DISABLE_AFTER` (5 days) is disabled
//! (`is_active: false`, `disabled_reason`); its owner re-enables it with `PATCH {"is_active": true}`.
//! Deliveries of a disabled or deleted webhook are cancelled when their turn comes.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{signing, store};
use crate::{
    http::ssrf::GuardedClient,
    jobs::{Job, JobContext, JobError, JobMeta, with_jitter},
};

/// Characters of a receiver's answer kept in the log.
pub const RESPONSE_BODY_CHARS: usize = 10_000;
/// Bytes of a receiver's answer read at most.
const RESPONSE_BODY_READ: usize = 64 * 1024;

/// Attempts of one delivery: the first plus at most [`super::settings::MAX_RETRIES`] retries.
pub const MAX_ATTEMPTS: i32 = 1 + super::settings::MAX_RETRIES as i32;

/// The unique key of a delivery's job; the webhook's prefix cancels its pending deliveries.
pub fn job_key(webhook_id: Uuid, delivery_id: Uuid) -> String {
    format!("{}{delivery_id}", job_key_prefix(webhook_id))
}

pub fn job_key_prefix(webhook_id: Uuid) -> String {
    format!("webhook.deliver:{webhook_id}:")
}

/// The job of one delivery: the body is fixed when the event is emitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub event: String,
    pub body: String,
}

impl Job for Deliver {
    const KIND: &'static str = "webhook.deliver";
    const MAX_ATTEMPTS: i32 = MAX_ATTEMPTS;

    async fn run(self, ctx: JobContext, meta: JobMeta) -> Result<(), JobError> {
        let Some(hook) = store::by_id(&ctx.db, self.webhook_id).await? else {
            return Err(JobError::Cancel("the webhook was deleted".into()));
        };
        if !hook.is_active {
            return Err(JobError::Cancel("the webhook is disabled".into()));
        }
        let secret = ctx
            .sealer
            .open(&hook.secret_sealed)
            .map_err(|e| JobError::Fail(e.context("could not open the webhook secret (was the key changed?)")))?;
        let result = send(
            &ctx.outbound,
            &hook.url,
            &secret,
            self.delivery_id,
            &self.event,
            &self.body,
            ctx.settings.webhooks.timeout,
        )
        .await;

        let now = OffsetDateTime::now_utc();
        let next_retry_at = match result.success || meta.is_last_attempt() {
            true => None,
            false => ctx
                .settings
                .webhooks
                .retry_schedule
                .get(meta.attempt as usize - 1)
                .map(|delay| now + with_jitter(*delay, 0.10)),
        };
        let mut tx = ctx.db.begin().await?;
        store::insert_attempt(&mut tx, &result.log(&self, next_retry_at)).await?;
        if result.success {
            store::clear_failing(&mut tx, hook.id).await?;
        } else if let Some(since) = store::mark_failing(&mut tx, hook.id, now).await? {
            let disable_after = ctx.settings.webhooks.disable_after;
            if (now - since).unsigned_abs() >= disable_after {
                let reason = format!(
                    "Disabled automatically: every delivery has failed since {} (last: {})",
                    crate::time::rfc3339(since),
                    result.summary()
                );
                store::disable(&mut tx, hook.id, &reason).await?;
                tracing::warn!(webhook_id = %hook.id, "webhook disabled after failing for {disable_after:?}");
            }
        }
        tx.commit().await?;

        if result.success {
            return Ok(());
        }
        let error = anyhow::anyhow!("delivery to {} failed: {}", hook.url, result.summary());
        match next_retry_at {
            Some(at) => Err(JobError::RetryAt(at, error)),
            None => Err(JobError::GiveUp(error)),
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub success: bool,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

impl AttemptResult {
    /// `Delivered successfully`, `Receiver responded with status N`, or the transport error.
    pub fn summary(&self) -> String {
        match (self.success, self.status, &self.error) {
            (true, _, _) => "Delivered successfully".into(),
            (false, Some(status), _) => format!("Receiver responded with status {status}"),
            (false, None, Some(error)) => error.clone(),
            (false, None, None) => "Delivery failed".into(),
        }
    }

    pub fn log<'a>(&'a self, job: &'a Deliver, next_retry_at: Option<OffsetDateTime>) -> store::NewAttempt<'a> {
        store::NewAttempt {
            webhook_id: job.webhook_id,
            delivery_id: job.delivery_id,
            event: &job.event,
            payload: &job.body,
            status_code: self.status,
            success: self.success,
            duration_ms: self.duration_ms,
            response_body: self.response_body.as_deref(),
            error: self.error.as_deref(),
            next_retry_at,
        }
    }
}

/// One signed POST of `body` to `url`. Never fails: every problem is part of the result.
pub async fn send(
    client: &GuardedClient,
    url: &str,
    secret: &str,
    delivery_id: Uuid,
    event: &str,
    body: &str,
    timeout: Duration,
) -> AttemptResult {
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis().min(i64::MAX as u128) as i64;
    let failed = |error: String, started: Instant| AttemptResult {
        status: None,
        success: false,
        duration_ms: elapsed(started),
        response_body: None,
        error: Some(error),
    };
    let url = match client.prepare(url) {
        Ok(url) => url,
        Err(e) => return failed(e.to_string(), started),
    };
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let id = delivery_id.to_string();
    let request = client
        .client()
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("x-webhook-event", event)
        .header("x-webhook-signature", signing::template_signature(secret, body.as_bytes()))
        .header("x-webhook-delivery", &id)
        .header("x-webhook-timestamp", timestamp.to_string())
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signing::standard_signature(secret, &id, timestamp, body.as_bytes()))
        .body(body.to_owned());
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(describe(&e, timeout), started),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    let mut read_error = None;
    while bytes.len() < RESPONSE_BODY_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                read_error = Some(describe(&e, timeout));
                break;
            }
        }
    }
    let text: String = String::from_utf8_lossy(&bytes).chars().take(RESPONSE_BODY_CHARS).collect();
    AttemptResult {
        status: Some(status.as_u16()),
        success: status.is_success(),
        duration_ms: elapsed(started),
        response_body: (!text.is_empty()).then_some(text),
        error: read_error
            .or_else(|| (!status.is_success()).then(|| format!("Receiver responded with status {}", status.as_u16()))),
    }
}

/// A transport error in one line, with its causes (e.g. the SSRF guard's refusal).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("Timed out after {} s", timeout.as_secs_f64());
    }
    let mut text = without_url(e);
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// reqwest prints `error sending request for url (…)`; the URL is in the log row already.
fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match text.find(" for url (") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Deletes delivery log entries older than `WEBHOOK_DELIVERY_RETENTION_DAYS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupDeliveries {}

impl Job for CleanupDeliveries {
    const KIND: &'static str = "cleanup.webhook_deliveries";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let days = ctx.settings.webhooks.delivery_retention_days;
        let n = store::purge_deliveries(&ctx.db, OffsetDateTime::now_utc() - time::Duration::days(days)).await?;
        tracing::info!(deleted = n, "purged old webhook delivery logs");
        Ok(())
    }
}
