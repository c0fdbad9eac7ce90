//! What a first launch needs on this machine — the static sidecar, the bundle image, the
//! agent image with Claude Code — and building what is missing, with progress. Shared by
//! `bottle-tui image build` and the dashboard's offer to build.

use super::{claude_code, sidecar_bin};
use crate::backend::docker::images::{self, ImageKind, Inputs};
use bollard::Docker;
use color_eyre::eyre::{Result, WrapErr};
use std::path::PathBuf;

/// One thing a launch needs that this machine lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The static `bottle-sidecar` (in the bundle image, and copied into every agent).
    Sidecar,
    Image(ImageKind),
}

impl Need {
    pub fn describe(&self) -> String {
        match self {
            Self::Sidecar => {
                "the static bottle-sidecar (built from this program's source with cargo)".into()
            }
            Self::Image(kind) => format!("{} {}", kind.tag(), kind.describe()),
        }
    }
}

/// How the agent image gets its Claude Code.
#[derive(Debug, Clone, Default)]
pub struct ClaudeSource {
    /// A version other than the pinned one.
    pub version: Option<String>,
    /// A package or executable the user downloaded; nothing is fetched.
    pub package: Option<PathBuf>,
}

/// What is missing for bottles running `agent_images`: only images this program can build
/// are named (a custom agent image is the user's to build).
pub async fn missing(docker: &Docker, agent_images: &[String]) -> Result<Vec<Need>> {
    let mut needs = Vec::new();
    if sidecar_bin::locate().is_err() {
        needs.push(Need::Sidecar);
    }
    let mut kinds = vec![ImageKind::Bundle];
    for kind in [ImageKind::Agent, ImageKind::TestAgent] {
        if agent_images.iter().any(|i| *i == kind.tag()) {
            kinds.push(kind);
        }
    }
    for kind in kinds {
        if !crate::backend::docker::image_present(docker, &kind.tag()).await? {
            needs.push(Need::Image(kind));
        }
    }
    Ok(needs)
}

/// Builds `kinds` (and the sidecar first, if it is missing and needed), reporting progress.
pub async fn build(
    docker: &Docker,
    kinds: &[ImageKind],
    claude: &ClaudeSource,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<()> {
    let sidecar = if kinds.contains(&ImageKind::Bundle) {
        Some(match sidecar_bin::locate() {
            Ok(p) => p,
            Err(_) => sidecar_bin::build(progress).await?,
        })
    } else {
        None
    };
    let package = if kinds.contains(&ImageKind::Agent) {
        Some(match &claude.package {
            Some(path) => claude_code::local(path)?,
            None => {
                let info = crate::backend::docker::engine_info(docker).await?;
                let arch = claude_code::npm_arch(&info.arch)?;
                let version = claude_code::wanted_version(claude.version.as_deref());
                claude_code::fetch(&version, arch, progress).await?
            }
        })
    } else {
        None
    };
    for &kind in kinds {
        progress(&format!("building {} ...", kind.tag()));
        let started = std::time::Instant::now();
        let inputs = Inputs {
            sidecar: sidecar.as_deref(),
            claude: package.as_ref(),
        };
        images::build(docker, kind, inputs, |line| progress(line))
            .await
            .wrap_err_with(|| format!("building {}", kind.describe()))?;
        progress(&format!(
            "built {} in {:.1} s",
            kind.tag(),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Builds the sidecar alone when it is missing (the launch copies it into every agent).
pub async fn ensure_sidecar(progress: &mut (dyn FnMut(&str) + Send)) -> Result<PathBuf> {
    match sidecar_bin::locate() {
        Ok(p) => Ok(p),
        Err(_) => sidecar_bin::build(progress).await,
    }
}
