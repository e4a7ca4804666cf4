//! Timestamps: microseconds since the Unix epoch, printed as RFC 3339 UTC.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};

/// A point in time with microsecond precision (UTC).
///
/// Not serialized itself: stored records hold the private `StoredTimestamp` mirror
/// (`src/ext/stored_time.rs`), so this type can change without changing the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// Parses Java's `Date.toString()` form, `Thu Jan 21 14:17:35 CET 2016`, as Openfire
    /// writes it in XEP-0227 exports. The zone is a common abbreviation (`CET`, `EST`,
    /// `PDT`... as the README lists) or `GMT+hh:mm`; the result comes with the offset applied, in minutes east of UTC.
    /// Seconds precision (Java prints no fraction).
    pub fn parse_java_date(s: &str) -> Result<(Self, i32)> {
        let bad = |why: &str| Error::InvalidInput(format!("'{s}' is not a Java date: {why}"));
        let mut parts = s.split_ascii_whitespace();
        let (Some(_weekday), Some(month), Some(day), Some(clock), Some(zone), Some(year), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("expected 'EEE MMM dd HH:mm:ss zzz yyyy'"));
        };
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = months
            .iter()
            .position(|m| *m == month)
            .and_then(|i| u8::try_from(i + 1).ok())
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or_else(|| bad("unknown month"))?;
        let num = |v: &str| v.parse::<u8>().map_err(|_| bad("not a number"));
        let mut hms = clock.split(':');
        let (Some(h), Some(m), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
        else {
            return Err(bad("time is not HH:mm:ss"));
        };
        let year = year
            .parse::<i32>()
            .map_err(|_| bad("year is not a number"))?;
        let offset = java_zone(zone).ok_or_else(|| {
            Error::InvalidInput(format!(
                "'{s}' is a Java date with an unknown zone abbreviation '{zone}'"
            ))
        })?;
        let date = time::Date::from_calendar_date(year, month, num(day)?)
            .map_err(|e| bad(&e.to_string()))?;
        let clock =
            time::Time::from_hms(num(h)?, num(m)?, num(sec)?).map_err(|e| bad(&e.to_string()))?;
        let utc_offset =
            UtcOffset::from_whole_seconds(offset * 60).map_err(|e| bad(&e.to_string()))?;
        let dt = time::PrimitiveDateTime::new(date, clock).assume_offset(utc_offset);
        let micros = dt.unix_timestamp_nanos() / 1000;
        let t = i64::try_from(micros).map_err(|_| bad("out of range"))?;
        Ok((Timestamp(t), offset))
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

/// The zone abbreviations Java's `Date.toString()` prints (as Openfire exports dates) that
/// [`Timestamp::parse_java_date`] reads, with their offset in minutes east of UTC. Some are
/// ambiguous in the wild; the reading here is the usual one and every conversion is
/// reported with the offset used: `CST` is US Central (not China), `IST` India (not
/// Ireland or Israel), `BST` British Summer Time (not Bangladesh).
pub(crate) const JAVA_ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("GMT", 0),
    ("UT", 0),
    ("WET", 0),
    ("WEST", 60),
    ("BST", 60),
    ("IST", 330),
    ("CET", 60),
    ("CEST", 120),
    ("MET", 60),
    ("MEST", 120),
    ("EET", 120),
    ("EEST", 180),
    ("MSK", 180),
    ("SAST", 120),
    ("EAT", 180),
    ("JST", 540),
    ("KST", 540),
    ("HKT", 480),
    ("SGT", 480),
    ("AWST", 480),
    ("ACST", 570),
    ("ACDT", 630),
    ("AEST", 600),
    ("AEDT", 660),
    ("NZST", 720),
    ("NZDT", 780),
    ("NST", -210),
    ("NDT", -150),
    ("AST", -240),
    ("ADT", -180),
    ("EST", -300),
    ("EDT", -240),
    ("CST", -360),
    ("CDT", -300),
    ("MST", -420),
    ("MDT", -360),
    ("PST", -480),
    ("PDT", -420),
    ("AKST", -540),
    ("AKDT", -480),
    ("HST", -600),
    ("BRT", -180),
    ("ART", -180),
];

/// A Java zone: an abbreviation from [`JAVA_ZONES`] or `GMT+hh:mm` / `GMT-hh:mm`, in
/// minutes east of UTC.
pub(crate) fn java_zone(zone: &str) -> Option<i32> {
    if let Some((_, m)) = JAVA_ZONES.iter().find(|(z, _)| *z == zone) {
        return Some(*m);
    }
    let rest = zone.strip_prefix("GMT")?;
    let (sign, hm) = match rest.split_at_checked(1)? {
        ("+", hm) => (1, hm),
        ("-", hm) => (-1, hm),
        _ => return None,
    };
    let (h, m) = hm.split_once(':')?;
    let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    ((0..=18).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
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
    fn java_dates() {
        let (t, off) = Timestamp::parse_java_date("Thu Jan 21 14:17:35 CET 2016").unwrap();
        assert_eq!(t.to_rfc3339(), "2016-01-21T13:17:35.000000Z");
        assert_eq!(off, 60);
        let (t, _) = Timestamp::parse_java_date("Sun Jul 03 09:00:00 PDT 2016").unwrap();
        assert_eq!(t.to_rfc3339(), "2016-07-03T16:00:00.000000Z");
        let (t, off) = Timestamp::parse_java_date("Mon Mar 02 10:00:00 GMT+05:30 2020").unwrap();
        assert_eq!(
            (t.to_rfc3339().as_str(), off),
            ("2020-03-02T04:30:00.000000Z", 330)
        );
        let e = Timestamp::parse_java_date("Thu Jan 21 14:17:35 XYZT 2016").unwrap_err();
        assert!(
            e.to_string().contains("unknown zone abbreviation 'XYZT'"),
            "{e}"
        );
        for bad in [
            "",
            "Thu Jan 21 14:17:35 CET",
            "Thu Foo 21 14:17:35 CET 2016",
            "Thu Feb 30 14:17:35 CET 2016",
            "Thu Jan 21 25:17:35 CET 2016",
            "Thu Jan 21 14:17 CET 2016",
            "Thu Jan 21 14:17:35 GMT+99:00 2016",
        ] {
            assert!(Timestamp::parse_java_date(bad).is_err(), "{bad}");
        }
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
