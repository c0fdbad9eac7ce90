//! The gateway's decisions, as pure functions: which hosts the agent may reach, and which
//! addresses no request may ever reach after name resolution (SSRF and DNS rebinding).

use crate::types::{HostPattern, PrivateTarget};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses a host written as an IP literal in any form a resolver would accept: dotted quad,
/// fewer parts (`127.1`), one 32-bit number (`2130706433`), octal (`0177.0.0.1`) or hex
/// (`0x7f.1`) parts, and bracketed or bare IPv6. Names return `None`.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let h = host.trim_end_matches('.');
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    if let Ok(v6) = h.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    inet_aton(h).map(IpAddr::V4)
}

/// `inet_aton` semantics: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let lower = p.to_ascii_lowercase();
        let n = if let Some(hex) = lower.strip_prefix("0x") {
            u64::from_str_radix(hex, 16).ok()?
        } else if lower.len() > 1 && lower.starts_with('0') {
            u64::from_str_radix(&lower[1..], 8).ok()?
        } else {
            if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            lower.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, init) = nums.split_last()?;
    let mut value: u64 = 0;
    for (i, n) in init.iter().enumerate() {
        if *n > 0xff {
            return None;
        }
        value |= n << (24 - 8 * i);
    }
    let room = 32 - 8 * init.len() as u32;
    if *last >= (1u64 << room) {
        return None;
    }
    Some(Ipv4Addr::from((value | last) as u32))
}

/// Why an address is not globally reachable (IANA IPv4/IPv6 special-purpose registries), or
/// `None` for an ordinary public address.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

/// IPv4 special-purpose blocks: (network, prefix, why).
const SPECIAL_V4: &[([u8; 4], u32, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
    ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
    (
        [100, 64, 0, 0],
        10,
        "shared address space / CGNAT (100.64.0.0/10)",
    ),
    ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
    ([169, 254, 169, 254], 32, "cloud metadata (169.254.169.254)"),
    ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
    ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
    (
        [192, 0, 0, 0],
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (192.88.99.0/24)"),
    ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
    ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
    ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
    ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
    ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
    ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
];

/// The IPv6 blocks [`special_v6`] refuses, as CIDRs (forms embedding IPv4 are judged by
/// their IPv4 address there and left out here).
const SPECIAL_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Every block [`special_purpose`] refuses, as CIDRs: what another proxy behind the gateway
/// (pipelock's `internal`) must refuse too, so a name it resolves again cannot rebind there.
pub fn special_purpose_cidrs() -> Vec<String> {
    SPECIAL_V4
        .iter()
        .map(|(net, prefix, _)| format!("{}/{prefix}", Ipv4Addr::from(*net)))
        .chain(SPECIAL_V6.iter().map(|s| (*s).to_owned()))
        .collect()
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    SPECIAL_V4
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    // Forms that embed an IPv4 address are judged by it (and refused outright for 6to4).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return special_v4(v4);
    }
    let first = seg[0];
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some("IPv4-compatible (::/96, deprecated)");
    }
    if first == 0x0064 && seg[1] == 0xff9b && seg[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    if first == 0x0100 && seg[1..4] == [0, 0, 0] {
        return Some("discard-only (100::/64)");
    }
    if first == 0x2001 && seg[1] == 0x0db8 {
        return Some("documentation (2001:db8::/32)");
    }
    if first == 0x2001 && seg[1] < 0x0200 {
        return Some("IETF protocol assignments (2001::/23)");
    }
    if first == 0x2002 {
        return Some("6to4 (2002::/16)");
    }
    if first & 0xfff0 == 0x3ff0 {
        return Some("documentation (3fff::/20)");
    }
    if first == 0x5f00 {
        return Some("segment routing (5f00::/16)");
    }
    if first & 0xfe00 == 0xfc00 {
        return Some("unique-local (fc00::/7)");
    }
    if first & 0xffc0 == 0xfe80 {
        return Some("link-local (fe80::/10)");
    }
    if first & 0xff00 == 0xff00 {
        return Some("multicast (ff00::/8)");
    }
    None
}

/// A refusal the agent is told about in the 403 body. Says what was refused and why, without
/// listing the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    NotAllowed {
        host: String,
    },
    Address {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    HostAddress {
        host: String,
        ip: IpAddr,
    },
    Unresolvable {
        host: String,
    },
    BadPort {
        host: String,
        port: u16,
    },
    /// Plain HTTP to a port other than 80.
    BadHttpPort {
        host: String,
        port: u16,
    },
    /// TRACE echoes the request, headers included: never forwarded.
    BadMethod {
        method: String,
    },
    Leak {
        host: String,
    },
}

impl Denial {
    /// Short machine-readable reason for the log line.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } => "not-allowlisted",
            Self::Address { .. } => "non-public-address",
            Self::HostAddress { .. } => "docker-host-address",
            Self::Unresolvable { .. } => "unresolvable",
            Self::BadPort { .. } | Self::BadHttpPort { .. } => "port-not-allowed",
            Self::BadMethod { .. } => "method-not-allowed",
            Self::Leak { .. } => "credential-leak",
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAllowed { host } => write!(f, "{host} is not on this bottle's allowlist"),
            Self::Address { host, ip, why } => write!(
                f,
                "{host} resolves to {ip}, a {why} address, which bottles may not reach"
            ),
            Self::HostAddress { host, ip } => {
                write!(f, "{host} resolves to {ip}, an address of the Docker host")
            }
            Self::Unresolvable { host } => write!(f, "{host} does not resolve"),
            Self::BadPort { host, port } => {
                write!(f, "{host}:{port}: tunnels are allowed to port 443 only")
            }
            Self::BadHttpPort { host, port } => {
                write!(f, "{host}:{port}: plain http is allowed to port 80 only")
            }
            Self::BadMethod { method } => write!(f, "{method} requests are not forwarded"),
            Self::Leak { host } => write!(
                f,
                "the request to {host} carries this bottle's placeholder credential, which belongs to another host; blocked as a leak"
            ),
        }
    }
}

/// The allowlist half of the policy, and the address check applied after resolution.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow: Vec<HostPattern>,
    pub allow_private: Vec<PrivateTarget>,
    /// The Docker host's own addresses: never reachable, even when public.
    pub host_addresses: Vec<IpAddr>,
}

impl Policy {
    /// Is the name (or literal) allowed before resolution? An IP literal is allowed only
    /// through `allow_private`; names must match the allowlist or a `host:port` opt-in.
    pub fn admits(&self, host: &str, port: u16) -> Result<(), Denial> {
        let host_lc = host.trim_end_matches('.').to_ascii_lowercase();
        if self.opted_in_host_port(&host_lc, port) {
            return Ok(());
        }
        if let Some(ip) = ip_literal(&host_lc) {
            return if self.opted_in_ip(ip) {
                Ok(())
            } else {
                Err(Denial::NotAllowed {
                    host: ip.to_string(),
                })
            };
        }
        if self.allow.iter().any(|p| p.matches(&host_lc)) {
            Ok(())
        } else {
            Err(Denial::NotAllowed { host: host_lc })
        }
    }

    /// May this resolved address be connected to for `host:port`?
    pub fn address_ok(&self, host: &str, port: u16, ip: IpAddr) -> Result<(), Denial> {
        let ip = canonical(ip);
        if self.opted_in(host, port, ip) {
            return Ok(());
        }
        if self.host_addresses.iter().any(|h| canonical(*h) == ip) {
            return Err(Denial::HostAddress {
                host: host.to_owned(),
                ip,
            });
        }
        match special_purpose(ip) {
            Some(why) => Err(Denial::Address {
                host: host.to_owned(),
                ip,
                why,
            }),
            None => Ok(()),
        }
    }

    /// True when `allow_private` admits this destination (its address or its `host:port`):
    /// such a destination is private by the user's choice, and is dialled directly, never
    /// through an upstream proxy that would refuse it as private.
    pub fn opted_in(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        self.opted_in_ip(ip) || self.opted_in_host_port(&host.to_ascii_lowercase(), port)
    }

    /// True when the user opted into this exact destination (so any port is fine).
    pub fn admits_port_freely(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.opted_in_host_port(&host, port)
            || ip_literal(&host).is_some_and(|ip| self.opted_in_ip(ip))
    }

    fn opted_in_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_private
            .iter()
            .any(|t| matches!(t, PrivateTarget::Cidr(net) if net.contains(&ip)))
    }

    fn opted_in_host_port(&self, host: &str, port: u16) -> bool {
        self.allow_private.iter().any(|t| {
            matches!(t, PrivateTarget::HostPort { host: h, port: p } if h == host && *p == port)
        })
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("v4"))
    }

    #[test]
    fn ip_literals_in_every_form_are_normalised() {
        for (written, meant) in [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("169.254.43518", "169.254.169.254"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("0xa9fea9fe", "169.254.169.254"),
            ("10.0.0.1.", "10.0.0.1"),
        ] {
            assert_eq!(ip_literal(written), Some(v4(meant)), "{written}");
        }
        assert_eq!(ip_literal("[::1]"), Some("::1".parse().expect("v6")));
        assert_eq!(
            ip_literal("::ffff:127.0.0.1"),
            Some("::ffff:127.0.0.1".parse().expect("v6"))
        );
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "08.1.1.1",
            "1..1",
            "0x",
            "a.b",
            "127.0.0.1x",
        ] {
            assert_eq!(ip_literal(name), None, "{name}");
        }
    }

    /// The CIDRs handed to pipelock are the blocks the gateway refuses: each one's first
    /// and last address is refused, and the address just outside is judged on its own.
    #[test]
    fn the_cidr_list_is_the_table_the_gateway_refuses() {
        let cidrs = special_purpose_cidrs();
        assert!(cidrs.contains(&"169.254.169.254/32".to_owned()));
        assert!(cidrs.contains(&"fc00::/7".to_owned()));
        for c in &cidrs {
            let net: ipnet::IpNet = c.parse().expect("a CIDR");
            for ip in [net.network(), net.broadcast()] {
                assert!(special_purpose(ip).is_some(), "{ip} in {c} is not refused");
            }
        }
        assert_eq!(cidrs.len(), SPECIAL_V4.len() + SPECIAL_V6.len());
    }

    #[test]
    fn special_purpose_addresses_are_refused_and_public_ones_pass() {
        for bad in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2002::1",
            "100::1",
            "3fff::1",
        ] {
            let ip: IpAddr = bad.parse().expect(bad);
            assert!(special_purpose(ip).is_some(), "{bad} must be refused");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = good.parse().expect(good);
            assert_eq!(special_purpose(ip), None, "{good} is public");
        }
        assert_eq!(
            special_purpose(v4("169.254.169.254")),
            Some("cloud metadata (169.254.169.254)")
        );
    }

    fn policy(allow: &[&str], private: &[&str]) -> Policy {
        Policy {
            allow: allow
                .iter()
                .map(|p| HostPattern::parse(p).expect("pattern"))
                .collect(),
            allow_private: private
                .iter()
                .map(|p| PrivateTarget::parse(p).expect("target"))
                .collect(),
            host_addresses: vec![v4("93.184.216.34")],
        }
    }

    #[test]
    fn names_are_admitted_by_the_wildcard_rules() {
        let p = policy(&["*.github.com", "api.anthropic.com"], &[]);
        assert!(p.admits("api.github.com", 443).is_ok());
        assert!(p.admits("a.b.github.com", 443).is_ok());
        assert!(p.admits("API.Anthropic.COM.", 443).is_ok());
        for denied in [
            "github.com",
            "malicious-github.com",
            "github.com.evil.com",
            "anthropic.com",
            "evil.com",
        ] {
            assert!(
                matches!(p.admits(denied, 443), Err(Denial::NotAllowed { .. })),
                "{denied}"
            );
        }
    }

    #[test]
    fn ip_literals_need_an_explicit_opt_in_whatever_their_spelling() {
        let p = policy(&["*.github.com"], &[]);
        for lit in [
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "[::1]",
            "8.8.8.8",
            "169.254.169.254",
        ] {
            assert!(
                matches!(p.admits(lit, 80), Err(Denial::NotAllowed { .. })),
                "{lit}"
            );
        }
        let p = policy(&[], &["192.168.7.0/24", "nas.lan:8443"]);
        assert!(p.admits("192.168.7.9", 80).is_ok());
        assert!(
            p.admits("0300.0250.7.9", 80).is_ok(),
            "octal spelling of 192.168.7.9"
        );
        assert!(p.admits("192.168.8.1", 80).is_err());
        assert!(p.admits("nas.lan", 8443).is_ok());
        assert!(
            p.admits("nas.lan", 22).is_err(),
            "host:port opts in that port only"
        );
    }

    #[test]
    fn resolved_addresses_are_checked_after_resolution() {
        let p = policy(&["*.example.com"], &["10.9.0.0/16", "nas.lan:8443"]);
        // A public name that rebinds to loopback or metadata is refused.
        assert!(matches!(
            p.address_ok("a.example.com", 443, v4("127.0.0.1")),
            Err(Denial::Address { .. })
        ));
        assert!(matches!(
            p.address_ok("a.example.com", 443, v4("169.254.169.254")),
            Err(Denial::Address { .. })
        ));
        assert!(matches!(
            p.address_ok(
                "a.example.com",
                443,
                "::ffff:127.0.0.1".parse().expect("v6")
            ),
            Err(Denial::Address { .. })
        ));
        assert!(matches!(
            p.address_ok("a.example.com", 443, v4("93.184.216.34")),
            Err(Denial::HostAddress { .. })
        ));
        assert!(p.address_ok("a.example.com", 443, v4("8.8.4.4")).is_ok());
        // Opt-ins pass: by CIDR, or for one host:port whatever it resolves to.
        assert!(p.address_ok("a.example.com", 443, v4("10.9.3.4")).is_ok());
        assert!(p.address_ok("nas.lan", 8443, v4("192.168.1.20")).is_ok());
        assert!(p.address_ok("nas.lan", 22, v4("192.168.1.20")).is_err());
    }
}
