//! Durations as people write them in policies, requests and the config:
//! `24h`, `90m`, `3600s`, `7d`, or combined (`1h30m`).

use time::Duration;

/// The longest duration Tessera reads: a century. No certificate outlives
/// the CA that signs it, and no CA lives that long; the cap keeps every
/// date a duration is added to far inside what a date can hold, so no sum
/// of a time and a duration from outside can overflow.
pub const MAX_TTL: Duration = Duration::days(36_500);

/// Parses a positive duration of at most [`MAX_TTL`] made of
/// `<number><unit>` parts (d, h, m, s).
pub fn parse_ttl(text: &str) -> Option<Duration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let value: i64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && total > 0 && total <= MAX_TTL.whole_seconds()).then(|| Duration::seconds(total))
}

/// A duration read once from text like `24h` (see [`parse_ttl`]): config
/// values are deserialized into it, so a bad one fails at load, naming its
/// field, and nothing parses the text again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ttl(Duration);

impl Ttl {
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The same duration for the standard library (timeouts); never negative.
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0.whole_seconds().unsigned_abs())
    }
}

impl std::str::FromStr for Ttl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_ttl(text).map(Self).ok_or_else(|| {
            format!("{text:?} is not a duration such as 90s, 10m, 24h or 7d (more than 0s, at most 36500d)")
        })
    }
}

impl TryFrom<String> for Ttl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Ttl> for String {
    fn from(ttl: Ttl) -> Self {
        format_ttl(ttl.0)
    }
}

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_ttl(self.0))
    }
}

/// The shortest text `parse_ttl` reads back as the same duration.
pub fn format_ttl(duration: Duration) -> String {
    format_in(duration, &[(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')])
}

/// Two durations for a message that compares them, in the same units:
/// hours (and below) while the shorter is under a week, as people weigh
/// certificate lifetimes, so that `48h` exceeds `24h` rather than `2d`
/// exceeding `1d`, which reads like a rounding; days beyond.
pub fn compared_ttls(first: Duration, second: Duration) -> (String, String) {
    if first.min(second) < Duration::weeks(1) {
        (format_in_hours(first), format_in_hours(second))
    } else {
        (format_ttl(first), format_ttl(second))
    }
}

/// A duration for a message, in hours (and below) under a week (see
/// [`compared_ttls`]).
pub fn describe_ttl(duration: Duration) -> String {
    compared_ttls(duration, duration).0
}

fn format_in_hours(duration: Duration) -> String {
    format_in(duration, &[(3_600, 'h'), (60, 'm'), (1, 's')])
}

fn format_in(duration: Duration, units: &[(i64, char)]) -> String {
    let mut rest = duration.whole_seconds();
    let mut out = String::new();
    for &(unit, name) in units {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_ttl("24h"), Some(Duration::hours(24)));
        assert_eq!(parse_ttl("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_ttl("3600s"), Some(Duration::hours(1)));
        assert_eq!(parse_ttl("7d"), Some(Duration::days(7)));
        assert_eq!(parse_ttl("36500d"), Some(MAX_TTL));
        for bad in ["", "24", "h", "-1h", "1x", "0s", "99999999999999999999d", "99999999999999d", "36500d1s"] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
        assert_eq!(format_ttl(Duration::minutes(90)), "1h30m");
        assert_eq!(format_ttl(Duration::days(1)), "1d");
    }

    /// Issue 22.6: "2d exceeds 1d" read like a rounding.
    #[test]
    fn compared_durations_share_their_units() {
        assert_eq!(compared_ttls(Duration::days(2), Duration::days(1)), ("48h".into(), "24h".into()));
        assert_eq!(compared_ttls(Duration::minutes(1530), Duration::hours(24)), ("25h30m".into(), "24h".into()));
        assert_eq!(compared_ttls(Duration::days(90), Duration::days(30)), ("90d".into(), "30d".into()));
        assert_eq!(compared_ttls(Duration::days(90), Duration::hours(24)), ("2160h".into(), "24h".into()));
        assert_eq!(describe_ttl(Duration::days(3)), "72h");
        assert_eq!(describe_ttl(Duration::days(30)), "30d");
    }

    /// Found by fuzzing (fuzz/ policy): a policy with a `max_ttl` of
    /// 44444444444444489m was accepted, and issuing under it would panic
    /// adding the lifetime to the present.
    #[test]
    fn durations_beyond_a_century_are_refused() {
        for beyond in ["36501d", "876001h", "44444444444444489m", "9223372036854775807s"] {
            assert_eq!(parse_ttl(beyond), None, "{beyond:?}");
        }
    }
}
