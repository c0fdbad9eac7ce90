//! An MCP client inside the agent: curl speaking supervise's streamable HTTP.
#![allow(dead_code)]

use super::{Scratch, stderr, stdout};

/// Initializes an MCP session with supervise from inside the agent, then posts `$1` (a
/// JSON-RPC message) and prints the response body. No proxy flags: NO_PROXY set by launch
/// must be what keeps curl off the gateway.
pub const MCP: &str = r#"
set -e
U=http://supervise:8900/mcp
CT='Content-Type: application/json'
AC='Accept: application/json, text/event-stream'
S=$(curl -sS -D - -o /dev/null -H "$CT" -H "$AC" "$U" \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}' \
  | tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
[ -n "$S" ] || { echo "no session id" >&2; exit 9; }
V='mcp-protocol-version: 2025-06-18'
curl -sS -H "$CT" -H "$AC" -H "mcp-session-id: $S" -H "$V" "$U" \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
curl -sS -w '\nHTTP %{http_code}\n' -H "$CT" -H "$AC" -H "mcp-session-id: $S" -H "$V" "$U" -d "$1"
"#;

/// The MCP exchange's raw output (for calls that may fail, e.g. across a restart).
pub fn mcp_output(s: &Scratch, slug: &str, body: &str) -> std::process::Output {
    s.run(&["exec", slug, "--", "sh", "-c", MCP, "sh", body])
}

pub fn mcp(s: &Scratch, slug: &str, body: &str) -> String {
    let out = mcp_output(s, slug, body);
    assert!(out.status.success(), "mcp exec failed: {}", stderr(&out));
    stdout(&out)
}

pub fn approval(action: &str, details: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "request_approval", "arguments": { "action": action, "details": details } }
    })
    .to_string()
}

pub fn notify(message: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": { "name": "notify", "arguments": { "message": message } }
    })
    .to_string()
}

/// The tool result's text, from the SSE body.
pub fn result_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find_map(|v| {
            v["result"]["content"][0]["text"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no tool result in {body}"))
}
