//! Timestamps are UTC everywhere and serialised as RFC 3339 with `Z`.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A time from outside (a request, a provider, a commit) in UTC, if it is within years 1 to 9999:
/// both engines store those, and converting a time near the ends can leave the supported range
/// (`9999-12-31T23:30:00-01:00` is in year 10000), which must be a clear error, not a panic.
pub fn supported_utc(at: OffsetDateTime) -> Option<OffsetDateTime> {
    at.checked_to_offset(time::UtcOffset::UTC).filter(|utc| (1..=9999).contains(&utc.year()))
}

pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// A fixed-width UTC form (`2026-01-02T12:00:00.000000Z`) for columns that SQLite must compare or
/// sort as text: every value has the same length, so text order is time order.
pub fn sortable(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_timestamps_have_one_width_and_parse_back() {
        let a = time::macros::datetime!(2026-01-02 12:00:00 +02:00);
        let b = time::macros::datetime!(2026-01-02 10:00:00.5 UTC);
        assert_eq!(sortable(a), "2026-01-02T10:00:00.000000Z");
        assert!(sortable(a) < sortable(b));
        assert_eq!(OffsetDateTime::parse(&sortable(b), &Rfc3339).unwrap(), b);
    }
}
