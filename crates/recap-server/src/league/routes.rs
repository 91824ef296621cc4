use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    scoring::{Coefficients, FIX_WORDS, WIP_WORDS, metrics},
    stats,
    store::{self, PersonTotals},
};
use crate::{
    accounts::auth::CurrentUser,
    audit::{self, AuditEntry},
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::{
        extract::{Json, Path, Query},
        pagination::PageParams,
    },
    projects::access::{ProjectRole, require_project},
    state::AppState,
    sync::writer::write_tx,
    time::rfc3339,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_scoring, put_scoring))
        .routes(routes!(get_scoring_legacy, put_scoring_legacy))
        .routes(routes!(list_identities, create_identity))
        .routes(routes!(delete_identity))
        .routes(routes!(leaderboard))
        .routes(routes!(commit_metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScoringOut {
    pub project_id: Uuid,
    pub scoring_coefficients: Coefficients,
    /// `null` while the project uses the defaults.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ScoringIn {
    /// Any subset; missing coefficients take their defaults.
    pub scoring_coefficients: Coefficients,
}

async fn read_scoring(state: &AppState, caller: &CurrentUser, project_id: &str) -> ApiResult<axum::Json<ScoringOut>> {
    let (project, _) = require_project(&state.db, project_id, caller.user.id, ProjectRole::Viewer).await?;
    let row = store::scoring(&state.db, project.id).await?;
    Ok(axum::Json(match row {
        Some(r) => ScoringOut {
            project_id: project.id,
            scoring_coefficients: r.coefficients.0,
            created_at: Some(rfc3339(r.created_at)),
            updated_at: r.updated_at.map(rfc3339),
        },
        None => ScoringOut {
            project_id: project.id,
            scoring_coefficients: Coefficients::default(),
            created_at: None,
            updated_at: None,
        },
    }))
}

/// Changing coefficients rebuilds the project's totals in the same transaction, so no board
/// ever mixes old and new scoring. That takes seconds for a million commits: on SQLite it waits
/// its turn in the ingest writer's queue (and pushes wait behind it) rather than hold the write
/// lock from another connection, which made concurrent pushes fail after the lock timeout.
async fn write_scoring(
    state: &AppState,
    caller: &CurrentUser,
    project_id: &str,
    input: ScoringIn,
) -> ApiResult<axum::Json<ScoringOut>> {
    let (project, _) = require_project(&state.db, project_id, caller.user.id, ProjectRole::Maintainer).await?;
    input.scoring_coefficients.validate()?;
    let coefficients = &input.scoring_coefficients;
    write_tx!(alone: &state.sync.writer, &state.db, |tx| async {
        stats::lock_for_rescoring(tx, project.id).await?;
        store::put_scoring(tx, project.id, coefficients).await?;
        stats::recompute(tx, project.id).await?;
        audit::record(
            tx,
            AuditEntry::new("update_project_config", Some(caller.user.id), Some(caller.ip))
                .resource("project_config", project.id),
        )
        .await
    }
    .await)?;
    read_scoring(state, caller, project_id).await
}

/// The project's scoring coefficients (any role).
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/scoring", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)),
    responses((status = 200, body = ScoringOut), (status = 404, body = ErrorEnvelope)))]
async fn get_scoring(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
) -> ApiResult<axum::Json<ScoringOut>> {
    read_scoring(&state, &caller, &project_id).await
}

/// Change the scoring coefficients (owner or maintainer); totals are recomputed at once.
#[utoipa::path(put, path = "/api/v1/projects/{project_id}/scoring", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)), request_body = ScoringIn,
    responses((status = 200, body = ScoringOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn put_scoring(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Json(input): Json<ScoringIn>,
) -> ApiResult<axum::Json<ScoringOut>> {
    write_scoring(&state, &caller, &project_id, input).await
}

/// The scoring coefficients (the league contract's path).
#[utoipa::path(get, path = "/api/v1/scoring/projects/{project_id}/config", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)),
    responses((status = 200, body = ScoringOut), (status = 404, body = ErrorEnvelope)))]
async fn get_scoring_legacy(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
) -> ApiResult<axum::Json<ScoringOut>> {
    read_scoring(&state, &caller, &project_id).await
}

/// Change the scoring coefficients (the league contract's path).
#[utoipa::path(put, path = "/api/v1/scoring/projects/{project_id}/config", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)), request_body = ScoringIn,
    responses((status = 200, body = ScoringOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn put_scoring_legacy(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Json(input): Json<ScoringIn>,
) -> ApiResult<axum::Json<ScoringOut>> {
    write_scoring(&state, &caller, &project_id, input).await
}

/// One commit's scoring (the league contract's `GET /scoring/commits/{commit_id}/metrics`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitMetricsOut {
    /// `<repo_id>:<sha>`, as in the commit queries.
    pub commit_id: String,
    pub commit_sha: String,
    pub author_email: String,
    pub commit_date: String,
    pub message_title: String,
    pub additions: i64,
    pub deletions: i64,
    pub files_changed: i64,
    pub is_merge: bool,
    pub pts: i64,
    pub reb: i64,
    pub ast: i64,
    pub blk: i64,
    pub tov: i64,
    pub impact_score: f64,
    /// How each figure came about, with this project's coefficients.
    pub breakdown: std::collections::BTreeMap<&'static str, String>,
}

/// The scoring of one commit under its project's current coefficients, with the rule behind
/// each figure. Any role in the commit's project; `commit_id` is `<repo_id>:<sha>` or a bare SHA.
#[utoipa::path(get, path = "/api/v1/scoring/commits/{commit_id}/metrics", tag = "league", security(("bearer" = [])),
    params(("commit_id" = String, Path, description = "`<repo_id>:<sha>` (a commit's `id`), or a full SHA")),
    responses((status = 200, body = CommitMetricsOut), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn commit_metrics(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(commit_id): Path<String>,
) -> ApiResult<axum::Json<CommitMetricsOut>> {
    let commit = crate::sync::service::commit_by_id(&state.db, caller.user.id, &commit_id).await?;
    let repo = crate::projects::store::repo_by_id(&state.db, commit.repo_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Commit not found"))?;
    let c = store::scoring(&state.db, repo.project_id).await?.map(|r| r.coefficients.0).unwrap_or_default();
    let m = metrics(&c, commit.additions, commit.deletions, commit.files_changed, &commit.message_title);
    let title = commit.message_title.to_lowercase();
    let word_rule = |words: &[&str], bonus: i64, name: &str, value: i64| match words.iter().find(|w| title.contains(*w))
    {
        Some(word) => format!("the title contains '{word}': {name} {bonus} = {value}"),
        None => format!("the title contains none of {}: 0", words.join(", ")),
    };
    let breakdown = std::collections::BTreeMap::from([
        (
            "pts",
            format!(
                "commit_base {} + min(additions {}, max_additions_cap {}) × additions_weight {} = {} (truncated)",
                c.commit_base, commit.additions, c.max_additions_cap, c.additions_weight, m.pts
            ),
        ),
        (
            "reb",
            format!(
                "min(deletions {}, max_deletions_cap {}) × deletions_weight {} = {} (truncated)",
                commit.deletions, c.max_deletions_cap, c.deletions_weight, m.reb
            ),
        ),
        (
            "ast",
            if commit.files_changed > 3 {
                format!("files_changed {} > 3: multi_file_bonus {}", commit.files_changed, m.ast)
            } else {
                format!("files_changed {} ≤ 3: 0", commit.files_changed)
            },
        ),
        ("blk", word_rule(&FIX_WORDS, c.fix_bonus, "fix_bonus", m.blk)),
        ("tov", word_rule(&WIP_WORDS, c.wip_penalty, "wip_penalty", m.tov)),
        (
            "impact_score",
            format!(
                "PTS {} × 1.0 + REB {} × 0.6 + AST {} × 0.8 + BLK {} × 1.2 + TOV {} × 0.7 = {}",
                m.pts, m.reb, m.ast, m.blk, m.tov, m.impact
            ),
        ),
    ]);
    Ok(axum::Json(CommitMetricsOut {
        commit_id: format!("{}:{}", commit.repo_id, commit.sha),
        commit_sha: commit.sha,
        author_email: commit.author_email,
        commit_date: rfc3339(commit.commit_date),
        message_title: commit.message_title,
        additions: commit.additions,
        deletions: commit.deletions,
        files_changed: commit.files_changed,
        is_merge: commit.is_merge,
        pts: m.pts,
        reb: m.reb,
        ast: m.ast,
        blk: m.blk,
        tov: m.tov,
        impact_score: m.impact,
        breakdown,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentityIn {
    pub display_name: String,
    /// The e-mails this person commits with (at least one; each in one identity per project).
    pub emails: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOut {
    pub id: Uuid,
    pub display_name: String,
    pub emails: Vec<String>,
    pub created_at: String,
}

/// The project's identities (any role).
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/identities", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)),
    responses((status = 200, body = Vec<IdentityOut>), (status = 404, body = ErrorEnvelope)))]
async fn list_identities(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
) -> ApiResult<axum::Json<Vec<IdentityOut>>> {
    let (project, _) = require_project(&state.db, &project_id, caller.user.id, ProjectRole::Viewer).await?;
    let rows = store::list_identities(&state.db, project.id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(i, emails)| IdentityOut {
                id: i.id,
                display_name: i.display_name,
                emails,
                created_at: rfc3339(i.created_at),
            })
            .collect(),
    ))
}

/// Merge several e-mails into one person (owner or maintainer).
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/identities", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path)), request_body = IdentityIn,
    responses((status = 201, body = IdentityOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_identity(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Json(input): Json<IdentityIn>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<IdentityOut>)> {
    let (project, _) = require_project(&state.db, &project_id, caller.user.id, ProjectRole::Maintainer).await?;
    let display_name = input.display_name.trim().to_owned();
    let mut emails: Vec<String> =
        input.emails.iter().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()).collect();
    emails.sort();
    emails.dedup();
    let mut errors = Vec::new();
    if display_name.is_empty() || display_name.chars().count() > 255 {
        errors.push(FieldError::new(
            vec!["body".into(), "display_name".into()],
            "must be 1 to 255 characters",
            "string_length",
        ));
    }
    if emails.is_empty() || emails.iter().any(|e| e.chars().count() > 255) {
        errors.push(FieldError::new(
            vec!["body".into(), "emails".into()],
            "must list 1 or more e-mails of at most 255 characters",
            "value_error",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    let id = store::insert_identity(&mut tx, project.id, &display_name, &emails).await.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            ApiError::already_exists("An e-mail already belongs to another identity of this project")
        } else {
            e.into()
        }
    })?;
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(IdentityOut { id, display_name, emails, created_at: rfc3339(OffsetDateTime::now_utc()) }),
    ))
}

/// Remove an identity (its e-mails count separately again).
#[utoipa::path(delete, path = "/api/v1/projects/{project_id}/identities/{identity_id}", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path), ("identity_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_identity(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path((project_id, identity_id)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    let (project, _) = require_project(&state.db, &project_id, caller.user.id, ProjectRole::Maintainer).await?;
    let not_found = || ApiError::not_found("Identity not found");
    let id = Uuid::parse_str(&identity_id).map_err(|_| not_found())?;
    let mut tx = state.db.begin().await?;
    if !store::delete_identity(&mut tx, project.id, id).await? {
        return Err(not_found());
    }
    tx.commit().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardParams {
    /// `day`, `week` (ISO, from Monday), `month`, `season` (the calendar quarter) or `all` (default).
    pub period: Option<String>,
    /// `commits`, `additions`, `deletions`, `impact` (default) or `active_days`.
    pub metric: Option<String>,
    /// Overrides the period's first day (YYYY-MM-DD).
    pub since: Option<String>,
    /// Overrides the period's last day (YYYY-MM-DD).
    pub until: Option<String>,
    pub page: Option<i64>,
    pub size: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardEntry {
    /// 1-based; equal figures still get distinct ranks (ties broken deterministically).
    pub rank: i64,
    pub identity_id: Option<Uuid>,
    pub display_name: String,
    pub email: String,
    pub commits: i64,
    pub additions: i64,
    pub deletions: i64,
    pub active_days: i64,
    pub pts: i64,
    pub reb: i64,
    pub ast: i64,
    pub blk: i64,
    pub tov: i64,
    pub impact: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardOut {
    pub project_id: Uuid,
    pub period: String,
    pub metric: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub items: Vec<BoardEntry>,
    pub total: i64,
    pub page: i64,
    pub size: i64,
    pub pages: i64,
}

fn query_error(name: &str, msg: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(vec!["query".into(), name.into()], msg, "value_error")])
}

fn parse_day(value: &str, name: &str) -> Result<Date, ApiError> {
    Date::parse(value.trim(), time::macros::format_description!("[year]-[month]-[day]"))
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()))
        .ok_or_else(|| query_error(name, "must be a date (YYYY-MM-DD) in years 0001 to 9999"))
}

/// The first day of `period` containing `today`, or `None` for all time.
pub fn period_start(period: &str, today: Date) -> Option<Option<Date>> {
    Some(match period {
        "all" => None,
        "day" => Some(today),
        "week" => Some(today - time::Duration::days(today.weekday().number_days_from_monday() as i64)),
        "month" => Some(today.replace_day(1).expect("day 1 exists")),
        "season" => {
            let first_month = (u8::from(today.month()) - 1) / 3 * 3 + 1;
            Some(
                Date::from_calendar_date(today.year(), Month::try_from(first_month).expect("1..=12"), 1)
                    .expect("a valid date"),
            )
        }
        _ => return None,
    })
}

fn metric_of(t: &PersonTotals, metric: &str) -> f64 {
    match metric {
        "commits" => t.commits as f64,
        "additions" => t.additions as f64,
        "deletions" => t.deletions as f64,
        "active_days" => t.active_days as f64,
        _ => t.impact,
    }
}

/// The project's leaderboard for a period, from the daily totals kept by ingestion (any role).
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/leaderboard", tag = "league", security(("bearer" = [])), params(("project_id" = Uuid, Path), BoardParams),
    responses((status = 200, body = BoardOut), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn leaderboard(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Query(params): Query<BoardParams>,
) -> ApiResult<axum::Json<BoardOut>> {
    let paging = PageParams { page: params.page, size: params.size }.validate()?;
    let period = params.period.as_deref().unwrap_or("all").to_owned();
    let metric = params.metric.as_deref().unwrap_or("impact").to_owned();
    if !["commits", "additions", "deletions", "impact", "active_days"].contains(&metric.as_str()) {
        return Err(query_error("metric", "must be commits, additions, deletions, impact or active_days"));
    }
    let today = OffsetDateTime::now_utc().date();
    let start =
        period_start(&period, today).ok_or_else(|| query_error("period", "must be day, week, month, season or all"))?;
    let since = params.since.as_deref().map(|v| parse_day(v, "since")).transpose()?.or(start);
    let until = params.until.as_deref().map(|v| parse_day(v, "until")).transpose()?;
    let (project, _) = require_project(&state.db, &project_id, caller.user.id, ProjectRole::Viewer).await?;

    let bots = &state.settings.league.bot_pattern;
    let mut people: Vec<PersonTotals> = store::totals(&state.db, project.id, since, until)
        .await?
        .into_iter()
        // An identity is a person someone merged on purpose; only unmerged e-mails are checked.
        .filter(|t| t.identity_id.is_some() || !(bots.is_match(&t.email) || bots.is_match(&t.author_name)))
        .collect();
    // Deterministic ties: the metric, then impact, then commits, then the person's key.
    people.sort_by(|a, b| {
        metric_of(b, &metric)
            .total_cmp(&metric_of(a, &metric))
            .then(b.impact.total_cmp(&a.impact))
            .then(b.commits.cmp(&a.commits))
            .then(a.person.cmp(&b.person))
    });
    let total = people.len() as i64;
    let items = people
        .into_iter()
        .enumerate()
        .skip(paging.offset() as usize)
        .take(paging.size as usize)
        .map(|(i, t)| BoardEntry {
            rank: i as i64 + 1,
            identity_id: t.identity_id,
            display_name: t.identity_name.clone().unwrap_or_else(|| t.author_name.clone()),
            email: t.email,
            commits: t.commits,
            additions: t.additions,
            deletions: t.deletions,
            active_days: t.active_days,
            pts: t.pts,
            reb: t.reb,
            ast: t.ast,
            blk: t.blk,
            tov: t.tov,
            impact: (t.impact * 100.0).round() / 100.0,
        })
        .collect();
    let page = crate::http::pagination::Page::<()>::new(Vec::new(), total, paging);
    Ok(axum::Json(BoardOut {
        project_id: project.id,
        period,
        metric,
        since: since.map(|d| d.to_string()),
        until: until.map(|d| d.to_string()),
        items,
        total,
        page: page.page,
        size: page.size,
        pages: page.pages,
    }))
}
