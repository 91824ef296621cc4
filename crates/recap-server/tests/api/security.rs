use axum::Router;

use crate::helpers::{Engine, spawn, spawn_with};

#[tokio::test]
async fn security_headers_on_every_response() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    for path in ["/health", "/api/v1/status", "/does-not-exist"] {
        let response = app.get(path).await;
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin", "{path}");
        assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'", "{path}");
        assert!(h.get("permissions-policy").is_some(), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "HSTS is for production only");
    }
}

#[tokio::test]
async fn production_adds_hsts() {
    let Some(app) =
        spawn_with(Engine::Sqlite, |s| s.environment = recap_server::config::Environment::Production, Router::new())
            .await
    else {
        return;
    };
    let response = app.get("/health").await;
    assert!(response.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/status"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight("http://localhost:3000").await.unwrap();
    assert!(allowed.status().is_success());
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert!(h["access-control-allow-headers"].to_str().unwrap().contains("authorization"));

    let refused = preflight("http://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    let simple = app.client.get(app.url("/health")).header("origin", "http://localhost:3000").send().await.unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert!(simple.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
}
