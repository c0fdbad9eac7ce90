//! `up`: check the slug is free, prepare, launch, provision — and record it in the history.

use super::launch::{self, Progress};
use super::{Plan, prepare};
use crate::backend::{Backend, label};
use crate::config::Config;
use crate::state::StateRoot;
use crate::types::Slug;
use color_eyre::eyre::{Result, bail};
use std::path::Path;

pub async fn up(
    backend: &dyn Backend,
    config: &Config,
    bottle: &Slug,
    slug: Option<Slug>,
    root: &StateRoot,
    sidecar: &Path,
    progress: Progress<'_>,
) -> Result<Plan> {
    let slug = slug.unwrap_or_else(|| bottle.clone());
    // Before prepare: re-rendering the state dir of a running bottle would break it.
    let existing = backend.list(&[(label::SLUG, slug.as_str())]).await?;
    if !existing.is_empty() {
        bail!(
            "a bottle named `{slug}` already exists ({} resources); pick another --name or run `bottle-tui kill {slug}` first",
            existing.len()
        );
    }
    for name in [
        format!("bottle-{slug}-bundle"),
        format!("bottle-{slug}-agent"),
    ] {
        if backend.inspect_container(&name).await?.is_some() {
            bail!(
                "a container named {name} already exists (not made by bottle-tui); remove it or pick another --name"
            );
        }
    }
    let plan = prepare(config, bottle, Some(slug), root)?;
    launch::launch(backend, &plan, sidecar, progress).await?;
    Ok(plan)
}
