//! What happened to bottles, for the SQLite history: launches, kills, and the changes a watcher
//! sees between two reads of the engine (a daemon's health, the agent starting or exiting).
//! History, not truth — what runs is what the backend says.

use super::reconcile::BottleStatus;
use crate::store::{Event, Store};
use crate::types::AgentState;
use crate::wire::daemon::{Daemon, LogSource};
use crate::wire::log::{InitEvent, LogLine};
use color_eyre::eyre::Result;
use serde_json::{Value, json};

/// Events kept per bottle (the newest): the history of a daemon crash-looping under a
/// watching dashboard stays bounded.
pub const KEEP: usize = 1000;

/// One thing that happened to a bottle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    Launched {
        bottle: String,
    },
    LaunchFailed {
        bottle: String,
        error: String,
    },
    Killed {
        removed: usize,
        agent_state: Option<AgentState>,
        agent_exit_code: Option<i64>,
    },
    /// A daemon's health changed (`starting` → `healthy`, `healthy` → `unhealthy`, …).
    Health {
        daemon: Daemon,
        from: String,
        to: String,
    },
    /// The agent's state changed (it exited, or was started again).
    Agent {
        from: AgentState,
        to: AgentState,
        exit_code: Option<i64>,
    },
    /// A bundle daemon exited (init restarts it), as init logged it.
    DaemonExited {
        daemon: Daemon,
        code: Option<i64>,
    },
    /// The agent's container ended without its session saying so (killed, out of memory): the
    /// engine's record, read by the next process that looked.
    Ended {
        exit_code: Option<i64>,
    },
    /// An agent asked for an approval, or its ask was answered or withdrawn (supervise's line).
    Approval {
        id: String,
        /// `requested`, `answered` or `withdrawn`.
        step: String,
        action: Option<String>,
        decision: Option<String>,
        reason: Option<String>,
    },
    /// The git gate decided on a push.
    Push {
        repo: String,
        git_ref: Option<String>,
        allowed: bool,
        reason: Option<String>,
    },
    /// The agent's status changed (working, needs-you, idle…), as its session holder logged it.
    Status {
        status: crate::wire::session::AgentStatus,
        reason: Option<String>,
    },
    /// The gateway refused a request of the agent's, as it logged it.
    Blocked {
        host: String,
        port: Option<i64>,
        reason: String,
    },
}

impl Happened {
    /// The `kind` column (`launch` and `kill` as the first versions wrote them).
    fn kind(&self) -> &'static str {
        match self {
            Self::Launched { .. } | Self::LaunchFailed { .. } => "launch",
            Self::Killed { .. } => "kill",
            Self::Health { .. } => "health",
            Self::Agent { .. } => "agent",
            Self::DaemonExited { .. } => "daemon",
            Self::Blocked { .. } => "blocked",
            Self::Status { .. } => "status",
            Self::Approval { .. } => "approval",
            Self::Ended { .. } => "ended",
            Self::Push { .. } => "push",
        }
    }

    fn detail(&self) -> Value {
        match self {
            Self::Launched { bottle } => json!({ "bottle": bottle, "ok": true }),
            Self::LaunchFailed { bottle, error } => {
                json!({ "bottle": bottle, "ok": false, "error": error })
            }
            Self::Killed {
                removed,
                agent_state,
                agent_exit_code,
            } => json!({
                "removed": removed,
                "agent_state": agent_state,
                "agent_exit_code": agent_exit_code,
            }),
            Self::Health { daemon, from, to } => {
                json!({ "daemon": daemon, "from": from, "to": to })
            }
            Self::Agent {
                from,
                to,
                exit_code,
            } => json!({ "from": from, "to": to, "exit_code": exit_code }),
            Self::DaemonExited { daemon, code } => json!({ "daemon": daemon, "code": code }),
            Self::Blocked { host, port, reason } => {
                json!({ "host": host, "port": port, "reason": reason })
            }
            Self::Status { status, reason } => json!({ "status": status, "reason": reason }),
            Self::Ended { exit_code } => json!({ "exit_code": exit_code }),
            Self::Approval {
                id,
                step,
                action,
                decision,
                reason,
            } => json!({
                "id": id, "step": step, "action": action, "decision": decision, "reason": reason,
            }),
            Self::Push {
                repo,
                git_ref,
                allowed,
                reason,
            } => json!({ "repo": repo, "ref": git_ref, "allowed": allowed, "reason": reason }),
        }
    }
}

pub fn record(store: &Store, slug: &str, what: &Happened) -> Result<()> {
    store.record(slug, what.kind(), &what.detail()).map(|_| ())
}

/// Refused requests recorded per bottle per minute (of the requests' own time), at most: an
/// agent hammering blocked hosts must not flood the history. The BLOCKED count in the
/// dashboard still counts every refusal.
pub const BLOCKED_PER_MINUTE: usize = 30;

/// Records what a log line says happened at its own time, once however often the line is read
/// (and refused requests at most [`BLOCKED_PER_MINUTE`] a minute). True when it was new.
pub fn record_logged(store: &Store, slug: &str, time: &str, what: &Happened) -> Result<bool> {
    let per_minute = match what {
        Happened::Blocked { .. } => BLOCKED_PER_MINUTE,
        _ => usize::MAX >> 1,
    };
    store.record_at(slug, what.kind(), time, &what.detail(), per_minute)
}

/// What a bundle log line says happened: a daemon exiting (init's line) or a request the
/// gateway refused. With the line's own time, which must be RFC 3339.
pub fn from_log_line(line: &LogLine) -> Option<(String, Happened)> {
    // A status change is kept at the time it began, as the dashboard records it live.
    let time = match &line.activity {
        Some(a) => a.since.as_str(),
        None => line.time.as_deref()?,
    };
    let from = |d: Daemon| line.source() == Some(LogSource::Daemon(d));
    let what = if line.is_gateway_deny() {
        Happened::Blocked {
            host: line.host.clone()?,
            port: line.port,
            reason: line.reason.clone().unwrap_or_default(),
        }
    } else if from(Daemon::Supervise) && line.worth_keeping() {
        Happened::Approval {
            id: line.id.clone()?,
            step: line.msg.trim_start_matches("approval ").to_owned(),
            action: line.action.clone(),
            decision: line.decision.clone(),
            reason: line.reason.clone(),
        }
    } else if from(Daemon::GitGate) && line.worth_keeping() {
        Happened::Push {
            repo: line.repo.clone()?,
            git_ref: line.git_ref.clone(),
            allowed: line.msg.ends_with("allowed"),
            reason: line.reason.clone(),
        }
    } else if let Some(activity) = line.activity.clone() {
        Happened::Status {
            status: activity.status,
            reason: activity.reason,
        }
    } else {
        match line.init_event()? {
            (daemon, InitEvent::Exited) => Happened::DaemonExited {
                daemon,
                code: line.code,
            },
            _ => return None,
        }
    };
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time.to_owned(), what))
}

/// What changed between two reads of the same bottle.
pub fn changes(before: &BottleStatus, after: &BottleStatus) -> Vec<Happened> {
    let mut out = Vec::new();
    if before.agent.state != after.agent.state || before.agent.exit_code != after.agent.exit_code {
        out.push(Happened::Agent {
            from: before.agent.state,
            to: after.agent.state,
            exit_code: after.agent.exit_code,
        });
    }
    // Daemons appearing or vanishing are a bottle being launched or killed, which the history
    // has as such; only a daemon seen on both reads has a health change worth a line.
    for (daemon, to) in &after.health {
        if let Some(from) = before.health.get(daemon).filter(|from| *from != to) {
            out.push(Happened::Health {
                daemon: *daemon,
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    out
}

/// An event as one line for people: "launched from demo", "gateway healthy → unhealthy".
pub fn summary(e: &Event) -> String {
    let d = &e.detail;
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_owned();
    match e.kind.as_str() {
        "launch" if d["ok"] == true => format!("launched from {}", s("bottle")),
        "launch" => format!("launch of {} failed: {}", s("bottle"), s("error")),
        "kill" => match (d["agent_state"].as_str(), d["agent_exit_code"].as_i64()) {
            (Some(state), Some(code)) => format!(
                "killed ({} resources removed; agent was {state}, code {code})",
                d["removed"]
            ),
            (Some(state), None) => format!(
                "killed ({} resources removed; agent was {state})",
                d["removed"]
            ),
            _ => format!("killed ({} resources removed)", d["removed"]),
        },
        "health" => format!("{} {} → {}", s("daemon"), s("from"), s("to")),
        "agent" => match d["exit_code"].as_i64() {
            Some(code) if s("to") == AgentState::Exited.as_str() => {
                format!("agent exited with code {code}")
            }
            _ => format!("agent {} → {}", s("from"), s("to")),
        },
        "prepare" => "prepared (plan written)".to_owned(),
        "blocked" => {
            let port = d["port"]
                .as_i64()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            match d["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(reason) => format!("blocked {}{port}: {reason}", s("host")),
                None => format!("blocked {}{port}", s("host")),
            }
        }
        "ended" => match d["exit_code"].as_i64() {
            Some(code) => {
                format!("the agent's container ended with code {code}, its session silent")
            }
            None => "the agent's container ended, its session silent".to_owned(),
        },
        "approval" => {
            let action = d["action"]
                .as_str()
                .map(|a| format!(" to {a}"))
                .unwrap_or_default();
            match (s("step").as_str(), d["decision"].as_str()) {
                ("requested", _) => format!("approval {} asked{action}", s("id")),
                (step, Some(decision)) => match d["reason"].as_str() {
                    Some(r) => format!("approval {} {step}: {decision} ({r})", s("id")),
                    None => format!("approval {} {step}: {decision}", s("id")),
                },
                (step, None) => format!("approval {} {step}", s("id")),
            }
        }
        "push" => {
            let to = d["ref"]
                .as_str()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let verdict = if d["allowed"] == true {
                "allowed"
            } else {
                "refused"
            };
            match d["reason"].as_str() {
                Some(r) => format!("push to {}{to} {verdict}: {r}", s("repo")),
                None => format!("push to {}{to} {verdict}", s("repo")),
            }
        }
        "status" => match d["reason"].as_str() {
            Some(reason) => format!("agent {}: {reason}", s("status")),
            None => format!("agent {}", s("status")),
        },
        "daemon" => match d["code"].as_i64() {
            Some(code) => format!("{} exited with code {code}; init restarts it", s("daemon")),
            None => format!("{} exited; init restarts it", s("daemon")),
        },
        other => format!("{other} {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(agent: AgentState, code: Option<i64>, health: &[(Daemon, &str)]) -> BottleStatus {
        BottleStatus {
            slug: crate::types::Slug::parse("demo").expect("a slug"),
            agent: crate::engine::reconcile::AgentPart {
                state: agent,
                exit_code: code,
                activity: None,
            },
            health: health.iter().map(|(d, s)| (*d, (*s).to_owned())).collect(),
            ..BottleStatus::new(crate::types::Slug::parse("demo").expect("a slug"))
        }
    }

    #[test]
    fn health_and_agent_changes_are_seen_and_nothing_else() {
        let a = status(
            AgentState::Running,
            None,
            &[(Daemon::Gateway, "healthy"), (Daemon::Supervise, "healthy")],
        );
        assert!(changes(&a, &a.clone()).is_empty());
        let b = status(
            AgentState::Exited,
            Some(137),
            &[
                (Daemon::Gateway, "unhealthy"),
                (Daemon::GitGate, "starting"),
            ],
        );
        assert_eq!(
            changes(&a, &b),
            vec![
                Happened::Agent {
                    from: AgentState::Running,
                    to: AgentState::Exited,
                    exit_code: Some(137)
                },
                Happened::Health {
                    daemon: Daemon::Gateway,
                    from: "healthy".into(),
                    to: "unhealthy".into()
                },
            ],
            "git-gate appearing and supervise vanishing are launch and kill, not health"
        );
    }

    #[test]
    fn a_daemon_exit_from_inits_log_is_recorded_once_at_its_own_time() -> Result<()> {
        let line = r#"{"time":"2026-11-28T07:00:01.5Z","daemon":"init","level":"error","msg":"daemon exited","target":"gateway","code":137}"#;
        let (time, what) = from_log_line(&LogLine::parse(line)).expect("an exit");
        assert_eq!(time, "2026-11-28T07:00:01.5Z");
        assert_eq!(
            what,
            Happened::DaemonExited {
                daemon: Daemon::Gateway,
                code: Some(137)
            }
        );
        for other in [
            r#"{"daemon":"init","msg":"daemon started","target":"gateway"}"#,
            r#"{"daemon":"gateway","msg":"daemon exited","target":"x","time":"t"}"#,
            r#"{"daemon":"init","msg":"daemon exited","target":"\u001b[2J","time":"2026-11-28T07:00:01Z"}"#,
            r#"{"daemon":"init","msg":"daemon exited","target":"gateway","time":"soon"}"#,
            "daemon exited but not json",
        ] {
            assert_eq!(from_log_line(&LogLine::parse(other)), None, "{other}");
        }
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("state.db"))?;
        assert!(record_logged(&store, "demo", &time, &what)?);
        assert!(!record_logged(&store, "demo", &time, &what)?, "read again");
        let events = store.events(Some("demo"), 10)?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].time, "2026-11-28T07:00:01.500000000Z");
        assert_eq!(
            summary(&events[0]),
            "gateway exited with code 137; init restarts it"
        );
        Ok(())
    }

    #[test]
    fn a_refused_request_from_the_gateways_log_is_recorded_once() -> Result<()> {
        let line = r#"{"time":"2026-11-28T07:00:02Z","daemon":"gateway","level":"warn","msg":"request","method":"CONNECT","host":"evil.example","port":443,"decision":"deny","reason":"not on this bottle's allowlist","status":403}"#;
        let (time, what) = from_log_line(&LogLine::parse(line)).expect("a refusal");
        assert_eq!(
            what,
            Happened::Blocked {
                host: "evil.example".into(),
                port: Some(443),
                reason: "not on this bottle's allowlist".into()
            }
        );
        for other in [
            line.replace("\"deny\"", "\"allow\""),
            line.replace("\"daemon\":\"gateway\"", "\"daemon\":\"supervise\""),
            line.replace("2026-11-28T07:00:02Z", "yesterday"),
        ] {
            assert_eq!(from_log_line(&LogLine::parse(&other)), None, "{other}");
        }
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("state.db"))?;
        assert!(record_logged(&store, "demo", &time, &what)?);
        assert!(!record_logged(&store, "demo", &time, &what)?, "read again");
        let events = store.events(Some("demo"), 10)?;
        assert_eq!(
            events.iter().map(summary).collect::<Vec<_>>(),
            ["blocked evil.example:443: not on this bottle's allowlist"]
        );
        Ok(())
    }

    #[test]
    fn recorded_events_read_back_as_one_line_each() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("state.db"))?;
        for what in [
            Happened::Launched {
                bottle: "demo".into(),
            },
            Happened::Health {
                daemon: Daemon::Gateway,
                from: "healthy".into(),
                to: "unhealthy".into(),
            },
            Happened::Agent {
                from: AgentState::Running,
                to: AgentState::Exited,
                exit_code: Some(3),
            },
            Happened::Killed {
                removed: 4,
                agent_state: Some(AgentState::Exited),
                agent_exit_code: Some(3),
            },
            Happened::LaunchFailed {
                bottle: "demo".into(),
                error: "no such image".into(),
            },
        ] {
            record(&store, "demo", &what)?;
        }
        let lines: Vec<String> = store
            .events(Some("demo"), 10)?
            .iter()
            .map(summary)
            .collect();
        assert_eq!(
            lines,
            [
                "launch of demo failed: no such image",
                "killed (4 resources removed; agent was exited, code 3)",
                "agent exited with code 3",
                "gateway healthy → unhealthy",
                "launched from demo",
            ]
        );
        Ok(())
    }
}
