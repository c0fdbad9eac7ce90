//! `pipelock.yaml`. pipelock rejects unknown keys at every level, so this renders exactly the
//! keys of its v2.3 schema we rely on (see shared/pipelock-notes.md), nothing else.

use crate::engine::plan::Plan;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A YAML double-quoted scalar (JSON string syntax is a subset of it).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn list(out: &mut String, indent: &str, key: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{indent}{key}: []");
    } else {
        let _ = writeln!(out, "{indent}{key}:");
        for item in items {
            let _ = writeln!(out, "{indent}  - {}", q(item));
        }
    }
}

pub fn render(plan: &Plan, placeholders: &BTreeMap<String, String>) -> Option<String> {
    let p = plan.pipelock.as_ref()?;
    let allow: Vec<String> = plan.gateway.allow.iter().map(ToString::to_string).collect();
    // Routed traffic already carries the real token when it reaches pipelock; its default
    // `sk-ant-` pattern would block it, so those hosts pass through uninspected.
    let routed: Vec<String> = plan.gateway.routes.iter().map(|r| r.host.clone()).collect();
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Rendered by bottle-tui {} for bottle {}. Do not edit: `bottle-tui plan` rewrites it.",
        plan.tool_version, plan.slug
    );
    let _ = writeln!(y, "version: 1");
    let _ = writeln!(y, "mode: {}", q(p.mode.as_str()));
    let _ = writeln!(y, "enforce: true");
    // Hints would tell the agent the policy; keep them off.
    let _ = writeln!(y, "explain_blocks: false");
    list(&mut y, "", "api_allowlist", &allow);
    let _ = writeln!(y, "fetch_proxy:");
    let _ = writeln!(y, "  listen: {}", q(&p.listen));
    let _ = writeln!(y, "forward_proxy:");
    let _ = writeln!(y, "  enabled: true");
    let _ = writeln!(y, "  max_tunnel_seconds: 300");
    let _ = writeln!(y, "  idle_timeout_seconds: 120");
    let _ = writeln!(y, "  sni_verification: true");
    let _ = writeln!(y, "tls_interception:");
    let _ = writeln!(y, "  enabled: false");
    list(&mut y, "  ", "passthrough_domains", &routed);
    let _ = writeln!(y, "request_body_scanning:");
    let _ = writeln!(y, "  enabled: true");
    let _ = writeln!(y, "  action: \"block\"");
    let _ = writeln!(y, "  scan_headers: true");
    let _ = writeln!(y, "  header_mode: \"sensitive\"");
    let _ = writeln!(y, "response_scanning:");
    // `ask` needs a TTY, which a sidecar never has.
    let _ = writeln!(y, "  action: \"warn\"");
    let _ = writeln!(y, "dlp:");
    let _ = writeln!(y, "  include_defaults: true");
    let _ = writeln!(y, "  scan_env: false");
    let _ = writeln!(y, "canary_tokens:");
    if plan.gateway.routes.is_empty() {
        let _ = writeln!(y, "  tokens: []");
    } else {
        let _ = writeln!(y, "  tokens:");
        for r in &plan.gateway.routes {
            let value = placeholders
                .get(&r.placeholder_env)
                .map_or("", String::as_str);
            let _ = writeln!(
                y,
                "    - name: {}",
                q(&format!("placeholder-{}", r.placeholder_env))
            );
            let _ = writeln!(y, "      value: {}", q(value));
        }
    }
    let _ = writeln!(y, "logging:");
    let _ = writeln!(y, "  format: \"json\"");
    let _ = writeln!(y, "  output: \"stdout\"");
    let _ = writeln!(y, "  include_allowed: true");
    let _ = writeln!(y, "  include_blocked: true");
    // pipelock resolves every name again. It must refuse what the gateway refuses, or a name
    // the agent controls under an allowed wildcard could rebind to a private address between
    // the two lookups. Last in the file: launch appends the Docker host's own addresses.
    let _ = writeln!(y, "internal:");
    for cidr in crate::sidecar::gateway::policy::special_purpose_cidrs() {
        let _ = writeln!(y, "  - {}", q(&cidr));
    }
    Some(y)
}

/// The lines launch appends to the rendered file (whose last key is `internal`): the Docker
/// host's own addresses, refused like private ones, as the gateway refuses them.
pub fn host_address_lines(addrs: &[std::net::IpAddr]) -> String {
    let mut y = String::new();
    for a in addrs {
        let prefix = if a.is_ipv4() { 32 } else { 128 };
        let _ = writeln!(y, "  - {}", q(&format!("{a}/{prefix}")));
    }
    y
}
