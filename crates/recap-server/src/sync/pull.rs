//! Pull sync: repositories with `sync_method = pull` are fetched from their `remote_url` into a
//! cache directory and their new commits ingested through [`service::ingest`], the path pushes
//! take (same validation limits, status lifecycle, audit rows, league totals and events).
//!
//! A sync is a durable job ([`PullSync`], kind `repo.pull_sync`, at most one pending or running
//! per repository): requested with `POST /api/v1/repos/{id}/sync`, and enqueued by the scheduler
//! ([`PullSyncDue`], `PULL_SYNC_SCHEDULE`) for every pull repository whose `sync_frequency` (a cron
//! expression), or else `PULL_SYNC_INTERVAL`, says it is due.
//!
//! **Fetching** runs the `git` executable (`GIT_EXECUTABLE`), isolated from the machine's and the
//! user's git configuration (no credential helpers, no prompts, only the protocols the remote
//! needs): the first sync makes a bare clone at `<REPO_CACHE_DIR>/<repo id>.git`, later ones
//! fetch the branches into it. Reading history is `recap_git::walk` from the repository's
//! `last_ingested_sha` (everything with `force`, or when that commit is gone after a rewrite),
//! oldest first, ingested in batches of [`model::MAX_COMMITS`] as it is read.
//!
//! **Remotes.** `https://` (and `http://` without credentials), with an optional token stored
//! encrypted in the repository's `credentials` (`{"token": "…", "username"?: "…"}`) and sent as an
//! HTTP Basic `Authorization` header through git's environment (never on a command line, in a URL
//! or in a message). The host must pass the same SSRF guard as webhooks (`OUTBOUND_ALLOWLIST`).
//! Local paths and `file://` URLs only under `PULL_LOCAL_ROOTS` (none by default: otherwise any
//! project maintainer could read any repository on the server's disk). SSH remotes are refused.

use std::{
    ffi::OsString,
    net::IpAddr,
    path::{Component, Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    model::{self, NewCommit, Sha},
    service::{self, Actor},
    store,
    writer::write_tx,
};
use crate::{
    audit::{self, AuditEntry},
    config::ConfigError,
    crypto::Sealer,
    error::{ApiError, ApiResult},
    http::ssrf::Guard,
    jobs::settings::parse_duration,
    jobs::{self, Enqueue, Job, JobContext, JobError, JobMeta, Unique},
    projects::{
        access::{ProjectRole, require_repo},
        store::{self as projects_store, RepoRow},
    },
    state::AppState,
};

/// Settings of pull sync (see docs/CONFIGURATION.md, "Pull sync").
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// `REPO_CACHE_DIR`: where the bare clones live (default `repo-cache` in the working directory).
    pub cache_dir: PathBuf,
    /// `PULL_LOCAL_ROOTS`: directories (separated like `PATH`) under which local and `file://`
    /// remotes may be read; empty refuses them.
    pub local_roots: Vec<PathBuf>,
    /// `GIT_EXECUTABLE`: the git program (default `git`, found on `PATH`).
    pub git: PathBuf,
    /// `PULL_SYNC_SCHEDULE`: how often the scheduler looks for due repositories (cron; `off`
    /// disables scheduled syncs, manual ones still run).
    pub schedule: Option<String>,
    /// `PULL_SYNC_INTERVAL`: how long after its last sync a repository without a `sync_frequency`
    /// cron expression is due again.
    pub interval: Duration,
    /// `PULL_SYNC_TIMEOUT`: longest a git command may run.
    pub timeout: Duration,
}

impl Default for PullSettings {
    fn default() -> Self {
        PullSettings {
            cache_dir: PathBuf::from("repo-cache"),
            local_roots: Vec::new(),
            git: PathBuf::from("git"),
            schedule: Some("*/5 * * * *".into()),
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(600),
        }
    }
}

impl PullSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<PullSettings, ConfigError> {
        let mut s = PullSettings::default();
        let invalid = |var, message: String| ConfigError { var, message };
        if let Some(v) = get("REPO_CACHE_DIR").filter(|v| !v.trim().is_empty()) {
            s.cache_dir = PathBuf::from(v.trim());
        }
        if let Some(v) = get("PULL_LOCAL_ROOTS") {
            s.local_roots = std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect();
            if let Some(relative) = s.local_roots.iter().find(|p| !p.is_absolute()) {
                return Err(invalid("PULL_LOCAL_ROOTS", format!("{} is not an absolute path", relative.display())));
            }
        }
        if let Some(v) = get("GIT_EXECUTABLE").filter(|v| !v.trim().is_empty()) {
            s.git = PathBuf::from(v.trim());
        }
        if let Some(v) = get("PULL_SYNC_SCHEDULE") {
            s.schedule = match v.trim() {
                "off" | "" => None,
                cron => {
                    crate::jobs::scheduler::parse_cron(cron).map_err(|e| invalid("PULL_SYNC_SCHEDULE", e))?;
                    Some(cron.to_owned())
                }
            };
        }
        if let Some(v) = get("PULL_SYNC_INTERVAL") {
            s.interval = parse_duration("PULL_SYNC_INTERVAL", &v)?;
        }
        if let Some(v) = get("PULL_SYNC_TIMEOUT") {
            s.timeout = parse_duration("PULL_SYNC_TIMEOUT", &v)?;
            if s.timeout.is_zero() {
                return Err(invalid("PULL_SYNC_TIMEOUT", "must be greater than zero".into()));
            }
        }
        Ok(s)
    }

    /// The bare clone of a repository.
    pub fn cache_path(&self, repo_id: Uuid) -> PathBuf {
        self.cache_dir.join(format!("{repo_id}.git"))
    }
}

// ----- remotes -----

/// Where a repository is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Remote {
    /// A directory on this machine, resolved (symlinks followed) and inside `PULL_LOCAL_ROOTS`.
    Local(PathBuf),
    /// An `http(s)` URL that passed the SSRF guard, and (for a host name) the addresses it was
    /// checked with, as a curl `host:port:addr,…` entry: git connects to those and no others, so
    /// a name that changes its address after the check (DNS rebinding) changes nothing.
    Http(reqwest::Url, Option<String>),
}

impl Remote {
    /// What `git clone` / `git fetch` are given.
    fn source(&self) -> OsString {
        match self {
            Remote::Local(path) => path.clone().into_os_string(),
            Remote::Http(url, _) => url.as_str().into(),
        }
    }
}

/// Why a repository cannot be pulled: a setting to change, not worth retrying.
#[derive(Debug)]
struct Refused(String);

/// Checks `remote_url` against the pull settings and the outbound guard.
async fn resolve_remote(remote_url: &str, settings: &PullSettings, guard: &Guard) -> Result<Remote, Refused> {
    let raw = remote_url.trim();
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let url = guard.check_url(raw).await.map_err(|e| Refused(format!("remote_url: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused(
                "remote_url: a user name or token in the URL is refused; put the token in credentials".into(),
            ));
        }
        let pinned = pin_addresses(&url, guard).await?;
        return Ok(Remote::Http(url, pinned));
    }
    let path = if lower.starts_with("file://") {
        reqwest::Url::parse(raw)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| Refused("remote_url: not a valid file:// URL".into()))?
    } else if lower.starts_with("ssh://") || lower.starts_with("git://") || lower.contains("://") || is_scp_like(raw) {
        return Err(Refused(
            "remote_url: only https:// URLs (with a token in credentials), local paths and file:// URLs can be \
             pulled; SSH and git:// remotes are not supported"
                .into(),
        ));
    } else {
        PathBuf::from(raw)
    };
    local_remote(&path, settings).map(Remote::Local)
}

/// Resolves a host name now and checks every address (the guard lets a name that does not
/// resolve pass, for webhooks that connect later through a guarded resolver; git resolves by
/// itself, so here the addresses are pinned). `None` for an IP literal, already checked.
async fn pin_addresses(url: &reqwest::Url, guard: &Guard) -> Result<Option<String>, Refused> {
    let Some(host) = url.host_str() else { return Err(Refused("remote_url: the URL has no host".into())) };
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(None);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let unresolved = || Refused(format!("remote_url: {host} does not resolve"));
    let addresses: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|_| unresolved())?.collect();
    if addresses.is_empty() {
        return Err(unresolved());
    }
    let mut pinned = Vec::with_capacity(addresses.len());
    for address in &addresses {
        guard.check_ip(address.ip()).map_err(|refusal| Refused(format!("remote_url: {host} resolves to {refusal}")))?;
        pinned.push(match address.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        });
    }
    pinned.dedup();
    Ok(Some(format!("{host}:{port}:{}", pinned.join(","))))
}

/// `user@host:path`, git's scp-like SSH syntax.
fn is_scp_like(raw: &str) -> bool {
    match raw.split_once(':') {
        Some((before, _)) => !before.contains('/') && before.len() > 1,
        None => false,
    }
}

/// A local remote: absolute, without `..`, inside one of the allowed roots both as written and
/// after following symlinks (so a link cannot lead out of them), and a git repository whose git
/// directory and object store are inside the roots too and borrow no objects from elsewhere
/// (`.git` can be a symlink or a `gitdir:` file, a work tree's objects live in its common
/// directory, and `objects/info/alternates` can name any directory: git would follow each).
fn local_remote(path: &Path, settings: &PullSettings) -> Result<PathBuf, Refused> {
    if settings.local_roots.is_empty() {
        return Err(Refused(
            "remote_url: local repositories are not enabled on this server (PULL_LOCAL_ROOTS lists the \
             directories pull sync may read)"
                .into(),
        ));
    }
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Refused("remote_url: a local repository must be an absolute path without '..'".into()));
    }
    let outside = || Refused("remote_url: this path is outside the directories pull sync may read".into());
    if !settings.local_roots.iter().any(|root| path.starts_with(root)) {
        return Err(outside());
    }
    let real = path.canonicalize().map_err(|_| Refused("remote_url: no repository at this path".into()))?;
    let inside =
        |p: &Path| settings.local_roots.iter().any(|root| root.canonicalize().is_ok_and(|root| p.starts_with(root)));
    if !inside(&real) {
        return Err(outside());
    }
    let not_a_repository = || Refused("remote_url: not a git repository".into());
    let git_dir = git_dir_of(&real).ok_or_else(not_a_repository)?;
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(relative) => git_dir.join(relative.trim()).canonicalize().map_err(|_| not_a_repository())?,
        Err(_) => git_dir.clone(),
    };
    let objects = common.join("objects").canonicalize().map_err(|_| not_a_repository())?;
    if !inside(&git_dir) || !inside(&common) || !inside(&objects) {
        return Err(outside());
    }
    if objects.join("info/alternates").exists() {
        return Err(Refused(
            "remote_url: repositories that borrow objects from elsewhere (alternates) are refused".into(),
        ));
    }
    Ok(real)
}

/// The git directory git would open for `dir` (canonical): `dir/.git` (a directory, a symlink or a
/// `gitdir:` file), else `dir` itself when it is a bare repository.
fn git_dir_of(dir: &Path) -> Option<PathBuf> {
    let dot_git = dir.join(".git");
    if dot_git.is_dir() {
        return dot_git.canonicalize().ok();
    }
    if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = Path::new(text.trim().strip_prefix("gitdir:")?.trim());
        return if target.is_absolute() { target.canonicalize().ok() } else { dir.join(target).canonicalize().ok() };
    }
    (dir.join("HEAD").is_file() && dir.join("objects").is_dir()).then(|| dir.to_path_buf())
}

/// The stored credentials of a repository: `{"token": …}` (or `password`, `pat`), `username`
/// optional.
#[derive(Deserialize)]
pub struct Credentials {
    #[serde(alias = "password", alias = "pat")]
    token: Option<String>,
    username: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The `Authorization` header git sends to an https remote, if the repository has a token.
fn authorization(repo: &RepoRow, remote: &Remote, sealer: &Sealer) -> Result<Option<String>, Refused> {
    let (Some(sealed), Remote::Http(url, _)) = (&repo.credentials_encrypted, remote) else { return Ok(None) };
    let unreadable = || Refused("credentials: the stored credentials cannot be read (was the key changed?)".into());
    let json = sealer.open(sealed).map_err(|_| unreadable())?;
    let credentials: Credentials = serde_json::from_str(&json).map_err(|_| unreadable())?;
    basic_header(credentials, url)
}

/// The `Authorization` header for `credentials` (none without a token; only over https).
fn basic_header(credentials: Credentials, url: &reqwest::Url) -> Result<Option<String>, Refused> {
    let Some(token) = credentials.token.filter(|t| !t.is_empty()) else { return Ok(None) };
    if url.scheme() != "https" {
        return Err(Refused("credentials: a token is only sent to an https:// remote".into()));
    }
    // Any user name works with a token on GitHub, GitLab and Azure DevOps; GitHub documents this one.
    let username = credentials.username.unwrap_or_else(|| "x-access-token".into());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"));
    Ok(Some(format!("Authorization: Basic {basic}")))
}

// ----- git -----

/// Runs git on behalf of a pull sync.
struct Git<'a> {
    settings: &'a PullSettings,
    /// Configuration passed through the environment (`GIT_CONFIG_COUNT`…), so secrets never
    /// appear in a process listing.
    config: Vec<(&'static str, String)>,
}

impl<'a> Git<'a> {
    fn new(settings: &'a PullSettings, remote: &Remote, authorization: Option<String>) -> Git<'a> {
        let mut config = vec![
            ("protocol.allow", "never".to_owned()),
            ("credential.helper", String::new()),
            ("core.askPass", String::new()),
            ("gc.autoDetach", "false".to_owned()),
            // A redirect would take the token (and the connection) to a host nobody checked.
            ("http.followRedirects", "false".to_owned()),
        ];
        match remote {
            Remote::Local(_) => {
                config.push(("protocol.file.allow", "always".into()));
                // A repository owned by another user is still readable: the path was allowed.
                config.push(("safe.directory", "*".into()));
            }
            Remote::Http(url, pinned) => {
                let protocol = if url.scheme() == "https" { "protocol.https.allow" } else { "protocol.http.allow" };
                config.push((protocol, "always".into()));
                if let Some(pinned) = pinned {
                    config.push(("http.curloptResolve", pinned.clone()));
                }
            }
        }
        if let Some(header) = authorization {
            config.push(("http.extraHeader", header));
        }
        Git { settings, config }
    }

    /// Runs `git args…` and returns its output; the error is git's own message (last lines), with
    /// anything that looks like credentials in a URL masked.
    async fn run(&self, args: &[OsString]) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.settings.git);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LANG", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", null_device())
            .env("GIT_CONFIG_COUNT", self.config.len().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (i, (key, value)) in self.config.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("could not run {} ({e}); set GIT_EXECUTABLE", self.settings.git.display()))?;
        let output = tokio::time::timeout(self.settings.timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("git did not finish within {:?}", self.settings.timeout))?
            .map_err(|e| format!("git failed: {e}"))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
        Err(mask_credentials(if tail.is_empty() { "git failed without a message" } else { &tail }))
    }
}

fn null_device() -> &'static str {
    if cfg!(windows) { "NUL" } else { "/dev/null" }
}

/// Replaces the user-info part of URLs (`https://user:secret@host` → `https://***@host`).
fn mask_credentials(text: &str) -> String {
    static USERINFO: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"://[^/@\s]+@").expect("valid pattern"));
    USERINFO.replace_all(text, "://***@").into_owned()
}

/// Brings the bare clone of `repo_id` up to date with the remote: a clone the first time (into a
/// temporary directory renamed into place, so a failed clone leaves nothing behind), a fetch of
/// every branch afterwards, and `HEAD` following the remote's default branch (which
/// `recap_git::resolve_ref` falls back to when `main` does not exist).
async fn fetch(git: &Git<'_>, repo_id: Uuid, remote: &Remote) -> Result<PathBuf, String> {
    let settings = git.settings;
    let path = settings.cache_path(repo_id);
    if path.join("HEAD").is_file() {
        let mut args: Vec<OsString> = vec!["-C".into(), path.clone().into(), "fetch".into()];
        args.extend(["--prune", "--quiet", "--no-write-fetch-head", "--"].map(OsString::from));
        args.push(remote.source());
        args.push("+refs/heads/*:refs/heads/*".into());
        git.run(&args).await?;
        let mut args: Vec<OsString> = ["ls-remote", "--symref", "--"].map(OsString::from).to_vec();
        args.push(remote.source());
        args.push("HEAD".into());
        let listing = git.run(&args).await?;
        let head = listing.lines().find_map(|l| l.strip_prefix("ref: ")?.strip_suffix("\tHEAD"));
        if let Some(head) = head.filter(|h| h.starts_with("refs/heads/")) {
            let args: Vec<OsString> =
                vec!["-C".into(), path.clone().into(), "symbolic-ref".into(), "HEAD".into(), head.into()];
            git.run(&args).await?;
        }
        return Ok(path);
    }
    tokio::fs::create_dir_all(&settings.cache_dir)
        .await
        .map_err(|e| format!("could not create the cache directory {}: {e}", settings.cache_dir.display()))?;
    let temporary = settings.cache_dir.join(format!(".{repo_id}.{}.partial", Uuid::new_v4().simple()));
    let mut args: Vec<OsString> = ["clone", "--bare", "--quiet", "--no-local", "--"].map(OsString::from).to_vec();
    args.push(remote.source());
    args.push(temporary.clone().into());
    let cloned = git.run(&args).await;
    if let Err(e) = cloned {
        let _ = tokio::fs::remove_dir_all(&temporary).await;
        return Err(e);
    }
    if let Err(e) = tokio::fs::rename(&temporary, &path).await {
        let _ = tokio::fs::remove_dir_all(&temporary).await;
        // Another sync of the same repository won the race: its clone is as good as ours.
        if !path.join("HEAD").is_file() {
            return Err(format!("could not move the clone into {}: {e}", path.display()));
        }
    }
    Ok(path)
}

/// Removes the bare clone of a deleted repository (best effort).
pub async fn forget_cache(settings: &PullSettings, repo_id: Uuid) {
    let path = settings.cache_path(repo_id);
    if let Err(e) = tokio::fs::remove_dir_all(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "could not remove a repository's cache");
    }
}

// ----- reading and ingesting -----

/// How the server reads its clones: with their mailmap, and with none of the server account's
/// own git configuration.
fn walk_options() -> recap_git::WalkOptions {
    recap_git::WalkOptions { isolated_config: true, ..recap_git::WalkOptions::default() }
}

/// A commit read by recap-git, as the push route would have received it. recap-git keeps the
/// text fields within the push API's limits (see `recap_git::CommitRecord`); dates and counts
/// are checked here as the push route checks them.
fn new_commit(record: recap_git::CommitRecord) -> Option<NewCommit<'static>> {
    let count = |n: u64| i64::try_from(n).ok().filter(|n| *n <= model::MAX_COUNT);
    Some(NewCommit {
        sha: Sha::parse(&record.sha)?,
        author_name: record.author_name.into(),
        author_email: record.author_email.to_lowercase().into(),
        committer_name: record.committer_name.into(),
        committer_email: record.committer_email.to_lowercase().into(),
        commit_date: crate::time::supported_utc(record.commit_date)?,
        message_title: record.message_title.into(),
        message_body: record.message_body.map(Into::into),
        additions: count(record.additions)?,
        deletions: count(record.deletions)?,
        files_changed: count(record.files_changed)?,
        is_merge: record.is_merge,
        parent_count: i64::from(record.parent_count),
    })
}

/// What one pull sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    pub read: usize,
    pub inserted: usize,
    pub skipped: usize,
    pub tip: Option<String>,
}

/// Reads `stop..tip` of the clone on a blocking thread and ingests it batch by batch, oldest
/// first, while the next batch is being read.
async fn ingest_history(
    ctx: &JobContext,
    repo: &RepoRow,
    clone: PathBuf,
    tip: String,
    stop: Option<String>,
    actor: Actor,
) -> Result<PullOutcome, PullFailure> {
    let (sender, mut batches) = tokio::sync::mpsc::channel::<Result<Vec<NewCommit<'static>>, String>>(1);
    let reader = tokio::task::spawn_blocking(move || {
        let walk = match recap_git::walk_with(&clone, &tip, stop.as_deref(), &walk_options()) {
            Ok(walk) => walk,
            Err(e) => return drop(sender.blocking_send(Err(e.to_string()))),
        };
        let mut batch = Vec::with_capacity(model::MAX_COMMITS);
        for record in walk {
            let commit = match record {
                Ok(record) => {
                    let sha = record.sha.clone();
                    new_commit(record).ok_or_else(|| format!("commit {sha} has a date or line counts out of range"))
                }
                Err(e) => Err(e.to_string()),
            };
            match commit {
                Ok(commit) => batch.push(commit),
                Err(e) => return drop(sender.blocking_send(Err(e))),
            }
            if batch.len() == model::MAX_COMMITS
                && sender
                    .blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(model::MAX_COMMITS))))
                    .is_err()
            {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(Ok(batch));
        }
    });
    let mut outcome = PullOutcome::default();
    let result = async {
        while let Some(batch) = batches.recv().await {
            // A history that cannot be read is the remote's problem (recorded on the repository
            // by the caller); a failed ingest has recorded its own failure.
            let batch = batch.map_err(|e| PullFailure::Remote(format!("reading the history: {e}")))?;
            let out =
                service::ingest(&ctx.db, &ctx.writer, repo, &batch, actor, Some("recap pull sync")).await.map_err(
                    |e| PullFailure::Ingest(JobError::Retry(anyhow::anyhow!("ingesting: {}", e.report.message))),
                )?;
            outcome.read += out.total;
            outcome.inserted += out.inserted;
            outcome.skipped += out.skipped;
            outcome.tip = batch.last().map(|c| c.sha.as_str().to_owned());
        }
        Ok(())
    }
    .await;
    drop(batches);
    let _ = reader.await;
    result.map(|()| outcome)
}

// ----- the jobs -----

/// Sync one pull repository now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullSync {
    pub repo_id: Uuid,
    /// Read the whole history again instead of starting after `last_ingested_sha` (what is
    /// already stored is skipped).
    #[serde(default)]
    pub force: bool,
    /// Who asked (for the audit rows); `None` for a scheduled sync.
    #[serde(default)]
    pub requested_by: Option<Uuid>,
}

impl PullSync {
    pub fn unique_key(repo_id: Uuid) -> Unique {
        Unique::WhileUnfinished(format!("repo.pull_sync:{repo_id}"))
    }
}

impl Job for PullSync {
    const KIND: &'static str = "repo.pull_sync";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: JobContext, meta: JobMeta) -> Result<(), JobError> {
        let Some(repo) = projects_store::repo_by_id(&ctx.db, self.repo_id).await? else {
            return Err(JobError::Cancel("the repository was deleted".into()));
        };
        if repo.sync_method != "pull" {
            return Err(JobError::Cancel(format!("the repository now syncs by {}", repo.sync_method)));
        }
        let actor = Actor { user_id: self.requested_by, ip: None };
        let pulled = pull(&ctx, &repo, self.force, actor).await;
        // Deleted while this sync ran: its clone (made again by this sync) goes too.
        if let Ok(None) = projects_store::repo_by_id(&ctx.db, repo.id).await {
            forget_cache(&ctx.settings.sync.pull, repo.id).await;
            return Err(JobError::Cancel("the repository was deleted during the sync".into()));
        }
        match pulled {
            Ok(outcome) => {
                tracing::info!(
                    repo_id = %repo.id, read = outcome.read, inserted = outcome.inserted,
                    skipped = outcome.skipped, "pull sync finished"
                );
                Ok(())
            }
            Err(failure) => {
                let (message, error) = match failure {
                    PullFailure::Refused(Refused(m)) => (m.clone(), JobError::Fail(anyhow::anyhow!(m))),
                    PullFailure::Remote(m) => (m.clone(), JobError::Retry(anyhow::anyhow!(m))),
                    // The ingest has recorded its own failure on the repository.
                    PullFailure::Ingest(e) => return Err(e),
                };
                let message = format!("Pull sync failed: {message}");
                if let Err(e) =
                    service::record_failure(&ctx.db, &ctx.writer, repo.id, &message, actor, Some(ctx.writer.stamp()))
                        .await
                {
                    tracing::error!(error = %e, repo_id = %repo.id, "could not record a failed pull sync");
                }
                tracing::warn!(repo_id = %repo.id, attempt = meta.attempt, "{message}");
                Err(error)
            }
        }
    }
}

enum PullFailure {
    Refused(Refused),
    Remote(String),
    Ingest(JobError),
}

/// One sync of `repo`: resolve the remote, fetch, ingest what is new.
async fn pull(ctx: &JobContext, repo: &RepoRow, force: bool, actor: Actor) -> Result<PullOutcome, PullFailure> {
    let settings = &ctx.settings.sync.pull;
    let remote_url = repo.remote_url.as_deref().filter(|u| !u.trim().is_empty());
    let remote_url =
        remote_url.ok_or_else(|| PullFailure::Refused(Refused("the repository has no remote_url".into())))?;
    let remote = resolve_remote(remote_url, settings, ctx.outbound.guard()).await.map_err(PullFailure::Refused)?;
    let authorization = authorization(repo, &remote, &ctx.sealer).map_err(PullFailure::Refused)?;

    write_tx!(&ctx.writer, &ctx.db, |tx| store::mark_syncing(tx, repo.id).await)
        .map_err(|e: sqlx::Error| PullFailure::Ingest(e.into()))?;

    let git = Git::new(settings, &remote, authorization);
    let clone = fetch(&git, repo.id, &remote).await.map_err(PullFailure::Remote)?;
    let branch = repo.branch.clone();
    let last = if force { None } else { repo.last_ingested_sha.clone() };
    let probe = clone.clone();
    let (tip, stop) = tokio::task::spawn_blocking(move || {
        let tip = recap_git::resolve_ref_with(&probe, Some(&branch), &walk_options())
            .map_err(|_| format!("branch '{branch}' not found in the remote"))?;
        // A rewritten history no longer has the last ingested commit: read everything again.
        let stop = last.filter(|sha| recap_git::resolve_ref_with(&probe, Some(sha), &walk_options()).is_ok());
        Ok::<_, String>((tip.sha, stop))
    })
    .await
    .map_err(|e| PullFailure::Remote(format!("reading the clone: {e}")))?
    .map_err(PullFailure::Remote)?;

    if stop.as_deref() == Some(tip.as_str()) {
        // Nothing new: the sync still counts as one (status and `last_sync_at`).
        finish_without_commits(ctx, repo).await?;
        return Ok(PullOutcome { tip: Some(tip), ..PullOutcome::default() });
    }
    let outcome = ingest_history(ctx, repo, clone, tip.clone(), stop, actor).await?;
    if outcome.read == 0 {
        // The branch moved back to history already read: nothing to ingest, still a sync.
        finish_without_commits(ctx, repo).await?;
        return Ok(PullOutcome { tip: Some(tip), ..outcome });
    }
    Ok(outcome)
}

/// Ends a sync that had nothing to ingest: `healthy`, `last_sync_at` now.
async fn finish_without_commits(ctx: &JobContext, repo: &RepoRow) -> Result<(), PullFailure> {
    let now = ctx.writer.stamp();
    write_tx!(&ctx.writer, &ctx.db, |tx| store::finish_sync(tx, repo.id, "healthy", None, None, now).await)
        .map_err(|e: sqlx::Error| PullFailure::Ingest(e.into()))
}

/// The scheduler's job: enqueue a [`PullSync`] for every pull repository that is due.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullSyncDue {}

impl Job for PullSyncDue {
    const KIND: &'static str = "repo.pull_sync_due";
    const MAX_ATTEMPTS: i32 = 1;

    async fn run(self, ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        let now = OffsetDateTime::now_utc();
        let interval = ctx.settings.sync.pull.interval;
        let due: Vec<Uuid> = store::pull_repos(&ctx.db)
            .await?
            .into_iter()
            .filter(|(_, last_sync_at, frequency)| is_due(*last_sync_at, frequency.as_deref(), interval, now))
            .map(|(id, _, _)| id)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut tx = ctx.db.begin().await?;
        let mut queued = 0;
        for repo_id in &due {
            let job = PullSync { repo_id: *repo_id, force: false, requested_by: None };
            let options = Enqueue { unique: Some(PullSync::unique_key(*repo_id)), ..Enqueue::default() };
            queued += usize::from(jobs::enqueue(&mut tx, &job, options).await?.created);
        }
        tx.commit().await?;
        tracing::info!(due = due.len(), queued, "scheduled pull syncs");
        Ok(())
    }
}

/// Whether a repository last synced at `last_sync_at` is due at `now`: never synced; its
/// `sync_frequency` cron expression has a tick in between; or, without a valid expression, the
/// interval has passed.
pub fn is_due(
    last_sync_at: Option<OffsetDateTime>,
    sync_frequency: Option<&str>,
    interval: Duration,
    now: OffsetDateTime,
) -> bool {
    let Some(last) = last_sync_at else { return true };
    match sync_frequency.map(crate::jobs::scheduler::parse_cron) {
        Some(Ok(cron)) => crate::jobs::scheduler::next_tick(&cron, last).is_some_and(|tick| tick <= now),
        _ => now - last >= interval,
    }
}

// ----- the route's logic -----

/// The answer of `POST /api/v1/repos/{id}/sync`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncRequestedOut {
    pub repo_id: Uuid,
    /// The sync job (`GET /api/v1/admin/jobs/{id}` for administrators).
    pub job_id: Uuid,
    /// `false` when a sync of this repository was already pending or running: that one is the answer.
    pub queued: bool,
    /// The job's state: `pending` or `running`.
    pub job_state: String,
    pub message: String,
}

/// Requests a pull sync: owner or maintainer; 400 for a push repository or a remote that cannot
/// be pulled (the reason, checked now rather than in the job); 202 with the (possibly existing) job.
pub async fn request(
    state: &AppState,
    user_id: Uuid,
    ip: Option<IpAddr>,
    repo_id: &str,
    force: bool,
) -> ApiResult<SyncRequestedOut> {
    let db = &state.db;
    let (repo, _) = require_repo(db, repo_id, user_id, ProjectRole::Maintainer).await?;
    if repo.sync_method != "pull" {
        return Err(ApiError::bad_request(format!(
            "Repository is not configured for pull-based sync (current method: {})",
            repo.sync_method
        )));
    }
    let Some(remote_url) = repo.remote_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Err(ApiError::bad_request("Repository has no remote_url to pull from"));
    };
    let guard = state.jobs.context().outbound.guard();
    let remote = resolve_remote(remote_url, &state.settings.sync.pull, guard)
        .await
        .map_err(|Refused(m)| ApiError::bad_request(m))?;
    authorization(&repo, &remote, &state.sealer).map_err(|Refused(m)| ApiError::bad_request(m))?;

    let mut tx = db.begin().await?;
    let job = PullSync { repo_id: repo.id, force, requested_by: Some(user_id) };
    let options = Enqueue { unique: Some(PullSync::unique_key(repo.id)), ..Enqueue::default() };
    let enqueued = jobs::enqueue(&mut tx, &job, options).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("trigger_sync", Some(user_id), ip).resource("repository", repo.id).details(format!(
            "Requested a {}pull sync of '{}'{}",
            if force { "full " } else { "" },
            repo.name,
            if enqueued.created { "" } else { " (one was already queued)" }
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(SyncRequestedOut {
        repo_id: repo.id,
        job_id: enqueued.id,
        queued: enqueued.created,
        message: match (enqueued.created, force) {
            (true, _) => "Sync queued".into(),
            (false, false) => "A sync of this repository is already queued".into(),
            (false, true) => {
                "A sync of this repository is already queued and reads only new commits; ask again with force \
                 once it has finished"
                    .into()
            }
        },
        job_state: enqueued.state,
    })
}

// ----- testing a remote -----

/// `POST /api/v1/repos/test-connection`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TestConnectionIn {
    pub remote_url: String,
    /// `local`, `ssh` or `https` (informational: the URL decides).
    #[serde(default)]
    pub remote_type: Option<String>,
    /// The branch a sync would read (default `main`, which falls back to the default branch).
    #[serde(default)]
    pub branch: Option<String>,
    /// As a repository's `credentials`: `{"token": "…", "username"?: "…"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestConnectionOut {
    /// Whether a pull sync with these settings would find its branch.
    pub success: bool,
    pub message: String,
    /// The remote's branches when it could be listed, else `null`.
    pub available_branches: Option<Vec<String>>,
}

impl TestConnectionOut {
    fn failed(message: impl Into<String>) -> TestConnectionOut {
        TestConnectionOut { success: false, message: message.into(), available_branches: None }
    }
}

/// Lists the branches of a remote the way a pull sync would reach it (same rules, same isolated
/// git, a shorter timeout). Failures are answers (`success: false` with the reason), not errors.
pub async fn test_connection(state: &AppState, input: TestConnectionIn) -> TestConnectionOut {
    let settings = PullSettings {
        timeout: state.settings.sync.pull.timeout.min(TEST_TIMEOUT),
        ..state.settings.sync.pull.clone()
    };
    let remote = match resolve_remote(&input.remote_url, &settings, state.jobs.context().outbound.guard()).await {
        Ok(remote) => remote,
        Err(Refused(message)) => return TestConnectionOut::failed(message),
    };
    let authorization = match (input.credentials, &remote) {
        (Some(credentials), Remote::Http(url, _)) => match basic_header(credentials, url) {
            Ok(header) => header,
            Err(Refused(message)) => return TestConnectionOut::failed(message),
        },
        _ => None,
    };
    let git = Git::new(&settings, &remote, authorization);
    let mut args: Vec<OsString> = ["ls-remote", "--symref", "--"].map(OsString::from).to_vec();
    args.push(remote.source());
    args.push("HEAD".into());
    args.push("refs/heads/*".into());
    let listing = match git.run(&args).await {
        Ok(listing) => listing,
        Err(message) => return TestConnectionOut::failed(format!("Could not reach the remote: {message}")),
    };
    let mut branches: Vec<String> =
        listing.lines().filter_map(|l| l.split_once('\t')?.1.strip_prefix("refs/heads/").map(str::to_owned)).collect();
    branches.sort();
    branches.dedup();
    let default =
        listing.lines().find_map(|l| l.strip_prefix("ref: refs/heads/")?.strip_suffix("\tHEAD")).map(str::to_owned);
    let branch = input.branch.as_deref().map(str::trim).filter(|b| !b.is_empty()).unwrap_or("main");
    let (success, message) = if branches.iter().any(|b| b == branch) {
        (true, format!("Connected: branch '{branch}' found"))
    } else if branch == "main"
        && let Some(default) = &default
    {
        (true, format!("Connected: no branch 'main', a sync reads the default branch '{default}'"))
    } else if branches.is_empty() {
        (false, "Connected, but the remote has no branches".to_owned())
    } else {
        (false, format!("Connected, but branch '{branch}' does not exist"))
    };
    TestConnectionOut { success, message, available_branches: Some(branches) }
}

/// Longest a connection test waits for git.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(roots: &[&Path]) -> PullSettings {
        PullSettings { local_roots: roots.iter().map(|p| p.to_path_buf()).collect(), ..PullSettings::default() }
    }

    #[tokio::test]
    async fn remotes_are_classified_and_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("repo");
        std::fs::create_dir(&inside).unwrap();
        git_in(&inside, &["init", "-q"]);
        let guard = Guard::default();
        let open = settings(&[dir.path()]);

        let local = resolve_remote(inside.to_str().unwrap(), &open, &guard).await.unwrap();
        assert_eq!(local, Remote::Local(inside.canonicalize().unwrap()));
        let url = reqwest::Url::from_file_path(&inside).unwrap();
        assert_eq!(resolve_remote(url.as_str(), &open, &guard).await.unwrap(), local);

        let refused = |r: Result<Remote, Refused>| r.unwrap_err().0;
        assert!(
            refused(resolve_remote(inside.to_str().unwrap(), &settings(&[]), &guard).await)
                .contains("PULL_LOCAL_ROOTS")
        );
        assert!(refused(resolve_remote("/etc", &open, &guard).await).contains("outside"));
        let escape = format!("{}/../..", inside.display());
        assert!(refused(resolve_remote(&escape, &open, &guard).await).contains(".."));
        assert!(refused(resolve_remote("relative/path", &open, &guard).await).contains("absolute"));
        let missing = dir.path().join("missing");
        assert!(refused(resolve_remote(missing.to_str().unwrap(), &open, &guard).await).contains("no repository"));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink("/etc", &link).unwrap();
            assert!(refused(resolve_remote(link.to_str().unwrap(), &open, &guard).await).contains("outside"));
        }
        // Not a repository; a `.git` that leads out of the roots; borrowed objects.
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        assert!(refused(resolve_remote(plain.to_str().unwrap(), &open, &guard).await).contains("not a git repository"));
        let elsewhere = tempfile::tempdir().unwrap();
        git_in(elsewhere.path(), &["init", "-q"]);
        let pointing = dir.path().join("pointing");
        std::fs::create_dir(&pointing).unwrap();
        std::fs::write(pointing.join(".git"), format!("gitdir: {}\n", elsewhere.path().join(".git").display()))
            .unwrap();
        assert!(refused(resolve_remote(pointing.to_str().unwrap(), &open, &guard).await).contains("outside"));
        let borrowing = dir.path().join("borrowing");
        std::fs::create_dir(&borrowing).unwrap();
        git_in(&borrowing, &["init", "-q"]);
        std::fs::write(borrowing.join(".git/objects/info/alternates"), "/elsewhere/objects\n").unwrap();
        assert!(refused(resolve_remote(borrowing.to_str().unwrap(), &open, &guard).await).contains("alternates"));
        for ssh in ["git@github.com:acme/api.git", "ssh://git@example.com/a.git", "git://example.com/a.git"] {
            assert!(refused(resolve_remote(ssh, &open, &guard).await).contains("SSH"), "{ssh}");
        }
        // The SSRF guard: loopback is refused unless allow-listed.
        assert!(refused(resolve_remote("https://127.0.0.1/a.git", &open, &guard).await).contains("not allowed"));
        let userinfo = refused(resolve_remote("https://bob:s3cret@93.184.216.34/a.git", &open, &guard).await);
        assert!(userinfo.contains("put the token in credentials") && !userinfo.contains("s3cret"), "{userinfo}");
        let public = resolve_remote("https://93.184.216.34/a.git", &open, &guard).await.unwrap();
        assert_eq!(public.source(), OsString::from("https://93.184.216.34/a.git"));
    }

    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Serves the files of a bare repository (git's "dumb" HTTP protocol) to requests carrying
    /// the expected `Authorization` header, and 401 to the others.
    struct DumbHttp {
        root: PathBuf,
        authorization: String,
    }

    impl wiremock::Respond for DumbHttp {
        fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
            let authorized =
                request.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(self.authorization.as_str());
            if !authorized {
                return wiremock::ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"git\"");
            }
            let relative = request.url.path().trim_start_matches("/repo.git/");
            match std::fs::read(self.root.join(relative)) {
                Ok(bytes) => wiremock::ResponseTemplate::new(200).set_body_bytes(bytes),
                Err(_) => wiremock::ResponseTemplate::new(404),
            }
        }
    }

    /// The token reaches the server as a header (never in the URL, the arguments or the error),
    /// and a clone then a fetch over HTTP bring the new commits.
    #[tokio::test]
    async fn fetches_over_http_with_the_token_in_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git_in(&work, &["init", "-q", "-b", "main"]);
        for i in 0..3 {
            std::fs::write(work.join("a.txt"), "line\n".repeat(i + 1)).unwrap();
            git_in(&work, &["add", "-A"]);
            git_in(&work, &["commit", "-q", "-m", &format!("change {i}")]);
        }
        let served = dir.path().join("served.git");
        git_in(dir.path(), &["clone", "-q", "--bare", work.to_str().unwrap(), served.to_str().unwrap()]);
        git_in(&served, &["update-server-info"]);

        let token = "s3cret-token-value";
        let header =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}")));
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .respond_with(DumbHttp { root: served.clone(), authorization: header.clone() })
            .mount(&server)
            .await;
        let settings = PullSettings { cache_dir: dir.path().join("cache"), ..PullSettings::default() };
        // By name, so git connects through the pinned, checked addresses (loopback is allowed
        // here the way OUTBOUND_ALLOWLIST allows it).
        let loopback = crate::http::ssrf::OutboundSettings {
            allowlist: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        let url = format!("http://localhost:{}/repo.git", server.address().port());
        let remote = resolve_remote(&url, &settings, &Guard::new(&loopback)).await.unwrap();
        let Remote::Http(_, Some(pinned)) = &remote else { panic!("a host name is pinned: {remote:?}") };
        assert!(pinned.starts_with(&format!("localhost:{}:", server.address().port())), "{pinned}");
        // Without the allowance, loopback is refused after resolving the name.
        let refused = resolve_remote(&url, &settings, &Guard::default()).await.unwrap_err().0;
        assert!(refused.contains("localhost resolves to"), "{refused}");
        let repo_id = Uuid::new_v4();

        // Without the token: refused, and nothing is left in the cache.
        let git = Git::new(&settings, &remote, None);
        let error = fetch(&git, repo_id, &remote).await.unwrap_err();
        assert!(!settings.cache_path(repo_id).exists());
        assert!(!error.is_empty());

        let git = Git::new(&settings, &remote, Some(format!("Authorization: {header}")));
        let clone = fetch(&git, repo_id, &remote).await.unwrap();
        let head = git_in(&work, &["rev-parse", "HEAD"]);
        assert_eq!(recap_git::resolve_ref(&clone, Some("main")).unwrap().sha, head);

        std::fs::write(work.join("b.txt"), "new\n").unwrap();
        git_in(&work, &["add", "-A"]);
        git_in(&work, &["commit", "-q", "-m", "later"]);
        git_in(&work, &["push", "-q", served.to_str().unwrap(), "main"]);
        git_in(&served, &["update-server-info"]);
        fetch(&git, repo_id, &remote).await.unwrap();
        let new_head = git_in(&work, &["rev-parse", "HEAD"]);
        assert_eq!(recap_git::resolve_ref(&clone, Some("main")).unwrap().sha, new_head);
        let walked: Vec<String> =
            recap_git::walk(&clone, "main", Some(&head)).unwrap().map(|r| r.unwrap().sha).collect();
        assert_eq!(walked, vec![new_head]);

        // A wrong token: git's error comes back without the token.
        let wrong = format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}-old"))
        );
        let git = Git::new(&settings, &remote, Some(wrong));
        let error = fetch(&git, Uuid::new_v4(), &remote).await.unwrap_err();
        assert!(!error.contains(token), "{error}");
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            mask_credentials("fatal: unable to access 'https://bob:s3cret@example.com/a.git/': 403"),
            "fatal: unable to access 'https://***@example.com/a.git/': 403"
        );
        assert_eq!(mask_credentials("no url here"), "no url here");
    }

    #[test]
    fn due_follows_the_cron_expression_or_the_interval() {
        let now = time::macros::datetime!(2026-12-01 10:07 UTC);
        let hour = Duration::from_secs(3600);
        assert!(is_due(None, None, hour, now));
        assert!(!is_due(Some(now - Duration::from_secs(600)), None, hour, now));
        assert!(is_due(Some(now - Duration::from_secs(3600)), None, hour, now));
        // Every quarter hour: a tick (10:00) lies between 09:58 and 10:07, none between 10:01 and 10:07.
        assert!(is_due(Some(now - Duration::from_secs(540)), Some("*/15 * * * *"), hour, now));
        assert!(!is_due(Some(now - Duration::from_secs(360)), Some("*/15 * * * *"), hour, now));
        // Not an expression: the interval decides.
        assert!(!is_due(Some(now - Duration::from_secs(540)), Some("hourly"), hour, now));
    }

    #[test]
    fn settings_are_checked() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| (*v).to_owned())
        };
        let s = PullSettings::from_lookup(&get(&[
            ("PULL_LOCAL_ROOTS", "/srv/git:/home/git"),
            ("PULL_SYNC_SCHEDULE", "off"),
        ]))
        .unwrap();
        assert_eq!(s.local_roots, vec![PathBuf::from("/srv/git"), PathBuf::from("/home/git")]);
        assert_eq!(s.schedule, None);
        for (var, value) in [
            ("PULL_LOCAL_ROOTS", "srv/git"),
            ("PULL_SYNC_SCHEDULE", "every hour"),
            ("PULL_SYNC_INTERVAL", "soon"),
            ("PULL_SYNC_TIMEOUT", "0"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(var, value)]));
            assert_eq!(PullSettings::from_lookup(&get(pairs)).unwrap_err().var, var);
        }
    }
}
