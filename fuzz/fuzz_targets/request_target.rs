//! The gateway's reading of a request target: whatever bytes arrive as a CONNECT authority or
//! an absolute URI, the host and IP-literal parsing and the policy must never panic, and an IP
//! literal is only ever admitted through an explicit opt-in.
#![no_main]

use bottle_tui::sidecar::gateway::policy::{Policy, ip_literal, special_purpose};
use bottle_tui::types::{HostPattern, PrivateTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let policy = Policy {
        allow: vec![HostPattern::parse("*.github.com").expect("pattern"), HostPattern::parse("api.anthropic.com").expect("pattern")],
        allow_private: vec![PrivateTarget::parse("10.9.0.0/16").expect("cidr")],
        host_addresses: vec![],
    };
    for candidate in [text.to_owned(), format!("http://{text}/"), text.trim().to_owned()] {
        let Ok(uri) = candidate.parse::<http::Uri>() else { continue };
        let Some(host) = uri.host() else { continue };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(443);
        let admitted = policy.admits(host, port).is_ok();
        if let Some(ip) = ip_literal(host) {
            let _ = special_purpose(ip);
            let _ = policy.address_ok(host, port, ip);
            if admitted {
                let inside = matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[0] == 10 && v4.octets()[1] == 9);
                assert!(inside, "IP literal {host} admitted without an opt-in");
            }
        }
    }
    let _ = HostPattern::parse(text);
    let _ = PrivateTarget::parse(text);
});
