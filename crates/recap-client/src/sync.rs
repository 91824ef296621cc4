//! `recap push test` and `recap push sync`.

use std::io::IsTerminal;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::api::{Api, CommitPayload, RetryPolicy};
use crate::config::{Config, Project, Repo, expand_path};

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    /// `--api-key`, overriding the environment and the file.
    pub api_key: Option<String>,
    /// Show a progress bar; `None` = only when stderr is a terminal.
    pub progress: Option<bool>,
    /// Override of the retry policy (tests use short waits).
    pub retry: Option<RetryPolicy>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub repos_ok: usize,
    pub repos_failed: usize,
    pub sent: u64,
    pub inserted: u64,
    pub skipped: u64,
    pub errors: u64,
}

impl SyncReport {
    pub fn success(&self) -> bool {
        self.repos_failed == 0 && self.errors == 0
    }
}

fn api_for(config: &Config, options: &SyncOptions) -> anyhow::Result<Api> {
    let key = config.resolve_key(options.api_key.as_deref());
    let retry = options.retry.unwrap_or_else(|| RetryPolicy::new(config.max_retries));
    Api::new(&config.api_url, key, retry)
}

/// `recap push test`: health check, then the status of every configured repository with the key.
pub async fn test(config: &Config, options: &SyncOptions) -> anyhow::Result<SyncReport> {
    let api = api_for(config, options)?;
    if config.resolve_key(options.api_key.as_deref()).is_none() {
        anyhow::bail!("no API key: set api_key in the file, GITLEAGUE_API_KEY / RECAP_API_KEY, or --api-key");
    }
    api.health().await.map_err(|e| anyhow::anyhow!("health check of {} failed: {e}", config.api_url))?;
    println!("server {} is healthy", config.api_url);
    let mut report = SyncReport::default();
    for project in &config.projects {
        for repo in &project.repos {
            match api.status(&project.project_id, &repo.git_url).await {
                Ok(status) => {
                    report.repos_ok += 1;
                    println!(
                        "ok   {}/{}: status {}, {} commits, last ingested {}",
                        project.name,
                        repo.git_url,
                        status.status.as_deref().unwrap_or("?"),
                        status.total_commits.unwrap_or(0),
                        status.last_ingested_sha.as_deref().unwrap_or("none")
                    );
                }
                Err(e) => {
                    report.repos_failed += 1;
                    println!("FAIL {}/{}: {e}", project.name, repo.git_url);
                }
            }
        }
    }
    Ok(report)
}

/// `recap push sync`: every repository of the file; failures are reported and counted, not fatal.
pub async fn sync(config: &Config, options: &SyncOptions) -> anyhow::Result<SyncReport> {
    if config.resolve_key(options.api_key.as_deref()).is_none() {
        anyhow::bail!("no API key: set api_key in the file, GITLEAGUE_API_KEY / RECAP_API_KEY, or --api-key");
    }
    let api = api_for(config, options)?;
    api.health().await.map_err(|e| anyhow::anyhow!("health check of {} failed: {e}", config.api_url))?;
    let progress = options.progress.unwrap_or_else(|| std::io::stderr().is_terminal());
    let mut report = SyncReport::default();
    for project in &config.projects {
        for repo in &project.repos {
            let label = format!("{}/{}", project.name, repo.git_url);
            match sync_repo(&api, config, project, repo, options.dry_run, progress, &mut report).await {
                Ok(()) => report.repos_ok += 1,
                Err(e) => {
                    report.repos_failed += 1;
                    eprintln!("FAIL {label}: {e:#}");
                }
            }
        }
    }
    println!(
        "done: {} repositories ok, {} failed; {} commits sent, {} inserted, {} skipped, {} errors",
        report.repos_ok, report.repos_failed, report.sent, report.inserted, report.skipped, report.errors
    );
    Ok(report)
}

enum Event {
    Start { branch: String, fell_back: bool, total: usize, from: Option<String> },
    Batch(Vec<CommitPayload>),
    Failed(String),
}

/// Reads `from..tip` of the branch on a blocking thread and streams batches to the channel.
fn read_history(
    path: PathBuf,
    branch: Option<String>,
    last: Option<String>,
    batch_size: usize,
    options: &recap_git::WalkOptions,
    tx: mpsc::Sender<Event>,
) {
    let run = || -> Result<(), String> {
        let resolved = recap_git::resolve_ref(&path, Some(branch.as_deref().unwrap_or("main")))
            .map_err(|e| format!("cannot read branch of {}: {e}", path.display()))?;
        // Resume from the server's last SHA only when it is known here and an ancestor of the tip.
        let from = last
            .filter(|sha| sha == &resolved.sha || matches!(recap_git::count(&path, sha, Some(&resolved.sha)), Ok(0)));
        let walk = recap_git::walk_with(&path, &resolved.sha, from.as_deref(), options)
            .map_err(|e| format!("cannot walk {}: {e}", path.display()))?;
        let total = walk.len();
        let start = Event::Start { branch: resolved.name.clone(), fell_back: resolved.fell_back, total, from };
        if tx.blocking_send(start).is_err() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(batch_size);
        for record in walk {
            let record = record.map_err(|e| format!("cannot read a commit: {e}"))?;
            batch.push(CommitPayload::from_record(record));
            if batch.len() == batch_size
                && tx
                    .blocking_send(Event::Batch(std::mem::replace(&mut batch, Vec::with_capacity(batch_size))))
                    .is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Event::Batch(batch));
        }
        Ok(())
    };
    if let Err(message) = run() {
        let _ = tx.blocking_send(Event::Failed(message));
    }
}

async fn sync_repo(
    api: &Api,
    config: &Config,
    project: &Project,
    repo: &Repo,
    dry_run: bool,
    progress: bool,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let label = format!("{}/{}", project.name, repo.git_url);
    let status = api.status(&project.project_id, &repo.git_url).await?;
    let path = expand_path(&repo.path);
    let (tx, mut rx) = mpsc::channel(2);
    let reader = {
        let (path, branch, last) = (path.clone(), repo.branch.clone(), status.last_ingested_sha.clone());
        let options = recap_git::WalkOptions { mailmap: config.mailmap, ..recap_git::WalkOptions::default() };
        let batch_size = config.batch_size;
        tokio::task::spawn_blocking(move || read_history(path, branch, last, batch_size, &options, tx))
    };
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut failure: Option<anyhow::Error> = None;
    while let Some(event) = rx.recv().await {
        match event {
            Event::Start { branch, fell_back, total, from } => {
                let fallback = if fell_back { " (main not found: default branch)" } else { "" };
                let range = match (&status.last_ingested_sha, &from) {
                    (_, Some(from)) => format!("after {}", &from[..from.len().min(7)]),
                    (Some(last), None) => {
                        format!("full history ({} unknown here; the server dedupes)", &last[..last.len().min(7)])
                    }
                    (None, None) => "full history".to_owned(),
                };
                println!("{label}: branch {branch}{fallback}, {range}: {total} commits to send");
                if progress && total > 0 && !dry_run {
                    let pb = indicatif::ProgressBar::new(total as u64);
                    pb.set_style(
                        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    pb.set_prefix(label.clone());
                    bar = Some(pb);
                }
            }
            Event::Batch(commits) => {
                if dry_run {
                    for c in &commits {
                        println!("  would send {} - {}", &c.sha[..7], c.message_title);
                    }
                    report.sent += commits.len() as u64;
                    continue;
                }
                match api.push(&project.project_id, &repo.git_url, &commits).await {
                    Ok(result) => {
                        report.sent += commits.len() as u64;
                        report.inserted += result.inserted;
                        report.skipped += result.skipped;
                        report.errors += result.errors;
                        match &bar {
                            Some(pb) => pb.inc(commits.len() as u64),
                            None => println!(
                                "{label}: batch of {}: {} inserted, {} skipped, {} errors",
                                commits.len(),
                                result.inserted,
                                result.skipped,
                                result.errors
                            ),
                        }
                        if result.errors > 0 {
                            failure = Some(anyhow::anyhow!("the server failed to ingest {} commits", result.errors));
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(anyhow::Error::new(e).context(format!("push of a batch of {}", commits.len())));
                        break;
                    }
                }
            }
            Event::Failed(message) => {
                failure = Some(anyhow::anyhow!(message));
                break;
            }
        }
    }
    drop(rx);
    if let Some(pb) = bar {
        pb.finish();
    }
    reader.await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
