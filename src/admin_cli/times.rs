//! Times as people read them, and durations as they type them (`90d`,
//! `12h`, `1h30m`: the admin API's own duration syntax).
//!
//! The CLI is a client on the operator's machine: "now" is that machine's
//! clock, read here and nowhere else.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::CliError;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2026-05-01 12:00 (in 3d)`: UTC to the minute, and how far from now.
/// Text that is not an RFC 3339 time is shown as it came.
pub fn human(text: &str) -> String {
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => human_at(at.to_offset(time::UtcOffset::UTC), now()),
        Err(_) => text.to_owned(),
    }
}

fn human_at(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (at - now).whole_seconds();
    let span = match seconds.unsigned_abs() {
        s if s < 60 => return format!("{} (now)", minute(at)),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    };
    let relative = if seconds > 0 { format!("in {span}") } else { format!("{span} ago") };
    format!("{} ({relative})", minute(at))
}

fn minute(at: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// One or more `<number><unit>` parts, units `d`, `h`, `m`, `s`.
pub fn parse_duration(text: &str) -> Result<time::Duration, CliError> {
    let bad = || CliError::Usage(format!("{text:?} is not a duration such as 90d, 12h or 1h30m"));
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let number: i64 = digits.parse().map_err(|_| bad())?;
        total = number.checked_mul(unit).and_then(|part| total.checked_add(part)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(time::Duration::seconds(total))
}

/// RFC 3339 for now plus `duration` (`--expires-in 90d`).
pub fn from_now(duration: time::Duration) -> Result<String, CliError> {
    (now() + duration).format(&Rfc3339).map_err(|e| CliError::Usage(format!("time out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_read_with_their_distance_from_now() {
        let now = datetime!(2026-05-01 12:00:00 UTC);
        assert_eq!(human_at(datetime!(2026-05-04 13:30:00 UTC), now), "2026-05-04 13:30 (in 3d)");
        assert_eq!(human_at(datetime!(2026-05-01 07:00:00 UTC), now), "2026-05-01 07:00 (5h ago)");
        assert_eq!(human_at(datetime!(2026-05-01 12:20:59 UTC), now), "2026-05-01 12:20 (in 20m)");
        assert_eq!(human_at(datetime!(2026-05-01 12:00:30 UTC), now), "2026-05-01 12:00 (now)");
        assert_eq!(human("not a time"), "not a time");
    }

    #[test]
    fn durations_parse_as_the_api_writes_them() {
        assert_eq!(parse_duration("90d").ok(), Some(time::Duration::days(90)));
        assert_eq!(parse_duration("1h30m").ok(), Some(time::Duration::minutes(90)));
        for bad in ["", "90", "d", "1w", "-1d", "0s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
