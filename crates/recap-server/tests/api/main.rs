//! API tests: the real server on port 0, driven over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod errors;
mod migrations;
mod ops;
mod rate_limit;
mod security;
