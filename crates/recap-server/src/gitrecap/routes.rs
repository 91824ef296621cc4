//! The Git Recap HTTP routes the React frontend calls (`/pat`, `/external-signup`, `/repos`,
//! `/actions`, at the server root as the contract's default base path) and the JSON variant of
//! the activity for API users (`/api/v1/activity`).

use axum::{extract::State, http::Uri};
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    activity::{self, Filters, RawQuery},
    model::{
        ActionsOut, ActionsParams, ActivityEntryOut, ActivityParams, ExternalSignupParams, PatIn, ReposOut,
        ReposParams, SessionOut,
    },
    providers::{self, Credential, ProviderKind, local},
    sessions,
};
use crate::{
    accounts::{
        auth::CurrentUser,
        oauth::{Provider, provider::not_configured},
        service::RequestMeta,
    },
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::{
        extract::{Json, Query},
        pagination::{Page, PageParams},
    },
    projects::access::{ProjectRole, require_project},
    state::AppState,
};

/// Longest credential accepted (GitHub tokens are ~100 characters, JWTs a few hundred).
const MAX_CREDENTIAL_LEN: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(external_signup))
        .routes(routes!(list_repos))
        .routes(routes!(list_actions))
        .routes(routes!(list_activity))
}

async fn open_session(state: &AppState, credential: Credential) -> ApiResult<SessionOut> {
    let new = providers::validate(state, &credential).await?;
    let username = new.username.clone();
    let session_id = sessions::create(state, new, &credential.secret).await?;
    Ok(SessionOut { session_id, username })
}

/// Open a provider session from a personal access token.
///
/// The body is JSON whatever its `Content-Type` (the Git Recap frontend sends it as
/// `text/plain`). The token is checked against the provider's "current user" call before a
/// session exists.
#[utoipa::path(post, path = "/pat", tag = "gitrecap",
    request_body(content((PatIn = "application/json"), (PatIn = "text/plain"))),
    responses((status = 200, body = SessionOut),
        (status = 400, description = "Missing pat, unsupported provider, disallowed base URL", body = ErrorEnvelope),
        (status = 401, description = "The provider refused the credential", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 502, description = "The provider is unreachable or failed", body = ErrorEnvelope),
        (status = 503, description = "The provider rate-limits us", body = ErrorEnvelope)))]
async fn create_session(
    State(state): State<AppState>,
    meta: RequestMeta,
    Json(input): Json<PatIn>,
) -> ApiResult<axum::Json<SessionOut>> {
    let non_empty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let secret = non_empty(input.pat)
        .or_else(|| non_empty(input.token))
        .ok_or_else(|| ApiError::bad_request("Missing required field: pat"))?;
    if secret.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::bad_request("The pat is too long"));
    }
    let kind = ProviderKind::parse(input.provider.as_deref())?;
    let credential =
        Credential { kind, secret, base_url: input.base_url, organization_url: input.organization_url, ip: meta.ip };
    Ok(axum::Json(open_session(&state, credential).await?))
}

/// Exchanges a GitHub OAuth code (POST to the token endpoint) for the user's access token.
async fn exchange_github_code(state: &AppState, code: &str) -> ApiResult<String> {
    let credentials = state
        .settings
        .gitrecap
        .github_client
        .as_ref()
        .or(state.settings.oauth.github.as_ref())
        .ok_or_else(|| not_configured(Provider::Github))?;
    let (_, token_url) = state.settings.oauth.endpoints(Provider::Github);
    let failed = || {
        providers::bad_gateway("Error fetching token from GitHub".into())
            .with_details(json!({ "provider": "github", "step": "code exchange" }))
    };
    let response = state
        .gitrecap
        .http
        .post(token_url)
        .header(ACCEPT, "application/json")
        .form(&[
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
            ("code", code),
        ])
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the GitHub code exchange failed");
            failed()
        })?;
    if response.status() != reqwest::StatusCode::OK {
        tracing::warn!(status = response.status().as_u16(), "the GitHub code exchange was refused");
        return Err(failed());
    }
    let body: Value = response.json().await.map_err(|_| failed())?;
    match body.get("access_token").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Ok(token.to_owned()),
        None => {
            // GitHub's error codes are short tokens (`bad_verification_code`); nothing else is echoed.
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            Err(ApiError::bad_request("Failed to retrieve access token")
                .with_details(json!({ "provider": "github", "error": error })))
        }
    }
}

/// The Git Recap frontend's OAuth callback: exchanges GitHub's code for a token, then opens a
/// session exactly as `/pat` does.
#[utoipa::path(get, path = "/external-signup", tag = "gitrecap", params(ExternalSignupParams),
    responses((status = 200, body = SessionOut),
        (status = 400, description = "Unsupported provider, or GitHub refused the code", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 502, description = "GitHub failed", body = ErrorEnvelope),
        (status = 503, description = "GitHub OAuth is not configured", body = ErrorEnvelope)))]
async fn external_signup(
    State(state): State<AppState>,
    meta: RequestMeta,
    Query(params): Query<ExternalSignupParams>,
) -> ApiResult<axum::Json<SessionOut>> {
    let _ = &params.app;
    if !params.provider.trim().eq_ignore_ascii_case("github") {
        return Err(ApiError::bad_request("Unsupported provider").with_details(json!({ "provider": params.provider })));
    }
    let code = params.access_token.trim();
    if code.is_empty() || code.len() > 2048 {
        return Err(ApiError::validation(vec![FieldError::new(
            vec!["query".into(), "accessToken".into()],
            "Field required",
            "missing",
        )]));
    }
    let token = exchange_github_code(&state, code).await?;
    let credential =
        Credential { kind: ProviderKind::Github, secret: token, base_url: None, organization_url: None, ip: meta.ip };
    Ok(axum::Json(open_session(&state, credential).await?))
}

/// The session's repositories (short names, provider order).
#[utoipa::path(get, path = "/repos", tag = "gitrecap", params(ReposParams),
    responses((status = 200, body = ReposOut), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Session not found", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn list_repos(
    State(state): State<AppState>,
    Query(params): Query<ReposParams>,
) -> ApiResult<axum::Json<ReposOut>> {
    let session = sessions::get(&state, &params.session_id).await?;
    let repos = providers::repos(&state, &session).await?;
    Ok(axum::Json(ReposOut {
        repos: repos.iter().map(|r| r.name.clone()).collect(),
        repos_full: repos.into_iter().map(|r| r.full_name).collect(),
    }))
}

/// The session's activity in a window as the recap text, trimmed oldest-first to
/// `MAX_HISTORY_TOKENS`.
///
/// `repo_filter` and `authors` may be repeated and each value comma-separated.
#[utoipa::path(get, path = "/actions", tag = "gitrecap", params(ActionsParams),
    responses((status = 200, body = ActionsOut), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Session not found", body = ErrorEnvelope),
        (status = 422, description = "Missing session_id or an unparsable date", body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn list_actions(State(state): State<AppState>, uri: Uri) -> ApiResult<axum::Json<ActionsOut>> {
    let query = RawQuery::parse(uri.query());
    let session_id = query.required("session_id")?;
    let filters = Filters::from_query(&query)?;
    let session = sessions::get(&state, session_id).await?;
    Ok(axum::Json(activity::actions(&state, &session, &filters).await?))
}

fn int_param(query: &RawQuery, name: &str) -> ApiResult<Option<i64>> {
    match query.first(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                vec!["query".into(), name.into()],
                "Input should be a valid integer",
                "int_parsing",
            )])
        }),
    }
}

/// Activity entries as JSON, oldest first, one page at a time: of a Git Recap session
/// (`session_id`, any provider), or of a Recap project the signed-in caller is a member of
/// (`project_id`; every author unless `authors` is given).
#[utoipa::path(get, path = "/api/v1/activity", tag = "gitrecap", params(ActivityParams),
    security((), ("bearer" = [])),
    responses((status = 200, body = Page<ActivityEntryOut>),
        (status = 401, description = "project_id without a valid bearer token", body = ErrorEnvelope),
        (status = 404, description = "Session or project not found", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn list_activity(
    State(state): State<AppState>,
    caller: Option<CurrentUser>,
    uri: Uri,
) -> ApiResult<axum::Json<Page<ActivityEntryOut>>> {
    let query = RawQuery::parse(uri.query());
    let paging = PageParams { page: int_param(&query, "page")?, size: int_param(&query, "size")? }.validate()?;
    let filters = Filters::from_query(&query)?;
    let non_empty = |name: &str| query.first(name).map(str::trim).filter(|v| !v.is_empty());
    let entries = match (non_empty("session_id"), non_empty("project_id")) {
        (Some(session_id), None) => {
            let session = sessions::get(&state, session_id).await?;
            activity::collect(&state, &session, &filters).await?
        }
        (None, Some(project_id)) => {
            let caller = caller.ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
            let (project, _) = require_project(&state.db, project_id, caller.user.id, ProjectRole::Viewer).await?;
            let scope = local::Scope::Project(project.id);
            let entries = local::commits(&state.db, scope, &filters, filters.authors.as_deref()).await?;
            activity::dedupe_and_sort(entries, &filters)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                vec!["query".into(), "project_id".into()],
                "Give session_id or project_id, not both",
                "value_error",
            )]));
        }
        (None, None) => {
            return Err(ApiError::validation(vec![FieldError::new(
                vec!["query".into(), "session_id".into()],
                "Field required (session_id or project_id)",
                "missing",
            )]));
        }
    };
    let total = entries.len() as i64;
    let items =
        entries.iter().skip(paging.offset() as usize).take(paging.size as usize).map(ActivityEntryOut::from).collect();
    Ok(axum::Json(Page::new(items, total, paging)))
}
