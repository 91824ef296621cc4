//! `Application::build(settings)`: storage, shared state, the router with its platform layer, and
//! a bound listener (port 0 allowed). The binary and the tests both start the server through here.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::{from_fn, from_fn_with_state},
    routing::get,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    catch_panic::CatchPanicLayer,
    limit::RequestBodyLimitLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    accounts::{self, api_keys, auth::Auth},
    audit,
    config::Settings,
    db::{Db, migrate},
    error::ApiError,
    http::{client_ip, envelope, metrics, rate_limit, request_id, security},
    ops::{self, openapi::ApiDoc},
    redis::RedisHandle,
    secret,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Every documented route, and the OpenAPI document generated from them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes::router())
        .merge(accounts::router())
        .merge(audit::routes::router())
        .merge(crate::projects::router())
        .merge(crate::sync::router())
        .merge(crate::gitrecap::router())
        .merge(crate::league::routes::router())
        .merge(crate::recaps::router())
        .merge(crate::items::routes::router())
        .merge(crate::jobs::routes::router())
        .merge(crate::webhooks::routes::router())
        .split_for_parts()
}

/// The OpenAPI document, without starting anything (for `recap openapi` and `recap routes`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Application::build_with(settings, Router::new()).await
    }

    /// Like [`Application::build`], with extra routes behind the same platform layer. Tests use it
    /// to mount routes that panic or stall, to prove those paths answer the envelope too.
    pub async fn build_with(mut settings: Settings, extra: Router<AppState>) -> anyhow::Result<Application> {
        secret::resolve_secret_key(&mut settings)?;
        let db = Db::connect(&settings).await?;
        let instance_id = Arc::new(tokio::sync::OnceCell::new());
        if settings.auto_migrate {
            let applied = migrate::upgrade(&db).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, engine = db.engine().as_str(), "applied migrations");
            }
            let id = db.ensure_instance_id().await.context("could not read the instance id")?;
            let _ = instance_id.set(id);
            crate::sync::service::reset_interrupted(&db).await;
        }
        let redis = settings
            .redis_url
            .as_deref()
            .map(|url| RedisHandle::open(url, &settings.redis_key_prefix))
            .transpose()?
            .map(Arc::new);
        let global_rate_limit =
            rate_limit::Policy::new("global", settings.rate_limit_requests, settings.rate_limit_period, redis.clone());
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .await
            .with_context(|| format!("could not listen on {}:{}", settings.host, settings.port))?;
        let auth = Arc::new(Auth::new(&settings, redis.clone()));
        let settings_llm = settings.llm.build_provider().context("could not set up the LLM provider")?;
        // The tokenizer's tables (~50 MB) are built on first use, not here: an idle instance stays
        // small, and only the first `/actions` after start pays for them.
        let sealer = crate::crypto::Sealer::new(
            settings
                .credentials_encryption_key
                .as_deref()
                .or(settings.secret_key.as_deref())
                .expect("the secret key is resolved before the app is built"),
        );
        let mailer = Arc::new(crate::mail::Mailer::new(&settings.mail, settings.environment)?);
        let magic_links = Arc::new(accounts::magic_link::MagicLinkLimits::new(redis.clone()));
        let job_context = crate::jobs::JobContext::new(Arc::new(settings.clone()), db.clone(), redis.clone())?;
        let sync =
            Arc::new(crate::sync::SyncState::new(&settings.sync, Arc::clone(&job_context.writer), redis.clone()));
        let jobs = Arc::new(crate::jobs::Jobs::new(job_context)?);
        let gitrecap = Arc::new(crate::gitrecap::GitRecap::new(&settings, redis.clone())?);
        let state = AppState {
            settings: Arc::new(settings),
            db,
            redis,
            global_rate_limit,
            auth,
            sealer,
            gitrecap,
            jobs,
            mailer,
            magic_links,
            sync,
            llm: settings_llm,
            started_at: Instant::now(),
            instance_id,
            shutdown: CancellationToken::new(),
        };
        metrics::prometheus();
        let router = router(state.clone(), extra);
        Ok(Application { listener, router, state })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancel it to stop: in-flight requests finish, then [`Application::run_until_stopped`] returns.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let token = self.state.shutdown.clone();
        let background = [
            tokio::spawn(api_keys::flush_usage_periodically(
                self.state.auth.clone(),
                self.state.db.clone(),
                std::time::Duration::from_secs(5),
                token.clone(),
            )),
            tokio::spawn(self.state.auth.clone().listen_for_invalidations(token.clone())),
            // Job workers (`WORKERS`) and the scheduler; running jobs get `JOB_SHUTDOWN_GRACE`.
            self.state.jobs.clone().spawn(self.state.settings.jobs.workers, token.clone()),
        ];
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .await
            .context("the HTTP server failed")?;
        // The server has stopped; background tasks see the same token and finish their work
        // (the last usage flush) before the pool closes.
        token.cancel();
        for task in background {
            let _ = task.await;
        }
        self.state.sync.writer.close().await;
        self.state.db.close().await;
        Ok(())
    }
}

fn router(state: AppState, extra: Router<AppState>) -> Router {
    let settings = state.settings.clone();
    let (api, doc) = api();
    // The docs page gets its own CSP (the API's forbids everything); the global layer keeps it.
    let docs: Router<AppState> = Router::from(SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", doc)).layer(
        SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(security::DOCS_CSP),
        ),
    );

    api.merge(extra)
        .merge(docs)
        .route("/docs", get(ops::routes::docs_redirect))
        .merge(crate::recaps::ws::routes())
        .fallback(|| async { ApiError::not_found("Not found") })
        // Innermost first: each `.layer` wraps everything above it.
        .layer(from_fn_with_state(state.clone(), rate_limit::global))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, settings.request_timeout))
        .layer(CatchPanicLayer::custom(envelope::panic_response))
        .layer(from_fn(envelope::error_envelope))
        .layer(from_fn_with_state(state.clone(), security::headers))
        .layer(from_fn(metrics::track))
        .layer(security::cors(&settings.cors_origins))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.extensions().get::<request_id::RequestId>().map(|r| r.0.as_str()).unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(from_fn_with_state(state.clone(), client_ip::client_ip))
        .layer(from_fn(request_id::request_id))
        .with_state(state)
}
