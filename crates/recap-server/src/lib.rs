//! Recap's server as a library: the binary and the tests start it through [`Application`].

pub mod accounts;
pub mod app;
pub mod audit;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod gitrecap;
pub mod http;
pub mod items;
pub mod jobs;
pub mod league;
pub mod mail;
pub mod ops;
pub mod projects;
pub mod recaps;
pub mod redis;
pub mod secret;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod time;
pub mod webhooks;

pub use app::{Application, openapi};
pub use config::Settings;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
