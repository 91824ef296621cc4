//! Identity and access: users, passwords, tokens and sessions, guests, API keys.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod magic_link;
pub mod model;
pub mod oauth;
pub mod password;
pub mod routes;
pub mod service;
pub mod store;
pub mod tokens;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(routes::router())
        .merge(api_keys::routes::router())
        .merge(magic_link::router())
        .merge(oauth::routes::router())
}
