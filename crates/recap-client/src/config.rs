//! `repos.yaml`, in the format of gitleague-client 0.1.0 plus an optional per-repository `branch`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Send authors and committers by their canonical identity from each repository's
    /// `.mailmap` (as `git log` shows them); default true.
    #[serde(default = "default_mailmap")]
    pub mailmap: bool,
    pub projects: Vec<Project>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub name: String,
    pub project_id: String,
    pub repos: Vec<Repo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repo {
    pub path: String,
    /// The repository's UUID (what the original client needs) or its name within the project.
    pub git_url: String,
    /// Branch to read; `main` by default, falling back to the repository's default branch.
    #[serde(default)]
    pub branch: Option<String>,
}

fn default_batch_size() -> usize {
    100
}

fn default_max_retries() -> u32 {
    3
}

fn default_mailmap() -> bool {
    true
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.display().to_string(), message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config: Config = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if !(1..=1000).contains(&config.batch_size) {
            return Err(format!("batch_size must be between 1 and 1000, got {}", config.batch_size));
        }
        let url = config.api_url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("api_url must start with http:// or https://, got {:?}", config.api_url));
        }
        config.api_url = url;
        config.api_key = config.api_key.filter(|k| !k.trim().is_empty());
        for project in &config.projects {
            for repo in &project.repos {
                if repo.git_url.trim().is_empty() || repo.git_url.contains('/') {
                    return Err(format!(
                        "git_url of {} must be the Recap repository UUID or its name (no '/'), got {:?}",
                        repo.path, repo.git_url
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The key from `--api-key`, else `GITLEAGUE_API_KEY`, else `RECAP_API_KEY`, else the file.
    pub fn resolve_key(&self, flag: Option<&str>) -> Option<String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        flag.map(str::to_owned)
            .or_else(|| env("GITLEAGUE_API_KEY"))
            .or_else(|| env("RECAP_API_KEY"))
            .or(self.api_key.clone())
    }
}

/// Expands a leading `~` and `$VAR` / `${VAR}` (unknown variables are left as written).
pub fn expand_path(raw: &str) -> PathBuf {
    let mut s = raw.trim().to_owned();
    if (s == "~" || s.starts_with("~/"))
        && let Ok(home) = std::env::var("HOME")
    {
        s = format!("{home}{}", &s[1..]);
    }
    let mut out = String::with_capacity(s.len());
    let bytes: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '$' {
            let (name, end) = if bytes.get(i + 1) == Some(&'{') {
                match bytes[i + 2..].iter().position(|&c| c == '}') {
                    Some(p) => (bytes[i + 2..i + 2 + p].iter().collect::<String>(), i + 3 + p),
                    None => (String::new(), i + 1),
                }
            } else {
                let len = bytes[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                (bytes[i + 1..i + 1 + len].iter().collect::<String>(), i + 1 + len)
            };
            if !name.is_empty()
                && let Ok(value) = std::env::var(&name)
            {
                out.push_str(&value);
                i = end;
                continue;
            }
            out.push('$');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(out)
}

/// What `recap push init` writes.
pub const TEMPLATE: &str = r#"# Recap push client configuration (the gitleague-client `repos.yaml` format).
# Run `recap push test` to check it and `recap push sync` to send your commits.

# Server root: no /api/v1 (the client adds it); a trailing slash is allowed.
api_url: "https://recap.example.org"

# API key with the sync:commits scope (create one in Recap: POST /api/v1/api-keys/).
# Optional here: --api-key, GITLEAGUE_API_KEY or RECAP_API_KEY take precedence.
api_key: "tgl_xxxxxxxx_your-secret-key"

# Commits per request, 1..1000. `recap push` sends the whole missing history in batches of this size.
batch_size: 100

# Attempts per batch on 429, 5xx and network errors (capped exponential backoff, honours Retry-After).
max_retries: 3

# Authors and committers as each repository's .mailmap names them (like `git log`), so one person
# with several names or e-mails counts once. Set to false to send them as recorded.
mailmap: true

projects:
  - name: "Demo"                                          # display only
    project_id: "00000000-0000-0000-0000-000000000000"    # Recap project UUID
    repos:
      - path: "~/code/demo"                               # local clone; ~ and $VARS are expanded
        # The Recap repository UUID (the only value the original gitleague-client accepts) or,
        # with `recap push`, the repository's name in the project. Not a clone URL.
        git_url: "00000000-0000-0000-0000-000000000000"
        # branch: "main"                                  # optional; default main, else the default branch
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_unknown_top_level_keys_are_rejected() {
        let config = Config::parse(TEMPLATE).unwrap();
        assert_eq!(config.batch_size, 100);
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.projects[0].repos[0].branch, None);
        let err = Config::parse(&format!("{TEMPLATE}\nextra: 1\n")).unwrap_err();
        assert!(err.contains("extra"), "{err}");
        let err = Config::parse(&TEMPLATE.replace("batch_size: 100", "batch_size: 1001")).unwrap_err();
        assert!(err.contains("batch_size"), "{err}");
        let err = Config::parse("api_url: x\nprojects: []\n").unwrap_err();
        assert!(err.contains("api_url"), "{err}");
    }

    #[test]
    fn defaults_trailing_slash_and_unused_repo_keys() {
        let config = Config::parse(
            "api_url: http://h:1/\nprojects:\n  - name: p\n    project_id: x\n    repos:\n      - path: /r\n        git_url: r\n        ssh_key: k\n        branch: dev\n",
        )
        .unwrap();
        assert_eq!(config.api_url, "http://h:1");
        assert_eq!(config.projects[0].repos[0].branch.as_deref(), Some("dev"));
    }

    #[test]
    fn paths_expand_home_and_variables() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(expand_path("~/x"), PathBuf::from(format!("{home}/x")));
        assert_eq!(expand_path("$HOME/y"), PathBuf::from(format!("{home}/y")));
        assert_eq!(expand_path("${HOME}/z"), PathBuf::from(format!("{home}/z")));
        assert_eq!(expand_path("/a/$RECAP_SURELY_UNSET_VAR/b"), PathBuf::from("/a/$RECAP_SURELY_UNSET_VAR/b"));
    }
}
