//! The `recap` binary as a user runs it: real processes, real signals.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_recap");

/// A command with a clean environment: only what the test sets reaches the binary, and it runs
/// in `dir` so no `.env` of the developer's is picked up.
fn recap(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("LOG_LEVEL", "warn");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("recap.db").display())
}

#[test]
fn help_describes_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(recap(dir.path()).arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["serve", "db", "routes", "openapi"] {
        assert!(help.contains(command), "{command} missing from --help:\n{help}");
    }
    for args in [&["serve", "--help"][..], &["db", "--help"], &["db", "downgrade", "--help"], &["routes", "--help"]] {
        let out = run(recap(dir.path()).args(args));
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).lines().count() > 3, "{args:?}");
    }
}

#[test]
fn a_wrong_flag_or_value_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["serve", "--bogus"][..],
        &["serve", "--port", "not-a-port"],
        &["db", "downgrade", "--steps", "0"],
        &["db", "sideways"],
        &["frobnicate"],
    ] {
        let out = run(recap(dir.path()).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{err}");
    }
}

#[test]
fn invalid_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(recap(dir.path()).arg("serve").env("RATE_LIMIT_REQUESTS", "lots"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("RATE_LIMIT_REQUESTS"), "{}", text(&out.stderr));

    let out = run(recap(dir.path()).arg("serve").env("ENVIRONMENT", "production"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SECRET_KEY"), "{}", text(&out.stderr));

    let out = run(recap(dir.path()).arg("serve").env("ENVIRONMENT", "production").env("SECRET_KEY", "too-short"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("at least 32"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("too-short"), "the key itself is never printed");
}

#[test]
fn dotenv_file_is_read_but_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "RATE_LIMIT_PERIOD=soon\n").unwrap();
    let out = run(recap(dir.path()).args(["db", "current"]));
    assert!(text(&out.stderr).contains("RATE_LIMIT_PERIOD"), "{}", text(&out.stderr));
    let out = run(recap(dir.path()).args(["db", "current"]).env("RATE_LIMIT_PERIOD", "30"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn routes_and_openapi_print_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(recap(dir.path()).arg("routes"));
    assert!(out.status.success());
    let table = text(&out.stdout);
    let health = table.lines().find(|l| l.split_whitespace().nth(1) == Some("/health")).expect("a /health row");
    assert!(health.starts_with("GET"), "{health}");
    assert!(health.split_whitespace().count() > 2, "the row has a summary: {health}");

    let out = run(recap(dir.path()).arg("openapi"));
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let out = run(recap(dir.path()).args(["routes", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for row in rows.iter().filter(|r| {
        r["path"] != "/api/v1/openapi.json"
            && r["path"] != "/api/docs"
            && r["path"] != "/docs"
            && !r["path"].as_str().unwrap().starts_with("/ws/")
    }) {
        let path = row["path"].as_str().unwrap();
        let method = row["method"].as_str().unwrap().to_lowercase();
        assert!(doc["paths"][path][&method].is_object(), "{method} {path} not in the document");
    }
}

fn db_cycle(dir: &Path, database_url: &str) {
    let db = |args: &[&str]| {
        let out = run(recap(dir).arg("db").args(args).env("DATABASE_URL", database_url));
        assert!(out.status.success(), "db {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(db(&["current"]).starts_with("none"));
    assert!(db(&["history"]).contains("pending"));
    assert!(db(&["upgrade"]).contains("applied"));
    assert!(db(&["upgrade"]).contains("up to date"));
    let current = db(&["current"]);
    assert!(current.split_whitespace().next().unwrap().parse::<i64>().is_ok(), "{current}");
    assert!(!db(&["history"]).contains("pending"));
    assert!(db(&["downgrade", "--steps", "100"]).contains("reverted"));
    assert!(db(&["current"]).starts_with("none"));
    assert!(db(&["downgrade"]).contains("nothing to revert"));
    assert!(db(&["upgrade"]).contains("applied"));
}

#[test]
fn db_commands_go_up_down_and_up_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    db_cycle(dir.path(), &sqlite_url(dir.path()));
    assert!(dir.path().join("recap.db").exists());
}

#[test]
fn db_commands_go_up_down_and_up_on_postgres() {
    let Some(admin) = std::env::var("RECAP_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED on PostgreSQL: RECAP_TEST_POSTGRES_URL is not set");
        return;
    };
    let name = format!("recap_cli_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    };
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql(&format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').unwrap().0;
    let dir = tempfile::tempdir().unwrap();
    db_cycle(dir.path(), &format!("{base}/{name}"));
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

/// A running `recap serve` on a free port, killed if the test fails.
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

fn start_server(dir: &Path, envs: &[(&str, &str)]) -> Server {
    start_server_logging_to(dir, envs, Stdio::null())
}

fn start_server_logging_to(dir: &Path, envs: &[(&str, &str)], stderr: Stdio) -> Server {
    let mut cmd = recap(dir);
    cmd.args(["serve", "--port", "0"]).env("DATABASE_URL", sqlite_url(dir)).stdout(Stdio::piped()).stderr(stderr);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.to_owned();
        }
    };
    Server { child, address }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "the server did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_creates_the_database_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path(), &[]);
    assert!(dir.path().join("recap.db").exists(), "the SQLite file is created on start");
    assert!(dir.path().join("recap.secret").exists(), "a development key is generated next to it");
    let body: serde_json::Value =
        reqwest::get(format!("{}/health", server.address)).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "healthy");

    sigterm(&server.child);
    let status = wait_exit(&mut server.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

#[tokio::test]
async fn two_processes_share_one_rate_limit_budget_through_redis() {
    let Some(redis) = std::env::var("RECAP_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED with Redis: RECAP_TEST_REDIS_URL is not set");
        return;
    };
    let prefix = format!("recap-cli-test-{}", std::process::id());
    let envs = [("REDIS_URL", redis.as_str()), ("REDIS_KEY_PREFIX", prefix.as_str()), ("RATE_LIMIT_REQUESTS", "5")];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = start_server(dir_a.path(), &envs);
    let b = start_server(dir_b.path(), &envs);
    assert_ne!(a.address, b.address);

    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for server in [&a, &b, &a, &b, &a, &b, &a] {
        let response = client.get(format!("{}/api/v1", server.address)).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server =
        start_server_logging_to(dir.path(), &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "info")], Stdio::from(log));
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/nope", server.address))
        .header("x-request-id", "cli-log-check-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    sigterm(&server.child);
    assert_eq!(wait_exit(&mut server.child, Duration::from_secs(10)).code(), Some(0));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let request_lines: Vec<_> = lines.iter().filter(|l| l["span"]["request_id"] == "cli-log-check-42").collect();
    assert!(!request_lines.is_empty(), "{logs}");
    assert!(request_lines.iter().any(|l| l["fields"]["status"] == 404), "{logs}");
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_every_instance_within_a_second() {
    let Some(redis) = std::env::var("RECAP_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED with Redis: RECAP_TEST_REDIS_URL is not set");
        return;
    };
    // Two instances on one database (as behind a load balancer) and one Redis.
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("recap-cli-revoke-{}", std::process::id());
    let envs = [
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("SECRET_KEY", "shared-secret-key-for-both-instances-0123456789"),
    ];
    let a = start_server(dir.path(), &envs);
    let b = start_server(dir.path(), &envs);
    let client = reqwest::Client::new();

    let body = serde_json::json!({"email": "ada@example.com", "password": "correct-horse-42"});
    let r = client.post(format!("{}/api/v1/auth/register", a.address)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let tokens: serde_json::Value =
        client.post(format!("{}/api/v1/auth/login", a.address)).json(&body).send().await.unwrap().json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    // B has seen (and cached) the session.
    let me = client.get(format!("{}/api/v1/auth/me", b.address)).bearer_auth(access).send().await.unwrap();
    assert_eq!(me.status(), 200);

    let r = client.post(format!("{}/api/v1/auth/logout", a.address)).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let revoked_at = Instant::now();
    loop {
        let status =
            client.get(format!("{}/api/v1/auth/me", b.address)).bearer_auth(access).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(revoked_at.elapsed() < Duration::from_secs(1), "instance B still accepts a revoked session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn user_commands_create_list_and_change_roles() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let user = |args: &[&str]| run(recap(dir.path()).arg("user").args(args).env("DATABASE_URL", &url));
    assert!(run(recap(dir.path()).args(["db", "upgrade"]).env("DATABASE_URL", &url)).status.success());

    let out = user(&["create", "--email", "Root@Example.com", "--password", "correct-horse-42", "--role", "admin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("root@example.com (admin)"));
    let out = user(&["create", "--email", "bob@example.com", "--password", "correct-horse-42"]);
    assert!(text(&out.stdout).contains("(member)"));

    let out = user(&["create", "--email", "bob@example.com", "--password", "correct-horse-42"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already registered"));
    let out = user(&["create", "--email", "weak@example.com", "--password", "short"]);
    assert!(!out.status.success());
    assert!(!text(&out.stderr).contains("short"), "the password is not echoed");
    let out = user(&["create", "--email", "x@example.com", "--password", "correct-horse-42", "--role", "king"]);
    assert_eq!(out.status.code(), Some(2));

    let out = user(&["set-role", "bob@example.com", "--role", "admin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&user(&["list"]).stdout);
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows.iter().any(|r| r.contains("bob@example.com") && r.contains("admin")), "{list}");
    assert!(!user(&["set-role", "nobody@example.com", "--role", "admin"]).status.success());
}
