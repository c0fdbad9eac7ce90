//! One log line per gate operation. The hooks are grandchildren of `git daemon` whose output
//! goes to the git client, not to init; so they send their events as datagrams to a socket
//! the daemon binds, and the daemon writes them as its own JSON lines.

use crate::sidecar::log;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The environment variable naming the socket; the daemon sets it for git daemon's children.
pub const SOCKET_ENV: &str = "BOTTLE_GIT_GATE_EVENTS";
pub const DAEMON: &str = "git-gate";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A clone or fetch: the mirror is refreshed from the upstream.
    Fetch,
    /// One ref of a push.
    Push,
    /// A connection for a repository the gate does not serve.
    Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub level: Level,
    pub repo: String,
    pub op: Op,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
    pub refname: Option<String>,
    pub decision: Decision,
    pub reason: String,
}

impl Event {
    pub fn new(repo: &str, op: Op, decision: Decision, reason: impl Into<String>) -> Self {
        Self {
            level: match decision {
                Decision::Allow => Level::Info,
                Decision::Deny => Level::Warn,
            },
            repo: repo.to_owned(),
            op,
            refname: None,
            decision,
            reason: reason.into(),
        }
    }

    pub fn with_ref(mut self, refname: &str) -> Self {
        self.refname = Some(refname.to_owned());
        self
    }

    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Writes the event as the git-gate daemon's JSON line (in the daemon's own process).
    pub fn log(&self) {
        let decision = match self.decision {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
        };
        let op = match self.op {
            Op::Fetch => "fetch",
            Op::Push => "push",
            Op::Access => "access",
        };
        let mut fields = serde_json::json!({
            "repo": self.repo,
            "op": self.op,
            "decision": self.decision,
            "reason": self.reason,
        });
        if let (Some(r), Some(obj)) = (&self.refname, fields.as_object_mut()) {
            obj.insert("ref".into(), serde_json::json!(r));
        }
        log::event(
            DAEMON,
            self.level.as_str(),
            &format!("{op} {decision}"),
            fields,
        );
    }

    /// From a hook: to the daemon's socket, or as a JSON line on stderr when the socket is
    /// gone (a hook must never fail because logging did).
    pub fn send(&self) {
        let Ok(body) = serde_json::to_vec(self) else {
            return;
        };
        let sent = std::env::var_os(SOCKET_ENV).is_some_and(|path| {
            std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.send_to(&body, Path::new(&path)))
                .is_ok()
        });
        if !sent {
            eprintln!("{}", String::from_utf8_lossy(&body));
        }
    }
}

/// Receives the hooks' events and logs each as a line until the socket fails.
pub async fn relay(socket: tokio::net::UnixDatagram) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                log::event(
                    DAEMON,
                    "error",
                    "event socket failed; hook events go to their stderr",
                    serde_json::json!({ "error": e.to_string() }),
                );
                return;
            }
        };
        match serde_json::from_slice::<Event>(&buf[..n]) {
            Ok(ev) => ev.log(),
            Err(e) => log::event(
                DAEMON,
                "warn",
                "unreadable event on the socket",
                serde_json::json!({ "error": e.to_string() }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_ref_named_ref() {
        let ev = Event::new("web", Op::Push, Decision::Deny, "branch main is protected")
            .with_ref("refs/heads/main");
        let json = serde_json::to_value(&ev).expect("encode");
        assert_eq!(json["ref"], "refs/heads/main");
        assert_eq!(json["decision"], "deny");
        assert_eq!(json["op"], "push");
        assert_eq!(json["level"], "warn");
        let back: Event = serde_json::from_value(json).expect("decode");
        assert_eq!(back, ev);
    }
}
