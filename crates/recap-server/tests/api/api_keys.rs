use serde_json::{Value, json};

use crate::{
    engine_tests,
    helpers::{Engine, TestApp, assert_envelope, spawn},
};

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.post_as(path, token).json(&body).send().await.unwrap()
}

engine_tests!(keys_are_created_listed_and_revoked, keys_authenticate_until_revoked_or_expired);

async fn keys_are_created_listed_and_revoked(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let bob = app.signed_in("bob@example.com").await;

    let response = create(&app, &ada.access_token, "/api/v1/api-keys/", json!({"name": "  Python CLI Client "})).await;
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let full_key = first["full_key"].as_str().unwrap();
    let prefix = first["prefix"].as_str().unwrap();
    assert!(full_key.starts_with(&format!("{prefix}_")) && full_key.len() >= 45, "{full_key}");
    assert!(prefix.starts_with("tgl_") && prefix[4..].chars().all(|c| c.is_ascii_alphanumeric()) && prefix.len() == 12);
    assert_eq!(first["name"], "Python CLI Client");
    assert_eq!(first["scopes"], "sync:commits,read:repos");
    assert_eq!((first["status"].as_str(), first["usage_count"].as_i64()), (Some("active"), Some(0)));
    assert_eq!(first["expires_at"], Value::Null);

    // Without the trailing slash, no redirect.
    let response = create(
        &app,
        &ada.access_token,
        "/api/v1/api-keys",
        json!({"name": "CI", "scopes": "sync:commits", "expires_in_days": 30}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["scopes"], "sync:commits");
    assert!(second["expires_at"].as_str().unwrap().ends_with('Z'));

    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "scopes": "admin"}),
        json!({"name": "x", "scopes": "sync:commits,sync:commits"}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "expires_in_days": 366}),
        json!({"name": "x".repeat(256)}),
    ] {
        let response = create(&app, &ada.access_token, "/api/v1/api-keys/", bad.clone()).await;
        assert_envelope(response, 422, "VALIDATION_ERROR").await;
    }

    let list: Value = app.get_as("/api/v1/api-keys/", &ada.access_token).send().await.unwrap().json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], second["id"], "newest first");
    assert!(list.iter().all(|k| k.get("full_key").is_none() && k.get("key_hash").is_none()));
    assert!(!serde_json::to_string(list).unwrap().contains(&full_key[13..]), "the secret is never listed");
    let bobs: Value = app.get_as("/api/v1/api-keys", &bob.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(bobs, json!([]));

    let id = first["id"].as_str().unwrap();
    let response = app.delete_as(&format!("/api/v1/api-keys/{id}"), &bob.access_token).send().await.unwrap();
    let body = assert_envelope(response, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "API key not found");
    let revoked: Value =
        app.delete_as(&format!("/api/v1/api-keys/{id}"), &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(revoked["message"], "API key 'Python CLI Client' has been revoked");
    assert_eq!(revoked["revoked_key"]["status"], "revoked");
    assert!(revoked["revoked_key"]["revoked_at"].as_str().unwrap().ends_with('Z'));
    let again = app.delete_as(&format!("/api/v1/api-keys/{id}"), &ada.access_token).send().await.unwrap();
    let body = assert_envelope(again, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "API key already revoked");

    let active: Value = app.get_as("/api/v1/api-keys/", &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(active.as_array().unwrap().len(), 1);
    let all: Value = app
        .get_as("/api/v1/api-keys/?include_revoked=true", &ada.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Keys cannot manage keys: these routes take a JWT only.
    let response = app.get_as("/api/v1/api-keys/", second["full_key"].as_str().unwrap()).send().await.unwrap();
    assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;

    let audit: Value = app
        .get_as("/api/v1/audit?resource_type=api_key", &ada.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let details: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["details"].as_str().unwrap()).collect();
    assert!(
        details.contains(&format!("Created API key 'Python CLI Client' with prefix {prefix}").as_str()),
        "{details:?}"
    );
    assert!(details.contains(&format!("Revoked API key 'Python CLI Client' ({prefix})").as_str()), "{details:?}");
}

async fn keys_authenticate_until_revoked_or_expired(engine: Engine) {
    use recap_server::accounts::auth::Invalidation;
    let Some(app) = spawn(engine).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let key: Value =
        create(&app, &ada.access_token, "/api/v1/api-keys/", json!({"name": "push", "scopes": "sync:commits"}))
            .await
            .json()
            .await
            .unwrap();
    let full_key = key["full_key"].as_str().unwrap();

    for _ in 0..3 {
        let who: Value = app.get_as("/api/v1/auth/whoami", full_key).send().await.unwrap().json().await.unwrap();
        assert_eq!(who["credential"], "api_key");
        assert_eq!(who["scopes"], json!(["sync:commits"]));
        assert_eq!(who["user"]["email"], "ada@example.com");
    }
    let who: Value = app.get_as("/api/v1/auth/whoami", &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(who["credential"], "jwt");

    // Usage is buffered in memory and visible in the listing.
    let list: Value = app.get_as("/api/v1/api-keys/", &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["usage_count"], 3);
    assert_eq!(list[0]["last_used_ip"], "127.0.0.1");
    assert!(list[0]["last_used_at"].as_str().unwrap().ends_with('Z'));

    // A wrong secret with a real prefix, and other malformed keys.
    let prefix = key["prefix"].as_str().unwrap();
    for bad in [format!("{prefix}_wrongsecretwrongsecretwrongsecret00"), "tgl_short".to_owned(), format!("{prefix}-x")]
    {
        let response = app.get_as("/api/v1/auth/whoami", &bad).send().await.unwrap();
        assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
    }

    // Expiry, as if 31 days had passed (the cached copy is dropped as every change does).
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let id = uuid::Uuid::parse_str(key["id"].as_str().unwrap()).unwrap();
    recap_server::on_db!(&app.state.db, |pool| sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
        .bind(past)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    app.state.auth.invalidate(Invalidation::ApiKey(prefix.to_owned())).await;
    assert_envelope(app.get_as("/api/v1/auth/whoami", full_key).send().await.unwrap(), 401, "AUTHENTICATION_ERROR")
        .await;

    // Revocation takes effect on the next request.
    let other: Value =
        create(&app, &ada.access_token, "/api/v1/api-keys/", json!({"name": "other"})).await.json().await.unwrap();
    let other_key = other["full_key"].as_str().unwrap();
    assert_eq!(app.get_as("/api/v1/auth/whoami", other_key).send().await.unwrap().status(), 200);
    let id = other["id"].as_str().unwrap();
    assert_eq!(app.delete_as(&format!("/api/v1/api-keys/{id}"), &ada.access_token).send().await.unwrap().status(), 200);
    assert_envelope(app.get_as("/api/v1/auth/whoami", other_key).send().await.unwrap(), 401, "AUTHENTICATION_ERROR")
        .await;

    // A disabled owner's keys stop working too.
    let bob = app.signed_in("bob@example.com").await;
    let bobs: Value =
        create(&app, &bob.access_token, "/api/v1/api-keys/", json!({"name": "b"})).await.json().await.unwrap();
    let bob_key = bobs["full_key"].as_str().unwrap();
    assert_eq!(app.get_as("/api/v1/auth/whoami", bob_key).send().await.unwrap().status(), 200);
    app.patch_as(&format!("/api/v1/users/{}", bob.id), &ada.access_token)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    let body =
        assert_envelope(app.get_as("/api/v1/auth/whoami", bob_key).send().await.unwrap(), 401, "AUTHENTICATION_ERROR")
            .await;
    assert_eq!(body["detail"], "User account is disabled");
}
