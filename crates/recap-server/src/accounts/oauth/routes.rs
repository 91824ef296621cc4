use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Callback, Provider};
use crate::{
    accounts::{model::TokenOut, service::RequestMeta},
    error::{ApiError, ApiResult, ErrorEnvelope},
    http::extract::{Path, Query},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(oauth_login)).routes(routes!(oauth_callback))
}

fn provider(name: &str) -> ApiResult<Provider> {
    Provider::parse(name).ok_or_else(|| ApiError::not_found("OAuth provider not found"))
}

/// Neither the redirect nor the tokens may be cached anywhere.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(location: &str) -> ApiResult<Response> {
    let location = HeaderValue::from_str(location).map_err(ApiError::internal)?;
    Ok(no_store((StatusCode::FOUND, [(header::LOCATION, location)]).into_response()))
}

/// Start signing in with GitHub or Google (redirect to the provider).
///
/// The redirect carries a single-use `state` and a PKCE (S256) challenge; the sign-in must be
/// completed within ten minutes.
#[utoipa::path(get, path = "/api/v1/oauth/{provider}/login", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`")),
    responses(
        (status = 302, description = "Redirect to the provider's authorize page"),
        (status = 404, body = ErrorEnvelope, description = "Unknown provider"),
        (status = 503, body = ErrorEnvelope, description = "The provider is not configured")))]
async fn oauth_login(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let url = super::begin(&state, provider(&name)?).await?;
    redirect(&url)
}

/// What the provider appends to the redirect URI.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user declined or the request was refused.
    error: Option<String>,
    error_description: Option<String>,
}

/// Complete an OAuth sign-in (the provider's redirect back).
///
/// Finds the user by provider account, else links the account with the same verified e-mail,
/// else creates one without a password. Answers the tokens, or redirects to
/// `OAUTH_REDIRECT_URL?access_token=…&refresh_token=…` when that is set.
#[utoipa::path(get, path = "/api/v1/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`"), CallbackQuery),
    responses(
        (status = 200, body = TokenOut),
        (status = 302, description = "Redirect to OAUTH_REDIRECT_URL with the tokens in the query"),
        (status = 400, body = ErrorEnvelope, description = "Invalid state, provider error, rejected code, or no verified e-mail"),
        (status = 401, body = ErrorEnvelope, description = "The account is disabled"),
        (status = 403, body = ErrorEnvelope, description = "The account is pending approval"),
        (status = 404, body = ErrorEnvelope, description = "Unknown provider"),
        (status = 502, body = ErrorEnvelope, description = "The provider failed"),
        (status = 503, body = ErrorEnvelope, description = "The provider is not configured")))]
async fn oauth_callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    meta: RequestMeta,
    Query(query): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let provider = provider(&name)?;
    let callback = Callback {
        code: query.code,
        state: query.state,
        error: query.error,
        error_description: query.error_description,
    };
    let tokens = super::complete(&state, provider, callback, &meta).await?;
    match &state.settings.oauth.redirect_url {
        Some(target) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", &tokens.access_token)
                .append_pair("refresh_token", &tokens.refresh_token)
                .finish();
            let separator = if target.contains('?') { '&' } else { '?' };
            redirect(&format!("{target}{separator}{query}"))
        }
        None => Ok(no_store(axum::Json(tokens).into_response())),
    }
}
