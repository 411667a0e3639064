//! LiteLLM's duration strings ("30s", "10m", "24h", "30d", "2w", "1mo") for `duration` and
//! `budget_duration`.

use std::time::Duration;

/// Parses a LiteLLM duration. Accepted units: `s`, `m`, `h`, `d`, `w`, `mo` (30 days); a bare
/// number is seconds. `None` for anything else (the caller reports the field).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds_per_unit: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        _ => return None,
    };
    // Cap at 100 years: chrono cannot add arbitrary durations to a timestamp.
    let seconds = n.checked_mul(seconds_per_unit)?;
    (seconds > 0 && seconds <= 100 * 365 * 86_400).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_units_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            parse_duration("1mo"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "d",
            "10x",
            "-5s",
            "0s",
            "1.5h",
            "99999999999999999999d",
            "1000000d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
