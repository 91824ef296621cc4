//! The platform layer shared by every route: extractors and middleware.

pub mod client_ip;
pub mod envelope;
pub mod extract;
pub mod metrics;
pub mod pagination;
pub mod rate_limit;
pub mod request_id;
pub mod security;
pub mod ssrf;
