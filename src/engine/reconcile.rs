//! reconcile: what runs, read back from the backend's labels. The engine is the truth, so the
//! CLI and the dashboard find every bottle after their own restart, half-broken ones included.

use crate::backend::{Backend, ContainerInfo, ResourceKind, label, role};
use color_eyre::eyre::Result;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize)]
pub struct BottleStatus {
    pub slug: String,
    pub bottle: String,
    pub backend: String,
    /// running: bundle and agent up · exited: the agent finished · created: not started ·
    /// broken: a part is missing or stopped.
    pub state: String,
    pub agent: AgentStatus,
    /// Daemon → status (the bundle's health check when it has one, else its state).
    pub health: BTreeMap<String, String>,
    /// Loopback alias (smolvm on macOS); the docker backend publishes nothing, so none.
    pub alias: Option<String>,
    pub created: String,
    pub config_hash: String,
    pub version: String,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    #[serde(skip)]
    pub bundle: Option<ContainerInfo>,
    #[serde(skip)]
    pub agent_container: Option<ContainerInfo>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStatus {
    pub state: String,
    pub exit_code: Option<i64>,
}

/// Each daemon's state from the bundle's health check: `status` is the container's health
/// (or its state, without a check), `output` the check's last output, which names every
/// daemon's state as init records it (`healthy: {…}` / `unhealthy: {…}`), `daemons` the
/// bundle's list. One daemon being restarted makes the container unhealthy, not the others.
pub fn daemon_health(
    status: &str,
    output: Option<&str>,
    daemons: &str,
) -> BTreeMap<String, String> {
    let output = output.map(str::trim);
    // A stopped container is `unhealthy` with its last (healthy) output kept: only an
    // unhealthy check's own map says which daemons are still up.
    let per_daemon: BTreeMap<String, String> = match status {
        "unhealthy" => output.and_then(|o| o.strip_prefix("unhealthy: ")),
        _ => output.and_then(|o| o.strip_prefix("healthy: ")),
    }
    .and_then(|j| serde_json::from_str(j).ok())
    .unwrap_or_default();
    daemons
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|daemon| {
            let s = match (per_daemon.get(daemon).map(String::as_str), status) {
                // Up, in a container unhealthy because of another daemon.
                (Some("running"), "unhealthy") => "healthy".to_owned(),
                (Some("running") | None, _) => status.to_owned(),
                (Some("restarting"), _) => "down, restarting".to_owned(),
                (Some(other), _) => other.to_owned(),
            };
            (daemon.to_owned(), s)
        })
        .collect()
}

pub async fn reconcile(backend: &dyn Backend) -> Result<Vec<BottleStatus>> {
    let resources = backend.list(&[]).await?;
    let containers = backend.list_containers(&[]).await?;
    let mut slugs: BTreeMap<String, Vec<&crate::backend::Resource>> = BTreeMap::new();
    for r in &resources {
        if let Some(slug) = r.labels.get(label::SLUG) {
            slugs.entry(slug.clone()).or_default().push(r);
        }
    }
    // A machine's agent is known from its session record, read through smolvm (all at once).
    let machines: Vec<String> = containers
        .iter()
        .filter(|c| c.state == "running")
        .filter_map(|c| c.labels.get(label::MACHINE).cloned())
        .collect();
    let sessions: BTreeMap<String, MachineAgent> = join_all(machines.into_iter().map(|m| async {
        let smolvm = crate::backend::smolvm::cli::Smolvm::new(std::path::PathBuf::new());
        let seen = match super::agent_host::machine_session(&smolvm, &m).await {
            Ok(Some(r)) => MachineAgent::Session(r),
            Ok(None) => MachineAgent::NoSession,
            Err(_) => MachineAgent::Unreachable,
        };
        (m, seen)
    }))
    .await
    .into_iter()
    .collect();
    let mut out = Vec::new();
    for (slug, parts) in slugs {
        let find = |role: &str| {
            containers
                .iter()
                .find(|c| {
                    c.labels.get(label::SLUG) == Some(&slug)
                        && c.labels.get(label::ROLE).map(String::as_str) == Some(role)
                })
                .cloned()
        };
        let bundle = find(role::BUNDLE);
        let agent = find(role::AGENT);
        let any = |key: &str| {
            parts
                .iter()
                .find_map(|r| r.labels.get(key).cloned())
                .unwrap_or_default()
        };
        let networks: Vec<String> = parts
            .iter()
            .filter(|r| r.kind == ResourceKind::Network)
            .map(|r| r.name.clone())
            .collect();
        let smolvm_machine = bundle
            .as_ref()
            .and_then(|b| b.labels.get(label::MACHINE).cloned());
        let machine = smolvm_machine.as_ref().and_then(|m| sessions.get(m));
        let state = match (&smolvm_machine, machine) {
            // The agent is a smolvm machine; the engine sees its bundle only.
            (Some(_), Some(MachineAgent::Session(r))) if r.state == "exited" => "exited",
            (Some(_), Some(MachineAgent::Session(_) | MachineAgent::NoSession)) => "running",
            (Some(_), _) => "broken",
            (None, _) => state_of(bundle.as_ref(), agent.as_ref(), networks.len()),
        };
        let health = bundle.as_ref().map_or_else(BTreeMap::new, |b| {
            // A bundle that is not running has no daemons up, whatever its last check said.
            let output = (b.state == "running")
                .then_some(b.health_output.as_deref())
                .flatten();
            daemon_health(
                b.health.as_deref().unwrap_or(&b.state),
                output,
                b.labels.get(label::DAEMONS).map_or("", String::as_str),
            )
        });
        out.push(BottleStatus {
            bottle: any(label::BOTTLE),
            backend: if smolvm_machine.is_some() {
                "smolvm".to_owned()
            } else {
                backend.name().to_owned()
            },
            state: state.to_owned(),
            agent: match (&smolvm_machine, machine) {
                (Some(_), Some(m)) => m.status(),
                (Some(m), None) => AgentStatus {
                    state: format!("machine {m} not asked (its bundle is not running)"),
                    exit_code: None,
                },
                (None, _) => AgentStatus {
                    state: agent
                        .as_ref()
                        .map_or_else(|| "missing".into(), |a| a.state.clone()),
                    exit_code: agent
                        .as_ref()
                        .filter(|a| a.state == "exited")
                        .and_then(|a| a.exit_code),
                },
            },
            health,
            alias: bundle
                .as_ref()
                .and_then(|b| b.labels.get(label::ALIAS).cloned()),
            created: bundle
                .as_ref()
                .or(agent.as_ref())
                .map(|c| c.created.clone())
                .unwrap_or_default(),
            config_hash: any(label::CONFIG_HASH),
            version: any(label::VERSION),
            containers: parts
                .iter()
                .filter(|r| r.kind == ResourceKind::Container)
                .map(|r| r.name.clone())
                .collect(),
            networks,
            bundle,
            agent_container: agent,
            slug,
        });
    }
    Ok(out)
}

/// What a smolvm machine's session says of its agent.
enum MachineAgent {
    Session(crate::sidecar::session::SessionRecord),
    /// The holder has written nothing yet (launch is still provisioning).
    NoSession,
    /// smolvm could not ask the machine (stopped, removed, or smolvm missing): `inspect`
    /// and `attach` say why.
    Unreachable,
}

impl MachineAgent {
    fn status(&self) -> AgentStatus {
        match self {
            Self::Session(r) => AgentStatus {
                state: r.state.clone(),
                exit_code: (r.state == "exited")
                    .then_some(r.exit_code)
                    .flatten()
                    .map(i64::from),
            },
            Self::NoSession => AgentStatus {
                state: "starting".into(),
                exit_code: None,
            },
            Self::Unreachable => AgentStatus {
                state: "unreachable".into(),
                exit_code: None,
            },
        }
    }
}

fn state_of(
    bundle: Option<&ContainerInfo>,
    agent: Option<&ContainerInfo>,
    networks: usize,
) -> &'static str {
    match (
        bundle.map(|b| b.state.as_str()),
        agent.map(|a| a.state.as_str()),
    ) {
        (Some("running"), Some("running")) if networks == 2 => "running",
        (Some("running"), Some("exited")) => "exited",
        (Some("created"), Some("created")) | (Some("created"), None) => "created",
        _ => "broken",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_agents_status_comes_from_its_holders_record() {
        let record = |state: &str, code: Option<i32>| {
            MachineAgent::Session(crate::sidecar::session::SessionRecord {
                state: state.into(),
                pid: Some(7),
                exit_code: code,
                started_at: None,
                finished_at: None,
            })
        };
        let s = record("exited", Some(3)).status();
        assert_eq!((s.state.as_str(), s.exit_code), ("exited", Some(3)));
        // A code left in a record that is not exited is not an exit code.
        let s = record("running", Some(3)).status();
        assert_eq!((s.state.as_str(), s.exit_code), ("running", None));
        let s = MachineAgent::NoSession.status();
        assert_eq!((s.state.as_str(), s.exit_code), ("starting", None));
        let s = MachineAgent::Unreachable.status();
        assert_eq!((s.state.as_str(), s.exit_code), ("unreachable", None));
    }

    #[test]
    fn one_daemon_down_leaves_the_others_healthy() {
        let h = daemon_health(
            "unhealthy",
            Some(r#"unhealthy: {"gateway":"restarting","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h["gateway"], "down, restarting");
        assert_eq!(h["supervise"], "healthy");
        let h = daemon_health(
            "healthy",
            Some(r#"healthy: {"gateway":"running","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h["gateway"], "healthy");
        // Without a daemon map (init not running), every daemon shares the container's state.
        let h = daemon_health(
            "unhealthy",
            Some("unhealthy: init is not running"),
            "gateway,supervise",
        );
        assert_eq!(h["gateway"], "unhealthy");
        assert_eq!(h["supervise"], "unhealthy");
        assert!(daemon_health("running", None, "").is_empty());
        // Stopped: Docker says unhealthy and keeps the last, healthy, output.
        let h = daemon_health(
            "unhealthy",
            Some(r#"healthy: {"gateway":"running","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h["gateway"], "unhealthy");
        assert_eq!(h["supervise"], "unhealthy");
    }
}
