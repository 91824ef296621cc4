//! What every handler can reach.

use std::{sync::Arc, time::Instant};

use tokio_util::sync::CancellationToken;

use crate::{accounts::auth::Auth, config::Settings, db::Db, http::rate_limit::Policy, redis::RedisHandle};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub redis: Option<Arc<RedisHandle>>,
    pub global_rate_limit: Arc<Policy>,
    pub auth: Arc<Auth>,
    /// Seals integration credentials at rest (see `crypto`).
    pub sealer: crate::crypto::Sealer,
    /// Git Recap provider sessions and the providers' HTTP client.
    pub gitrecap: Arc<crate::gitrecap::GitRecap>,
    /// The job runner: its context (database, outbound HTTP client) and its kinds (see `jobs`).
    pub jobs: Arc<crate::jobs::Jobs>,
    /// Outgoing mail (magic links).
    pub mailer: Arc<crate::mail::Mailer>,
    /// Request budgets of `POST /api/v1/auth/magic-link`.
    pub magic_links: Arc<crate::accounts::magic_link::MagicLinkLimits>,
    /// Request budgets of the `/api/v1/sync/...` routes and the SQLite write queue of ingestion.
    pub sync: Arc<crate::sync::SyncState>,
    /// The configured LLM (the offline writer unless a provider is set up).
    pub llm: Arc<dyn recap_llm::LlmProvider>,
    pub started_at: Instant,
    /// Read (or created) once the schema exists; see `/api/v1/status`.
    pub instance_id: Arc<tokio::sync::OnceCell<String>>,
    /// Cancelled on shutdown; long-lived tasks (streams, workers) watch it.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// A per-route rate-limit policy sharing this instance's counter store (memory or Redis).
    pub fn rate_limit_policy(&self, name: &'static str, limit: u32, period: std::time::Duration) -> Arc<Policy> {
        Policy::new(name, limit, period, self.redis.clone())
    }
}
