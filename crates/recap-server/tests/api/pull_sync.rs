//! Pull sync (`POST /api/v1/repos/{id}/sync`, the `repo.pull_sync` job and its schedule) against
//! real git repositories made with the git command line.

use std::path::{Path, PathBuf};

use axum::Router;
use serde_json::{Value, json};

use recap_server::jobs::{self, Enqueue, run_pending_jobs};
use recap_server::sync::pull::PullSyncDue;

use crate::{
    engine_tests,
    helpers::{Engine, SignedIn, TestApp, assert_envelope, spawn_with},
    sync::{add_member, api_key, create_project, json_of},
};

engine_tests!(
    a_local_repository_is_pulled_then_only_its_new_commits,
    pull_requests_are_checked_before_anything_is_queued,
    a_failing_pull_marks_the_repository_and_keeps_the_data,
    the_schedule_queues_due_repositories_once,
    a_connection_test_lists_branches_or_says_why_not,
);

/// `git` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "Ada@Example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "Ada@Example.com")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Commits `n` changes to a few files (lines added and removed) on the current branch.
fn commit_changes(dir: &Path, from: usize, n: usize) {
    for i in from..from + n {
        let file = dir.join(format!("file{}.txt", i % 3));
        let lines: String = (0..(i % 7 + 1)).map(|l| format!("line {l} of change {i}\n")).collect();
        std::fs::write(&file, lines).unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("Change {i}\n\nBody of change {i}.")]);
    }
}

/// Sum of `git log --numstat --no-renames` additions and deletions.
fn numstat_totals(dir: &Path) -> (i64, i64) {
    let out = git(dir, &["log", "--numstat", "--no-renames", "--format="]);
    out.lines().filter_map(|l| l.split_once('\t')).fold((0, 0), |(a, d), (add, rest)| {
        let del = rest.split('\t').next().unwrap();
        (a + add.parse::<i64>().unwrap_or(0), d + del.parse::<i64>().unwrap_or(0))
    })
}

struct Setup {
    app: TestApp,
    owner: SignedIn,
    project: String,
    /// Where the test's repositories live (inside `PULL_LOCAL_ROOTS`).
    root: tempfile::TempDir,
}

async fn setup(engine: Engine) -> Option<Setup> {
    let root = tempfile::tempdir().unwrap();
    let roots = vec![root.path().join("remotes")];
    let cache = root.path().join("cache");
    std::fs::create_dir_all(&roots[0]).unwrap();
    let app = spawn_with(
        engine,
        move |s| {
            s.jobs.workers = 0;
            s.jobs.scheduler = false;
            s.jobs.retry_base = std::time::Duration::ZERO;
            s.sync.pull.local_roots = roots;
            s.sync.pull.cache_dir = cache;
        },
        Router::new(),
    )
    .await?;
    let owner = app.signed_in("owner@example.com").await;
    let project = create_project(&app, &owner.access_token, "pulled").await;
    Some(Setup { app, owner, project, root })
}

impl Setup {
    /// A new working repository under the allowed root, with `n` commits on `main`.
    fn remote(&self, name: &str, n: usize) -> PathBuf {
        let dir = self.root.path().join("remotes").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        commit_changes(&dir, 0, n);
        dir
    }

    async fn create_repo(&self, body: Value) -> Value {
        let response = self
            .app
            .post_as(&format!("/api/v1/projects/{}/repos", self.project), &self.owner.access_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(response, 201).await
    }

    async fn request_sync(&self, repo: &str, body: Option<Value>, token: &str) -> reqwest::Response {
        let request = self.app.post_as(&format!("/api/v1/repos/{repo}/sync"), token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap()
    }

    async fn status(&self, repo: &str) -> Value {
        let path = format!("/api/v1/sync/projects/{}/repos/{repo}/status", self.project);
        json_of(self.app.get_as(&path, &self.owner.access_token).send().await.unwrap(), 200).await
    }

    async fn stats(&self, repo: &str) -> Value {
        let path = format!("/api/v1/repos/{repo}/stats");
        json_of(self.app.get_as(&path, &self.owner.access_token).send().await.unwrap(), 200).await
    }

    /// The `details` of the repository's audit rows with `action`, newest first.
    async fn audit(&self, repo: &str, action: &str) -> Vec<String> {
        let path = format!("/api/v1/audit?action={action}&resource_id={repo}&size=100");
        let page = json_of(self.app.get_as(&path, &self.owner.access_token).send().await.unwrap(), 200).await;
        page["items"].as_array().unwrap().iter().map(|e| e["details"].as_str().unwrap_or_default().to_owned()).collect()
    }

    async fn drain(&self) -> usize {
        run_pending_jobs(&self.app.state).await.unwrap()
    }
}

async fn a_local_repository_is_pulled_then_only_its_new_commits(engine: Engine) {
    let Some(s) = setup(engine).await else { return };
    let t = s.owner.access_token.clone();
    let dir = s.remote("service", 25);
    let repo =
        s.create_repo(json!({"name": "service", "sync_method": "pull", "remote_url": dir.to_str().unwrap()})).await;
    let id = repo["id"].as_str().unwrap().to_owned();
    assert_eq!(repo["status"], "pending");

    let first = json_of(s.request_sync(&id, None, &t).await, 202).await;
    assert_eq!(first["queued"], true);
    assert_eq!(first["job_state"], "pending");
    assert_eq!(first["repo_id"], id.as_str());
    // Asking again while it is queued answers with the same job.
    let again = json_of(s.request_sync(&id, Some(json!({})), &t).await, 202).await;
    assert_eq!(again["queued"], false);
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(s.drain().await, 1, "one sync job ran");

    let head = git(&dir, &["rev-parse", "HEAD"]);
    let status = s.status(&id).await;
    assert_eq!(status["status"], "healthy", "{status}");
    assert_eq!(status["total_commits"], 25);
    assert_eq!(status["last_ingested_sha"], head.as_str());
    assert!(status["last_sync_at"].is_string());
    assert!(status["error_message"].is_null());
    let (additions, deletions) = numstat_totals(&dir);
    let stats = s.stats(&id).await;
    assert_eq!(
        (stats["total_additions"].as_i64(), stats["total_deletions"].as_i64()),
        (Some(additions), Some(deletions))
    );
    // Stored like a push: e-mails lower-cased, titles and bodies split.
    let commit =
        json_of(s.app.get_as(&format!("/api/v1/repos/{id}/commits/{head}"), &t).send().await.unwrap(), 200).await;
    assert_eq!(commit["author_email"], "ada@example.com");
    assert_eq!(commit["message_title"], "Change 24");

    // A merged branch and two more commits: only those are read (the audit row counts them).
    git(&dir, &["checkout", "-q", "-b", "topic"]);
    commit_changes(&dir, 100, 2);
    git(&dir, &["checkout", "-q", "main"]);
    commit_changes(&dir, 201, 1);
    git(&dir, &["merge", "-q", "--no-ff", "-m", "Merge topic", "topic"]);
    assert_eq!(json_of(s.request_sync(&id, None, &t).await, 202).await["queued"], true);
    s.drain().await;
    let status = s.status(&id).await;
    assert_eq!(status["total_commits"], git(&dir, &["rev-list", "--count", "HEAD"]).parse::<i64>().unwrap());
    assert_eq!(status["total_commits"], 29);
    assert_eq!(status["last_ingested_sha"], git(&dir, &["rev-parse", "HEAD"]).as_str());
    let synced = s.audit(&id, "sync_commits").await;
    assert_eq!(synced[0], "Synced 4 commits: 4 inserted, 0 skipped, 0 errors (client_version recap pull sync)");
    assert_eq!(s.stats(&id).await["merge_commits"], 1);

    // Nothing new: the sync still happens (and counts as one), nothing is written.
    s.request_sync(&id, None, &t).await;
    s.drain().await;
    assert_eq!(s.audit(&id, "sync_commits").await.len(), synced.len());
    assert_eq!(s.status(&id).await["status"], "healthy");

    // `force` reads everything again, through a file:// URL this time; all of it is skipped.
    let url = format!("file://{}", dir.display());
    let patched = s.app.patch_as(&format!("/api/v1/repos/{id}"), &t).json(&json!({"remote_url": url})).send().await;
    json_of(patched.unwrap(), 200).await;
    json_of(s.request_sync(&id, Some(json!({"force": true})), &t).await, 202).await;
    s.drain().await;
    let synced = s.audit(&id, "sync_commits").await;
    assert_eq!(synced[0], "Synced 29 commits: 0 inserted, 29 skipped, 0 errors (client_version recap pull sync)");
    assert_eq!(s.status(&id).await["total_commits"], 29);
    let triggers = s.audit(&id, "trigger_sync").await;
    assert_eq!(triggers.len(), 5, "{triggers:?}");
    assert!(triggers[0].contains("full pull sync of 'service'"), "{triggers:?}");

    // The branch reset back to older history: nothing to read, still a healthy sync.
    git(&dir, &["reset", "-q", "--hard", "HEAD~3"]);
    let before = s.status(&id).await["last_sync_at"].clone();
    s.request_sync(&id, None, &t).await;
    s.drain().await;
    let status = s.status(&id).await;
    assert_eq!((status["status"].as_str(), status["total_commits"].as_i64()), (Some("healthy"), Some(29)), "{status}");
    assert_ne!(status["last_sync_at"], before);
    assert_eq!(s.audit(&id, "sync_commits").await.len(), synced.len());

    // Deleting the repository removes its cached clone.
    let cache = s.root.path().join("cache").join(format!("{id}.git"));
    assert!(cache.join("HEAD").is_file());
    assert_eq!(s.app.delete_as(&format!("/api/v1/repos/{id}"), &t).send().await.unwrap().status(), 204);
    assert!(!cache.exists());
}

async fn pull_requests_are_checked_before_anything_is_queued(engine: Engine) {
    let Some(s) = setup(engine).await else { return };
    let t = s.owner.access_token.clone();
    let dir = s.remote("api", 2);
    let pull = s.create_repo(json!({"name": "api", "sync_method": "pull", "remote_url": dir.to_str().unwrap()})).await;
    let pull = pull["id"].as_str().unwrap().to_owned();

    let push = s.create_repo(json!({"name": "pushed", "sync_method": "push_client"})).await;
    let body = assert_envelope(s.request_sync(push["id"].as_str().unwrap(), None, &t).await, 400, "BAD_REQUEST").await;
    assert_eq!(body["detail"], "Repository is not configured for pull-based sync (current method: push_client)");

    let cases = [
        (json!({"name": "no-remote", "sync_method": "pull"}), "Repository has no remote_url to pull from"),
        (json!({"name": "etc", "sync_method": "pull", "remote_url": "/etc"}), "outside the directories"),
        (json!({"name": "ssh", "sync_method": "pull", "remote_url": "git@github.com:acme/api.git"}), "SSH"),
        (
            json!({"name": "local", "sync_method": "pull", "remote_url": "https://127.0.0.1/acme/api.git"}),
            "not allowed",
        ),
        (
            json!({"name": "plain", "sync_method": "pull", "remote_url": "http://93.184.216.34/a.git",
                   "credentials": {"token": "t0ken"}}),
            "only sent to an https:// remote",
        ),
    ];
    for (repo, message) in cases {
        let id = s.create_repo(repo.clone()).await["id"].as_str().unwrap().to_owned();
        let body = assert_envelope(s.request_sync(&id, None, &t).await, 400, "BAD_REQUEST").await;
        assert!(body["detail"].as_str().unwrap().contains(message), "{repo}: {body}");
        assert!(!body.to_string().contains("t0ken"));
    }

    // A stored token stays with its host: moving the remote elsewhere drops it unless new
    // credentials come with the change.
    let tokened = s
        .create_repo(json!({"name": "tokened", "sync_method": "pull", "remote_url": "https://git.example.com/a.git",
                            "credentials": {"token": "t0ken"}}))
        .await;
    assert_eq!(tokened["has_credentials"], true);
    let tokened = tokened["id"].as_str().unwrap().to_owned();
    for (url, kept) in [("https://git.example.com/renamed.git", true), ("https://attacker.example.net/a.git", false)] {
        let r = s.app.patch_as(&format!("/api/v1/repos/{tokened}"), &t).json(&json!({"remote_url": url})).send().await;
        assert_eq!(json_of(r.unwrap(), 200).await["has_credentials"], kept, "{url}");
    }
    let r = s
        .app
        .patch_as(&format!("/api/v1/repos/{tokened}"), &t)
        .json(&json!({"remote_url": "https://git.example.org/a.git", "credentials": {"token": "new"}}))
        .send()
        .await;
    assert_eq!(json_of(r.unwrap(), 200).await["has_credentials"], true);

    // The body is optional but checked.
    let body =
        assert_envelope(s.request_sync(&pull, Some(json!({"force": "yes"})), &t).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "force"]));
    assert_envelope(s.request_sync(&pull, Some(json!({"forse": true})), &t).await, 422, "VALIDATION_ERROR").await;

    // Roles: a viewer may not, an outsider sees nothing, a read-only API key lacks the scope.
    let viewer = s.app.signed_in("viewer@example.com").await;
    add_member(&s.app, &t, &s.project, &viewer.email, "viewer").await;
    assert_envelope(s.request_sync(&pull, None, &viewer.access_token).await, 403, "AUTHORIZATION_ERROR").await;
    let outsider = s.app.signed_in("outsider@example.com").await;
    assert_envelope(s.request_sync(&pull, None, &outsider.access_token).await, 404, "NOT_FOUND").await;
    let reader = api_key(&s.app, &t, "read:repos").await;
    assert_envelope(s.request_sync(&pull, None, &reader).await, 403, "AUTHORIZATION_ERROR").await;
    let writer = api_key(&s.app, &t, "sync:commits").await;
    let maintainer = s.app.signed_in("maintainer@example.com").await;
    add_member(&s.app, &t, &s.project, &maintainer.email, "maintainer").await;
    assert_envelope(s.request_sync("not-a-uuid", None, &t).await, 404, "NOT_FOUND").await;

    // None of the refusals queued anything; the allowed requests queue one job.
    assert_eq!(json_of(s.request_sync(&pull, None, &writer).await, 202).await["queued"], true);
    assert_eq!(json_of(s.request_sync(&pull, None, &maintainer.access_token).await, 202).await["queued"], false);
    assert_eq!(s.drain().await, 1);
    assert_eq!(s.status(&pull).await["total_commits"], 2);
}

async fn a_failing_pull_marks_the_repository_and_keeps_the_data(engine: Engine) {
    let Some(s) = setup(engine).await else { return };
    let t = s.owner.access_token.clone();
    let dir = s.remote("flaky", 3);
    let repo = s
        .create_repo(
            json!({"name": "flaky", "sync_method": "pull", "remote_url": dir.to_str().unwrap(), "branch": "develop"}),
        )
        .await;
    let id = repo["id"].as_str().unwrap().to_owned();

    // The branch does not exist: an error with the reason after each of the 3 attempts; nothing stored.
    let job = json_of(s.request_sync(&id, None, &t).await, 202).await;
    assert_eq!(s.drain().await, 3);
    let job = jobs::store::by_id(&s.app.state.db, job["job_id"].as_str().unwrap().parse().unwrap()).await.unwrap();
    assert_eq!(job.unwrap().state, "dead");
    let status = s.status(&id).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error_message"], "Pull sync failed: branch 'develop' not found in the remote");
    assert_eq!(status["total_commits"], 0);

    // `main` falls back to the default branch (here `trunk`); then the remote stops being a repository.
    git(&dir, &["branch", "-m", "main", "trunk"]);
    let patched = s.app.patch_as(&format!("/api/v1/repos/{id}"), &t).json(&json!({"branch": "main"})).send().await;
    json_of(patched.unwrap(), 200).await;
    // The failed job used its attempts (no backoff in these tests): a new one is queued.
    assert_eq!(json_of(s.request_sync(&id, None, &t).await, 202).await["queued"], true);
    s.drain().await;
    let status = s.status(&id).await;
    assert_eq!(status["status"], "healthy", "{status}");
    assert_eq!(status["total_commits"], 3);

    // Queued while it is a repository; by the time the job runs it no longer is.
    json_of(s.request_sync(&id, Some(json!({"force": true})), &t).await, 202).await;
    std::fs::remove_dir_all(dir.join(".git")).unwrap();
    s.drain().await;
    let status = s.status(&id).await;
    assert_eq!(status["status"], "error");
    let message = status["error_message"].as_str().unwrap();
    assert!(message.starts_with("Pull sync failed: "), "{message}");
    // What was stored stays.
    assert_eq!(status["total_commits"], 3);
    assert_eq!(s.stats(&id).await["total_commits"], 3);
}

async fn the_schedule_queues_due_repositories_once(engine: Engine) {
    let Some(s) = setup(engine).await else { return };
    let dir = s.remote("nightly", 4);
    let due = s.create_repo(json!({"name": "due", "sync_method": "pull", "remote_url": dir.to_str().unwrap()})).await;
    let hourly = s
        .create_repo(json!({"name": "hourly", "sync_method": "pull", "remote_url": dir.to_str().unwrap(),
                            "sync_frequency": "0 0 1 1 *"}))
        .await;
    let pushed = s.create_repo(json!({"name": "pushed", "sync_method": "push_client"})).await;
    // A remote that is not a repository: its failed sync also counts as the interval's sync.
    let not_a_repo = s.root.path().join("remotes/not-a-repo");
    std::fs::create_dir_all(&not_a_repo).unwrap();
    let broken = s
        .create_repo(json!({"name": "broken", "sync_method": "pull", "remote_url": not_a_repo.to_str().unwrap()}))
        .await;

    let schedule = || async {
        let mut tx = s.app.state.db.begin().await.unwrap();
        jobs::enqueue(&mut tx, &PullSyncDue {}, Enqueue::default()).await.unwrap();
        tx.commit().await.unwrap();
        s.drain().await
    };
    // The schedule's job, then one sync per never-synced pull repository (the broken one fails
    // for good at once: a refused remote is not retried).
    assert_eq!(schedule().await, 4);
    let status = s.status(broken["id"].as_str().unwrap()).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error_message"], "Pull sync failed: remote_url: not a git repository");
    assert!(status["last_sync_at"].is_string(), "{status}");
    for repo in [&due, &hourly] {
        let status = s.status(repo["id"].as_str().unwrap()).await;
        assert_eq!((status["status"].as_str(), status["total_commits"].as_i64()), (Some("healthy"), Some(4)));
    }
    assert_eq!(s.status(pushed["id"].as_str().unwrap()).await["status"], "pending");
    // Just synced: nothing is due (the interval is an hour; the yearly tick is ahead).
    assert_eq!(schedule().await, 1);
}

async fn a_connection_test_lists_branches_or_says_why_not(engine: Engine) {
    let Some(s) = setup(engine).await else { return };
    let t = s.owner.access_token.clone();
    let dir = s.remote("listed", 2);
    git(&dir, &["branch", "topic"]);
    let test = |body: Value| {
        let request = s.app.post_as("/api/v1/repos/test-connection", &t).json(&body);
        async move { json_of(request.send().await.unwrap(), 200).await }
    };
    let path = dir.to_str().unwrap();

    let ok = test(json!({"remote_url": path, "branch": "topic"})).await;
    assert_eq!(
        ok,
        json!({"success": true, "message": "Connected: branch 'topic' found", "available_branches": ["main", "topic"]})
    );
    let ok = test(json!({"remote_url": format!("file://{path}")})).await;
    assert_eq!((ok["success"].as_bool(), ok["message"].as_str()), (Some(true), Some("Connected: branch 'main' found")));

    let missing = test(json!({"remote_url": path, "branch": "develop"})).await;
    assert_eq!(missing["success"], false);
    assert_eq!(missing["message"], "Connected, but branch 'develop' does not exist");
    assert_eq!(missing["available_branches"], json!(["main", "topic"]));

    // `main` missing: a sync falls back to the default branch, and the test says so.
    git(&dir, &["branch", "-m", "main", "trunk"]);
    let fallback = test(json!({"remote_url": path})).await;
    assert_eq!(fallback["success"], true, "{fallback}");
    assert_eq!(fallback["message"], "Connected: no branch 'main', a sync reads the default branch 'trunk'");

    for (remote, reason) in [
        ("/etc", "outside the directories"),
        ("git@github.com:acme/api.git", "SSH"),
        ("https://10.0.0.7/acme/api.git", "not allowed"),
    ] {
        let refused = test(json!({"remote_url": remote})).await;
        assert_eq!((refused["success"].as_bool(), refused["available_branches"].is_null()), (Some(false), true));
        assert!(refused["message"].as_str().unwrap().contains(reason), "{remote}: {refused}");
    }
    std::fs::create_dir_all(s.root.path().join("remotes/empty")).unwrap();
    let empty = s.root.path().join("remotes/empty");
    let unreachable = test(json!({"remote_url": empty.to_str().unwrap()})).await;
    assert_eq!(unreachable["success"], false);
    assert_eq!(unreachable["message"], "remote_url: not a git repository");
    let plain = test(json!({"remote_url": "http://93.184.216.34/a.git", "credentials": {"token": "t0ken"}})).await;
    assert_eq!(plain["success"], false);
    assert!(plain["message"].as_str().unwrap().contains("only sent to an https:// remote"));
    assert!(!plain.to_string().contains("t0ken"));

    // The body is required and checked; the caller must be signed in (an API key needs sync:commits).
    let r = s.app.post_as("/api/v1/repos/test-connection", &t).json(&json!({"branch": "main"})).send().await.unwrap();
    assert_envelope(r, 422, "VALIDATION_ERROR").await;
    let r = s
        .app
        .post_as("/api/v1/repos/test-connection", &t)
        .json(&json!({"remote_url": path, "credentials": "t0ken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(r, 422, "VALIDATION_ERROR").await["detail"][0]["loc"], json!(["body", "credentials"]));
    let r = s.app.post_raw("/api/v1/repos/test-connection", json!({"remote_url": path}).to_string()).await;
    assert_envelope(r, 401, "AUTHENTICATION_ERROR").await;
    let reader = api_key(&s.app, &t, "read:repos").await;
    let r = s
        .app
        .post_as("/api/v1/repos/test-connection", &reader)
        .json(&json!({"remote_url": path}))
        .send()
        .await
        .unwrap();
    assert_envelope(r, 403, "AUTHORIZATION_ERROR").await;

    // 20 tests per user and minute: 9 were answered above (refusals before the limit do not count).
    for _ in 0..11 {
        assert_eq!(test(json!({"remote_url": "/etc"})).await["success"], false);
    }
    let r =
        s.app.post_as("/api/v1/repos/test-connection", &t).json(&json!({"remote_url": "/etc"})).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_envelope(r, 429, "RATE_LIMIT_EXCEEDED").await;
}
