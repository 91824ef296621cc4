use std::time::Instant;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::model::*;
use crate::{VERSION, db::migrate, http::metrics::prometheus, state::AppState, time::now_rfc3339};

pub const SERVICE: &str = "Recap";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(health))
        .routes(routes!(api_health))
        .routes(routes!(api_root))
        .routes(routes!(v1_health))
        .routes(routes!(liveness))
        .routes(routes!(ready))
        .routes(routes!(health_ready))
        .routes(routes!(status))
        .routes(routes!(metrics))
}

/// Name, version and status of the server.
#[utoipa::path(get, path = "/", tag = "ops", responses((status = 200, body = RootOut)))]
async fn root(State(state): State<AppState>) -> axum::Json<RootOut> {
    axum::Json(RootOut {
        name: SERVICE,
        version: VERSION,
        status: "running",
        environment: state.settings.environment.as_str(),
        docs: "/api/docs",
    })
}

/// Liveness for gitleague-client and load balancers; ignores any `Authorization` header.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = HealthOut)))]
async fn health() -> axum::Json<HealthOut> {
    axum::Json(HealthOut { status: "healthy", version: VERSION })
}

/// Health with a timestamp (RampForgeAI's route).
#[utoipa::path(get, path = "/api/health", tag = "ops", responses((status = 200, body = TimedHealthOut)))]
async fn api_health() -> axum::Json<TimedHealthOut> {
    axum::Json(TimedHealthOut { status: "healthy", version: VERSION, timestamp: now_rfc3339(), service: SERVICE })
}

/// The API root: where the docs are.
#[utoipa::path(get, path = "/api/v1", tag = "ops", responses((status = 200, body = ApiRootOut)))]
async fn api_root() -> axum::Json<ApiRootOut> {
    axum::Json(ApiRootOut { message: "Recap API v1", version: VERSION, docs: "/api/docs" })
}

/// Health under the versioned API (the template frontend proxies this one).
#[utoipa::path(get, path = "/api/v1/health", tag = "ops", responses((status = 200, body = TimedHealthOut)))]
async fn v1_health() -> axum::Json<TimedHealthOut> {
    api_health().await
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/api/v1/health/live", tag = "ops", responses((status = 200, body = LivenessOut)))]
async fn liveness(State(state): State<AppState>) -> axum::Json<LivenessOut> {
    axum::Json(LivenessOut {
        status: "alive",
        timestamp: now_rfc3339(),
        service: SERVICE,
        details: LivenessDetails { version: VERSION, environment: state.settings.environment.as_str() },
    })
}

/// Readiness: the database answers `SELECT 1` and, when configured, Redis answers `PING`.
#[utoipa::path(get, path = "/api/v1/ready", tag = "ops", responses(
    (status = 200, description = "Every dependency answers", body = ReadyOut),
    (status = 503, description = "A dependency failed; `failed` names it", body = ReadyOut),
))]
async fn ready(State(state): State<AppState>) -> Response {
    readiness(&state).await
}

/// Readiness (the template's path).
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "ops", responses(
    (status = 200, body = ReadyOut),
    (status = 503, body = ReadyOut),
))]
async fn health_ready(State(state): State<AppState>) -> Response {
    readiness(&state).await
}

const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn timed<E: std::fmt::Display>(
    check: impl Future<Output = Result<(), E>>,
    kind: Option<&'static str>,
) -> CheckOut {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    if let Some(e) = &error {
        tracing::warn!(check = kind.unwrap_or("redis"), error = %e, "readiness check failed");
    }
    CheckOut {
        status: if error.is_none() { "healthy" } else { "unhealthy" },
        latency_ms,
        kind,
        // The class of failure only; connection strings and hosts stay in the log.
        error: error.map(|_| "unavailable".to_owned()),
    }
}

async fn readiness(state: &AppState) -> Response {
    let database = timed(state.db.ping(), Some(state.db.engine().as_str())).await;
    let redis = match &state.redis {
        Some(redis) => Some(timed(async { redis.ping().await.map_err(|e| format!("{e:#}")) }, None).await),
        None => None,
    };
    let mut failed = Vec::new();
    if database.error.is_some() {
        failed.push("database");
    }
    if redis.as_ref().is_some_and(|r| r.error.is_some()) {
        failed.push("redis");
    }
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = ReadyOut {
        status: if failed.is_empty() { "ready" } else { "not_ready" },
        timestamp: now_rfc3339(),
        service: SERVICE,
        checks: ReadyChecks { database, redis },
        failed,
    };
    (status, axum::Json(body)).into_response()
}

/// Version, engine, uptime and migration state of this instance.
#[utoipa::path(get, path = "/api/v1/status", tag = "ops", responses((status = 200, body = StatusOut)))]
async fn status(State(state): State<AppState>) -> axum::Json<StatusOut> {
    let migration_version = migrate::current(&state.db).await.unwrap_or_else(|e| {
        tracing::warn!(error = format!("{e:#}"), "could not read the migration version");
        None
    });
    let instance_id = match migration_version {
        Some(_) => state.instance_id.get_or_try_init(|| state.db.ensure_instance_id()).await.ok().cloned(),
        None => None,
    };
    axum::Json(StatusOut {
        api_version: "v1",
        status: "operational",
        timestamp: now_rfc3339(),
        version: VERSION,
        environment: state.settings.environment.as_str(),
        engine: state.db.engine().as_str(),
        uptime_seconds: state.started_at.elapsed().as_secs(),
        migration_version,
        latest_migration: migrate::latest_known(&state.db),
        instance_id,
        redis: state.redis.is_some(),
        endpoints: Endpoints { health: "/api/health", docs: "/api/docs", openapi: "/api/v1/openapi.json" },
    })
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool_state();
    metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(pool.size.saturating_sub(pool.idle) as f64);
    metrics::gauge!("db_pool_max_connections").set(pool.max as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
}

/// `/docs` is where most people look first.
pub async fn docs_redirect() -> Redirect {
    Redirect::permanent("/api/docs/")
}
