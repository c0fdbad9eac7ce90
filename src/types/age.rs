//! How long ago: RFC 3339 times as the daemons write them, shown in minute steps (so a screen
//! that shows them changes once a minute).

/// "3d4h", "5m", "<1m" … from seconds.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => "<1m".to_owned(),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time, if it is one.
pub fn epoch(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// How long before `now` the RFC 3339 time `at` was, if it is one.
pub fn since(at: &str, now: time::OffsetDateTime) -> Option<String> {
    epoch(at).map(|t| age(now.unix_timestamp() - t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_step_by_the_minute() {
        assert_eq!(age(-5), "<1m");
        assert_eq!(age(59), "<1m");
        assert_eq!(age(61), "1m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86_400 + 3600), "2d1h");
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_600).expect("a time");
        assert_eq!(since("2023-11-14T22:13:20Z", now).as_deref(), Some("10m"));
        assert_eq!(since("not a time", now), None);
    }
}
