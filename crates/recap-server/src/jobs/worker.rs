//! Workers: claim due jobs, run them, record the outcome; the lease heartbeat; the drain hook; and
//! the `recap worker` process.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{JobContext, JobError, JobMeta, Jobs, store};
use crate::{config::Settings, db::Db};

/// A worker id: unique per process start, readable in `locked_by`.
pub fn worker_id(n: usize) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "recap".into());
    let run = Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}:w{n}", std::process::id(), &run[..8])
}

/// Runs `workers` workers and the scheduler until `shutdown`, then waits for them (at most
/// `JOB_SHUTDOWN_GRACE` for running jobs; jobs still running after that are left to their lease).
pub async fn run_all(jobs: Arc<Jobs>, workers: usize, shutdown: CancellationToken) {
    let mut tasks = Vec::new();
    for n in 0..workers {
        tasks.push(tokio::spawn(run_worker(jobs.clone(), worker_id(n), shutdown.clone())));
    }
    if jobs.ctx.settings.jobs.scheduler && !jobs.registry.schedules().is_empty() {
        let schedules = jobs.registry.schedules().to_vec();
        tasks.push(tokio::spawn(super::scheduler::run(jobs.ctx.db.clone(), schedules, shutdown.clone())));
    }
    if workers > 0 {
        tracing::info!(workers, kinds = ?jobs.kinds, "job workers started");
    }
    shutdown.cancelled().await;
    let grace = jobs.ctx.settings.jobs.shutdown_grace;
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    if tokio::time::timeout(grace, futures::future::join_all(tasks)).await.is_err() {
        tracing::warn!(?grace, "jobs still running at shutdown were stopped; their leases will expire");
        for a in aborts {
            a.abort();
        }
    }
}

/// One worker: claim a batch, run it, repeat; wait `JOB_POLL_INTERVAL` when nothing is due.
pub async fn run_worker(jobs: Arc<Jobs>, id: String, shutdown: CancellationToken) {
    let settings = &jobs.ctx.settings.jobs;
    let lease = settings.lease;
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(jobs.ctx.db.clone(), id.clone(), lease, stop_heartbeat.clone()));
    let mut last_reap: Option<Instant> = None;
    let span = tracing::info_span!("worker", worker = %id);
    async {
        while !shutdown.is_cancelled() {
            if last_reap.is_none_or(|at| at.elapsed() >= lease / 2) {
                last_reap = Some(Instant::now());
                match store::reap_expired(&jobs.ctx.db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "took back jobs whose worker stopped (lease expired)"),
                    Err(e) => tracing::warn!(error = %e, "could not look for expired leases"),
                }
            }
            let lease_until = OffsetDateTime::now_utc() + lease;
            match store::claim(&jobs.ctx.db, &id, &jobs.kinds, settings.batch_size, lease_until).await {
                Ok(rows) if !rows.is_empty() => {
                    if let Err(e) = run_batch(&jobs, &id, rows).await {
                        tracing::error!(error = format!("{e:#}"), "could not record job outcomes");
                        idle(&shutdown, settings.poll_interval).await;
                    }
                }
                Ok(_) => idle(&shutdown, settings.poll_interval).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim jobs");
                    idle(&shutdown, settings.poll_interval).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
    stop_heartbeat.cancel();
    let _ = heartbeat.await;
}

async fn idle(shutdown: &CancellationToken, poll: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(poll) => {}
    }
}

/// Extends the leases of the jobs `worker` holds, every third of the lease, until stopped.
async fn heartbeat(db: Db, worker: String, lease: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(lease / 3) => {}
        }
        if let Err(e) = store::heartbeat(&db, &worker, OffsetDateTime::now_utc() + lease).await {
            tracing::warn!(error = %e, worker, "could not extend job leases");
        }
    }
}

/// Runs claimed jobs one after the other, records failures as they happen and the successes in
/// one statement at the end.
async fn run_batch(jobs: &Jobs, worker: &str, rows: Vec<store::JobRow>) -> anyhow::Result<usize> {
    let count = rows.len();
    let mut succeeded = Vec::with_capacity(rows.len());
    for row in rows {
        let meta = JobMeta {
            id: row.id,
            kind: row.kind.clone(),
            attempt: row.attempts,
            max_attempts: row.max_attempts,
            worker: worker.to_owned(),
        };
        match execute(jobs, &meta, row.payload.0).await {
            Ok(()) => succeeded.push(row.id),
            Err(error) => record_failure(jobs, &meta, error).await?,
        }
    }
    store::mark_succeeded(&jobs.ctx.db, worker, &succeeded).await.context("recording succeeded jobs")?;
    Ok(count)
}

/// Runs one attempt in its own task, so a panic becomes a failed attempt, not a dead worker.
async fn execute(jobs: &Jobs, meta: &JobMeta, payload: serde_json::Value) -> Result<(), JobError> {
    let Some(kind) = jobs.registry.kind(&meta.kind) else {
        return Err(JobError::Retry(anyhow::anyhow!("this worker has no handler for {}", meta.kind)));
    };
    let started = std::time::Instant::now();
    let future = (kind.handler)(jobs.ctx.clone(), meta.clone(), payload);
    let span = tracing::info_span!("job", job_id = %meta.id, kind = %meta.kind, attempt = meta.attempt);
    let result = match tokio::spawn(future.instrument(span)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(JobError::Retry(anyhow::anyhow!("the job panicked: {}", panic_message(e)))),
        Err(e) => Err(JobError::Retry(anyhow::anyhow!("the job was aborted: {e}"))),
    };
    let outcome = match &result {
        Ok(()) => "succeeded",
        Err(JobError::Cancel(_)) => "cancelled",
        Err(JobError::Fail(_)) => "failed",
        Err(_) => "error",
    };
    metrics::counter!("recap_jobs_total", "kind" => meta.kind.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!("recap_job_duration_seconds", "kind" => meta.kind.clone())
        .record(started.elapsed().as_secs_f64());
    result
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let panic = e.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn error_text(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.chars().count() > 2000 { text.chars().take(2000).collect::<String>() + "…" } else { text }
}

async fn record_failure(jobs: &Jobs, meta: &JobMeta, error: JobError) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let backoff = || jobs.registry.kind(&meta.kind).and_then(|k| k.backoff.delay(meta.attempt));
    let (state, run_at, text) = match &error {
        JobError::Retry(e) | JobError::RetryAt(_, e) if meta.is_last_attempt() => ("dead", None, error_text(e)),
        JobError::Retry(e) => match backoff() {
            Some(delay) => ("pending", Some(now + delay), error_text(e)),
            None => ("dead", None, error_text(e)),
        },
        JobError::RetryAt(at, e) => ("pending", Some(*at), error_text(e)),
        JobError::GiveUp(e) => ("dead", None, error_text(e)),
        JobError::Fail(e) => ("failed", None, error_text(e)),
        JobError::Cancel(reason) => ("cancelled", None, reason.clone()),
    };
    match state {
        "dead" | "failed" => {
            tracing::warn!(job_id = %meta.id, kind = %meta.kind, attempt = meta.attempt, error = %text, "job {state}")
        }
        "pending" => {
            tracing::info!(job_id = %meta.id, kind = %meta.kind, attempt = meta.attempt, error = %text, "job attempt failed; retrying")
        }
        _ => tracing::info!(job_id = %meta.id, kind = %meta.kind, reason = %text, "job cancelled"),
    }
    let outcome = store::Outcome { state, run_at, error: &text };
    let recorded = store::finish_attempt(&jobs.ctx.db, &meta.worker, meta.id, meta.attempt, &outcome)
        .await
        .context("recording a job outcome")?;
    if !recorded {
        tracing::warn!(job_id = %meta.id, "the job's lease was lost before its outcome was recorded");
    }
    Ok(())
}

/// Runs due jobs until none is left (at most 100 000 attempts, against a job that re-enqueues itself).
pub(super) async fn drain(jobs: &Jobs) -> anyhow::Result<usize> {
    let worker = format!("drain:{}", Uuid::new_v4().simple());
    let lease = jobs.ctx.settings.jobs.lease;
    let mut ran = 0;
    while ran < 100_000 {
        store::reap_expired(&jobs.ctx.db).await?;
        let rows = store::claim(
            &jobs.ctx.db,
            &worker,
            &jobs.kinds,
            jobs.ctx.settings.jobs.batch_size,
            OffsetDateTime::now_utc() + lease,
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        ran += run_batch(jobs, &worker, rows).await?;
    }
    Ok(ran)
}

/// `recap worker`: connect, migrate when `RECAP_AUTO_MIGRATE` allows, then run `workers` workers
/// (and the scheduler) until `shutdown`.
pub async fn run_standalone(mut settings: Settings, workers: usize, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(workers > 0, "recap worker needs at least one worker (WORKERS or --workers)");
    crate::secret::resolve_secret_key(&mut settings)?;
    let db = Db::connect(&settings).await?;
    if settings.auto_migrate {
        crate::db::migrate::upgrade(&db).await?;
    }
    let redis = settings
        .redis_url
        .as_deref()
        .map(|url| crate::redis::RedisHandle::open(url, &settings.redis_key_prefix))
        .transpose()?
        .map(Arc::new);
    let ctx = JobContext::new(Arc::new(settings), db.clone(), redis)?;
    let jobs = Arc::new(Jobs::new(ctx)?);
    Arc::clone(&jobs).spawn(workers, shutdown).await?;
    jobs.context().writer.close().await;
    db.close().await;
    Ok(())
}
