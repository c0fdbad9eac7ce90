use std::fmt;

/// An allowlist entry: an exact host name (`api.example.com`) or a wildcard (`*.example.com`).
///
/// Semantics, stated once and tested: `*.example.com` matches every name *below*
/// `example.com` at any depth (`a.example.com`, `a.b.example.com`) but **not** `example.com`
/// itself — list the apex separately if the agent needs it. Matching is case-insensitive; the
/// pattern is stored lowercased. A wildcard needs at least two labels after `*.` (`*.com` is
/// refused as too broad). IP literals are not host patterns: use `allow_private` for addresses.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    wildcard: bool,
    /// The exact host, or for a wildcard the domain below which names match.
    domain: String,
}

impl HostPattern {
    pub fn parse(input: &str) -> Result<Self, String> {
        let lower = input.to_ascii_lowercase();
        let (wildcard, domain) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if domain.contains('*') {
            return Err(format!(
                "`{input}`: '*' is only allowed as the whole first label, as in `*.example.com`"
            ));
        }
        if domain.parse::<std::net::IpAddr>().is_ok() || domain.starts_with('[') {
            return Err(format!(
                "`{input}` is an IP address; host patterns are names (use `allow_private` for addresses)"
            ));
        }
        if domain.contains(':') || domain.contains('/') {
            return Err(format!(
                "`{input}`: a host pattern is a bare host name, without scheme, port or path"
            ));
        }
        check_dns_name(domain).map_err(|why| format!("`{input}`: {why}"))?;
        if wildcard && domain.split('.').count() < 2 {
            return Err(format!(
                "`{input}` is too broad: a wildcard needs at least two labels after `*.`"
            ));
        }
        Ok(Self {
            wildcard,
            domain: domain.to_owned(),
        })
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact host this pattern names, if it is not a wildcard.
    pub fn exact(&self) -> Option<&str> {
        (!self.wildcard).then_some(self.domain.as_str())
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.wildcard {
            host.len() > self.domain.len() + 1
                && host.ends_with(&self.domain)
                && host.as_bytes()[host.len() - self.domain.len() - 1] == b'.'
        } else {
            host == self.domain
        }
    }
}

fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.len() > 253 {
        return Err("host name longer than 253 characters".into());
    }
    if name.ends_with('.') {
        return Err("remove the trailing '.'".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label (two dots in a row?)".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "label `{label}` may only hold letters, digits and '-'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` may not start or end with '-'"));
        }
    }
    Ok(())
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.domain)
        } else {
            f.write_str(&self.domain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).expect("valid pattern")
    }

    #[test]
    fn exact_matches_only_itself_case_insensitively() {
        let pat = p("API.example.com");
        assert!(pat.matches("api.example.com"));
        assert!(pat.matches("Api.Example.Com."));
        assert!(!pat.matches("x.api.example.com"));
        assert!(!pat.matches("example.com"));
        assert_eq!(pat.to_string(), "api.example.com");
    }

    #[test]
    fn wildcard_matches_subdomains_at_any_depth_but_not_the_apex() {
        let pat = p("*.github.com");
        assert!(pat.matches("api.github.com"));
        assert!(pat.matches("a.b.github.com"));
        assert!(!pat.matches("github.com"));
        assert!(!pat.matches("evilgithub.com"));
        assert!(!pat.matches("github.com.evil.net"));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in [
            "",
            "*.com",
            "a.*.com",
            "*",
            "10.0.0.1",
            "https://x.com",
            "x.com:443",
            "x..com",
            "-x.com",
            "x.com.",
            "x_y.com",
            "[::1]",
            "*x.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
