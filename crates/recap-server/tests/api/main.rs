//! API tests: the real server on port 0, driven over HTTP, on SQLite and PostgreSQL.

mod helpers;

mod accounts;
mod api_keys;
mod errors;
mod gitrecap;
mod items;
mod jobs;
mod league;
mod magic_link;
mod migrations;
mod oauth;
mod ops;
mod projects;
mod pull_sync;
mod rate_limit;
mod recaps;
mod security;
mod sync;
mod webhooks;
