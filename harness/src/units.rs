//! Human units on the command line and in specs: durations such as `500ms`, `15s`, `2m`.

use std::time::Duration;

/// Parses `500ms`, `15s`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use 500ms, 15s, 2m or 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is too long a duration (at most about 584 billion years)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (stasis-fuzz targets `sut-spec` and `campaign`): a duration too
    /// long for `Duration` panicked in `Duration::from_secs_f64` instead of being an error.
    #[test]
    fn absurd_durations_are_errors() {
        for s in [&"9".repeat(400)[..], "99999999999999999999999h", "1e400"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
    }
}
