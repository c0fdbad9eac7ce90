use std::fmt;

/// A memory size written as `512m`, `4g`, `1.5g` or a plain number of bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const FORMAT: &'static str = "a size such as \"512m\" or \"4g\" (units b, k, m, g)";

    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_suffix("ib")
            .or_else(|| t.strip_suffix('b'))
            .unwrap_or(&t);
        let (num, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1u64 << 10),
            Some('m') => (&t[..t.len() - 1], 1 << 20),
            Some('g') => (&t[..t.len() - 1], 1 << 30),
            Some(c) if c.is_ascii_digit() => (t, 1),
            _ => return Err(format!("`{s}` is not {}", Self::FORMAT)),
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not {}", Self::FORMAT))?;
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("`{s}` must be a positive size"));
        }
        Ok(Self((value * mult as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b % (1 << 30) == 0 {
            write!(f, "{}g", b >> 30)
        } else if b % (1 << 20) == 0 {
            write!(f, "{}m", b >> 20)
        } else {
            write!(f, "{b}b")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(ByteSize::parse("4g"), Ok(ByteSize(4 << 30)));
        assert_eq!(ByteSize::parse("512M"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1.5g"), Ok(ByteSize(3 << 29)));
        assert_eq!(ByteSize::parse("2GiB"), Ok(ByteSize(2 << 30)));
        assert_eq!(ByteSize::parse("1024"), Ok(ByteSize(1024)));
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("-1g").is_err());
        assert_eq!(ByteSize(4 << 30).to_string(), "4g");
    }
}
