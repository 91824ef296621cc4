//! Operations: health, readiness, status, metrics, and the OpenAPI document with its docs page.

pub mod model;
pub mod openapi;
pub mod routes;
