//! Scoring, identities and leaderboards over commits pushed through the real ingestion route.

use std::collections::{BTreeMap, BTreeSet};

use recap_server::league::scoring::{Coefficients, metrics};
use serde_json::{Value, json};

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn},
};

struct Setup {
    owner: SignedIn,
    project_id: String,
    repo_id: String,
}

async fn setup(app: &TestApp) -> Setup {
    let owner = app.signed_in("owner@example.com").await;
    let project: Value = app
        .post_as("/api/v1/projects", &owner.access_token)
        .json(&json!({"name": "League", "slug": "league"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project_id = project["id"].as_str().unwrap().to_owned();
    let repo: Value = app
        .post_as(&format!("/api/v1/projects/{project_id}/repos"), &owner.access_token)
        .json(&json!({"name": "core", "sync_method": "push_client"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Setup { owner, project_id, repo_id: repo["id"].as_str().unwrap().to_owned() }
}

/// A deterministic history: six authors (one a bot, one with two e-mails), varied sizes, titles
/// that trigger BLK/TOV, spread over days.
fn history(n: usize) -> Vec<Value> {
    let authors = [
        ("Ada", "ada@example.com"),
        ("Ada L", "ada@home.example"),
        ("Bob", "bob@example.com"),
        ("Cy", "cy@example.com"),
        ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com"),
        ("Dee", "dee@example.com"),
    ];
    let titles =
        ["Add parser", "Fix crash on empty input", "WIP: refactor", "Update docs", "Revert bad change", "bump deps"];
    (0..n)
        .map(|i| {
            let (name, email) = authors[(i * 7 + i / 3) % authors.len()];
            // Spread over January to May, so ranges cover whole months and parts of months.
            let (month, day) = (1 + (i % 5), 1 + (i % 27));
            json!({
                "sha": format!("{:040x}", 0xabc000 + i),
                "author_name": name, "author_email": email,
                "committer_name": name, "committer_email": email,
                "commit_date": format!("2026-{month:02}-{day:02}T{:02}:15:00Z", i % 24),
                "message_title": titles[i % titles.len()],
                "message_body": null,
                "additions": (i * 37) % 1500, "deletions": (i * 13) % 700, "files_changed": i % 6,
                "is_merge": false, "parent_count": 1,
            })
        })
        .collect()
}

async fn push(app: &TestApp, s: &Setup, commits: &[Value]) {
    // Batches as large as the route takes: a test with many commits stays under its rate limit.
    for batch in commits.chunks(1000) {
        let response = app
            .post_as(
                &format!("/api/v1/sync/projects/{}/repos/{}/commits", s.project_id, s.repo_id),
                &s.owner.access_token,
            )
            .json(&json!({"commits": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
}

/// The all-time board by impact, every person on one page.
fn board_path(s: &Setup) -> String {
    format!("/api/v1/projects/{}/leaderboard?period=all&metric=impact&size=100", s.project_id)
}

/// Who counts when no identities are set up: everyone but bots, by e-mail.
fn not_bot(email: &str) -> Option<String> {
    (!email.contains("[bot]")).then(|| email.to_owned())
}

/// A board item's person: its identity's display name, else its e-mail.
fn person(item: &Value) -> String {
    if item["identity_id"].is_null() {
        item["email"].as_str().unwrap().to_owned()
    } else {
        item["display_name"].as_str().unwrap().to_owned()
    }
}

/// Sets the project's coefficients (200 expected).
async fn put_scoring(app: &TestApp, s: &Setup, coefficients: &Coefficients) {
    let response = app
        .client
        .put(app.url(&format!("/api/v1/projects/{}/scoring", s.project_id)))
        .bearer_auth(&s.owner.access_token)
        .json(&json!({"scoring_coefficients": coefficients}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[derive(Default, Debug, PartialEq)]
struct Expected {
    commits: i64,
    additions: i64,
    deletions: i64,
    pts: i64,
    reb: i64,
    ast: i64,
    blk: i64,
    tov: i64,
    impact: f64,
    days: BTreeSet<String>,
}

/// The direct computation the board must equal.
fn expected(
    commits: &[Value],
    c: &Coefficients,
    person_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, Expected> {
    let mut people: BTreeMap<String, Expected> = BTreeMap::new();
    for commit in commits {
        let Some(person) = person_of(commit["author_email"].as_str().unwrap()) else { continue };
        let m = metrics(
            c,
            commit["additions"].as_i64().unwrap(),
            commit["deletions"].as_i64().unwrap(),
            commit["files_changed"].as_i64().unwrap(),
            commit["message_title"].as_str().unwrap(),
        );
        let e = people.entry(person).or_default();
        e.commits += 1;
        e.additions += commit["additions"].as_i64().unwrap();
        e.deletions += commit["deletions"].as_i64().unwrap();
        e.pts += m.pts;
        e.reb += m.reb;
        e.ast += m.ast;
        e.blk += m.blk;
        e.tov += m.tov;
        e.impact += m.impact;
        e.days.insert(commit["commit_date"].as_str().unwrap()[..10].to_owned());
    }
    people
}

fn check_board(board: &Value, want: &BTreeMap<String, Expected>, key_of: impl Fn(&Value) -> String) {
    let items = board["items"].as_array().unwrap();
    assert_eq!(items.len(), want.len(), "{board}");
    for item in items {
        let key = key_of(item);
        let e = want.get(&key).unwrap_or_else(|| panic!("unexpected person {key}"));
        assert_eq!(item["commits"], e.commits, "{key}");
        assert_eq!(item["additions"], e.additions, "{key}");
        assert_eq!(item["deletions"], e.deletions, "{key}");
        assert_eq!((item["pts"].as_i64(), item["reb"].as_i64()), (Some(e.pts), Some(e.reb)), "{key}");
        assert_eq!(
            (item["ast"].as_i64(), item["blk"].as_i64(), item["tov"].as_i64()),
            (Some(e.ast), Some(e.blk), Some(e.tov)),
            "{key}"
        );
        assert!(
            (item["impact"].as_f64().unwrap() - e.impact).abs() < 0.01,
            "{key}: {} vs {}",
            item["impact"],
            e.impact
        );
        assert_eq!(item["active_days"], e.days.len(), "{key}");
    }
}

engine_tests!(
    leaderboard_equals_a_direct_computation,
    a_scoring_change_during_pushes_counts_every_commit_once_with_the_new_coefficients,
    rebuilds_and_deletions_read_large_repositories_whole,
    scoring_and_identities_rules
);

async fn leaderboard_equals_a_direct_computation(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let s = setup(&app).await;
    let commits = history(240);
    push(&app, &s, &commits[..120]).await;
    let board_path = board_path(&s);

    let board: Value = app.get_json(&board_path, &s.owner.access_token).await;
    check_board(&board, &expected(&commits[..120], &Coefficients::default(), not_bot), person);
    // Never stale: right after the next ingestion the figures include it.
    push(&app, &s, &commits[120..]).await;
    let board: Value = app.get_json(&board_path, &s.owner.access_token).await;
    let want = expected(&commits, &Coefficients::default(), not_bot);
    check_board(&board, &want, person);
    // Sorted by the metric, ranks 1..n.
    let impacts: Vec<f64> = board["items"].as_array().unwrap().iter().map(|i| i["impact"].as_f64().unwrap()).collect();
    assert!(impacts.windows(2).all(|w| w[0] >= w[1]), "{impacts:?}");
    assert_eq!(board["items"][0]["rank"], 1);
    assert!(!board.to_string().contains("dependabot"), "bots are excluded");

    // Identities merge Ada's two e-mails into one person.
    let response = app
        .post_as(&format!("/api/v1/projects/{}/identities", s.project_id), &s.owner.access_token)
        .json(&json!({"display_name": "Ada Lovelace", "emails": ["ADA@example.com", "ada@home.example"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let merged = |email: &str| match email {
        "ada@example.com" | "ada@home.example" => Some("Ada Lovelace".to_owned()),
        e if e.contains("[bot]") => None,
        e => Some(e.to_owned()),
    };
    let board: Value = app.get_json(&board_path, &s.owner.access_token).await;
    check_board(&board, &expected(&commits, &Coefficients::default(), merged), person);

    // New coefficients apply to everything at once.
    let coefficients =
        Coefficients { commit_base: 3, deletions_weight: 1.5, max_additions_cap: 200, ..Coefficients::default() };
    put_scoring(&app, &s, &coefficients).await;
    let board: Value = app.get_json(&board_path, &s.owner.access_token).await;
    check_board(&board, &expected(&commits, &coefficients, merged), person);

    // Other metrics and day ranges: within a month, across whole months with partial months at
    // either end, and open at one end.
    for (since, until) in [
        (Some("2026-03-01"), Some("2026-03-05")),
        (Some("2026-01-15"), Some("2026-04-30")),
        (Some("2026-02-01"), Some("2026-05-10")),
        (Some("2026-01-31"), Some("2026-03-02")),
        (None, Some("2026-03-31")),
        (Some("2026-02-20"), None),
    ] {
        let mut query = String::new();
        if let Some(since) = since {
            query.push_str(&format!("&since={since}"));
        }
        if let Some(until) = until {
            query.push_str(&format!("&until={until}"));
        }
        let path = format!("/api/v1/projects/{}/leaderboard?metric=commits&size=100{query}", s.project_id);
        let by_commits: Value = app.get_json(&path, &s.owner.access_token).await;
        let in_range: Vec<Value> = commits
            .iter()
            .filter(|c| {
                let day = &c["commit_date"].as_str().unwrap()[..10];
                since.is_none_or(|since| day >= since) && until.is_none_or(|until| day <= until)
            })
            .cloned()
            .collect();
        check_board(&by_commits, &expected(&in_range, &coefficients, merged), person);
        let counts: Vec<i64> =
            by_commits["items"].as_array().unwrap().iter().map(|i| i["commits"].as_i64().unwrap()).collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{query}");
    }
    // Paging.
    let page_path = format!("/api/v1/projects/{}/leaderboard?metric=impact&size=2&page=2", s.project_id);
    let page: Value = app.get_json(&page_path, &s.owner.access_token).await;
    assert_eq!(page["items"][0]["rank"], 3);
    assert_eq!(page["total"], board["total"]);

    // One commit's scoring, under the project's current coefficients, by its id or its SHA.
    let commit = &commits[1];
    assert_eq!(commit["message_title"], "Fix crash on empty input");
    let id = format!("{}:{}", s.repo_id, commit["sha"].as_str().unwrap());
    let want = metrics(
        &coefficients,
        commit["additions"].as_i64().unwrap(),
        commit["deletions"].as_i64().unwrap(),
        commit["files_changed"].as_i64().unwrap(),
        commit["message_title"].as_str().unwrap(),
    );
    for path_id in [id.clone(), commit["sha"].as_str().unwrap().to_owned()] {
        let response = app
            .get_as(&format!("/api/v1/scoring/commits/{path_id}/metrics"), &s.owner.access_token)
            .send()
            .await
            .unwrap();
        let scored: Value = response.json().await.unwrap();
        assert_eq!(scored["commit_id"], id.as_str(), "{scored}");
        assert_eq!(scored["message_title"], commit["message_title"]);
        let figures = ["pts", "reb", "ast", "blk", "tov"].map(|k| scored[k].as_i64().unwrap());
        assert_eq!(figures, [want.pts, want.reb, want.ast, want.blk, want.tov], "{scored}");
        assert!((scored["impact_score"].as_f64().unwrap() - want.impact).abs() < 1e-9);
        assert!(scored["breakdown"]["pts"].as_str().unwrap().starts_with("commit_base 3 + "), "{scored}");
        assert!(scored["breakdown"]["blk"].as_str().unwrap().contains("'fix'"), "{scored}");
    }
    let outsider = app.signed_in("outsider@example.com").await;
    let response =
        app.get_as(&format!("/api/v1/scoring/commits/{id}/metrics"), &outsider.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    let response =
        app.get_as("/api/v1/scoring/commits/not-a-commit/metrics", &s.owner.access_token).send().await.unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;

    // A second repository with the same people on the same days counts on the same boards;
    // deleting it takes exactly its commits off them again (active days shared with the first
    // repository stay).
    let second: Value = app
        .post_as(&format!("/api/v1/projects/{}/repos", s.project_id), &s.owner.access_token)
        .json(&json!({"name": "second", "sync_method": "push_client"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = Setup {
        owner: s.owner.clone(),
        project_id: s.project_id.clone(),
        repo_id: second["id"].as_str().unwrap().into(),
    };
    let all = history(300);
    push(&app, &second, &all[240..]).await;
    let boards = [
        ("period=all&size=100", None),
        ("since=2026-01-15&until=2026-04-30&size=100", Some(("2026-01-15", "2026-04-30"))),
    ];
    let in_range = |commits: &[Value], range: Option<(&str, &str)>| -> Vec<Value> {
        commits
            .iter()
            .filter(|c| {
                let day = &c["commit_date"].as_str().unwrap()[..10];
                range.is_none_or(|(since, until)| day >= since && day <= until)
            })
            .cloned()
            .collect()
    };
    for (expected_commits, label) in [(&all[..], "with the second repository"), (&all[..240], "after deleting it")] {
        for (query, range) in boards {
            let path = format!("/api/v1/projects/{}/leaderboard?{query}", s.project_id);
            let board: Value = app.get_json(&path, &s.owner.access_token).await;
            assert!(board["items"].is_array(), "{label}: {board}");
            check_board(&board, &expected(&in_range(expected_commits, range), &coefficients, merged), person);
        }
        if label == "with the second repository" {
            let r = app.delete_as(&format!("/api/v1/repos/{}", second.repo_id), &s.owner.access_token).send().await;
            assert_eq!(r.unwrap().status(), 204);
        }
    }

    // Deleting the last repository takes everything off the boards.
    let response = app.delete_as(&format!("/api/v1/repos/{}", s.repo_id), &s.owner.access_token).send().await.unwrap();
    assert_eq!(response.status(), 204);
    for query in ["period=all", "since=2026-01-15&until=2026-04-30"] {
        let path = format!("/api/v1/projects/{}/leaderboard?{query}", s.project_id);
        let board: Value = app.get_json(&path, &s.owner.access_token).await;
        assert_eq!((board["total"].as_i64(), board["items"].as_array().map(Vec::len)), (Some(0), Some(0)), "{board}");
    }
}

/// Pushes running while the coefficients change: none fails, and afterwards every commit counts
/// once, scored with the new coefficients (a push must not add old-coefficient metrics to rollups
/// the change has just rebuilt, nor be left out of the rebuild).
async fn a_scoring_change_during_pushes_counts_every_commit_once_with_the_new_coefficients(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let s = setup(&app).await;
    let commits = history(600);
    push(&app, &s, &commits[..200]).await;

    let coefficients = Coefficients { commit_base: 7, fix_bonus: 9, ..Coefficients::default() };
    let mut pushes = Vec::new();
    for batch in commits[200..].chunks(50) {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/api/v1/sync/projects/{}/repos/{}/commits", s.project_id, s.repo_id)),
            s.owner.access_token.clone(),
        );
        let body = json!({ "commits": batch });
        pushes.push(tokio::spawn(async move { client.post(url).bearer_auth(token).json(&body).send().await.unwrap() }));
    }
    put_scoring(&app, &s, &coefficients).await;
    for task in pushes {
        let response = task.await.unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    let board_path = board_path(&s);
    let board = app.get_json(&board_path, &s.owner.access_token).await;
    check_board(&board, &expected(&commits, &coefficients, not_bot), person);
}

/// A rebuild and a repository deletion read a repository's commits in pages on SQLite (10,000
/// commits each, in commit date order): with more commits than a page, many of them at the very
/// same time across a page boundary, every commit counts once.
async fn rebuilds_and_deletions_read_large_repositories_whole(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let s = setup(&app).await;
    let commits: Vec<Value> = history(10_500)
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            // Three instants only: thousands of commits share each one.
            c["commit_date"] = json!(format!("2026-02-0{}T10:00:00Z", 1 + i % 3));
            c
        })
        .collect();
    push(&app, &s, &commits).await;
    let coefficients = Coefficients { commit_base: 4, ..Coefficients::default() };
    put_scoring(&app, &s, &coefficients).await;
    let board_path = board_path(&s);
    let board = app.get_json(&board_path, &s.owner.access_token).await;
    check_board(&board, &expected(&commits, &coefficients, not_bot), person);

    // Deleting the repository takes every one of its commits off the board.
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/repos/{}", s.repo_id)))
        .bearer_auth(&s.owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let board = app.get_json(&board_path, &s.owner.access_token).await;
    assert_eq!(board["items"], json!([]), "{board}");
}

async fn scoring_and_identities_rules(engine: Engine) {
    let Some(app) = spawn(engine).await else { return };
    let s = setup(&app).await;
    let scoring: Value = app
        .get_as(&format!("/api/v1/scoring/projects/{}/config", s.project_id), &s.owner.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(scoring["scoring_coefficients"]["deletions_weight"], 0.6);
    assert_eq!(scoring["created_at"], Value::Null);

    let bad = app
        .client
        .put(app.url(&format!("/api/v1/projects/{}/scoring", s.project_id)))
        .bearer_auth(&s.owner.access_token)
        .json(&json!({"scoring_coefficients": {"wip_penalty": 5}}))
        .send()
        .await
        .unwrap();
    let body = assert_envelope(bad, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "scoring_coefficients", "wip_penalty"]));

    for query in ["period=year", "metric=loc", "since=yesterday", "size=0", "since=-0001-01-01", "until=10000-01-01"] {
        let response = app
            .get_as(&format!("/api/v1/projects/{}/leaderboard?{query}", s.project_id), &s.owner.access_token)
            .send()
            .await
            .unwrap();
        assert_envelope(response, 422, "VALIDATION_ERROR").await;
    }
    let empty: Value = app
        .get_as(&format!("/api/v1/projects/{}/leaderboard?period=week", s.project_id), &s.owner.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((empty["total"].as_i64(), empty["pages"].as_i64()), (Some(0), Some(0)));
    assert!(empty["since"].as_str().is_some());

    // Outsiders see nothing; viewers read but cannot write.
    let outsider = app.signed_in("out@example.com").await;
    let response = app
        .get_as(&format!("/api/v1/projects/{}/leaderboard", s.project_id), &outsider.access_token)
        .send()
        .await
        .unwrap();
    assert_envelope(response, 404, "NOT_FOUND").await;
    app.post_as(&format!("/api/v1/projects/{}/members", s.project_id), &s.owner.access_token)
        .json(&json!({"email": "out@example.com", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.get_as(&format!("/api/v1/projects/{}/leaderboard", s.project_id), &outsider.access_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let response = app
        .post_as(&format!("/api/v1/projects/{}/identities", s.project_id), &outsider.access_token)
        .json(&json!({"display_name": "X", "emails": ["x@example.com"]}))
        .send()
        .await
        .unwrap();
    assert_envelope(response, 403, "AUTHORIZATION_ERROR").await;

    let create = |emails: Value| {
        app.post_as(&format!("/api/v1/projects/{}/identities", s.project_id), &s.owner.access_token)
            .json(&json!({"display_name": "Bob", "emails": emails}))
            .send()
    };
    let first: Value = create(json!(["bob@example.com"])).await.unwrap().json().await.unwrap();
    assert_envelope(create(json!(["BOB@example.com", "b2@example.com"])).await.unwrap(), 409, "ALREADY_EXISTS").await;
    assert_envelope(create(json!([])).await.unwrap(), 422, "VALIDATION_ERROR").await;
    let list: Value = app
        .get_as(&format!("/api/v1/projects/{}/identities", s.project_id), &s.owner.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["emails"], json!(["bob@example.com"]));
    let id = first["id"].as_str().unwrap();
    let path = format!("/api/v1/projects/{}/identities/{id}", s.project_id);
    assert_eq!(app.delete_as(&path, &s.owner.access_token).send().await.unwrap().status(), 204);
    assert_envelope(app.delete_as(&path, &s.owner.access_token).send().await.unwrap(), 404, "NOT_FOUND").await;
}
