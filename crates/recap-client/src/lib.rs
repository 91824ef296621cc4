//! The push client of Recap (`recap push …`): reads the gitleague-client `repos.yaml`, walks local
//! history with `recap-git` and sends the whole missing history to the push API in batches.

pub mod api;
pub mod config;
pub mod scan;
pub mod sync;

pub use api::{Api, ApiError, RetryPolicy};
pub use config::{Config, ConfigError, TEMPLATE};
pub use scan::{ScanTotals, scan};
pub use sync::{SyncOptions, SyncReport, sync, test};

/// Version sent as `client_version`.
pub const CLIENT_VERSION: &str = concat!("recap-", env!("CARGO_PKG_VERSION"));

/// Writes the commented template to `path`; refuses to overwrite an existing file.
pub fn init(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!("{} already exists; not overwriting it", path.display()),
        _ => anyhow::anyhow!("cannot create {}: {e}", path.display()),
    })?;
    file.write_all(TEMPLATE.as_bytes())?;
    Ok(())
}
