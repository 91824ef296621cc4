//! Settings of webhook deliveries (see docs/CONFIGURATION.md, "Webhooks").

use std::time::Duration;

use crate::{config::ConfigError, jobs::settings::parse_duration};

/// Retries a delivery gets at most; `WEBHOOK_RETRY_SCHEDULE` gives the delay before each.
pub const MAX_RETRIES: usize = 6;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_TIMEOUT`: one attempt, connection and answer included (default 10s).
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_SCHEDULE`: delays before retry 1, 2, … (default `5s,5m,30m,2h,5h,10h`; at
    /// most six). A shorter list means fewer retries.
    pub retry_schedule: Vec<Duration>,
    /// `WEBHOOK_DISABLE_AFTER`: an endpoint whose deliveries have all failed for this long is
    /// disabled (default `5d`).
    pub disable_after: Duration,
    /// `WEBHOOK_DELIVERY_RETENTION_DAYS`: delivery log entries are deleted after this many days.
    pub delivery_retention_days: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(10),
            retry_schedule: [5, 300, 1800, 7200, 18_000, 36_000].into_iter().map(Duration::from_secs).collect(),
            disable_after: Duration::from_secs(5 * 86_400),
            delivery_retention_days: 30,
        }
    }
}

impl WebhookSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<WebhookSettings, ConfigError> {
        let mut s = WebhookSettings::default();
        if let Some(v) = get("WEBHOOK_TIMEOUT") {
            s.timeout = parse_duration("WEBHOOK_TIMEOUT", &v)?;
            if s.timeout.is_zero() {
                return Err(ConfigError { var: "WEBHOOK_TIMEOUT", message: "must be greater than zero".into() });
            }
        }
        if let Some(v) = get("WEBHOOK_RETRY_SCHEDULE") {
            let delays =
                v.split(',').map(|d| parse_duration("WEBHOOK_RETRY_SCHEDULE", d)).collect::<Result<Vec<_>, _>>()?;
            if delays.len() > MAX_RETRIES {
                return Err(ConfigError {
                    var: "WEBHOOK_RETRY_SCHEDULE",
                    message: format!("at most {MAX_RETRIES} retries, got {}", delays.len()),
                });
            }
            s.retry_schedule = delays;
        }
        if let Some(v) = get("WEBHOOK_DISABLE_AFTER") {
            s.disable_after = parse_duration("WEBHOOK_DISABLE_AFTER", &v)?;
        }
        if let Some(v) = get("WEBHOOK_DELIVERY_RETENTION_DAYS") {
            s.delivery_retention_days = match v.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(ConfigError {
                        var: "WEBHOOK_DELIVERY_RETENTION_DAYS",
                        message: format!("{v:?} is not a number of days (at least 1)"),
                    });
                }
            };
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_parses_and_is_bounded() {
        let s =
            WebhookSettings::from_lookup(&|k| (k == "WEBHOOK_RETRY_SCHEDULE").then(|| "0, 0,1s".to_owned())).unwrap();
        assert_eq!(s.retry_schedule, vec![Duration::ZERO, Duration::ZERO, Duration::from_secs(1)]);
        let err =
            WebhookSettings::from_lookup(&|k| (k == "WEBHOOK_RETRY_SCHEDULE").then(|| "1,1,1,1,1,1,1".to_owned()))
                .unwrap_err();
        assert_eq!(err.var, "WEBHOOK_RETRY_SCHEDULE");
        let err = WebhookSettings::from_lookup(&|k| (k == "WEBHOOK_TIMEOUT").then(|| "soon".to_owned())).unwrap_err();
        assert_eq!(err.var, "WEBHOOK_TIMEOUT");
        assert_eq!(WebhookSettings::default().retry_schedule.len(), MAX_RETRIES);
    }
}
