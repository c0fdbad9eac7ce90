//! What happened to bottles, for the SQLite history: launches, kills, and the changes a watcher
//! sees between two reads of the engine (a daemon's health, the agent starting or exiting).
//! History, not truth — what runs is what the backend says.

use super::reconcile::BottleStatus;
use crate::store::{Event, Store};
use color_eyre::eyre::Result;
use serde_json::{Value, json};

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
        agent_state: Option<String>,
        agent_exit_code: Option<i64>,
    },
    /// A daemon's health changed (`starting` → `healthy`, `healthy` → `unhealthy`, …).
    Health {
        daemon: String,
        from: String,
        to: String,
    },
    /// The agent's state changed (it exited, or was started again).
    Agent {
        from: String,
        to: String,
        exit_code: Option<i64>,
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
        }
    }
}

pub fn record(store: &Store, slug: &str, what: &Happened) -> Result<()> {
    store.record(slug, what.kind(), &what.detail()).map(|_| ())
}

/// What changed between two reads of the same bottle.
pub fn changes(before: &BottleStatus, after: &BottleStatus) -> Vec<Happened> {
    let mut out = Vec::new();
    if before.agent.state != after.agent.state || before.agent.exit_code != after.agent.exit_code {
        out.push(Happened::Agent {
            from: before.agent.state.clone(),
            to: after.agent.state.clone(),
            exit_code: after.agent.exit_code,
        });
    }
    for (daemon, to) in &after.health {
        let from = before.health.get(daemon);
        if from != Some(to) {
            out.push(Happened::Health {
                daemon: daemon.clone(),
                from: from.cloned().unwrap_or_else(|| "absent".into()),
                to: to.clone(),
            });
        }
    }
    for (daemon, from) in &before.health {
        if !after.health.contains_key(daemon) {
            out.push(Happened::Health {
                daemon: daemon.clone(),
                from: from.clone(),
                to: "absent".into(),
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
            Some(code) if s("to") == "exited" => format!("agent exited with code {code}"),
            _ => format!("agent {} → {}", s("from"), s("to")),
        },
        "prepare" => "prepared (plan written)".to_owned(),
        other => format!("{other} {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(agent: &str, code: Option<i64>, health: &[(&str, &str)]) -> BottleStatus {
        BottleStatus {
            slug: "demo".into(),
            agent: crate::engine::reconcile::AgentStatus {
                state: agent.into(),
                exit_code: code,
            },
            health: health
                .iter()
                .map(|(d, s)| ((*d).to_owned(), (*s).to_owned()))
                .collect(),
            ..BottleStatus::default()
        }
    }

    #[test]
    fn health_and_agent_changes_are_seen_and_nothing_else() {
        let a = status(
            "running",
            None,
            &[("gateway", "healthy"), ("supervise", "healthy")],
        );
        assert!(changes(&a, &a.clone()).is_empty());
        let b = status(
            "exited",
            Some(137),
            &[("gateway", "unhealthy"), ("git-gate", "starting")],
        );
        assert_eq!(
            changes(&a, &b),
            vec![
                Happened::Agent {
                    from: "running".into(),
                    to: "exited".into(),
                    exit_code: Some(137)
                },
                Happened::Health {
                    daemon: "gateway".into(),
                    from: "healthy".into(),
                    to: "unhealthy".into()
                },
                Happened::Health {
                    daemon: "git-gate".into(),
                    from: "absent".into(),
                    to: "starting".into()
                },
                Happened::Health {
                    daemon: "supervise".into(),
                    from: "healthy".into(),
                    to: "absent".into()
                },
            ]
        );
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
                daemon: "gateway".into(),
                from: "healthy".into(),
                to: "unhealthy".into(),
            },
            Happened::Agent {
                from: "running".into(),
                to: "exited".into(),
                exit_code: Some(3),
            },
            Happened::Killed {
                removed: 4,
                agent_state: Some("exited".into()),
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
