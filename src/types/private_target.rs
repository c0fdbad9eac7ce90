use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// An explicit opt-in to a non-public destination: a CIDR (`192.168.1.0/24`, a bare address
/// meaning its /32 or /128) or one `host:port` service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PrivateTarget {
    Cidr(IpNet),
    HostPort { host: String, port: u16 },
}

impl PrivateTarget {
    pub const FORMAT: &'static str =
        "a CIDR such as \"192.168.1.0/24\", an address, or \"host:port\"";

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            let net: IpNet = s
                .parse()
                .map_err(|_| format!("`{s}` is not a valid CIDR (expected {})", Self::FORMAT))?;
            if net.trunc() != net {
                return Err(format!(
                    "`{s}` has host bits set; did you mean `{}`?",
                    net.trunc()
                ));
            }
            return Ok(Self::Cidr(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Cidr(IpNet::from(ip)));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("`{s}` is not {}", Self::FORMAT));
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{s}`: port must be a number from 1 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = host.parse::<IpAddr>().is_ok()
            || crate::types::HostPattern::parse(host).is_ok_and(|p| !p.is_wildcard())
            || host == "localhost"
            || (!host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !valid_host {
            return Err(format!("`{s}`: `{host}` is not a host name or address"));
        }
        Ok(Self::HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl TryFrom<String> for PrivateTarget {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<PrivateTarget> for String {
    fn from(t: PrivateTarget) -> String {
        t.to_string()
    }
}

impl fmt::Display for PrivateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cidr(net) => write!(f, "{net}"),
            Self::HostPort { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Self::HostPort { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            PrivateTarget::parse("10.1.0.0/16").map(|t| t.to_string()),
            Ok("10.1.0.0/16".into())
        );
        assert_eq!(
            PrivateTarget::parse("192.168.1.5").map(|t| t.to_string()),
            Ok("192.168.1.5/32".into())
        );
        assert_eq!(
            PrivateTarget::parse("nas.lan:8080").map(|t| t.to_string()),
            Ok("nas.lan:8080".into())
        );
        assert!(
            PrivateTarget::parse("10.1.2.3/16")
                .unwrap_err()
                .contains("10.1.0.0/16")
        );
        for bad in [
            "10.0.0.0/33",
            "host",
            "host:0",
            "host:99999",
            "a b:80",
            ":80",
        ] {
            assert!(PrivateTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
