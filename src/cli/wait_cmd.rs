//! `bottle-tui wait`: blocks until a bottle's agent is in a status (needs-you, idle, exited…),
//! so scripts can chain agents. Exit 0 once it is, 124 when the timeout passes first (as
//! `timeout(1)`), 1 when the agent exits before it gets there.

use super::bottles_cmd::runtime;
use super::{Failure, Outcome, print_json};
use crate::backend::docker::DockerBackend;
use crate::backend::label;
use crate::engine::reconcile::{self, BottleStatus};
use crate::types::Slug;
use crate::wire::session::{Activity, AgentStatus};
use color_eyre::eyre::{Result, eyre};
use futures_util::StreamExt;
use std::time::Duration;

/// `timeout(1)`'s code for "the time ran out".
pub const TIMED_OUT: u8 = 124;
/// How often a smolvm machine's record is read (smolvm has no log stream to follow).
const MACHINE_POLL: Duration = Duration::from_millis(500);

enum End {
    Reached(Activity),
    /// The agent exited before reaching the status.
    Exited(Activity),
    /// The time ran out; the last status seen.
    TimedOut(Option<Activity>),
}

pub fn wait_cmd(slug: &Slug, want: AgentStatus, timeout: Option<Duration>, json: bool) -> Outcome {
    let rt = runtime()?;
    let end = rt.block_on(async {
        let backend = DockerBackend::connect().await?;
        let bottle = reconcile::reconcile(&backend)
            .await?
            .into_iter()
            .find(|b| b.slug == *slug)
            .ok_or_else(|| Failure::Usage(format!("no bottle `{slug}` (see `bottle-tui ls`)")))?;
        let mut last = None;
        let watching = watch(&backend, &bottle, want, &mut last);
        Ok::<_, Failure>(match timeout {
            None => watching.await?,
            Some(t) => match tokio::time::timeout(t, watching).await {
                Ok(end) => end?,
                Err(_) => End::TimedOut(last),
            },
        })
    })?;
    match end {
        End::Reached(a) if json => print_json(&a),
        End::Reached(a) => {
            println!("{slug}: {}", describe(&a));
            Ok(())
        }
        End::Exited(a) => Err(Failure::Other(eyre!(
            "{slug}: the agent exited ({}) before it was {want}",
            a.reason.as_deref().unwrap_or("no exit code")
        ))),
        End::TimedOut(a) => {
            let now = a.map_or_else(
                || "its status is unknown".to_owned(),
                |a| format!("it is {}", describe(&a)),
            );
            let after = timeout.map_or_else(String::new, |t| format!(" after {}s", t.as_secs()));
            eprintln!("{slug}: timed out{after} waiting for the agent to be {want} ({now})");
            Err(Failure::Silent(TIMED_OUT))
        }
    }
}

fn describe(a: &Activity) -> String {
    let since = crate::types::age::since(&a.since, time::OffsetDateTime::now_utc())
        .map_or_else(String::new, |s| format!(" for {s}"));
    match &a.reason {
        Some(r) => format!("{}{since}: {}", a.status, crate::cli::escape::line(r)),
        None => format!("{}{since}", a.status),
    }
}

/// Whether `a` ends the wait for `want`.
fn verdict(a: &Activity, want: AgentStatus) -> Option<End> {
    if a.status == want {
        Some(End::Reached(a.clone()))
    } else if a.status == AgentStatus::Exited {
        Some(End::Exited(a.clone()))
    } else {
        None
    }
}

/// Watches the agent until its status ends the wait; `last` keeps what was seen for a
/// timeout's message.
async fn watch(
    backend: &DockerBackend,
    bottle: &BottleStatus,
    want: AgentStatus,
    last: &mut Option<Activity>,
) -> Result<End> {
    if let Some(machine) = bottle
        .bundle
        .as_ref()
        .and_then(|b| b.labels.get(label::MACHINE))
    {
        return watch_machine(machine, want, last).await;
    }
    let agent = bottle.agent_container.as_ref().ok_or_else(|| {
        eyre!(
            "`{}` has no agent container (see `bottle-tui ls`)",
            bottle.slug
        )
    })?;
    let (first, mut changes) = crate::engine::activity::follow(backend, &agent.name).await;
    *last = first;
    if let Some(end) = last.as_ref().and_then(|a| verdict(a, want)) {
        return Ok(end);
    }
    while let Some(a) = changes.next().await {
        let a = a?;
        let end = verdict(&a, want);
        *last = Some(a);
        if let Some(end) = end {
            return Ok(end);
        }
    }
    // The stream ends when the container stops: its record has the last word.
    *last = reconcile::agent_activity(backend, &agent.name)
        .await
        .or(last.take());
    match last.as_ref().and_then(|a| verdict(a, want)) {
        Some(end) => Ok(end),
        None => Err(eyre!(
            "the agent of `{}` stopped without saying it was {want}",
            bottle.slug
        )),
    }
}

async fn watch_machine(
    machine: &str,
    want: AgentStatus,
    last: &mut Option<Activity>,
) -> Result<End> {
    let smolvm = crate::backend::smolvm::cli::Smolvm::new(std::path::PathBuf::new());
    loop {
        if let Some(r) = crate::engine::agent_host::machine_session(&smolvm, machine).await? {
            *last = r.activity;
            if let Some(end) = last.as_ref().and_then(|a| verdict(a, want)) {
                return Ok(end);
            }
        }
        tokio::time::sleep(MACHINE_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(status: AgentStatus, since: &str) -> Activity {
        Activity {
            status,
            since: since.into(),
            reason: None,
            guessed: false,
        }
    }

    #[test]
    fn the_wait_ends_on_the_status_or_the_exit() {
        assert!(matches!(
            verdict(&at(AgentStatus::Idle, "t"), AgentStatus::Idle),
            Some(End::Reached(_))
        ));
        assert!(verdict(&at(AgentStatus::Working, "t"), AgentStatus::Idle).is_none());
        assert!(matches!(
            verdict(&at(AgentStatus::Exited, "t"), AgentStatus::NeedsYou),
            Some(End::Exited(_))
        ));
        assert!(matches!(
            verdict(&at(AgentStatus::Exited, "t"), AgentStatus::Exited),
            Some(End::Reached(_))
        ));
    }
}
