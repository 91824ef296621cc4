//! Git Recap provider sessions and activity, against local fakes of GitHub, GitLab and Azure
//! DevOps that speak their real JSON (pagination headers, query filters, error answers), and
//! the `local` provider over commits stored in Recap.

use std::time::Duration;

use axum::Router;
use recap_server::{Settings, accounts::oauth::ClientCredentials, gitrecap::activity::count_tokens, on_db};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use uuid::Uuid;
use wiremock::{
    Mock, MockBuilder, MockServer, ResponseTemplate,
    matchers::{
        basic_auth, bearer_token, body_string_contains, header, method, path, query_param, query_param_is_missing,
    },
};

use crate::{
    engine_tests,
    helpers::{Engine, TestApp, assert_envelope, redis_url, spawn_with, unique_prefix},
};

const GH_TOKEN: &str = "ghp_good_token_0123456789";
const GL_TOKEN: &str = "glpat-good-token";
const AZ_TOKEN: &str = "azure-pat-good";
const FRONTEND_CLIENT_ID: &str = "gitrecap-frontend-id";
const FRONTEND_CLIENT_SECRET: &str = "gitrecap-frontend-secret-do-not-leak";
/// The window every activity request of these tests asks for.
const WINDOW: &str = "start_date=2025-03-10&end_date=2025-03-16";

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// `GET path` with these exact query parameters.
fn get(p: &str, params: &[(&str, &str)]) -> MockBuilder {
    let mut mock = Mock::given(method("GET")).and(path(p.to_owned()));
    for (k, v) in params {
        mock = mock.and(query_param(*k, *v));
    }
    mock
}

/// The app, configured against the fakes (GitHub with an Enterprise-style `/api/v3` prefix).
async fn spawn_against(
    engine: Engine,
    github: &str,
    gitlab: &str,
    azure: &str,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let (github, gitlab, azure) = (github.to_owned(), gitlab.to_owned(), azure.to_owned());
    spawn_with(
        engine,
        move |s| {
            s.oauth.github_api_url = format!("{github}/api/v3");
            s.oauth.github_oauth_url = github;
            s.gitrecap.gitlab_url = gitlab;
            s.gitrecap.azure_devops_url = azure;
            s.gitrecap.github_client = Some(ClientCredentials {
                client_id: FRONTEND_CLIENT_ID.into(),
                client_secret: FRONTEND_CLIENT_SECRET.into(),
            });
            configure(s);
        },
        Router::new(),
    )
    .await
}

/// `POST /pat` as the Git Recap frontend sends it: a JSON string labelled `text/plain`.
async fn post_pat(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/pat"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn open_session(app: &TestApp, body: Value) -> (String, String) {
    let response = post_pat(app, body).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let out: Value = response.json().await.unwrap();
    (out["session_id"].as_str().unwrap().to_owned(), out["username"].as_str().unwrap().to_owned())
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}: {:?}", response.text().await);
    response.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------------------------

fn gh_commit(sha: &str, login: &str, date: &str, message: &str) -> Value {
    json!({
        "sha": sha,
        "node_id": "C_x",
        "commit": {
            "author": {"name": login, "email": format!("{login}@users.noreply.github.com"), "date": date},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "date": date},
            "message": message,
        },
        "author": {"login": login, "id": 1},
        "committer": {"login": "web-flow", "id": 2},
        "parents": [],
    })
}

fn gh_pull(number: i64, title: &str, login: &str, updated_at: &str) -> Value {
    json!({
        "number": number, "state": "closed", "title": title, "user": {"login": login, "id": 3},
        "created_at": "2025-02-01T00:00:00Z", "updated_at": updated_at, "merged_at": updated_at,
    })
}

/// A GitHub listing page with a `Link: rel="next"` to `next` (a path and query on the fake).
fn gh_page(server: &MockServer, items: Value, next: Option<&str>) -> ResponseTemplate {
    let response = ok(items);
    match next {
        Some(next) => response.insert_header(
            "link",
            format!("<{0}{next}>; rel=\"next\", <{0}{next}>; rel=\"last\"", server.uri()).as_str(),
        ),
        None => response,
    }
}

/// GitHub's REST API for user `octocat` (token [`GH_TOKEN`]) with repositories `api` and `web`.
async fn mount_github(server: &MockServer) {
    let api = "/api/v3";
    Mock::given(method("GET"))
        .and(path(format!("{api}/user")))
        .and(bearer_token(GH_TOKEN))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .respond_with(ok(json!({"login": "octocat", "id": 1, "name": "The Octocat", "email": null})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{api}/user")))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            ),
        )
        .with_priority(10)
        .mount(server)
        .await;

    // Repositories, two pages.
    let repos = [("affiliation", "owner,collaborator,organization_member"), ("per_page", "100")];
    get(&format!("{api}/user/repos"), &repos)
        .and(query_param_is_missing("page"))
        .and(bearer_token(GH_TOKEN))
        .respond_with(gh_page(
            server,
            json!([{"id": 1, "name": "api", "full_name": "octocat/api", "owner": {"login": "octocat"}, "default_branch": "main"}]),
            Some(&format!("{api}/user/repos?affiliation=owner%2Ccollaborator%2Corganization_member&per_page=100&page=2")),
        ))
        .mount(server)
        .await;
    get(&format!("{api}/user/repos"), &[("page", "2"), ("per_page", "100")])
        .respond_with(gh_page(
            server,
            json!([{"id": 2, "name": "web", "full_name": "octocat/web", "owner": {"login": "octocat"}, "default_branch": "main"}]),
            None,
        ))
        .mount(server)
        .await;

    // Pull requests of `api`, most recently updated first; page 2 reaches before the window, so
    // page 3 is never asked for.
    let pulls = [("state", "all"), ("sort", "updated"), ("direction", "desc"), ("per_page", "100")];
    let pulls_path = format!("{api}/repos/octocat/api/pulls");
    get(&pulls_path, &pulls)
        .and(query_param_is_missing("page"))
        .respond_with(gh_page(
            server,
            json!([
                gh_pull(42, "Add endpoint", "octocat", "2025-03-14T10:00:00Z"),
                gh_pull(41, "Someone else's", "hubot", "2025-03-13T10:00:00Z"),
            ]),
            Some(&format!("{pulls_path}?state=all&sort=updated&direction=desc&per_page=100&page=2")),
        ))
        .mount(server)
        .await;
    get(&pulls_path, &[("page", "2")])
        .respond_with(gh_page(
            server,
            json!([gh_pull(40, "Old PR", "octocat", "2025-03-01T00:00:00Z")]),
            Some(&format!("{pulls_path}?state=all&sort=updated&direction=desc&per_page=100&page=3")),
        ))
        .mount(server)
        .await;
    get(&pulls_path, &[("page", "3")]).respond_with(ok(json!([]))).expect(0).mount(server).await;
    get(&format!("{pulls_path}/42/commits"), &[("per_page", "100")])
        .respond_with(ok(json!([
            gh_commit("aaa111", "octocat", "2025-03-14T09:00:00Z", "feat: x"),
            gh_commit("old000", "octocat", "2025-03-01T09:00:00Z", "before the window"),
        ])))
        .mount(server)
        .await;
    get(&format!("{pulls_path}/41/commits"), &[("per_page", "100")]).respond_with(ok(json!([]))).mount(server).await;

    // Commits of `api` by octocat since the start, two pages; the second reaches before the
    // window, so the third is never asked for.
    let commits_path = format!("{api}/repos/octocat/api/commits");
    let by_octocat = [("author", "octocat"), ("since", "2025-03-10T00:00:00Z"), ("per_page", "100")];
    get(&commits_path, &by_octocat)
        .and(query_param_is_missing("page"))
        .respond_with(gh_page(
            server,
            json!([
                gh_commit("zzz999", "octocat", "2025-03-17T08:00:00Z", "after the window"),
                gh_commit("bbb222", "octocat", "2025-03-15T23:30:00+01:00", "fix: y\n\nLonger body"),
                gh_commit("aaa111", "octocat", "2025-03-14T09:00:00Z", "feat: x"),
            ]),
            Some(&format!("{commits_path}?author=octocat&since=2025-03-10T00%3A00%3A00Z&per_page=100&page=2")),
        ))
        .mount(server)
        .await;
    get(&commits_path, &[("author", "octocat"), ("page", "2")])
        .respond_with(gh_page(
            server,
            json!([
                gh_commit("ccc333", "octocat", "2025-03-16T23:59:00Z", "  docs: z  "),
                gh_commit("ddd444", "octocat", "2025-03-09T23:00:00Z", "older"),
            ]),
            Some(&format!("{commits_path}?author=octocat&since=2025-03-10T00%3A00%3A00Z&per_page=100&page=3")),
        ))
        .mount(server)
        .await;
    get(&commits_path, &[("author", "octocat"), ("page", "3")])
        .respond_with(ok(json!([])))
        .expect(0)
        .mount(server)
        .await;
    get(&commits_path, &[("author", "hubot"), ("since", "2025-03-10T00:00:00Z"), ("per_page", "100")])
        .respond_with(ok(json!([gh_commit("hhh555", "hubot", "2025-03-11T12:00:00Z", "chore: hubot")])))
        .mount(server)
        .await;

    // `web` has no pull requests and no commits yet (GitHub answers 409 for an empty repository).
    get(&format!("{api}/repos/octocat/web/pulls"), &pulls).respond_with(ok(json!([]))).mount(server).await;
    Mock::given(method("GET"))
        .and(path(format!("{api}/repos/octocat/web/commits")))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"message": "Git Repository is empty."})))
        .mount(server)
        .await;

    // Open issues assigned to the user, newest first (one is a pull request).
    get(
        &format!("{api}/issues"),
        &[("filter", "assigned"), ("state", "open"), ("sort", "created"), ("direction", "desc"), ("per_page", "100")],
    )
    .respond_with(ok(json!([
        {"number": 8, "title": "A PR in disguise", "created_at": "2025-03-15T09:00:00Z",
         "repository": {"name": "web", "full_name": "octocat/web"}, "pull_request": {"url": "x"}},
        {"number": 7, "title": "Bug in login", "created_at": "2025-03-15T08:00:00Z",
         "repository": {"name": "web", "full_name": "octocat/web"}},
        {"number": 9, "title": "Elsewhere", "created_at": "2025-03-12T09:00:00Z",
         "repository": {"name": "other", "full_name": "octocat/other"}},
        {"number": 3, "title": "Ancient", "created_at": "2025-03-01T00:00:00Z",
         "repository": {"name": "web", "full_name": "octocat/web"}},
    ])))
    .mount(server)
    .await;
}

const GITHUB_ACTIONS: &str = "2025-03-12:\n - [Issue] in other: Elsewhere\n\n\
2025-03-14:\n - [Commit From Pr] in api: feat: x (PR: Add endpoint)\n - [Pull Request] in api: Add endpoint (PR #42)\n\n\
2025-03-15:\n - [Issue] in web: Bug in login\n - [Commit] in api: fix: y\n\nLonger body\n\n\
2025-03-16:\n - [Commit] in api: docs: z\n";

#[tokio::test]
async fn github_session_pages_filters_and_renders() {
    let github = MockServer::start().await;
    mount_github(&github).await;
    let Some(app) =
        spawn_against(Engine::Sqlite, &github.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let (session, username) = open_session(&app, json!({"pat": GH_TOKEN})).await;
    assert_eq!(username, "octocat");
    assert!(session.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {session}");

    let repos = get_json(&app, &format!("/repos?session_id={session}")).await;
    assert_eq!(repos, json!({"repos": ["api", "web"], "repos_full": ["octocat/api", "octocat/web"]}));

    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
    assert_eq!(out["actions"], GITHUB_ACTIONS, "{}", out["actions"].as_str().unwrap());
    assert_eq!(out["total_count"], 6);
    assert_eq!((out["trimmed_count"].clone(), out["message"].clone()), (json!(0), Value::Null));

    // Another author, one repository: the list syntax may be repeated or comma-separated.
    let expected = "2025-03-11:\n - [Commit] in api: chore: hubot\n\n2025-03-13:\n - [Pull Request] in api: Someone else's (PR #41)\n";
    for filters in [
        "repo_filter=api&authors=hubot",
        "repo_filter=api,&authors=hubot,",
        "repo_filter=api&repo_filter=&authors=%20hubot",
    ] {
        let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&{filters}")).await;
        assert_eq!(out["actions"], expected, "{filters}");
    }
    // Requests are stateless: without filters, the defaults come back.
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
    assert_eq!(out["actions"], GITHUB_ACTIONS);
    // Both repositories, repeated or comma-separated, by short or full name: the issue in
    // `other` is filtered out.
    let without_other = GITHUB_ACTIONS.replace("2025-03-12:\n - [Issue] in other: Elsewhere\n\n", "");
    for filters in ["repo_filter=api,web", "repo_filter=api&repo_filter=web", "repo_filter=octocat/api,octocat/web"] {
        let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&{filters}")).await;
        assert_eq!(out["actions"], without_other.as_str(), "{filters}");
    }
    // A window with nothing in it.
    let out = get_json(
        &app,
        &format!("/actions?session_id={session}&start_date=2025-03-17T09:00:00Z&end_date=2025-03-17T10:00:00Z"),
    )
    .await;
    assert_eq!(out, json!({"actions": "", "message": null, "trimmed_count": 0, "total_count": 0}));
    // Offsets are converted to UTC: the start 01:00+01:00 is midnight UTC (the `since` GitHub
    // is sent), the end 2025-03-16T00:59+01:00 is 23:59 UTC the day before.
    let out = get_json(
        &app,
        &format!(
            "/actions?session_id={session}&start_date=2025-03-10T01:00:00%2B01:00&end_date=2025-03-16T00:59:00%2B01:00"
        ),
    )
    .await;
    assert_eq!(out["actions"], GITHUB_ACTIONS.replace("\n2025-03-16:\n - [Commit] in api: docs: z\n", "").as_str());
}

#[tokio::test]
async fn github_bad_credentials_and_upstream_failures() {
    let github = MockServer::start().await;
    mount_github(&github).await;
    let Some(app) =
        spawn_against(Engine::Sqlite, &github.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let body = assert_envelope(post_pat(&app, json!({"pat": "ghp_revoked"})).await, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "Failed to initialize GitHub fetcher: bad credentials");
    // The alias `token` works, the provider name is case-insensitive.
    let response = post_pat(&app, json!({"token": GH_TOKEN, "provider": "GITHUB"})).await;
    assert_eq!(response.status(), 200);

    for (input, detail) in [
        (json!({"pat": "  "}), "Missing required field: pat"),
        (json!({"provider": "GitHub"}), "Missing required field: pat"),
        (json!({"pat": GH_TOKEN, "provider": "bitbucket"}), "Unsupported provider"),
    ] {
        let body = assert_envelope(post_pat(&app, input.clone()).await, 400, "BAD_REQUEST").await;
        assert_eq!(body["detail"], detail, "{input}");
    }
    let response = app.client.post(app.url("/pat")).body("pat=ghp").send().await.unwrap();
    let body = assert_envelope(response, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    // Unknown, tampered and missing session ids.
    let (session, _) = open_session(&app, json!({"pat": GH_TOKEN})).await;
    let mut tampered = session.clone();
    tampered.pop();
    tampered.push(if session.ends_with('A') { 'B' } else { 'A' });
    for id in ["nope", "", tampered.as_str(), "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0."] {
        for route in ["/repos", "/actions"] {
            let response = app.get(&format!("{route}?session_id={id}")).await;
            if id.is_empty() && route == "/actions" {
                assert_envelope(response, 422, "VALIDATION_ERROR").await;
                continue;
            }
            let body = assert_envelope(response, 404, "NOT_FOUND").await;
            assert_eq!(body["detail"], "Session not found", "{route} {id}");
        }
    }
    let body = assert_envelope(app.get("/actions").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "session_id"]));
    let body = assert_envelope(app.get("/repos").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "session_id"]));
    for (query, field) in [
        ("start_date=yesterday", "start_date"),
        ("end_date=2025-02-30", "end_date"),
        // Outside years 1..9999, or moved out of them by the offset: a 422, not a panic.
        ("end_date=-9999-01-01", "end_date"),
        ("start_date=9999-12-31T23:00:00-05:00", "start_date"),
    ] {
        let body =
            assert_envelope(app.get(&format!("/actions?session_id={session}&{query}")).await, 422, "VALIDATION_ERROR")
                .await;
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }
    let response = app.get(&format!("/actions?session_id={session}&start_date=2025-03-16&end_date=2025-03-10")).await;
    assert_envelope(response, 422, "VALIDATION_ERROR").await;

    // A provider that fails: 5xx → 502, exhausted rate limit → 503 with Retry-After, and an
    // unreachable one → 502; each with a `detail`.
    let broken = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user"))
        .and(bearer_token("ghp_5xx"))
        .respond_with(ResponseTemplate::new(503).set_body_string("unicorn"))
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user"))
        .and(bearer_token("ghp_limited"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(
                    "x-ratelimit-reset",
                    (OffsetDateTime::now_utc().unix_timestamp() + 42).to_string().as_str(),
                )
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user"))
        .and(bearer_token(GH_TOKEN))
        .respond_with(ok(json!({"login": "octocat"})))
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user/repos"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "Server Error"})))
        .mount(&broken)
        .await;
    let Some(app) =
        spawn_against(Engine::Sqlite, &broken.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let body = assert_envelope(post_pat(&app, json!({"pat": "ghp_5xx"})).await, 502, "EXTERNAL_SERVICE_ERROR").await;
    assert_eq!(body["detail"], "Upstream GitHub error: HTTP 503");
    let response = post_pat(&app, json!({"pat": "ghp_limited"})).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((30..=43).contains(&retry_after), "{retry_after}");
    let body = assert_envelope(response, 503, "EXTERNAL_SERVICE_ERROR").await;
    assert_eq!(body["detail"], "Upstream GitHub error: rate limited");
    // The session opens; the listing behind it fails.
    let (session, _) = open_session(&app, json!({"pat": GH_TOKEN})).await;
    for route in ["/repos", "/actions"] {
        let body =
            assert_envelope(app.get(&format!("{route}?session_id={session}")).await, 502, "EXTERNAL_SERVICE_ERROR")
                .await;
        assert_eq!(body["detail"], "Upstream GitHub error: HTTP 500", "{route}");
    }

    let Some(app) =
        spawn_against(Engine::Sqlite, "http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let body = assert_envelope(post_pat(&app, json!({"pat": GH_TOKEN})).await, 502, "EXTERNAL_SERVICE_ERROR").await;
    assert_eq!(body["detail"], "Upstream GitHub error: unreachable");
}

// ---------------------------------------------------------------------------------------------
// GitLab
// ---------------------------------------------------------------------------------------------

fn gl_commit(id: &str, name: &str, email: &str, authored: &str, message: &str) -> Value {
    json!({
        "id": id, "short_id": &id[..2.min(id.len())], "title": message.lines().next().unwrap_or(""), "message": message,
        "author_name": name, "author_email": email, "authored_date": authored,
        "committer_name": name, "committer_email": email, "committed_date": authored,
        "created_at": authored, "parent_ids": [], "web_url": "https://gitlab.example/x",
    })
}

/// GitLab's API v4 for user `jane` (token [`GL_TOKEN`]) with projects `api` (10) and `web` (11).
async fn mount_gitlab(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("private-token", GL_TOKEN))
        .respond_with(ok(json!({
            "id": 7, "username": "jane", "name": "Jane Doe", "state": "active",
            "email": "jane@example.com", "commit_email": "jane@users.noreply.gitlab.example", "public_email": "",
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})))
        .with_priority(10)
        .mount(server)
        .await;
    get("/api/v4/projects", &[("membership", "true"), ("per_page", "100")])
        .and(query_param_is_missing("page"))
        .and(header("private-token", GL_TOKEN))
        .respond_with(
            ok(json!([{"id": 10, "name": "api", "path_with_namespace": "acme/api", "default_branch": "main"}]))
                .insert_header("x-next-page", "2")
                .insert_header("x-page", "1")
                .insert_header("x-total-pages", "2"),
        )
        .mount(server)
        .await;
    get("/api/v4/projects", &[("membership", "true"), ("per_page", "100"), ("page", "2")])
        .respond_with(
            ok(json!([{"id": 11, "name": "web", "path_with_namespace": "acme/web", "default_branch": "main"}]))
                .insert_header("x-next-page", "")
                .insert_header("x-page", "2"),
        )
        .mount(server)
        .await;
    let mr_window = [
        ("state", "all"),
        ("author_username", "jane"),
        ("updated_after", "2025-03-10T00:00:00Z"),
        ("updated_before", "2025-03-17T00:00:00Z"),
        ("per_page", "100"),
    ];
    get("/api/v4/projects/10/merge_requests", &mr_window)
        .respond_with(ok(json!([{
            "id": 100, "iid": 3, "project_id": 10, "title": "Add search", "state": "merged",
            "created_at": "2025-03-13T10:00:00.000Z", "updated_at": "2025-03-14T10:00:00.000Z",
            "author": {"id": 7, "username": "jane", "name": "Jane Doe"},
        }])))
        .mount(server)
        .await;
    get("/api/v4/projects/10/merge_requests/3/commits", &[("per_page", "100")])
        .respond_with(ok(json!([gl_commit(
            "m1",
            "Jane Doe",
            "jane@example.com",
            "2025-03-14T11:00:00.000+02:00",
            "feat: search\n"
        )])))
        .mount(server)
        .await;
    get("/api/v4/projects/11/merge_requests", &mr_window).respond_with(ok(json!([]))).mount(server).await;
    let since = [("since", "2025-03-10T00:00:00Z"), ("per_page", "100")];
    get("/api/v4/projects/10/repository/commits", &since)
        .and(query_param_is_missing("page"))
        .respond_with(
            ok(json!([
                gl_commit("m1", "Jane Doe", "jane@example.com", "2025-03-14T11:00:00.000+02:00", "feat: search\n"),
                gl_commit("c1", "Jane Doe", "laptop@localhost", "2025-03-15T10:00:00.000Z", "fix: by name"),
                gl_commit("c2", "Bob", "bob@example.com", "2025-03-15T11:00:00.000Z", "not mine"),
            ]))
            .insert_header("x-next-page", "2"),
        )
        .mount(server)
        .await;
    get("/api/v4/projects/10/repository/commits", &[("since", "2025-03-10T00:00:00Z"), ("page", "2")])
        .respond_with(
            ok(json!([
                gl_commit("c3", "J. Doe", "JANE@example.com", "2025-03-16T10:00:00.000Z", "fix: by email"),
                gl_commit("c4", "Jane Doe", "jane@example.com", "2025-03-17T10:00:00.000Z", "too late"),
            ]))
            .insert_header("x-next-page", ""),
        )
        .mount(server)
        .await;
    get("/api/v4/projects/11/repository/commits", &since).respond_with(ok(json!([]))).mount(server).await;
    get(
        "/api/v4/issues",
        &[
            ("scope", "assigned_to_me"),
            ("state", "opened"),
            ("created_after", "2025-03-10T00:00:00Z"),
            ("created_before", "2025-03-17T00:00:00Z"),
            ("per_page", "100"),
        ],
    )
    .respond_with(ok(json!([
        {"id": 500, "iid": 5, "project_id": 11, "title": "Crash on save", "state": "opened", "created_at": "2025-03-12T08:00:00.000Z"},
    ])))
    .mount(server)
    .await;
}

#[tokio::test]
async fn gitlab_session_pages_filters_and_errors() {
    let gitlab = MockServer::start().await;
    mount_gitlab(&gitlab).await;
    let Some(app) =
        spawn_against(Engine::Sqlite, "http://127.0.0.1:9", &gitlab.uri(), "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let body = assert_envelope(
        post_pat(&app, json!({"pat": "glpat-bad", "provider": "GitLab"})).await,
        401,
        "AUTHENTICATION_ERROR",
    )
    .await;
    assert_eq!(body["detail"], "Failed to initialize GitLab fetcher: bad credentials");
    // Only the configured instance may be named.
    let response =
        post_pat(&app, json!({"pat": GL_TOKEN, "provider": "gitlab", "base_url": "http://169.254.169.254"})).await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "base_url is not an allowed GitLab instance");

    let (session, username) =
        open_session(&app, json!({"pat": GL_TOKEN, "provider": "GitLab", "base_url": format!("{}/", gitlab.uri())}))
            .await;
    assert_eq!(username, "jane");
    let repos = get_json(&app, &format!("/repos?session_id={session}")).await;
    assert_eq!(repos, json!({"repos": ["api", "web"], "repos_full": ["acme/api", "acme/web"]}));

    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
    let expected = "2025-03-12:\n - [Issue] in web: Crash on save\n\n\
2025-03-14:\n - [Commit From Pr] in api: feat: search (PR: Add search)\n - [Pull Request] in api: Add search (PR #3)\n\n\
2025-03-15:\n - [Commit] in api: fix: by name\n\n\
2025-03-16:\n - [Commit] in api: fix: by email\n";
    assert_eq!(out["actions"], expected, "{}", out["actions"].as_str().unwrap());
    assert_eq!(out["total_count"], 5);

    // An explicit author list replaces the identity: commits are matched on name or e-mail.
    let out =
        get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&authors=bob@example.com&repo_filter=api"))
            .await;
    assert_eq!(out["actions"], "2025-03-15:\n - [Commit] in api: not mine\n");
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&repo_filter=web")).await;
    assert_eq!(out["actions"], "2025-03-12:\n - [Issue] in web: Crash on save\n");

    // A failing instance: 5xx on the user call, and on a listing behind a live session.
    let broken = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("private-token", "glpat-5xx"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("private-token", GL_TOKEN))
        .respond_with(ok(json!({"id": 7, "username": "jane"})))
        .mount(&broken)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "500 Internal Server Error"})))
        .mount(&broken)
        .await;
    let Some(app) =
        spawn_against(Engine::Sqlite, "http://127.0.0.1:9", &broken.uri(), "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let body = assert_envelope(
        post_pat(&app, json!({"pat": "glpat-5xx", "provider": "gitlab"})).await,
        502,
        "EXTERNAL_SERVICE_ERROR",
    )
    .await;
    assert_eq!(body["detail"], "Upstream GitLab error: HTTP 502");
    let (session, _) = open_session(&app, json!({"pat": GL_TOKEN, "provider": "gitlab"})).await;
    let body = assert_envelope(
        app.get(&format!("/actions?session_id={session}&{WINDOW}")).await,
        502,
        "EXTERNAL_SERVICE_ERROR",
    )
    .await;
    assert_eq!(body["detail"], "Upstream GitLab error: HTTP 500");
}

// ---------------------------------------------------------------------------------------------
// Azure DevOps
// ---------------------------------------------------------------------------------------------

fn az_list(items: Value) -> Value {
    let count = items.as_array().map(Vec::len).unwrap_or(0);
    json!({"count": count, "value": items})
}

fn az_pr(id: i64, title: &str, creator: &str, created: &str) -> Value {
    json!({
        "pullRequestId": id, "codeReviewId": id, "status": "completed", "title": title,
        "createdBy": {"displayName": creator, "uniqueName": creator, "id": "x"},
        "creationDate": created, "sourceRefName": "refs/heads/f", "targetRefName": "refs/heads/main",
        "repository": {"id": "r1", "name": "api"},
    })
}

fn az_commit(id: &str, date: &str, comment: &str) -> Value {
    json!({
        "commitId": id,
        "author": {"name": "Jane Doe", "email": "jane@example.com", "date": date},
        "committer": {"name": "Jane Doe", "email": "jane@example.com", "date": date},
        "comment": comment, "url": "https://dev.azure.com/acme/_apis/git/x",
    })
}

/// Azure DevOps organization `acme` for jane@example.com (PAT [`AZ_TOKEN`]): projects Platform
/// (repository `api`) and Mobile (repository `app`).
async fn mount_azure(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/acme/_apis/connectionData"))
        .and(basic_auth("", AZ_TOKEN))
        .respond_with(ok(json!({
            "authenticatedUser": {
                "id": "6f2f0b9e-0000-0000-0000-000000000001", "descriptor": "aad.x", "subjectDescriptor": "aad.x",
                "providerDisplayName": "Jane Doe", "isActive": true,
                "properties": {"Account": {"$type": "System.String", "$value": "jane@example.com"}},
                "resourceVersion": 2, "metaTypeId": 0,
            },
            "instanceId": "i", "deploymentId": "d", "deploymentType": "hosted",
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/acme/_apis/connectionData"))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(server)
        .await;
    let v = ("api-version", "7.1");
    get("/acme/_apis/projects", &[v, ("$top", "100"), ("$skip", "0")])
        .and(query_param_is_missing("continuationToken"))
        .and(basic_auth("", AZ_TOKEN))
        .respond_with(
            ok(az_list(json!([{"id": "p1", "name": "Platform", "state": "wellFormed"}])))
                .insert_header("x-ms-continuationtoken", "tok2"),
        )
        .mount(server)
        .await;
    get("/acme/_apis/projects", &[v, ("continuationToken", "tok2")])
        .respond_with(ok(az_list(json!([{"id": "p2", "name": "Mobile", "state": "wellFormed"}]))))
        .mount(server)
        .await;
    get("/acme/p1/_apis/git/repositories", &[v])
        .respond_with(ok(az_list(json!([{"id": "r1", "name": "api", "project": {"id": "p1", "name": "Platform"}}]))))
        .mount(server)
        .await;
    get("/acme/p2/_apis/git/repositories", &[v])
        .respond_with(ok(az_list(json!([{"id": "r2", "name": "app", "project": {"id": "p2", "name": "Mobile"}}]))))
        .mount(server)
        .await;

    // Pull requests, newest first: a full first page of other people's, then jane's and an old one.
    let others: Vec<Value> =
        (0..100).map(|i| az_pr(1100 - i, "Someone's change", "someone@example.com", "2025-03-15T12:00:00Z")).collect();
    let prs = [v, ("searchCriteria.status", "all"), ("$top", "100")];
    get("/acme/p1/_apis/git/repositories/r1/pullrequests", &prs)
        .and(query_param("$skip", "0"))
        .respond_with(ok(az_list(Value::Array(others))))
        .mount(server)
        .await;
    get("/acme/p1/_apis/git/repositories/r1/pullrequests", &prs)
        .and(query_param("$skip", "100"))
        .respond_with(ok(az_list(json!([
            az_pr(1000, "Add auth", "JANE@example.com", "2025-03-14T10:00:00Z"),
            az_pr(999, "Old", "jane@example.com", "2025-03-01T10:00:00Z"),
        ]))))
        .mount(server)
        .await;
    get("/acme/p1/_apis/git/repositories/r1/pullrequests", &[("$skip", "200")])
        .respond_with(ok(az_list(json!([]))))
        .expect(0)
        .mount(server)
        .await;
    get("/acme/p1/_apis/git/repositories/r1/pullRequests/1000/commits", &[v])
        .respond_with(ok(az_list(json!([az_commit("az1", "2025-03-14T09:00:00Z", "feat: auth")]))))
        .mount(server)
        .await;
    let commits = [
        v,
        ("searchCriteria.author", "jane@example.com"),
        ("searchCriteria.fromDate", "2025-03-10T00:00:00Z"),
        ("searchCriteria.toDate", "2025-03-17T00:00:00Z"),
        ("searchCriteria.$top", "100"),
        ("searchCriteria.$skip", "0"),
    ];
    get("/acme/p1/_apis/git/repositories/r1/commits", &commits)
        .respond_with(ok(az_list(json!([
            az_commit("az2", "2025-03-16T08:00:00Z", "fix: token refresh"),
            az_commit("az1", "2025-03-14T09:00:00Z", "feat: auth"),
        ]))))
        .mount(server)
        .await;
    get("/acme/p2/_apis/git/repositories/r2/pullrequests", &prs)
        .respond_with(ok(az_list(json!([]))))
        .mount(server)
        .await;
    get("/acme/p2/_apis/git/repositories/r2/commits", &commits)
        .respond_with(ok(az_list(json!([]))))
        .mount(server)
        .await;

    // Work items assigned to the user: WIQL, then their fields.
    Mock::given(method("POST"))
        .and(path("/acme/_apis/wit/wiql"))
        .and(query_param("api-version", "7.1"))
        .and(body_string_contains("[System.AssignedTo] = @Me"))
        .and(body_string_contains("2025-03-10"))
        .respond_with(ok(json!({
            "queryType": "flat", "asOf": "2025-03-16T10:00:00Z",
            "workItems": [{"id": 5, "url": "https://x/5"}, {"id": 6, "url": "https://x/6"}],
        })))
        .mount(server)
        .await;
    get("/acme/_apis/wit/workitems", &[v, ("ids", "5,6"), ("fields", "System.Title,System.CreatedDate")])
        .respond_with(ok(az_list(json!([
            {"id": 5, "rev": 1, "fields": {"System.Title": "Login fails", "System.CreatedDate": "2025-03-11T08:00:00.123Z"}},
            {"id": 6, "rev": 3, "fields": {"System.Title": "Old", "System.CreatedDate": "2025-03-09T08:00:00Z"}},
        ]))))
        .mount(server)
        .await;
}

#[tokio::test]
async fn azure_devops_session_pages_filters_and_errors() {
    let azure = MockServer::start().await;
    mount_azure(&azure).await;
    let Some(app) =
        spawn_against(Engine::Sqlite, "http://127.0.0.1:9", "http://127.0.0.1:9", &azure.uri(), |_| {}).await
    else {
        return;
    };
    let org = format!("{}/acme", azure.uri());
    let body =
        assert_envelope(post_pat(&app, json!({"pat": AZ_TOKEN, "provider": "Azure Devops"})).await, 400, "BAD_REQUEST")
            .await;
    assert_eq!(body["detail"], "Missing required field: organization_url");
    for foreign in ["https://evil.example/acme", azure.uri().as_str()] {
        let response = post_pat(&app, json!({"pat": AZ_TOKEN, "provider": "azure", "organization_url": foreign})).await;
        assert_envelope(response, 400, "BAD_REQUEST").await;
    }
    let response = post_pat(&app, json!({"pat": "wrong", "provider": "azure_devops", "organization_url": org})).await;
    let body = assert_envelope(response, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "Failed to initialize Azure DevOps fetcher: bad credentials");

    let (session, username) =
        open_session(&app, json!({"pat": AZ_TOKEN, "provider": "Azure Devops", "organization_url": org})).await;
    assert_eq!(username, "jane@example.com");
    let repos = get_json(&app, &format!("/repos?session_id={session}")).await;
    assert_eq!(repos, json!({"repos": ["api", "app"], "repos_full": ["Platform/api", "Mobile/app"]}));
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
    let expected = "2025-03-11:\n - [Issue] in N/A: Login fails\n\n\
2025-03-14:\n - [Commit From Pr] in api: feat: auth (PR: Add auth)\n - [Pull Request] in api: Add auth (PR #1000)\n\n\
2025-03-16:\n - [Commit] in api: fix: token refresh\n";
    assert_eq!(out["actions"], expected, "{}", out["actions"].as_str().unwrap());
    assert_eq!(out["total_count"], 4);
    // A repository filter leaves the work items (which belong to no repository) out.
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&repo_filter=api")).await;
    assert_eq!(out["total_count"], 3);

    let broken = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/acme/_apis/connectionData"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "7"))
        .mount(&broken)
        .await;
    let Some(app) =
        spawn_against(Engine::Sqlite, "http://127.0.0.1:9", "http://127.0.0.1:9", &broken.uri(), |_| {}).await
    else {
        return;
    };
    let org = format!("{}/acme", broken.uri());
    let response = post_pat(&app, json!({"pat": AZ_TOKEN, "provider": "azure", "organization_url": org})).await;
    let body = assert_envelope(response, 502, "EXTERNAL_SERVICE_ERROR").await;
    assert_eq!(body["detail"], "Upstream Azure DevOps error: HTTP 503");
}

// ---------------------------------------------------------------------------------------------
// Sessions: expiry, the shared Redis store
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_expire_after_the_ttl() {
    let github = MockServer::start().await;
    mount_github(&github).await;
    let Some(app) = spawn_against(Engine::Sqlite, &github.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |s| {
        s.gitrecap.session_ttl = Duration::from_secs(1)
    })
    .await
    else {
        return;
    };
    let (session, _) = open_session(&app, json!({"pat": GH_TOKEN})).await;
    assert_eq!(app.get(&format!("/repos?session_id={session}")).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for route in ["/repos", "/actions"] {
        let body = assert_envelope(app.get(&format!("{route}?session_id={session}")).await, 404, "NOT_FOUND").await;
        assert_eq!(body["detail"], "Session not found");
    }
}

#[tokio::test]
async fn redis_sessions_are_shared_by_instances_and_expire() {
    let Some(redis) = redis_url() else { return };
    let github = MockServer::start().await;
    mount_github(&github).await;
    let prefix = unique_prefix();
    let configure = |ttl: u64| {
        let (redis, prefix) = (redis.clone(), prefix.clone());
        move |s: &mut Settings| {
            s.redis_url = Some(redis);
            s.redis_key_prefix = prefix;
            s.gitrecap.session_ttl = Duration::from_secs(ttl);
        }
    };
    let none = "http://127.0.0.1:9";
    let Some(a) = spawn_against(Engine::Sqlite, &github.uri(), none, none, configure(3)).await else { return };
    let Some(b) = spawn_against(Engine::Sqlite, &github.uri(), none, none, configure(3)).await else { return };
    let opened = std::time::Instant::now();
    let (session, _) = open_session(&a, json!({"pat": GH_TOKEN})).await;

    // In Redis: one key under the prefix, expiring with the session, holding no readable token.
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:gitrecap:session:*")).query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!((1..=3000).contains(&ttl_ms), "{ttl_ms}");
    let stored: String = redis::cmd("GET").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!(!stored.contains(GH_TOKEN) && stored.contains("octocat"), "{stored}");

    // The other instance serves it.
    let repos = get_json(&b, &format!("/repos?session_id={session}")).await;
    assert_eq!(repos["repos"], json!(["api", "web"]));
    let out = get_json(&b, &format!("/actions?session_id={session}&{WINDOW}")).await;
    assert_eq!(out["actions"], GITHUB_ACTIONS);

    // Gone everywhere once the TTL has passed.
    tokio::time::sleep(Duration::from_millis(3400).saturating_sub(opened.elapsed())).await;
    for app in [&a, &b] {
        let body = assert_envelope(app.get(&format!("/repos?session_id={session}")).await, 404, "NOT_FOUND").await;
        assert_eq!(body["detail"], "Session not found");
    }
}

// ---------------------------------------------------------------------------------------------
// Trimming
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn actions_are_trimmed_oldest_first_to_the_token_budget() {
    let github = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user"))
        .respond_with(ok(json!({"login": "octocat"})))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/user/repos"))
        .respond_with(ok(json!([{"name": "api", "full_name": "octocat/api", "owner": {"login": "octocat"}}])))
        .mount(&github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/repos/octocat/api/pulls"))
        .respond_with(ok(json!([])))
        .mount(&github)
        .await;
    Mock::given(method("GET")).and(path("/api/v3/issues")).respond_with(ok(json!([]))).mount(&github).await;
    // Twelve commits, newest first, one per hour on 2025-03-14.
    let commits: Vec<Value> = (0..12)
        .rev()
        .map(|i| {
            gh_commit(
                &format!("sha{i:02}"),
                "octocat",
                &format!("2025-03-14T{i:02}:00:00Z"),
                &format!("change number {i:02}"),
            )
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/api/v3/repos/octocat/api/commits"))
        .respond_with(ok(Value::Array(commits)))
        .mount(&github)
        .await;

    let line = |i: usize| format!(" - [Commit] in api: change number {i:02}");
    let tokens = |range: std::ops::Range<usize>| range.map(|i| count_tokens(&line(i))).sum::<usize>();
    for (kept, budget) in [(5, tokens(7..12)), (11, tokens(1..12)), (12, tokens(0..12))] {
        let Some(app) = spawn_against(Engine::Sqlite, &github.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |s| {
            s.gitrecap.max_history_tokens = budget
        })
        .await
        else {
            return;
        };
        let (session, _) = open_session(&app, json!({"pat": GH_TOKEN})).await;
        let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
        let trimmed = 12 - kept;
        assert_eq!(
            (out["total_count"].clone(), out["trimmed_count"].clone()),
            (json!(12), json!(trimmed)),
            "budget {budget}"
        );
        let expected: Vec<String> = (trimmed..12).map(line).collect();
        assert_eq!(out["actions"], format!("2025-03-14:\n{}\n", expected.join("\n")));
        let message = match trimmed {
            0 => Value::Null,
            1 => json!(
                "We're running the free version with a maximum token limit for contextual input. To stay within this limit, we automatically trimmed 1 older Git actionable from the context. We hope you understand!"
            ),
            n => json!(format!(
                "We're running the free version with a maximum token limit for contextual input. To stay within this limit, we automatically trimmed {n} older Git actionables from the context. We hope you understand!"
            )),
        };
        assert_eq!(out["message"], message);
    }
}

// ---------------------------------------------------------------------------------------------
// The `local` provider, and the JSON activity
// ---------------------------------------------------------------------------------------------

async fn insert_commit(
    app: &TestApp,
    repo_id: Uuid,
    sha: &str,
    (name, email): (&str, &str),
    date: &str,
    title: &str,
    body: Option<&str>,
) {
    let date = OffsetDateTime::parse(date, &Rfc3339).unwrap();
    // These SHAs are not real ones and only the provider reads them (by repository and date): on
    // SQLite, whose commits also carry a lookup key, any key will do.
    let (key_column, key) = match app.state.db.engine() {
        recap_server::db::Engine::Sqlite => (", sha_key", ", 0"),
        recap_server::db::Engine::Postgres => ("", ""),
    };
    let sql = format!(
        "INSERT INTO commits (repo_id, sha, author_name, author_email, committer_name, committer_email, commit_date, \
         message_title, message_body, additions, deletions, files_changed, is_merge, parent_count, ingested_at\
         {key_column}) VALUES ($1, $2, $3, $4, $3, $4, $5, $6, $7, 1, 0, 1, false, 1, $8{key})"
    );
    on_db!(&app.state.db, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(repo_id)
        .bind(sha)
        .bind(name)
        .bind(email)
        .bind(date)
        .bind(title)
        .bind(body)
        .bind(OffsetDateTime::now_utc())
        .execute(pool)
        .await
        .map(|_| ()))
    .expect("insert a commit");
}

engine_tests!(local_provider_reads_ingested_commits_of_member_projects);

async fn local_provider_reads_ingested_commits_of_member_projects(engine: Engine) {
    let none = "http://127.0.0.1:9";
    let Some(app) = spawn_against(engine, none, none, none, |_| {}).await else { return };
    let ada = app.signed_in("ada@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let response = app
        .post_as("/api/v1/projects", &ada.access_token)
        .json(&json!({"name": "Core", "slug": "core"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let project: Value = response.json().await.unwrap();
    let project_id = project["id"].as_str().unwrap().to_owned();
    let response = app
        .post_as(&format!("/api/v1/projects/{project_id}/repos"), &ada.access_token)
        .json(&json!({"name": "api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let repo_id = Uuid::parse_str(response.json::<Value>().await.unwrap()["id"].as_str().unwrap()).unwrap();

    let ada_author = ("Ada Lovelace", "ada@example.com");
    insert_commit(&app, repo_id, "s1", ada_author, "2025-03-14T09:00:00Z", "feat: engine", Some("Adds the engine."))
        .await;
    insert_commit(&app, repo_id, "s2", ("Ada", "ADA@example.com"), "2025-03-16T23:30:00.5Z", "fix: carry", None).await;
    insert_commit(&app, repo_id, "s3", ada_author, "2025-03-17T00:30:00Z", "after the window", None).await;
    insert_commit(
        &app,
        repo_id,
        "s4",
        ("Charles Babbage", "charles@example.com"),
        "2025-03-15T10:00:00+02:00",
        "docs: notes",
        None,
    )
    .await;
    insert_commit(&app, repo_id, "s5", ada_author, "2025-03-09T23:59:59Z", "before the window", None).await;

    // A bad credential; a key without `read:repos`.
    let body = assert_envelope(
        post_pat(&app, json!({"pat": "not-a-token", "provider": "local"})).await,
        401,
        "AUTHENTICATION_ERROR",
    )
    .await;
    assert_eq!(body["detail"], "Failed to initialize Recap fetcher: bad credentials");
    let key = |scopes: &str| {
        let request = app
            .post_as("/api/v1/api-keys", &ada.access_token)
            .json(&json!({"name": format!("k {scopes}"), "scopes": scopes}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()["full_key"].as_str().unwrap().to_owned()
        }
    };
    let sync_only = key("sync:commits").await;
    assert_envelope(post_pat(&app, json!({"pat": sync_only, "provider": "recap"})).await, 403, "AUTHORIZATION_ERROR")
        .await;

    // Ada, by access token or by API key: her repositories and her own commits.
    let (session, username) = open_session(&app, json!({"pat": ada.access_token, "provider": "local"})).await;
    assert_eq!(username, "ada@example.com");
    let (key_session, _) = open_session(&app, json!({"pat": key("read:repos").await, "provider": "Recap"})).await;
    let expected = "2025-03-14:\n - [Commit] in api: feat: engine\n\nAdds the engine.\n\n2025-03-16:\n - [Commit] in api: fix: carry\n";
    for session in [&session, &key_session] {
        let repos = get_json(&app, &format!("/repos?session_id={session}")).await;
        assert_eq!(repos, json!({"repos": ["api"], "repos_full": ["core/api"]}));
        let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}")).await;
        assert_eq!(out["actions"], expected, "{}", out["actions"]);
    }
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&authors=Charles%20Babbage")).await;
    assert_eq!(out["actions"], "2025-03-15:\n - [Commit] in api: docs: notes\n");
    let out = get_json(
        &app,
        &format!(
            "/actions?session_id={session}&{WINDOW}&repo_filter=core/api&authors=charles@example.com,ada@example.com"
        ),
    )
    .await;
    assert_eq!(out["total_count"], 3);
    let out = get_json(&app, &format!("/actions?session_id={session}&{WINDOW}&repo_filter=other")).await;
    assert_eq!(out["total_count"], 0);

    // Bob is in no project: nothing, even when he names Ada.
    let (bob_session, _) = open_session(&app, json!({"pat": bob.access_token, "provider": "local"})).await;
    assert_eq!(get_json(&app, &format!("/repos?session_id={bob_session}")).await["repos"], json!([]));
    let out = get_json(&app, &format!("/actions?session_id={bob_session}&{WINDOW}&authors=ada@example.com")).await;
    assert_eq!(out, json!({"actions": "", "message": null, "trimmed_count": 0, "total_count": 0}));

    // The JSON variant: a project (every author), paginated; outsiders get 404, anonymous 401.
    let path = format!("/api/v1/activity?project_id={project_id}&{WINDOW}");
    let page: Value = app.get_as(&path, &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!((page["total"].clone(), page["page"].clone(), page["pages"].clone()), (json!(3), json!(1), json!(1)));
    let shas: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["sha"].as_str().unwrap()).collect();
    assert_eq!(shas, ["s1", "s4", "s2"]);
    assert_eq!(
        page["items"][1],
        json!({"type": "commit", "repo": "api", "message": "docs: notes", "timestamp": "2025-03-15T08:00:00Z",
               "sha": "s4", "pr_number": null, "pr_title": null, "author": "Charles Babbage"})
    );
    let page: Value = app
        .get_as(&format!("{path}&size=2&page=2&authors=ada@example.com"), &ada.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (page["total"].clone(), page["pages"].clone(), page["items"][0]["sha"].clone()),
        (json!(2), json!(1), json!(null))
    );
    let page: Value =
        app.get_as(&format!("{path}&size=1&page=2"), &ada.access_token).send().await.unwrap().json().await.unwrap();
    assert_eq!((page["pages"].clone(), page["items"][0]["sha"].clone()), (json!(3), json!("s4")));
    let body = assert_envelope(app.get_as(&path, &bob.access_token).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Project not found");
    assert_envelope(app.get(&path).await, 401, "AUTHENTICATION_ERROR").await;
    assert_envelope(
        app.get_as("/api/v1/activity?project_id=not-a-uuid", &ada.access_token).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    let body = assert_envelope(app.get("/api/v1/activity").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "session_id"]));
    assert_envelope(
        app.get_as(&format!("{path}&size=500"), &ada.access_token).send().await.unwrap(),
        422,
        "VALIDATION_ERROR",
    )
    .await;
    // …and of a session, with no bearer token needed.
    let page = get_json(&app, &format!("/api/v1/activity?session_id={session}&{WINDOW}")).await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["message"], "feat: engine\n\nAdds the engine.");
    let body = assert_envelope(app.get("/api/v1/activity?session_id=gone").await, 404, "NOT_FOUND").await;
    assert_eq!(body["detail"], "Session not found");

    // Signing out revokes what the session was opened with.
    let response = app.post_as("/api/v1/auth/logout", &ada.access_token).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let body =
        assert_envelope(app.get(&format!("/repos?session_id={session}")).await, 401, "AUTHENTICATION_ERROR").await;
    assert_eq!(body["detail"], "Upstream Recap error: bad credentials");
}

// ---------------------------------------------------------------------------------------------
// The real Git Recap frontend's calls, replayed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_git_recap_frontend_works_against_recap() {
    let github = MockServer::start().await;
    mount_github(&github).await;
    // GitHub's token endpoint: a POST with the frontend app's credentials.
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(header("accept", "application/json"))
        .and(body_string_contains(format!("client_id={FRONTEND_CLIENT_ID}").as_str()))
        .and(body_string_contains(format!("client_secret={FRONTEND_CLIENT_SECRET}").as_str()))
        .and(body_string_contains("code=code-123"))
        .respond_with(ok(json!({"access_token": GH_TOKEN, "token_type": "bearer", "scope": "read:user"})))
        .expect(1)
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(body_string_contains("code=spent"))
        .respond_with(ok(
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
        ))
        .mount(&github)
        .await;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(body_string_contains("code=boom"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&github)
        .await;
    let Some(app) =
        spawn_against(Engine::Sqlite, &github.uri(), "http://127.0.0.1:9", "http://127.0.0.1:9", |_| {}).await
    else {
        return;
    };
    let origin = "http://localhost:3000";
    let browser = |request: reqwest::RequestBuilder| request.header("origin", origin);

    // 1. The OAuth callback (`app` may literally be "undefined").
    let response =
        browser(app.client.get(app.url("/external-signup?app=undefined&accessToken=code-123&provider=GitHub")))
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    let signup: Value = response.json().await.unwrap();
    assert_eq!(signup["username"], "octocat");
    let oauth_session = signup["session_id"].as_str().unwrap().to_owned();

    // 2. `POST /pat` without a Content-Type of its own: the browser labels the string text/plain.
    let response = browser(app.client.post(app.url("/pat")))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(format!(r#"{{"pat":"{GH_TOKEN}","session_id":""}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    let pat: Value = response.json().await.unwrap();
    assert_eq!(pat["username"], "octocat");
    let session = pat["session_id"].as_str().unwrap().to_owned();
    assert_ne!(session, oauth_session);

    for session in [&session, &oauth_session] {
        // 3. `/repos?session_id=${sessionId}` (not encoded by the frontend).
        let response = browser(app.client.get(app.url(&format!("/repos?session_id={session}")))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let repos: Value = response.json().await.unwrap();
        assert_eq!(repos["repos"], json!(["api", "web"]));

        // 4. `/actions` with URLSearchParams: dates as YYYY-MM-DD, lists comma-joined (%2C).
        let query = format!(
            "session_id={session}&start_date=2025-03-10&end_date=2025-03-16&repo_filter=api%2Cweb&authors=octocat"
        );
        let response = browser(app.client.get(app.url(&format!("/actions?{query}")))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let out: Value = response.json().await.unwrap();
        let without_other = GITHUB_ACTIONS.replace("2025-03-12:\n - [Issue] in other: Elsewhere\n\n", "");
        assert_eq!(out["actions"], without_other.as_str());
        assert_eq!(
            (out["message"].clone(), out["trimmed_count"].clone(), out["total_count"].clone()),
            (Value::Null, json!(0), json!(5))
        );
    }

    // A spent code, a failing GitHub, another provider, a missing parameter.
    let response = app.get("/external-signup?app=recap&accessToken=spent&provider=github").await;
    let body = assert_envelope(response, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "Failed to retrieve access token");
    assert_eq!(body["error"]["details"]["error"], "bad_verification_code");
    let body = assert_envelope(
        app.get("/external-signup?app=recap&accessToken=boom&provider=GitHub").await,
        502,
        "EXTERNAL_SERVICE_ERROR",
    )
    .await;
    assert_eq!(body["detail"], "Error fetching token from GitHub");
    let body =
        assert_envelope(app.get("/external-signup?app=recap&accessToken=x&provider=GitLab").await, 400, "BAD_REQUEST")
            .await;
    assert_eq!(body["detail"], "Unsupported provider");
    let body =
        assert_envelope(app.get("/external-signup?app=recap&provider=GitHub").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "accessToken"]));

    // Errors carry CORS headers too, so the browser can read them.
    let response = browser(app.client.get(app.url("/repos?session_id=expired"))).send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
    assert_envelope(response, 404, "NOT_FOUND").await;

    // The routes are documented.
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for route in ["/pat", "/external-signup", "/repos", "/actions", "/api/v1/activity"] {
        assert!(doc["paths"][route].is_object(), "{route} is not in the OpenAPI document");
    }
    assert_eq!(doc["paths"]["/pat"]["post"]["tags"][0], "gitrecap");
}
