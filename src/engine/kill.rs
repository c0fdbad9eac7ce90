//! kill: removes every resource of a bottle, found by its label — so it works on half-built
//! bottles and after a crash — plus the real tokens launch wrote. Safe to repeat.

use crate::backend::{Backend, Resource, ResourceKind, label};
use crate::state::StateRoot;
use crate::types::Slug;
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures_util::future::join_all;

/// Removes what is left of `slug`; returns what was removed (empty when nothing was there).
pub async fn kill(backend: &dyn Backend, slug: &Slug, root: &StateRoot) -> Result<Vec<Resource>> {
    let found = backend.list(&[(label::SLUG, slug.as_str())]).await?;
    let of = |kind| found.iter().filter(move |r| r.kind == kind);

    // Forced removal: kill is for what must go now, stuck or not, so there is no grace
    // period to wait out (a graceful stop belongs to a future `stop`).
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
