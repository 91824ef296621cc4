//! Leaderboard benchmark: pushes a large history (default 1,000,000 commits by 500 authors over
//! about three years) into a fresh project through the ingestion route, then times the
//! leaderboard route (`period=all` and `period=month`) and prints p50/p99.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use futures::{StreamExt, stream};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(name = "leaderboard", about = "Time the leaderboard over a large ingested history")]
struct Cli {
    /// Server root, e.g. http://127.0.0.1:8000
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1_000_000)]
    commits: usize,
    #[arg(long, default_value_t = 500)]
    authors: usize,
    /// Timed requests per board
    #[arg(long, default_value_t = 50)]
    queries: usize,
    /// Concurrent pushes while loading
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::new();
    let base = cli.url.trim_end_matches('/').to_owned();
    let creds = json!({"email": format!("board-{}@example.com", std::process::id()), "password": "correct-horse-42"});
    let r = http.post(format!("{base}/api/v1/auth/register")).json(&creds).send().await?;
    ensure!(r.status() == 201, "register: {}", r.status());
    let login: Value = http.post(format!("{base}/api/v1/auth/login")).json(&creds).send().await?.json().await?;
    let jwt = login["access_token"].as_str().context("no token")?.to_owned();
    let project: Value = http
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&jwt)
        .json(&json!({"name": "Board bench", "slug": format!("board-{}", std::process::id())}))
        .send()
        .await?
        .json()
        .await?;
    let pid = project["id"].as_str().context("no project id")?.to_owned();
    let repo: Value = http
        .post(format!("{base}/api/v1/projects/{pid}/repos"))
        .bearer_auth(&jwt)
        .json(&json!({"name": "big"}))
        .send()
        .await?
        .json()
        .await?;
    let rid = repo["id"].as_str().context("no repo id")?.to_owned();

    let started = Instant::now();
    let batches = cli.commits.div_ceil(1000);
    let push_url = format!("{base}/api/v1/sync/projects/{pid}/repos/{rid}/commits");
    let results: Vec<anyhow::Result<()>> = stream::iter(0..batches)
        .map(|b| {
            let (http, url, jwt) = (http.clone(), push_url.clone(), jwt.clone());
            let (total, authors) = (cli.commits, cli.authors);
            async move {
                let commits: Vec<Value> = (b * 1000..((b + 1) * 1000).min(total))
                    .map(|n| {
                        // Skewed activity: low-numbered authors commit more, like real teams.
                        let author = (n * n / 7 + n / 3) % authors;
                        let author = author * author / authors.max(1);
                        // ~3 years of history, 1,100 days.
                        let at = time::OffsetDateTime::from_unix_timestamp(1_672_531_200 + (n as i64 * 95) % (1_100 * 86_400)).unwrap();
                        let title = ["Fix bug", "Add feature", "WIP refactor", "Docs"][n % 4];
                        json!({
                            "sha": format!("{:040x}", n + 1),
                            "author_name": format!("Dev {author}"), "author_email": format!("dev{author}@example.com"),
                            "committer_name": format!("Dev {author}"), "committer_email": format!("dev{author}@example.com"),
                            "commit_date": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                            "message_title": title,
                            "additions": n % 500, "deletions": n % 120, "files_changed": n % 9,
                        })
                    })
                    .collect();
                let r = http.post(&url).bearer_auth(&jwt).json(&json!({"commits": commits})).send().await?;
                ensure!(r.status() == 201, "push {b}: {} {}", r.status(), r.text().await.unwrap_or_default());
                Ok(())
            }
        })
        .buffer_unordered(cli.connections)
        .collect()
        .await;
    for r in results {
        r?;
    }
    println!(
        "loaded {} commits by up to {} authors in {:.1} s",
        cli.commits,
        cli.authors,
        started.elapsed().as_secs_f64()
    );

    for (label, query) in [
        ("all", "period=all&metric=impact"),
        ("june", "since=2024-06-01&until=2024-06-30&metric=commits"),
        ("range", "since=2024-01-01&until=2024-12-31&metric=active_days"),
        // A year that starts and ends mid-month: whole months plus two partial months of days.
        ("offset", "since=2024-01-15&until=2025-01-14&metric=impact"),
    ] {
        let url = format!("{base}/api/v1/projects/{pid}/leaderboard?{query}&size=50");
        let first: Value = http.get(&url).bearer_auth(&jwt).send().await?.json().await?;
        let mut times = Vec::with_capacity(cli.queries);
        for _ in 0..cli.queries {
            let t = Instant::now();
            let r = http.get(&url).bearer_auth(&jwt).send().await?;
            ensure!(r.status() == 200, "leaderboard: {}", r.status());
            r.bytes().await?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "leaderboard {label:<6} people {:>4}  p50 {:.2} ms  p99 {:.2} ms",
            first["total"],
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    Ok(())
}
