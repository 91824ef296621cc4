use axum::{
    body::Bytes,
    extract::{FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{AdminUser, ApiCaller, CurrentUser},
    model::*,
    service::{self, RequestMeta},
    store,
};
use crate::{
    error::{ApiError, ApiResult, ErrorEnvelope, FieldError},
    http::{
        client_ip::ClientIp,
        extract::{Json, Path, Query, parse_json},
        pagination::{Page, PageParams},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, put_me))
        .routes(routes!(whoami))
        .routes(routes!(users_me, patch_users_me))
        .routes(routes!(guest))
        .routes(routes!(upgrade))
        .routes(routes!(list_users))
        .routes(routes!(get_user, patch_user, delete_user))
        .routes(routes!(approve_user))
        .routes(routes!(list_sessions, revoke_all_sessions))
        .routes(routes!(revoke_session))
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta {
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0).unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            user_agent: parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        })
    }
}

/// Register an account. The first account of an instance becomes `admin`.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterIn, responses(
    (status = 201, body = UserOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn register(
    State(state): State<AppState>,
    caller: Option<CurrentUser>,
    meta: RequestMeta,
    Json(input): Json<RegisterIn>,
) -> ApiResult<(StatusCode, axum::Json<UserOut>)> {
    let user = service::register(&state, input, caller.as_ref().map(|c| c.user.as_ref()), &meta).await?;
    Ok((StatusCode::CREATED, axum::Json(UserOut::from(&user))))
}

/// Sign in with e-mail and password: JSON `{email, password}` or the OAuth2 password form
/// (`username`, `password`, form-encoded).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn, responses(
    (status = 200, body = TokenOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<TokenOut>> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let input = if is_form {
        let form: LoginForm = serde_urlencoded::from_bytes(&body).map_err(|e| {
            ApiError::validation(vec![FieldError::new(vec!["body".into()], e.to_string(), "value_error")])
        })?;
        LoginIn { email: form.username, password: form.password }
    } else {
        parse_json::<LoginIn>(&body)?
    };
    Ok(axum::Json(service::login(&state, input, &meta).await?))
}

/// Exchange a refresh token for a new access token (and a new refresh token when rotating).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshIn, responses(
    (status = 200, body = RefreshOut), (status = 401, body = ErrorEnvelope)))]
async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    Json(input): Json<RefreshIn>,
) -> ApiResult<axum::Json<RefreshOut>> {
    Ok(axum::Json(service::refresh(&state, &input.refresh_token, &meta).await?))
}

/// End the session of the bearer token, or of the refresh token in the body. Always 204.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = LogoutIn, description = "optional"),
    responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    caller: Option<CurrentUser>,
    meta: RequestMeta,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let input: LogoutIn =
        if body.iter().all(u8::is_ascii_whitespace) { LogoutIn::default() } else { parse_json(&body)? };
    let session = caller.as_ref().and_then(|c| c.session_id.map(|s| (c.user.id, s)));
    service::logout(&state, session, input.refresh_token.as_deref(), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorEnvelope)))]
async fn me(caller: CurrentUser) -> axum::Json<UserOut> {
    axum::Json(UserOut::from(caller.user.as_ref()))
}

/// Who the credential belongs to: a JWT or an API key (machine clients use it to check a key).
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WhoAmIOut), (status = 401, body = ErrorEnvelope)))]
async fn whoami(caller: ApiCaller) -> axum::Json<WhoAmIOut> {
    let (credential, scopes, key_prefix) = match &caller.api_key {
        Some(key) => ("api_key", key.scopes.split(',').map(str::to_owned).collect(), Some(key.prefix.clone())),
        None => ("jwt", super::api_keys::SCOPES.iter().map(|s| (*s).to_owned()).collect(), None),
    };
    axum::Json(WhoAmIOut { user: UserOut::from(caller.user.as_ref()), credential, scopes, key_prefix })
}

/// Change the signed-in user's profile (a password change needs `current_password`).
#[utoipa::path(put, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn put_me(
    State(state): State<AppState>,
    caller: CurrentUser,
    meta: RequestMeta,
    Json(patch): Json<ProfilePatch>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = service::update_profile(&state, &caller.user, caller.session_id, patch, &meta).await?;
    Ok(axum::Json(UserOut::from(&user)))
}

/// The signed-in user (template path).
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = ErrorEnvelope)))]
async fn users_me(caller: CurrentUser) -> axum::Json<UserOut> {
    me(caller).await
}

/// Change the signed-in user's profile (template path).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn patch_users_me(
    state: State<AppState>,
    caller: CurrentUser,
    meta: RequestMeta,
    patch: Json<ProfilePatch>,
) -> ApiResult<axum::Json<UserOut>> {
    put_me(state, caller, meta, patch).await
}

/// Start as a guest: tokens for a new account with import and message quotas.
#[utoipa::path(post, path = "/api/v1/auth/guest", tag = "auth", responses((status = 201, body = TokenOut)))]
async fn guest(State(state): State<AppState>, meta: RequestMeta) -> ApiResult<(StatusCode, axum::Json<TokenOut>)> {
    Ok((StatusCode::CREATED, axum::Json(service::create_guest(&state, &meta).await?)))
}

/// Turn the signed-in guest into a full account, keeping everything it owns.
#[utoipa::path(post, path = "/api/v1/auth/upgrade", tag = "auth", security(("bearer" = [])), request_body = UpgradeIn,
    responses((status = 200, body = UserOut), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn upgrade(
    State(state): State<AppState>,
    caller: CurrentUser,
    meta: RequestMeta,
    Json(input): Json<UpgradeIn>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = service::upgrade_guest(&state, &caller.user, input, &meta).await?;
    Ok(axum::Json(UserOut::from(&user)))
}

/// Every user (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<UserOut>), (status = 403, body = ErrorEnvelope)))]
async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<UserOut>>> {
    let paging = params.validate()?;
    let (rows, total) = store::list_users(&state.db, paging).await?;
    Ok(axum::Json(Page::new(rows.iter().map(UserOut::from).collect(), total, paging)))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = store::user_by_id(&state.db, id).await?.ok_or_else(|| ApiError::not_found("User not found"))?;
    Ok(axum::Json(UserOut::from(&user)))
}

/// Change a user's role, activation or status (admin; never one's own).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UserPatch,
    responses((status = 200, body = UserOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn patch_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(patch): Json<UserPatch>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = service::admin_update(&state, &admin.user, id, patch, &meta).await?;
    Ok(axum::Json(UserOut::from(&user)))
}

/// Delete a user and everything they own (admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    service::delete_user(&state, &admin.user, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Approve a pending user (admin).
#[utoipa::path(post, path = "/api/v1/users/{id}/approve", tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = UserOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn approve_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<UserOut>> {
    let user = service::approve(&state, &admin.user, id, &meta).await?;
    Ok(axum::Json(UserOut::from(&user)))
}

/// The caller's active sessions, most recently used first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<SessionOut>), (status = 401, body = ErrorEnvelope)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<Page<SessionOut>>> {
    let paging = params.validate()?;
    let (rows, total) = store::list_sessions(&state.db, caller.user.id, paging).await?;
    let items = rows.iter().map(|s| SessionOut::new(s, caller.session_id)).collect();
    Ok(axum::Json(Page::new(items, total, paging)))
}

/// End one of the caller's sessions; its access tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    service::revoke_session(&state, caller.user.id, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller, this one included.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = LogoutAllOut)))]
async fn revoke_all_sessions(
    State(state): State<AppState>,
    caller: CurrentUser,
    meta: RequestMeta,
) -> ApiResult<axum::Json<LogoutAllOut>> {
    let count = service::revoke_all_sessions(&state, caller.user.id, &meta).await?;
    Ok(axum::Json(LogoutAllOut { message: "Successfully logged out from all sessions", sessions_logged_out: count }))
}
