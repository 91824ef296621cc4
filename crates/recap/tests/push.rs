//! `recap push …` end to end: a real `recap serve` process, a git repository generated with the
//! `git` CLI, and the unmodified gitleague-client 0.1.0 from PyPI against the same server.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_recap");

fn recap(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("LOG_LEVEL", "warn");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> Server {
    start_server_with(dir, &[])
}

fn start_server_with(dir: &Path, envs: &[(&str, &str)]) -> Server {
    let mut cmd = recap(dir);
    cmd.envs(envs.iter().copied());
    cmd.args(["serve", "--port", "0"])
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("recap.db").display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_owned();
        }
    };
    Server { child, address }
}

/// What a pushing user sets up through the HTTP API: account, API key, project, push repository.
struct Setup {
    token: String,
    key: String,
    project: String,
    repo: String,
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn setup(address: &str, repo_name: &str) -> Setup {
    let http = reqwest::Client::new();
    let (email, password) = ("pusher@example.com", "correct-horse-42");
    let r = http.post(format!("{address}/api/v1/auth/register")).json(&json!({"email": email, "password": password}));
    json_of(r.send().await.unwrap(), 201).await;
    let r = http.post(format!("{address}/api/v1/auth/login")).json(&json!({"email": email, "password": password}));
    let token = json_of(r.send().await.unwrap(), 200).await["access_token"].as_str().unwrap().to_owned();
    let r = http.post(format!("{address}/api/v1/api-keys/")).bearer_auth(&token).json(&json!({"name": "push"}));
    let key = json_of(r.send().await.unwrap(), 201).await["full_key"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{address}/api/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "Demo", "slug": "demo"}));
    let project = json_of(r.send().await.unwrap(), 201).await["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{address}/api/v1/repos/projects/{project}/repos"))
        .bearer_auth(&token)
        .json(&json!({"name": repo_name, "sync_method": "push_client"}));
    let repo = json_of(r.send().await.unwrap(), 201).await["id"].as_str().unwrap().to_owned();
    Setup { token, key, project, repo }
}

async fn status(address: &str, s: &Setup) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{address}/api/v1/sync/projects/{}/repos/{}/status", s.project, s.repo))
        .bearer_auth(&s.token);
    json_of(r.send().await.unwrap(), 200).await
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(repo).args(args).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// Appends `n` commits (numbered from `from`) to `branch` with `git fast-import`: several files,
/// changing lines, dates with a +02:00 offset.
fn add_commits(repo: &Path, branch: &str, from: usize, n: usize) {
    let mut stream = String::new();
    let parent =
        Command::new("git").arg("-C").arg(repo).args(["rev-parse", "--verify", "-q", branch]).output().unwrap();
    let parent = text(&parent.stdout).trim().to_owned();
    for i in from..from + n {
        let message = format!("Commit number {i}\n\nBody of commit {i}.\n");
        let content: String = (0..(i % 7 + 1)).map(|l| format!("line {l} of version {i}\n")).collect();
        stream.push_str(&format!("commit refs/heads/{branch}\n"));
        stream.push_str(&format!(
            "committer Dev {} <Dev{}@Example.com> {} +0200\n",
            i % 3,
            i % 3,
            1_700_000_000 + i * 60
        ));
        stream.push_str(&format!("data {}\n{message}", message.len()));
        if i == from && !parent.is_empty() {
            stream.push_str(&format!("from {parent}\n"));
        }
        stream.push_str(&format!("M 100644 inline src/file{}.txt\ndata {}\n{content}\n", i % 5, content.len()));
    }
    let mut child =
        Command::new("git").arg("-C").arg(repo).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn new_repo(dir: &Path, branch: &str, commits: usize) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", branch]);
    add_commits(&repo, branch, 0, commits);
    repo
}

fn write_config(
    path: &Path,
    address: &str,
    key: Option<&str>,
    batch: usize,
    project: &str,
    repo_path: &Path,
    git_url: &str,
) {
    let key_line = key.map(|k| format!("api_key: \"{k}\"\n")).unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "api_url: \"{address}/\"\n{key_line}batch_size: {batch}\nmax_retries: 3\nprojects:\n  - name: Demo\n    project_id: \"{project}\"\n    repos:\n      - path: \"{}\"\n        git_url: \"{git_url}\"\n",
            repo_path.display()
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn push_sync_sends_the_whole_history_in_batches_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let a = &server.address;
    let s = setup(a, "demo-repo").await;
    // `trunk`, not `main`: the client falls back to the default branch.
    let repo = new_repo(dir.path(), "trunk", 250);
    let config = dir.path().join("repos.yaml");
    // The repository by name (an extension), the key from the environment.
    write_config(&config, a, None, 100, &s.project, &repo, "demo-repo");
    let push = |args: &[&str]| {
        recap(dir.path())
            .arg("push")
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RECAP_API_KEY", &s.key)
            .output()
            .unwrap()
    };

    let out = push(&["test"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("0 commits"), "{}", show(&out));

    let out = push(&["sync", "--dry-run"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stdout).matches("would send").count(), 250, "{}", show(&out));
    assert_eq!(status(a, &s).await["total_commits"], 0, "dry-run sends nothing");

    // Two of the three committers are one person: the .mailmap (in the work tree, not committed)
    // merges them before anything is sent.
    std::fs::write(repo.join(".mailmap"), "Dev Zero <dev0@example.com> <dev1@example.com>\n").unwrap();
    let out = push(&["sync"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("250 commits to send"), "{}", show(&out));
    let r = reqwest::Client::new().get(format!("{a}/api/v1/repos/{}/stats", s.repo)).bearer_auth(&s.token);
    let stats = json_of(r.send().await.unwrap(), 200).await;
    let mut authors: Vec<(String, String, i64)> = stats["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["author_email"].as_str().unwrap().into(),
                a["author_name"].as_str().unwrap().into(),
                a["commits"].as_i64().unwrap(),
            )
        })
        .collect();
    authors.sort();
    let expected_authors = vec![
        ("dev0@example.com".to_owned(), "Dev Zero".to_owned(), 167),
        ("dev2@example.com".to_owned(), "Dev 2".to_owned(), 83),
    ];
    assert_eq!(authors, expected_authors, "{stats}");
    assert!(text(&out.stdout).contains("main not found"), "{}", show(&out));
    let expected: u64 = git(&repo, &["rev-list", "--count", "trunk"]).parse().unwrap();
    let st = status(a, &s).await;
    assert_eq!(st["total_commits"], expected, "{st}");
    assert_eq!(st["last_ingested_sha"], git(&repo, &["rev-parse", "trunk"]), "{st}");

    // Nothing new: nothing is sent.
    let out = push(&["sync"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("0 commits to send"), "{}", show(&out));
    assert_eq!(status(a, &s).await["total_commits"], expected);

    // Five more: only those are sent, resuming from last_ingested_sha.
    add_commits(&repo, "trunk", 250, 5);
    let out = push(&["sync"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("5 commits to send"), "{}", show(&out));
    assert!(text(&out.stdout).contains("5 inserted, 0 skipped"), "{}", show(&out));
    assert_eq!(status(a, &s).await["total_commits"], expected + 5);

    // A wrong key fails (non-zero exit) and is not retried into oblivion.
    let out = recap(dir.path())
        .args(["push", "sync", "--api-key", "tgl_AAAAAAAA_wrongwrongwrongwrongwrongwrongwr", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    assert!(text(&out.stderr).contains("invalid API key"), "{}", show(&out));

    // scan reads the same history.
    let out = recap(dir.path()).args(["push", "scan"]).arg(&repo).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains(&format!("{} commits", expected + 5)), "{}", show(&out));
}

#[tokio::test]
async fn push_sync_falls_back_to_a_full_scan_when_the_server_sha_is_unknown_locally() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let a = &server.address;
    let s = setup(a, "r").await;
    // Another clone pushed a commit this one does not have.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q", "-b", "main"]);
    add_commits(&other, "main", 1000, 1);
    let config = dir.path().join("other.yaml");
    write_config(&config, a, Some(&s.key), 10, &s.project, &other, &s.repo);
    let out = recap(dir.path()).args(["push", "sync", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));

    let repo = new_repo(dir.path(), "main", 23);
    let config = dir.path().join("repos.yaml");
    write_config(&config, a, Some(&s.key), 10, &s.project, &repo, &s.repo);
    let out = recap(dir.path()).args(["push", "sync", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(text(&out.stdout).contains("full history"), "{}", show(&out));
    assert_eq!(status(a, &s).await["total_commits"], 24);

    // An unknown repository is a 404: reported, not retried, exit code 1; `test` says so too.
    write_config(&config, a, Some(&s.key), 10, &s.project, &repo, "no-such-repo");
    for command in ["test", "sync"] {
        let out = recap(dir.path()).args(["push", command, "--config"]).arg(&config).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(text(&out.stdout).contains("not found") || text(&out.stderr).contains("not found"), "{}", show(&out));
    }
    // No key anywhere: refused before anything is sent.
    write_config(&config, a, None, 10, &s.project, &repo, &s.repo);
    let out = recap(dir.path()).args(["push", "sync", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("no API key"), "{}", show(&out));
}

#[test]
fn push_init_writes_a_template_once_and_bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = recap(dir.path()).args(["push", "init"]).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let written = std::fs::read_to_string(dir.path().join("repos.yaml")).unwrap();
    assert!(written.contains("git_url") && written.contains("UUID"), "{written}");
    let out = recap(dir.path()).args(["push", "init"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("already exists"), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("repos.yaml")).unwrap(), written);

    std::fs::write(dir.path().join("bad.yaml"), format!("{written}\nsurprise: true\n")).unwrap();
    let out = recap(dir.path()).args(["push", "sync", "--config", "bad.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("surprise"), "{}", show(&out));
}

/// The virtualenv with gitleague-client 0.1.0, cached across runs; `None` when python3, venv,
/// pip or PyPI is unavailable.
fn gitleague_client() -> Option<PathBuf> {
    let home = std::env::var("HOME").ok()?;
    let venv = PathBuf::from(home).join(".cache/recap-gitleague-venv");
    let bin = venv.join("bin/gitleague-client");
    let version_ok = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() && text(&o.stdout).contains("0.1.0"))
    };
    if version_ok(&bin) {
        return Some(bin);
    }
    let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().is_ok_and(|o| o.status.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "gitleague-client==0.1.0"])
            .output()
            .is_ok_and(|o| o.status.success());
    (ok && version_ok(&bin)).then_some(bin)
}

#[tokio::test]
async fn the_real_gitleague_client_tests_and_syncs_a_repository() {
    let Some(client) = gitleague_client() else {
        println!("SKIPPED: python3 -m venv or `pip install gitleague-client==0.1.0` is unavailable");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let a = &server.address;
    let s = setup(a, "legacy").await;
    let repo = new_repo(dir.path(), "main", 130);
    let config = dir.path().join("repos.yaml");
    // As its README says: git_url is the repository UUID, api_url the server root.
    write_config(&config, a, Some(&s.key), 100, &s.project, &repo, &s.repo);
    let run = |args: &[&str]| {
        Command::new(&client)
            .args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env_remove("GITLEAGUE_API_KEY")
            .output()
            .unwrap()
    };

    let out = run(&["test"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = run(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let st = status(a, &s).await;
    // The original sends at most one batch per run: the newest batch_size commits.
    assert_eq!(st["total_commits"], 100, "{st}");
    assert_eq!(st["last_ingested_sha"], git(&repo, &["rev-parse", "main"]), "{st}");
    assert_eq!(st["status"], "healthy", "{st}");

    // A second run finds nothing new and still succeeds.
    let out = run(&["sync"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(status(a, &s).await["total_commits"], 100);
}

/// Pull sync in the real server: its in-process workers pick the job up, fetch the local remote
/// and ingest it; the status route shows the outcome.
#[tokio::test]
async fn recap_serve_pulls_a_repository_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let remotes = dir.path().join("remotes");
    std::fs::create_dir_all(&remotes).unwrap();
    let repo = new_repo(&remotes, "main", 120);
    let roots = remotes.to_str().unwrap().to_owned();
    let server = start_server_with(dir.path(), &[("PULL_LOCAL_ROOTS", &roots), ("JOB_POLL_INTERVAL", "100ms")]);
    let a = &server.address;
    let s = setup(a, "pushed").await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{a}/api/v1/projects/{}/repos", s.project))
        .bearer_auth(&s.token)
        .json(&json!({"name": "pulled", "sync_method": "pull", "remote_url": repo.to_str().unwrap()}));
    let pulled = json_of(r.send().await.unwrap(), 201).await["id"].as_str().unwrap().to_owned();
    let r = http.post(format!("{a}/api/v1/repos/{pulled}/sync")).bearer_auth(&s.token);
    assert_eq!(json_of(r.send().await.unwrap(), 202).await["queued"], true);

    let status_path = format!("{a}/api/v1/sync/projects/{}/repos/{pulled}/status", s.project);
    let started = std::time::Instant::now();
    let status = loop {
        let status = json_of(http.get(&status_path).bearer_auth(&s.token).send().await.unwrap(), 200).await;
        if status["status"] == "healthy" || status["status"] == "error" {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no sync within 30 s: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(status["status"], "healthy", "{status}");
    assert_eq!(status["total_commits"], 120);
    assert_eq!(status["last_ingested_sha"], git(&repo, &["rev-parse", "main"]));
}
