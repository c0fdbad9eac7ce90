//! Builds bottle-tui's images through the Engine API from a tar context assembled in process.
//! Never pulls: the base (`debian:bookworm-slim`) must be present (scripts/make-base-image.sh).

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Bundle,
    Agent,
    TestAgent,
}

impl ImageKind {
    pub const ALL: [ImageKind; 3] = [Self::Bundle, Self::Agent, Self::TestAgent];

    pub fn tag(self) -> String {
        match self {
            Self::Bundle => crate::engine::prepare::bundle_image(),
            Self::Agent => crate::config::DEFAULT_AGENT_IMAGE.to_owned(),
            Self::TestAgent => TEST_AGENT_IMAGE.to_owned(),
        }
    }

    fn dockerfile(self) -> &'static str {
        match self {
            Self::Bundle => include_str!("../../../assets/images/bundle.Dockerfile"),
            Self::Agent => include_str!("../../../assets/images/agent.Dockerfile"),
            Self::TestAgent => include_str!("../../../assets/images/test-agent.Dockerfile"),
        }
    }

    fn needs_sidecar(self) -> bool {
        self == Self::Bundle
    }

    /// What a user calls it in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Bundle => "the bundle image (the sidecar daemons)",
            Self::Agent => "the agent image (Claude Code)",
            Self::TestAgent => "the test-agent image",
        }
    }
}

/// What goes into a build context besides the Dockerfile.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inputs<'a> {
    /// The static bottle-sidecar (the bundle image).
    pub sidecar: Option<&'a Path>,
    /// The Claude Code package (the agent image).
    pub claude: Option<&'a crate::engine::claude_code::Package>,
}

/// The name of the Claude Code archive in the agent's build context (`ADD` unpacks it).
const CLAUDE_ARCHIVE: &str = "claude-code.archive";

pub const TEST_AGENT_IMAGE: &str = "bottle-test-agent:latest";

/// The build context: the Dockerfile, plus the static sidecar for the bundle and the Claude
/// Code package for the agent.
pub fn context(kind: ImageKind, inputs: Inputs<'_>) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "Dockerfile", kind.dockerfile().as_bytes(), 0o644)?;
    if kind.needs_sidecar() {
        let path = inputs
            .sidecar
            .ok_or_else(|| eyre!("the bundle image needs the bottle-sidecar binary"))?;
        let bytes =
            std::fs::read(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
        append(&mut tar, "bottle-sidecar", &bytes, 0o755)?;
    }
    if kind == ImageKind::Agent {
        let package = inputs
            .claude
            .ok_or_else(|| eyre!("the agent image needs the Claude Code package"))?;
        let mut file = std::fs::File::open(&package.archive)
            .wrap_err_with(|| format!("cannot read {}", package.archive.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, CLAUDE_ARCHIVE, &mut file)
            .wrap_err_with(|| {
                format!(
                    "cannot add {} to the build context",
                    package.archive.display()
                )
            })?;
    }
    tar.into_inner().wrap_err("cannot finish the build context")
}

/// Appends one regular file to a tar archive.
pub fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .wrap_err_with(|| format!("cannot add {name} to a tar archive"))
}

/// Builds one image; `progress` gets each line the engine prints.
pub async fn build(
    docker: &Docker,
    kind: ImageKind,
    inputs: Inputs<'_>,
    mut progress: impl FnMut(&str),
) -> Result<()> {
    let context = context(kind, inputs)?;
    let mut labels = HashMap::from([("bottle.version".to_owned(), crate::VERSION.to_owned())]);
    if let (ImageKind::Agent, Some(p)) = (kind, inputs.claude) {
        labels.insert(
            crate::engine::claude_code::VERSION_LABEL.to_owned(),
            p.version.clone(),
        );
    }
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(kind.tag()),
        rm: true,
        forcerm: true,
        labels: Some(labels),
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.wrap_err_with(|| format!("building {} failed", kind.tag()))?;
        if let Some(text) = &info.stream {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                progress(line);
            }
        }
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bail!("building {} failed: {err}", kind.tag());
        }
    }
    if !super::image_present(docker, &kind.tag()).await? {
        bail!(
            "the engine finished building {} but the image is not there",
            kind.tag()
        );
    }
    Ok(())
}
