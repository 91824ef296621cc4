//! `recap worker` and `recap jobs` as an operator runs them: real processes, real signals, and the
//! database shared between them (SQLite file, or PostgreSQL when `RECAP_TEST_POSTGRES_URL` is set).

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_recap");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A database for one test: a SQLite file in `dir`, or a fresh PostgreSQL database.
struct TestDb {
    url: String,
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite(dir: &Path) -> TestDb {
        TestDb { url: format!("sqlite://{}", dir.join("recap.db").display()), pg: None }
    }

    fn postgres(tag: &str) -> Option<TestDb> {
        let Some(admin) = std::env::var("RECAP_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty()) else {
            eprintln!("SKIPPED on PostgreSQL: RECAP_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("recap_jobs_{tag}_{}", std::process::id());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').unwrap().0.to_owned();
        Some(TestDb { url: format!("{base}/{name}"), pg: Some((admin, name)) })
    }

    /// `SELECT` one row of numbers (PostgreSQL only).
    fn numbers(&self, sql: &str) -> Vec<i64> {
        let (admin, name) = self.pg.as_ref().expect("a PostgreSQL database");
        let base = admin.rsplit_once('/').unwrap().0;
        let out = Command::new("psql")
            .args([&format!("{base}/{name}"), "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        text(&out.stdout).trim().split('|').map(|n| n.parse().unwrap()).collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn psql(admin: &str, sql: &str) {
    let out = Command::new("psql").args([admin, "-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
}

/// `recap` with a clean environment, the test database and the settings every test here wants.
fn recap(dir: &Path, db: &TestDb, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .env("DATABASE_URL", &db.url)
        .env("SECRET_KEY", "a-shared-secret-key-for-these-worker-tests-0123")
        .env("JOBS_DEBUG_KINDS", "true")
        .env("JOB_POLL_INTERVAL", "50ms");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the binary runs");
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    out
}

/// A `recap worker` process, killed if the test fails.
struct Worker {
    child: Child,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_worker(dir: &Path, db: &TestDb, envs: &[(&str, &str)], workers: u32) -> Worker {
    let mut child = recap(dir, db, envs)
        .args(["worker", "--workers", &workers.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the worker starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the worker printed its start").unwrap();
    assert!(line.starts_with("worker running with"), "{line}");
    Worker { child }
}

fn jobs(dir: &Path, db: &TestDb, args: &[&str]) -> Vec<Value> {
    let out = run(recap(dir, db, &[]).args(["jobs", "list", "--json", "--limit", "100"]).args(args));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// The process id inside a worker id (`host:pid:run:wN`).
fn pid_of(locked_by: &str) -> String {
    locked_by.split(':').nth(1).unwrap_or_default().to_owned()
}

fn killed_worker_leaves_its_job_to_another(dir: &Path, db: &TestDb) {
    let lease = [("JOB_LEASE", "2s")];
    run(recap(dir, db, &[]).args(["db", "upgrade"]));
    let out = run(recap(dir, db, &[]).args(["jobs", "enqueue", "debug.sleep", "--payload", r#"{"ms": 3000}"#]));
    let id = text(&out.stdout).split_whitespace().next().unwrap().to_owned();

    let mut first = start_worker(dir, db, &lease, 1);
    let holder = wait_until("the first worker runs the job", Duration::from_secs(15), || {
        jobs(dir, db, &["--state", "running"]).into_iter().find(|j| j["id"] == id.as_str())
    });
    let first_worker = holder["locked_by"].as_str().unwrap().to_owned();
    assert_eq!(pid_of(&first_worker), first.child.id().to_string());
    assert_eq!(holder["attempts"], 1);
    // SIGKILL: no chance to finish or to give the job back.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(jobs(dir, db, &["--state", "running"]).len(), 1, "the job stays claimed until its lease ends");

    let mut second = start_worker(dir, db, &lease, 1);
    let done = wait_until("another worker completes the job", Duration::from_secs(30), || {
        jobs(dir, db, &["--state", "succeeded"]).into_iter().find(|j| j["id"] == id.as_str())
    });
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(pid_of(done["locked_by"].as_str().unwrap()), second.child.id().to_string(), "{done}");
    let error = done["last_error"].as_str().unwrap();
    assert!(error.contains("lease expired") && error.contains(&first_worker), "{error}");

    // SIGTERM stops a worker cleanly.
    sigterm(&second.child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the worker did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_killed_workers_job_is_completed_by_another_after_the_lease_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path());
    killed_worker_leaves_its_job_to_another(dir.path(), &db);
}

#[test]
fn a_killed_workers_job_is_completed_by_another_after_the_lease_on_postgres() {
    let Some(db) = TestDb::postgres("killed") else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_worker_leaves_its_job_to_another(dir.path(), &db);
}

#[test]
fn two_worker_processes_on_postgres_never_run_the_same_job() {
    let Some(db) = TestDb::postgres("two") else { return };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    run(recap(dir, &db, &[]).args(["db", "upgrade"]));
    let total = 600;
    let out = run(recap(dir, &db, &[]).args([
        "jobs",
        "enqueue",
        "debug.sleep",
        "--payload",
        r#"{"ms": 2}"#,
        "--count",
        &total.to_string(),
    ]));
    assert!(text(&out.stdout).contains(&format!("{total} jobs enqueued")));
    // Small batches and several workers per process: as much contention on claims as possible.
    let envs = [("JOB_BATCH_SIZE", "2"), ("JOB_LEASE", "30s")];
    let a = start_worker(dir, &db, &envs, 3);
    let b = start_worker(dir, &db, &envs, 3);
    wait_until("every job succeeded", Duration::from_secs(90), || {
        (db.numbers("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")[0] == total).then_some(())
    });
    // Every claim increments `attempts`: a job run twice (at once or not) would show 2.
    let [runs, twice, lost] = db.numbers(
        "SELECT COALESCE(SUM(attempts), 0), COUNT(*) FILTER (WHERE attempts <> 1), \
         COUNT(*) FILTER (WHERE last_error IS NOT NULL) FROM jobs",
    )[..] else {
        panic!("three numbers")
    };
    assert_eq!((runs, twice, lost), (total, 0, 0));
    // Both processes took part.
    let pids = db.numbers(&format!(
        "SELECT COUNT(*) FILTER (WHERE split_part(locked_by, ':', 2) = '{}'), \
         COUNT(*) FILTER (WHERE split_part(locked_by, ':', 2) = '{}') FROM jobs",
        a.child.id(),
        b.child.id()
    ));
    assert_eq!(pids[0] + pids[1], total);
    assert!(pids[0] > 0 && pids[1] > 0, "one process did all the work: {pids:?}");
}

#[test]
fn jobs_commands_list_retry_cancel_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = TestDb::sqlite(dir);
    run(recap(dir, &db, &[]).args(["db", "upgrade"]));
    let enqueue = |args: &[&str]| {
        let out = run(recap(dir, &db, &[]).args(["jobs", "enqueue"]).args(args));
        text(&out.stdout).split_whitespace().next().unwrap().to_owned()
    };
    let failing = enqueue(&["debug.fail", "--payload", r#"{"times": 0, "permanent": true}"#]);
    let keyed = enqueue(&["debug.noop", "--unique-key", "only-one"]);
    let out = run(recap(dir, &db, &[]).args(["jobs", "enqueue", "debug.noop", "--unique-key", "only-one"]));
    assert!(text(&out.stdout).contains(&format!("{keyed} already queued (pending)")), "{}", text(&out.stdout));

    let out = run(recap(dir, &db, &[]).args(["jobs", "run-pending"]));
    assert_eq!(text(&out.stdout).trim(), "ran 2 job attempts");
    let failed = jobs(dir, &db, &["--state", "failed"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], failing.as_str());
    let table = text(&run(recap(dir, &db, &[]).args(["jobs", "list", "--kind", "debug.fail"])).stdout);
    assert!(table.contains(&failing) && table.contains("failed") && table.contains("permanent failure"), "{table}");

    let out = run(recap(dir, &db, &[]).args(["jobs", "retry", &failing]));
    assert!(text(&out.stdout).contains("pending again"));
    let out = run(recap(dir, &db, &[]).args(["jobs", "cancel", &failing]));
    assert!(text(&out.stdout).contains("cancelled"));
    assert_eq!(jobs(dir, &db, &["--state", "cancelled"]).len(), 1);

    // Wrong state, unknown id, unknown kind, bad JSON: an error and exit 1.
    for (args, message) in [
        (vec!["jobs", "cancel", failing.as_str()], "Only pending jobs can be cancelled (this job is cancelled)"),
        (vec!["jobs", "retry", "00000000-0000-0000-0000-000000000000"], "job not found"),
        (vec!["jobs", "retry", "nope"], "is not a job id"),
        (vec!["jobs", "enqueue", "no.such.kind"], "unknown job kind"),
        (vec!["jobs", "enqueue", "debug.noop", "--payload", "{"], "--payload is not valid JSON"),
    ] {
        let out = recap(dir, &db, &[]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains(message), "{args:?}: {}", text(&out.stderr));
    }
    // Debug kinds exist only when enabled.
    let out =
        recap(dir, &db, &[("JOBS_DEBUG_KINDS", "false")]).args(["jobs", "enqueue", "debug.noop"]).output().unwrap();
    assert!(text(&out.stderr).contains("unknown job kind"), "{}", text(&out.stderr));

    let help = text(&run(Command::new(BIN).arg("--help")).stdout);
    assert!(help.contains("worker") && help.contains("jobs"), "{help}");
    let out = Command::new(BIN).args(["worker", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
