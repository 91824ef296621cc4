//! Request and response types of the accounts routes, and the typed values they are parsed into.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{SessionRow, UserRow};
use crate::{
    error::{ApiError, FieldError},
    time::rfc3339,
};

/// A trimmed, lower-cased, plausibly deliverable e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let email = raw.trim().to_lowercase();
        let (local, domain) = email.split_once('@')?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && email.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !email.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
            && !domain.contains('@');
        ok.then_some(Email(email))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or("")
    }
}

pub fn field(name: &str, msg: &str, kind: &str) -> FieldError {
    FieldError::new(vec!["body".into(), name.into()], msg, kind)
}

pub fn parse_email(raw: &str, name: &str) -> Result<Email, ApiError> {
    Email::parse(raw)
        .ok_or_else(|| ApiError::validation(vec![field(name, "value is not a valid email address", "value_error")]))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// Alias of `full_name` (the template frontend reads `name`).
    pub name: Option<String>,
    /// `full_name`, else the e-mail's local part, else "Guest".
    pub display_name: String,
    /// `admin`, `member` or `guest`.
    pub role: String,
    /// `approved`, `pending` or `retired`.
    pub status: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_guest: bool,
    pub remaining_imports: Option<i64>,
    pub remaining_messages: Option<i64>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl From<&UserRow> for UserOut {
    fn from(u: &UserRow) -> Self {
        let display_name = u
            .full_name
            .clone()
            .or_else(|| u.email.as_deref().map(|e| e.split('@').next().unwrap_or(e).to_owned()))
            .unwrap_or_else(|| "Guest".to_owned());
        UserOut {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            name: u.full_name.clone(),
            display_name,
            role: u.role.clone(),
            status: u.status.clone(),
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            is_guest: u.is_guest(),
            remaining_imports: u.remaining_imports,
            remaining_messages: u.remaining_messages,
            created_at: rfc3339(u.created_at),
            updated_at: u.updated_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterIn {
    pub email: String,
    /// 8 to 128 characters mixing letters with digits or symbols.
    pub password: String,
    pub full_name: Option<String>,
    /// Alias of `full_name`.
    pub name: Option<String>,
    /// Honoured only when an authenticated admin registers someone.
    pub role: Option<String>,
}

/// JSON login; the OAuth2 password form (`username`, `password`) is accepted too.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserOut,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshOut {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutIn {
    pub refresh_token: Option<String>,
}

/// A profile change by the user themself.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfilePatch {
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    /// Required with `password`.
    pub current_password: Option<String>,
    /// Refused (403): a user cannot change their own role or activation.
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

/// An admin's change to a user.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UserPatch {
    pub role: Option<String>,
    pub is_active: Option<bool>,
    /// `approved`, `pending` or `retired`.
    pub status: Option<String>,
    pub full_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpgradeIn {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: Uuid,
    pub device_name: String,
    pub device_type: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the access token making this request.
    pub is_current: bool,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
}

impl SessionOut {
    pub fn new(s: &SessionRow, current: Option<Uuid>) -> SessionOut {
        SessionOut {
            id: s.id,
            device_name: s.device_name.clone(),
            device_type: s.device_type.clone(),
            ip_address: s.ip_address.clone(),
            user_agent: s.user_agent.clone(),
            is_current: Some(s.id) == current,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmIOut {
    pub user: UserOut,
    /// `jwt` or `api_key`.
    pub credential: &'static str,
    /// What the credential may do (a JWT carries every scope of its user).
    pub scopes: Vec<String>,
    pub key_prefix: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutAllOut {
    pub message: &'static str,
    pub sessions_logged_out: usize,
}

/// Browser and device class from a User-Agent, for the session list.
pub fn describe_device(user_agent: Option<&str>) -> (&'static str, &'static str) {
    let ua = user_agent.unwrap_or("").to_lowercase();
    let name = if ua.contains("edg/") || ua.contains("edge") {
        "Edge"
    } else if ua.contains("firefox") {
        "Firefox"
    } else if ua.contains("chrome") || ua.contains("crios") {
        "Chrome"
    } else if ua.contains("safari") {
        "Safari"
    } else {
        "Unknown Browser"
    };
    let kind = if ua.contains("ipad") || ua.contains("tablet") {
        "tablet"
    } else if ua.contains("mobile") || ua.contains("android") || ua.contains("iphone") {
        "mobile"
    } else {
        "desktop"
    };
    (name, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in
            ["", "ada", "@example.com", "ada@", "ada@example", "a b@example.com", "ada@exa..mple.com", "a@b@c.com"]
        {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn devices_are_named() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
        assert_eq!(describe_device(Some(chrome)), ("Chrome", "desktop"));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1";
        assert_eq!(describe_device(Some(iphone)), ("Safari", "mobile"));
        assert_eq!(describe_device(None), ("Unknown Browser", "desktop"));
    }
}
