//! The OpenAPI document (generated from the handlers) and the route table `recap routes` prints.

use serde::Serialize;
use utoipa::{
    OpenApi,
    openapi::{HttpMethod, OpenApi as OpenApiDoc, PathItem},
};

use crate::error::{ErrorBody, ErrorEnvelope, FieldError};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Recap",
        description = "Self-hosted backend for engineering teams' Git activity: ingestion, recaps, leaderboards and insights.\n\n\
            Every error answers the same JSON envelope (`ErrorEnvelope`); request validation errors carry a list of \
            `{loc, msg, type}` in `detail`.",
        license(name = "MIT")
    ),
    components(schemas(ErrorEnvelope, ErrorBody, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness, status and metrics"),
        (name = "auth", description = "Sign-in, tokens, guests"),
        (name = "users", description = "Profiles and user administration"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "api-keys", description = "API keys for machine clients"),
        (name = "audit", description = "The audit log (admin)"),
        (name = "projects", description = "Projects and their members"),
        (name = "gitrecap", description = "Git Recap: provider sessions (PAT, GitHub OAuth, Recap), repositories and activity"),
        (name = "repositories", description = "Repositories of a project"),
        (name = "sync", description = "Push ingestion of commits and sync status (gitleague-client; JWT or API key)"),
        (name = "commits", description = "Commits of a repository and their statistics"),
        (name = "league", description = "Scoring, identities and leaderboards"),
        (name = "recaps", description = "AI recaps of a project's activity"),
        (name = "items", description = "The caller's own items (example CRUD)"),
        (name = "webhooks", description = "The caller's outgoing webhooks, the event catalogue and delivery logs"),
        (name = "jobs", description = "The background job queue (admin)"),
    )
)]
pub struct ApiDoc;

/// `Authorization: Bearer <access token or API key>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or tgl_ API key").build(),
            ),
        );
    }
}

/// One row of `recap routes`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    pub summary: String,
}

/// Routes served outside the OpenAPI document (the document itself and its UI).
const UNDOCUMENTED: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/openapi.json", "The OpenAPI 3.1 document"),
    ("GET", "/api/docs", "Swagger UI, served from the binary"),
    ("GET", "/docs", "Redirects to /api/docs"),
    ("GET", "/ws/{session_id}", "WebSocket: a streamed recap of a Git Recap session"),
    ("GET", "/ws/{session_id}/{action_type}", "WebSocket: a streamed recap, release notes or pull request description"),
];

pub fn route_table(doc: &OpenApiDoc) -> Vec<RouteInfo> {
    let mut rows = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, summary) in operations(item) {
            rows.push(RouteInfo { method: method.to_owned(), path: path.clone(), summary });
        }
    }
    rows.extend(UNDOCUMENTED.iter().map(|(m, p, s)| RouteInfo {
        method: (*m).to_owned(),
        path: (*p).to_owned(),
        summary: (*s).to_owned(),
    }));
    rows.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    rows
}

fn operations(item: &PathItem) -> Vec<(&'static str, String)> {
    let ops = [
        (HttpMethod::Get, "GET", &item.get),
        (HttpMethod::Post, "POST", &item.post),
        (HttpMethod::Put, "PUT", &item.put),
        (HttpMethod::Patch, "PATCH", &item.patch),
        (HttpMethod::Delete, "DELETE", &item.delete),
        (HttpMethod::Head, "HEAD", &item.head),
        (HttpMethod::Options, "OPTIONS", &item.options),
    ];
    ops.into_iter()
        .filter_map(|(_, name, op)| {
            op.as_ref().map(|op| {
                let summary = op
                    .summary
                    .clone()
                    .or_else(|| op.description.as_ref().map(|d| d.lines().next().unwrap_or("").to_owned()))
                    .unwrap_or_default();
                (name, summary)
            })
        })
        .collect()
}
