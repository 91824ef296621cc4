use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{MemberRow, ProjectRow, RepoRow};
use crate::{
    error::{ApiError, FieldError},
    time::rfc3339,
};

fn field(name: &str, msg: &str, kind: &str) -> FieldError {
    FieldError::new(vec!["body".into(), name.into()], msg, kind)
}

/// Trimmed text of `min..=max` characters, or a field error.
pub fn text(value: &str, name: &str, min: usize, max: usize, errors: &mut Vec<FieldError>) -> String {
    let v = value.trim().to_owned();
    let n = v.chars().count();
    if n < min || n > max {
        errors.push(field(name, &format!("must be {min} to {max} characters"), "string_length"));
    }
    v
}

pub fn finish<T>(value: T, errors: Vec<FieldError>) -> Result<T, ApiError> {
    if errors.is_empty() { Ok(value) } else { Err(ApiError::validation(errors)) }
}

/// Slug rule of the league contract: after removing `-` and `_`, non-empty and alphanumeric; stored lower-cased.
pub fn slug(value: &str, errors: &mut Vec<FieldError>) -> String {
    let v = value.trim().to_lowercase();
    let core: String = v.chars().filter(|c| *c != '-' && *c != '_').collect();
    if v.chars().count() > 100 || core.is_empty() || !core.chars().all(|c| c.is_ascii_alphanumeric()) {
        errors.push(field("slug", "must be 1 to 100 letters, digits, '-' or '_'", "value_error"));
    }
    v
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectIn {
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectOut {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub repos_count: i64,
    /// The caller's role in the project.
    pub role: String,
}

impl ProjectOut {
    pub fn new(p: &ProjectRow, role: &str) -> ProjectOut {
        ProjectOut {
            id: p.id,
            name: p.name.clone(),
            slug: p.slug.clone(),
            description: p.description.clone(),
            created_by: p.created_by,
            created_at: rfc3339(p.created_at),
            updated_at: p.updated_at.map(rfc3339),
            repos_count: p.repos_count,
            role: role.to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectDetailOut {
    #[serde(flatten)]
    pub project: ProjectOut,
    pub repos: Vec<RepoOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberIn {
    /// The user to add, by id or by e-mail.
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    /// `owner`, `maintainer` or `viewer`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: String,
    pub created_at: String,
}

impl From<&MemberRow> for MemberOut {
    fn from(m: &MemberRow) -> Self {
        MemberOut {
            user_id: m.user_id,
            email: m.email.clone(),
            full_name: m.full_name.clone(),
            role: m.role.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RepoIn {
    pub name: String,
    pub remote_url: Option<String>,
    /// `local`, `ssh` or `https`.
    pub remote_type: Option<String>,
    /// Default `main`.
    pub branch: Option<String>,
    pub sync_frequency: Option<String>,
    /// `push_client` (default) or `pull` (`pull_celery` is accepted as an alias).
    pub sync_method: Option<String>,
    /// Pull sync only, e.g. `{"token": "…"}`; stored encrypted and never returned.
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RepoPatch {
    pub name: Option<String>,
    pub remote_url: Option<String>,
    pub remote_type: Option<String>,
    pub branch: Option<String>,
    pub sync_frequency: Option<String>,
    pub sync_method: Option<String>,
    /// `null` removes stored credentials; leaving the field out keeps them.
    #[schema(value_type = Option<Object>)]
    #[serde(default, deserialize_with = "present")]
    pub credentials: Option<serde_json::Value>,
}

/// A field that is present, even as `null` (`Some(Value::Null)`); a missing field stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    <serde_json::Value as Deserialize>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepoOut {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub remote_url: Option<String>,
    pub remote_type: Option<String>,
    pub branch: String,
    pub sync_frequency: Option<String>,
    pub sync_method: String,
    /// `pending`, `syncing`, `healthy` or `error`.
    pub status: String,
    pub last_sync_at: Option<String>,
    pub last_ingested_sha: Option<String>,
    pub error_message: Option<String>,
    /// Whether credentials are stored (their content is never returned).
    pub has_credentials: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl From<&RepoRow> for RepoOut {
    fn from(r: &RepoRow) -> Self {
        RepoOut {
            id: r.id,
            project_id: r.project_id,
            name: r.name.clone(),
            remote_url: r.remote_url.clone(),
            remote_type: r.remote_type.clone(),
            branch: r.branch.clone(),
            sync_frequency: r.sync_frequency.clone(),
            sync_method: r.sync_method.clone(),
            status: r.status.clone(),
            last_sync_at: r.last_sync_at.map(rfc3339),
            last_ingested_sha: r.last_ingested_sha.clone(),
            error_message: r.error_message.clone(),
            has_credentials: r.credentials_encrypted.is_some(),
            created_at: rfc3339(r.created_at),
            updated_at: r.updated_at.map(rfc3339),
        }
    }
}

pub fn sync_method(value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<&'static str> {
    match value.map(str::trim) {
        None | Some("push_client") => Some("push_client"),
        Some("pull") | Some("pull_celery") => Some("pull"),
        Some(_) => {
            errors.push(field("sync_method", "must be push_client or pull", "enum"));
            None
        }
    }
}

pub fn remote_type(value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v @ ("local" | "ssh" | "https")) => Some(v.to_owned()),
        Some(_) => {
            errors.push(field("remote_type", "must be local, ssh or https", "enum"));
            None
        }
    }
}
