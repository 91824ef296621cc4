//! Sign-in with GitHub or Google: authorization code flow with `state` and PKCE (S256).
//!
//! `/login` stores the state with its PKCE verifier (ten minutes, single use) and redirects to the
//! provider. `/callback` takes the state back, exchanges the code, reads the verified e-mail, and
//! finds the user by provider account, else by that e-mail (linking it), else creates one without
//! a password, then signs them in like a password login does.

pub mod provider;
pub mod routes;
pub mod store;

use std::fmt;

use oauth2::url::Url;
use time::{Duration, OffsetDateTime};

use self::provider::Profile;
use super::{
    model::{Email, TokenOut},
    service::{self, RequestMeta},
    store::{self as users, NewUser, UserRow},
};
use crate::{
    audit::{self, AuditEntry},
    config::ConfigError,
    db::is_unique_violation,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// How long a begun sign-in may take.
const STATE_TTL: Duration = Duration::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Github,
    Google,
}

impl Provider {
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "github" => Some(Provider::Github),
            "google" => Some(Provider::Google),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Google => "google",
        }
    }
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Provider::Github => &["read:user", "user:email"],
            Provider::Google => &["openid", "email", "profile"],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered OAuth application. The secret never reaches a log line or a response.
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// `GITHUB_*`, `GOOGLE_*` and `OAUTH_*` settings. A provider without both id and secret is off.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub github: Option<ClientCredentials>,
    pub google: Option<ClientCredentials>,
    /// The redirect URI is `{callback_base_url}/api/v1/oauth/{provider}/callback`.
    pub callback_base_url: String,
    /// `GOOGLE_REDIRECT_URI` (the template's name) overrides Google's redirect URI.
    pub google_redirect_uri: Option<String>,
    /// Where the callback sends the browser with the tokens in the query; unset → JSON answer.
    pub redirect_url: Option<String>,
    /// `{..}/login/oauth/authorize` and `{..}/login/oauth/access_token`.
    pub github_oauth_url: String,
    pub github_api_url: String,
    pub google_auth_url: String,
    pub google_token_url: String,
    pub google_userinfo_url: String,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            github: None,
            google: None,
            callback_base_url: "http://localhost:8000".into(),
            google_redirect_uri: None,
            redirect_url: None,
            github_oauth_url: "https://github.com".into(),
            github_api_url: "https://api.github.com".into(),
            google_auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            google_token_url: "https://oauth2.googleapis.com/token".into(),
            google_userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
        }
    }
}

fn http_url(var: &'static str, value: String) -> Result<String, ConfigError> {
    let ok = Url::parse(&value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    if !ok {
        return Err(ConfigError { var, message: format!("{value:?} is not an http(s) URL") });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn credentials(
    get: &impl Fn(&str) -> Option<String>,
    id_var: &'static str,
    secret_var: &'static str,
) -> Result<Option<ClientCredentials>, ConfigError> {
    match (get(id_var), get(secret_var)) {
        (Some(client_id), Some(client_secret)) => Ok(Some(ClientCredentials { client_id, client_secret })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError { var: secret_var, message: format!("is required when {id_var} is set") }),
        (None, Some(_)) => Err(ConfigError { var: id_var, message: format!("is required when {secret_var} is set") }),
    }
}

impl OAuthSettings {
    /// Reads the settings from a lookup that already trims and drops empty values.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<OAuthSettings, ConfigError> {
        let mut s = OAuthSettings {
            github: credentials(get, "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET")?,
            google: credentials(get, "GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET")?,
            ..OAuthSettings::default()
        };
        let urls: [(&'static str, &mut String); 6] = [
            ("OAUTH_CALLBACK_BASE_URL", &mut s.callback_base_url),
            ("GITHUB_OAUTH_URL", &mut s.github_oauth_url),
            ("GITHUB_API_URL", &mut s.github_api_url),
            ("GOOGLE_AUTH_URL", &mut s.google_auth_url),
            ("GOOGLE_TOKEN_URL", &mut s.google_token_url),
            ("GOOGLE_USERINFO_URL", &mut s.google_userinfo_url),
        ];
        for (var, field) in urls {
            if let Some(v) = get(var) {
                *field = http_url(var, v)?;
            }
        }
        s.google_redirect_uri = get("GOOGLE_REDIRECT_URI").map(|v| http_url("GOOGLE_REDIRECT_URI", v)).transpose()?;
        s.redirect_url = get("OAUTH_REDIRECT_URL").map(|v| http_url("OAUTH_REDIRECT_URL", v)).transpose()?;
        Ok(s)
    }

    pub fn credentials(&self, provider: Provider) -> Option<&ClientCredentials> {
        match provider {
            Provider::Github => self.github.as_ref(),
            Provider::Google => self.google.as_ref(),
        }
    }

    pub fn redirect_uri(&self, provider: Provider) -> String {
        match (provider, &self.google_redirect_uri) {
            (Provider::Google, Some(uri)) => uri.clone(),
            _ => format!("{}/api/v1/oauth/{provider}/callback", self.callback_base_url),
        }
    }

    /// The authorize and token endpoints.
    pub fn endpoints(&self, provider: Provider) -> (String, String) {
        match provider {
            Provider::Github => (
                format!("{}/login/oauth/authorize", self.github_oauth_url),
                format!("{}/login/oauth/access_token", self.github_oauth_url),
            ),
            Provider::Google => (self.google_auth_url.clone(), self.google_token_url.clone()),
        }
    }
}

/// What the provider sent back to `/callback`.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Begins a sign-in: stores the state and PKCE verifier, returns the provider's authorize URL.
pub async fn begin(state: &AppState, provider: Provider) -> ApiResult<String> {
    let authorization = provider::authorize(&state.settings.oauth, provider)?;
    let now = OffsetDateTime::now_utc();
    let mut tx = state.db.begin().await?;
    store::prune_states(&mut tx, now, 100).await?;
    store::insert_state(
        &mut tx,
        &authorization.state,
        provider.as_str(),
        &authorization.pkce_verifier,
        now + STATE_TTL,
    )
    .await?;
    tx.commit().await?;
    Ok(authorization.url)
}

fn invalid_state() -> ApiError {
    ApiError::bad_request("Invalid OAuth state")
}

/// Consumes the state (in its own short transaction: no transaction is held across the calls to
/// the provider) and returns its PKCE verifier when it is known, this provider's, and unexpired.
async fn take_state(state: &AppState, provider: Provider, raw: Option<&str>) -> ApiResult<String> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 256).ok_or_else(invalid_state)?;
    let mut tx = state.db.begin().await?;
    let row = store::take_state(&mut tx, raw).await?;
    tx.commit().await?;
    let row = row.ok_or_else(invalid_state)?;
    if row.provider != provider.as_str() || row.expires_at <= OffsetDateTime::now_utc() {
        return Err(invalid_state());
    }
    Ok(row.pkce_verifier)
}

/// At most `max` characters of provider-supplied text.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Completes a sign-in from the provider's redirect: tokens for the user it identifies.
pub async fn complete(
    state: &AppState,
    provider: Provider,
    callback: Callback,
    meta: &RequestMeta,
) -> ApiResult<TokenOut> {
    let settings = &state.settings.oauth;
    if settings.credentials(provider).is_none() {
        return Err(provider::not_configured(provider));
    }
    if let Some(error) = callback.error.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        // The state is spent either way; its validity does not change the answer.
        let _ = take_state(state, provider, callback.state.as_deref()).await;
        let error = clip(error, 100);
        let description = callback.error_description.as_deref().map(|d| clip(d.trim(), 300));
        return Err(ApiError::bad_request(format!("OAuth sign-in failed at the provider: {error}")).with_details(
            serde_json::json!({ "provider": provider.as_str(), "error": error, "error_description": description }),
        ));
    }
    let verifier = take_state(state, provider, callback.state.as_deref()).await?;
    let code = callback
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ApiError::bad_request("Missing authorization code"))?;

    let access_token = provider::exchange_code(settings, provider, code, &verifier).await?;
    let profile = provider::profile(settings, provider, &access_token).await?;
    let email =
        profile.email.clone().ok_or_else(|| ApiError::bad_request("The provider did not return a verified email"))?;

    let user = find_or_create_user(state, provider, &profile, &email, meta).await?;
    if !user.is_active || user.status == "retired" {
        return Err(ApiError::unauthorized("User account is disabled"));
    }
    if user.status == "pending" {
        return Err(ApiError::forbidden("User account is pending approval"));
    }
    service::sign_in(state, &user, meta, "oauth_login").await
}

/// Runs [`link_or_create`]; a concurrent first sign-in of the same person (a duplicate e-mail or
/// provider account) is retried once, and then finds what the other request created.
async fn find_or_create_user(
    state: &AppState,
    provider: Provider,
    profile: &Profile,
    email: &Email,
    meta: &RequestMeta,
) -> ApiResult<UserRow> {
    match link_or_create(state, provider, profile, email, meta).await {
        Err(e) if is_unique_violation(&e) => Ok(link_or_create(state, provider, profile, email, meta).await?),
        other => Ok(other?),
    }
}

/// In one transaction: the user linked to this provider account; else the user with this
/// verified e-mail, linked now; else a new user without a password (the instance's first real
/// user becomes admin; later ones wait for approval when sign-ups need it), linked.
async fn link_or_create(
    state: &AppState,
    provider: Provider,
    profile: &Profile,
    email: &Email,
    meta: &RequestMeta,
) -> Result<UserRow, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    if let Some(user_id) = store::linked_user(&mut tx, provider.as_str(), &profile.subject).await?
        && let Some(user) = users::user_by_id_tx(&mut tx, user_id).await?
    {
        tx.commit().await?;
        return Ok(user);
    }
    let account = format!("{provider} account {}", profile.subject);
    if let Some(user_id) = store::user_id_by_email(&mut tx, email.as_str()).await? {
        store::insert_account(&mut tx, provider.as_str(), &profile.subject, user_id, email.as_str()).await?;
        audit::record(
            &mut tx,
            AuditEntry::new("oauth_link", Some(user_id), Some(meta.ip)).resource("user", user_id).details(account),
        )
        .await?;
        let user = users::user_by_id_tx(&mut tx, user_id).await?.ok_or(sqlx::Error::RowNotFound)?;
        tx.commit().await?;
        return Ok(user);
    }
    let first = !users::has_real_users(&mut tx).await?;
    let role = if first { "admin" } else { "member" };
    let status = if !first && state.settings.auth.signup_requires_approval { "pending" } else { "approved" };
    let name = profile.name.as_deref().map(|n| clip(n.trim(), 255)).filter(|n| !n.is_empty());
    let user = users::insert_user(
        &mut tx,
        &NewUser {
            email: Some(email.as_str()),
            password_hash: None,
            full_name: name.as_deref(),
            role,
            status,
            remaining_imports: None,
            remaining_messages: None,
        },
    )
    .await?;
    store::insert_account(&mut tx, provider.as_str(), &profile.subject, user.id, email.as_str()).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("register", Some(user.id), Some(meta.ip))
            .resource("user", user.id)
            .details(format!("via {account}; role {role}, status {status}")),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<OAuthSettings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        OAuthSettings::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_the_real_providers() {
        let s = parse(&[]).unwrap();
        assert!(s.github.is_none() && s.google.is_none() && s.redirect_url.is_none());
        assert_eq!(s.redirect_uri(Provider::Github), "http://localhost:8000/api/v1/oauth/github/callback");
        assert_eq!(s.redirect_uri(Provider::Google), "http://localhost:8000/api/v1/oauth/google/callback");
        assert_eq!(
            s.endpoints(Provider::Github),
            ("https://github.com/login/oauth/authorize".into(), "https://github.com/login/oauth/access_token".into())
        );
        assert_eq!(s.endpoints(Provider::Google).1, "https://oauth2.googleapis.com/token");
    }

    #[test]
    fn urls_and_credentials_are_checked_and_named() {
        let s = parse(&[
            ("GITHUB_CLIENT_ID", "id"),
            ("GITHUB_CLIENT_SECRET", "shh"),
            ("OAUTH_CALLBACK_BASE_URL", "https://recap.example/"),
            ("GOOGLE_REDIRECT_URI", "https://recap.example/google"),
        ])
        .unwrap();
        assert_eq!(s.redirect_uri(Provider::Github), "https://recap.example/api/v1/oauth/github/callback");
        assert_eq!(s.redirect_uri(Provider::Google), "https://recap.example/google");
        for (pairs, var) in [
            (&[("GITHUB_CLIENT_ID", "id")][..], "GITHUB_CLIENT_SECRET"),
            (&[("GOOGLE_CLIENT_SECRET", "s")][..], "GOOGLE_CLIENT_ID"),
            (&[("OAUTH_REDIRECT_URL", "localhost:3000/cb")][..], "OAUTH_REDIRECT_URL"),
            (&[("GITHUB_API_URL", "ftp://x.example")][..], "GITHUB_API_URL"),
        ] {
            assert_eq!(parse(pairs).unwrap_err().var, var);
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = parse(&[("GOOGLE_CLIENT_ID", "the-id"), ("GOOGLE_CLIENT_SECRET", "hunter2-secret")]).unwrap();
        let debug = format!("{s:?}");
        assert!(debug.contains("the-id") && !debug.contains("hunter2"), "{debug}");
    }
}
