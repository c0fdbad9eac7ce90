use std::fmt;

/// A key binding such as `ctrl-q`, `alt-enter`, `f1`, `?` or `K`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeySpec {
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
    /// A single character, or a named key (`enter`, `esc`, `f5`, ...).
    pub key: String,
}

const NAMED: &[&str] = &[
    "enter",
    "esc",
    "tab",
    "backtab",
    "backspace",
    "delete",
    "insert",
    "home",
    "end",
    "pageup",
    "pagedown",
    "up",
    "down",
    "left",
    "right",
    "space",
];

impl KeySpec {
    pub const FORMAT: &'static str =
        "a key such as \"ctrl-q\", \"alt-x\", \"f2\", \"enter\" or a single character";

    pub fn parse(input: &str) -> Result<Self, String> {
        let mut spec = KeySpec {
            ctrl: false,
            alt: false,
            shift: false,
            key: String::new(),
        };
        let mut rest = input;
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                spec.ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                spec.alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-") {
                spec.shift = true;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let single = matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_control());
        let lower = rest.to_ascii_lowercase();
        let function = lower
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=12).contains(&n));
        if single {
            spec.key = if spec.ctrl { lower } else { rest.to_owned() };
        } else if NAMED.contains(&lower.as_str()) || function {
            spec.key = lower;
        } else {
            return Err(format!("`{input}` is not {}", Self::FORMAT));
        }
        Ok(spec)
    }
}

impl TryFrom<String> for KeySpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<KeySpec> for String {
    fn from(k: KeySpec) -> String {
        k.to_string()
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        if self.shift {
            f.write_str("shift-")?;
        }
        f.write_str(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys() {
        let k = KeySpec::parse("Ctrl-Q").expect("valid");
        assert!(k.ctrl && k.key == "q");
        assert_eq!(k.to_string(), "ctrl-q");
        assert_eq!(KeySpec::parse("f5").map(|k| k.key), Ok("f5".into()));
        assert_eq!(KeySpec::parse("?").map(|k| k.key), Ok("?".into()));
        assert_eq!(KeySpec::parse("K").map(|k| k.key), Ok("K".into()));
        for bad in ["", "ctrl-", "f13", "hyper-x", "escape-key"] {
            assert!(KeySpec::parse(bad).is_err(), "{bad}");
        }
    }
}
