//! Recurring clean-up jobs (scheduled by `CLEANUP_SCHEDULE`, hourly by default): expired and
//! revoked sessions, spent magic links, expired OAuth states, and finished jobs. Old webhook
//! delivery logs are swept by `webhooks::delivery::CleanupDeliveries`.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{Job, JobContext, JobError, JobMeta, store};

/// Deletes sessions that expired, or were revoked, more than `SESSION_RETENTION_DAYS` ago
/// (their refresh tokens go with them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupSessions {}

impl Job for CleanupSessions {
    const KIND: &'static str = "cleanup.sessions";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let cutoff = OffsetDateTime::now_utc() - Duration::days(ctx.settings.jobs.session_retention_days);
        let n = store::sweep_sessions(&ctx.db, cutoff).await?;
        tracing::info!(deleted = n, "cleaned up sessions");
        Ok(())
    }
}

/// Deletes magic links that were used or have expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupMagicLinks {}

impl Job for CleanupMagicLinks {
    const KIND: &'static str = "cleanup.magic_links";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let n = store::sweep_magic_links(&ctx.db, OffsetDateTime::now_utc()).await?;
        tracing::info!(deleted = n, "cleaned up magic links");
        Ok(())
    }
}

/// Deletes expired OAuth `state` values (and their PKCE verifiers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupOauthStates {}

impl Job for CleanupOauthStates {
    const KIND: &'static str = "cleanup.oauth_states";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let n = store::sweep_oauth_states(&ctx.db, OffsetDateTime::now_utc()).await?;
        tracing::info!(deleted = n, "cleaned up OAuth states");
        Ok(())
    }
}

/// Deletes succeeded and cancelled jobs after `JOB_RETENTION_DAYS`, dead and failed ones after
/// `DEAD_JOB_RETENTION_DAYS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupJobs {}

impl Job for CleanupJobs {
    const KIND: &'static str = "cleanup.jobs";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let now = OffsetDateTime::now_utc();
        let j = &ctx.settings.jobs;
        let n = store::purge_finished(
            &ctx.db,
            now - Duration::days(j.retention_days),
            now - Duration::days(j.dead_retention_days),
        )
        .await?;
        tracing::info!(deleted = n, "purged finished jobs");
        Ok(())
    }
}
