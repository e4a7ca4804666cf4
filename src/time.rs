//! Timestamps: microseconds since the Unix epoch, printed as RFC 3339 UTC.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};

/// A point in time with microsecond precision (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Timestamp(micros)
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parses an RFC 3339 / XEP-0082 date-time (any offset; stored as UTC).
    pub fn parse_rfc3339(s: &str) -> Result<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| Error::InvalidInput(format!("timestamp '{s}' is not RFC 3339: {e}")))?;
        let micros = dt.unix_timestamp_nanos() / 1000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| Error::InvalidInput(format!("timestamp '{s}' is out of range")))
    }

    /// RFC 3339 in UTC with a `Z` suffix and microseconds, e.g. `2026-11-21T19:28:12.000123Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => {
                let dt = dt.to_offset(UtcOffset::UTC);
                match u32::try_from(dt.year()) {
                    // Written digit by digit: exports print one per row, and `format!` with
                    // padding was a few percent of a 1M-row export.
                    Ok(year) if year <= 9999 => {
                        let mut s = String::with_capacity(27);
                        push_digits(&mut s, year, 4);
                        s.push('-');
                        push_digits(&mut s, u32::from(u8::from(dt.month())), 2);
                        s.push('-');
                        push_digits(&mut s, u32::from(dt.day()), 2);
                        s.push('T');
                        push_digits(&mut s, u32::from(dt.hour()), 2);
                        s.push(':');
                        push_digits(&mut s, u32::from(dt.minute()), 2);
                        s.push(':');
                        push_digits(&mut s, u32::from(dt.second()), 2);
                        s.push('.');
                        push_digits(&mut s, dt.microsecond(), 6);
                        s.push('Z');
                        s
                    }
                    _ => format!(
                        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                        dt.year(),
                        u8::from(dt.month()),
                        dt.day(),
                        dt.hour(),
                        dt.minute(),
                        dt.second(),
                        dt.microsecond()
                    ),
                }
            }
            // Out of the calendar's range: still print something honest and parseable-looking.
            Err(_) => format!("@{}us", self.0),
        }
    }
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(s: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width.saturating_sub(1));
    while div > 0 {
        let d = (n / div) % 10;
        s.push(char::from(b'0' + u8::try_from(d).unwrap_or(0)));
        div /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_roundtrip_and_utc() {
        let t = Timestamp::parse_rfc3339("2016-01-21T14:17:35.123456+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2016-01-21T13:17:35.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        assert!(Timestamp::parse_rfc3339("Thu Jan 21 14:17:35 CET 2016").is_err());
    }

    #[test]
    fn epoch() {
        assert_eq!(
            Timestamp::from_secs(0).to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(Timestamp::from_micros(-1).as_secs(), -1);
    }

    proptest::proptest! {
        /// The hand-written digits match `format!` and parse back, over the whole calendar
        /// range and around it.
        #[test]
        fn rfc3339_digits_match_format(micros in proptest::prelude::any::<i64>(), small in -1_000_000_000_000_000i64..300_000_000_000_000_000) {
            for m in [micros, small] {
                let t = Timestamp::from_micros(m);
                let got = t.to_rfc3339();
                if let Ok(dt) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000) {
                    let want = format!(
                        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                        dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second(), dt.microsecond()
                    );
                    proptest::prop_assert_eq!(&got, &want);
                    if (0..=9999).contains(&dt.year()) {
                        proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&got).unwrap(), t);
                    }
                }
            }
        }
    }
}
