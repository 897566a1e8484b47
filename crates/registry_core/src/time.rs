//! Times as the plan's callers write them: ISO-8601 / RFC 3339 strings
//! (`new Date().toISOString()` in JavaScript), turned into microseconds
//! since the Unix epoch, the unit of Holochain's `Timestamp`. The zome has
//! no clock library on wasm, and a date is small enough to parse here.

use thiserror::Error;

/// Why a time string is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{text:?} is not an ISO-8601 time like 2026-12-06T16:06:34.123Z: {reason}")]
pub struct TimeParseError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Microseconds since the Unix epoch of an RFC 3339 time
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`; `t` and `z` and a
/// space for `T` are accepted too). Fractions finer than a microsecond are
/// truncated.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, TimeParseError> {
    let bad = |reason| TimeParseError {
        text: text.chars().take(64).collect(),
        reason,
    };
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(bad("too short"));
    }
    let num = |from: usize, len: usize| -> Result<i64, TimeParseError> {
        let digits = b.get(from..from + len).ok_or_else(|| bad("too short"))?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits"));
        }
        Ok(digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, what: &[u8], reason| match b.get(at) {
        Some(c) if what.contains(c) => Ok(()),
        _ => Err(bad(reason)),
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    expect(4, b"-", "expected '-' after the year")?;
    expect(7, b"-", "expected '-' after the month")?;
    expect(10, b"Tt ", "expected 'T' between date and time")?;
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    expect(13, b":", "expected ':' after the hour")?;
    expect(16, b":", "expected ':' after the minutes")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // 60 is a leap second; it is taken as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                micros = micros * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(bad("expected digits after '.'"));
        }
        for _ in (at - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            expect(at + 3, b":", "expected ':' in the offset")?;
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return Err(bad("no such offset"));
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return Err(bad("expected 'Z' or an offset like +01:00 at the end")),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(secs * 1_000_000 + micros)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian
/// calendar (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_iso_strings_and_offsets() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339_micros("2026-12-06T16:06:34.123Z"),
            Ok(1_796_573_194_123_000)
        );
        assert_eq!(
            parse_rfc3339_micros("2026-12-06T17:06:34.123+01:00"),
            parse_rfc3339_micros("2026-12-06T16:06:34.123Z")
        );
        assert_eq!(
            parse_rfc3339_micros("2000-02-29T00:00:00.0000019-00:30"),
            Ok(951_784_200_000_001)
        );
        assert_eq!(parse_rfc3339_micros("1969-12-31T23:59:59Z"), Ok(-1_000_000));
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        for (text, reason) in [
            ("yesterday", "too short"),
            ("2026-02-30T00:00:00Z", "no such date"),
            ("2025-02-29T00:00:00Z", "no such date"),
            ("2026-12-06T24:00:00Z", "no such time of day"),
            ("2026-12-06T16:06:34", "too short"),
            ("2026-12-06T16:06:34.Z", "expected digits after '.'"),
            ("2026-12-06 16:06:34+0100", "expected 'Z' or an offset"),
            ("2026/12/06T16:06:34Z", "expected '-' after the year"),
        ] {
            let e = parse_rfc3339_micros(text).unwrap_err();
            assert!(e.reason.starts_with(reason), "{text}: {e}");
            assert!(e.to_string().contains(text), "{e}");
        }
    }
}
