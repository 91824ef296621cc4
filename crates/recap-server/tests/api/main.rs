//! API tests: the real server on port 0, driven over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod api_keys;
mod errors;
mod items;
mod magic_link;
mod migrations;
mod oauth;
mod ops;
mod rate_limit;
mod security;
