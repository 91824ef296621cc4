//! OAuth sign-in against local fakes of GitHub and Google that speak their real JSON.

use std::collections::HashMap;

use axum::Router;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use recap_server::{
    Settings,
    accounts::oauth::{ClientCredentials, OAuthSettings},
    on_db,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::{
    Match, Mock, MockGuard, MockServer, Request, ResponseTemplate,
    matchers::{bearer_token, header, header_exists, method, path},
};

use crate::{
    engine_tests,
    helpers::{Engine, PASSWORD, TestApp, assert_envelope, spawn_with},
};

const GITHUB_ID: &str = "gh-client-id";
const GITHUB_SECRET: &str = "gh-client-secret-do-not-leak";
const GOOGLE_ID: &str = "google-client-id.apps.googleusercontent.com";
const GOOGLE_SECRET: &str = "google-client-secret-do-not-leak";

/// The two fake providers and the app configured against them.
struct Fixture {
    app: TestApp,
    github: MockServer,
    google: MockServer,
}

async fn fixture(engine: Engine, configure: impl FnOnce(&mut Settings)) -> Option<Fixture> {
    let github = MockServer::start().await;
    let google = MockServer::start().await;
    let (gh, gg) = (github.uri(), google.uri());
    let app = spawn_with(
        engine,
        |s| {
            s.oauth = OAuthSettings {
                github: Some(ClientCredentials { client_id: GITHUB_ID.into(), client_secret: GITHUB_SECRET.into() }),
                google: Some(ClientCredentials { client_id: GOOGLE_ID.into(), client_secret: GOOGLE_SECRET.into() }),
                github_oauth_url: gh.clone(),
                github_api_url: format!("{gh}/api"),
                google_auth_url: format!("{gg}/o/oauth2/v2/auth"),
                google_token_url: format!("{gg}/token"),
                google_userinfo_url: format!("{gg}/v1/userinfo"),
                ..OAuthSettings::default()
            };
            configure(s);
        },
        Router::new(),
    )
    .await?;
    Some(Fixture { app, github, google })
}

/// What `/login` sent the browser to.
struct Authorize {
    location: reqwest::Url,
    params: HashMap<String, String>,
}

impl Authorize {
    fn state(&self) -> &str {
        &self.params["state"]
    }
    fn challenge(&self) -> &str {
        &self.params["code_challenge"]
    }
}

async fn login(app: &TestApp, provider: &str) -> Authorize {
    let response = app.get(&format!("/api/v1/oauth/{provider}/login")).await;
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let params = location.query_pairs().into_owned().collect();
    Authorize { location, params }
}

async fn callback(app: &TestApp, provider: &str, query: &[(&str, &str)]) -> reqwest::Response {
    app.client.get(app.url(&format!("/api/v1/oauth/{provider}/callback"))).query(query).send().await.unwrap()
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form(request: &Request) -> HashMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// The token endpoint accepts only the exchange it is told to expect: this code, a verifier whose
/// S256 is the challenge sent at login, the registered redirect URI and the client credentials.
struct TokenExchange {
    code: String,
    challenge: String,
    redirect_uri: String,
    client_id: &'static str,
    client_secret: &'static str,
}

impl Match for TokenExchange {
    fn matches(&self, request: &Request) -> bool {
        let f = form(request);
        let get = |k: &str| f.get(k).map(String::as_str);
        get("grant_type") == Some("authorization_code")
            && get("code") == Some(self.code.as_str())
            && get("code_verifier").is_some_and(|v| s256(v) == self.challenge)
            && get("redirect_uri") == Some(self.redirect_uri.as_str())
            && get("client_id") == Some(self.client_id)
            && get("client_secret") == Some(self.client_secret)
    }
}

fn redirect_uri(provider: &str) -> String {
    format!("http://localhost:8000/api/v1/oauth/{provider}/callback")
}

/// Mounts GitHub's token endpoint for this login, answering `access_token`.
async fn github_token(fx: &Fixture, auth: &Authorize, code: &str, access_token: &str) -> MockGuard {
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(header("accept", "application/json"))
        .and(TokenExchange {
            code: code.into(),
            challenge: auth.challenge().into(),
            redirect_uri: redirect_uri("github"),
            client_id: GITHUB_ID,
            client_secret: GITHUB_SECRET,
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token, "scope": "read:user,user:email", "token_type": "bearer"
        })))
        .expect(1)
        .mount_as_scoped(&fx.github)
        .await
}

/// Mounts GitHub's `/user` and `/user/emails` for `access_token`.
async fn github_profile(fx: &Fixture, access_token: &str, id: i64, emails: Value) -> (MockGuard, MockGuard) {
    let user = Mock::given(method("GET"))
        .and(path("/api/user"))
        .and(bearer_token(access_token))
        .and(header_exists("user-agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "login": "octocat", "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false,
            "name": "The Octocat", "company": "@github", "email": null
        })))
        .mount_as_scoped(&fx.github)
        .await;
    let emails = Mock::given(method("GET"))
        .and(path("/api/user/emails"))
        .and(bearer_token(access_token))
        .and(header_exists("user-agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(emails))
        .mount_as_scoped(&fx.github)
        .await;
    (user, emails)
}

fn github_emails(primary: &str, verified: bool) -> Value {
    json!([
        {"email": "octo-old@example.org", "primary": false, "verified": true, "visibility": null},
        {"email": primary, "primary": true, "verified": verified, "visibility": "private"},
        {"email": "12345+octocat@users.noreply.github.com", "primary": false, "verified": true, "visibility": null}
    ])
}

/// Mounts Google's token endpoint and userinfo for this login.
async fn google_provider(fx: &Fixture, auth: &Authorize, code: &str, userinfo: Value) -> (MockGuard, MockGuard) {
    let access_token = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    let token = Mock::given(method("POST"))
        .and(path("/token"))
        .and(TokenExchange {
            code: code.into(),
            challenge: auth.challenge().into(),
            redirect_uri: redirect_uri("google"),
            client_id: GOOGLE_ID,
            client_secret: GOOGLE_SECRET,
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token, "expires_in": 3599, "token_type": "Bearer",
            "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
            "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig"
        })))
        .expect(1)
        .mount_as_scoped(&fx.google)
        .await;
    let info = Mock::given(method("GET"))
        .and(path("/v1/userinfo"))
        .and(bearer_token(&access_token))
        .respond_with(ResponseTemplate::new(200).set_body_json(userinfo))
        .expect(1)
        .mount_as_scoped(&fx.google)
        .await;
    (token, info)
}

/// A whole GitHub sign-in for account `id`; returns the callback's response.
async fn github_sign_in(fx: &Fixture, id: i64, emails: Value) -> reqwest::Response {
    let auth = login(&fx.app, "github").await;
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let access_token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    let _token = github_token(fx, &auth, &code, &access_token).await;
    let _profile = github_profile(fx, &access_token, id, emails).await;
    callback(&fx.app, "github", &[("code", &code), ("state", auth.state())]).await
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    on_db!(&app.state.db, |pool| sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await).unwrap()
}

async fn me(app: &TestApp, access_token: &str) -> Value {
    let response = app.get_as("/api/v1/auth/me", access_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

engine_tests!(
    github_sign_in_creates_a_user_and_signs_in,
    google_sign_in_links_an_existing_password_user,
    a_second_sign_in_reuses_the_linked_account,
    bad_unknown_reused_and_expired_states_are_refused,
    a_provider_error_is_a_bad_request,
    provider_failures_are_bad_gateway_without_secrets,
    a_rejected_code_is_a_bad_request,
    without_a_verified_email_nobody_is_signed_in,
    unconfigured_and_unknown_providers,
    redirect_url_receives_the_tokens,
    oauth_sign_ups_wait_for_approval_when_required,
);

async fn github_sign_in_creates_a_user_and_signs_in(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;

    let auth = login(app, "github").await;
    let expected = format!("{}/login/oauth/authorize", fx.github.uri());
    assert_eq!(auth.location.as_str().split('?').next().unwrap(), expected);
    let p = &auth.params;
    assert_eq!(p["response_type"], "code");
    assert_eq!(p["client_id"], GITHUB_ID);
    assert_eq!(p["redirect_uri"], redirect_uri("github"));
    assert_eq!(p["scope"], "read:user user:email");
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["code_challenge"].len(), 43, "a base64url SHA-256");
    assert!(auth.state().len() >= 16);
    assert!(!auth.location.as_str().contains(GITHUB_SECRET));
    // The state is stored with its verifier, for this provider, for ten minutes.
    let (provider, verifier, expires_at): (String, String, time::OffsetDateTime) = on_db!(&app.state.db, |pool| {
        sqlx::query_as("SELECT provider, pkce_verifier, expires_at FROM oauth_states WHERE state = $1")
            .bind(auth.state())
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert_eq!(provider, "github");
    assert_eq!(s256(&verifier), auth.challenge());
    let left = expires_at - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(9) && left <= time::Duration::minutes(10), "{left}");
    // Every login gets its own state and challenge.
    let again = login(app, "github").await;
    assert_ne!(again.state(), auth.state());
    assert_ne!(again.challenge(), auth.challenge());

    let _token = github_token(&fx, &auth, "the-code", "gho_16C7e42F292c6912E7710c838347Ae178B4a").await;
    let _profile = github_profile(
        &fx,
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        583231,
        github_emails("Octocat@Example.com", true),
    )
    .await;
    let response = callback(app, "github", &[("code", "the-code"), ("state", auth.state())]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert!(body["refresh_token"].as_str().unwrap().len() > 20);
    // The primary verified address, normalised; the first real user of the instance is admin.
    assert_eq!(body["user"]["email"], "octocat@example.com");
    assert_eq!(body["user"]["full_name"], "The Octocat");
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["status"], "approved");

    let user = me(app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(user["id"], body["user"]["id"]);
    assert_eq!(user["email"], "octocat@example.com");

    // The exchange sent the verifier stored at login, and never followed the code anywhere else.
    let requests = fx.github.received_requests().await.unwrap();
    let exchange = requests.iter().find(|r| r.url.path() == "/login/oauth/access_token").unwrap();
    assert_eq!(form(exchange)["code_verifier"], verifier);
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM oauth_accounts WHERE provider = 'github' AND subject = '583231'").await,
        1
    );
    assert_eq!(count(app, "SELECT COUNT(*) FROM oauth_states").await, 1, "only the unused second login is left");
    assert_eq!(count(app, "SELECT COUNT(*) FROM audit_log WHERE action = 'oauth_login'").await, 1);
    assert_eq!(count(app, "SELECT COUNT(*) FROM audit_log WHERE action = 'register'").await, 1);
    // The account has no password: a password login is refused like a wrong password.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "octocat@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
}

async fn google_sign_in_links_an_existing_password_user(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    let existing = app.signed_in("ada@example.com").await;

    let auth = login(app, "google").await;
    assert_eq!(auth.location.as_str().split('?').next().unwrap(), format!("{}/o/oauth2/v2/auth", fx.google.uri()));
    assert_eq!(auth.params["scope"], "openid email profile");
    assert_eq!(auth.params["client_id"], GOOGLE_ID);
    assert_eq!(auth.params["redirect_uri"], redirect_uri("google"));
    assert_eq!(auth.params["code_challenge_method"], "S256");

    let userinfo = json!({
        "sub": "110169484474386276334", "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
        "picture": "https://lh3.googleusercontent.com/a/x", "email": "Ada@Example.com", "email_verified": true
    });
    let _google = google_provider(&fx, &auth, "4/0AeaYSHB-code", userinfo).await;
    let response = callback(app, "google", &[("code", "4/0AeaYSHB-code"), ("state", auth.state())]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], existing.id.as_str(), "the same account, linked");
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(me(app, body["access_token"].as_str().unwrap()).await["id"], existing.id.as_str());

    assert_eq!(count(app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM oauth_accounts WHERE provider = 'google' AND subject = '110169484474386276334'"
        )
        .await,
        1
    );
    assert_eq!(count(app, "SELECT COUNT(*) FROM audit_log WHERE action = 'oauth_link'").await, 1);
    // The password still works.
    app.login("ada@example.com", PASSWORD).await;
}

async fn a_second_sign_in_reuses_the_linked_account(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    let first = github_sign_in(&fx, 42, github_emails("octo@example.com", true)).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();

    // Same GitHub account, now with another primary address: found by the account, not the e-mail.
    let second = github_sign_in(&fx, 42, github_emails("renamed@example.com", true)).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["email"], "octo@example.com");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(count(app, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count(app, "SELECT COUNT(*) FROM oauth_accounts").await, 1);
    assert_eq!(count(app, "SELECT COUNT(*) FROM audit_log WHERE action = 'oauth_link'").await, 0);
    assert_eq!(count(app, "SELECT COUNT(*) FROM sessions WHERE is_active").await, 2);
    // Both sessions work.
    me(app, first["access_token"].as_str().unwrap()).await;
    me(app, second["access_token"].as_str().unwrap()).await;

    // Another GitHub account is another user, a member this time.
    let other = github_sign_in(&fx, 43, github_emails("hubot@example.com", true)).await;
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["user"]["id"], first["user"]["id"]);
    assert_eq!(other["user"]["role"], "member");
}

async fn assert_invalid_state(response: reqwest::Response) {
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "Invalid OAuth state");
}

async fn bad_unknown_reused_and_expired_states_are_refused(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    assert_invalid_state(callback(app, "github", &[("code", "c")]).await).await;
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", "")]).await).await;
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", "never-issued")]).await).await;
    let long = "s".repeat(5000);
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", &long)]).await).await;

    // A Google state presented to the GitHub callback is refused, and spent.
    let google = login(app, "google").await;
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", google.state())]).await).await;
    assert_invalid_state(callback(app, "google", &[("code", "c"), ("state", google.state())]).await).await;

    // An expired state.
    let auth = login(app, "github").await;
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    on_db!(&app.state.db, |pool| sqlx::query("UPDATE oauth_states SET expires_at = $1 WHERE state = $2")
        .bind(past)
        .bind(auth.state())
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", auth.state())]).await).await;
    // Expired states are pruned by later logins.
    let auth = login(app, "github").await;
    on_db!(&app.state.db, |pool| sqlx::query("UPDATE oauth_states SET expires_at = $1 WHERE state = $2")
        .bind(past)
        .bind(auth.state())
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    let fresh = login(app, "github").await;
    assert_eq!(count(app, "SELECT COUNT(*) FROM oauth_states").await, 1);

    // A valid state without a code is spent too.
    let body = assert_envelope(callback(app, "github", &[("state", fresh.state())]).await, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "Missing authorization code");
    assert_eq!(count(app, "SELECT COUNT(*) FROM oauth_states").await, 0);

    // A state that worked once is refused the second time.
    let auth = login(app, "github").await;
    let _token = github_token(&fx, &auth, "once", "gho_once").await;
    let _profile = github_profile(&fx, "gho_once", 7, github_emails("once@example.com", true)).await;
    let ok = callback(app, "github", &[("code", "once"), ("state", auth.state())]).await;
    assert_eq!(ok.status(), 200);
    assert_invalid_state(callback(app, "github", &[("code", "once"), ("state", auth.state())]).await).await;

    // None of the refused callbacks reached the provider.
    let exchanges = fx.github.received_requests().await.unwrap();
    assert_eq!(exchanges.iter().filter(|r| r.url.path() == "/login/oauth/access_token").count(), 1);
    assert!(fx.google.received_requests().await.unwrap().is_empty());
}

async fn a_provider_error_is_a_bad_request(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    let auth = login(app, "github").await;
    let response = callback(
        app,
        "github",
        &[
            ("error", "access_denied"),
            ("error_description", "The user has denied your application access."),
            ("state", auth.state()),
        ],
    )
    .await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "OAuth sign-in failed at the provider: access_denied");
    assert_eq!(body["error"]["details"]["provider"], "github");
    assert_eq!(body["error"]["details"]["error"], "access_denied");
    assert_eq!(body["error"]["details"]["error_description"], "The user has denied your application access.");
    // The state is spent.
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", auth.state())]).await).await;
    // Without a state the provider's error is still what the caller learns.
    let body = assert_envelope(callback(app, "google", &[("error", "invalid_scope")]).await, 400, "BAD_REQUEST").await;
    assert_eq!(body["error"]["details"]["error"], "invalid_scope");
    assert_eq!(count(app, "SELECT COUNT(*) FROM users").await, 0);
}

/// Asserts a 502 envelope that names the provider and carries nothing secret.
async fn assert_bad_gateway(response: reqwest::Response, provider: &str, secrets: &[&str]) -> Value {
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "EXTERNAL_SERVICE_ERROR", "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["details"]["provider"], provider, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with(&format!("OAuth provider '{provider}' failed")), "{body}");
    body
}

async fn provider_failures_are_bad_gateway_without_secrets(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;

    // The token endpoint fails.
    let auth = login(app, "google").await;
    let guard = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"error": "server_error", "error_description": "boom"})),
        )
        .expect(1)
        .mount_as_scoped(&fx.google)
        .await;
    let response = callback(app, "google", &[("code", "code-500"), ("state", auth.state())]).await;
    let request = fx.google.received_requests().await.unwrap().pop().unwrap();
    let verifier = form(&request)["code_verifier"].clone();
    let body = assert_bad_gateway(response, "google", &[GOOGLE_SECRET, &verifier, "code-500", "boom"]).await;
    assert_eq!(body["error"]["details"]["step"], "the code exchange");
    drop(guard);

    // A token endpoint that answers something that is not a token.
    let auth = login(app, "google").await;
    let _guard = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .mount_as_scoped(&fx.google)
        .await;
    let response = callback(app, "google", &[("code", "c"), ("state", auth.state())]).await;
    assert_bad_gateway(response, "google", &[GOOGLE_SECRET, "maintenance"]).await;

    // A token endpoint that redirects is not followed.
    let auth = login(app, "github").await;
    let elsewhere = MockServer::start().await;
    let _redirect = Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", format!("{}/steal", elsewhere.uri())))
        .mount_as_scoped(&fx.github)
        .await;
    let response = callback(app, "github", &[("code", "c"), ("state", auth.state())]).await;
    assert_bad_gateway(response, "github", &[GITHUB_SECRET]).await;
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the redirect was followed");
    drop(_redirect);

    // The profile endpoint fails after a good exchange.
    let auth = login(app, "github").await;
    let _token = github_token(&fx, &auth, "code-p", "gho_profile_fails").await;
    let _user = Mock::given(method("GET"))
        .and(path("/api/user"))
        .respond_with(ResponseTemplate::new(503))
        .mount_as_scoped(&fx.github)
        .await;
    let response = callback(app, "github", &[("code", "code-p"), ("state", auth.state())]).await;
    let body = assert_bad_gateway(response, "github", &[GITHUB_SECRET, "gho_profile_fails"]).await;
    assert_eq!(body["error"]["details"]["step"], "the profile request");

    assert_eq!(count(app, "SELECT COUNT(*) FROM users").await, 0);
}

async fn a_rejected_code_is_a_bad_request(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    // GitHub answers a bad code with a 200 carrying an error.
    let auth = login(app, "github").await;
    let _guard = Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
        })))
        .mount_as_scoped(&fx.github)
        .await;
    let response = callback(app, "github", &[("code", "stale"), ("state", auth.state())]).await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "The provider rejected the authorization code (bad_verification_code)");
    // Google answers 400 invalid_grant.
    let auth = login(app, "google").await;
    let _guard = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "error_description": "Bad Request"})),
        )
        .mount_as_scoped(&fx.google)
        .await;
    let response = callback(app, "google", &[("code", "stale"), ("state", auth.state())]).await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["error"]["details"]["error"], "invalid_grant");
    // A Google client misconfiguration is the provider side's problem, not the caller's.
    let auth = login(app, "google").await;
    let _guard = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": "invalid_client", "error_description": "Unauthorized"})),
        )
        .with_priority(1)
        .mount_as_scoped(&fx.google)
        .await;
    let response = callback(app, "google", &[("code", "c"), ("state", auth.state())]).await;
    assert_bad_gateway(response, "google", &[GOOGLE_SECRET]).await;
}

async fn without_a_verified_email_nobody_is_signed_in(engine: Engine) {
    let Some(fx) = fixture(engine, |_| {}).await else { return };
    let app = &fx.app;
    // A password user exists with the address: an unverified claim must not take it over.
    app.signed_in("victim@example.com").await;

    let response = github_sign_in(&fx, 99, github_emails("victim@example.com", false)).await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "The provider did not return a verified email");

    let auth = login(app, "google").await;
    let userinfo = json!({"sub": "1234", "name": "Mallory", "email": "victim@example.com", "email_verified": false});
    let _google = google_provider(&fx, &auth, "g-code", userinfo).await;
    let response = callback(app, "google", &[("code", "g-code"), ("state", auth.state())]).await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "The provider did not return a verified email");

    assert_eq!(count(app, "SELECT COUNT(*) FROM oauth_accounts").await, 0);
    assert_eq!(count(app, "SELECT COUNT(*) FROM users").await, 1);
}

async fn unconfigured_and_unknown_providers(engine: Engine) {
    let Some(app) = spawn_with(
        engine,
        |s| {
            s.oauth.github =
                Some(ClientCredentials { client_id: GITHUB_ID.into(), client_secret: GITHUB_SECRET.into() })
        },
        Router::new(),
    )
    .await
    else {
        return;
    };
    for path in ["/api/v1/oauth/google/login", "/api/v1/oauth/google/callback?code=c&state=s"] {
        let body = assert_envelope(app.get(path).await, 503, "EXTERNAL_SERVICE_ERROR").await;
        assert_eq!(body["detail"], "OAuth provider 'google' is not configured", "{path}");
    }
    for path in ["/api/v1/oauth/facebook/login", "/api/v1/oauth/GitHub/callback?code=c&state=s", "/api/v1/oauth//login"]
    {
        assert_envelope(app.get(path).await, 404, "NOT_FOUND").await;
    }
    // The configured one works, and nothing secret is in its redirect.
    let auth = login(&app, "github").await;
    assert_eq!(auth.location.as_str().split('?').next().unwrap(), "https://github.com/login/oauth/authorize");
    assert!(!auth.location.as_str().contains(GITHUB_SECRET));
}

async fn redirect_url_receives_the_tokens(engine: Engine) {
    let Some(fx) = fixture(engine, |s| s.oauth.redirect_url = Some("http://localhost:3000/auth/callback".into())).await
    else {
        return;
    };
    let app = &fx.app;
    let response = github_sign_in(&fx, 5, github_emails("redirected@example.com", true)).await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.as_str().split('?').next().unwrap(), "http://localhost:3000/auth/callback");
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query.len(), 2, "{query:?}");
    assert_eq!(me(app, &query["access_token"]).await["email"], "redirected@example.com");
    let refreshed = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": query["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    // Errors are still answered as envelopes, not redirects.
    assert_invalid_state(callback(app, "github", &[("code", "c"), ("state", "nope")]).await).await;
}

async fn oauth_sign_ups_wait_for_approval_when_required(engine: Engine) {
    let Some(fx) = fixture(engine, |s| s.auth.signup_requires_approval = true).await else { return };
    let app = &fx.app;
    app.signed_in("admin@example.com").await;
    let response = github_sign_in(&fx, 77, github_emails("newcomer@example.com", true)).await;
    let body = assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    assert_eq!(body["detail"], "User account is pending approval");
    assert_eq!(count(app, "SELECT COUNT(*) FROM users WHERE status = 'pending' AND role = 'member'").await, 1);
    assert_eq!(count(app, "SELECT COUNT(*) FROM sessions").await, 1, "only the admin's");
}
