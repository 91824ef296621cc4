//! Request and response types of `/api/v1/admin/jobs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::store::JobRow;
use crate::time::rfc3339;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobOut {
    pub id: Uuid,
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `failed` (permanent failure), `dead` (retries used up) or `cancelled`.
    pub state: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it is (or was) due.
    pub run_at: String,
    /// The worker that holds it, or last ran it.
    pub locked_by: Option<String>,
    /// End of the current lease while `running`.
    pub locked_until: Option<String>,
    pub last_error: Option<String>,
    pub unique_key: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<&JobRow> for JobOut {
    fn from(r: &JobRow) -> Self {
        JobOut {
            id: r.id,
            kind: r.kind.clone(),
            state: r.state.clone(),
            payload: r.payload.0.clone(),
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_at: rfc3339(r.run_at),
            locked_by: r.locked_by.clone(),
            locked_until: r.locked_until.map(rfc3339),
            last_error: r.last_error.clone(),
            unique_key: r.unique_key.clone(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// One of `pending`, `running`, `succeeded`, `failed`, `dead`, `cancelled`.
    pub state: Option<String>,
    /// A job kind, e.g. `webhook.deliver`.
    pub kind: Option<String>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 50).
    pub size: Option<i64>,
}

/// Jobs per state (states without jobs count 0).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCountsOut {
    pub counts: BTreeMap<String, i64>,
    pub total: i64,
}
