//! WebSocket recap benchmark: opens a Git Recap session on a running server (`provider: local`),
//! then asks for recaps over one socket (`/ws/{session_id}`) and prints the p50/p99 time from
//! sending the request to the first `{"chunk": …}` frame, and to the closing `</end>`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(name = "ws", about = "Time to the first recap chunk over the WebSocket")]
struct Cli {
    /// Server root, e.g. http://127.0.0.1:8000
    #[arg(long)]
    url: String,
    /// Timed recaps
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Activity entries per request
    #[arg(long, default_value_t = 500)]
    entries: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Activity in the contract's text format: days, each with commits and pull requests in a few
/// repositories.
fn activity(entries: usize) -> String {
    let repos = ["api", "web", "docs", "infra", "mobile"];
    let verbs = ["fix: crash on empty input", "feat: dark mode", "refactor parser", "docs: install guide"];
    let mut text = String::new();
    for i in 0..entries {
        if i % 10 == 0 {
            text.push_str(&format!("2026-{:02}-{:02}:\n", 1 + (i / 280) % 12, 1 + (i / 10) % 28));
        }
        let repo = repos[i % repos.len()];
        if i % 7 == 0 {
            text.push_str(&format!(" - [Pull Request] in {repo}: {} (PR #{i})\n", verbs[i % verbs.len()]));
        } else {
            text.push_str(&format!(" - [Commit] in {repo}: {} #{i}\n", verbs[i % verbs.len()]));
        }
    }
    text
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::new();
    let base = cli.url.trim_end_matches('/').to_owned();
    let creds = json!({"email": format!("ws-{}@example.com", std::process::id()), "password": "correct-horse-42"});
    let r = http.post(format!("{base}/api/v1/auth/register")).json(&creds).send().await?;
    ensure!(r.status() == 201, "register: {}", r.status());
    let login: Value = http.post(format!("{base}/api/v1/auth/login")).json(&creds).send().await?.json().await?;
    let jwt = login["access_token"].as_str().context("no token")?;
    let session: Value = http
        .post(format!("{base}/pat"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(json!({"pat": jwt, "provider": "local"}).to_string())
        .send()
        .await?
        .json()
        .await?;
    let session = session["session_id"].as_str().context("no session")?;
    let ws_url = format!("{}/ws/{session}", base.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await?;
    let request = json!({"actions": activity(cli.entries), "n": 5}).to_string();

    let (mut first, mut whole) = (Vec::new(), Vec::new());
    for i in 0..cli.requests + 5 {
        let started = Instant::now();
        socket.send(Message::Text(request.clone().into())).await?;
        let mut first_at = None;
        loop {
            let frame = match socket.next().await {
                Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text)?,
                Some(Ok(_)) => continue,
                other => bail!("the socket ended: {other:?}"),
            };
            if let Some(error) = frame.get("error") {
                bail!("error frame: {error}");
            }
            first_at.get_or_insert_with(|| started.elapsed());
            if frame["chunk"] == "</end>" {
                break;
            }
        }
        // The first five are warm-up.
        if i >= 5 {
            first.push(first_at.context("no chunk")?);
            whole.push(started.elapsed());
        }
    }
    first.sort();
    whole.sort();
    println!(
        "ws recap ({} entries, {} requests): first chunk p50 {:.2} ms p99 {:.2} ms; </end> p50 {:.2} ms p99 {:.2} ms",
        cli.entries,
        cli.requests,
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&whole, 0.5),
        percentile(&whole, 0.99)
    );
    Ok(())
}
