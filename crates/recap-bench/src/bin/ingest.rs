//! `ingest`: the push-ingestion benchmark (used by bench/ingest.sh).
//!
//! Against a running `recap serve` it signs up a user, creates an API key, a project and a push
//! repository through the API, then pushes `--batches` batches of `--batch-size` unique commits to
//! `POST /api/v1/sync/projects/{p}/repos/{r}/commits` over `--connections` keep-alive connections
//! (one request in flight per connection), and then the very same batches again (all duplicates).
//! It prints commits per second for both rounds and checks every answer (201, and the inserted /
//! skipped counts) and the final `total_commits` of the status route.
//!
//! The request bodies are built before the clock starts, so the figures measure the server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "ingest", about = "Benchmark push ingestion: new commits, then the same batches again")]
struct Cli {
    /// Server root, e.g. http://127.0.0.1:8000
    #[arg(long)]
    url: String,
    /// Batches per round
    #[arg(long, default_value_t = 200)]
    batches: usize,
    /// Commits per batch (the route accepts 1..=1000)
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Keep-alive connections, one request in flight each
    #[arg(short = 'c', long, default_value_t = 4)]
    connections: usize,
    /// Tokio worker threads of the load generator
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

struct Server {
    addr: String,
    host: HeaderValue,
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(server: &Server) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(&server.addr).await.with_context(|| format!("connect to {}", server.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let mut request = Request::builder().method(method).uri(path.parse::<Uri>()?);
    let headers = request.headers_mut().expect("a fresh builder has headers");
    headers.insert(HOST, server.host.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);
    }
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// One JSON call of the set-up, asserting the status.
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
    expect: u16,
) -> anyhow::Result<Value> {
    let mut sender = connect(server).await?;
    let (status, bytes) = send(&mut sender, server, method.clone(), path, token, Bytes::from(body.to_string())).await?;
    ensure!(status == expect, "{method} {path}: expected {expect}, got {status}: {}", String::from_utf8_lossy(&bytes));
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

struct Target {
    api_key: String,
    project: String,
    repo: String,
}

async fn set_up(server: &Server) -> anyhow::Result<Target> {
    let email = format!("ingest-bench-{}@example.com", std::process::id());
    let creds = json!({"email": email, "password": "correct-horse-42"});
    call(server, Method::POST, "/api/v1/auth/register", None, creds.clone(), 201).await?;
    let login = call(server, Method::POST, "/api/v1/auth/login", None, creds, 200).await?;
    let jwt = login["access_token"].as_str().context("no access_token")?.to_owned();
    let key = call(server, Method::POST, "/api/v1/api-keys/", Some(&jwt), json!({"name": "ingest bench"}), 201).await?;
    let slug = format!("bench-{}", std::process::id());
    let project =
        call(server, Method::POST, "/api/v1/projects", Some(&jwt), json!({"name": "Ingest bench", "slug": slug}), 201)
            .await?;
    let project = project["id"].as_str().context("no project id")?.to_owned();
    let repo = call(
        server,
        Method::POST,
        &format!("/api/v1/repos/projects/{project}/repos"),
        Some(&jwt),
        json!({"name": "bench", "sync_method": "push_client"}),
        201,
    )
    .await?;
    Ok(Target {
        api_key: key["full_key"].as_str().context("no full_key")?.to_owned(),
        project,
        repo: repo["id"].as_str().context("no repo id")?.to_owned(),
    })
}

/// Batches of unique commits shaped like gitleague-client's (naive dates, mixed-case e-mails,
/// bodies that start with a newline), oldest first.
fn bodies(batches: usize, size: usize) -> Vec<Bytes> {
    let authors = [
        ("Ada Lovelace", "Ada@Example.com"),
        ("Bob Builder", "bob@example.com"),
        ("Chloé Dupont", "chloe.dupont@example.fr"),
        ("Dee Developer", "DEE@corp.example"),
        ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com"),
    ];
    let titles = [
        "Fix race in session cache",
        "Add pagination to commit list",
        "Refactor ingestion path",
        "Update dependencies",
        "WIP: tests for the parser",
    ];
    (0..batches)
        .map(|b| {
            let commits: Vec<Value> = (0..size)
                .map(|i| {
                    let n = (b * size + i) as u64;
                    let (name, email) = authors[(n % 5) as usize];
                    let secs = 1_735_689_600 + n * 97;
                    let (day, rem) = (secs / 86_400, secs % 86_400);
                    // Civil date from days since the epoch (Howard Hinnant's algorithm).
                    let z = day as i64 + 719_468;
                    let era = z.div_euclid(146_097);
                    let doe = z - era * 146_097;
                    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
                    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
                    let mp = (5 * doy + 2) / 153;
                    let d = doy - (153 * mp + 2) / 5 + 1;
                    let m = if mp < 10 { mp + 3 } else { mp - 9 };
                    let y = yoe + era * 400 + i64::from(m <= 2);
                    json!({
                        "sha": format!("{:016x}{:024x}", 0xbe7c_0000_0000_0000_u64 ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n),
                        "author_name": name,
                        "author_email": email,
                        "committer_name": name,
                        "committer_email": email,
                        "commit_date": format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
                        "message_title": format!("{} (#{n})", titles[(n % 5) as usize]),
                        "message_body": if n.is_multiple_of(3) { Value::Null } else { json!("\nA longer description of the change, wrapped\nat seventy-two characters as git likes it.") },
                        "additions": n % 400,
                        "deletions": n % 150,
                        "files_changed": 1 + n % 12,
                        "is_merge": n.is_multiple_of(20),
                        "parent_count": if n.is_multiple_of(20) { 2 } else { 1 },
                    })
                })
                .collect();
            Bytes::from(json!({"commits": commits, "client_version": "recap-bench"}).to_string())
        })
        .collect()
}

struct Round {
    seconds: f64,
    commits: usize,
    latencies_ms: Vec<f64>,
}

impl Round {
    fn per_second(&self) -> f64 {
        self.commits as f64 / self.seconds
    }
    fn percentile(&self, p: f64) -> f64 {
        let mut l = self.latencies_ms.clone();
        l.sort_by(f64::total_cmp);
        l[((p / 100.0 * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1]
    }
}

/// Pushes every body once over `connections` connections; each answer must be 201 with
/// `"inserted":<expect_inserted>`.
async fn round(
    server: Arc<Server>,
    target: Arc<Target>,
    bodies: Arc<Vec<Bytes>>,
    batch_size: usize,
    connections: usize,
    expect_inserted: usize,
) -> anyhow::Result<Round> {
    let path = format!("/api/v1/sync/projects/{}/repos/{}/commits", target.project, target.repo);
    let next = Arc::new(AtomicUsize::new(0));
    let expected = format!("\"inserted\":{expect_inserted},");
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(&server).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let (server, target, bodies, next, path, expected) =
            (server.clone(), target.clone(), bodies.clone(), next.clone(), path.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t0 = Instant::now();
                let (status, answer) =
                    send(&mut sender, &server, Method::POST, &path, Some(&target.api_key), body.clone()).await?;
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
                ensure!(status == 201, "batch {i}: status {status}: {head}");
                ensure!(head.contains(&expected), "batch {i}: expected {expected} in {head}");
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies_ms = Vec::new();
    for task in tasks {
        latencies_ms.extend(task.await.context("a connection task panicked")??);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Round { seconds, commits: bodies.len() * batch_size, latencies_ms })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    ensure!((1..=1000).contains(&cli.batch_size), "--batch-size must be 1..=1000");
    ensure!(cli.batches > 0 && cli.connections > 0, "--batches and --connections must be positive");
    let uri: Uri = cli.url.parse().with_context(|| format!("invalid URL {:?}", cli.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported");
    }
    let authority = uri.authority().context("the URL has no host")?;
    let server = Arc::new(Server {
        addr: format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80)),
        host: HeaderValue::from_str(authority.as_str())?,
    });
    let target = Arc::new(set_up(&server).await?);
    let bodies = Arc::new(bodies(cli.batches, cli.batch_size));
    let mb = bodies.iter().map(Bytes::len).sum::<usize>() as f64 / 1e6;
    if !cli.json {
        println!(
            "ingest: {} batches × {} commits ({mb:.1} MB of JSON) over {} connections",
            cli.batches, cli.batch_size, cli.connections
        );
    }
    let fresh =
        round(server.clone(), target.clone(), bodies.clone(), cli.batch_size, cli.connections, cli.batch_size).await?;
    let repeat = round(server.clone(), target.clone(), bodies.clone(), cli.batch_size, cli.connections, 0).await?;
    let status = call(
        &server,
        Method::GET,
        &format!("/api/v1/sync/projects/{}/repos/{}/status", target.project, target.repo),
        Some(&target.api_key),
        Value::Null,
        200,
    )
    .await?;
    let stored = status["total_commits"].as_u64().unwrap_or(0) as usize;
    ensure!(
        stored == cli.batches * cli.batch_size,
        "the server holds {stored} commits, expected {}",
        cli.batches * cli.batch_size
    );
    ensure!(status["status"] == "healthy", "repository status {}", status["status"]);

    if cli.json {
        let row = |r: &Round| {
            json!({"commits": r.commits, "seconds": (r.seconds * 1000.0).round() / 1000.0, "commits_per_s": r.per_second().round(),
                   "batch_p50_ms": (r.percentile(50.0) * 10.0).round() / 10.0, "batch_p99_ms": (r.percentile(99.0) * 10.0).round() / 10.0})
        };
        println!(
            "{}",
            json!({"batches": cli.batches, "batch_size": cli.batch_size, "connections": cli.connections,
                              "new": row(&fresh), "duplicates": row(&repeat), "stored": stored})
        );
    } else {
        for (label, r) in [("new commits", &fresh), ("all duplicates", &repeat)] {
            println!(
                "  {label:<15} {:>9} commits in {:>6.2} s = {:>9.0} commits/s  (batch p50 {:.1} ms, p99 {:.1} ms)",
                r.commits,
                r.seconds,
                r.per_second(),
                r.percentile(50.0),
                r.percentile(99.0)
            );
        }
        println!("  stored          {stored} commits, status healthy");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("ingest: could not start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(3600), run(cli)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("ingest: error: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("ingest: gave up after an hour");
            ExitCode::FAILURE
        }
    }
}
