use std::fmt;

/// A timeout written as `90s`, `10m`, `1h` (or a combination such as `1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeout {
    pub seconds: u64,
}

impl Timeout {
    pub const FORMAT: &'static str = "a duration such as \"90s\", \"10m\" or \"1h30m\"";

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not {}", Self::FORMAT);
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            total = total.saturating_add(n.saturating_mul(unit));
            digits.clear();
        }
        if !digits.is_empty() || total == 0 {
            return Err(if total == 0 && digits.is_empty() && !s.trim().is_empty() {
                format!("`{s}` must be longer than zero")
            } else {
                bad()
            });
        }
        Ok(Self { seconds: total })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(Timeout::parse("10m").map(|t| t.seconds), Ok(600));
        assert_eq!(Timeout::parse("1h30m").map(|t| t.seconds), Ok(5400));
        assert_eq!(Timeout::parse("45s").map(|t| t.seconds), Ok(45));
        assert!(Timeout::parse("10").is_err());
        assert!(Timeout::parse("0s").is_err());
        assert!(Timeout::parse("ten minutes").is_err());
        assert!(Timeout::parse("").is_err());
    }
}
