//! `/api/v1/webhooks`: owner-scoped CRUD, secrets, the SSRF guard, and real deliveries to a local
//! receiver — signed, retried, logged — drained with the "run pending jobs now" hook.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::IntoResponse,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use recap_server::{Settings, jobs::run_pending_jobs, webhooks};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn_with},
};

engine_tests!(
    webhook_crud_round_trip,
    webhooks_are_visible_to_their_owner_only,
    invalid_webhooks_are_refused_with_the_field,
    private_addresses_are_refused_unless_allow_listed,
    deliveries_are_signed_with_both_documented_schemes,
    events_fire_from_items_and_api_keys,
    a_receiver_failing_twice_gets_exactly_three_attempts,
    a_dead_delivery_can_be_retried_by_an_admin_and_by_its_owner,
    the_test_endpoint_delivers_once_and_reports_the_outcome,
    an_endpoint_failing_too_long_is_disabled_and_can_be_re_enabled,
    connections_are_checked_again_and_redirects_not_followed,
    emitting_is_atomic_with_the_transaction,
);

// --- A real receiver ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Script {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Statuses to answer, in order; 200 once they run out.
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

struct Receiver {
    url: String,
    script: Script,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.script.hits.lock().unwrap().clone()
    }
    fn answer(&self, statuses: &[u16]) {
        *self.script.statuses.lock().unwrap() = statuses.iter().copied().collect();
    }
}

async fn record(State(script): State<Script>, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let n = {
        let mut hits = script.hits.lock().unwrap();
        hits.push(Hit { path: uri.path().to_owned(), headers, body });
        hits.len()
    };
    let status = script.statuses.lock().unwrap().pop_front().unwrap_or(200);
    let status = StatusCode::from_u16(status).unwrap();
    let mut response = (status, format!("answer {n}: {}", "x".repeat(20_000))).into_response();
    if status.is_redirection() {
        response.headers_mut().insert("location", "/elsewhere".parse().unwrap());
    }
    response
}

async fn receiver(statuses: &[u16]) -> Receiver {
    let script = Script::default();
    *script.statuses.lock().unwrap() = statuses.iter().copied().collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let app = Router::new().fallback(record).with_state(script.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, script }
}

// --- Helpers -----------------------------------------------------------------------------------------

/// No in-process workers or scheduler (the test drains the queue), retries at once, and the
/// receiver's loopback address allow-listed.
async fn spawn_hooks(engine: Engine, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    spawn_with(
        engine,
        |s| {
            s.jobs.workers = 0;
            s.jobs.scheduler = false;
            s.webhooks.retry_schedule = vec![Duration::ZERO; 6];
            s.outbound.allowlist = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
            configure(s);
        },
        Router::new(),
    )
    .await
}

async fn drain(app: &TestApp) -> usize {
    run_pending_jobs(&app.state).await.expect("jobs run")
}

async fn create_hook(app: &TestApp, user: &SignedIn, body: Value) -> Value {
    let response = app.post_as("/api/v1/webhooks", &user.access_token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "create {body}");
    response.json().await.unwrap()
}

async fn deliveries(app: &TestApp, user: &SignedIn, hook_id: &str) -> Vec<Value> {
    let page = app.get_json(&format!("/api/v1/webhooks/{hook_id}/deliveries?size=100"), &user.access_token).await;
    page["items"].as_array().unwrap().clone()
}

async fn assert_hook_not_found(response: reqwest::Response) {
    let body = assert_envelope(response, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Webhook not found", "{body}");
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies both signatures of `hit` as a receiver would, from the documented algorithms only.
fn assert_signed(hit: &Hit, secret: &str) {
    let header = |name: &str| hit.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap();
    let id = header("webhook-id");
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - timestamp).abs() < 120, "timestamp {timestamp} vs now {now}");
    let key = match secret.strip_prefix("whsec_") {
        Some(rest) => STANDARD.decode(rest).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&hit.body);
    let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
    assert!(header("webhook-signature").split(' ').any(|s| s == expected), "standard signature");
    let expected = format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &hit.body)));
    assert_eq!(header("x-webhook-signature"), expected, "template signature");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-webhook-delivery"), id);
    assert_eq!(header("x-webhook-timestamp"), timestamp.to_string());
}

fn body_json(hit: &Hit) -> Value {
    serde_json::from_slice(&hit.body).expect("a JSON body")
}

async fn jobs_of(app: &TestApp, admin: &SignedIn, query: &str) -> Vec<Value> {
    let page = app.get_json(&format!("/api/v1/admin/jobs?size=100&{query}"), &admin.access_token).await;
    page["items"].as_array().unwrap().clone()
}

// --- Tests -------------------------------------------------------------------------------------------

async fn webhook_crud_round_trip(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let token = user.access_token.as_str();

    let created = create_hook(
        &app,
        &user,
        json!({"url": " https://example.com/hooks/recap ", "events": ["item.created", "item.created", "commits.ingested"],
               "name": " CI ", "description": "  builds  "}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && STANDARD.decode(&secret[6..]).unwrap().len() == 32, "{secret}");
    assert_eq!(created["url"], "https://example.com/hooks/recap");
    assert_eq!(created["events"], json!(["item.created", "commits.ingested"]));
    assert_eq!((created["name"].as_str(), created["description"].as_str()), (Some("CI"), Some("builds")));
    assert_eq!((created["is_active"].as_bool(), &created["updated_at"]), (Some(true), &Value::Null));
    assert_eq!((&created["disabled_reason"], &created["failing_since"]), (&Value::Null, &Value::Null));
    let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "disabled_reason",
            "events",
            "failing_since",
            "id",
            "is_active",
            "name",
            "secret",
            "updated_at",
            "url"
        ]
    );

    // A caller-chosen secret is kept as given; the secret appears in no list or get.
    let own = create_hook(
        &app,
        &user,
        json!({"url": "https://example.org/x", "events": ["item.deleted"], "secret": "my-own-secret-0123456789"}),
    )
    .await;
    assert_eq!(own["secret"], "my-own-secret-0123456789");
    assert_eq!(own["name"], Value::Null);
    let page = app.get_json("/api/v1/webhooks?size=1", token).await;
    assert_eq!((page["total"].as_i64(), page["pages"].as_i64(), page["size"].as_i64()), (Some(2), Some(2), Some(1)));
    assert_eq!(page["items"][0]["id"], own["id"], "newest first");
    assert!(page["items"][0].get("secret").is_none());
    let got = app.get_json(&format!("/api/v1/webhooks/{id}"), token).await;
    assert!(got.get("secret").is_none());
    assert_eq!(got["events"], created["events"]);

    // The owner reads and rotates the secret.
    let shown = app.get_json(&format!("/api/v1/webhooks/{id}/secret"), token).await;
    assert_eq!(shown, json!({"secret": secret}));
    let rotated: Value = app
        .post_as(&format!("/api/v1/webhooks/{id}/regenerate-secret"), token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(app.get_json(&format!("/api/v1/webhooks/{id}/secret"), token).await["secret"], new_secret);

    // Partial change; `null` clears a name; other fields stay.
    let response = app
        .patch_as(&format!("/api/v1/webhooks/{id}"), token)
        .json(&json!({"events": ["item.updated"], "name": null, "is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["events"], json!(["item.updated"]));
    assert_eq!((&patched["name"], patched["is_active"].as_bool()), (&Value::Null, Some(false)));
    assert_eq!(patched["url"], created["url"]);
    assert!(patched["updated_at"].as_str().unwrap().ends_with('Z'));

    // The catalogue names every event Recap emits.
    let events = app.get_json("/api/v1/webhooks/events", token).await;
    let names: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    for name in [
        "api_key.created",
        "api_key.revoked",
        "commits.ingested",
        "item.created",
        "item.deleted",
        "item.updated",
        "repo.sync_status_changed",
        "webhook.test",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(events[0]["description"].is_string() && events[0]["data"].is_string());

    let response = app.delete_as(&format!("/api/v1/webhooks/{id}"), token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_hook_not_found(app.get_as(&format!("/api/v1/webhooks/{id}"), token).send().await.unwrap()).await;
    assert_hook_not_found(app.delete_as(&format!("/api/v1/webhooks/{id}"), token).send().await.unwrap()).await;
    assert_eq!(app.get_json("/api/v1/webhooks", token).await["total"], 1);

    // Without a token: 401.
    assert_envelope(app.get("/api/v1/webhooks").await, 401, "AUTHENTICATION_ERROR").await;
}

async fn webhooks_are_visible_to_their_owner_only(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let ada = app.signed_in("ada@example.com").await; // admin, and still no access
    let bob = app.signed_in("bob@example.com").await;
    let receiver = receiver(&[]).await;
    let hook = create_hook(&app, &bob, json!({"url": receiver.url, "events": ["item.created"]})).await;
    let id = hook["id"].as_str().unwrap();
    // A delivery log entry of Bob's.
    let r = app.post_as(&format!("/api/v1/webhooks/{id}/test"), &bob.access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let entry = deliveries(&app, &bob, id).await[0]["id"].as_str().unwrap().to_owned();

    let t = ada.access_token.as_str();
    for response in [
        app.get_as(&format!("/api/v1/webhooks/{id}"), t).send().await.unwrap(),
        app.patch_as(&format!("/api/v1/webhooks/{id}"), t).json(&json!({"is_active": false})).send().await.unwrap(),
        app.delete_as(&format!("/api/v1/webhooks/{id}"), t).send().await.unwrap(),
        app.get_as(&format!("/api/v1/webhooks/{id}/secret"), t).send().await.unwrap(),
        app.post_as(&format!("/api/v1/webhooks/{id}/regenerate-secret"), t).send().await.unwrap(),
        app.post_as(&format!("/api/v1/webhooks/{id}/test"), t).send().await.unwrap(),
        app.get_as(&format!("/api/v1/webhooks/{id}/deliveries"), t).send().await.unwrap(),
        app.post_as(&format!("/api/v1/webhooks/{id}/deliveries/{entry}/retry"), t).send().await.unwrap(),
        app.get_as("/api/v1/webhooks/not-a-uuid", t).send().await.unwrap(),
        app.get_as(&format!("/api/v1/webhooks/{}", uuid::Uuid::new_v4()), t).send().await.unwrap(),
    ] {
        assert_hook_not_found(response).await;
    }
    assert_eq!(app.get_json("/api/v1/webhooks", t).await["total"], 0);
    // Nothing changed for Bob, and Ada's attempts delivered nothing.
    assert_eq!(receiver.hits().len(), 1);
    let still = app.get_json(&format!("/api/v1/webhooks/{id}"), &bob.access_token).await;
    assert_eq!(still["is_active"], true);
    // Bob's own unknown delivery entry is a 404 of its own.
    let r = app
        .post_as(&format!("/api/v1/webhooks/{id}/deliveries/{}/retry", uuid::Uuid::new_v4()), &bob.access_token)
        .send()
        .await
        .unwrap();
    let body = assert_envelope(r, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Delivery not found");
}

async fn invalid_webhooks_are_refused_with_the_field(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    for (body, field) in [
        (json!({"url": "https://example.com"}), "events"),
        (json!({"events": ["item.created"]}), "url"),
        (json!({"url": "https://example.com", "events": []}), "events"),
        (json!({"url": "https://example.com", "events": ["  "]}), "events"),
        (json!({"url": "ftp://example.com/x", "events": ["item.created"]}), "url"),
        (json!({"url": "not a url", "events": ["item.created"]}), "url"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2048)), "events": ["e"]}), "url"),
        (json!({"url": "https://example.com", "events": ["e"], "name": ""}), "name"),
        (json!({"url": "https://example.com", "events": ["e"], "secret": "short"}), "secret"),
        (json!({"url": "https://example.com", "events": ["e"], "secret": "whsec_!!notbase64!!"}), "secret"),
        (json!({"url": "https://example.com", "events": "item.created"}), "events"),
    ] {
        let response = app.post_as("/api/v1/webhooks", &user.access_token).json(&body).send().await.unwrap();
        let error = assert_envelope(response, 422, "VALIDATION_ERROR").await;
        let loc = &error["detail"][0]["loc"];
        assert_eq!(loc[0], "body", "{body}: {error}");
        assert_eq!(loc[1], field, "{body}: {error}");
        assert!(!error.to_string().contains("notbase64"), "a secret is never echoed: {error}");
    }
    let hook = create_hook(&app, &user, json!({"url": "https://example.com", "events": ["e"]})).await;
    let id = hook["id"].as_str().unwrap();
    for (patch, field) in [
        (json!({"url": null}), "url"),
        (json!({"events": null}), "events"),
        (json!({"is_active": null}), "is_active"),
        (json!({"events": []}), "events"),
        (json!({"url": "gopher://x"}), "url"),
    ] {
        let response =
            app.patch_as(&format!("/api/v1/webhooks/{id}"), &user.access_token).json(&patch).send().await.unwrap();
        let error = assert_envelope(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(error["detail"][0]["loc"][1], field, "{patch}: {error}");
    }
    let r = app.get_as("/api/v1/webhooks?page=0", &user.access_token).send().await.unwrap();
    assert_envelope(r, 422, "VALIDATION_ERROR").await;
}

async fn private_addresses_are_refused_unless_allow_listed(engine: Engine) {
    // No allow-list: every non-public destination is refused, whatever its spelling.
    let Some(app) = spawn_hooks(engine, |s| s.outbound.allowlist.clear()).await else { return };
    let user = app.signed_in("ada@example.com").await;
    for (url, address, reason) in [
        ("http://127.0.0.1:8080/hook", "127.0.0.1", "loopback"),
        ("http://10.0.0.1/hook", "10.0.0.1", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://[::1]:9000/hook", "::1", "loopback"),
        ("http://localhost:9000/hook", "", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1", "private"),
        ("https://0x7f.1/hook", "127.0.0.1", "loopback"),
        ("http://100.64.1.1/hook", "100.64.1.1", "shared (CGNAT)"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254", "cloud metadata"),
    ] {
        let response = app
            .post_as("/api/v1/webhooks", &user.access_token)
            .json(&json!({"url": url, "events": ["item.created"]}))
            .send()
            .await
            .unwrap();
        let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
        let detail = body["detail"].as_str().unwrap_or_else(|| panic!("{url}: {body}"));
        assert!(detail.starts_with("Webhook URL not allowed: "), "{url}: {detail}");
        assert!(detail.contains(reason), "{url}: {detail}");
        assert_eq!(body["error"]["details"]["reason"], reason, "{url}: {body}");
        if !address.is_empty() {
            assert_eq!(body["error"]["details"]["address"], address, "{url}: {body}");
        }
    }
    // Changing the URL of an existing webhook is checked the same way.
    let hook = create_hook(&app, &user, json!({"url": "https://example.com/hook", "events": ["e"]})).await;
    let response = app
        .patch_as(&format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()), &user.access_token)
        .json(&json!({"url": "http://192.168.1.10/"}))
        .send()
        .await
        .unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert!(body["detail"].as_str().unwrap().contains("192.168.1.10 is a private address"), "{body}");
    assert_eq!(app.get_json("/api/v1/webhooks", &user.access_token).await["total"], 1);
    drop(app);

    // Allow-listed networks pass; the rest is still refused.
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    for url in ["http://127.0.0.1:8080/hook", "http://[::1]:9000/hook", "http://localhost:9000/hook"] {
        create_hook(&app, &user, json!({"url": url, "events": ["item.created"]})).await;
    }
    for url in ["http://10.0.0.1/", "http://169.254.169.254/"] {
        let response = app
            .post_as("/api/v1/webhooks", &user.access_token)
            .json(&json!({"url": url, "events": ["item.created"]}))
            .send()
            .await
            .unwrap();
        assert_envelope(response, 422, "VALIDATION_ERROR").await;
    }
}

async fn deliveries_are_signed_with_both_documented_schemes(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[]).await;
    let generated = create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.created"]})).await;
    let own_secret = "plain secret bytes 0123456789".replace(' ', "-");
    let own =
        create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.created"], "secret": own_secret})).await;

    let item: Value = app
        .post_as("/api/v1/items", &user.access_token)
        .json(&json!({"title": "Café ☕", "description": "naïve"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(receiver.hits().is_empty(), "nothing is sent before the queue runs");
    assert_eq!(drain(&app).await, 2);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2);
    assert_ne!(hits[0].headers["webhook-id"], hits[1].headers["webhook-id"]);
    for hit in &hits {
        let id = hit.headers["webhook-id"].to_str().unwrap();
        let hook = if deliveries(&app, &user, generated["id"].as_str().unwrap()).await[0]["delivery_id"] == id {
            &generated
        } else {
            &own
        };
        assert_signed(hit, hook["secret"].as_str().unwrap());
        assert_eq!(hit.path, "/hook");
        assert_eq!(hit.headers["x-webhook-event"], "item.created");
        assert!(hit.headers["user-agent"].to_str().unwrap().starts_with("Recap-Webhooks/"));
        // The envelope, serialised as the contract says: ", " and ": " separators, ASCII only.
        let raw = std::str::from_utf8(&hit.body).unwrap();
        assert!(raw.is_ascii() && raw.starts_with(r#"{"event": "item.created", "timestamp": ""#), "{raw}");
        assert!(raw.contains(r#""title": "Caf\u00e9 \u2615""#), "{raw}");
        let body = body_json(hit);
        assert_eq!(body["data"], item);
        let ts = body["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    }
    // The log: one successful attempt each, with the answer truncated to 10 000 characters.
    let log = deliveries(&app, &user, own["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(
        (entry["event_type"].as_str(), entry["attempt"].as_i64(), entry["attempt_count"].as_i64()),
        (Some("item.created"), Some(1), Some(1))
    );
    assert_eq!((entry["response_status"].as_i64(), entry["success"].as_bool()), (Some(200), Some(true)));
    assert_eq!((&entry["error_message"], &entry["next_retry_at"]), (&Value::Null, &Value::Null));
    assert!(entry["delivered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entry["response_body"].as_str().unwrap().chars().count(), 10_000);
    assert!(entry["duration_ms"].as_i64().unwrap() >= 0);
    assert!(entry.get("payload").is_none(), "the stored payload is not exposed");
}

async fn events_fire_from_items_and_api_keys(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let other = app.signed_in("bob@example.com").await;
    let receiver = receiver(&[]).await;
    let all = json!(["item.created", "item.updated", "item.deleted", "api_key.created", "api_key.revoked"]);
    create_hook(&app, &user, json!({"url": receiver.url, "events": all})).await;
    // Bob's webhook hears Bob only; an inactive one hears nothing.
    create_hook(&app, &other, json!({"url": receiver.url, "events": all})).await;
    let off = create_hook(&app, &user, json!({"url": receiver.url, "events": all})).await;
    app.patch_as(&format!("/api/v1/webhooks/{}", off["id"].as_str().unwrap()), &user.access_token)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();

    let t = user.access_token.as_str();
    let item: Value =
        app.post_as("/api/v1/items", t).json(&json!({"title": "a"})).send().await.unwrap().json().await.unwrap();
    let item_id = item["id"].as_str().unwrap();
    app.patch_as(&format!("/api/v1/items/{item_id}"), t).json(&json!({"title": "b"})).send().await.unwrap();
    app.delete_as(&format!("/api/v1/items/{item_id}"), t).send().await.unwrap();
    let key: Value =
        app.post_as("/api/v1/api-keys", t).json(&json!({"name": "ci"})).send().await.unwrap().json().await.unwrap();
    app.delete_as(&format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()), t).send().await.unwrap();
    // A failed request emits nothing.
    let r = app.patch_as(&format!("/api/v1/items/{item_id}"), t).json(&json!({"title": "c"})).send().await.unwrap();
    assert_eq!(r.status(), 404);

    assert_eq!(drain(&app).await, 5);
    let events: Vec<Value> = receiver.hits().iter().map(body_json).collect();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in ["item.created", "item.updated", "item.deleted", "api_key.created", "api_key.revoked"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} in {names:?}");
    }
    let find = |name: &str| events.iter().find(|e| e["event"] == name).unwrap().clone();
    assert_eq!(find("item.updated")["data"]["title"], "b");
    assert_eq!(find("item.deleted")["data"], json!({ "id": item_id }));
    let created = find("api_key.created");
    assert_eq!(created["data"]["prefix"], key["prefix"]);
    assert!(
        created["data"].get("full_key").is_none() && !created.to_string().contains(key["full_key"].as_str().unwrap())
    );
    assert_eq!(find("api_key.revoked")["data"]["status"], "revoked");
}

async fn a_receiver_failing_twice_gets_exactly_three_attempts(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[500, 503]).await;
    let hook = create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.created"]})).await;
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "a"})).send().await.unwrap();

    assert_eq!(drain(&app).await, 3, "three attempts, no more");
    assert_eq!(drain(&app).await, 0);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    let id = hits[0].headers["webhook-id"].clone();
    for hit in &hits {
        assert_eq!(hit.headers["webhook-id"], id, "one delivery, one id on every attempt");
        assert_eq!(hit.body, hits[0].body, "the same bytes every time");
        assert_signed(hit, hook["secret"].as_str().unwrap());
    }

    let mut log = deliveries(&app, &user, hook["id"].as_str().unwrap()).await;
    log.reverse(); // oldest first
    let summary: Vec<(i64, Option<i64>, bool, i64)> = log
        .iter()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["response_status"].as_i64(),
                e["success"].as_bool().unwrap(),
                e["attempt_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(1, Some(500), false, 3), (2, Some(503), false, 3), (3, Some(200), true, 3)]);
    assert_eq!(log[0]["error_message"], "Receiver responded with status 500");
    assert!(log[0]["next_retry_at"].as_str().is_some() && log[1]["next_retry_at"].as_str().is_some());
    assert_eq!(log[2]["next_retry_at"], Value::Null);
    assert!(log.iter().all(|e| e["delivery_id"].as_str() == Some(id.to_str().unwrap())));

    let jobs = jobs_of(&app, &user, "kind=webhook.deliver").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0]["state"].as_str(), jobs[0]["attempts"].as_i64()), (Some("succeeded"), Some(3)));
    // Healthy again: no failure state left.
    let got = app.get_json(&format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()), &user.access_token).await;
    assert_eq!(got["failing_since"], Value::Null);
}

async fn a_dead_delivery_can_be_retried_by_an_admin_and_by_its_owner(engine: Engine) {
    // Two retries only: three attempts, then dead.
    let Some(app) = spawn_hooks(engine, |s| s.webhooks.retry_schedule = vec![Duration::ZERO; 2]).await else { return };
    let admin = app.signed_in("root@example.com").await;
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[500, 500, 500, 500]).await;
    let hook = create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.created"]})).await;
    let hook_id = hook["id"].as_str().unwrap();
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "a"})).send().await.unwrap();
    assert_eq!(drain(&app).await, 3);
    assert_eq!(receiver.hits().len(), 3);

    let dead = jobs_of(&app, &admin, "state=dead&kind=webhook.deliver").await;
    assert_eq!(dead.len(), 1);
    let job_id = dead[0]["id"].as_str().unwrap();
    assert_eq!(dead[0]["attempts"], 3);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("Receiver responded with status 500"), "{}", dead[0]);
    assert!(dead[0]["finished_at"].as_str().is_some());
    let log = deliveries(&app, &user, hook_id).await;
    assert_eq!(log[0]["next_retry_at"], Value::Null, "the last attempt announces no retry");

    // Only admins see and retry jobs.
    let r = app.get_as("/api/v1/admin/jobs", &user.access_token).send().await.unwrap();
    assert_envelope(r, 403, "AUTHORIZATION_ERROR").await;
    let r = app.post_as(&format!("/api/v1/admin/jobs/{job_id}/retry"), &user.access_token).send().await.unwrap();
    assert_envelope(r, 403, "AUTHORIZATION_ERROR").await;

    // The admin's retry gets one more attempt, which fails again (the receiver still answers 500): dead again.
    let r = app.post_as(&format!("/api/v1/admin/jobs/{job_id}/retry"), &admin.access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let retried: Value = r.json().await.unwrap();
    assert_eq!((retried["state"].as_str(), retried["max_attempts"].as_i64()), (Some("pending"), Some(4)));
    assert_eq!(drain(&app).await, 1);
    assert_eq!(app.get_json(&format!("/api/v1/admin/jobs/{job_id}"), &admin.access_token).await["state"], "dead");

    // Now the receiver is back: the next retry delivers.
    let r = app.post_as(&format!("/api/v1/admin/jobs/{job_id}/retry"), &admin.access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(drain(&app).await, 1);
    let job = app.get_json(&format!("/api/v1/admin/jobs/{job_id}"), &admin.access_token).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(5)));
    assert_eq!(receiver.hits().len(), 5);
    let log = deliveries(&app, &user, hook_id).await;
    assert_eq!(
        (log[0]["attempt"].as_i64(), log[0]["success"].as_bool(), log[0]["attempt_count"].as_i64()),
        (Some(5), Some(true), Some(5))
    );
    // A succeeded job cannot be retried.
    let r = app.post_as(&format!("/api/v1/admin/jobs/{job_id}/retry"), &admin.access_token).send().await.unwrap();
    let body = assert_envelope(r, 400, "BAD_REQUEST").await;
    assert_eq!(body["error"]["details"]["state"], "succeeded");

    // The owner can redeliver any logged delivery: one more attempt, numbered after the others.
    let entry = log[2]["id"].as_str().unwrap();
    let r = app
        .post_as(&format!("/api/v1/webhooks/{hook_id}/deliveries/{entry}/retry"), &user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Delivery retry scheduled");
    assert_eq!(body["delivery_id"], log[2]["delivery_id"]);
    assert_eq!(drain(&app).await, 1);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 6);
    assert_eq!(hits[5].headers["webhook-id"], hits[0].headers["webhook-id"], "a redelivery keeps its id");
    let log = deliveries(&app, &user, hook_id).await;
    assert_eq!((log[0]["attempt"].as_i64(), log[0]["attempt_count"].as_i64()), (Some(6), Some(6)));
}

async fn the_test_endpoint_delivers_once_and_reports_the_outcome(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[200, 500]).await;
    // Subscribed to something else: the test event is sent anyway.
    let hook = create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.deleted"]})).await;
    let id = hook["id"].as_str().unwrap();
    let test = || async {
        let r = app.post_as(&format!("/api/v1/webhooks/{id}/test"), &user.access_token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    assert_eq!(test().await, json!({"success": true, "status_code": 200, "message": "Delivered successfully"}));
    assert_eq!(
        test().await,
        json!({"success": false, "status_code": 500, "message": "Receiver responded with status 500"})
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2);
    assert_signed(&hits[0], hook["secret"].as_str().unwrap());
    let body = body_json(&hits[0]);
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(body["data"], json!({"message": "This is a test webhook delivery"}));
    assert_eq!(hits[0].headers["x-webhook-event"], "webhook.test");
    // Logged, not retried, and not counted against the endpoint.
    assert_eq!(drain(&app).await, 0);
    let log = deliveries(&app, &user, id).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|e| e["event_type"] == "webhook.test" && e["attempt"] == 1));
    assert_eq!(app.get_json(&format!("/api/v1/webhooks/{id}"), &user.access_token).await["failing_since"], Value::Null);

    // Nobody listening: no status, the transport error as the message.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let hook = create_hook(&app, &user, json!({"url": format!("http://127.0.0.1:{closed}/x"), "events": ["e"]})).await;
    let r = app
        .post_as(&format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), &user.access_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["success"].as_bool(), &body["status_code"]), (Some(false), &Value::Null), "{body}");
    assert!(body["message"].as_str().unwrap().contains("error"), "{body}");
}

async fn an_endpoint_failing_too_long_is_disabled_and_can_be_re_enabled(engine: Engine) {
    // Disabled as soon as it fails (the 5 days shortened to 0).
    let Some(app) = spawn_hooks(engine, |s| s.webhooks.disable_after = Duration::ZERO).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[500]).await;
    let hook = create_hook(&app, &user, json!({"url": receiver.url, "events": ["item.created"]})).await;
    let id = hook["id"].as_str().unwrap();
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "a"})).send().await.unwrap();
    // One attempt fails and disables the webhook; its retry is then cancelled.
    assert_eq!(drain(&app).await, 2);
    assert_eq!(receiver.hits().len(), 1);
    let got = app.get_json(&format!("/api/v1/webhooks/{id}"), &user.access_token).await;
    assert_eq!(got["is_active"], false);
    let reason = got["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("Disabled automatically") && reason.contains("status 500"), "{reason}");
    assert!(got["failing_since"].as_str().is_some());
    let jobs = jobs_of(&app, &user, "kind=webhook.deliver").await;
    assert_eq!(jobs[0]["state"], "cancelled");
    assert_eq!(jobs[0]["last_error"], "the webhook is disabled");
    // While disabled, events are not queued for it.
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "b"})).send().await.unwrap();
    assert_eq!(drain(&app).await, 0);
    // A redelivery of a disabled webhook is refused.
    let entry = deliveries(&app, &user, id).await[0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post_as(&format!("/api/v1/webhooks/{id}/deliveries/{entry}/retry"), &user.access_token)
        .send()
        .await
        .unwrap();
    assert_envelope(r, 400, "BAD_REQUEST").await;

    // The owner re-enables it: the failure state is cleared and events flow again.
    let r = app
        .patch_as(&format!("/api/v1/webhooks/{id}"), &user.access_token)
        .json(&json!({"is_active": true}))
        .send()
        .await
        .unwrap();
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        (got["is_active"].as_bool(), &got["disabled_reason"], &got["failing_since"]),
        (Some(true), &Value::Null, &Value::Null)
    );
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "c"})).send().await.unwrap();
    assert_eq!(drain(&app).await, 1);
    assert_eq!(receiver.hits().len(), 2);
    assert_eq!(body_json(&receiver.hits()[1])["data"]["title"], "c");
}

async fn connections_are_checked_again_and_redirects_not_followed(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |s| s.outbound.allowlist.clear()).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[]).await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    // A name that does not resolve at creation is accepted...
    let by_name =
        create_hook(&app, &user, json!({"url": "http://rebinding.invalid/hook", "events": ["item.created"]})).await;
    let by_ip = create_hook(&app, &user, json!({"url": "https://example.com/hook", "events": ["item.created"]})).await;
    // ...and later points at loopback (DNS rebinding, simulated by changing the stored URL).
    for (hook, url) in
        [(&by_name, format!("http://localhost:{port}/hook")), (&by_ip, format!("http://127.0.0.1:{port}/hook"))]
    {
        let id = uuid::Uuid::parse_str(hook["id"].as_str().unwrap()).unwrap();
        match &app.state.db {
            recap_server::db::Db::Sqlite(pool) => {
                sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2")
                    .bind(&url)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            recap_server::db::Db::Postgres(pool) => {
                sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2")
                    .bind(&url)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
    app.post_as("/api/v1/items", &user.access_token).json(&json!({"title": "a"})).send().await.unwrap();
    drain(&app).await;
    assert!(receiver.hits().is_empty(), "the guard refused the connection");
    for hook in [&by_name, &by_ip] {
        let log = deliveries(&app, &user, hook["id"].as_str().unwrap()).await;
        assert!(!log.is_empty());
        let error = log[0]["error_message"].as_str().unwrap();
        assert!(error.contains("loopback"), "{error}");
        assert_eq!(log[0]["response_status"], Value::Null);
    }
    drop(app);

    // A redirect is an answer like any other non-2xx: a failure, not followed.
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    receiver.answer(&[302]);
    let hook = create_hook(&app, &user, json!({"url": receiver.url, "events": ["e"]})).await;
    let r = app
        .post_as(&format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), &user.access_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"success": false, "status_code": 302, "message": "Receiver responded with status 302"}));
    assert_eq!(receiver.hits().len(), 1);
    assert!(receiver.hits().iter().all(|h| h.path == "/hook"), "the redirect target was never requested");
}

async fn emitting_is_atomic_with_the_transaction(engine: Engine) {
    let Some(app) = spawn_hooks(engine, |_| {}).await else { return };
    let user = app.signed_in("ada@example.com").await;
    let receiver = receiver(&[]).await;
    create_hook(&app, &user, json!({"url": receiver.url, "events": ["commits.ingested"]})).await;
    let owner = uuid::Uuid::parse_str(&user.id).unwrap();
    let data = json!({"repo_id": "r", "inserted": 3});

    // Rolled back: no delivery.
    let mut tx = app.state.db.begin().await.unwrap();
    let n = webhooks::emit(&mut tx, owner, "commits.ingested", data.clone()).await.unwrap();
    assert_eq!(n, 1);
    drop(tx);
    assert_eq!(drain(&app).await, 0);

    // Committed: exactly one; an audience listing the owner twice still gets it once.
    let mut tx = app.state.db.begin().await.unwrap();
    let audience = webhooks::Audience::Users(vec![owner, owner, uuid::Uuid::new_v4()]);
    assert_eq!(webhooks::emit(&mut tx, audience, "commits.ingested", data.clone()).await.unwrap(), 1);
    // Not subscribed: nothing.
    assert_eq!(webhooks::emit(&mut tx, owner, "repo.sync_status_changed", json!({})).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(drain(&app).await, 1);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(body_json(&hits[0])["data"], data);
}
