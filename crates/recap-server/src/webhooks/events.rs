//! The one catalogue of webhook events (`GET /api/v1/webhooks/events`). A feature that emits an
//! event adds it here, with what `data` carries.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct EventInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// What the envelope's `data` holds.
    pub data: &'static str,
}

pub const ITEM_CREATED: &str = "item.created";
pub const ITEM_UPDATED: &str = "item.updated";
pub const ITEM_DELETED: &str = "item.deleted";
pub const API_KEY_CREATED: &str = "api_key.created";
pub const API_KEY_REVOKED: &str = "api_key.revoked";
pub const COMMITS_INGESTED: &str = "commits.ingested";
pub const REPO_SYNC_STATUS_CHANGED: &str = "repo.sync_status_changed";
pub const WEBHOOK_TEST: &str = "webhook.test";

pub const CATALOGUE: &[EventInfo] = &[
    EventInfo {
        name: API_KEY_CREATED,
        description: "One of the owner's API keys was created",
        data: "The key as the API lists it (ApiKeyOut; never the key itself)",
    },
    EventInfo {
        name: API_KEY_REVOKED,
        description: "One of the owner's API keys was revoked",
        data: "The revoked key (ApiKeyOut)",
    },
    EventInfo {
        name: COMMITS_INGESTED,
        description: "A batch of commits was ingested into a repository (push or pull sync); one event per batch, \
                      committed with the commits",
        data: "{project_id, repo_id, repository, inserted, duplicates, head_sha}",
    },
    EventInfo { name: ITEM_CREATED, description: "The owner created an item", data: "The item (ItemOut)" },
    EventInfo { name: ITEM_DELETED, description: "The owner deleted an item", data: "{\"id\": \"<uuid>\"}" },
    EventInfo {
        name: ITEM_UPDATED,
        description: "The owner changed an item",
        data: "The item after the change (ItemOut)",
    },
    EventInfo {
        name: REPO_SYNC_STATUS_CHANGED,
        description: "A repository's sync status changed (pending, syncing, healthy, error)",
        data: "{project_id, repo_id, repository, previous_status, status, error_message}",
    },
    EventInfo {
        name: WEBHOOK_TEST,
        description: "Sent by POST /api/v1/webhooks/{id}/test only, whatever the webhook subscribes to",
        data: "{\"message\": \"This is a test webhook delivery\"}",
    },
];

pub fn is_known(name: &str) -> bool {
    CATALOGUE.iter().any(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_sorted_and_unique() {
        let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
