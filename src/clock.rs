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

/// A short human form of a duration: `850ms`, `42s`, `3m`, `5h`, `2d`.
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// "3m ago" for a past timestamp, "in 23h" for a future one, relative to `now_ms`.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let delta = now_ms.saturating_sub(ms);
    let magnitude = Duration::from_millis(delta.unsigned_abs());
    if delta >= 0 {
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
        assert_eq!(relative(5, 5), "0ms ago");
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
}
