//! Wall-clock helpers. Times are kept as unix milliseconds (i64) everywhere, as in the stores,
//! and only turned into text at the edges (RFC 3339 for JSON, "3m ago" for people).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a part of the node reads "now" from. A node runs on the system clock. A test gives a
/// part a [`ManualClock`] instead, which stands still until the test moves it, so a rule that
/// depends on time is checked at the exact millisecond without waiting. (Tokio's paused time
/// does not suit parts that use the store: it jumps ahead while a query runs on SQLite's
/// thread, and the connection pool's own timeouts fire.)
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the unix epoch, by this clock.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(manual) => manual.now_ms(),
        }
    }
}

/// A clock that moves only when told to; clones share the time.
#[derive(Clone, Debug)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl ManualClock {
    /// A clock showing `start_ms`.
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock(std::sync::Arc::new(start_ms.into()))
    }

    pub fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // Saturating: a test that moves it past the end of time sees the end, not 1901. The
        // update always answers, so it cannot fail.
        let _ = (self.0).fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |now| Some(now.saturating_add(by)),
        );
    }
}

/// The latest time RFC 3339 can write (9999-12-31T23:59:59.999Z), in unix milliseconds.
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// RFC 3339 text (UTC, millisecond precision) for a unix-millisecond timestamp. Times outside
/// what RFC 3339 can write (before 1970, after the year 9999, e.g. from a corrupt or old
/// database) are shown at the nearest end of that range rather than refused.
pub fn to_rfc3339(ms: i64) -> String {
    let ms = ms.clamp(0, MAX_RFC3339_MS);
    let time = UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Parses RFC 3339 text back into unix milliseconds.
pub fn from_rfc3339(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

/// A duration for people, rounded to the nearest unit shown (so a fresh one-hour ban reads
/// `1h`, not `59m`): `<1s`, `42s`, `3m`, `1h`, `2h30m`, `23h`, `1d`, `2d6h`, `40d`. Two units
/// only while the larger one is small (under 10), where the second one still matters.
pub fn short_duration(d: Duration) -> String {
    const MINUTE: u128 = 60_000;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    let ms = d.as_millis();
    let nearest = |unit: u128| (ms + unit / 2) / unit;
    if ms < 1_000 {
        return "<1s".to_string();
    }
    if ms < 59_500 {
        return format!("{}s", nearest(1_000));
    }
    if ms < 59 * MINUTE + 30_000 {
        return format!("{}m", nearest(MINUTE));
    }
    // From here on, round to the nearest minute (under a day) or hour, then split.
    if ms < DAY - MINUTE / 2 {
        let minutes = nearest(MINUTE);
        let (h, m) = (minutes / 60, minutes % 60);
        return match (h, m) {
            (h, 0) => format!("{h}h"),
            (h, m) if h < 10 => format!("{h}h{m}m"),
            _ => format!("{}h", nearest(HOUR).min(23)),
        };
    }
    let hours = nearest(HOUR);
    let (days, h) = (hours / 24, hours % 24);
    match (days, h) {
        (d, 0) => format!("{d}d"),
        (d, h) if d < 10 => format!("{d}d{h}h"),
        _ => format!("{}d", nearest(DAY)),
    }
}

/// "3m ago" for a past timestamp ("just now" under a second), "in 23h" for a future one,
/// relative to `now_ms`, rounded to the nearest unit shown.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let delta = now_ms.saturating_sub(ms);
    let magnitude = Duration::from_millis(delta.unsigned_abs());
    if delta >= 0 {
        if magnitude < Duration::from_secs(1) {
            return "just now".to_string();
        }
        format!("{} ago", short_duration(magnitude))
    } else {
        format!("in {}", short_duration(magnitude))
    }
}

/// Parses an operator-written duration such as `200ms`, `10s`, `1h`, `7d`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| InvalidDuration {
        text: text.to_string(),
        reason: e,
    })
}

/// A duration an operator wrote that does not read as one.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration '{text}' ({reason}); write it like 200ms, 10s, 5m, 1h or 7d")]
pub struct InvalidDuration {
    text: String,
    reason: humantime::DurationError,
}

/// Writes a duration back in the form [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0".to_string();
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Seconds as .NET's `TimeSpan` prints a duration with days, `d.hh:mm:ss` (the platform's
/// clients read the uptime so).
pub fn day_clock(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    format!(
        "{days}.{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["200ms", "10s", "1h", "7days", "1h 30m"] {
            let d = parse_duration(text).expect(text);
            assert_eq!(parse_duration(&format_duration(d)).expect("reparse"), d);
        }
        assert_eq!(parse_duration("0").expect("zero"), Duration::ZERO);
        assert_eq!(
            parse_duration("7d").expect("7d"),
            Duration::from_secs(7 * 86_400)
        );
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("10").is_err(),
            "a bare number other than 0 has no unit"
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1_000, 181_000), "3m ago");
        assert_eq!(relative(1_000 + 23 * 3_600_000, 1_000), "in 23h");
        assert_eq!(relative(5, 5), "just now");
        assert_eq!(relative(5, 900), "just now");
        assert_eq!(relative(1_000, 500), "in <1s");
    }

    #[test]
    fn durations_for_people_round_to_the_nearest_unit() {
        let s = |ms: u64| short_duration(Duration::from_millis(ms));
        // A one-hour ban a moment after it was made.
        assert_eq!(s(3_600_000 - 150), "1h");
        assert_eq!(s(3_600_000 - 40_000), "59m");
        assert_eq!(s(0), "<1s");
        assert_eq!(s(999), "<1s");
        assert_eq!(s(1_400), "1s");
        assert_eq!(s(59_600), "1m");
        assert_eq!(s(89_000), "1m");
        assert_eq!(s(90_000), "2m");
        assert_eq!(s(59 * 60_000 + 31_000), "1h");
        assert_eq!(s(2 * 3_600_000 + 30 * 60_000), "2h30m");
        assert_eq!(s(12 * 3_600_000 + 29 * 60_000), "12h");
        assert_eq!(s(24 * 3_600_000 - 100), "1d");
        assert_eq!(s(23 * 3_600_000 + 10 * 60_000), "23h");
        assert_eq!(s(7 * 86_400_000 - 1_000), "7d");
        assert_eq!(s(2 * 86_400_000 + 6 * 3_600_000), "2d6h");
        assert_eq!(s(40 * 86_400_000 + 3 * 3_600_000), "40d");
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_700_000_000_123;
        assert_eq!(from_rfc3339(&to_rfc3339(ms)), Some(ms));
    }

    #[test]
    fn out_of_range_times_render_without_panicking() {
        assert_eq!(to_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(to_rfc3339(MAX_RFC3339_MS + 1), "9999-12-31T23:59:59.999Z");
        assert_eq!(to_rfc3339(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert!(relative(i64::MAX, i64::MIN).starts_with("in "));
        assert!(relative(i64::MIN, i64::MAX).ends_with(" ago"));
    }

    #[test]
    fn day_clock_is_the_timespan_text() {
        assert_eq!(day_clock(0), "0.00:00:00");
        assert_eq!(day_clock(3_723), "0.01:02:03");
        assert_eq!(day_clock(2 * 86_400 + 59), "2.00:00:59");
        assert_eq!(day_clock(u64::MAX), "213503982334601.07:00:15");
    }
}
