//! Git activity data: push ingestion of commits (the league contract's `/api/v1/sync/...` routes),
//! the sync status of a repository, and the commit queries.
//!
//! `service::ingest` is the one write path for commits: the push route calls it, and pull sync
//! is meant to call it too, so both keep the same status lifecycle, audit row and event.

pub mod model;
pub mod pull;
pub mod routes;
pub mod service;
pub mod store;
pub mod writer;

pub use writer::Writer;

use std::{sync::Arc, time::Duration};

use utoipa_axum::router::OpenApiRouter;

use crate::{config::ConfigError, http::rate_limit::Policy, redis::RedisHandle, state::AppState};

pub fn router() -> OpenApiRouter<AppState> {
    routes::router()
}

/// Settings of the sync routes.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Requests per minute on the push route per credential (API key, or user for a JWT), and on
    /// the status route per client IP and path (`SYNC_RATE_LIMIT`, default 100).
    pub rate_limit: u32,
    /// Pull sync of `pull` repositories.
    pub pull: pull::PullSettings,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings { rate_limit: 100, pull: pull::PullSettings::default() }
    }
}

impl SyncSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<SyncSettings, ConfigError> {
        let mut s = SyncSettings { pull: pull::PullSettings::from_lookup(get)?, ..SyncSettings::default() };
        if let Some(v) = get("SYNC_RATE_LIMIT") {
            s.rate_limit = match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError {
                        var: "SYNC_RATE_LIMIT",
                        message: format!("must be a whole number greater than zero, got {v:?}"),
                    });
                }
            };
        }
        Ok(s)
    }
}

/// Connection tests per user and minute.
const TEST_CONNECTIONS_PER_MINUTE: u32 = 20;

/// What the sync routes share, created once per app: the request budgets of the two routes and
/// the write queue of ingestion.
pub struct SyncState {
    /// `POST …/commits`: per API key (or per user for a JWT), across its repositories.
    pub push_limit: Arc<Policy>,
    /// `GET …/status`: per client IP and exact path, as in the original service.
    pub status_limit: Arc<Policy>,
    /// `POST /api/v1/repos/test-connection`: per user, as it makes the server connect somewhere.
    pub test_connection_limit: Arc<Policy>,
    /// Shared with the job runner, whose pull syncs ingest through it too.
    pub writer: Arc<Writer>,
}

impl SyncState {
    pub fn new(settings: &SyncSettings, writer: Arc<Writer>, redis: Option<Arc<RedisHandle>>) -> SyncState {
        let minute = Duration::from_secs(60);
        SyncState {
            push_limit: Policy::new("sync_push", settings.rate_limit, minute, redis.clone()),
            status_limit: Policy::new("sync_status", settings.rate_limit, minute, redis.clone()),
            test_connection_limit: Policy::new("repo_test_connection", TEST_CONNECTIONS_PER_MINUTE, minute, redis),
            writer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_setting_is_checked() {
        let s = SyncSettings::from_lookup(&|_: &str| None).unwrap();
        assert_eq!(s.rate_limit, 100);
        let s = SyncSettings::from_lookup(&|k: &str| (k == "SYNC_RATE_LIMIT").then(|| "5000".to_owned())).unwrap();
        assert_eq!(s.rate_limit, 5000);
        for bad in ["0", "-1", "many"] {
            let err =
                SyncSettings::from_lookup(&|k: &str| (k == "SYNC_RATE_LIMIT").then(|| bad.to_owned())).unwrap_err();
            assert_eq!(err.var, "SYNC_RATE_LIMIT");
        }
    }
}
