use std::time::Duration;

use axum::{Router, middleware::from_fn_with_state, routing::get};
use recap_server::{
    http::rate_limit::{Policy, per_ip},
    state::AppState,
};
use serde_json::Value;

use crate::{
    engine_tests,
    helpers::{Engine, TestApp, assert_envelope, spawn_with},
};

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap().to_owned()
}

engine_tests!(global_limit_counts_down_then_refuses);

async fn global_limit_counts_down_then_refuses(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.rate_limit_requests = 3, Router::new()).await else { return };
    for expected_remaining in ["2", "1", "0"] {
        let response = app.get("/api/v1/status").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), "3");
        assert_eq!(header(&response, "x-ratelimit-remaining"), expected_remaining);
        assert!(header(&response, "x-ratelimit-reset").parse::<u64>().unwrap() <= 60);
    }
    let response = app.get("/api/v1/status").await;
    let retry_after: u64 = header(&response, "retry-after").parse().expect("integer seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&response, "x-ratelimit-remaining"), "0");
    let body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["detail"], format!("Too many requests. Retry in {retry_after} seconds."));
    assert_eq!(body["error"]["details"]["retry_after"], retry_after);

    // Probes stay reachable and carry no rate-limit headers.
    for probe in ["/health", "/api/health", "/api/v1/health", "/api/v1/ready", "/metrics"] {
        let response = app.get(probe).await;
        assert_eq!(response.status(), 200, "{probe}");
        assert!(response.headers().get("x-ratelimit-limit").is_none(), "{probe}");
    }
    // Unknown routes are limited too (a scanner does not get a free budget).
    assert_eq!(app.get("/api/v1/unknown").await.status(), 429);
}

async fn get_from(app: &TestApp, path: &str, forwarded_for: &str) -> reqwest::Response {
    app.client.get(app.url(path)).header("x-forwarded-for", forwarded_for).send().await.unwrap()
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    // Untrusted: the header is ignored, every request is the socket's address.
    let Some(app) = spawn_with(Engine::Sqlite, |s| s.rate_limit_requests = 2, Router::new()).await else { return };
    assert_eq!(get_from(&app, "/api/v1", "1.1.1.1").await.status(), 200);
    assert_eq!(get_from(&app, "/api/v1", "2.2.2.2").await.status(), 200);
    assert_eq!(get_from(&app, "/api/v1", "3.3.3.3").await.status(), 429);

    // Trusted: each forwarded client has its own budget.
    let Some(app) = spawn_with(
        Engine::Sqlite,
        |s| {
            s.rate_limit_requests = 2;
            s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        },
        Router::new(),
    )
    .await
    else {
        return;
    };
    assert_eq!(get_from(&app, "/api/v1", "1.1.1.1").await.status(), 200);
    assert_eq!(get_from(&app, "/api/v1", "1.1.1.1").await.status(), 200);
    assert_eq!(get_from(&app, "/api/v1", "1.1.1.1").await.status(), 429);
    assert_eq!(get_from(&app, "/api/v1", "2.2.2.2").await.status(), 200);
}

#[tokio::test]
async fn exempt_addresses_are_not_limited() {
    let Some(app) = spawn_with(
        Engine::Sqlite,
        |s| {
            s.rate_limit_requests = 1;
            s.rate_limit_exempt_ips = vec!["127.0.0.1/32".parse().unwrap()];
        },
        Router::new(),
    )
    .await
    else {
        return;
    };
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1").await.status(), 200);
    }
}

#[tokio::test]
async fn per_route_policy_applies_on_top_of_the_global_one() {
    let tight = Policy::new("tight", 2, Duration::from_secs(60), None);
    let routes: Router<AppState> =
        Router::new().route("/test/tight", get(|| async { "ok" })).route_layer(from_fn_with_state(tight, per_ip));
    let Some(app) = spawn_with(Engine::Sqlite, |s| s.rate_limit_requests = 100, routes).await else { return };
    let first = app.get("/test/tight").await;
    // The stricter budget is the one reported.
    assert_eq!(header(&first, "x-ratelimit-limit"), "2");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "1");
    assert_eq!(app.get("/test/tight").await.status(), 200);
    let denied = app.get("/test/tight").await;
    assert_eq!(header(&denied, "x-ratelimit-limit"), "2");
    assert_envelope(denied, 429, "RATE_LIMIT_EXCEEDED").await;
    // Other routes still have the global budget.
    let other = app.get("/api/v1").await;
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "x-ratelimit-limit"), "100");
}

#[tokio::test]
async fn redis_counters_are_shared_between_instances() {
    let Some(url) = crate::helpers::redis_url() else { return };
    let prefix = crate::helpers::unique_prefix();
    let configure = |s: &mut recap_server::Settings| {
        s.rate_limit_requests = 4;
        s.redis_url = Some(url.clone());
        s.redis_key_prefix = prefix.clone();
    };
    let Some(a) = spawn_with(Engine::Sqlite, configure, Router::new()).await else { return };
    let Some(b) = spawn_with(Engine::Sqlite, configure, Router::new()).await else { return };
    let mut remaining = Vec::new();
    for app in [&a, &b, &a, &b] {
        let response = app.get("/api/v1").await;
        assert_eq!(response.status(), 200);
        remaining.push(header(&response, "x-ratelimit-remaining"));
    }
    assert_eq!(remaining, ["3", "2", "1", "0"]);
    let denied = b.get("/api/v1").await;
    let body: Value = assert_envelope(denied, 429, "RATE_LIMIT_EXCEEDED").await;
    assert!(body["error"]["details"]["retry_after"].as_u64().unwrap() <= 60);
    assert_eq!(a.get("/api/v1").await.status(), 429);
}
