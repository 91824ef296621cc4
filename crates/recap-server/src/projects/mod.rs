//! Projects, their members (owner, maintainer, viewer) and their repositories.

pub mod access;
pub mod model;
pub mod repos;
pub mod routes;
pub mod store;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(routes::router()).merge(repos::router())
}
