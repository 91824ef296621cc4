//! Settings of the job runner and the scheduler (see docs/CONFIGURATION.md, "Background jobs").

use std::{str::FromStr, time::Duration};

use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub struct JobSettings {
    /// `WORKERS`: workers `recap serve` runs in-process (0: none; `recap worker` then does the work).
    pub workers: usize,
    /// `SCHEDULER_ENABLED`: run the cron scheduler in this process (safe on every instance).
    pub scheduler: bool,
    /// `JOB_LEASE`: how long a claimed job stays claimed without a heartbeat; a job whose worker
    /// died is claimed again after this.
    pub lease: Duration,
    /// `JOB_POLL_INTERVAL`: how long an idle worker waits before it looks for due jobs again.
    pub poll_interval: Duration,
    /// `JOB_BATCH_SIZE`: jobs a worker claims at once.
    pub batch_size: i64,
    /// `JOB_RETRY_BASE` / `JOB_RETRY_MAX`: exponential backoff (base · 2^(attempt-1), capped, plus
    /// up to 25 % jitter) of kinds without a schedule of their own.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `JOB_SHUTDOWN_GRACE`: on shutdown, how long running jobs may take to finish.
    pub shutdown_grace: Duration,
    /// `JOB_RETENTION_DAYS`: succeeded and cancelled jobs are deleted after this many days.
    pub retention_days: i64,
    /// `DEAD_JOB_RETENTION_DAYS`: dead and failed jobs are deleted after this many days.
    pub dead_retention_days: i64,
    /// `CLEANUP_SCHEDULE`: cron expression of the clean-up jobs.
    pub cleanup_schedule: String,
    /// `SESSION_RETENTION_DAYS`: revoked or expired sessions are deleted this many days later.
    pub session_retention_days: i64,
    /// `JOBS_DEBUG_KINDS`: register the diagnostic kinds `debug.noop`, `debug.sleep`, `debug.fail`
    /// (tests, benchmarks). They touch nothing but the job itself.
    pub debug_kinds: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            workers: 2,
            scheduler: true,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            batch_size: 10,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
            retention_days: 7,
            dead_retention_days: 30,
            cleanup_schedule: "0 * * * *".into(),
            session_retention_days: 30,
            debug_kinds: false,
        }
    }
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

fn number<T: FromStr + PartialOrd>(var: &'static str, value: &str, min: T) -> Result<T, ConfigError> {
    match value.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(invalid(var, format!("{value:?} is not a valid number (minimum applies)"))),
    }
}

/// `250ms`, `10` or `10s`, `5m`, `2h`, `5d`.
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| invalid(var, format!("{value:?} is not a duration like 30s, 5m or 2h")))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(invalid(var, format!("{value:?} is not a duration like 30s, 5m or 2h"))),
    };
    Ok(Duration::from_secs(secs))
}

pub(crate) fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(var, format!("expected true or false, got {value:?}"))),
    }
}

impl JobSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<JobSettings, ConfigError> {
        let mut s = JobSettings::default();
        if let Some(v) = get("WORKERS") {
            s.workers = number("WORKERS", &v, 0)?;
        }
        if let Some(v) = get("SCHEDULER_ENABLED") {
            s.scheduler = parse_bool("SCHEDULER_ENABLED", &v)?;
        }
        if let Some(v) = get("JOB_LEASE") {
            s.lease = parse_duration("JOB_LEASE", &v)?;
            if s.lease < Duration::from_secs(1) {
                return Err(invalid("JOB_LEASE", "must be at least 1s"));
            }
        }
        if let Some(v) = get("JOB_POLL_INTERVAL") {
            s.poll_interval = parse_duration("JOB_POLL_INTERVAL", &v)?;
            if s.poll_interval.is_zero() {
                return Err(invalid("JOB_POLL_INTERVAL", "must be greater than zero"));
            }
        }
        if let Some(v) = get("JOB_BATCH_SIZE") {
            s.batch_size = number("JOB_BATCH_SIZE", &v, 1)?;
        }
        if let Some(v) = get("JOB_RETRY_BASE") {
            s.retry_base = parse_duration("JOB_RETRY_BASE", &v)?;
        }
        if let Some(v) = get("JOB_RETRY_MAX") {
            s.retry_max = parse_duration("JOB_RETRY_MAX", &v)?;
        }
        if let Some(v) = get("JOB_SHUTDOWN_GRACE") {
            s.shutdown_grace = parse_duration("JOB_SHUTDOWN_GRACE", &v)?;
        }
        if let Some(v) = get("JOB_RETENTION_DAYS") {
            s.retention_days = number("JOB_RETENTION_DAYS", &v, 1)?;
        }
        if let Some(v) = get("DEAD_JOB_RETENTION_DAYS") {
            s.dead_retention_days = number("DEAD_JOB_RETENTION_DAYS", &v, 1)?;
        }
        if let Some(v) = get("CLEANUP_SCHEDULE") {
            super::scheduler::parse_cron(&v).map_err(|e| invalid("CLEANUP_SCHEDULE", e))?;
            s.cleanup_schedule = v;
        }
        if let Some(v) = get("SESSION_RETENTION_DAYS") {
            s.session_retention_days = number("SESSION_RETENTION_DAYS", &v, 0)?;
        }
        if let Some(v) = get("JOBS_DEBUG_KINDS") {
            s.debug_kinds = parse_bool("JOBS_DEBUG_KINDS", &v)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("X", "250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("X", "10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("X", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("X", "2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("X", "5d").unwrap(), Duration::from_secs(432_000));
        assert_eq!(parse_duration("X", "0").unwrap(), Duration::ZERO);
        for bad in ["", "m", "5 weeks", "-1s", "1.5h"] {
            assert_eq!(parse_duration("X", bad).unwrap_err().var, "X", "{bad}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("WORKERS", "-1"),
            ("WORKERS", "two"),
            ("JOB_LEASE", "0"),
            ("JOB_BATCH_SIZE", "0"),
            ("CLEANUP_SCHEDULE", "every hour"),
            ("SCHEDULER_ENABLED", "maybe"),
        ] {
            let err = JobSettings::from_lookup(&|k| (k == var).then(|| value.to_owned())).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
        }
        let s = JobSettings::from_lookup(&|k| (k == "WORKERS").then(|| "0".to_owned())).unwrap();
        assert_eq!(s.workers, 0);
    }
}
