//! The cron scheduler: enqueues recurring jobs at their ticks, once per tick across instances.
//!
//! Every instance (each `recap serve`, each `recap worker`) may run the scheduler. All of them
//! compute the same ticks from the wall clock (UTC) and enqueue the tick's job with the unique key
//! `cron:<schedule>:<unix seconds of the tick>` ([`Unique::Forever`]), so the first insert wins
//! and the others are no-ops, even when the first instance's job already finished. Ticks missed
//! while no instance was running are not made up (except the last minute's, after a short pause).

use std::str::FromStr;

use croner::{
    Cron,
    errors::CronError,
    time::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday},
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{Enqueue, Unique};
use crate::db::Db;

/// One recurring job.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub cron: Cron,
    pub kind: &'static str,
    pub payload: Value,
    pub max_attempts: i32,
}

/// A cron expression: 5 fields (minute first) or 6 (seconds first).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr.trim()).map_err(|e| format!("{:?} is not a valid cron expression ({e})", expr.trim()))
}

/// The first tick of `cron` strictly after `at`.
pub fn next_tick(cron: &Cron, at: OffsetDateTime) -> Option<OffsetDateTime> {
    cron.find_next_occurrence(&UtcTime(at), false).ok().map(|t| t.0)
}

impl Schedule {
    /// The first tick strictly after `at`.
    pub fn next_after(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        next_tick(&self.cron, at)
    }

    /// The unique key of this schedule's job for `tick`.
    pub fn tick_key(&self, tick: OffsetDateTime) -> String {
        format!("cron:{}:{}", self.name, tick.unix_timestamp())
    }
}

/// Enqueues `schedule`'s job for `tick`; true when this call created it (false: another instance
/// or an earlier call already did).
pub async fn enqueue_tick(db: &Db, schedule: &Schedule, tick: OffsetDateTime) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let options =
        Enqueue { run_at: Some(tick), unique: Some(Unique::Forever(schedule.tick_key(tick))), max_attempts: None };
    let enqueued =
        super::enqueue_raw(&mut tx, schedule.kind, &schedule.payload, schedule.max_attempts, options).await?;
    tx.commit().await?;
    Ok(enqueued.created)
}

/// Sleeps until each next tick and enqueues the schedules due then, until `shutdown`.
pub async fn run(db: Db, schedules: Vec<Schedule>, shutdown: CancellationToken) {
    let mut cursor = OffsetDateTime::now_utc();
    loop {
        let now = OffsetDateTime::now_utc();
        if now - cursor > time::Duration::minutes(1) {
            // The process was paused (or the clock jumped): do not make up a backlog of ticks.
            cursor = now - time::Duration::minutes(1);
        }
        let Some(next) = schedules.iter().filter_map(|s| s.next_after(cursor)).min() else {
            tracing::warn!("no schedule has a next tick; the scheduler stops");
            return;
        };
        let wait = (next - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait.unsigned_abs()) => {}
        }
        for schedule in schedules.iter().filter(|s| s.next_after(cursor) == Some(next)) {
            match enqueue_tick(&db, schedule, next).await {
                Ok(true) => tracing::debug!(schedule = schedule.name, tick = %next, "enqueued a scheduled job"),
                Ok(false) => {}
                Err(e) => tracing::warn!(schedule = schedule.name, error = %e, "could not enqueue a scheduled job"),
            }
        }
        cursor = next;
    }
}

/// `OffsetDateTime` in UTC for croner (whole seconds).
#[derive(Debug, Clone, Copy)]
struct UtcTime(OffsetDateTime);

impl CronDateTime for UtcTime {
    fn to_civil(&self) -> CivilDateTime {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(t.year(), u8::from(t.month()) as u32, t.day() as u32),
            CivilTime::from_parts_unchecked(t.hour() as u32, t.minute() as u32, t.second() as u32),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.to_offset(time::UtcOffset::UTC).weekday().number_days_from_sunday() as u32)
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let month = time::Month::try_from(civil.month() as u8).map_err(|_| CronError::InvalidDate)?;
        let date = time::Date::from_calendar_date(civil.year(), month, civil.day() as u8)
            .map_err(|_| CronError::InvalidDate)?;
        let clock = time::Time::from_hms(civil.hour() as u8, civil.minute() as u8, civil.second() as u8)
            .map_err(|_| CronError::InvalidTime)?;
        Ok(Resolution::Single(UtcTime(time::PrimitiveDateTime::new(date, clock).assume_utc())))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0.checked_add(time::Duration::seconds(seconds)).map(UtcTime)
    }

    fn cmp_instant(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn schedule(expr: &str) -> Schedule {
        Schedule { name: "t", cron: parse_cron(expr).unwrap(), kind: "k", payload: Value::Null, max_attempts: 1 }
    }

    #[test]
    fn ticks_follow_the_expression_in_utc() {
        let hourly = schedule("0 * * * *");
        let at = datetime!(2026-11-30 10:15:42.5 UTC);
        assert_eq!(hourly.next_after(at), Some(datetime!(2026-11-30 11:00:00 UTC)));
        assert_eq!(hourly.next_after(datetime!(2026-11-30 11:00:00 UTC)), Some(datetime!(2026-11-30 12:00:00 UTC)));
        let every_second = schedule("* * * * * *");
        assert_eq!(every_second.next_after(at), Some(datetime!(2026-11-30 10:15:43 UTC)));
        let fridays = schedule("30 2 * * FRI");
        assert_eq!(fridays.next_after(at), Some(datetime!(2026-12-04 02:30:00 UTC)));
        let leap = schedule("0 0 29 2 *");
        assert_eq!(leap.next_after(at), Some(datetime!(2028-02-29 00:00:00 UTC)));
        // A non-UTC input names the same instant.
        let offset = datetime!(2026-11-30 12:15:42 +02:00);
        assert_eq!(hourly.next_after(offset), Some(datetime!(2026-11-30 11:00:00 UTC)));
        assert_eq!(hourly.tick_key(datetime!(2026-11-30 11:00:00 UTC)), "cron:t:1796036400");
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in ["", "every hour", "61 * * * *", "* * * *"] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
    }
}
