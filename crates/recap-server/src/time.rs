//! Timestamps are UTC everywhere and serialised as RFC 3339 with `Z`.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}
