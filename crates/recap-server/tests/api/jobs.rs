//! The job queue: retries and backoff, dead and failed jobs, unique keys, leases, the admin API,
//! in-process workers, the scheduler across instances, and the clean-up jobs.

use std::time::Duration;

use axum::Router;
use recap_server::{
    Settings,
    db::{Db, Tx},
    jobs::{
        self, Enqueue, Unique, cleanup, debug, run_pending_jobs,
        scheduler::{self, Schedule},
        store,
    },
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    engine_tests,
    helpers::{Engine, TestApp, assert_envelope, spawn_with},
};

engine_tests!(
    failed_attempts_are_retried_then_dead_or_failed,
    the_admin_api_lists_retries_and_cancels,
    unique_keys_hold_forever_or_while_unfinished,
    enqueueing_is_part_of_the_callers_transaction,
    a_job_whose_lease_expired_is_run_again,
    in_process_workers_run_jobs_until_shutdown,
    two_schedulers_enqueue_one_job_per_tick,
    clean_up_jobs_remove_what_expired,
);

async fn spawn_jobs(engine: Engine, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    spawn_with(
        engine,
        |s| {
            s.jobs.workers = 0;
            s.jobs.scheduler = false;
            s.jobs.debug_kinds = true;
            s.jobs.retry_base = Duration::ZERO;
            configure(s);
        },
        Router::new(),
    )
    .await
}

async fn enqueue<J: jobs::Job>(app: &TestApp, job: &J, options: Enqueue) -> jobs::Enqueued {
    let mut tx: Tx = app.state.db.begin().await.unwrap();
    let enqueued = jobs::enqueue(&mut tx, job, options).await.unwrap();
    tx.commit().await.unwrap();
    enqueued
}

async fn job(app: &TestApp, id: Uuid) -> store::JobRow {
    store::by_id(&app.state.db, id).await.unwrap().expect("the job exists")
}

async fn drain(app: &TestApp) -> usize {
    run_pending_jobs(&app.state).await.unwrap()
}

/// Runs `sql` with the binds `ids`/`times` on either engine (test set-up only).
async fn exec(db: &Db, sql: &str, binds: Vec<Bind>) {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in &binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Id(id) => q.bind(*id),
                    Bind::At(at) => q.bind(store::Stamp(*at)),
                    Bind::Raw(at) => q.bind(*at),
                };
            }
            q.execute($pool).await.unwrap();
        }};
    }
    match db {
        Db::Sqlite(pool) => run!(pool),
        Db::Postgres(pool) => run!(pool),
    }
}

enum Bind {
    Text(String),
    Id(Uuid),
    /// A timestamp as the queue writes it.
    At(OffsetDateTime),
    /// A timestamp as sqlx writes it by default (other domains' tables).
    Raw(OffsetDateTime),
}

async fn failed_attempts_are_retried_then_dead_or_failed(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |_| {}).await else { return };
    let flaky = enqueue(&app, &debug::Fail { times: 2, permanent: false }, Enqueue::default()).await;
    let hopeless = enqueue(&app, &debug::Fail { times: 10, permanent: false }, Enqueue::default()).await;
    let broken = enqueue(&app, &debug::Fail { times: 0, permanent: true }, Enqueue::default()).await;
    assert!(flaky.created && flaky.state == "pending");
    // A payload that does not fit its kind fails for good.
    let mut tx = app.state.db.begin().await.unwrap();
    let bad = jobs::enqueue_raw(&mut tx, "debug.sleep", &json!({"ms": "soon"}), 3, Enqueue::default()).await.unwrap();
    tx.commit().await.unwrap();

    // 3 + 3 + 1 + 1 attempts, all due at once (zero backoff).
    assert_eq!(drain(&app).await, 8);
    let flaky = job(&app, flaky.id).await;
    assert_eq!((flaky.state.as_str(), flaky.attempts), ("succeeded", 3));
    assert!(flaky.last_error.as_deref().unwrap().contains("attempt 2 of 2 fails"), "{:?}", flaky.last_error);
    assert!(flaky.finished_at.is_some() && flaky.locked_until.is_none());
    assert!(flaky.locked_by.as_deref().unwrap().starts_with("drain:"));
    let hopeless = job(&app, hopeless.id).await;
    assert_eq!((hopeless.state.as_str(), hopeless.attempts, hopeless.max_attempts), ("dead", 3, 3));
    let broken = job(&app, broken.id).await;
    assert_eq!((broken.state.as_str(), broken.attempts), ("failed", 1));
    assert_eq!(broken.last_error.as_deref(), Some("debug.fail: permanent failure"));
    let bad = job(&app, bad.id).await;
    assert_eq!(bad.state, "failed");
    assert!(bad.last_error.as_deref().unwrap().contains("payload does not fit debug.sleep"));
    assert_eq!(drain(&app).await, 0);
}

async fn the_admin_api_lists_retries_and_cancels(engine: Engine) {
    // A real backoff, so a failed attempt waits instead of running again at once.
    let Some(app) = spawn_jobs(engine, |s| s.jobs.retry_base = Duration::from_secs(3600)).await else { return };
    let admin = app.signed_in("root@example.com").await;
    let member = app.signed_in("ada@example.com").await;
    let dying = enqueue(
        &app,
        &debug::Fail { times: 1, permanent: false },
        Enqueue { max_attempts: Some(1), ..Default::default() },
    )
    .await;
    let waiting = enqueue(&app, &debug::Fail { times: 1, permanent: false }, Enqueue::default()).await;
    let later = enqueue(
        &app,
        &debug::Noop {},
        Enqueue { run_at: Some(OffsetDateTime::now_utc() + time::Duration::hours(1)), ..Default::default() },
    )
    .await;
    assert_eq!(drain(&app).await, 2);
    assert_eq!(job(&app, dying.id).await.state, "dead");
    let retrying = job(&app, waiting.id).await;
    assert_eq!((retrying.state.as_str(), retrying.attempts), ("pending", 1));
    let wait = retrying.run_at - OffsetDateTime::now_utc();
    assert!(wait > time::Duration::minutes(59) && wait < time::Duration::minutes(76), "backoff {wait}");

    let t = admin.access_token.as_str();
    let page = app.get_json("/api/v1/admin/jobs?size=2", t).await;
    assert_eq!(
        (page["total"].as_i64(), page["pages"].as_i64(), page["items"].as_array().unwrap().len()),
        (Some(3), Some(2), 2)
    );
    assert_eq!(page["items"][0]["id"], later.id.to_string(), "newest first");
    let dead = app.get_json("/api/v1/admin/jobs?state=dead", t).await;
    assert_eq!(dead["total"], 1);
    let item = &dead["items"][0];
    assert_eq!(
        (item["kind"].as_str(), item["attempts"].as_i64(), item["max_attempts"].as_i64()),
        (Some("debug.fail"), Some(1), Some(1))
    );
    assert_eq!(item["payload"], json!({"times": 1, "permanent": false}));
    assert!(item["run_at"].as_str().unwrap().ends_with('Z') && item["finished_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get_json("/api/v1/admin/jobs?kind=debug.noop", t).await["total"], 1);
    assert_eq!(app.get_json("/api/v1/admin/jobs?kind=debug.noop&state=dead", t).await["total"], 0);
    let counts = app.get_json("/api/v1/admin/jobs/counts", t).await;
    assert_eq!(counts["counts"]["pending"], 2);
    assert_eq!(
        (counts["counts"]["dead"].as_i64(), counts["counts"]["running"].as_i64(), counts["total"].as_i64()),
        (Some(1), Some(0), Some(3))
    );
    let r = app.get_as("/api/v1/admin/jobs?state=exploded", t).send().await.unwrap();
    let body = assert_envelope(r, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "state"]));
    assert_envelope(app.get_as("/api/v1/admin/jobs?size=101", t).send().await.unwrap(), 422, "VALIDATION_ERROR").await;

    // Not an admin, not signed in, no such job.
    assert_envelope(
        app.get_as("/api/v1/admin/jobs", &member.access_token).send().await.unwrap(),
        403,
        "AUTHORIZATION_ERROR",
    )
    .await;
    assert_envelope(app.get("/api/v1/admin/jobs").await, 401, "AUTHENTICATION_ERROR").await;
    for path in [format!("/api/v1/admin/jobs/{}", Uuid::new_v4()), "/api/v1/admin/jobs/nope".into()] {
        let body = assert_envelope(app.get_as(&path, t).send().await.unwrap(), 404, "NOT_FOUND").await;
        assert_eq!(body["detail"], "Job not found");
    }
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/retry", Uuid::new_v4()), t).send().await.unwrap();
    assert_envelope(r, 404, "NOT_FOUND").await;

    // Retry the dead job: one more attempt, which succeeds (it failed only once).
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/retry", dying.id), t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["state"].as_str(), body["max_attempts"].as_i64(), &body["finished_at"]),
        (Some("pending"), Some(2), &Value::Null)
    );
    // Only dead or failed jobs; only pending ones can be cancelled.
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/retry", later.id), t).send().await.unwrap();
    let body = assert_envelope(r, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "Only dead or failed jobs can be retried (this job is pending)");
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/cancel", later.id), t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["state"].as_str(), body["last_error"].as_str()),
        (Some("cancelled"), Some("cancelled by an admin"))
    );
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/cancel", later.id), t).send().await.unwrap();
    assert_eq!(assert_envelope(r, 400, "BAD_REQUEST").await["error"]["details"]["state"], "cancelled");
    let r = app.post_as(&format!("/api/v1/admin/jobs/{}/cancel", dying.id), &member.access_token).send().await.unwrap();
    assert_envelope(r, 403, "AUTHORIZATION_ERROR").await;

    assert_eq!(drain(&app).await, 1);
    assert_eq!(job(&app, dying.id).await.state, "succeeded");
    assert_eq!(job(&app, later.id).await.state, "cancelled", "a cancelled job never runs");
    // Both actions are in the audit log.
    let audit = app.get_json("/api/v1/audit?size=100", t).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"retry_job") && actions.contains(&"cancel_job"), "{actions:?}");
}

async fn unique_keys_hold_forever_or_while_unfinished(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |_| {}).await else { return };
    let forever = || Enqueue { unique: Some(Unique::Forever("tick:1".into())), ..Default::default() };
    let first = enqueue(&app, &debug::Noop {}, forever()).await;
    let again = enqueue(&app, &debug::Noop {}, forever()).await;
    assert!(first.created && !again.created);
    assert_eq!((again.id, again.state.as_str()), (first.id, "pending"));
    drain(&app).await;
    let after = enqueue(&app, &debug::Noop {}, forever()).await;
    assert!(!after.created, "a Forever key stays taken after the job finished");
    assert_eq!(after.state, "succeeded");

    let once = || Enqueue { unique: Some(Unique::WhileUnfinished("sync:repo-1".into())), ..Default::default() };
    let a = enqueue(&app, &debug::Noop {}, once()).await;
    let b = enqueue(&app, &debug::Noop {}, once()).await;
    assert!(a.created && !b.created && a.id == b.id);
    assert_eq!(drain(&app).await, 1);
    let c = enqueue(&app, &debug::Noop {}, once()).await;
    assert!(c.created && c.id != a.id, "a finished job frees a WhileUnfinished key");
    assert_eq!(job(&app, a.id).await.unique_key, None);
    assert_eq!(job(&app, c.id).await.unique_key.as_deref(), Some("sync:repo-1"));
}

async fn enqueueing_is_part_of_the_callers_transaction(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |_| {}).await else { return };
    let mut tx = app.state.db.begin().await.unwrap();
    let rolled_back = jobs::enqueue(&mut tx, &debug::Noop {}, Enqueue::default()).await.unwrap();
    drop(tx);
    assert!(store::by_id(&app.state.db, rolled_back.id).await.unwrap().is_none());
    assert_eq!(drain(&app).await, 0);
    let mut tx = app.state.db.begin().await.unwrap();
    let kept = jobs::enqueue(&mut tx, &debug::Noop {}, Enqueue::default()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(drain(&app).await, 1);
    assert_eq!(job(&app, kept.id).await.state, "succeeded");
}

async fn a_job_whose_lease_expired_is_run_again(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |_| {}).await else { return };
    let db = &app.state.db;
    let lost = enqueue(&app, &debug::Noop {}, Enqueue::default()).await;
    let last_try = enqueue(&app, &debug::Noop {}, Enqueue { max_attempts: Some(1), ..Default::default() }).await;
    let held = enqueue(
        &app,
        &debug::Noop {},
        Enqueue { run_at: Some(OffsetDateTime::now_utc() + time::Duration::seconds(1)), ..Default::default() },
    )
    .await;
    // A worker claims the first two and dies: its lease is already over.
    let claimed =
        store::claim(db, "ghost", &["debug.noop"], 10, OffsetDateTime::now_utc() - time::Duration::seconds(1))
            .await
            .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|j| j.state == "running" && j.attempts == 1 && j.locked_by.as_deref() == Some("ghost")));
    // A live worker holds the third one (claimed once due) under a long lease.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let live = store::claim(db, "alive", &["debug.noop"], 10, OffsetDateTime::now_utc() + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(live.iter().map(|j| j.id).collect::<Vec<_>>(), vec![held.id]);

    assert_eq!(drain(&app).await, 1, "only the job with an attempt left runs again");
    let lost = job(&app, lost.id).await;
    assert_eq!((lost.state.as_str(), lost.attempts), ("succeeded", 2));
    assert!(lost.last_error.as_deref().unwrap().contains("lease expired: worker ghost"), "{:?}", lost.last_error);
    let last_try = job(&app, last_try.id).await;
    assert_eq!((last_try.state.as_str(), last_try.attempts), ("dead", 1));
    let held = job(&app, held.id).await;
    assert_eq!(
        (held.state.as_str(), held.locked_by.as_deref()),
        ("running", Some("alive")),
        "a live lease is respected"
    );
    // The holder's heartbeat extends its lease; finishing it needs the holder's claim.
    assert_eq!(store::heartbeat(db, "alive", OffsetDateTime::now_utc() + time::Duration::hours(2)).await.unwrap(), 1);
    store::mark_succeeded(db, "someone-else", &[held.id]).await.unwrap();
    assert_eq!(job(&app, held.id).await.state, "running");
    store::mark_succeeded(db, "alive", &[held.id]).await.unwrap();
    assert_eq!(job(&app, held.id).await.state, "succeeded");
}

async fn in_process_workers_run_jobs_until_shutdown(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |s| {
        s.jobs.workers = 2;
        s.jobs.poll_interval = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(enqueue(&app, &debug::Noop {}, Enqueue::default()).await.id);
    }
    let started = std::time::Instant::now();
    loop {
        let (done, _) = store::list(
            &app.state.db,
            Some("succeeded"),
            None,
            recap_server::http::pagination::Paging { page: 1, size: 100 },
        )
        .await
        .unwrap();
        if done.len() == ids.len() {
            assert!(done.iter().all(|j| j.attempts == 1));
            assert!(done.iter().all(|j| j.locked_by.as_deref().is_some_and(|w| !w.starts_with("drain:"))));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the workers did not run the jobs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tick_schedule(name: &'static str) -> Schedule {
    Schedule {
        name,
        cron: scheduler::parse_cron("* * * * * *").unwrap(),
        kind: "debug.noop",
        payload: json!({}),
        max_attempts: 1,
    }
}

async fn two_schedulers_enqueue_one_job_per_tick(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |_| {}).await else { return };
    let db = app.state.db.clone();
    // The same tick from two instances at once: one job.
    let schedule = tick_schedule("test.race");
    let tick = time::macros::datetime!(2026-11-30 12:00:00 UTC);
    let (a, b) =
        tokio::join!(scheduler::enqueue_tick(&db, &schedule, tick), scheduler::enqueue_tick(&db, &schedule, tick));
    assert_eq!(u8::from(a.unwrap()) + u8::from(b.unwrap()), 1);
    // Even after that job ran, the tick is not enqueued again.
    drain(&app).await;
    assert!(!scheduler::enqueue_tick(&db, &schedule, tick).await.unwrap());

    // Two scheduler loops on one database for a few seconds: one job per tick.
    let shutdown = CancellationToken::new();
    let schedules = vec![tick_schedule("test.every_second")];
    let loops = [
        tokio::spawn(scheduler::run(db.clone(), schedules.clone(), shutdown.clone())),
        tokio::spawn(scheduler::run(db.clone(), schedules.clone(), shutdown.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(3500)).await;
    shutdown.cancel();
    for l in loops {
        l.await.unwrap();
    }
    let (rows, _) =
        store::list(&db, None, Some("debug.noop"), recap_server::http::pagination::Paging { page: 1, size: 100 })
            .await
            .unwrap();
    let mut keys: Vec<String> =
        rows.iter().filter_map(|j| j.unique_key.clone()).filter(|k| k.starts_with("cron:test.every_second:")).collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "a tick was enqueued twice");
    assert!((2..=5).contains(&total), "{total} ticks in 3.5 s");
    for row in rows.iter().filter(|j| j.unique_key.as_deref().is_some_and(|k| k.starts_with("cron:test.every_second:")))
    {
        let second: i64 = row.unique_key.as_deref().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(row.run_at.unix_timestamp(), second, "a tick's job is due at the tick");
    }
}

async fn clean_up_jobs_remove_what_expired(engine: Engine) {
    let Some(app) = spawn_jobs(engine, |s| s.jobs.session_retention_days = 0).await else { return };
    let db = app.state.db.clone();
    let user = app.signed_in("ada@example.com").await;
    // A revoked session (logout) goes; the live one stays.
    let second = app.login("ada@example.com", crate::helpers::PASSWORD).await;
    let r = app.post_as("/api/v1/auth/logout", second["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let sessions = |db: Db| async move {
        match db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions").fetch_one(&pool).await.unwrap()
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions").fetch_one(&pool).await.unwrap()
            }
        }
    };
    assert_eq!(sessions(db.clone()).await, 2);

    let now = OffsetDateTime::now_utc();
    let hour = time::Duration::hours(1);
    for (hash, expires, used) in
        [("expired", now - hour, None), ("used", now + hour, Some(now)), ("valid", now + hour, None)]
    {
        let mut binds = vec![Bind::Text(hash.into()), Bind::Raw(expires), Bind::Raw(now)];
        let sql = match used {
            Some(at) => {
                binds.push(Bind::Raw(at));
                "INSERT INTO magic_links (token_hash, email, expires_at, created_at, used_at) VALUES ($1, 'a@example.com', $2, $3, $4)"
            }
            None => {
                "INSERT INTO magic_links (token_hash, email, expires_at, created_at) VALUES ($1, 'a@example.com', $2, $3)"
            }
        };
        exec(&db, sql, binds).await;
    }
    for (state, expires) in [("old", now - hour), ("fresh", now + hour)] {
        exec(
            &db,
            "INSERT INTO oauth_states (state, provider, pkce_verifier, expires_at) VALUES ($1, 'github', 'v', $2)",
            vec![Bind::Text(state.into()), Bind::Raw(expires)],
        )
        .await;
    }
    // Finished jobs: one long ago, one just now.
    let old_job = enqueue(&app, &debug::Noop {}, Enqueue::default()).await.id;
    let new_job = enqueue(&app, &debug::Noop {}, Enqueue::default()).await.id;
    drain(&app).await;
    exec(
        &db,
        "UPDATE jobs SET finished_at = $1 WHERE id = $2",
        vec![Bind::At(now - time::Duration::days(8)), Bind::Id(old_job)],
    )
    .await;

    for kind in [
        enqueue(&app, &cleanup::CleanupSessions {}, Enqueue::default()).await,
        enqueue(&app, &cleanup::CleanupMagicLinks {}, Enqueue::default()).await,
        enqueue(&app, &cleanup::CleanupOauthStates {}, Enqueue::default()).await,
        enqueue(&app, &cleanup::CleanupJobs {}, Enqueue::default()).await,
        enqueue(&app, &recap_server::webhooks::delivery::CleanupDeliveries {}, Enqueue::default()).await,
    ] {
        assert!(kind.created);
    }
    assert_eq!(drain(&app).await, 5);
    assert_eq!(sessions(db.clone()).await, 1);
    let r = app.get_as("/api/v1/auth/me", &user.access_token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the live session survives");
    let remaining = |table: &'static str, column: &'static str| {
        let db = db.clone();
        async move {
            let sql = format!("SELECT {column} FROM {table} ORDER BY {column}");
            match db {
                Db::Sqlite(pool) => {
                    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap()
                }
                Db::Postgres(pool) => {
                    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap()
                }
            }
        }
    };
    assert_eq!(remaining("magic_links", "token_hash").await, ["valid"]);
    assert_eq!(remaining("oauth_states", "state").await, ["fresh"]);
    assert!(store::by_id(&db, old_job).await.unwrap().is_none());
    assert!(store::by_id(&db, new_job).await.unwrap().is_some());
    // The scheduled clean-ups exist in the standard registry.
    let names: Vec<&str> = app.state.jobs.registry().schedules().iter().map(|s| s.name).collect();
    assert!(names.contains(&"cleanup.sessions") && names.contains(&"cleanup.webhook_deliveries"), "{names:?}");
}
