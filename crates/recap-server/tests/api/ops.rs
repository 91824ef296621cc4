use serde_json::Value;

use crate::{
    engine_tests,
    helpers::{Engine, spawn, spawn_with},
};

engine_tests!(
    health_routes_answer_their_contract_shapes,
    readiness_checks_the_database,
    status_reports_engine_and_migrations
);

async fn health_routes_answer_their_contract_shapes(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let version = env!("CARGO_PKG_VERSION");

    // gitleague-client: exactly this path, a 200, and any Authorization header ignored.
    let response = app.client.get(app.url("/health")).header("authorization", "Bearer None").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "healthy", "version": version}));

    let body: Value = app.get("/").await.json().await.unwrap();
    assert_eq!(
        (body["name"].as_str(), body["version"].as_str(), body["status"].as_str()),
        (Some("Recap"), Some(version), Some("running"))
    );

    for path in ["/api/health", "/api/v1/health"] {
        let body: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(body["status"], "healthy", "{path}");
        assert_eq!(body["version"], version, "{path}");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{path}: {body}");
    }

    let body: Value = app.get("/api/v1/health/live").await.json().await.unwrap();
    assert_eq!(body["status"], "alive");
    assert_eq!(body["details"]["environment"], "test");

    let body: Value = app.get("/api/v1").await.json().await.unwrap();
    assert_eq!(body["docs"], "/api/docs");
}

async fn readiness_checks_the_database(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    for path in ["/api/v1/ready", "/api/v1/health/ready"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["database"]["status"], "healthy");
        assert_eq!(body["checks"]["database"]["type"], if engine == Engine::Sqlite { "sqlite" } else { "postgres" });
        assert!(body["checks"]["database"]["latency_ms"].is_number());
        assert!(body["checks"].get("redis").is_none(), "redis is not configured: {body}");
    }

    // Closing the pool makes the database unreachable: readiness must say which check failed.
    app.state.db.close().await;
    let response = app.get("/api/v1/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["failed"], serde_json::json!(["database"]));
    assert_eq!(body["checks"]["database"]["status"], "unhealthy");
}

#[tokio::test]
async fn readiness_names_redis_when_it_is_down() {
    // Nothing listens on port 1: the instance starts anyway and readiness reports Redis.
    let Some(app) =
        spawn_with(Engine::Sqlite, |s| s.redis_url = Some("redis://127.0.0.1:1".into()), Default::default()).await
    else {
        return;
    };
    let response = app.get("/api/v1/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"]["database"]["status"], "healthy");
    assert_eq!(body["checks"]["redis"]["status"], "unhealthy");
    // The connection string never reaches the client.
    assert!(!body.to_string().contains("127.0.0.1:1"), "{body}");
}

#[tokio::test]
async fn readiness_checks_a_live_redis() {
    let Some(url) = crate::helpers::redis_url() else { return };
    let Some(app) = spawn_with(Engine::Sqlite, |s| s.redis_url = Some(url), Default::default()).await else { return };
    let response = app.get("/api/v1/ready").await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["redis"]["status"], "healthy", "{body}");
    assert_eq!(body["status"], "ready");
}

async fn status_reports_engine_and_migrations(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let body: Value = app.get("/api/v1/status").await.json().await.unwrap();
    assert_eq!(body["api_version"], "v1");
    assert_eq!(body["status"], "operational");
    assert_eq!(body["engine"], if engine == Engine::Sqlite { "sqlite" } else { "postgres" });
    assert!(body["uptime_seconds"].is_u64());
    let latest = recap_server::db::migrate::latest_known(&app.state.db).unwrap();
    assert_eq!(body["migration_version"], latest);
    assert_eq!(body["latest_migration"], latest);
    let instance = body["instance_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(instance).is_ok(), "{instance}");
    // The id is stable: it belongs to the database, not the request.
    let again: Value = app.get("/api/v1/status").await.json().await.unwrap();
    assert_eq!(again["instance_id"], instance);
    assert_eq!(body["endpoints"]["docs"], "/api/docs");
}

#[tokio::test]
async fn openapi_document_and_offline_docs_page() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in ["/health", "/api/v1/status", "/api/v1/ready", "/metrics"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the document");
    }
    assert!(doc["components"]["schemas"].get("ErrorEnvelope").is_some());
    // The same document the CLI prints.
    assert_eq!(doc, serde_json::to_value(recap_server::openapi()).unwrap());

    let response = app.get("/api/docs/").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "the page must not load from a CDN");
    // The assets come from the binary.
    for asset in ["/api/docs/swagger-ui.css", "/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-initializer.js"] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 100, "{asset}");
    }
    let initializer = app.get("/api/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(initializer.contains("/api/v1/openapi.json"), "{initializer}");

    let response = app.get("/docs").await;
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/api/docs/");
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    assert_eq!(app.get("/api/v1/status").await.status(), 200);
    assert_eq!(app.get("/no/such/page/123").await.status(), 404);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle) || l.contains(needle));
    assert!(has(r#"http_requests_total{method="GET",route="/api/v1/status",status="200"}"#), "{text}");
    // Unknown paths are one label, never the raw path.
    assert!(has(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("/no/such/page"), "raw paths must not become labels");
    assert!(has("http_request_duration_seconds_bucket{"), "{text}");
    assert!(has(r#"db_pool_connections{state="idle"}"#), "{text}");
    assert!(has("db_pool_max_connections 5"), "{text}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    use axum::routing::get;
    let routes = axum::Router::new().route(
        "/test/slow",
        get(|| async {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            "finished"
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::helpers::base_settings(format!("sqlite://{}", dir.path().join("r.db").display()));
    let app = recap_server::Application::build_with(settings, routes).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let token = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let in_flight = tokio::spawn(reqwest::get(format!("{url}/test/slow")));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    token.cancel();
    let response = in_flight.await.unwrap().expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    // The server then stops, cleanly, and refuses new connections.
    tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    assert!(reqwest::get(format!("{url}/health")).await.is_err());
}
