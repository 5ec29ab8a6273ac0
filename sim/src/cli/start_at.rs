//! `--start-at`: the wall-clock instant at which shards launched separately
//! begin their run together, parsed from Unix seconds or RFC 3339 (UTC),
//! and checked against the clock before and after the bus under test
//! starts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far in the past a start time may lie and still be used: shards
/// launched with `--start-at $(date +%s)` (whole seconds) start a moment
/// after it. Within the grace the run starts at once and keeps the shared
/// zero, so the shards' phases still line up.
pub const START_GRACE: Duration = Duration::from_secs(2);

/// A start further ahead than this is taken for a mistake (milliseconds
/// given for seconds, a wrong date) rather than waited for.
pub const MAX_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Parses `--start-at`: Unix seconds (`1767225600`, fractions allowed) or
/// an RFC 3339 time in UTC (`2026-01-01T00:00:00Z`).
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return text
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(|since_epoch| UNIX_EPOCH + since_epoch)
            .ok_or_else(|| format!("{text:?} is not a number of seconds"));
    }
    humantime::parse_rfc3339(text).map_err(|e| {
        format!(
            "{text:?}: {e}; use Unix seconds (e.g. 1767225600) or an RFC 3339 time in UTC \
             (e.g. 2026-01-01T00:00:00Z)"
        )
    })
}

/// Whether a run may start at `at` when the clock reads `now`: not more
/// than [`START_GRACE`] ago, not more than [`MAX_LEAD`] ahead.
pub fn check_start_at(at: SystemTime, now: SystemTime) -> Result<(), String> {
    let shown = humantime::format_rfc3339_millis(at);
    match at.duration_since(now) {
        Ok(ahead) if ahead > MAX_LEAD => Err(format!(
            "--start-at {shown} is {:.1} h ahead; more than {} h is taken for a mistake \
             (give Unix seconds, not milliseconds)",
            ahead.as_secs_f64() / 3600.0,
            MAX_LEAD.as_secs() / 3600
        )),
        Ok(_) => Ok(()),
        Err(behind) if behind.duration() > START_GRACE => Err(format!(
            "--start-at {shown} was {:.1} s ago (more than the {} s grace): give the shards a \
             start far enough ahead for every one of them to launch and reach the bus, e.g. \
             --start-at $(( $(date +%s) + 10 ))",
            behind.duration().as_secs_f64(),
            START_GRACE.as_secs()
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_and_rfc_3339_name_the_same_instant() {
        let seconds = parse_start_at("1767225600").unwrap();
        assert_eq!(seconds, UNIX_EPOCH + Duration::from_secs(1_767_225_600));
        assert_eq!(parse_start_at("2026-01-01T00:00:00Z").unwrap(), seconds);
        assert_eq!(
            parse_start_at(" 1767225600.25 ").unwrap(),
            seconds + Duration::from_millis(250)
        );
        assert_eq!(
            parse_start_at("2026-01-01T00:00:00.250+00:00").unwrap(),
            seconds + Duration::from_millis(250)
        );
    }

    #[test]
    fn unreadable_times_say_what_is_accepted() {
        for bad in [
            "",
            "soon",
            "2026-01-01 00:00:00",
            "1.2.3",
            "2026-01-01T00:00:00+02:00",
        ] {
            let e = parse_start_at(bad).unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())), "{bad}: {e}");
        }
        assert!(parse_start_at("tomorrow").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn past_starts_fail_beyond_the_grace() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert!(check_start_at(now + Duration::from_secs(8), now).is_ok());
        assert!(check_start_at(now, now).is_ok());
        assert!(check_start_at(now - START_GRACE, now).is_ok());
        let late = check_start_at(now - START_GRACE - Duration::from_millis(100), now).unwrap_err();
        assert!(late.contains("2.1 s ago"), "{late}");
        assert!(late.contains("2025-12-31T23:59:57.900Z"), "{late}");
        let far = check_start_at(now + MAX_LEAD + Duration::from_secs(1), now).unwrap_err();
        assert!(far.contains("not milliseconds"), "{far}");
    }
}
