use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct RootOut {
    pub name: &'static str,
    pub version: &'static str,
    pub status: &'static str,
    pub environment: &'static str,
    pub docs: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `healthy` when the process answers.
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct TimedHealthOut {
    pub status: &'static str,
    pub version: &'static str,
    pub timestamp: String,
    pub service: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct LivenessDetails {
    pub version: &'static str,
    pub environment: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct LivenessOut {
    pub status: &'static str,
    pub timestamp: String,
    pub service: &'static str,
    pub details: LivenessDetails,
}

#[derive(Serialize, ToSchema)]
pub struct CheckOut {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    pub database: CheckOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<CheckOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyOut {
    /// `ready`, or `not_ready` (with status 503) when a check failed.
    pub status: &'static str,
    pub timestamp: String,
    pub service: &'static str,
    pub checks: ReadyChecks,
    /// The names of the failed checks.
    pub failed: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Endpoints {
    pub health: &'static str,
    pub docs: &'static str,
    pub openapi: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct StatusOut {
    pub api_version: &'static str,
    pub status: &'static str,
    pub timestamp: String,
    pub version: &'static str,
    pub environment: &'static str,
    /// `sqlite` or `postgres`.
    pub engine: &'static str,
    pub uptime_seconds: u64,
    /// The newest applied migration, `null` on an unmigrated database.
    pub migration_version: Option<i64>,
    /// The newest migration this binary carries.
    pub latest_migration: Option<i64>,
    pub instance_id: Option<String>,
    pub redis: bool,
    pub endpoints: Endpoints,
}

#[derive(Serialize, ToSchema)]
pub struct ApiRootOut {
    pub message: &'static str,
    pub version: &'static str,
    pub docs: &'static str,
}
