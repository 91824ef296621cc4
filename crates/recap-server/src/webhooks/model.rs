//! Request and response types of `/api/v1/webhooks`, and the validated values they parse into.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    signing::SECRET_PREFIX,
    store::{DeliveryRow, WebhookRow},
};
use crate::{
    error::{ApiError, FieldError},
    http::ssrf::parse_http_url,
    time::rfc3339,
};

pub const URL_MAX_CHARS: usize = 2048;
pub const NAME_MAX_CHARS: usize = 255;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
pub const EVENT_MAX_CHARS: usize = 100;
pub const EVENTS_MAX: usize = 100;

/// A new webhook.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookIn {
    /// An `http` or `https` URL (at most 2048 characters) that is not, and does not resolve to, a
    /// private, loopback, link-local or metadata address.
    pub url: String,
    /// Event names to receive (at least one; see `GET /api/v1/webhooks/events`).
    pub events: Vec<String>,
    /// 1 to 255 characters.
    pub name: Option<String>,
    /// At most 1000 characters.
    pub description: Option<String>,
    /// Your own signing secret (16 to 255 characters; `whsec_<base64 of 24 to 64 bytes>` for the
    /// Standard Webhooks form). Generated when absent.
    pub secret: Option<String>,
}

/// A partial change: only the fields sent change.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WebhookPatch {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub url: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<String>>,
    /// `true` re-enables a disabled webhook and clears its failure state.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<bool>)]
    pub is_active: Option<Option<bool>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: Uuid,
    pub name: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    pub description: Option<String>,
    /// Why it was disabled automatically (every delivery failing for 5 days); `null` otherwise.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed; `null` while deliveries succeed.
    pub failing_since: Option<String>,
    pub created_at: String,
    /// `null` until first changed.
    pub updated_at: Option<String>,
}

impl From<&WebhookRow> for WebhookOut {
    fn from(r: &WebhookRow) -> Self {
        WebhookOut {
            id: r.id,
            name: r.name.clone(),
            url: r.url.clone(),
            events: r.events.0.clone(),
            is_active: r.is_active,
            description: r.description.clone(),
            disabled_reason: r.disabled_reason.clone(),
            failing_since: r.failing_since.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: r.updated_at.map(rfc3339),
        }
    }
}

/// The create answer: the webhook plus its `secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreatedOut {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    pub secret: String,
}

/// The outcome of `POST /webhooks/{id}/test` (delivered synchronously, once).
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    pub success: bool,
    /// The receiver's status, `null` when there was no answer.
    pub status_code: Option<u16>,
    /// `Delivered successfully`, `Receiver responded with status <N>`, or the transport error.
    pub message: String,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The delivery this attempt belongs to: the `webhook-id` header, the same on every attempt.
    pub delivery_id: Uuid,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// Attempts logged for this delivery so far.
    pub attempt_count: i64,
    pub response_status: Option<i32>,
    pub success: bool,
    pub duration_ms: i64,
    /// The first 10 000 characters of the receiver's answer.
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    /// When the next attempt is due; `null` after a success or the last attempt.
    pub next_retry_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<&DeliveryRow> for DeliveryOut {
    fn from(r: &DeliveryRow) -> Self {
        DeliveryOut {
            id: r.id,
            webhook_id: r.webhook_id,
            delivery_id: r.delivery_id,
            event_type: r.event.clone(),
            attempt: r.attempt,
            attempt_count: r.attempt_count,
            response_status: r.status_code,
            success: r.success,
            duration_ms: r.duration_ms,
            response_body: r.response_body.clone(),
            error_message: r.error.clone(),
            next_retry_at: r.next_retry_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            delivered_at: r.delivered_at.map(rfc3339),
        }
    }
}

/// The answer to a delivery retry (202): the attempt runs in the background.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryOut {
    pub message: String,
    pub delivery_id: Uuid,
    pub job_id: Uuid,
}

// --- Validation -------------------------------------------------------------------------------------

/// A validated new webhook (the URL's addresses are checked separately, see `service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub secret: Option<String>,
    pub is_active: Option<bool>,
}

fn field(name: &str, msg: impl Into<String>, kind: &str) -> FieldError {
    FieldError::new(vec!["body".into(), name.into()], msg, kind)
}

fn parse_url(raw: &str) -> Result<String, FieldError> {
    let url = raw.trim();
    if url.is_empty() {
        return Err(field("url", "must not be empty", "string_too_short"));
    }
    if url.chars().count() > URL_MAX_CHARS {
        return Err(field("url", "must be at most 2048 characters", "string_too_long"));
    }
    parse_http_url(url).map_err(|e| field("url", e.to_string(), "url_parsing"))?;
    Ok(url.to_owned())
}

fn parse_events(raw: &[String]) -> Result<Vec<String>, FieldError> {
    let mut events: Vec<String> = Vec::new();
    for e in raw.iter().map(|e| e.trim()) {
        if e.is_empty() || e.chars().count() > EVENT_MAX_CHARS || e.chars().any(char::is_whitespace) {
            return Err(field("events", "each event must be 1 to 100 characters without spaces", "value_error"));
        }
        if !events.iter().any(|x| x == e) {
            events.push(e.to_owned());
        }
    }
    if events.is_empty() {
        return Err(field("events", "must list at least one event", "too_short"));
    }
    if events.len() > EVENTS_MAX {
        return Err(field("events", "must list at most 100 events", "too_long"));
    }
    Ok(events)
}

fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err(field("name", "must not be empty", "string_too_short")),
        n if n > NAME_MAX_CHARS => Err(field("name", "must be at most 255 characters", "string_too_long")),
        _ => Ok(name.to_owned()),
    }
}

fn parse_description(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(d) = raw.map(str::trim).filter(|d| !d.is_empty()) else { return Ok(None) };
    if d.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(field("description", "must be at most 1000 characters", "string_too_long"));
    }
    Ok(Some(d.to_owned()))
}

/// A caller's own secret: 16 to 255 visible ASCII characters; a `whsec_` one must carry base64
/// of 24 to 64 bytes (Standard Webhooks). Never echoed in the error.
fn parse_secret(raw: &str) -> Result<String, FieldError> {
    let secret = raw.trim();
    let visible = secret.chars().all(|c| c.is_ascii_graphic());
    if !(16..=255).contains(&secret.len()) || !visible {
        return Err(field("secret", "must be 16 to 255 visible ASCII characters", "value_error"));
    }
    if let Some(rest) = secret.strip_prefix(SECRET_PREFIX)
        && !STANDARD.decode(rest).is_ok_and(|key| (24..=64).contains(&key.len()))
    {
        return Err(field("secret", "a whsec_ secret must be followed by base64 of 24 to 64 bytes", "value_error"));
    }
    Ok(secret.to_owned())
}

fn collect<T>(value: Result<T, FieldError>, errors: &mut Vec<FieldError>) -> Option<T> {
    value.map_err(|e| errors.push(e)).ok()
}

fn null_refused(name: &str, kind: &str, errors: &mut Vec<FieldError>) {
    errors.push(field(name, format!("must be {kind}, not null"), "type_error"));
}

impl WebhookIn {
    pub fn validate(self) -> Result<NewWebhook, ApiError> {
        let mut errors = Vec::new();
        let url = collect(parse_url(&self.url), &mut errors);
        let events = collect(parse_events(&self.events), &mut errors);
        let name = self.name.as_deref().map(|n| collect(parse_name(n), &mut errors));
        let description = collect(parse_description(self.description.as_deref()), &mut errors);
        let secret = self.secret.as_deref().map(|s| collect(parse_secret(s), &mut errors));
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(NewWebhook {
            url: url.expect("checked"),
            events: events.expect("checked"),
            name: name.flatten(),
            description: description.flatten(),
            secret: secret.flatten(),
        })
    }
}

impl WebhookPatch {
    pub fn validate(self) -> Result<WebhookChanges, ApiError> {
        let mut errors = Vec::new();
        let mut changes = WebhookChanges::default();
        match self.url {
            None => {}
            Some(None) => null_refused("url", "a string", &mut errors),
            Some(Some(raw)) => changes.url = collect(parse_url(&raw), &mut errors),
        }
        match self.events {
            None => {}
            Some(None) => null_refused("events", "a list of strings", &mut errors),
            Some(Some(raw)) => changes.events = collect(parse_events(&raw), &mut errors),
        }
        match self.name {
            None => {}
            Some(None) => changes.name = Some(None),
            Some(Some(raw)) => changes.name = collect(parse_name(&raw), &mut errors).map(Some),
        }
        if let Some(raw) = self.description {
            changes.description = collect(parse_description(raw.as_deref()), &mut errors);
        }
        match self.secret {
            None => {}
            Some(None) => null_refused("secret", "a string", &mut errors),
            Some(Some(raw)) => changes.secret = collect(parse_secret(&raw), &mut errors),
        }
        match self.is_active {
            None => {}
            Some(None) => null_refused("is_active", "a boolean", &mut errors),
            Some(Some(active)) => changes.is_active = Some(active),
        }
        if errors.is_empty() { Ok(changes) } else { Err(ApiError::validation(errors)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::parse_json;

    fn locs(err: ApiError) -> Vec<String> {
        err.report.field_errors.unwrap().into_iter().map(|e| e.loc.last().unwrap().to_string()).collect()
    }

    #[test]
    fn new_webhooks_are_trimmed_and_checked() {
        let ok = WebhookIn {
            url: " https://example.com/hook ".into(),
            events: vec![" item.created".into(), "item.created".into(), "api_key.revoked".into()],
            name: Some(" CI ".into()),
            description: Some("  ".into()),
            secret: None,
        }
        .validate()
        .unwrap();
        assert_eq!(ok.url, "https://example.com/hook");
        assert_eq!(ok.events, ["item.created", "api_key.revoked"]);
        assert_eq!((ok.name.as_deref(), ok.description), (Some("CI"), None));

        let err = WebhookIn {
            url: "ftp://example.com".into(),
            events: vec![],
            name: Some(" ".into()),
            description: Some("d".repeat(1001)),
            secret: Some("short".into()),
        }
        .validate()
        .unwrap_err();
        assert_eq!(locs(err), ["\"url\"", "\"events\"", "\"name\"", "\"description\"", "\"secret\""]);
    }

    #[test]
    fn secrets_are_checked_without_echoing_them() {
        assert!(parse_secret("0123456789abcdef").is_ok());
        assert!(parse_secret(&format!("whsec_{}", STANDARD.encode([7u8; 32]))).is_ok());
        let e = parse_secret("whsec_notbase64!!!!!!").unwrap_err();
        assert!(!e.msg.contains("notbase64"));
        assert!(parse_secret("with a space inside it").is_err());
    }

    #[test]
    fn patches_tell_null_from_absent() {
        let patch: WebhookPatch = parse_json(br#"{"name": null, "is_active": true}"#).unwrap();
        assert_eq!(
            patch.validate().unwrap(),
            WebhookChanges { name: Some(None), is_active: Some(true), ..WebhookChanges::default() }
        );
        let patch: WebhookPatch =
            parse_json(br#"{"url": null, "events": null, "secret": null, "is_active": null}"#).unwrap();
        assert_eq!(locs(patch.validate().unwrap_err()), ["\"url\"", "\"events\"", "\"secret\"", "\"is_active\""]);
    }
}
