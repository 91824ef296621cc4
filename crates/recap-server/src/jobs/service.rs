//! Job administration shared by the admin API and `recap jobs`: retry, cancel, enqueue by name.

use std::net::IpAddr;

use serde_json::Value;
use uuid::Uuid;

use super::{Enqueue, Enqueued, JobRow, Registry, store};
use crate::{
    audit::{self, AuditEntry},
    db::Db,
};

#[derive(Debug, thiserror::Error)]
pub enum JobAdminError {
    #[error("job not found")]
    NotFound,
    /// The job is in a state the action does not apply to.
    #[error("{message}")]
    WrongState { message: String, state: String },
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Who asks (the audit row's actor); the CLI has neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub ip: Option<IpAddr>,
}

async fn wrong_state(db: &Db, id: Uuid, what: &str) -> JobAdminError {
    match store::by_id(db, id).await {
        Ok(Some(job)) => {
            JobAdminError::WrongState { message: format!("{what} (this job is {})", job.state), state: job.state }
        }
        Ok(None) => JobAdminError::NotFound,
        Err(e) => e.into(),
    }
}

/// A dead or failed job back to `pending`, due now, with one more attempt.
pub async fn retry(db: &Db, id: Uuid, actor: Actor) -> Result<JobRow, JobAdminError> {
    let mut tx = db.begin().await?;
    let Some(job) = store::retry(&mut tx, id).await? else {
        drop(tx);
        return Err(wrong_state(db, id, "Only dead or failed jobs can be retried").await);
    };
    audit::record(
        &mut tx,
        AuditEntry::new("retry_job", actor.user_id, actor.ip)
            .resource("job", id)
            .details(format!("{} job retried after {} attempts", job.kind, job.attempts)),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// A pending job to `cancelled`.
pub async fn cancel(db: &Db, id: Uuid, actor: Actor) -> Result<JobRow, JobAdminError> {
    let mut tx = db.begin().await?;
    let by = if actor.user_id.is_some() { "an admin" } else { "the CLI" };
    let Some(job) = store::cancel(&mut tx, id, &format!("cancelled by {by}")).await? else {
        drop(tx);
        return Err(wrong_state(db, id, "Only pending jobs can be cancelled").await);
    };
    audit::record(
        &mut tx,
        AuditEntry::new("cancel_job", actor.user_id, actor.ip)
            .resource("job", id)
            .details(format!("{} job cancelled", job.kind)),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// Enqueues a job by kind name (`recap jobs enqueue`); the kind must be known to `registry`.
pub async fn enqueue_by_name(
    db: &Db,
    registry: &Registry,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    options: Enqueue,
) -> Result<Enqueued, JobAdminError> {
    if !registry.knows(kind) {
        return Err(JobAdminError::UnknownKind(kind.to_owned()));
    }
    let mut tx = db.begin().await?;
    let enqueued = super::enqueue_raw(&mut tx, kind, payload, max_attempts, options).await?;
    tx.commit().await?;
    Ok(enqueued)
}

/// Enqueues `count` copies of a job (in transactions of 1000), for benchmarks and tests.
pub async fn enqueue_many(
    db: &Db,
    registry: &Registry,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    count: usize,
) -> Result<usize, JobAdminError> {
    if !registry.knows(kind) {
        return Err(JobAdminError::UnknownKind(kind.to_owned()));
    }
    let mut done = 0;
    while done < count {
        let mut tx = db.begin().await?;
        for _ in 0..(count - done).min(1000) {
            super::enqueue_raw(&mut tx, kind, payload, max_attempts, Enqueue::default()).await?;
            done += 1;
        }
        tx.commit().await?;
    }
    Ok(done)
}
