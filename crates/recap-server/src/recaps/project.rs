//! `GET /api/v1/projects/{id}/recap`: a recap of a Recap project's ingested commits, streamed
//! as Server-Sent Events (`data: {"chunk": …}` … `data: {"chunk": "</end>"}`), or one JSON answer
//! with `stream=false`.

use std::convert::Infallible;

use axum::{
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use recap_llm::{CancellationToken, RecapTask};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{END, safe_chunk};
use crate::{
    accounts::auth::CurrentUser,
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    gitrecap::{
        activity::{Bound, parse_date, render},
        model::{Entry, EntryKind},
    },
    http::extract::{Path, Query},
    on_db,
    projects::access::{ProjectRole, require_project},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(project_recap))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecapParams {
    /// Start (RFC 3339 or YYYY-MM-DD); default 7 days before `until`.
    pub since: Option<String>,
    /// End (a date means the end of that day); default now.
    pub until: Option<String>,
    /// Comma-separated author names or e-mails.
    pub authors: Option<String>,
    /// Bullet points, 1–15 (default 5).
    pub n: Option<i64>,
    /// `false` for one JSON answer instead of an event stream.
    pub stream: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecapOut {
    pub recap: String,
    /// How many commits the recap covers.
    pub commits: usize,
    pub provider: String,
}

#[derive(FromRow)]
struct CommitLine {
    repo: String,
    message_title: String,
    message_body: Option<String>,
    commit_date: OffsetDateTime,
    author_name: String,
    author_email: String,
}

fn query_error(name: &str, msg: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(vec!["query".into(), name.into()], msg, "value_error")])
}

/// Commits of the project in the window, capped so one request cannot pull the whole history.
async fn activity(
    state: &AppState,
    project_id: Uuid,
    since: OffsetDateTime,
    until: OffsetDateTime,
    authors: &[String],
) -> ApiResult<Vec<Entry>> {
    const SQL: &str = "SELECT r.name AS repo, c.message_title, c.message_body, c.commit_date, c.author_name, c.author_email \
         FROM commits c JOIN repositories r ON r.id = c.repo_id \
         WHERE r.project_id = $1 AND c.commit_date >= $2 AND c.commit_date <= $3 ORDER BY c.commit_date DESC LIMIT 5000";
    let rows: Vec<CommitLine> = match &state.db {
        // SQLite stores commit dates in the fixed-width form, so bind the same form.
        crate::db::Db::Sqlite(pool) => {
            sqlx::query_as(SQL)
                .bind(project_id)
                .bind(crate::time::sortable(since))
                .bind(crate::time::sortable(until))
                .fetch_all(pool)
                .await?
        }
        db => on_db!(db, |pool| sqlx::query_as(SQL).bind(project_id).bind(since).bind(until).fetch_all(pool).await)?,
    };
    Ok(rows
        .into_iter()
        .filter(|r| {
            authors.is_empty()
                || authors
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&r.author_name) || a.eq_ignore_ascii_case(&r.author_email))
        })
        .map(|r| {
            let message = match r.message_body.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
                Some(body) => format!("{}\n{}", r.message_title, body),
                None => r.message_title,
            };
            Entry::new(EntryKind::Commit, r.repo, &message, r.commit_date)
        })
        .collect())
}

/// A recap of the project's commits (any role), streamed as Server-Sent Events unless `stream=false`.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/recap", tag = "recaps", security(("bearer" = [])), params(("project_id" = Uuid, Path), RecapParams),
    responses((status = 200, description = "`text/event-stream` of `{\"chunk\": …}` ending with `{\"chunk\": \"</end>\"}`, or JSON with `stream=false`", body = RecapOut),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope)))]
async fn project_recap(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(project_id): Path<String>,
    Query(params): Query<RecapParams>,
) -> ApiResult<Response> {
    let n = params.n.unwrap_or(recap_llm::DEFAULT_BULLETS as i64);
    if !(1..=recap_llm::MAX_BULLETS as i64).contains(&n) {
        return Err(query_error("n", "must be between 1 and 15"));
    }
    let until = match params.until.as_deref() {
        Some(v) => {
            parse_date(v, Bound::End).ok_or_else(|| query_error("until", "must be a date or an RFC 3339 timestamp"))?
        }
        None => OffsetDateTime::now_utc(),
    };
    let since = match params.since.as_deref() {
        Some(v) => parse_date(v, Bound::Start)
            .ok_or_else(|| query_error("since", "must be a date or an RFC 3339 timestamp"))?,
        None => until.checked_sub(time::Duration::days(7)).unwrap_or(until),
    };
    let authors: Vec<String> = params
        .authors
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let (project, _) = require_project(&state.db, &project_id, caller.user.id, ProjectRole::Viewer).await?;
    let entries = activity(&state, project.id, since, until, &authors).await?;
    let count = entries.len();
    let text = if entries.is_empty() { format!("No commits between {since} and {until}.\n") } else { render(&entries) };
    let task = RecapTask::recap(text, n as u8);
    let request = task.to_request_seeded(rand::random());
    let llm_error = |e: recap_llm::LlmError| {
        let status = axum::http::StatusCode::from_u16(e.http_status()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
        ApiError::new(status, "EXTERNAL_SERVICE_ERROR", format!("LLM provider error: {e}"))
    };

    if params.stream == Some(false) {
        let recap =
            recap_llm::complete(state.llm.as_ref(), request, CancellationToken::new()).await.map_err(llm_error)?;
        return Ok(
            axum::Json(RecapOut { recap, commits: count, provider: state.llm.name().to_owned() }).into_response()
        );
    }
    let cancel = CancellationToken::new();
    let chunks = state.llm.stream(request, cancel.clone()).await.map_err(llm_error)?;
    // Dropping the response (client gone) drops the guard and cancels the provider call.
    let guard = cancel.drop_guard();
    let events = chunks
        .map(move |item| {
            let _keep = &guard;
            let frame = match item {
                Ok(chunk) => serde_json::json!({"chunk": safe_chunk(chunk)}),
                Err(e) => serde_json::json!({"error": format!("LLM provider error: {e}"), "chunk": ""}),
            };
            Ok::<_, Infallible>(Event::default().data(frame.to_string()))
        })
        .chain(futures::stream::once(async {
            Ok(Event::default().data(serde_json::json!({"chunk": END}).to_string()))
        }));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
