//! Timestamps: nanoseconds since the Unix epoch, with an RFC 3339 form.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// A point in time as nanoseconds since 1970-01-01T00:00:00Z (UTC).
///
/// Its text form is RFC 3339 in UTC with microseconds, e.g.
/// `2026-11-21T20:00:00.123456Z`, the form of the record contract.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Text that is not an RFC 3339 timestamp, or names a time out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseTimestampError {
    /// Not RFC 3339.
    #[error("invalid timestamp {0:?}: expected RFC 3339, e.g. 2026-11-21T20:00:00Z")]
    Syntax(String),
    /// A valid date and time, outside the nanoseconds an `i64` holds.
    #[error("timestamp {0:?} is out of range: times from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z are supported")]
    Range(String),
}

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Length of the RFC 3339 form of any timestamp (years 1677 to 2262).
const RFC3339_LEN: usize = 27;

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`], saturating outside the `i64` nanosecond range.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Self(i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n)),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// This timestamp moved back by `d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// Parses RFC 3339 (`2026-11-21T20:00:00Z`, `2026-11-21T20:00:00.5+02:00`, a space
    /// instead of `T`, lowercase `t`/`z`) or a bare date (`2026-11-21`, midnight UTC).
    pub fn parse_rfc3339(s: &str) -> Result<Self, ParseTimestampError> {
        match parse(s.trim()) {
            None => Err(ParseTimestampError::Syntax(s.to_owned())),
            Some(nanos) => i64::try_from(nanos)
                .map(Timestamp)
                .map_err(|_| ParseTimestampError::Range(s.to_owned())),
        }
    }

    /// The RFC 3339 form (UTC, microseconds), built without formatting machinery:
    /// exports write one per record. Nanoseconds in an `i64` span the years 1677 to
    /// 2262, so the form always has 27 bytes.
    fn rfc3339_bytes(self) -> [u8; RFC3339_LEN] {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let micros = self.0.rem_euclid(NANOS_PER_SEC) / 1000;
        let tod = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m.into());
        put(8, 2, d.into());
        put(11, 2, tod / 3600);
        put(14, 2, tod / 60 % 60);
        put(17, 2, tod % 60);
        put(20, 6, micros);
        out
    }

    /// Appends the RFC 3339 form (UTC, microseconds) to `out`.
    pub fn write_rfc3339(self, out: &mut String) {
        // ASCII digits and separators only.
        out.push_str(std::str::from_utf8(&self.rfc3339_bytes()).unwrap_or_default());
    }

    /// The RFC 3339 form (UTC, microseconds).
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(27);
        self.write_rfc3339(&mut s);
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

/// Serialized as RFC 3339 text.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.rfc3339_bytes()).unwrap_or_default())
    }
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_rfc3339(s)
    }
}

/// Days since the epoch to (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01 in the proleptic Gregorian calendar
/// (Hinnant's `days_from_civil`); the date is not checked.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in month `m` (1 to 12) of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let part = self.s.get(self.i..self.i + n)?;
        let mut v = 0i64;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }

    fn eat(&mut self, set: &[u8]) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        if set.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// Nanoseconds since the epoch (unbounded: the caller checks the range), or `None` if
/// `s` is not RFC 3339.
fn parse(s: &str) -> Option<i128> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let y = c.digits(4)?;
    c.eat(b"-")?;
    let mo = u32::try_from(c.digits(2)?).ok()?;
    c.eat(b"-")?;
    let d = u32::try_from(c.digits(2)?).ok()?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let days = i128::from(days_from_civil(y, mo, d));
    if c.done() {
        return Some(days * i128::from(SECS_PER_DAY * NANOS_PER_SEC));
    }
    c.eat(b"Tt ")?;
    let h = c.digits(2)?;
    c.eat(b":")?;
    let mi = c.digits(2)?;
    c.eat(b":")?;
    let sec = c.digits(2)?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if c.eat(b".,").is_some() {
        let start = c.i;
        while c.s.get(c.i).is_some_and(u8::is_ascii_digit) {
            let digit = i64::from(c.s[c.i] - b'0');
            if c.i - start < 9 {
                nanos = nanos * 10 + digit;
            }
            c.i += 1;
        }
        let n = c.i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match c.eat(b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = c.digits(2)?;
            c.eat(b":")?;
            let om = c.digits(2)?;
            let off = oh * 3600 + om * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
    };
    if !c.done() {
        return None;
    }
    let secs = days * i128::from(SECS_PER_DAY) + i128::from(h * 3600 + mi * 60 + sec - offset_secs);
    Some(secs * i128::from(NANOS_PER_SEC) + i128::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds() {
        let t = Timestamp(1_795_291_200_123_456_789);
        assert_eq!(t.to_rfc3339(), "2026-11-21T20:00:00.123456Z");
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn the_fast_form_matches_the_formatted_one() {
        let reference = |t: Timestamp| {
            let secs = t.0.div_euclid(NANOS_PER_SEC);
            let tod = secs.rem_euclid(SECS_PER_DAY);
            let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                tod / 3600,
                tod / 60 % 60,
                tod % 60,
                t.0.rem_euclid(NANOS_PER_SEC) / 1000
            )
        };
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = Timestamp(x as i64);
            assert_eq!(t.to_rfc3339(), reference(t), "{}", t.0);
        }
        for t in [Timestamp(i64::MIN), Timestamp(i64::MAX)] {
            assert_eq!(t.to_rfc3339(), reference(t), "{}", t.0);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", reference(t))
            );
        }
    }

    #[test]
    fn parses_forms() {
        let want = Timestamp(1_795_291_200_123_456_000);
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-21T20:00:00.123456Z"),
            Ok(want)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-21T22:00:00.123456+02:00"),
            Ok(want)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-21 20:00:00.123456789z"),
            Ok(Timestamp(1_795_291_200_123_456_789))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-21"),
            Ok(Timestamp(1_795_219_200_000_000_000))
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-11-21T25:00:00Z",
            "2026-11-21T20:00:00",
            "2026-11-21T20:00:00.Z",
            "yesterday",
            "2026-11-21T20:00:00Zjunk",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_through_text_at_microsecond_precision() {
        for ns in [
            0i64,
            1_000,
            951_782_400_000_000_000,
            4_102_444_799_999_999_000,
            -86_400_000_000_000,
        ] {
            let t = Timestamp(ns);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Ok(t), "{ns}");
        }
    }
}
