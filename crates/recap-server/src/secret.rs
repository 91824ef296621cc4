//! The instance's signing key (`SECRET_KEY`).
//!
//! Production refuses to start without one (checked in [`crate::config`]). In development a random
//! key is generated once and kept in a file next to the database, so tokens survive a restart.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;

use crate::config::Settings;

const KEY_FILE_NAME: &str = "recap.secret";

/// Where a generated development key lives: beside the SQLite file, or in the working directory
/// when the database is PostgreSQL.
pub fn generated_key_path(settings: &Settings) -> PathBuf {
    let dir = settings
        .sqlite_path()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join(KEY_FILE_NAME)
}

/// Fills `settings.secret_key`, generating and storing one when it is missing outside production.
pub fn resolve_secret_key(settings: &mut Settings) -> anyhow::Result<()> {
    if settings.secret_key.is_some() {
        return Ok(());
    }
    anyhow::ensure!(!settings.is_production(), "SECRET_KEY is required when ENVIRONMENT=production");
    let path = generated_key_path(settings);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            settings.secret_key = Some(existing.to_owned());
            return Ok(());
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    write_private(&path, &key).with_context(|| format!("could not store the generated key at {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "SECRET_KEY is not set: generated a random development key and stored it next to the database; \
         set SECRET_KEY explicitly for production"
    );
    settings.secret_key = Some(key);
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_key_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            database_url: format!("sqlite://{}", dir.path().join("app.db").display()),
            ..Settings::default()
        };
        resolve_secret_key(&mut settings).unwrap();
        let first = settings.secret_key.clone().unwrap();
        assert_eq!(first.len(), 64);
        assert!(dir.path().join(KEY_FILE_NAME).exists());

        let mut again = Settings { secret_key: None, ..settings.clone() };
        resolve_secret_key(&mut again).unwrap();
        assert_eq!(again.secret_key.unwrap(), first);
    }
}
