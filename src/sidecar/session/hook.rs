//! `bottle-sidecar session hook`: what Claude Code runs on its own events (provision installs
//! it in the agent's settings). It reads the event's JSON on stdin and tells the session holder
//! what the agent is doing, over the session socket (no network). It prints nothing — Claude
//! Code takes a hook's output as context — and always exits 0: a hook must never stop the agent.

use super::Paths;
use super::protocol::ClientFrame;
use crate::wire::session::{AgentStatus, Report, one_line_reason};
use serde_json::Value;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Claude Code's event JSON is small; a larger input is not read past this.
const INPUT_MAX: u64 = 1 << 20;

/// The status one of Claude Code's hook events means, if any.
pub fn report_for(event: &Value) -> Option<Report> {
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(one_line_reason);
    let status = match event.get("hook_event_name").and_then(Value::as_str)? {
        "UserPromptSubmit" | "PostToolUse" | "PreCompact" => AgentStatus::Working,
        "SessionStart" | "Stop" => AgentStatus::Idle,
        "PermissionRequest" => {
            // Worded as Claude Code's own notification for the same dialog, which follows:
            // one need, not two reasons flipping.
            let tool = text("tool_name").unwrap_or_else(|| "a tool".into());
            return Some(Report {
                status: AgentStatus::NeedsYou,
                reason: Some(format!("Claude needs your permission to use {tool}")),
            });
        }
        "Notification" => {
            let message = text("message");
            // "Waiting for your input" comes a minute after a turn ended: still idle. A
            // kind this build does not know is taken as a need: better asked than missed.
            let kind = event.get("notification_type").and_then(Value::as_str);
            let status = match kind {
                Some("idle_prompt" | "agent_completed") => AgentStatus::Idle,
                Some("auth_success") => return None,
                None if message
                    .as_deref()
                    .is_some_and(|m| m.contains("waiting for your input")) =>
                {
                    AgentStatus::Idle
                }
                _ => AgentStatus::NeedsYou,
            };
            return Some(Report {
                status,
                reason: message,
            });
        }
        _ => return None,
    };
    Some(Report {
        status,
        reason: None,
    })
}

pub fn run() -> ExitCode {
    let mut input = String::new();
    let _ = std::io::stdin().take(INPUT_MAX).read_to_string(&mut input);
    if let Some(report) = serde_json::from_str::<Value>(&input)
        .ok()
        .as_ref()
        .and_then(report_for)
        && let Err(e) = send(&Paths::from_env(), &report)
    {
        // Stderr only: Claude Code shows it in its debug output, never as context.
        eprintln!("bottle-sidecar session hook: cannot tell the session holder: {e}");
    }
    ExitCode::SUCCESS
}

/// Sends one report to the holder listening in `paths`.
pub fn send(paths: &Paths, report: &Report) -> std::io::Result<()> {
    let mut stream = std::os::unix::net::UnixStream::connect(paths.socket())?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut out = bytes::BytesMut::new();
    ClientFrame::Report(report.clone()).encode(&mut out);
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: Value) -> Option<(AgentStatus, Option<String>)> {
        report_for(&v).map(|r| (r.status, r.reason))
    }

    #[test]
    fn claude_codes_events_map_to_statuses() {
        let working = Some((AgentStatus::Working, None));
        let idle = Some((AgentStatus::Idle, None));
        assert_eq!(
            status(json!({"hook_event_name": "UserPromptSubmit", "prompt": "hi"})),
            working
        );
        assert_eq!(
            status(json!({"hook_event_name": "PostToolUse", "tool_name": "Bash"})),
            working
        );
        assert_eq!(status(json!({"hook_event_name": "Stop"})), idle);
        assert_eq!(
            status(json!({"hook_event_name": "SessionStart", "source": "startup"})),
            idle
        );
        assert_eq!(
            status(
                json!({"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"})
            ),
            Some((
                AgentStatus::NeedsYou,
                Some("Claude needs your permission to use Bash".into())
            ))
        );
        assert_eq!(
            status(json!({"hook_event_name": "PermissionRequest", "tool_name": "Write"})),
            Some((
                AgentStatus::NeedsYou,
                Some("Claude needs your permission to use Write".into())
            ))
        );
        // The idle reminder is not a need.
        assert_eq!(
            status(json!({"hook_event_name": "Notification", "message": "Claude is waiting for your input"}))
                .map(|s| s.0),
            Some(AgentStatus::Idle)
        );
        assert_eq!(
            status(json!({"hook_event_name": "Notification", "notification_type": "idle_prompt", "message": "x"}))
                .map(|s| s.0),
            Some(AgentStatus::Idle)
        );
        assert_eq!(
            status(
                json!({"hook_event_name": "Notification", "notification_type": "auth_success", "message": "x"})
            ),
            None
        );
        assert_eq!(
            status(json!({"hook_event_name": "Notification", "notification_type": "permission_prompt", "message": "Claude needs your permission to use Bash"}))
                .map(|s| s.0),
            Some(AgentStatus::NeedsYou)
        );
        assert_eq!(status(json!({"hook_event_name": "SessionEnd"})), None);
        assert_eq!(status(json!({"prompt": "no event name"})), None);
    }
}
