//! The `recap` binary: parses the command line and calls the libraries. Nothing else lives here.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use recap_server::{
    Application, Settings,
    accounts::admin,
    db::{Db, migrate},
    ops::openapi::route_table,
};

#[derive(Parser)]
#[command(name = "recap", version, about = "Recap: a self-hosted backend for engineering teams' Git activity")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (applies pending migrations unless RECAP_AUTO_MIGRATE=false)
    Serve(ServeArgs),
    /// Manage the database schema
    #[command(subcommand)]
    Db(DbCommand),
    /// Print the route table: method, path and summary of every route
    Routes {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenAPI document
    Openapi,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Run background job workers (and the scheduler) without the HTTP server
    Worker {
        /// Workers to run [env: WORKERS, when greater than 0] [default: 2]
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        workers: Option<u32>,
    },
    /// Inspect and manage background jobs
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Push local git history to a Recap server (gitleague-client `repos.yaml` format)
    #[command(subcommand)]
    Push(PushCommand),
}

#[derive(Subcommand)]
enum PushCommand {
    /// Write a commented repos.yaml template (refuses to overwrite)
    Init {
        #[arg(long, default_value = "repos.yaml")]
        config: std::path::PathBuf,
    },
    /// Check the server's health and each repository's status with the key
    Test {
        #[arg(long, default_value = "repos.yaml")]
        config: std::path::PathBuf,
        /// API key (else GITLEAGUE_API_KEY, RECAP_API_KEY, then api_key in the file)
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Send every commit the server does not have yet, in batches
    Sync {
        #[arg(long, default_value = "repos.yaml")]
        config: std::path::PathBuf,
        /// API key (else GITLEAGUE_API_KEY, RECAP_API_KEY, then api_key in the file)
        #[arg(long)]
        api_key: Option<String>,
        /// Check health and status and list what would be sent; send nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Read a repository's history as `sync` would and print the commit count and line totals
    Scan {
        path: std::path::PathBuf,
        /// Branch to read (default main, else the repository's default branch)
        #[arg(long)]
        branch: Option<String>,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first
    List {
        /// pending, running, succeeded, failed, dead or cancelled
        #[arg(long, value_parser = ["pending", "running", "succeeded", "failed", "dead", "cancelled"])]
        state: Option<String>,
        /// A job kind, e.g. webhook.deliver
        #[arg(long)]
        kind: Option<String>,
        /// At most this many (1 to 100)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100))]
        limit: i64,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Retry a dead or failed job (one more attempt, due now)
    Retry { id: String },
    /// Cancel a pending job
    Cancel { id: String },
    /// Enqueue a job of a registered kind
    Enqueue {
        kind: String,
        /// The JSON payload
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Instead of the kind's default
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        max_attempts: Option<i32>,
        /// Do not enqueue when an unfinished job has this key
        #[arg(long, conflicts_with = "count")]
        unique_key: Option<String>,
        /// Enqueue this many copies (benchmarks, tests)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
    },
    /// Run every due job now, in this process, and exit
    RunPending,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (approved at once)
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// admin or member
        #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
        role: String,
        #[arg(long)]
        full_name: Option<String>,
    },
    /// List every user
    List,
    /// Change a user's role
    SetRole {
        email: String,
        #[arg(long, value_parser = ["admin", "member", "guest"])]
        role: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [env: HOST] [default: 127.0.0.1]
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on, 0 for any free port [env: PORT] [default: 8000]
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply every pending migration
    Upgrade,
    /// Revert the newest migrations
    Downgrade {
        /// How many migrations to revert
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
    },
    /// Print the newest applied migration
    Current,
    /// List every migration and when it was applied
    History,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line, as a shell user expects; `--help` has the rest.
            let rendered = e.render().to_string();
            let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi => {
            println!("{}", recap_server::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Routes { json } => {
            let rows = route_table(&recap_server::openapi());
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(0);
                for r in rows {
                    println!("{:<7} {:<width$}  {}", r.method, r.path, r.summary);
                }
            }
            Ok(())
        }
        Command::Serve(args) => serve(args).await,
        Command::Db(command) => db(command).await,
        Command::User(command) => user(command).await,
        Command::Worker { workers } => worker(workers).await,
        Command::Jobs(command) => jobs(command).await,
        Command::Push(command) => push(command).await,
    }
}

async fn push(command: PushCommand) -> anyhow::Result<()> {
    use recap_client::{Config, SyncOptions};
    let report = match command {
        PushCommand::Init { config } => {
            recap_client::init(&config)?;
            println!("wrote {}; edit it, then run `recap push test`", config.display());
            return Ok(());
        }
        PushCommand::Scan { path, branch } => {
            let started = std::time::Instant::now();
            let totals = tokio::task::spawn_blocking(move || recap_client::scan(&path, branch.as_deref())).await??;
            println!(
                "branch {}: {} commits ({} merges), +{} -{} lines, {} files changed ({:.2}s)",
                totals.branch,
                totals.commits,
                totals.merges,
                totals.additions,
                totals.deletions,
                totals.files_changed,
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        PushCommand::Test { config, api_key } => {
            let config = Config::load(&config)?;
            recap_client::test(&config, &SyncOptions { api_key, ..Default::default() }).await?
        }
        PushCommand::Sync { config, api_key, dry_run } => {
            let config = Config::load(&config)?;
            recap_client::sync(&config, &SyncOptions { api_key, dry_run, ..Default::default() }).await?
        }
    };
    if !report.success() {
        anyhow::bail!("{} repositories failed", report.repos_failed.max(1));
    }
    Ok(())
}

fn settings() -> anyhow::Result<Settings> {
    let settings = Settings::from_env()?;
    recap_server::telemetry::init(&settings);
    Ok(settings)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = settings()?;
    if let Some(host) = args.host {
        settings.host = host;
    }
    if let Some(port) = args.port {
        settings.port = port;
    }
    let app = Application::build(settings).await?;
    let token = app.shutdown_token();
    tracing::info!(address = %app.local_addr(), engine = app.state().db.engine().as_str(), "recap is listening");
    // Printed for scripts and tests that start the server on port 0.
    println!("listening on http://{}", app.local_addr());
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        token.cancel();
    });
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}

async fn db(command: DbCommand) -> anyhow::Result<()> {
    let settings = settings()?;
    let db = Db::connect(&settings).await?;
    match command {
        DbCommand::Upgrade => {
            let applied = migrate::upgrade(&db).await?;
            if applied.is_empty() {
                println!("already up to date");
            }
            for v in applied {
                println!("applied {v}");
            }
        }
        DbCommand::Downgrade { steps } => {
            let reverted = migrate::downgrade(&db, steps as usize).await?;
            if reverted.is_empty() {
                println!("nothing to revert");
            }
            for v in reverted {
                println!("reverted {v}");
            }
        }
        DbCommand::Current => match migrate::current(&db).await? {
            Some(v) => {
                let description = migrate::history(&db)
                    .await?
                    .into_iter()
                    .find(|m| m.version == v)
                    .map(|m| m.description)
                    .unwrap_or_default();
                println!("{v} {description}");
            }
            None => println!("none (no migration applied)"),
        },
        DbCommand::History => {
            for m in migrate::history(&db).await.context("could not read the migration history")? {
                let at = m.applied_at.unwrap_or_else(|| "pending".into());
                println!("{} {:<20} {}", m.version, at, m.description);
            }
        }
    }
    db.close().await;
    Ok(())
}

async fn user(command: UserCommand) -> anyhow::Result<()> {
    let settings = settings()?;
    let db = Db::connect(&settings).await?;
    match command {
        UserCommand::Create { email, password, role, full_name } => {
            let user = admin::create_user(&db, &email, &password, &role, full_name.as_deref()).await?;
            println!("created {} {} ({})", user.id, user.email.unwrap_or_default(), user.role);
        }
        UserCommand::List => {
            for u in admin::list_users(&db).await? {
                let email = u.email.unwrap_or_else(|| "(guest)".into());
                let active = if u.is_active { "active" } else { "disabled" };
                println!("{} {:<32} {:<7} {:<9} {}", u.id, email, u.role, u.status, active);
            }
        }
        UserCommand::SetRole { email, role } => {
            let user = admin::set_role(&db, &email, &role).await?;
            println!("{} is now {}", user.email.unwrap_or_default(), user.role);
        }
    }
    db.close().await;
    Ok(())
}

async fn worker(workers: Option<u32>) -> anyhow::Result<()> {
    let settings = settings()?;
    let count =
        workers.map(|n| n as usize).unwrap_or(if settings.jobs.workers > 0 { settings.jobs.workers } else { 2 });
    let token = tokio_util::sync::CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing running jobs");
        stop.cancel();
    });
    // Printed for scripts and tests that wait for the worker to start.
    println!("worker running with {count} workers");
    recap_server::jobs::worker::run_standalone(settings, count, token).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn jobs(command: JobsCommand) -> anyhow::Result<()> {
    use recap_server::jobs::{self as job, service};
    let mut settings = settings()?;
    let db = Db::connect(&settings).await?;
    match command {
        JobsCommand::List { state, kind, limit, json } => {
            let paging = recap_server::http::pagination::Paging { page: 1, size: limit };
            let (rows, total) = job::store::list(&db, state.as_deref(), kind.as_deref(), paging).await?;
            if json {
                let out: Vec<_> = rows.iter().map(job::model::JobOut::from).collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for r in &rows {
                    let error = r.last_error.as_deref().unwrap_or("").lines().next().unwrap_or("");
                    println!(
                        "{} {:<28} {:<9} {}/{} {} {}",
                        r.id,
                        r.kind,
                        r.state,
                        r.attempts,
                        r.max_attempts,
                        recap_server::time::rfc3339(r.run_at),
                        error
                    );
                }
                eprintln!("{} of {total} jobs", rows.len());
            }
        }
        JobsCommand::Retry { id } => {
            let job = service::retry(&db, job_id(&id)?, service::Actor::default()).await?;
            println!("{} {} is pending again ({} attempts so far)", job.id, job.kind, job.attempts);
        }
        JobsCommand::Cancel { id } => {
            let job = service::cancel(&db, job_id(&id)?, service::Actor::default()).await?;
            println!("{} {} cancelled", job.id, job.kind);
        }
        JobsCommand::Enqueue { kind, payload, max_attempts, unique_key, count } => {
            let payload: serde_json::Value = serde_json::from_str(&payload).context("--payload is not valid JSON")?;
            recap_server::secret::resolve_secret_key(&mut settings)?;
            let registry = job::registry(&settings)?;
            let options =
                job::Enqueue { unique: unique_key.map(job::Unique::WhileUnfinished), ..job::Enqueue::default() };
            if count > 1 {
                let n =
                    service::enqueue_many(&db, &registry, &kind, &payload, max_attempts.unwrap_or(5), count as usize)
                        .await?;
                println!("{n} jobs enqueued");
            } else {
                let enqueued =
                    service::enqueue_by_name(&db, &registry, &kind, &payload, max_attempts.unwrap_or(5), options)
                        .await?;
                if enqueued.created {
                    println!("{} enqueued", enqueued.id);
                } else {
                    println!("{} already queued ({})", enqueued.id, enqueued.state);
                }
            }
        }
        JobsCommand::RunPending => {
            recap_server::secret::resolve_secret_key(&mut settings)?;
            let ctx = job::JobContext::new(std::sync::Arc::new(settings), db.clone(), None)?;
            let jobs = job::Jobs::new(ctx)?;
            let ran = jobs.run_pending().await?;
            jobs.context().writer.close().await;
            println!("ran {ran} job attempts");
        }
    }
    db.close().await;
    Ok(())
}

fn job_id(raw: &str) -> anyhow::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| anyhow::anyhow!("{raw:?} is not a job id"))
}
