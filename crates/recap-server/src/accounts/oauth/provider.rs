//! Talking to the providers: the authorize URL, the code exchange (oauth2 over our reqwest
//! client) and the profile calls. Failures become 502 `EXTERNAL_SERVICE_ERROR` bodies that name
//! the provider and the step, never a secret; the cause goes to the log.

use std::{sync::OnceLock, time::Duration};

use axum::http::StatusCode;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
    basic::BasicClient,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{OAuthSettings, Provider};
use crate::{accounts::model::Email, error::ApiError};

/// What a provider tells us about the person signing in.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The provider's stable account id (GitHub's numeric id, Google's `sub`).
    pub subject: String,
    /// The verified e-mail, normalised; `None` when the provider vouches for none.
    pub email: Option<Email>,
    pub name: Option<String>,
}

/// A sign-in about to be sent to the provider.
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub pkce_verifier: String,
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The one HTTP client for providers: rustls, a 10 s timeout, a User-Agent (GitHub refuses
/// requests without one) and no redirects (a token endpoint that redirects could otherwise
/// forward the code and the client secret somewhere else).
fn http() -> Result<&'static reqwest::Client, ApiError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("recap/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ApiError::internal)?;
    Ok(CLIENT.get_or_init(|| client))
}

fn client(settings: &OAuthSettings, provider: Provider) -> Result<Client, ApiError> {
    let credentials = settings.credentials(provider).ok_or_else(|| not_configured(provider))?;
    let (auth, token) = settings.endpoints(provider);
    let url_error = |e: oauth2::url::ParseError| ApiError::internal(anyhow::anyhow!("bad {provider} OAuth URL: {e}"));
    Ok(BasicClient::new(ClientId::new(credentials.client_id.clone()))
        .set_client_secret(ClientSecret::new(credentials.client_secret.clone()))
        // Both providers take the credentials as form fields; GitHub documents only that.
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::new(auth).map_err(url_error)?)
        .set_token_uri(TokenUrl::new(token).map_err(url_error)?)
        .set_redirect_uri(RedirectUrl::new(settings.redirect_uri(provider)).map_err(url_error)?))
}

pub fn not_configured(provider: Provider) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "EXTERNAL_SERVICE_ERROR",
        format!("OAuth provider '{provider}' is not configured"),
    )
    .with_details(json!({ "provider": provider.as_str() }))
}

/// A provider that failed us: the client learns which step, the log learns why.
fn upstream(provider: Provider, step: &'static str, cause: impl std::fmt::Display) -> ApiError {
    tracing::warn!(provider = provider.as_str(), step, error = %cause, "OAuth provider request failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "EXTERNAL_SERVICE_ERROR",
        format!("OAuth provider '{provider}' failed during {step}"),
    )
    .with_details(json!({ "provider": provider.as_str(), "step": step }))
}

/// An OAuth error code is a short token (`invalid_grant`); anything else is not echoed.
fn error_code(raw: &str) -> Option<String> {
    let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| raw.to_owned())
}

/// The authorize URL with a fresh `state` and PKCE S256 challenge.
pub fn authorize(settings: &OAuthSettings, provider: Provider) -> Result<Authorization, ApiError> {
    let client = client(settings, provider)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(CsrfToken::new_random);
    for scope in provider.scopes() {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, state) = request.set_pkce_challenge(challenge).url();
    Ok(Authorization { url: url.to_string(), state: state.secret().clone(), pkce_verifier: verifier.secret().clone() })
}

/// Exchanges the code (with its PKCE verifier) for the provider's access token.
///
/// A rejected code (`invalid_grant`, GitHub's `bad_verification_code`, which GitHub sends with a
/// 200) is the caller's problem: 400. Any other failure is the provider's: 502.
pub async fn exchange_code(
    settings: &OAuthSettings,
    provider: Provider,
    code: &str,
    pkce_verifier: &str,
) -> Result<String, ApiError> {
    const STEP: &str = "the code exchange";
    let client = client(settings, provider)?;
    let rejected = |code: String| {
        ApiError::bad_request(format!("The provider rejected the authorization code ({code})"))
            .with_details(json!({ "provider": provider.as_str(), "error": code }))
    };
    let result = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http()?)
        .await;
    match result {
        Ok(token) => Ok(token.access_token().secret().clone()),
        Err(RequestTokenError::ServerResponse(e)) => {
            let code = error_code(e.error().as_ref()).unwrap_or_else(|| "unknown".into());
            if code == "invalid_grant" || code == "bad_verification_code" {
                return Err(rejected(code));
            }
            Err(upstream(provider, STEP, format!("error response {code}")))
        }
        Err(RequestTokenError::Parse(e, body)) => {
            // GitHub answers 200 with `{"error": ...}` instead of a token.
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).and_then(error_code));
            match error {
                Some(code) if code == "bad_verification_code" || code == "invalid_grant" => Err(rejected(code)),
                // Only the path of the parse error is logged: the body could hold a token.
                _ => Err(upstream(provider, STEP, format!("unexpected response (at {})", e.path()))),
            }
        }
        Err(RequestTokenError::Request(e)) => Err(upstream(provider, STEP, e)),
        Err(RequestTokenError::Other(e)) => Err(upstream(provider, STEP, e)),
    }
}

async fn get_json<T: DeserializeOwned>(
    provider: Provider,
    step: &'static str,
    url: &str,
    access_token: &str,
) -> Result<T, ApiError> {
    let accept = match provider {
        Provider::Github => "application/vnd.github+json",
        Provider::Google => "application/json",
    };
    let response = http()?
        .get(url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, accept)
        .send()
        .await
        .map_err(|e| upstream(provider, step, e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(upstream(provider, step, format!("status {status}")));
    }
    let body = response.bytes().await.map_err(|e| upstream(provider, step, e.without_url()))?;
    serde_json::from_slice(&body).map_err(|e| upstream(provider, step, json_error(&e)))
}

/// The category and position of a JSON error only: serde's message can quote the body.
fn json_error(e: &serde_json::Error) -> String {
    format!("unexpected JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column())
}

#[derive(Deserialize)]
struct GithubUser {
    id: i64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

#[derive(Deserialize)]
struct GoogleUser {
    sub: String,
    email: Option<String>,
    /// A boolean, though some deployments have sent the string `"true"`.
    #[serde(default)]
    email_verified: Value,
    name: Option<String>,
}

/// The signed-in person's profile, with the e-mail only when the provider verified it.
pub async fn profile(settings: &OAuthSettings, provider: Provider, access_token: &str) -> Result<Profile, ApiError> {
    match provider {
        Provider::Github => {
            let api = &settings.github_api_url;
            let user: GithubUser =
                get_json(provider, "the profile request", &format!("{api}/user"), access_token).await?;
            let emails: Vec<GithubEmail> =
                get_json(provider, "the e-mail request", &format!("{api}/user/emails"), access_token).await?;
            let email = emails.iter().find(|e| e.primary && e.verified).and_then(|e| Email::parse(&e.email));
            Ok(Profile { subject: user.id.to_string(), email, name: user.name })
        }
        Provider::Google => {
            let user: GoogleUser =
                get_json(provider, "the profile request", &settings.google_userinfo_url, access_token).await?;
            let verified = user.email_verified == Value::Bool(true) || user.email_verified == "true";
            let email = user.email.as_deref().filter(|_| verified).and_then(Email::parse);
            if user.sub.trim().is_empty() {
                return Err(upstream(provider, "the profile request", "empty sub"));
            }
            Ok(Profile { subject: user.sub, email, name: user.name })
        }
    }
}
