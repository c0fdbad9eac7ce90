//! kill: removes every resource of a bottle, found by its label — so it works on half-built
//! bottles and after a crash — plus the real tokens launch wrote. Safe to repeat.

use crate::backend::{Backend, Resource, ResourceKind, label};
use crate::state::StateRoot;
use crate::types::{AgentState, ContainerState, Slug};
use crate::wire::session::SessionState;
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures_util::future::join_all;
use std::time::{Duration, Instant};

/// How long `kill` lets an agent stop by itself (SIGTERM) before it is killed outright.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// What is lost with a bottle, said before it goes.
pub const WHAT_IS_LOST: &str =
    "anything the agent has not written to its workspace or pushed through the git gate is lost";

/// How the agent ended before its bottle was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The agent's state once stopped (`exited`), or what it was when not waited for.
    pub state: AgentState,
    pub exit_code: Option<i64>,
    /// False when the grace ran out and the engine killed it.
    pub by_itself: bool,
    pub took: Duration,
}

impl Ending {
    /// One line for the operator: `stopped by itself (exit 0) in 1.2s`.
    pub fn describe(&self, grace: Duration) -> String {
        let code = self
            .exit_code
            .map_or_else(String::new, |c| format!(" (exit {c})"));
        if self.by_itself {
            format!("the agent stopped{code} in {:.1}s", self.took.as_secs_f64())
        } else {
            format!(
                "the agent did not stop within {}s and was killed{code}",
                grace.as_secs()
            )
        }
    }
}

/// Asks a bottle's agent to stop (the engine sends SIGTERM, which the session holder passes
/// on, and SIGKILL once `grace` is up) and says how it ended. None when there is no agent or
/// it was not running.
pub async fn stop_agent(backend: &dyn Backend, slug: &Slug, grace: Duration) -> Option<Ending> {
    if grace.is_zero() {
        return None;
    }
    let bundle = format!("bottle-{slug}-bundle");
    if let Some(machine) = backend
        .inspect_container(&bundle)
        .await
        .ok()
        .flatten()
        .and_then(|b| b.labels.get(label::MACHINE).cloned())
    {
        return stop_machine_agent(&machine, grace).await;
    }
    let name = format!("bottle-{slug}-agent");
    let before = backend.inspect_container(&name).await.ok().flatten()?;
    if before.state != ContainerState::Running {
        return None;
    }
    let started = Instant::now();
    backend.stop_container(&name, grace).await.ok()?;
    let took = started.elapsed();
    let after = backend.inspect_container(&name).await.ok().flatten()?;
    Some(Ending {
        state: after.state.into(),
        exit_code: after.exit_code,
        // The engine's SIGKILL comes at `grace`; an exit before it was the agent's own.
        by_itself: took < grace,
        took,
    })
}

/// The same for an agent in a smolvm machine: SIGTERM to its session holder, then the
/// holder's record is watched until the agent exits or `grace` is up (the machine's removal
/// ends it then).
async fn stop_machine_agent(machine: &str, grace: Duration) -> Option<Ending> {
    use super::agent_host::{machine_session, terminate_holder};
    let smolvm = crate::backend::smolvm::cli::Smolvm::new(std::path::PathBuf::new());
    let before = machine_session(&smolvm, machine).await.ok().flatten()?;
    if before.state != SessionState::Running {
        return None;
    }
    let started = Instant::now();
    terminate_holder(&smolvm, machine).await.ok()?;
    let mut pause = Duration::from_millis(20);
    loop {
        let now = machine_session(&smolvm, machine).await.ok().flatten();
        let took = started.elapsed();
        match now {
            Some(r) if r.state == SessionState::Exited => {
                return Some(Ending {
                    state: AgentState::Exited,
                    exit_code: r.exit_code().map(i64::from),
                    by_itself: true,
                    took,
                });
            }
            _ if took >= grace => {
                return Some(Ending {
                    state: AgentState::Running,
                    exit_code: None,
                    by_itself: false,
                    took,
                });
            }
            _ => {}
        }
        tokio::time::sleep(pause.min(grace.saturating_sub(took))).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Removes what is left of `slug`; returns what was removed (empty when nothing was there).
pub async fn kill(backend: &dyn Backend, slug: &Slug, root: &StateRoot) -> Result<Vec<Resource>> {
    let found = backend.list(&[(label::SLUG, slug.as_str())]).await?;
    let of = |kind| found.iter().filter(move |r| r.kind == kind);

    // Forced removal: the agent's grace period, if any, was given by `stop_agent` first.
    let containers: Vec<&Resource> = of(ResourceKind::Container).collect();
    // A smolvm bottle's agent is a machine, named on its bundle.
    let smolvm =
        crate::backend::smolvm::cli::Smolvm::new(root.path().join("cache").join("smolmachines"));
    let mut errors: Vec<String> = Vec::new();
    for machine in containers
        .iter()
        .filter_map(|c| c.labels.get(label::MACHINE))
    {
        if let Err(e) = smolvm.machine_rm(machine).await {
            errors.push(format!("{e:#}"));
        }
    }
    errors.extend(
        join_all(containers.iter().map(|c| backend.remove_container(&c.name)))
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}"))),
    );
    let removals = of(ResourceKind::Network)
        .chain(of(ResourceKind::Volume))
        .map(|r| async move {
            match r.kind {
                ResourceKind::Network => backend.remove_network(&r.name).await,
                _ => backend.remove_volume(&r.name).await,
            }
        });
    errors.extend(
        join_all(removals)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}"))),
    );
    remove_tokens(root, slug)?;
    super::approvals::close_all(root, slug, "the bottle was killed")?;
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(eyre!(errors.join("; "))).wrap_err_with(|| format!("could not remove all of {slug}"))
    }
}

/// Deletes the 0600 token files launch wrote; the state dir keeps no real credential.
fn remove_tokens(root: &StateRoot, slug: &Slug) -> Result<()> {
    let dir = root.bottle_dir(slug).join(super::prepare::files::SECRETS);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).wrap_err_with(|| format!("cannot read {}", dir.display())),
    };
    for e in entries.flatten() {
        std::fs::remove_file(e.path())
            .wrap_err_with(|| format!("cannot remove the token file {}", e.path().display()))?;
    }
    Ok(())
}
