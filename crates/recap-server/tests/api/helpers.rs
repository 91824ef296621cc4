//! Starts the real server on port 0 with a fresh database per test and talks HTTP to it.
//!
//! SQLite: a new file in a temp directory. PostgreSQL (when `RECAP_TEST_POSTGRES_URL` is set): a
//! new database created for the test and dropped (with FORCE) when the test ends.

use std::sync::Once;

use axum::Router;
use recap_server::{Application, Settings, config::Environment, state::AppState};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request failed")
    }
}

/// A signed-in user as tests use it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "correct-horse-42";

impl TestApp {
    /// Registers `email` (asserting 201) and returns the user JSON.
    pub async fn register(&self, email: &str, password: &str) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/api/v1/auth/register"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "register {email}");
        response.json().await.unwrap()
    }

    /// Logs in with JSON (asserting 200) and returns the token answer.
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login {email}");
        response.json().await.unwrap()
    }

    /// Registers and signs in a fresh user (the first one of an app becomes admin).
    pub async fn signed_in(&self, email: &str) -> SignedIn {
        let user = self.register(email, PASSWORD).await;
        let tokens = self.login(email, PASSWORD).await;
        SignedIn {
            id: user["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            access_token: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// `GET path` as `token`, asserting a 200 with a JSON body, which it returns.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.get_as(path, token).send().await.expect("request failed");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn get_as(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }
    pub fn post_as(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(token)
    }
    pub fn patch_as(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).bearer_auth(token)
    }
    pub fn delete_as(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(token)
    }
}

/// Settings every test starts from: the engine's fresh database, port 0, a fixed key.
pub fn base_settings(database_url: String) -> Settings {
    Settings {
        environment: Environment::Test,
        host: "127.0.0.1".into(),
        port: 0,
        database_url,
        database_max_connections: 5,
        secret_key: Some("test-secret-key-that-is-long-enough-0123456789".into()),
        ..Settings::default()
    }
}

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

pub async fn spawn(engine: Engine) -> Option<TestApp> {
    spawn_with(engine, |_| {}, Router::new()).await
}

/// Starts an app on `engine` after `configure` adjusted its settings; `extra` routes sit behind
/// the same platform layer. `None` when the engine is not available here (the skip is printed).
pub async fn spawn_with(
    engine: Engine,
    configure: impl FnOnce(&mut Settings),
    extra: Router<AppState>,
) -> Option<TestApp> {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg) = match engine {
        Engine::Sqlite => (format!("sqlite://{}", dir.path().join("recap.db").display()), None),
        Engine::Postgres => {
            let Some(admin_url) = postgres_admin_url() else {
                eprintln!("SKIPPED on PostgreSQL: RECAP_TEST_POSTGRES_URL is not set");
                return None;
            };
            let pg = PgDatabase::create(&admin_url).await;
            (pg.url.clone(), Some(pg))
        }
    };
    let mut settings = base_settings(database_url);
    configure(&mut settings);
    let app = Application::build_with(settings, extra).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Some(TestApp { address, client, state, shutdown, _dir: dir, _pg: pg })
}

pub fn postgres_admin_url() -> Option<String> {
    std::env::var("RECAP_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty())
}

pub fn redis_url() -> Option<String> {
    let url = std::env::var("RECAP_TEST_REDIS_URL").ok().filter(|v| !v.is_empty());
    if url.is_none() {
        eprintln!("SKIPPED with Redis: RECAP_TEST_REDIS_URL is not set");
    }
    url
}

/// A unique Redis key prefix, so parallel tests never share counters.
pub fn unique_prefix() -> String {
    format!("recap-test-{}", uuid::Uuid::new_v4().simple())
}

/// A PostgreSQL database that exists for one test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("recap_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin_url).await.expect("connect to RECAP_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = replace_database(admin_url, &name);
        PgDatabase { admin_url: admin_url.to_owned(), name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs each listed `async fn name(engine: Engine)` once per engine, as `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Engine::Postgres).await
            }
        }
    )*};
}

/// Asserts the error envelope of ARCHITECTURE.md and returns the body for further checks.
pub async fn assert_envelope(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    assert_eq!(response.headers()["content-type"], "application/json");
    let header_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["code"], status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["detail"].is_string() || body["detail"].is_array(), "{body}");
    assert_eq!(body["request_id"], header_id.as_str(), "{body}");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() >= 20, "{ts}");
    body
}
