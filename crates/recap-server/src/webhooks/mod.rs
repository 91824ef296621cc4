//! Outgoing webhooks: owner-scoped endpoints (`/api/v1/webhooks`), the event catalogue, signed
//! deliveries through the job queue with retries, and a delivery log.
//!
//! # Emitting an event
//!
//! A feature calls [`emit`] **inside the transaction of the change** (the outbox): it enqueues one
//! `webhook.deliver` job per active webhook of the audience that subscribes to the event, so the
//! deliveries exist exactly when the change commits (a rolled-back change sends nothing).
//!
//! ```ignore
//! let mut tx = state.db.begin().await?;
//! // ... the change ...
//! webhooks::emit(&mut tx, Audience::User(owner_id), events::ITEM_CREATED, json!(ItemOut::from(&row))).await?;
//! tx.commit().await?;
//! ```
//!
//! Add every new event name to [`events::CATALOGUE`]. Project-level events (`commits.ingested`,
//! `repo.sync_status_changed`) go to the webhooks of the project's members:
//! `Audience::Users(member_ids)`.
//!
//! # Secrets
//!
//! A webhook's secret is stored sealed (AES-256-GCM with the key of `crate::crypto`:
//! `CREDENTIALS_ENCRYPTION_KEY`, else `SECRET_KEY`), so a copy of the database alone does not let
//! anyone forge deliveries. It is shown in the create answer, to its owner by
//! `GET /webhooks/{id}/secret`, and on rotation — never in a list or a get. Changing the key
//! makes stored secrets unreadable: deliveries then fail (`failed`) until each secret is rotated.
//!
//! See [`delivery`] for the wire format and the retry rules, [`signing`] for the signatures, and
//! `crate::http::ssrf` for the URL checks.

pub mod delivery;
pub mod events;
pub mod model;
pub mod routes;
pub mod service;
pub mod settings;
pub mod signing;
pub mod store;

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub use settings::WebhookSettings;

use crate::{
    db::Tx,
    jobs::{self, Enqueue, Unique},
};

/// Whose webhooks receive an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The webhooks of one user (the owner of the changed resource).
    User(Uuid),
    /// The webhooks of several users (e.g. a project's members), each receiving it once.
    Users(Vec<Uuid>),
}

impl From<Uuid> for Audience {
    fn from(id: Uuid) -> Self {
        Audience::User(id)
    }
}

/// Enqueues a delivery of `event` with `data` to every active webhook of `audience` subscribed to
/// it, inside `tx`. Returns how many deliveries were enqueued.
pub async fn emit(tx: &mut Tx, audience: impl Into<Audience>, event: &str, data: Value) -> Result<usize, sqlx::Error> {
    debug_assert!(events::is_known(event), "{event} is not in the webhook event catalogue");
    let mut owners = match audience.into() {
        Audience::User(id) => vec![id],
        Audience::Users(ids) => ids,
    };
    owners.sort_unstable();
    owners.dedup();
    let mut hooks = Vec::new();
    for owner in owners {
        for (id, subscribed) in store::active_for_owner(tx, owner).await? {
            if subscribed.0.iter().any(|e| e == event) {
                hooks.push(id);
            }
        }
    }
    if hooks.is_empty() {
        return Ok(0);
    }
    let body = signing::envelope(event, OffsetDateTime::now_utc(), &data);
    for webhook_id in &hooks {
        let delivery_id = Uuid::now_v7();
        let job =
            delivery::Deliver { webhook_id: *webhook_id, delivery_id, event: event.to_owned(), body: body.clone() };
        let options = Enqueue {
            // A fresh id: nothing to free first (a manual retry later frees it with `WhileUnfinished`).
            unique: Some(Unique::Forever(delivery::job_key(*webhook_id, delivery_id))),
            ..Enqueue::default()
        };
        jobs::enqueue(tx, &job, options).await?;
    }
    Ok(hooks.len())
}
