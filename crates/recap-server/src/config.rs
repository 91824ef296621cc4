//! Settings: defaults, then an optional `.env`, then the process environment.
//!
//! Every variable is parsed into a typed field here, once, so a bad value stops start-up with a
//! message that names the variable instead of surfacing later as a confusing runtime error.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// CORS origins: either a list of exact origins or `*` (any origin, refused in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

#[derive(Clone)]
pub struct Settings {
    pub environment: Environment,
    pub host: String,
    pub port: u16,
    pub database_url: String,
    pub database_max_connections: u32,
    pub auto_migrate: bool,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this instance writes, so several deployments (or test runs) can
    /// share one Redis without sharing counters.
    pub redis_key_prefix: String,
    /// `None` until [`crate::secret::resolve_secret_key`] fills it at start-up.
    pub secret_key: Option<String>,
    pub cors_origins: CorsOrigins,
    pub rate_limit_requests: u32,
    pub rate_limit_period: Duration,
    pub rate_limit_exempt_ips: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub auth: AuthSettings,
    pub mail: crate::mail::MailSettings,
    pub oauth: crate::accounts::oauth::OAuthSettings,
    /// Key material for sealing stored integration credentials; `SECRET_KEY` when unset.
    pub credentials_encryption_key: Option<String>,
    /// `SESSION_TTL`, `MAX_HISTORY_TOKENS`, `GITLAB_URL`, `AZURE_DEVOPS_URL` (Git Recap).
    pub gitrecap: crate::gitrecap::GitRecapSettings,
    pub league: crate::league::LeagueSettings,
    pub jobs: crate::jobs::JobSettings,
    pub webhooks: crate::webhooks::WebhookSettings,
    /// The sync routes (push ingestion): `SYNC_RATE_LIMIT`.
    pub sync: crate::sync::SyncSettings,
    /// `OUTBOUND_ALLOWLIST`: what user-supplied outbound URLs may reach (see `http::ssrf`).
    pub outbound: crate::http::ssrf::OutboundSettings,
    /// `LLM_*`: which language model writes recaps (the offline writer by default).
    pub llm: recap_llm::LlmSettings,
}

/// Identity and access settings.
#[derive(Clone)]
pub struct AuthSettings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A new refresh token on every refresh (and reuse of a spent one revokes the session).
    /// `false` keeps the same token, for clients that cannot store a rotated one.
    pub refresh_token_rotation: bool,
    /// Later sign-ups stay `pending` until an admin approves them.
    pub signup_requires_approval: bool,
    /// Key of the HMAC that API keys are stored under; derived from `SECRET_KEY` when unset.
    pub api_key_hash_secret: Option<String>,
    pub guest_imports: i64,
    pub guest_messages: i64,
    /// Password attempts per client IP and per account, per minute.
    pub login_limit_per_ip: u32,
    pub login_limit_per_account: u32,
    /// Concurrent argon2 computations (each costs ~19 MiB and a core for tens of ms).
    pub password_hash_concurrency: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_token_ttl: Duration::from_secs(30 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_token_rotation: true,
            signup_requires_approval: false,
            api_key_hash_secret: None,
            guest_imports: 2,
            guest_messages: 20,
            login_limit_per_ip: 20,
            login_limit_per_account: 10,
            password_hash_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        }
    }
}

impl std::fmt::Debug for Settings {
    // Hand-written so the secret key can never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("environment", &self.environment)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("cors_origins", &self.cors_origins)
            .field("rate_limit_requests", &self.rate_limit_requests)
            .field("rate_limit_period", &self.rate_limit_period)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

/// A setting that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            environment: Environment::Development,
            host: "127.0.0.1".into(),
            port: 8000,
            database_url: "sqlite://recap.db".into(),
            database_max_connections: 10,
            auto_migrate: true,
            redis_url: None,
            redis_key_prefix: "recap".into(),
            secret_key: None,
            cors_origins: CorsOrigins::List(vec!["http://localhost:3000".into()]),
            rate_limit_requests: 100,
            rate_limit_period: Duration::from_secs(60),
            rate_limit_exempt_ips: Vec::new(),
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 2 * 1024 * 1024,
            auth: AuthSettings::default(),
            credentials_encryption_key: None,
            gitrecap: crate::gitrecap::GitRecapSettings::default(),
            league: crate::league::LeagueSettings::default(),
            llm: recap_llm::LlmSettings::default(),
            jobs: crate::jobs::JobSettings::default(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            sync: crate::sync::SyncSettings::default(),
            outbound: crate::http::ssrf::OutboundSettings::default(),
            mail: crate::mail::MailSettings::default(),
            oauth: crate::accounts::oauth::OAuthSettings::default(),
        }
    }
}

impl Settings {
    /// Loads `.env` (if present; it never overrides the real environment) and then the environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        load_dotenv()?;
        Settings::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds settings from any key lookup; tests pass a map instead of touching the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |key: &str| lookup(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut s = Settings::default();

        if let Some(v) = get("ENVIRONMENT") {
            s.environment = match v.to_ascii_lowercase().as_str() {
                "development" | "dev" | "local" => Environment::Development,
                "test" | "testing" => Environment::Test,
                "production" | "prod" => Environment::Production,
                _ => {
                    return Err(invalid("ENVIRONMENT", format!("expected development, test or production, got {v:?}")));
                }
            };
        }
        if let Some(v) = get("HOST") {
            let hostname = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if v.parse::<IpAddr>().is_err() && !hostname {
                return Err(invalid("HOST", format!("{v:?} is not an IP address or host name")));
            }
            s.host = v;
        }
        if let Some(v) = get("PORT") {
            s.port = parse("PORT", &v)?;
        }
        if let Some(v) = get("DATABASE_URL") {
            if !(v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://")) {
                return Err(invalid("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
            }
            s.database_url = v;
        }
        if let Some(v) = get("DATABASE_MAX_CONNECTIONS") {
            s.database_max_connections = parse_positive("DATABASE_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = get("RECAP_AUTO_MIGRATE") {
            s.auto_migrate = parse_bool("RECAP_AUTO_MIGRATE", &v)?;
        }
        if let Some(v) = get("REDIS_URL") {
            if v.starts_with("rediss://") {
                return Err(invalid(
                    "REDIS_URL",
                    "TLS (rediss://) is not supported by this build; use redis:// or unix://",
                ));
            }
            if !(v.starts_with("redis://") || v.starts_with("unix://")) || ::redis::Client::open(v.as_str()).is_err() {
                return Err(invalid("REDIS_URL", "must be a redis:// or unix:// URL"));
            }
            s.redis_url = Some(v);
        }
        if let Some(v) = get("REDIS_KEY_PREFIX") {
            s.redis_key_prefix = v;
        }
        s.secret_key = get("SECRET_KEY");
        if let Some(v) = get("CORS_ORIGINS") {
            s.cors_origins = parse_cors_origins(&v)?;
        }
        if let Some(v) = get("RATE_LIMIT_REQUESTS") {
            s.rate_limit_requests = parse_positive("RATE_LIMIT_REQUESTS", &v)?;
        }
        if let Some(v) = get("RATE_LIMIT_PERIOD") {
            s.rate_limit_period = Duration::from_secs(parse_positive::<u64>("RATE_LIMIT_PERIOD", &v)?);
        }
        if let Some(v) = get("RATE_LIMIT_EXEMPT_IPS") {
            s.rate_limit_exempt_ips = parse_networks("RATE_LIMIT_EXEMPT_IPS", &v)?;
        }
        if let Some(v) = get("TRUSTED_PROXIES") {
            s.trusted_proxies = parse_networks("TRUSTED_PROXIES", &v)?;
        }
        if let Some(v) = get("LOG_FORMAT") {
            s.log_format = match v.to_ascii_lowercase().as_str() {
                "pretty" | "text" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(invalid("LOG_FORMAT", format!("expected pretty or json, got {v:?}"))),
            };
        }
        if let Some(v) = get("LOG_LEVEL") {
            // A bare word must be a level (a typo would otherwise silently hide every log line);
            // directives such as `info,recap_server=debug` are checked by the filter parser.
            const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
            let bare = !v.contains(['=', ',']);
            if bare && !LEVELS.contains(&v.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    "LOG_LEVEL",
                    format!("expected one of {LEVELS:?} or filter directives, got {v:?}"),
                ));
            }
            tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| invalid("LOG_LEVEL", e.to_string()))?;
            s.log_level = v;
        }
        if let Some(v) = get("REQUEST_TIMEOUT") {
            s.request_timeout = Duration::from_secs(parse_positive::<u64>("REQUEST_TIMEOUT", &v)?);
        }
        if let Some(v) = get("MAX_BODY_SIZE") {
            s.max_body_bytes = parse_positive("MAX_BODY_SIZE", &v)?;
        }

        s.auth = auth_settings(&get)?;
        s.gitrecap = crate::gitrecap::GitRecapSettings::from_lookup(&get)?;
        s.league = crate::league::LeagueSettings::from_lookup(&get)?;
        s.llm = recap_llm::LlmSettings::from_lookup(get)
            .map_err(|e| ConfigError { var: e.variable, message: e.message })?;
        s.jobs = crate::jobs::JobSettings::from_lookup(&get)?;
        s.webhooks = crate::webhooks::WebhookSettings::from_lookup(&get)?;
        s.sync = crate::sync::SyncSettings::from_lookup(&get)?;
        s.outbound = crate::http::ssrf::OutboundSettings::from_lookup(&get)?;
        if let Some(v) = get("CREDENTIALS_ENCRYPTION_KEY") {
            if v.len() < 32 {
                return Err(invalid("CREDENTIALS_ENCRYPTION_KEY", "must be at least 32 characters"));
            }
            s.credentials_encryption_key = Some(v);
        }
        s.mail = crate::mail::MailSettings::from_lookup(&get)?;
        s.oauth = crate::accounts::oauth::OAuthSettings::from_lookup(&get)?;

        if s.environment == Environment::Production {
            match &s.secret_key {
                None => return Err(invalid("SECRET_KEY", "is required when ENVIRONMENT=production")),
                Some(k) if k.chars().count() < 32 => {
                    return Err(invalid("SECRET_KEY", "must be at least 32 characters when ENVIRONMENT=production"));
                }
                Some(_) => {}
            }
            if s.cors_origins == CorsOrigins::Any {
                return Err(invalid("CORS_ORIGINS", "'*' is not allowed when ENVIRONMENT=production"));
            }
        }
        Ok(s)
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    pub fn engine(&self) -> &'static str {
        if self.database_url.starts_with("sqlite:") { "sqlite" } else { "postgres" }
    }

    /// The SQLite database file, when the engine is SQLite and the database is a file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

fn auth_settings(get: &impl Fn(&str) -> Option<String>) -> Result<AuthSettings, ConfigError> {
    let mut a = AuthSettings::default();
    if let Some(v) = get("ACCESS_TOKEN_EXPIRE_MINUTES") {
        a.access_token_ttl = Duration::from_secs(60 * parse_positive::<u64>("ACCESS_TOKEN_EXPIRE_MINUTES", &v)?);
    }
    if let Some(v) = get("REFRESH_TOKEN_EXPIRE_MINUTES") {
        a.refresh_token_ttl = Duration::from_secs(60 * parse_positive::<u64>("REFRESH_TOKEN_EXPIRE_MINUTES", &v)?);
    }
    if let Some(v) = get("REFRESH_TOKEN_ROTATION") {
        a.refresh_token_rotation = parse_bool("REFRESH_TOKEN_ROTATION", &v)?;
    }
    if let Some(v) = get("SIGNUP_REQUIRES_APPROVAL") {
        a.signup_requires_approval = parse_bool("SIGNUP_REQUIRES_APPROVAL", &v)?;
    }
    if let Some(v) = get("API_KEY_HASH_SECRET") {
        if v.len() < 32 {
            return Err(invalid("API_KEY_HASH_SECRET", "must be at least 32 characters"));
        }
        a.api_key_hash_secret = Some(v);
    }
    if let Some(v) = get("GUEST_IMPORTS") {
        a.guest_imports = parse("GUEST_IMPORTS", &v)?;
    }
    if let Some(v) = get("GUEST_MESSAGES") {
        a.guest_messages = parse("GUEST_MESSAGES", &v)?;
    }
    if a.guest_imports < 0 || a.guest_messages < 0 {
        return Err(invalid("GUEST_IMPORTS", "guest quotas cannot be negative"));
    }
    if let Some(v) = get("LOGIN_RATE_LIMIT_PER_IP") {
        a.login_limit_per_ip = parse_positive("LOGIN_RATE_LIMIT_PER_IP", &v)?;
    }
    if let Some(v) = get("LOGIN_RATE_LIMIT_PER_ACCOUNT") {
        a.login_limit_per_account = parse_positive("LOGIN_RATE_LIMIT_PER_ACCOUNT", &v)?;
    }
    if let Some(v) = get("PASSWORD_HASH_CONCURRENCY") {
        a.password_hash_concurrency = parse_positive("PASSWORD_HASH_CONCURRENCY", &v)?;
    }
    Ok(a)
}

fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(invalid("DOTENV", format!("could not read .env: {e}"))),
    }
}

fn parse<T: FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| invalid(var, format!("{value:?} is not valid ({e})")))
}

fn parse_positive<T>(var: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let n: T = parse(var, value)?;
    if n <= T::default() {
        return Err(invalid(var, format!("must be greater than zero, got {value}")));
    }
    Ok(n)
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(var, format!("expected true or false, got {value:?}"))),
    }
}

/// A comma-separated list, or a JSON list of strings (both spellings appear in the seeds' `.env` files).
fn parse_list(var: &'static str, value: &str) -> Result<Vec<String>, ConfigError> {
    if value.starts_with('[') {
        let items: Vec<String> =
            serde_json::from_str(value).map_err(|e| invalid(var, format!("not a JSON list of strings: {e}")))?;
        return Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
    }
    Ok(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

fn parse_cors_origins(value: &str) -> Result<CorsOrigins, ConfigError> {
    let items = parse_list("CORS_ORIGINS", value)?;
    if items.iter().any(|o| o == "*") {
        return Ok(CorsOrigins::Any);
    }
    for origin in &items {
        let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
            && axum::http::HeaderValue::from_str(origin).is_ok()
            && !origin.trim_end_matches('/').contains(|c: char| c.is_whitespace());
        if !ok {
            return Err(invalid("CORS_ORIGINS", format!("{origin:?} is not an http(s) origin")));
        }
    }
    Ok(CorsOrigins::List(items.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect()))
}

/// IP addresses or CIDR networks; a bare address is a /32 (or /128) network.
fn parse_networks(var: &'static str, value: &str) -> Result<Vec<IpNet>, ConfigError> {
    parse_list(var, value)?
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(var, format!("{item:?} is not an IP address or CIDR network")))
        })
        .collect()
}

/// Hides the password of a connection URL (`scheme://user:secret@host` → `scheme://user:***@host`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite://recap.db");
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!((s.rate_limit_requests, s.rate_limit_period), (100, Duration::from_secs(60)));
        assert_eq!(s.cors_origins, CorsOrigins::List(vec!["http://localhost:3000".into()]));
        assert_eq!(s.sqlite_path(), Some(PathBuf::from("recap.db")));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("RATE_LIMIT_REQUESTS", "many"),
            ("RATE_LIMIT_REQUESTS", "0"),
            ("RATE_LIMIT_PERIOD", "-5"),
            ("PORT", "70000"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("LOG_FORMAT", "xml"),
            ("DATABASE_URL", "mysql://x"),
            ("CORS_ORIGINS", "localhost:3000"),
            ("RECAP_AUTO_MIGRATE", "maybe"),
            ("ENVIRONMENT", "staging-ish"),
            ("LOG_LEVEL", "verbose"),
            ("HOST", "local host"),
            ("REDIS_URL", "rediss://cache:6380"),
            ("REDIS_URL", "http://cache"),
        ] {
            let err = settings(&[(var, value)]).err().unwrap_or_else(|| panic!("{var}={value} accepted"));
            assert_eq!(err.var, var, "{err}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn production_requires_a_long_secret_and_no_wildcard_cors() {
        let err = settings(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert_eq!(err.var, "SECRET_KEY");
        let err = settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", "short")]).unwrap_err();
        assert_eq!(err.var, "SECRET_KEY");
        let long = "k".repeat(32);
        let err = settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", &long), ("CORS_ORIGINS", "*")]).unwrap_err();
        assert_eq!(err.var, "CORS_ORIGINS");
        let s = settings(&[("ENVIRONMENT", "production"), ("SECRET_KEY", &long)]).unwrap();
        assert!(s.is_production());
    }

    #[test]
    fn lists_accept_commas_and_json() {
        let s = settings(&[("CORS_ORIGINS", r#"["http://a.example", "https://b.example/"]"#)]).unwrap();
        assert_eq!(s.cors_origins, CorsOrigins::List(vec!["http://a.example".into(), "https://b.example".into()]));
        let s = settings(&[("TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1")]).unwrap();
        assert_eq!(s.trusted_proxies.len(), 3);
        assert!(s.trusted_proxies[1].contains(&"192.168.4.5".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn urls_are_redacted_in_debug_output() {
        let s = settings(&[("DATABASE_URL", "postgres://app:hunter2@db/recap"), ("SECRET_KEY", "topsecret")]).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("topsecret"), "{debug}");
        assert_eq!(s.engine(), "postgres");
        assert_eq!(s.sqlite_path(), None);
    }
}
