//! Push ingestion (`POST /api/v1/sync/projects/{p}/repos/{r}/commits`), the sync status route and
//! the commit queries, against the league contract (shared/docs/contracts/thegitleague.md §5–7).

use std::collections::BTreeSet;

use axum::Router;
use serde_json::{Value, json};

use recap_server::db::{Db, migrate};

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn, spawn_with},
};

struct Fixture {
    owner: SignedIn,
    /// An API key of the owner with both scopes.
    key: String,
    project: String,
    repo: String,
}

pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

pub(crate) async fn create_project(app: &TestApp, token: &str, slug: &str) -> String {
    let response =
        app.post_as("/api/v1/projects", token).json(&json!({"name": slug, "slug": slug})).send().await.unwrap();
    json_of(response, 201).await["id"].as_str().unwrap().to_owned()
}

async fn create_repo(app: &TestApp, token: &str, project: &str, name: &str, sync_method: &str) -> String {
    let response = app
        .post_as(&format!("/api/v1/repos/projects/{project}/repos"), token)
        .json(&json!({"name": name, "sync_method": sync_method}))
        .send()
        .await
        .unwrap();
    json_of(response, 201).await["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn api_key(app: &TestApp, token: &str, scopes: &str) -> String {
    let response = app
        .post_as("/api/v1/api-keys/", token)
        .json(&json!({"name": "client", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    json_of(response, 201).await["full_key"].as_str().unwrap().to_owned()
}

pub(crate) async fn add_member(app: &TestApp, token: &str, project: &str, email: &str, role: &str) {
    let response = app
        .post_as(&format!("/api/v1/projects/{project}/members"), token)
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap();
    json_of(response, 201).await;
}

async fn fixture(app: &TestApp) -> Fixture {
    let owner = app.signed_in("owner@example.com").await;
    let key = api_key(app, &owner.access_token, "sync:commits,read:repos").await;
    let project = create_project(app, &owner.access_token, "demo").await;
    let repo = create_repo(app, &owner.access_token, &project, "core", "push_client").await;
    Fixture { owner, key, project, repo }
}

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// A commit as gitleague-client sends it (naive date, mixed-case e-mail, body starting with "\n").
fn commit(sha: &str) -> Value {
    json!({
        "sha": sha,
        "author_name": "Alice Developer",
        "author_email": "Alice@Example.com",
        "committer_name": "Alice Developer",
        "committer_email": "alice@example.com",
        "commit_date": "2026-01-02T12:00:00",
        "message_title": "Fix critical bug in authentication",
        "message_body": "\nDetailed description...",
        "additions": 42,
        "deletions": 15,
        "files_changed": 3,
        "is_merge": false,
        "parent_count": 1
    })
}

fn batch(commits: Vec<Value>) -> Value {
    json!({"commits": commits, "client_version": "0.1.0"})
}

fn batch_of(range: std::ops::Range<u64>) -> Value {
    batch(range.map(|n| commit(&sha(n))).collect())
}

fn push_path(project: &str, repo: &str) -> String {
    format!("/api/v1/sync/projects/{project}/repos/{repo}/commits")
}

fn status_path(project: &str, repo: &str) -> String {
    format!("/api/v1/sync/projects/{project}/repos/{repo}/status")
}

async fn push(app: &TestApp, credential: &str, project: &str, repo: &str, body: &Value) -> reqwest::Response {
    app.post_as(&push_path(project, repo), credential).json(body).send().await.unwrap()
}

async fn status(app: &TestApp, credential: &str, project: &str, repo: &str) -> Value {
    json_of(app.get_as(&status_path(project, repo), credential).send().await.unwrap(), 200).await
}

fn details(out: &Value) -> Vec<(String, bool, Value)> {
    out["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["sha"].as_str().unwrap().to_owned(), d["inserted"].as_bool().unwrap(), d["error"].clone()))
        .collect()
}

engine_tests!(
    push_answers_201_with_details_in_request_order,
    one_invalid_commit_stores_nothing,
    a_repeated_batch_is_skipped_entirely,
    the_same_history_goes_into_two_repositories,
    shas_sharing_a_lookup_key_are_told_apart,
    keys_survive_a_downgrade_and_upgrade,
    a_push_whose_repository_was_deleted_meanwhile_is_a_404,
    dates_are_read_in_every_accepted_format,
    batch_rules,
    access_rules,
    status_route_shapes,
    concurrent_pushes_store_the_union_once,
    push_route_is_limited_per_key,
    commit_queries,
    a_failed_ingest_marks_the_repository_error,
    syncing_is_visible_while_a_push_runs,
    interrupted_syncs_are_reset,
);

async fn push_answers_201_with_details_in_request_order(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    // Newest pushed last: c2, c0, c1.
    let response =
        push(&app, &f.key, &f.project, &f.repo, &batch(vec![commit(&sha(2)), commit(&sha(0)), commit(&sha(1))])).await;
    assert!(response.headers().get("x-ratelimit-limit").is_some());
    let out = json_of(response, 201).await;
    assert_eq!(
        (out["total"].as_i64(), out["inserted"].as_i64(), out["skipped"].as_i64(), out["errors"].as_i64()),
        (Some(3), Some(3), Some(0), Some(0))
    );
    assert_eq!(out["last_ingested_sha"], sha(1));
    assert_eq!(
        details(&out),
        vec![(sha(2), true, Value::Null), (sha(0), true, Value::Null), (sha(1), true, Value::Null)]
    );

    // A mixed batch: one known, one new, one known; the details follow the request.
    let out = json_of(
        push(&app, &f.key, &f.project, &f.repo, &batch(vec![commit(&sha(1)), commit(&sha(7)), commit(&sha(0))])).await,
        201,
    )
    .await;
    assert_eq!((out["inserted"].as_i64(), out["skipped"].as_i64()), (Some(1), Some(2)));
    assert_eq!(out["last_ingested_sha"], sha(7));
    let exists = Value::from("Commit already exists");
    assert_eq!(
        details(&out),
        vec![(sha(1), false, exists.clone()), (sha(7), true, Value::Null), (sha(0), false, exists)]
    );

    // A JWT pushes too.
    let out = json_of(push(&app, &f.owner.access_token, &f.project, &f.repo, &batch_of(100..101)).await, 201).await;
    assert_eq!(out["inserted"], 1);

    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!(st["status"], "healthy");
    assert_eq!(st["total_commits"], 5);
    assert_eq!(st["last_ingested_sha"], sha(100));

    // Stored as validated: e-mail lower-cased, naive date as UTC, body kept.
    let c =
        json_of(app.get_as(&format!("/api/v1/repos/{}/commits/{}", f.repo, sha(2)), &f.key).send().await.unwrap(), 200)
            .await;
    assert_eq!(c["author_email"], "alice@example.com");
    assert_eq!(c["commit_date"], "2026-01-02T12:00:00Z");
    assert_eq!(c["message_body"], "\nDetailed description...");
    assert_eq!(
        (c["additions"].as_i64(), c["deletions"].as_i64(), c["files_changed"].as_i64()),
        (Some(42), Some(15), Some(3))
    );
    assert_eq!((c["is_merge"].as_bool(), c["parent_count"].as_i64()), (Some(false), Some(1)));
    assert_eq!(c["id"], format!("{}:{}", f.repo, sha(2)));

    // The audit rows of the three pushes, with the client version.
    let audit =
        json_of(app.get_as("/api/v1/audit?action=sync_commits", &f.owner.access_token).send().await.unwrap(), 200)
            .await;
    let rows = audit["items"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{audit}");
    let texts: BTreeSet<&str> = rows.iter().map(|r| r["details"].as_str().unwrap()).collect();
    assert!(texts.contains("Synced 3 commits: 3 inserted, 0 skipped, 0 errors (client_version 0.1.0)"), "{texts:?}");
    assert!(texts.contains("Synced 3 commits: 1 inserted, 2 skipped, 0 errors (client_version 0.1.0)"), "{texts:?}");
    assert!(rows.iter().all(|r| r["resource_type"] == "repository" && r["resource_id"] == f.repo.as_str()));
    assert!(rows.iter().all(|r| r["actor_id"] == f.owner.id.as_str() && r["ip_address"] == "127.0.0.1"));
}

async fn one_invalid_commit_stores_nothing(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let mut commits: Vec<Value> = (0..5).map(|n| commit(&sha(n))).collect();
    commits[3]["sha"] = json!("not-a-sha");
    commits[4]["additions"] = json!(-1);
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(commits)).await, 422, "VALIDATION_ERROR").await;
    let errors = body["detail"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["loc"], json!(["body", "commits", 3, "sha"]));
    assert_eq!(errors[0]["type"], "string_too_short");
    assert_eq!(errors[1]["loc"], json!(["body", "commits", 4, "additions"]));
    assert_eq!(errors[1]["type"], "greater_than_equal");
    // A 40-character non-hex SHA has its own message.
    let mut commits: Vec<Value> = (0..2).map(|n| commit(&sha(n))).collect();
    commits[1]["sha"] = json!("z".repeat(40));
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(commits)).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["msg"], "Value error, SHA must be 40 hexadecimal characters");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "commits", 1, "sha"]));

    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["status"].as_str(), st["total_commits"].as_i64()), (Some("pending"), Some(0)));
    assert_eq!(st["last_sync_at"], Value::Null);

    // Every field rule, one commit each.
    let cases: Vec<(&str, Value, &str)> = vec![
        ("author_name", json!(""), "string_too_short"),
        ("author_email", json!("x".repeat(256)), "string_too_long"),
        ("committer_name", json!(42), "string_type"),
        ("committer_email", Value::Null, "string_type"),
        ("message_title", json!("t".repeat(501)), "string_too_long"),
        ("message_title", json!(""), "string_too_short"),
        ("deletions", json!("many"), "int_parsing"),
        ("files_changed", json!(1.5), "int_from_float"),
        ("parent_count", json!(-2), "greater_than_equal"),
        ("is_merge", json!("perhaps"), "bool_parsing"),
        ("message_body", json!(7), "string_type"),
        ("additions", json!(1_000_000_001), "less_than_equal"),
        // A time zone that moves the last hour of 9999 into year 10000.
        ("commit_date", json!("9999-12-31T23:30:00-01:00"), "datetime_parsing"),
    ];
    for (field, value, kind) in cases {
        let mut c = commit(&sha(9));
        c[field] = value;
        let body =
            assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(vec![c])).await, 422, "VALIDATION_ERROR")
                .await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", "commits", 0, field]), "{field}");
        assert_eq!(body["detail"][0]["type"], kind, "{field}: {body}");
    }
    // A NUL character (PostgreSQL cannot store one) is refused for the whole body, on both engines.
    let mut c = commit(&sha(9));
    c["author_name"] = json!("Ada\u{0}Lovelace");
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(vec![c])).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(
        (body["detail"][0]["loc"].clone(), body["detail"][0]["type"].clone()),
        (json!(["body"]), json!("string_nul"))
    );
    // An escaped backslash followed by "u0000" is ordinary text.
    let mut c = commit(&sha(0xdead));
    c["message_title"] = json!("literally \\u0000");
    assert_eq!(json_of(push(&app, &f.key, &f.project, &f.repo, &batch(vec![c])).await, 201).await["inserted"], 1);

    let mut c = commit(&sha(9));
    c.as_object_mut().unwrap().remove("additions");
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(vec![c])).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(
        body["detail"][0],
        json!({"loc": ["body", "commits", 0, "additions"], "msg": "Field required", "type": "missing"})
    );

    // Limits count characters, not bytes: 255 two-byte characters pass.
    let mut c = commit(&sha(10));
    c["author_name"] = json!("é".repeat(255));
    c["message_title"] = json!("ü".repeat(500));
    // Optional fields may be left out; unknown ones are ignored.
    for field in ["message_body", "is_merge", "parent_count"] {
        c.as_object_mut().unwrap().remove(field);
    }
    c["unknown"] = json!({"nested": [1, 2]});
    let out = json_of(
        push(
            &app,
            &f.key,
            &f.project,
            &f.repo,
            &json!({"commits": [c], "timestamp": "2026-01-02T12:00:00Z", "extra": true}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(out["inserted"], 1);
    let stored = json_of(
        app.get_as(&format!("/api/v1/repos/{}/commits/{}", f.repo, sha(10)), &f.key).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!((stored["is_merge"].as_bool(), stored["parent_count"].as_i64()), (Some(false), Some(1)));
    assert_eq!(stored["message_body"], Value::Null);
    assert_eq!(stored["author_name"].as_str().unwrap().chars().count(), 255);

    // Malformed JSON and a non-object body.
    let response = app
        .post_as(&push_path(&f.project, &f.repo), &f.key)
        .header("content-type", "application/json")
        .body("{\"commits\": [")
        .send()
        .await
        .unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &json!([1, 2])).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["body"]));
}

async fn a_repeated_batch_is_skipped_entirely(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let body = batch_of(0..50);
    let first = json_of(push(&app, &f.key, &f.project, &f.repo, &body).await, 201).await;
    assert_eq!(first["inserted"], 50);
    let before = status(&app, &f.key, &f.project, &f.repo).await;

    let again = json_of(push(&app, &f.key, &f.project, &f.repo, &body).await, 201).await;
    assert_eq!(
        (again["total"].as_i64(), again["inserted"].as_i64(), again["skipped"].as_i64()),
        (Some(50), Some(0), Some(50))
    );
    assert_eq!(again["last_ingested_sha"], Value::Null);
    let d = details(&again);
    assert_eq!(d.len(), 50);
    for (i, (s, inserted, error)) in d.iter().enumerate() {
        assert_eq!(
            (s.as_str(), *inserted, error.as_str()),
            (sha(i as u64).as_str(), false, Some("Commit already exists"))
        );
    }
    let after = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!(after["total_commits"], 50);
    // Nothing inserted: the last ingested SHA stays; the sync time moves on.
    assert_eq!(after["last_ingested_sha"], before["last_ingested_sha"]);
    assert_eq!(after["status"], "healthy");
    assert!(after["last_sync_at"].as_str().unwrap() >= before["last_sync_at"].as_str().unwrap());

    // Upper-case SHAs are the same commits.
    let lower = "c0ffee".repeat(6) + "beef";
    json_of(push(&app, &f.key, &f.project, &f.repo, &batch(vec![commit(&lower)])).await, 201).await;
    let out =
        json_of(push(&app, &f.key, &f.project, &f.repo, &batch(vec![commit(&lower.to_uppercase())])).await, 201).await;
    assert_eq!((out["inserted"].as_i64(), out["skipped"].as_i64()), (Some(0), Some(1)));
    assert_eq!(out["details"][0]["sha"], lower.as_str());
}

async fn the_same_history_goes_into_two_repositories(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let fork = create_repo(&app, &f.owner.access_token, &f.project, "fork", "push_client").await;
    let other_project = create_project(&app, &f.owner.access_token, "other").await;
    let elsewhere = create_repo(&app, &f.owner.access_token, &other_project, "core", "push_client").await;
    let body = batch_of(0..20);
    for (project, repo) in [(&f.project, &f.repo), (&f.project, &fork), (&other_project, &elsewhere)] {
        let out = json_of(push(&app, &f.key, project, repo, &body).await, 201).await;
        assert_eq!((out["inserted"].as_i64(), out["skipped"].as_i64()), (Some(20), Some(0)), "{repo}");
        assert_eq!(status(&app, &f.key, project, repo).await["total_commits"], 20);
    }
}

/// SQLite finds commits by a 64-bit fold of the SHA (salted per repository): SHAs that fold alike
/// in one repository must still be stored, deduplicated and found one by one. (PostgreSQL has
/// no such keys; the same rules hold there.)
async fn shas_sharing_a_lookup_key_are_told_apart(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    // Digits 1–16 XOR 17–32 XOR 33–40: every one of these folds to 0.
    let same_fold: Vec<String> = ["0", "1", "2", "a", "f"].iter().map(|d| d.repeat(32) + "00000000").collect();
    let fresh = |n: u64| format!("{n:040x}");
    let push_shas = |shas: Vec<String>| {
        let body = batch(shas.iter().map(|s| commit(s)).collect());
        let (app, f) = (&app, &f);
        async move { json_of(push(app, &f.key, &f.project, &f.repo, &body).await, 201).await }
    };

    let out = push_shas(same_fold[..2].to_vec()).await;
    assert_eq!((out["inserted"].as_i64(), out["errors"].as_i64()), (Some(2), Some(0)), "{out}");
    // One more on the same key, then a batch whose first and last commits are new (the quick
    // check before the write lock finds nothing) around one already stored.
    let out = push_shas(vec![same_fold[2].clone()]).await;
    assert_eq!(out["inserted"], 1, "{out}");
    let out = push_shas(vec![fresh(1), same_fold[1].clone(), same_fold[3].clone(), fresh(2)]).await;
    let d = details(&out);
    assert_eq!(d.iter().map(|(_, inserted, _)| *inserted).collect::<Vec<_>>(), [true, false, true, true], "{out}");
    assert_eq!(d[1].2, "Commit already exists");
    // All of them again: all skipped, the one never sent is new.
    let mut all = same_fold.clone();
    all.extend([fresh(1), fresh(2)]);
    let out = push_shas(all).await;
    assert_eq!((out["inserted"].as_i64(), out["skipped"].as_i64()), (Some(1), Some(6)), "{out}");
    assert_eq!(details(&out)[4], (same_fold[4].clone(), true, Value::Null));
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["total_commits"], 7);

    // Each is found as itself, through both read paths.
    let token = &f.owner.access_token;
    for sha in &same_fold {
        let one = app.get_json(&format!("/api/v1/repos/{}/commits/{sha}", f.repo), token).await;
        assert_eq!(one["sha"], sha.as_str());
        let any = app.get_json(&format!("/api/v1/commits/commits/{sha}"), token).await;
        assert_eq!(any["sha"], sha.as_str());
    }
    // A SHA on the same key that was never pushed is not found.
    let absent = "3".repeat(32) + "00000000";
    let response = app.get_as(&format!("/api/v1/repos/{}/commits/{absent}", f.repo), token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    // The same SHAs in another repository are that repository's own.
    let fork = create_repo(&app, token, &f.project, "fork", "push_client").await;
    let body = batch(same_fold.iter().map(|s| commit(s)).collect());
    let out = json_of(push(&app, &f.key, &f.project, &fork, &body).await, 201).await;
    assert_eq!(out["inserted"], 5, "{out}");
}

/// The last migration rebuilds SQLite's commits with keys computed in SQL: they must equal the
/// server's, or stored commits would be stored again and not found. Down and up again keeps
/// every commit and makes new salts, so this also shows the keys are recomputed, not kept.
/// (PostgreSQL has no keys and its last migration is another one: there this only shows that
/// going down and up again keeps the commits.)
async fn keys_survive_a_downgrade_and_upgrade(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let shas: Vec<String> = (0..300u64)
        .map(|n| format!("{:016x}{:016x}{:08x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15), !n, n as u32))
        .collect();
    let body = batch(shas.iter().map(|s| commit(s)).collect());
    let out = json_of(push(&app, &f.key, &f.project, &f.repo, &body).await, 201).await;
    assert_eq!(out["inserted"], 300);

    let db = &app.state.db;
    let latest = migrate::latest_known(db).unwrap();
    assert_eq!(migrate::downgrade(db, 1).await.unwrap(), vec![latest]);
    migrate::upgrade(db).await.unwrap();
    assert_eq!(migrate::current(db).await.unwrap(), Some(latest));

    let again = json_of(push(&app, &f.key, &f.project, &f.repo, &body).await, 201).await;
    assert_eq!((again["inserted"].as_i64(), again["skipped"].as_i64()), (Some(0), Some(300)), "{again}");
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["total_commits"], 300);
    for sha in [&shas[0], &shas[150], &shas[299]] {
        let one = app.get_json(&format!("/api/v1/repos/{}/commits/{sha}", f.repo), &f.owner.access_token).await;
        assert_eq!(one["sha"], sha.as_str());
    }
}

/// A push that looked its repository up before the repository was deleted: its commits can no
/// longer be stored (foreign key), and the answer is the 404 a later push gets, not a 500.
async fn a_push_whose_repository_was_deleted_meanwhile_is_a_404(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let repo_id = uuid::Uuid::parse_str(&f.repo).unwrap();
    let repo = recap_server::projects::store::repo_by_id(&app.state.db, repo_id).await.unwrap().unwrap();
    let response = app.client.delete(app.url(&format!("/api/v1/repos/{}", f.repo))).bearer_auth(&f.owner.access_token);
    assert_eq!(response.send().await.unwrap().status(), 204);

    let body = batch_of(0..3).to_string();
    let batch = recap_server::sync::model::parse_push(body.as_bytes()).unwrap();
    let actor =
        recap_server::sync::service::Actor { user_id: Some(uuid::Uuid::parse_str(&f.owner.id).unwrap()), ip: None };
    let pushed =
        recap_server::sync::service::ingest(&app.state.db, &app.state.sync.writer, &repo, &batch.commits, actor, None)
            .await;
    let error = pushed.expect_err("the repository is gone");
    assert_eq!(error.status.as_u16(), 404);
    assert_eq!(error.report.message, "Repository not found");
}

async fn dates_are_read_in_every_accepted_format(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!("2026-01-02T12:00:00"), "2026-01-02T12:00:00Z"),
        (json!("2026-01-02 12:00:00"), "2026-01-02T12:00:00Z"),
        (json!("2026-01-02T12:00"), "2026-01-02T12:00:00Z"),
        (json!("2026-01-02T14:30:00+02:00"), "2026-01-02T12:30:00Z"),
        (json!("2026-01-01T22:00:00-05:00"), "2026-01-02T03:00:00Z"),
        (json!("2026-01-02T12:00:00.123456789Z"), "2026-01-02T12:00:00.123456Z"),
        (json!(1767355200), "2026-01-02T12:00:00Z"),
        (json!(1767355200123_i64), "2026-01-02T12:00:00.123Z"),
        (json!("1767355200"), "2026-01-02T12:00:00Z"),
        (json!(1767355200.5), "2026-01-02T12:00:00.5Z"),
    ];
    let commits: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (date, _))| {
            let mut c = commit(&sha(i as u64));
            c["commit_date"] = date.clone();
            c
        })
        .collect();
    json_of(push(&app, &f.key, &f.project, &f.repo, &batch(commits)).await, 201).await;
    for (i, (input, expected)) in cases.iter().enumerate() {
        let c = json_of(
            app.get_as(&format!("/api/v1/repos/{}/commits/{}", f.repo, sha(i as u64)), &f.key).send().await.unwrap(),
            200,
        )
        .await;
        assert_eq!(c["commit_date"], *expected, "{input}");
    }
    for bad in [json!("2026-01-02"), json!("yesterday"), json!(true), json!("2026-02-30T10:00:00"), Value::Null] {
        let mut c = commit(&sha(99));
        c["commit_date"] = bad.clone();
        let body =
            assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(vec![c])).await, 422, "VALIDATION_ERROR")
                .await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", "commits", 0, "commit_date"]), "{bad}");
    }
}

async fn batch_rules(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.max_body_bytes = 8 * 1024 * 1024, Router::new()).await else { return };
    let f = fixture(&app).await;
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch(vec![])).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "too_short");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "commits"]));
    let body =
        assert_envelope(push(&app, &f.key, &f.project, &f.repo, &batch_of(0..1001)).await, 422, "VALIDATION_ERROR")
            .await;
    assert_eq!(body["detail"][0]["type"], "too_long");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "commits"]));
    let body = assert_envelope(
        push(&app, &f.key, &f.project, &f.repo, &json!({"client_version": "0.1.0"})).await,
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["detail"][0], json!({"loc": ["body", "commits"], "msg": "Field required", "type": "missing"}));

    // Duplicate SHAs (after lower-casing) reject the batch.
    let dup = batch(vec![commit(&"ab".repeat(20)), commit(&sha(1)), commit(&"AB".repeat(20))]);
    let body = assert_envelope(push(&app, &f.key, &f.project, &f.repo, &dup).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(
        body["detail"],
        json!([{"loc": ["body", "commits"], "msg": "Value error, Duplicate SHAs found in batch", "type": "value_error"}])
    );
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["total_commits"], 0);

    // 1000 is allowed; upper-case SHAs are stored lower-cased.
    let mut commits: Vec<Value> = (0..1000).map(|n| commit(&sha(n))).collect();
    commits[999]["sha"] = json!("ABCDEF".repeat(6) + "ABCD");
    let out = json_of(push(&app, &f.key, &f.project, &f.repo, &batch(commits)).await, 201).await;
    assert_eq!(out["inserted"], 1000);
    let lower = "abcdef".repeat(6) + "abcd";
    assert_eq!(out["last_ingested_sha"], lower.as_str());
    assert_eq!(out["details"][999]["sha"], lower.as_str());
    json_of(app.get_as(&format!("/api/v1/repos/{}/commits/{lower}", f.repo), &f.key).send().await.unwrap(), 200).await;
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["total_commits"], 1000);
}

async fn access_rules(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let body = batch_of(0..2);

    // A pull repository refuses pushes, with the plain method name.
    let pull = create_repo(&app, &f.owner.access_token, &f.project, "mirror", "pull_celery").await;
    let err = assert_envelope(push(&app, &f.key, &f.project, &pull, &body).await, 400, "BAD_REQUEST").await;
    assert_eq!(err["detail"], "Repository is not configured for push-based sync (current method: pull)");
    // ... and its status is unchanged (and readable).
    assert_eq!(status(&app, &f.key, &f.project, &pull).await["status"], "pending");

    // Unknown or foreign repositories and projects.
    let err = assert_envelope(
        push(&app, &f.key, &f.project, &uuid::Uuid::new_v4().to_string(), &body).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(err["detail"], "Repository not found");
    let err =
        assert_envelope(push(&app, &f.key, &f.project, "https://github.com/x/y.git", &body).await, 404, "NOT_FOUND")
            .await;
    assert_eq!(err["detail"], "Not found");
    let err =
        assert_envelope(push(&app, &f.key, &uuid::Uuid::new_v4().to_string(), &f.repo, &body).await, 404, "NOT_FOUND")
            .await;
    assert_eq!(err["detail"], "Project not found");
    let err = assert_envelope(push(&app, &f.key, "not-a-uuid", &f.repo, &body).await, 404, "NOT_FOUND").await;
    assert_eq!(err["detail"], "Project not found");
    let other_project = create_project(&app, &f.owner.access_token, "other").await;
    let foreign = create_repo(&app, &f.owner.access_token, &other_project, "foreign", "push_client").await;
    let err = assert_envelope(push(&app, &f.key, &f.project, &foreign, &body).await, 404, "NOT_FOUND").await;
    assert_eq!(err["detail"], "Repository not found");

    // The repository's name works in place of its id.
    let out = json_of(push(&app, &f.key, &f.project, "core", &body).await, 201).await;
    assert_eq!(out["inserted"], 2);
    assert_eq!(status(&app, &f.key, &f.project, "core").await["repo_id"], f.repo.as_str());

    // An outsider: 404 Project not found, for the push and the status.
    let outsider = app.signed_in("outsider@example.com").await;
    let outsider_key = api_key(&app, &outsider.access_token, "sync:commits,read:repos").await;
    let err = assert_envelope(push(&app, &outsider_key, &f.project, &f.repo, &body).await, 404, "NOT_FOUND").await;
    assert_eq!(err["detail"], "Project not found");
    let response = app.get_as(&status_path(&f.project, &f.repo), &outsider_key).send().await.unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Project not found");

    // A viewer reads the status but may not push; a maintainer pushes.
    let viewer = app.signed_in("viewer@example.com").await;
    add_member(&app, &f.owner.access_token, &f.project, "viewer@example.com", "viewer").await;
    let viewer_key = api_key(&app, &viewer.access_token, "sync:commits,read:repos").await;
    assert_envelope(push(&app, &viewer_key, &f.project, &f.repo, &batch_of(10..11)).await, 403, "AUTHORIZATION_ERROR")
        .await;
    assert_eq!(status(&app, &viewer_key, &f.project, &f.repo).await["total_commits"], 2);
    let maintainer = app.signed_in("maintainer@example.com").await;
    add_member(&app, &f.owner.access_token, &f.project, "maintainer@example.com", "maintainer").await;
    json_of(push(&app, &maintainer.access_token, &f.project, &f.repo, &batch_of(10..11)).await, 201).await;

    // Scopes: pushing needs sync:commits; reading the status takes either scope.
    let read_only = api_key(&app, &f.owner.access_token, "read:repos").await;
    let err =
        assert_envelope(push(&app, &read_only, &f.project, &f.repo, &body).await, 403, "AUTHORIZATION_ERROR").await;
    assert_eq!(err["detail"], "API key lacks scope sync:commits");
    assert_eq!(status(&app, &read_only, &f.project, &f.repo).await["total_commits"], 3);
    let push_only = api_key(&app, &f.owner.access_token, "sync:commits").await;
    assert_eq!(status(&app, &push_only, &f.project, &f.repo).await["total_commits"], 3);
    // ... and the commit queries need read:repos.
    let err = assert_envelope(
        app.get_as(&format!("/api/v1/repos/{}/commits", f.repo), &push_only).send().await.unwrap(),
        403,
        "AUTHORIZATION_ERROR",
    )
    .await;
    assert_eq!(err["detail"], "API key lacks scope read:repos");

    // Credentials: none → 401 Not authenticated; a bad key → 401.
    let response = app.client.post(app.url(&push_path(&f.project, &f.repo))).json(&body).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(assert_envelope(response, 401, "AUTHENTICATION_ERROR").await["detail"], "Not authenticated");
    let last = if f.key.ends_with('x') { "y" } else { "x" };
    let bad = format!("{}{last}", &f.key[..f.key.len() - 1]);
    assert_envelope(push(&app, &bad, &f.project, &f.repo, &body).await, 401, "AUTHENTICATION_ERROR").await;

    // None of the refused pushes changed anything.
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["status"].as_str(), st["total_commits"].as_i64()), (Some("healthy"), Some(3)));
}

async fn status_route_shapes(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let fresh = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!(
        fresh,
        json!({"repo_id": f.repo, "status": "pending", "last_sync_at": null, "last_ingested_sha": null, "total_commits": 0, "error_message": null})
    );
    json_of(push(&app, &f.key, &f.project, &f.repo, &batch_of(0..3)).await, 201).await;
    let after = status(&app, &f.owner.access_token, &f.project, &f.repo).await;
    assert_eq!(after["repo_id"], f.repo.as_str());
    assert_eq!(after["status"], "healthy");
    assert_eq!(after["last_ingested_sha"], sha(2));
    assert_eq!(after["total_commits"], 3);
    assert_eq!(after["error_message"], Value::Null);
    let at = after["last_sync_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.starts_with("20"), "{at}");
    assert_eq!(after.as_object().unwrap().len(), 6);
    // The repository answer shows the same state.
    let repo =
        json_of(app.get_as(&format!("/api/v1/repos/{}", f.repo), &f.owner.access_token).send().await.unwrap(), 200)
            .await;
    assert_eq!((repo["status"].as_str(), repo["last_ingested_sha"].as_str()), (Some("healthy"), Some(sha(2).as_str())));
    assert_eq!(repo["last_sync_at"], after["last_sync_at"]);
}

async fn concurrent_pushes_store_the_union_once(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.database_max_connections = 10, Router::new()).await else { return };
    let f = fixture(&app).await;
    // Eight overlapping windows of 300 commits over 0..1000, each in its own order.
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let start = t * 100;
        let mut shas: Vec<u64> = (start..start + 300).collect();
        if t % 2 == 1 {
            shas.reverse();
        }
        let body = batch(shas.iter().map(|n| commit(&sha(*n))).collect());
        let client = app.client.clone();
        let url = app.url(&push_path(&f.project, &f.repo));
        let key = f.key.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth(key).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut inserted_total = 0;
    let mut inserted_shas = BTreeSet::new();
    for task in tasks {
        let out = task.await.unwrap();
        inserted_total += out["inserted"].as_i64().unwrap();
        assert_eq!(out["inserted"].as_i64().unwrap() + out["skipped"].as_i64().unwrap(), 300);
        for (s, inserted, _) in details(&out) {
            if inserted {
                assert!(inserted_shas.insert(s.clone()), "{s} inserted twice");
            }
        }
    }
    // The union of the windows is 0..1000.
    assert_eq!(inserted_total, 1000);
    assert_eq!(inserted_shas, (0..1000).map(sha).collect::<BTreeSet<_>>());
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["total_commits"].as_i64(), st["status"].as_str()), (Some(1000), Some("healthy")));
    let listed =
        json_of(app.get_as(&format!("/api/v1/repos/{}/commits?size=1", f.repo), &f.key).send().await.unwrap(), 200)
            .await;
    assert_eq!(listed["total"], 1000);
}

async fn push_route_is_limited_per_key(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.sync.rate_limit = 3, Router::new()).await else { return };
    let f = fixture(&app).await;
    for (n, remaining) in [(0u64, "2"), (1, "1"), (2, "0")] {
        let response = push(&app, &f.key, &f.project, &f.repo, &batch_of(n..n + 1)).await;
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
        json_of(response, 201).await;
    }
    let response = push(&app, &f.key, &f.project, &f.repo, &batch_of(3..4)).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = response.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset >= 1);
    let body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(body["detail"], format!("Too many requests. Retry in {retry_after} seconds."));
    // The refused push stored nothing.
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["total_commits"], 3);
    // Across repositories the key shares one budget ...
    let fork = create_repo(&app, &f.owner.access_token, &f.project, "fork", "push_client").await;
    assert_eq!(push(&app, &f.key, &f.project, &fork, &batch_of(0..1)).await.status(), 429);
    // ... while another key of the same user, and the user's JWT, have their own.
    let second = api_key(&app, &f.owner.access_token, "sync:commits").await;
    json_of(push(&app, &second, &f.project, &f.repo, &batch_of(3..4)).await, 201).await;
    json_of(push(&app, &f.owner.access_token, &f.project, &f.repo, &batch_of(4..5)).await, 201).await;
}

async fn commit_queries(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    // Ada: 3 commits over 2 days (one a merge); Bob: 2 on one day; days in UTC.
    let spec = [
        (1, "Ada", "ADA@example.com", "2026-03-01T09:00:00Z", 10, 1, false),
        (2, "Ada", "ada@example.com", "2026-03-01T23:30:00-02:00", 20, 2, false), // 2026-03-02T01:30Z
        (3, "Bob", "bob@example.com", "2026-03-02T10:00:00Z", 5, 5, false),
        (4, "Ada", "ada@example.com", "2026-03-02T12:00:00Z", 0, 0, true),
        (5, "Bob", "bob@example.com", "2026-03-02T18:00:00Z", 7, 3, false),
    ];
    let commits: Vec<Value> = spec
        .iter()
        .map(|(n, name, email, date, add, del, merge)| {
            let mut c = commit(&sha(*n));
            c["author_name"] = json!(name);
            c["author_email"] = json!(email);
            c["commit_date"] = json!(date);
            c["additions"] = json!(add);
            c["deletions"] = json!(del);
            c["files_changed"] = json!(1);
            c["is_merge"] = json!(merge);
            c["parent_count"] = json!(if *merge { 2 } else { 1 });
            c
        })
        .collect();
    json_of(push(&app, &f.key, &f.project, &f.repo, &batch(commits)).await, 201).await;
    let token = &f.owner.access_token;
    let list = |query: &str| app.get_as(&format!("/api/v1/repos/{}/commits{query}", f.repo), token).send();
    let shas = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|c| c["sha"].as_str().unwrap().to_owned()).collect()
    };

    // Newest first, paged.
    let page = json_of(list("").await.unwrap(), 200).await;
    assert_eq!(shas(&page), [5, 4, 3, 2, 1].map(sha));
    assert_eq!(
        (page["total"].as_i64(), page["page"].as_i64(), page["size"].as_i64(), page["pages"].as_i64()),
        (Some(5), Some(1), Some(50), Some(1))
    );
    let page = json_of(list("?page=2&size=2").await.unwrap(), 200).await;
    assert_eq!(shas(&page), [3, 2].map(sha));
    assert_eq!((page["total"].as_i64(), page["pages"].as_i64()), (Some(5), Some(3)));
    // Filters: author by e-mail or name, any case; since/until (date or RFC 3339); merges.
    assert_eq!(shas(&json_of(list("?author=BOB@example.com").await.unwrap(), 200).await), [5, 3].map(sha));
    assert_eq!(shas(&json_of(list("?author=ada").await.unwrap(), 200).await), [4, 2, 1].map(sha));
    assert_eq!(shas(&json_of(list("?since=2026-03-02").await.unwrap(), 200).await), [5, 4, 3, 2].map(sha));
    assert_eq!(shas(&json_of(list("?until=2026-03-01").await.unwrap(), 200).await), [1].map(sha));
    assert_eq!(
        shas(&json_of(list("?since=2026-03-02T10:00:00Z&until=2026-03-02T12:00:00%2B00:00").await.unwrap(), 200).await),
        [4, 3].map(sha)
    );
    assert_eq!(shas(&json_of(list("?merges=true").await.unwrap(), 200).await), [4].map(sha));
    assert_eq!(shas(&json_of(list("?merges=false&author=ada").await.unwrap(), 200).await), [2, 1].map(sha));
    let err = assert_envelope(list("?since=soon").await.unwrap(), 422, "VALIDATION_ERROR").await;
    assert_eq!(err["detail"][0]["loc"], json!(["query", "since"]));
    assert_envelope(list("?size=101").await.unwrap(), 422, "VALIDATION_ERROR").await;

    // One commit by SHA (any case); unknown → 404 Commit not found.
    let c = json_of(
        app.get_as(&format!("/api/v1/repos/{}/commits/{}", f.repo, sha(2).to_uppercase()), token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(c["commit_date"], "2026-03-02T01:30:00Z");
    for missing in [sha(77), "abc".to_owned()] {
        let response = app.get_as(&format!("/api/v1/repos/{}/commits/{missing}", f.repo), token).send().await.unwrap();
        assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Commit not found");
    }

    // Stats: totals, per author, per day.
    let stats = json_of(app.get_as(&format!("/api/v1/repos/{}/stats", f.repo), token).send().await.unwrap(), 200).await;
    assert_eq!(stats["total_commits"], 5);
    assert_eq!((stats["total_additions"].as_i64(), stats["total_deletions"].as_i64()), (Some(42), Some(11)));
    assert_eq!(
        (stats["merge_commits"].as_i64(), stats["unique_authors"].as_i64(), stats["active_days"].as_i64()),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(
        (stats["first_commit_at"].as_str(), stats["last_commit_at"].as_str()),
        (Some("2026-03-01T09:00:00Z"), Some("2026-03-02T18:00:00Z"))
    );
    assert_eq!(
        stats["authors"],
        json!([
            {"author_email": "ada@example.com", "author_name": "Ada", "commits": 3, "additions": 30, "deletions": 3, "files_changed": 3,
             "active_days": 2, "first_commit_at": "2026-03-01T09:00:00Z", "last_commit_at": "2026-03-02T12:00:00Z"},
            {"author_email": "bob@example.com", "author_name": "Bob", "commits": 2, "additions": 12, "deletions": 8, "files_changed": 2,
             "active_days": 1, "first_commit_at": "2026-03-02T10:00:00Z", "last_commit_at": "2026-03-02T18:00:00Z"},
        ])
    );
    assert_eq!(
        stats["days"],
        json!([
            {"date": "2026-03-01", "commits": 1, "additions": 10, "deletions": 1},
            {"date": "2026-03-02", "commits": 4, "additions": 32, "deletions": 10},
        ])
    );
    let since = json_of(
        app.get_as(&format!("/api/v1/repos/{}/stats?since=2026-03-02T11:00:00Z", f.repo), token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!((since["total_commits"].as_i64(), since["total_additions"].as_i64()), (Some(2), Some(7)));
    assert_eq!(since["since"], "2026-03-02T11:00:00Z");
    let empty = json_of(
        app.get_as(&format!("/api/v1/repos/{}/stats?since=2030-01-01", f.repo), token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!((empty["total_commits"].as_i64(), empty["first_commit_at"].clone()), (Some(0), Value::Null));
    assert_eq!(empty["authors"], json!([]));

    // The original read paths.
    let legacy = json_of(
        app.get_as(&format!("/api/v1/commits/repos/{}/commits?per_page=2&author_email=ADA@example.com", f.repo), token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(shas(&legacy), [4, 2].map(sha));
    assert_eq!(
        (legacy["total"].as_i64(), legacy["per_page"].as_i64(), legacy["size"].as_i64(), legacy["pages"].as_i64()),
        (Some(3), Some(2), Some(2), Some(2))
    );
    // A page far past the end is empty (no overflow); a bad per_page is named in the error.
    for path in [
        format!("/api/v1/commits/repos/{}/commits?page=9223372036854775807&per_page=100", f.repo),
        format!("/api/v1/repos/{}/commits?page=9223372036854775807&size=100", f.repo),
    ] {
        let far = json_of(app.get_as(&path, token).send().await.unwrap(), 200).await;
        assert_eq!((far["items"].as_array().map(Vec::len), far["total"].as_i64()), (Some(0), Some(5)), "{path}");
    }
    let response =
        app.get_as(&format!("/api/v1/commits/repos/{}/commits?per_page=101", f.repo), token).send().await.unwrap();
    assert_eq!(
        assert_envelope(response, 422, "VALIDATION_ERROR").await["detail"][0]["loc"],
        json!(["query", "per_page"])
    );
    let totals = json_of(
        app.get_as(&format!("/api/v1/commits/repos/{}/commits/stats", f.repo), token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(
        totals,
        json!({"total_commits": 5, "total_additions": 42, "total_deletions": 11, "total_files_changed": 5, "merge_commits": 1,
               "unique_authors": 2, "date_range": {"earliest": "2026-03-01T09:00:00Z", "latest": "2026-03-02T18:00:00Z"}})
    );
    let by_id = json_of(
        app.get_as(&format!("/api/v1/commits/commits/{}:{}", f.repo, sha(3)), token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(by_id["author_name"], "Bob");
    let by_sha =
        json_of(app.get_as(&format!("/api/v1/commits/commits/sha/{}", sha(3)), token).send().await.unwrap(), 200).await;
    assert_eq!(by_sha["id"], by_id["id"]);
    let response = app.get_as(&format!("/api/v1/commits/commits/sha/{}", sha(77)), token).send().await.unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Commit not found");

    // Outsiders see nothing; viewers and read:repos keys read.
    let outsider = app.signed_in("outsider@example.com").await;
    let response =
        app.get_as(&format!("/api/v1/repos/{}/commits", f.repo), &outsider.access_token).send().await.unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Repository not found");
    let response =
        app.get_as(&format!("/api/v1/commits/commits/sha/{}", sha(3)), &outsider.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    let response = app
        .get_as(&format!("/api/v1/commits/commits/{}:{}", f.repo, sha(3)), &outsider.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(response, 404, "NOT_FOUND").await["detail"], "Commit not found");
    let response = app.get_as(&format!("/api/v1/repos/{}/stats", f.repo), &outsider.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    let reader = api_key(&app, token, "read:repos").await;
    assert_eq!(
        json_of(app.get_as(&format!("/api/v1/repos/{}/stats", f.repo), &reader).send().await.unwrap(), 200).await["total_commits"],
        5
    );
}

/// Makes the database refuse any commit titled `boom` (a stand-in for a failing write).
async fn install_failing_trigger(app: &TestApp) {
    match &app.state.db {
        Db::Sqlite(pool) => {
            sqlx::query(
                "CREATE TRIGGER boom BEFORE INSERT ON commits WHEN NEW.message_title = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom trigger fired'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.message_title = 'boom' THEN RAISE EXCEPTION 'boom trigger fired'; END IF; RETURN NEW; END $$",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("CREATE TRIGGER boom BEFORE INSERT ON commits FOR EACH ROW EXECUTE FUNCTION boom()")
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn a_failed_ingest_marks_the_repository_error(engine: Engine) {
    let Some(app) = spawn_with(engine, |s| s.database_max_connections = 10, Router::new()).await else { return };
    let f = fixture(&app).await;
    let healthy = create_repo(&app, &f.owner.access_token, &f.project, "healthy", "push_client").await;
    install_failing_trigger(&app).await;
    let mut commits: Vec<Value> = (0..10).map(|n| commit(&sha(n))).collect();
    commits[7]["message_title"] = json!("boom");
    let failing = batch(commits);

    // The failing push and several good pushes to another repository at the same time: the good
    // ones are not dragged down (on SQLite they share group transactions with the failing one).
    let mut good = Vec::new();
    for t in 0..4u64 {
        let (client, url, key) = (app.client.clone(), app.url(&push_path(&f.project, &healthy)), f.key.clone());
        let body = batch_of(100 * t..100 * t + 50);
        good.push(tokio::spawn(async move { client.post(url).bearer_auth(key).json(&body).send().await.unwrap() }));
    }
    let response = push(&app, &f.key, &f.project, &f.repo, &failing).await;
    let body = assert_envelope(response, 500, "INTERNAL_ERROR").await;
    assert_eq!(body["detail"], "Internal server error");
    for task in good {
        let out = json_of(task.await.unwrap(), 201).await;
        assert_eq!(out["inserted"], 50);
    }
    assert_eq!(status(&app, &f.key, &f.project, &healthy).await["total_commits"], 200);

    // Nothing of the failed batch is stored; the repository says why.
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["status"].as_str(), st["total_commits"].as_i64()), (Some("error"), Some(0)));
    let message = st["error_message"].as_str().unwrap();
    assert!(message.contains("boom trigger fired"), "{message}");
    let audit = json_of(
        app.get_as(&format!("/api/v1/audit?action=sync_commits&resource_id={}", f.repo), &f.owner.access_token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let details = audit["items"][0]["details"].as_str().unwrap();
    assert!(details.starts_with("Sync failed: ") && details.contains("boom trigger fired"), "{details}");

    // The next good push heals it.
    let out = json_of(push(&app, &f.key, &f.project, &f.repo, &batch_of(0..10)).await, 201).await;
    assert_eq!(out["inserted"], 10);
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["status"].as_str(), st["error_message"].clone()), (Some("healthy"), Value::Null));
}

async fn syncing_is_visible_while_a_push_runs(engine: Engine) {
    // SQLite has one writer: holding its lock would hold back the `syncing` update too. On
    // PostgreSQL a table lock holds back only the insert.
    if engine == Engine::Sqlite {
        return;
    }
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let Db::Postgres(pool) = &app.state.db else { unreachable!() };
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE commits IN EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let (client, url, key, body) =
        (app.client.clone(), app.url(&push_path(&f.project, &f.repo)), f.key.clone(), batch_of(0..5));
    let pushing = tokio::spawn(async move { client.post(url).bearer_auth(key).json(&body).send().await.unwrap() });
    let mut seen = None;
    for _ in 0..100 {
        let st = status(&app, &f.key, &f.project, &f.repo).await;
        if st["status"] == "syncing" {
            seen = Some(st);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let seen = seen.expect("the status turns syncing while the insert waits");
    assert_eq!(seen["total_commits"], 0);
    blocker.commit().await.unwrap();
    json_of(pushing.await.unwrap(), 201).await;
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!((st["status"].as_str(), st["total_commits"].as_i64()), (Some("healthy"), Some(5)));
}

async fn interrupted_syncs_are_reset(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let f = fixture(&app).await;
    let repo_id = uuid::Uuid::parse_str(&f.repo).unwrap();
    recap_server::on_db!(&app.state.db, |pool| sqlx::query("UPDATE repositories SET status = 'syncing' WHERE id = $1")
        .bind(repo_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["status"], "syncing");
    // A pull sync of it running (another instance's worker): left alone.
    let job = recap_server::sync::pull::PullSync { repo_id, force: false, requested_by: None };
    let mut tx = app.state.db.begin().await.unwrap();
    let options = recap_server::jobs::Enqueue {
        unique: Some(recap_server::sync::pull::PullSync::unique_key(repo_id)),
        ..Default::default()
    };
    let enqueued = recap_server::jobs::enqueue(&mut tx, &job, options).await.unwrap();
    tx.commit().await.unwrap();
    let mark_job = |state: &'static str| {
        let db = app.state.db.clone();
        async move {
            recap_server::on_db!(&db, |pool| sqlx::query("UPDATE jobs SET state = $2 WHERE id = $1")
                .bind(enqueued.id)
                .bind(state)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))
            .unwrap()
        }
    };
    assert_eq!(mark_job("running").await, 1);
    // What `Application::build` runs at start-up.
    recap_server::sync::service::reset_interrupted(&app.state.db).await;
    assert_eq!(status(&app, &f.key, &f.project, &f.repo).await["status"], "syncing");
    // Without one, the sync was interrupted.
    mark_job("dead").await;
    recap_server::sync::service::reset_interrupted(&app.state.db).await;
    let st = status(&app, &f.key, &f.project, &f.repo).await;
    assert_eq!(st["status"], "error");
    assert!(st["error_message"].as_str().unwrap().starts_with("Sync interrupted"), "{st}");
}
