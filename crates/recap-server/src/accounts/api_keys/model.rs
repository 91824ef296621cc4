use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::store::ApiKeyRow;
use crate::time::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiKeyIn {
    /// 1 to 255 characters.
    pub name: String,
    /// `sync:commits`, `read:repos` or `sync:commits,read:repos` (the default).
    pub scopes: Option<String>,
    /// 1 to 365.
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    /// `active` or `revoked`.
    pub status: String,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    pub usage_count: i64,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&ApiKeyRow> for ApiKeyOut {
    fn from(r: &ApiKeyRow) -> Self {
        ApiKeyOut {
            id: r.id,
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            scopes: r.scopes.clone(),
            status: r.status.clone(),
            last_used_at: r.last_used_at.map(rfc3339),
            last_used_ip: r.last_used_ip.clone(),
            usage_count: r.usage_count,
            expires_at: r.expires_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(rfc3339),
        }
    }
}

/// The create answer: the key's fields plus `full_key`, shown this once only.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    pub full_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyRevokedOut {
    pub message: String,
    pub revoked_key: ApiKeyOut,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[serde(default)]
    pub include_revoked: bool,
}
