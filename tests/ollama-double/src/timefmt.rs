//! Time formats Go prints: RFC3339Nano with trailing zeros trimmed, slog's millisecond stamp,
//! gin's access-log stamp and `time.Duration.String()`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A broken-down wall-clock time with its UTC offset.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i64,
}

fn unix_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut secs = -(d.as_secs() as i64);
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn from_unix(secs: i64, nanos: u32, offset_seconds: i64) -> WallClock {
    let local = secs + offset_seconds;
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    WallClock {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        minute: (sod % 3600 / 60) as u32,
        second: (sod % 60) as u32,
        nanos,
        offset_seconds,
    }
}

/// `t` in UTC.
pub fn utc(t: SystemTime) -> WallClock {
    let (secs, nanos) = unix_parts(t);
    from_unix(secs, nanos, 0)
}

/// `t` in the process's local zone (Go's `time.Local`, from `TZ` / `/etc/localtime`).
pub fn local(t: SystemTime) -> WallClock {
    let (secs, nanos) = unix_parts(t);
    let time: libc::time_t = secs as libc::time_t;
    // SAFETY: localtime_r only writes into the zeroed tm we own.
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i64
        }
    };
    from_unix(secs, nanos, offset)
}

fn zone(offset_seconds: i64) -> String {
    if offset_seconds == 0 {
        return "Z".to_string();
    }
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let abs = offset_seconds.abs();
    format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
}

impl WallClock {
    /// Go's `time.RFC3339Nano`: fractional seconds with trailing zeros trimmed.
    pub fn rfc3339_nano(&self) -> String {
        let mut frac = String::new();
        if self.nanos != 0 {
            frac = format!(".{:09}", self.nanos);
            while frac.ends_with('0') {
                frac.pop();
            }
        }
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            zone(self.offset_seconds)
        )
    }

    /// slog's text handler stamp: RFC3339 with exactly three fractional digits.
    pub fn slog(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1_000_000,
            zone(self.offset_seconds)
        )
    }

    /// gin's access-log stamp `2006/01/02 - 15:04:05`.
    pub fn gin(&self) -> String {
        format!(
            "{:04}/{:02}/{:02} - {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Seconds since the epoch of an RFC3339 timestamp (`2026-08-14T16:40:02.13-07:00`).
pub fn parse_rfc3339_unix(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(stripped) = rest.strip_prefix('.') {
        let digits = stripped.bytes().take_while(u8::is_ascii_digit).count();
        rest = &stripped[digits..];
    }
    let offset = if rest == "Z" {
        0
    } else {
        let sign = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let h: i64 = rest.get(1..3)?.parse().ok()?;
        let m: i64 = rest.get(4..6)?.parse().ok()?;
        sign * (h * 3600 + m * 60)
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Unix seconds of `t`.
pub fn unix_seconds(t: SystemTime) -> i64 {
    unix_parts(t).0
}

fn frac_digits(value: u64, precision: u32) -> (u64, String) {
    let scale = 10u64.pow(precision);
    let mut frac = format!("{:0width$}", value % scale, width = precision as usize);
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    (value / scale, frac)
}

/// Go's `time.Duration.String()`: `41.207µs`, `1.902311ms`, `2.412093118s`, `1m2.5s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        let (int, frac) = frac_digits(ns, 3);
        return format!("{int}{frac}µs");
    }
    if ns < 1_000_000_000 {
        let (int, frac) = frac_digits(ns, 6);
        return format!("{int}{frac}ms");
    }
    let (secs, frac) = frac_digits(ns, 9);
    let (minutes, secs) = (secs / 60, secs % 60);
    let (hours, minutes) = (minutes / 60, minutes % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}{frac}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}{frac}s")
    } else {
        format!("{secs}{frac}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nano_trims_zeros() {
        let t = UNIX_EPOCH + Duration::new(1_787_418_967, 130_136_850);
        assert_eq!(utc(t).rfc3339_nano(), "2026-08-22T17:16:07.13013685Z");
        let whole = UNIX_EPOCH + Duration::new(1_787_418_967, 0);
        assert_eq!(utc(whole).rfc3339_nano(), "2026-08-22T17:16:07Z");
        assert_eq!(utc(whole).gin(), "2026/08/22 - 17:16:07");
    }

    #[test]
    fn parses_fixture_timestamps() {
        assert_eq!(
            parse_rfc3339_unix("2026-08-19T09:12:44.918273645-07:00"),
            Some(1_787_155_964)
        );
        assert_eq!(
            parse_rfc3339_unix("2026-08-14T16:40:02.130448713-07:00"),
            Some(1_786_750_802)
        );
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_duration(Duration::from_nanos(41_207)), "41.207µs");
        assert_eq!(go_duration(Duration::from_nanos(1_902_311)), "1.902311ms");
        assert_eq!(
            go_duration(Duration::from_nanos(2_412_093_118)),
            "2.412093118s"
        );
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
        assert_eq!(go_duration(Duration::from_nanos(500)), "500ns");
        assert_eq!(go_duration(Duration::from_micros(2)), "2µs");
    }
}
