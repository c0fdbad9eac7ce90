//! reconcile: what runs, read back from the backend's labels. The engine is the truth, so the
//! CLI and the dashboard find every bottle after their own restart, half-broken ones included.

use crate::backend::{Backend, ContainerInfo, ContainerState, ResourceKind, label, role};
use crate::types::{AgentState, BottleState, Slug};
use crate::wire::daemon::Daemon;
use crate::wire::session::{Activity, SessionRecord, SessionState};
use color_eyre::eyre::Result;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct BottleStatus {
    pub slug: Slug,
    pub bottle: String,
    pub backend: String,
    pub state: BottleState,
    pub agent: AgentPart,
    /// Daemon → status (the bundle's health check when it has one, else its state).
    pub health: BTreeMap<Daemon, String>,
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

/// A bottle as `reconcile` finds it before it has looked at any part: broken, with nothing.
impl BottleStatus {
    pub fn new(slug: Slug) -> Self {
        Self {
            slug,
            bottle: String::new(),
            backend: String::new(),
            state: BottleState::default(),
            agent: AgentPart::default(),
            health: BTreeMap::new(),
            alias: None,
            created: String::new(),
            config_hash: String::new(),
            version: String::new(),
            containers: Vec::new(),
            networks: Vec::new(),
            bundle: None,
            agent_container: None,
        }
    }
}

/// The agent part of a bottle: its state (container or machine), exit code, and what it is doing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentPart {
    pub state: AgentState,
    pub exit_code: Option<i64>,
    /// What the agent is doing, as its session holder says (`read_activities` reads it for
    /// Docker agents; the dashboard follows it live).
    pub activity: Option<Activity>,
}

/// Each daemon's state from the bundle's health check: `status` is the container's health
/// (or its state, without a check), `output` the check's last output, which names every
/// daemon's state as init records it (`healthy: {…}` / `unhealthy: {…}`), `daemons` the
/// bundle's list. One daemon being restarted makes the container unhealthy, not the others.
pub fn daemon_health(
    status: &str,
    output: Option<&str>,
    daemons: &str,
) -> BTreeMap<Daemon, String> {
    let output = output.map(str::trim);
    // A stopped container is `unhealthy` with its last (healthy) output kept: only an
    // unhealthy check's own map says which daemons are still up.
    let per_daemon: BTreeMap<String, String> = match status {
        "unhealthy" => output.and_then(|o| o.strip_prefix("unhealthy: ")),
        _ => output.and_then(|o| o.strip_prefix("healthy: ")),
    }
    .and_then(|j| serde_json::from_str(j).ok())
    .unwrap_or_default();
    Daemon::split(daemons)
        .into_iter()
        .map(|daemon| {
            let s = match (per_daemon.get(daemon.as_str()).map(String::as_str), status) {
                // Up, in a container unhealthy because of another daemon.
                (Some("running"), "unhealthy") => "healthy".to_owned(),
                (Some("running") | None, _) => status.to_owned(),
                (Some("restarting"), _) => "down, restarting".to_owned(),
                (Some(other), _) => other.to_owned(),
            };
            (daemon, s)
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
        .filter(|c| c.state == ContainerState::Running)
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
    for (text, parts) in slugs {
        // Only bottle-tui writes the label; anything else carrying it is not a bottle.
        let slug = match Slug::parse(&text) {
            Ok(slug) => slug,
            Err(e) => {
                tracing::warn!("ignoring resources labelled {}: {e}", label::SLUG);
                continue;
            }
        };
        let find = |role: &str| {
            containers
                .iter()
                .find(|c| {
                    c.labels.get(label::SLUG) == Some(&text)
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
            (Some(_), Some(MachineAgent::Session(r))) if r.state == SessionState::Exited => {
                BottleState::Exited
            }
            (Some(_), Some(MachineAgent::Session(_) | MachineAgent::NoSession)) => {
                BottleState::Running
            }
            (Some(_), _) => BottleState::Broken,
            (None, _) => state_of(bundle.as_ref(), agent.as_ref(), networks.len()),
        };
        let health = bundle.as_ref().map_or_else(BTreeMap::new, |b| {
            // A bundle that is not running has no daemons up, whatever its last check said.
            let output = (b.state == ContainerState::Running)
                .then_some(b.health_output.as_deref())
                .flatten();
            daemon_health(
                b.health.as_deref().unwrap_or(b.state.as_str()),
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
            state,
            agent: match (&smolvm_machine, machine) {
                (Some(_), Some(m)) => m.status(),
                (Some(_), None) => AgentPart {
                    state: AgentState::NotAsked,
                    exit_code: None,
                    activity: None,
                },
                (None, _) => AgentPart {
                    state: agent
                        .as_ref()
                        .map_or(AgentState::Missing, |a| a.state.into()),
                    exit_code: agent
                        .as_ref()
                        .filter(|a| a.state == ContainerState::Exited)
                        .and_then(|a| a.exit_code),
                    activity: None,
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

/// Reads what each Docker agent is doing from its holder's record (all at once, through the
/// engine's archive API: no process in the container). smolvm agents have theirs already.
pub async fn read_activities(backend: &dyn Backend, bottles: &mut [BottleStatus]) {
    let wanted: Vec<(usize, String)> = bottles
        .iter()
        .enumerate()
        .filter(|(_, b)| b.agent.activity.is_none())
        .filter_map(|(i, b)| Some((i, b.agent_container.as_ref()?.name.clone())))
        .collect();
    let read = join_all(
        wanted
            .into_iter()
            .map(|(i, name)| async move { (i, agent_activity(backend, &name).await) }),
    )
    .await;
    for (i, activity) in read {
        bottles[i].agent.activity = activity;
    }
}

/// The activity in the record of the holder in container `name`, if it has written one.
pub async fn agent_activity(backend: &dyn Backend, name: &str) -> Option<Activity> {
    let paths = crate::sidecar::session::Paths::new(crate::sidecar::session::DEFAULT_DIR);
    let bytes = backend
        .read_file(name, &paths.record().display().to_string())
        .await
        .ok()??;
    serde_json::from_slice::<SessionRecord>(&bytes)
        .ok()?
        .activity
}

/// What a smolvm machine's session says of its agent.
enum MachineAgent {
    Session(SessionRecord),
    /// The holder has written nothing yet (launch is still provisioning).
    NoSession,
    /// smolvm could not ask the machine (stopped, removed, or smolvm missing): `inspect`
    /// and `attach` say why.
    Unreachable,
}

impl MachineAgent {
    fn status(&self) -> AgentPart {
        match self {
            Self::Session(r) => AgentPart {
                state: match r.state {
                    SessionState::Running => AgentState::Running,
                    SessionState::Exited => AgentState::Exited,
                },
                exit_code: r.exit_code().map(i64::from),
                activity: r.activity.clone(),
            },
            Self::NoSession => AgentPart {
                state: AgentState::Starting,
                exit_code: None,
                activity: None,
            },
            Self::Unreachable => AgentPart {
                state: AgentState::Unreachable,
                exit_code: None,
                activity: None,
            },
        }
    }
}

fn state_of(
    bundle: Option<&ContainerInfo>,
    agent: Option<&ContainerInfo>,
    networks: usize,
) -> BottleState {
    use ContainerState::{Created, Exited, Running};
    match (bundle.map(|b| b.state), agent.map(|a| a.state)) {
        (Some(Running), Some(Running)) if networks == 2 => BottleState::Running,
        (Some(Running), Some(Exited)) => BottleState::Exited,
        (Some(Created), Some(Created) | None) => BottleState::Created,
        _ => BottleState::Broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_agents_status_comes_from_its_holders_record() {
        let record = |state: SessionState, code: Option<i32>| {
            MachineAgent::Session(SessionRecord {
                state,
                pid: Some(7),
                exit_code: code,
                started_at: None,
                finished_at: None,
                activity: None,
            })
        };
        let s = record(SessionState::Exited, Some(3)).status();
        assert_eq!((s.state, s.exit_code), (AgentState::Exited, Some(3)));
        // A code left in a record that is not exited is not an exit code.
        let s = record(SessionState::Running, Some(3)).status();
        assert_eq!((s.state, s.exit_code), (AgentState::Running, None));
        let s = MachineAgent::NoSession.status();
        assert_eq!((s.state, s.exit_code), (AgentState::Starting, None));
        let s = MachineAgent::Unreachable.status();
        assert_eq!((s.state, s.exit_code), (AgentState::Unreachable, None));
    }

    #[test]
    fn one_daemon_down_leaves_the_others_healthy() {
        let h = daemon_health(
            "unhealthy",
            Some(r#"unhealthy: {"gateway":"restarting","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h[&Daemon::Gateway], "down, restarting");
        assert_eq!(h[&Daemon::Supervise], "healthy");
        let h = daemon_health(
            "healthy",
            Some(r#"healthy: {"gateway":"running","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h[&Daemon::Gateway], "healthy");
        // Without a daemon map (init not running), every daemon shares the container's state.
        let h = daemon_health(
            "unhealthy",
            Some("unhealthy: init is not running"),
            "gateway,supervise",
        );
        assert_eq!(h[&Daemon::Gateway], "unhealthy");
        assert_eq!(h[&Daemon::Supervise], "unhealthy");
        assert!(daemon_health("running", None, "").is_empty());
        // Stopped: Docker says unhealthy and keeps the last, healthy, output.
        let h = daemon_health(
            "unhealthy",
            Some(r#"healthy: {"gateway":"running","supervise":"running"}"#),
            "gateway,supervise",
        );
        assert_eq!(h[&Daemon::Gateway], "unhealthy");
        assert_eq!(h[&Daemon::Supervise], "unhealthy");
    }
}
