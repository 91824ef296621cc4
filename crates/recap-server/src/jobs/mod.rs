//! Durable background jobs: a queue in the application database (the outbox), workers, and a
//! cron scheduler.
//!
//! # The queue
//!
//! A job is a row of `jobs`: a `kind` (e.g. `webhook.deliver`), a JSON payload, a state and a
//! time to run. Work is enqueued **inside the transaction of the change that causes it**
//! ([`enqueue`] takes the caller's [`Tx`]), so a committed change always has its job and a rolled
//! back one never has.
//!
//! States: `pending` → `running` → `succeeded`; an attempt that fails goes back to `pending` with a
//! later `run_at` (exponential backoff with jitter, or the kind's own schedule) until the job's
//! `max_attempts` are used up, then `dead`. A handler can also fail a job for good (`failed`, not
//! retried) or cancel it (`cancelled`). An admin can retry a dead or failed job (one more attempt)
//! and cancel a pending one (`/api/v1/admin/jobs`, `recap jobs …`).
//!
//! Workers claim due jobs in batches — PostgreSQL with `FOR UPDATE SKIP LOCKED`, SQLite inside a
//! `BEGIN IMMEDIATE` transaction — and hold each claim under a **lease** (`JOB_LEASE`) that a
//! heartbeat extends while the worker lives. A job whose worker died (its lease ran out) is
//! returned to `pending` by the next worker that looks and runs again (counting the lost attempt).
//!
//! **Delivery is at least once.** A job can run more than once: when its worker dies after doing
//! the work but before recording it, when a worker stalls past its lease, or when a batch's
//! successes are recorded after the whole batch ran. Handlers must be idempotent (or, like webhook
//! deliveries, tell the receiver an id it can deduplicate by).
//!
//! **Unique keys** keep a job from being enqueued twice ([`Unique`]). A key is unique across the
//! whole table: [`Unique::Forever`] stays taken after the job finished (until finished jobs are
//! purged after `JOB_RETENTION_DAYS`) — the scheduler's per-tick keys rely on that, so a tick fires
//! once even when another instance's job for it already finished; [`Unique::WhileUnfinished`] frees
//! the key of finished jobs first, so it only stops a second copy while one is pending or running.
//!
//! # Adding a job kind (and a schedule)
//!
//! 1. A payload type implementing [`Job`] (serde types; `KIND` is its name, e.g. `repo.pull_sync`,
//!    which `sync::pull` implements this way):
//!
//! ```ignore
//! #[derive(Serialize, Deserialize)]
//! pub struct PullSync { pub repo_id: Uuid }
//!
//! impl Job for PullSync {
//!     const KIND: &'static str = "repo.pull_sync";
//!     const MAX_ATTEMPTS: i32 = 5;
//!     async fn run(self, ctx: JobContext, meta: JobMeta) -> Result<(), JobError> {
//!         // ctx.db, ctx.settings, ctx.sealer, ctx.outbound (SSRF-guarded HTTP) ...
//!         Ok(())
//!     }
//! }
//! ```
//!
//! 2. Register it in [`registry`]: `r.register::<PullSync>();` (or `register_with` for a backoff of
//!    its own).
//! 3. For recurring work, add a schedule there too: `r.schedule("repo.pull_sync", "*/5 * * * *",
//!    PullSyncDue {})?;` — a kind that enqueues one `PullSync` per due `pull` repository (with
//!    `Unique::WhileUnfinished(format!("repo.pull_sync:{repo_id}"))`, so a slow sync is never
//!    queued twice).
//! 4. Enqueue from a service, inside its transaction: `jobs::enqueue(&mut tx, &PullSync { repo_id },
//!    Enqueue::default()).await?`.
//!
//! # Running
//!
//! `recap serve` runs `WORKERS` workers (default 2; 0 for none) and the scheduler in-process;
//! `recap worker` runs only workers and the scheduler. Both stop on the app's shutdown token,
//! letting running jobs finish for up to `JOB_SHUTDOWN_GRACE`. Tests call [`run_pending_jobs`] to
//! run every due job now, deterministically, instead of sleeping.

pub mod cleanup;
pub mod debug;
pub mod model;
pub mod routes;
pub mod scheduler;
pub mod service;
pub mod settings;
pub mod store;
pub mod worker;

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use settings::JobSettings;
pub use store::JobRow;

use crate::{
    config::Settings,
    crypto::Sealer,
    db::{Db, Tx},
    http::ssrf::{Guard, GuardedClient},
    redis::RedisHandle,
    state::AppState,
};

/// A kind of job: its payload type, name and handler.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `kind` column, e.g. `webhook.deliver`. Never rename a kind that may be queued.
    const KIND: &'static str;
    /// Attempts before the job is dead (written into the row when enqueued).
    const MAX_ATTEMPTS: i32 = 5;

    fn run(self, ctx: JobContext, meta: JobMeta) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobMeta {
    pub id: Uuid,
    pub kind: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker: String,
}

impl JobMeta {
    /// True when a failure now makes the job dead.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// How an attempt that did not succeed ends.
#[derive(Debug)]
pub enum JobError {
    /// Retry after the kind's backoff; dead when no attempt is left.
    Retry(anyhow::Error),
    /// Retry at this time; dead when no attempt is left.
    RetryAt(OffsetDateTime, anyhow::Error),
    /// No more attempts: dead now.
    GiveUp(anyhow::Error),
    /// A permanent failure (bad payload, a missing resource): `failed`, never retried by itself.
    Fail(anyhow::Error),
    /// Nothing to do any more: `cancelled`.
    Cancel(String),
}

impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Retry(e.into())
    }
}

/// What handlers can reach. `recap worker` builds it without an HTTP server.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub redis: Option<Arc<RedisHandle>>,
    /// Opens sealed secrets (webhook secrets, integration credentials).
    pub sealer: Sealer,
    /// HTTP client for user-supplied URLs (SSRF guard, no redirects).
    pub outbound: GuardedClient,
    /// The ingestion writer (pull syncs store commits the way pushes do); the app's sync routes
    /// share it.
    pub writer: Arc<crate::sync::Writer>,
}

impl JobContext {
    pub fn new(settings: Arc<Settings>, db: Db, redis: Option<Arc<RedisHandle>>) -> anyhow::Result<JobContext> {
        let sealer = sealer_for(&settings);
        let outbound = GuardedClient::new(
            Guard::new(&settings.outbound),
            concat!("Recap-Webhooks/", env!("CARGO_PKG_VERSION")),
            settings.webhooks.timeout,
        )?;
        let writer = Arc::new(crate::sync::Writer::new(&db));
        Ok(JobContext { db, settings, redis, sealer, outbound, writer })
    }
}

/// The sealer of stored secrets, as the app builds it: `CREDENTIALS_ENCRYPTION_KEY`, else `SECRET_KEY`.
pub fn sealer_for(settings: &Settings) -> Sealer {
    Sealer::new(
        settings
            .credentials_encryption_key
            .as_deref()
            .or(settings.secret_key.as_deref())
            .expect("the secret key is resolved before jobs are set up"),
    )
}

/// Delay before retry `attempt + 1` after attempt `attempt` failed.
#[derive(Debug, Clone)]
pub enum Backoff {
    /// `base · 2^(attempt-1)`, at most `max`, plus up to 25 % jitter.
    Exponential { base: Duration, max: Duration },
    /// The n-th delay after the n-th failed attempt, plus up to 10 % jitter; none left: give up.
    Schedule(Vec<Duration>),
}

impl Backoff {
    /// `None` when the kind gives up after `attempt`.
    pub fn delay(&self, attempt: i32) -> Option<Duration> {
        let n = attempt.max(1) as u32;
        let (base, jitter) = match self {
            Backoff::Exponential { base, max } => {
                let factor = 2u32.saturating_pow((n - 1).min(30));
                (base.saturating_mul(factor).min(*max), 0.25)
            }
            Backoff::Schedule(delays) => (*delays.get(n as usize - 1)?, 0.10),
        };
        Some(with_jitter(base, jitter))
    }
}

/// `d` plus a random part of up to `fraction · d`, so retries of many jobs spread out.
pub fn with_jitter(d: Duration, fraction: f64) -> Duration {
    if d.is_zero() {
        return d;
    }
    d + d.mul_f64(rand::rng().random_range(0.0..fraction))
}

type Handler = Arc<dyn Fn(JobContext, JobMeta, Value) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

struct Kind {
    handler: Handler,
    backoff: Backoff,
}

/// The job kinds a worker can run and the recurring jobs the scheduler enqueues.
pub struct Registry {
    default_backoff: Backoff,
    kinds: BTreeMap<&'static str, Kind>,
    schedules: Vec<scheduler::Schedule>,
}

impl Registry {
    pub fn new(default_backoff: Backoff) -> Registry {
        Registry { default_backoff, kinds: BTreeMap::new(), schedules: Vec::new() }
    }

    /// Registers `J` with the default backoff.
    pub fn register<J: Job>(&mut self) -> &mut Registry {
        let backoff = self.default_backoff.clone();
        self.register_with::<J>(backoff)
    }

    pub fn register_with<J: Job>(&mut self, backoff: Backoff) -> &mut Registry {
        let handler: Handler = Arc::new(|ctx, meta, payload| {
            Box::pin(async move {
                let job: J = serde_json::from_value(payload)
                    .map_err(|e| JobError::Fail(anyhow::anyhow!("the payload does not fit {}: {e}", J::KIND)))?;
                job.run(ctx, meta).await
            })
        });
        self.kinds.insert(J::KIND, Kind { handler, backoff });
        self
    }

    /// Enqueues `job` at every tick of `cron` (5 fields, or 6 with seconds first), once per tick
    /// across all instances. `name` must be unique among schedules.
    pub fn schedule<J: Job>(&mut self, name: &'static str, cron: &str, job: J) -> anyhow::Result<&mut Registry> {
        anyhow::ensure!(self.kinds.contains_key(J::KIND), "schedule {name}: kind {} is not registered", J::KIND);
        anyhow::ensure!(!self.schedules.iter().any(|s| s.name == name), "schedule {name} is defined twice");
        let cron = scheduler::parse_cron(cron).map_err(|e| anyhow::anyhow!("schedule {name}: {e}"))?;
        self.schedules.push(scheduler::Schedule {
            name,
            cron,
            kind: J::KIND,
            payload: serde_json::to_value(&job)?,
            max_attempts: J::MAX_ATTEMPTS,
        });
        Ok(self)
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    pub fn schedules(&self) -> &[scheduler::Schedule] {
        &self.schedules
    }

    pub fn knows(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    fn kind(&self, kind: &str) -> Option<&Kind> {
        self.kinds.get(kind)
    }
}

/// The standard registry: every job kind of the server and the recurring jobs.
pub fn registry(settings: &Settings) -> anyhow::Result<Registry> {
    let j = &settings.jobs;
    let mut r = Registry::new(Backoff::Exponential { base: j.retry_base, max: j.retry_max });
    r.register::<cleanup::CleanupSessions>()
        .register::<cleanup::CleanupMagicLinks>()
        .register::<cleanup::CleanupOauthStates>()
        .register::<cleanup::CleanupJobs>()
        .register::<crate::webhooks::delivery::Deliver>()
        .register::<crate::webhooks::delivery::CleanupDeliveries>();
    if j.debug_kinds {
        debug::register(&mut r);
    }
    let every = j.cleanup_schedule.as_str();
    r.schedule("cleanup.sessions", every, cleanup::CleanupSessions {})?
        .schedule("cleanup.magic_links", every, cleanup::CleanupMagicLinks {})?
        .schedule("cleanup.oauth_states", every, cleanup::CleanupOauthStates {})?
        .schedule("cleanup.jobs", every, cleanup::CleanupJobs {})?
        .schedule("cleanup.webhook_deliveries", every, crate::webhooks::delivery::CleanupDeliveries {})?;
    r.register::<crate::sync::pull::PullSync>().register::<crate::sync::pull::PullSyncDue>();
    if let Some(cron) = &settings.sync.pull.schedule {
        r.schedule("repo.pull_sync_due", cron, crate::sync::pull::PullSyncDue {})?;
    }
    Ok(r)
}

/// The job runner of one process: its context, its registry, and the workers it starts.
pub struct Jobs {
    ctx: JobContext,
    registry: Registry,
    kinds: Vec<&'static str>,
}

impl Jobs {
    /// With the standard [`registry`].
    pub fn new(ctx: JobContext) -> anyhow::Result<Jobs> {
        let registry = registry(&ctx.settings)?;
        Ok(Jobs::with_registry(ctx, registry))
    }

    pub fn with_registry(ctx: JobContext, registry: Registry) -> Jobs {
        let kinds = registry.kinds();
        Jobs { ctx, registry, kinds }
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts `workers` workers and (when enabled) the scheduler; the task ends after `shutdown`
    /// once they have stopped (running jobs get `JOB_SHUTDOWN_GRACE` to finish).
    pub fn spawn(self: Arc<Self>, workers: usize, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(worker::run_all(self, workers, shutdown))
    }

    /// Runs every due job now, in this task, until none is due; returns how many attempts ran.
    /// Retries that are due at once (zero backoff) run too. For tests and the CLI.
    pub async fn run_pending(&self) -> anyhow::Result<usize> {
        worker::drain(self).await
    }
}

/// Runs every due job of the app now (see [`Jobs::run_pending`]); the hook tests drain the queue with.
pub async fn run_pending_jobs(state: &AppState) -> anyhow::Result<usize> {
    state.jobs.run_pending().await
}

/// A uniqueness rule for [`enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// The key stays taken after the job finished (until finished jobs are purged).
    Forever(String),
    /// The key only blocks a second job while one is pending or running.
    WhileUnfinished(String),
}

/// Options of [`enqueue`].
#[derive(Debug, Clone, Default)]
pub struct Enqueue {
    /// Not before this time (default: now).
    pub run_at: Option<OffsetDateTime>,
    pub unique: Option<Unique>,
    /// Instead of the kind's `MAX_ATTEMPTS`.
    pub max_attempts: Option<i32>,
}

/// The result of [`enqueue`]: the new job, or the one already holding the unique key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    pub created: bool,
    /// The state of the existing job when `created` is false.
    pub state: String,
}

/// Enqueues `job` inside the caller's transaction: it exists exactly when the transaction commits.
pub async fn enqueue<J: Job>(tx: &mut Tx, job: &J, options: Enqueue) -> Result<Enqueued, sqlx::Error> {
    let payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let max_attempts = options.max_attempts.unwrap_or(J::MAX_ATTEMPTS);
    enqueue_raw(tx, J::KIND, &payload, max_attempts, options).await
}

/// [`enqueue`] by kind name and JSON payload (the scheduler and `recap jobs enqueue`).
pub async fn enqueue_raw(
    tx: &mut Tx,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    options: Enqueue,
) -> Result<Enqueued, sqlx::Error> {
    let key = match &options.unique {
        Some(Unique::Forever(key)) => Some(key.as_str()),
        Some(Unique::WhileUnfinished(key)) => {
            store::release_finished_key(tx, key).await?;
            Some(key.as_str())
        }
        None => None,
    };
    let new = store::NewJob {
        kind,
        payload,
        run_at: options.run_at.unwrap_or_else(OffsetDateTime::now_utc),
        max_attempts: max_attempts.max(1),
        unique_key: key,
    };
    if let Some(id) = store::insert(tx, &new).await? {
        return Ok(Enqueued { id, created: true, state: "pending".into() });
    }
    let key = key.expect("only a unique key can conflict");
    let existing = store::by_unique_key(tx, key).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok(Enqueued { id: existing.id, created: false, state: existing.state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let b = Backoff::Exponential { base: Duration::from_secs(10), max: Duration::from_secs(60) };
        for (attempt, expected) in [(1, 10), (2, 20), (3, 40), (4, 60), (30, 60)] {
            let d = b.delay(attempt).unwrap();
            let base = Duration::from_secs(expected);
            assert!(d >= base && d <= base.mul_f64(1.25), "attempt {attempt}: {d:?}");
        }
        let zero = Backoff::Exponential { base: Duration::ZERO, max: Duration::from_secs(60) };
        assert_eq!(zero.delay(3), Some(Duration::ZERO));
    }

    #[test]
    fn a_schedule_gives_up_when_it_runs_out() {
        let b = Backoff::Schedule(vec![Duration::from_secs(5), Duration::from_secs(300)]);
        assert!(b.delay(1).unwrap() >= Duration::from_secs(5));
        assert!(b.delay(2).unwrap() <= Duration::from_secs(330));
        assert_eq!(b.delay(3), None);
    }

    #[test]
    fn the_standard_registry_knows_its_kinds_and_schedules() {
        let mut settings = Settings::default();
        let r = registry(&settings).unwrap();
        assert!(r.knows("webhook.deliver") && r.knows("cleanup.sessions") && !r.knows("debug.noop"));
        assert!(r.knows("repo.pull_sync") && r.knows("repo.pull_sync_due"));
        assert_eq!(r.schedules().len(), 6);
        settings.sync.pull.schedule = None;
        assert_eq!(registry(&settings).unwrap().schedules().len(), 5);
        settings.jobs.debug_kinds = true;
        assert!(registry(&settings).unwrap().knows("debug.sleep"));
    }
}
