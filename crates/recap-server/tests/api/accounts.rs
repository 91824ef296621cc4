//! Accounts, tokens and sessions, admin, guests, audit.

use serde_json::{Value, json};

use crate::{
    engine_tests,
    helpers::{Engine, PASSWORD, TestApp, assert_envelope, spawn, spawn_with},
};

async fn post_json(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(path)).json(&body).send().await.unwrap()
}

engine_tests!(
    registration_rules,
    login_accepts_json_and_the_oauth2_form,
    refresh_rotates_and_reuse_revokes_the_session,
    sessions_list_and_revocation,
    malformed_tokens_get_401_with_www_authenticate,
    profile_changes_and_password_change_ends_other_sessions,
    admin_manages_users_and_nobody_grants_themselves_a_role,
    approval_mode_keeps_new_users_pending,
    guests_have_quotas_and_upgrade_keeps_the_account,
    audit_log_records_security_actions,
);

async fn registration_rules(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let first = app.register("  Ada@Example.com ", PASSWORD).await;
    assert_eq!(first["email"], "ada@example.com");
    assert_eq!(first["role"], "admin", "the first user of an instance is admin");
    assert_eq!(first["status"], "approved");
    assert!(first.get("password_hash").is_none() && !first.to_string().contains("argon2"));

    let second = app.register("bob@example.com", PASSWORD).await;
    assert_eq!(second["role"], "member");

    let dup = post_json(&app, "/api/v1/auth/register", json!({"email": "ADA@example.com", "password": PASSWORD})).await;
    let body = assert_envelope(dup, 409, "ALREADY_EXISTS").await;
    assert_eq!(body["detail"], "Email already registered");
    assert_eq!(body["error"]["details"]["email"], "ada@example.com");

    for (email, password, field) in [
        ("not-an-email", PASSWORD, "email"),
        ("carol@example.com", "short1", "password"),
        ("carol@example.com", "onlyletters", "password"),
    ] {
        let response = post_json(&app, "/api/v1/auth/register", json!({"email": email, "password": password})).await;
        let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", field]), "{body}");
        assert!(!body.to_string().contains(password), "the password never appears in an error body");
    }
    // Self-registration cannot pick a role.
    let response = post_json(
        &app,
        "/api/v1/auth/register",
        json!({"email": "eve@example.com", "password": PASSWORD, "role": "admin"}),
    )
    .await;
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    // The template frontend's `name` alias.
    let response = post_json(
        &app,
        "/api/v1/auth/register",
        json!({"email": "dan@example.com", "password": PASSWORD, "name": "Dan"}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["full_name"].as_str(), body["name"].as_str()), (Some("Dan"), Some("Dan")));
}

async fn login_accepts_json_and_the_oauth2_form(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    app.register("ada@example.com", PASSWORD).await;

    let tokens = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(tokens["user"]["email"], "ada@example.com");
    assert_eq!(tokens["access_token"].as_str().unwrap().split('.').count(), 3);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 40);

    let form = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .form(&[("username", "ada@example.com"), ("password", PASSWORD), ("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let form: Value = form.json().await.unwrap();
    let me: Value = app
        .get_as("/api/v1/auth/me", form["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");

    // Wrong password and unknown account answer the same.
    let wrong =
        post_json(&app, "/api/v1/auth/login", json!({"email": "ada@example.com", "password": "nope-nope-1"})).await;
    let wrong = assert_envelope(wrong, 401, "AUTHENTICATION_ERROR").await;
    let unknown =
        post_json(&app, "/api/v1/auth/login", json!({"email": "who@example.com", "password": "nope-nope-1"})).await;
    let unknown = assert_envelope(unknown, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["detail"], "Invalid email or password");

    let missing = post_json(&app, "/api/v1/auth/login", json!({"email": "ada@example.com"})).await;
    assert_envelope(missing, 422, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_is_throttled() {
    let Some(app) = spawn(Engine::Sqlite).await else { return };
    app.register("ada@example.com", PASSWORD).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = post_json(&app, "/api/v1/auth/login", json!({"email": "ada@example.com", "password": "guess-guess-1"}))
            .await;
        statuses.push(r.status().as_u16());
    }
    // 10 attempts per account per minute, then 429 — even with the right password.
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10, "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429]);
    let right = post_json(&app, "/api/v1/auth/login", json!({"email": "ada@example.com", "password": PASSWORD})).await;
    let body = assert_envelope(right, 429, "RATE_LIMIT_EXCEEDED").await;
    assert!(body["error"]["details"]["retry_after"].as_u64().unwrap() >= 1);
}

async fn refresh_rotates_and_reuse_revokes_the_session(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;

    let first = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let rotated = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, ada.refresh_token, "a new refresh token on every refresh");
    let new_access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as("/api/v1/auth/me", &new_access).send().await.unwrap().status(), 200);

    // The spent token comes back: someone has a copy. The whole session dies.
    let reuse = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada.refresh_token})).await;
    assert_envelope(reuse, 401, "AUTHENTICATION_ERROR").await;
    for token in [&ada.access_token, &new_access] {
        let response = app.get_as("/api/v1/auth/me", token).send().await.unwrap();
        assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
    }
    let after = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": rotated})).await;
    let body = assert_envelope(after, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "Invalid or expired refresh token");

    let garbage = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": "garbage"})).await;
    assert_envelope(garbage, 401, "AUTHENTICATION_ERROR").await;
}

#[tokio::test]
async fn without_rotation_the_refresh_token_stays() {
    let Some(app) = spawn_with(Engine::Sqlite, |s| s.auth.refresh_token_rotation = false, Default::default()).await
    else {
        return;
    };
    let ada = app.signed_in("ada@example.com").await;
    for _ in 0..2 {
        let r: Value = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada.refresh_token}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["refresh_token"], ada.refresh_token.as_str());
    }
}

async fn sessions_list_and_revocation(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let second: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile Safari/604.1")
        .json(&json!({"email": ada.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_token = second["access_token"].as_str().unwrap();

    let page: Value = app.get_as("/api/v1/sessions", &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], 2);
    let sessions = page["items"].as_array().unwrap();
    assert_eq!(sessions.iter().filter(|s| s["is_current"] == true).count(), 1);
    let phone = sessions.iter().find(|s| s["device_type"] == "mobile").expect("the phone session");
    assert_eq!(phone["device_name"], "Safari");
    assert_eq!(phone["is_current"], false);
    assert_eq!(phone["ip_address"], "127.0.0.1");

    // Another user cannot see or end Ada's sessions.
    let bob = app.signed_in("bob@example.com").await;
    let bobs: Value = app.get_as("/api/v1/sessions", &bob.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(bobs["total"], 1);
    let phone_id = phone["id"].as_str().unwrap();
    let response = app.delete_as(&format!("/api/v1/sessions/{phone_id}"), &bob.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    assert_eq!(app.get_as("/api/v1/auth/me", second_token).send().await.unwrap().status(), 200);

    // Ada ends the phone session: its access token stops working on the next request.
    let response = app.delete_as(&format!("/api/v1/sessions/{phone_id}"), &ada.access_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_envelope(app.get_as("/api/v1/auth/me", second_token).send().await.unwrap(), 401, "AUTHENTICATION_ERROR")
        .await;
    assert_eq!(app.get_as("/api/v1/auth/me", &ada.access_token).send().await.unwrap().status(), 200);
    let again = app.delete_as(&format!("/api/v1/sessions/{phone_id}"), &ada.access_token).send().await.unwrap();
    assert_envelope(again, 404, "NOT_FOUND").await;
    assert_envelope(
        app.delete_as("/api/v1/sessions/not-a-uuid", &ada.access_token).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;

    // Logout ends the current session; the refresh token dies with it.
    let response = app.post_as("/api/v1/auth/logout", &ada.access_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_envelope(
        app.get_as("/api/v1/auth/me", &ada.access_token).send().await.unwrap(),
        401,
        "AUTHENTICATION_ERROR",
    )
    .await;
    let refresh = post_json(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada.refresh_token})).await;
    assert_envelope(refresh, 401, "AUTHENTICATION_ERROR").await;
    // Logout with an unknown refresh token is still 204.
    assert_eq!(post_json(&app, "/api/v1/auth/logout", json!({"refresh_token": "unknown"})).await.status(), 204);

    // DELETE /sessions ends them all.
    let b2 = app.login(&bob.email, PASSWORD).await;
    let out: Value = app.delete_as("/api/v1/sessions", &bob.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(out["sessions_logged_out"], 2);
    assert_eq!(app.get_as("/api/v1/auth/me", b2["access_token"].as_str().unwrap()).send().await.unwrap().status(), 401);
}

async fn malformed_tokens_get_401_with_www_authenticate(engine: Engine) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let payload = ada.access_token.split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();

    let sign = |claims: &Value, key: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let key = "test-secret-key-that-is-long-enough-0123456789";
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let mut wrong_type = claims.clone();
    wrong_type["type"] = "refresh".into();
    let mut expired = claims.clone();
    expired["exp"] = json!(1_700_000_000);
    let mut unknown_sid = claims.clone();
    unknown_sid["sid"] = json!(uuid::Uuid::new_v4().to_string());
    // Sanity: re-signing the real claims with the real key works, so each failure below is the one change.
    assert_eq!(app.get_as("/api/v1/auth/me", &sign(&claims, key)).send().await.unwrap().status(), 200);

    let cases = [
        ("alg none", format!("{none_header}.{payload}.")),
        ("wrong key", sign(&claims, "another-key-that-is-long-enough-000000000")),
        ("wrong type", sign(&wrong_type, key)),
        ("expired", sign(&expired, key)),
        ("unknown sid", sign(&unknown_sid, key)),
        ("garbage", "not.a.jwt".to_owned()),
        ("api key on a JWT-only route", "tgl_abcdefgh_0123456789012345678901234567890123".to_owned()),
    ];
    for (name, token) in cases {
        let response = app.get_as("/api/v1/auth/me", &token).send().await.unwrap();
        assert_eq!(response.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{name}");
        let body = assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
        assert_eq!(body["detail"], "Invalid authentication credentials", "{name}");
    }
    let none = app.client.get(app.url("/api/v1/auth/me")).send().await.unwrap();
    let body = assert_envelope(none, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "Not authenticated");
    let basic = app.client.get(app.url("/api/v1/auth/me")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_envelope(basic, 401, "AUTHENTICATION_ERROR").await;
}

async fn profile_changes_and_password_change_ends_other_sessions(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let other = app.login(&ada.email, PASSWORD).await;
    let other_token = other["access_token"].as_str().unwrap();

    let response =
        app.patch_as("/api/v1/users/me", &ada.access_token).json(&json!({"full_name": "Ada L."})).send().await.unwrap();
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["full_name"], "Ada L.");
    assert!(me["updated_at"].as_str().unwrap().ends_with('Z'));

    let response = app
        .patch_as("/api/v1/users/me", &ada.access_token)
        .json(&json!({"password": "new-secret-99"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 422, "VALIDATION_ERROR").await;
    let response = app
        .patch_as("/api/v1/users/me", &ada.access_token)
        .json(&json!({"password": "new-secret-99", "current_password": "wrong-one-1"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(app.get_as("/api/v1/auth/me", other_token).send().await.unwrap().status(), 200);

    let response = app
        .client
        .put(app.url("/api/v1/auth/me"))
        .bearer_auth(&ada.access_token)
        .json(&json!({"password": "new-secret-99", "current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // This session lives on; the other one is over.
    assert_eq!(app.get_as("/api/v1/auth/me", &ada.access_token).send().await.unwrap().status(), 200);
    assert_eq!(app.get_as("/api/v1/auth/me", other_token).send().await.unwrap().status(), 401);
    app.login(&ada.email, "new-secret-99").await;

    for patch in [json!({"role": "admin"}), json!({"is_active": false})] {
        let response = app.patch_as("/api/v1/users/me", &ada.access_token).json(&patch).send().await.unwrap();
        assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    }
    app.register("bob@example.com", PASSWORD).await;
    let response = app
        .patch_as("/api/v1/users/me", &ada.access_token)
        .json(&json!({"email": "BOB@example.com"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 409, "ALREADY_EXISTS").await;
}

async fn admin_manages_users_and_nobody_grants_themselves_a_role(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let admin = app.signed_in("root@example.com").await;
    let bob = app.signed_in("bob@example.com").await;

    let page: Value =
        app.get_as("/api/v1/users?size=1", &admin.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!((page["total"].as_i64(), page["pages"].as_i64(), page["size"].as_i64()), (Some(2), Some(2), Some(1)));
    assert_envelope(
        app.get_as("/api/v1/users?size=500", &admin.access_token).send().await.unwrap(),
        422,
        "VALIDATION_ERROR",
    )
    .await;

    let response = app.get_as("/api/v1/users", &bob.access_token).send().await.unwrap();
    let body = assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    assert_eq!(body["detail"], "Role 'admin' required for this action");
    let response = app
        .patch_as(&format!("/api/v1/users/{}", bob.id), &bob.access_token)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;
    let response = app
        .patch_as(&format!("/api/v1/users/{}", admin.id), &admin.access_token)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;

    let user: Value = app
        .get_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["email"], "bob@example.com");
    assert_envelope(
        app.get_as("/api/v1/users/not-a-uuid", &admin.access_token).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    let missing = format!("/api/v1/users/{}", uuid::Uuid::new_v4());
    assert_envelope(app.get_as(&missing, &admin.access_token).send().await.unwrap(), 404, "NOT_FOUND").await;

    // Disabling Bob locks out his live token at once.
    let response = app
        .patch_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["is_active"], false);
    let response = app.get_as("/api/v1/auth/me", &bob.access_token).send().await.unwrap();
    let body = assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "User account is disabled");
    let login = post_json(&app, "/api/v1/auth/login", json!({"email": bob.email, "password": PASSWORD})).await;
    assert_envelope(login, 401, "AUTHENTICATION_ERROR").await;

    let response = app
        .patch_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .json(&json!({"role": "admin", "is_active": true}))
        .send()
        .await
        .unwrap();
    let user: Value = response.json().await.unwrap();
    assert_eq!((user["role"].as_str(), user["is_superuser"].as_bool()), (Some("admin"), Some(true)));
    let response = app
        .patch_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .json(&json!({"role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 422, "VALIDATION_ERROR").await;

    assert_eq!(
        app.delete_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token).send().await.unwrap().status(),
        204
    );
    assert_envelope(
        app.get_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}

async fn approval_mode_keeps_new_users_pending(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.auth.signup_requires_approval = true, Default::default()).await else {
        return;
    };
    let admin = app.signed_in("root@example.com").await;
    let pending = app.register("new@example.com", PASSWORD).await;
    assert_eq!(pending["status"], "pending");
    let login = post_json(&app, "/api/v1/auth/login", json!({"email": "new@example.com", "password": PASSWORD})).await;
    let body = assert_envelope(login, 403, "AUTHORIZATION_ERROR").await;
    assert_eq!(body["detail"], "User account is pending approval");

    let id = pending["id"].as_str().unwrap();
    let approved: Value = app
        .post_as(&format!("/api/v1/users/{id}/approve"), &admin.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "approved");
    app.login("new@example.com", PASSWORD).await;
}

async fn guests_have_quotas_and_upgrade_keeps_the_account(engine: Engine) {
    use recap_server::accounts::{service::spend_quota, store::Quota};
    let Some(app) = spawn(engine).await else { return };
    let guest = app.client.post(app.url("/api/v1/auth/guest")).send().await.unwrap();
    assert_eq!(guest.status(), 201);
    let guest: Value = guest.json().await.unwrap();
    assert_eq!(guest["user"]["role"], "guest");
    assert_eq!(guest["user"]["is_guest"], true);
    assert_eq!(guest["user"]["remaining_imports"], 2);
    assert_eq!(guest["user"]["remaining_messages"], 20);
    let token = guest["access_token"].as_str().unwrap();
    let id = uuid::Uuid::parse_str(guest["user"]["id"].as_str().unwrap()).unwrap();

    // The quota check later features call: two imports, then a clear 403.
    for _ in 0..2 {
        let mut tx = app.state.db.begin().await.unwrap();
        spend_quota(&app.state, &mut tx, id, Quota::Imports).await.expect("quota left");
        tx.commit().await.unwrap();
    }
    let mut tx = app.state.db.begin().await.unwrap();
    let err = spend_quota(&app.state, &mut tx, id, Quota::Imports).await.unwrap_err();
    assert_eq!(err.status, 403);
    assert!(err.report.message.contains("no imports left"), "{}", err.report.message);
    drop(tx);
    let me: Value = app.get_as("/api/v1/auth/me", token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["remaining_imports"], 0, "the cached user is refreshed after a spend");

    let response = app
        .post_as("/api/v1/auth/upgrade", token)
        .json(&json!({"email": "g@example.com", "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 422, "VALIDATION_ERROR").await;
    let upgraded: Value = app
        .post_as("/api/v1/auth/upgrade", token)
        .json(&json!({"email": "G@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upgraded["id"], guest["user"]["id"], "the same account");
    assert_eq!(upgraded["role"], "member");
    assert_eq!(upgraded["remaining_imports"], Value::Null, "full accounts have no quota");
    let tokens = app.login("g@example.com", PASSWORD).await;
    assert_eq!(tokens["user"]["id"], guest["user"]["id"]);
    // Members spend nothing.
    let mut tx = app.state.db.begin().await.unwrap();
    spend_quota(&app.state, &mut tx, id, Quota::Imports).await.expect("unlimited");
    tx.commit().await.unwrap();

    let again = app
        .post_as("/api/v1/auth/upgrade", token)
        .json(&json!({"email": "x@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_envelope(again, 400, "BAD_REQUEST").await;
}

async fn audit_log_records_security_actions(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let admin = app.signed_in("root@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let _ =
        post_json(&app, "/api/v1/auth/login", json!({"email": "bob@example.com", "password": "wrong-pass-1"})).await;
    app.patch_as(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();

    let page: Value =
        app.get_as("/api/v1/audit?size=100", &admin.access_token).send().await.unwrap().json().await.unwrap();
    let actions: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in ["register", "login", "login_failed", "role_change"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let failed = page["items"].as_array().unwrap().iter().find(|e| e["action"] == "login_failed").unwrap();
    assert_eq!(failed["ip_address"], "127.0.0.1");
    assert!(!page.to_string().contains("wrong-pass-1"), "no password in the log");

    let filtered: Value = app
        .get_as(&format!("/api/v1/audit?action=role_change&user_id={}", admin.id), &admin.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["total"], 1);
    assert_eq!(filtered["items"][0]["resource_id"], bob.id.as_str());
    let none: Value = app
        .get_as("/api/v1/audit?action=login&since=2999-01-01T00:00:00Z", &admin.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    assert_envelope(
        app.get_as("/api/v1/audit?since=yesterday", &admin.access_token).send().await.unwrap(),
        422,
        "VALIDATION_ERROR",
    )
    .await;
    // Bob was made admin above, so use a fresh member for the 403.
    let carol = app.signed_in("carol@example.com").await;
    assert_envelope(app.get_as("/api/v1/audit", &carol.access_token).send().await.unwrap(), 403, "AUTHORIZATION_ERROR")
        .await;
}
