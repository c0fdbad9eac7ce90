//! Brings what bottles did while no bottle-tui process watched into the history: the lines
//! the bundle's init keeps in each bottle's state dir (refusals, daemon exits, approvals,
//! pushes) and the status changes the agent's session holder logged to the engine. Any
//! process may ingest, as often as it likes: an event is stored once (the store ignores a
//! second copy of the same time, kind and detail).

use super::history::{self, Happened};
use super::prepare::files;
use crate::backend::Backend;
use crate::state::StateRoot;
use crate::store::Store;
use crate::types::ContainerState;
use crate::types::Slug;
use crate::wire::log::{EVENTS_FILE, EVENTS_FILE_OLD, LogLine};
use crate::wire::session::AgentStatus;
use color_eyre::eyre::{Result, WrapErr};
use futures_util::StreamExt;

/// Every bottle with a state dir under `root`.
pub fn bottles(root: &StateRoot) -> Vec<Slug> {
    let Ok(dir) = std::fs::read_dir(root.path().join("bottles")) else {
        return Vec::new();
    };
    let mut out: Vec<Slug> = dir
        .filter_map(|e| Slug::parse(e.ok()?.file_name().to_str()?).ok())
        .collect();
    out.sort();
    out
}

/// The bottle's kept lines, oldest first (the rotated copy, then the current file); a
/// missing file is an empty one.
pub fn kept_lines(root: &StateRoot, slug: &Slug) -> Result<Vec<LogLine>> {
    let dir = root.bottle_dir(slug).join(files::EVENTS);
    let mut out = Vec::new();
    for name in [EVENTS_FILE_OLD, EVENTS_FILE] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).wrap_err_with(|| format!("cannot read {}", path.display())),
        };
        out.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(LogLine::parse),
        );
    }
    Ok(out)
}

/// Records what the lines say happened; returns how many events were new.
pub fn record_lines(store: &Store, slug: &Slug, lines: &[LogLine]) -> Result<usize> {
    let mut new = 0;
    for line in lines {
        if let Some((time, what)) = history::from_log_line(line) {
            new += usize::from(history::record_logged(store, slug, &time, &what)?);
        }
    }
    Ok(new)
}

/// The status lines in the log of the agent container `name` (the engine keeps it, rotated,
/// until the container is removed).
pub async fn agent_status_lines(backend: &dyn Backend, name: &str) -> Result<Vec<LogLine>> {
    let mut lines = backend.logs(name, false, None);
    let mut out = Vec::new();
    while let Some(chunk) = lines.next().await {
        for text in chunk?.text.lines() {
            let line = LogLine::parse(text);
            if line.activity.is_some() {
                out.push(line);
            }
        }
    }
    Ok(out)
}

/// What the bottles have to say: their kept lines and agents' status lines, and what only the
/// engine saw (an agent container that ended without its holder saying so: killed, OOM).
#[derive(Debug, Default)]
pub struct Found {
    pub lines: Vec<(Slug, Vec<LogLine>)>,
    pub engine: Vec<(Slug, String, Happened)>,
}

/// What every bottle under `root` has to say: its kept lines, and with `backend` its agent's
/// status changes and an end only the engine saw (agents of bottles `root` has a state dir
/// for, and no others).
pub async fn gather(root: &StateRoot, backend: Option<&dyn Backend>) -> Result<Found> {
    let mut found = Found::default();
    let ours = bottles(root);
    for slug in &ours {
        let kept = kept_lines(root, slug)?;
        found.lines.push((slug.clone(), kept));
    }
    if let Some(b) = backend {
        let agents = b
            .list_containers(&[(crate::backend::label::ROLE, crate::backend::role::AGENT)])
            .await?;
        for c in agents {
            let Some(slug) = c
                .labels
                .get(crate::backend::label::SLUG)
                .and_then(|s| Slug::parse(s).ok())
                // Another state dir's bottle (another user, another --state-dir) is not ours
                // to record.
                .filter(|s| ours.contains(s))
            else {
                continue;
            };
            let said = agent_status_lines(b, &c.name).await?;
            if let Some(end) = unsaid_end(&c, &said) {
                found.engine.push((slug.clone(), end.0, end.1));
            }
            found.lines.push((slug, said));
        }
    }
    Ok(found)
}

/// An agent container that ended while its holder's last word was not `exited`: the engine's
/// record of it (its finish time and code) is all there is.
fn unsaid_end(c: &crate::backend::ContainerInfo, said: &[LogLine]) -> Option<(String, Happened)> {
    let ended = matches!(c.state, ContainerState::Exited | ContainerState::Dead);
    let holder_said = said
        .last()
        .and_then(|l| l.activity.as_ref())
        .is_some_and(|a| a.status == AgentStatus::Exited);
    if !ended || holder_said {
        return None;
    }
    Some((
        c.finished_at.clone()?,
        Happened::Ended {
            exit_code: c.exit_code,
        },
    ))
}

/// Records everything `gather` found; returns how many events were new.
pub fn record_all(store: &Store, found: &Found) -> Result<usize> {
    let mut new = 0;
    for (slug, lines) in &found.lines {
        new += record_lines(store, slug, lines)?;
    }
    for (slug, time, what) in &found.engine {
        new += usize::from(history::record_logged(store, slug, time, what)?);
    }
    Ok(new)
}

/// Everything new for every bottle under `root`; returns how many events were new.
pub async fn ingest(
    root: &StateRoot,
    store: &Store,
    backend: Option<&dyn Backend>,
) -> Result<usize> {
    let found = gather(root, backend).await?;
    record_all(store, &found)
}
