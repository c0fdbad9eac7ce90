//! What both launches (Docker and smolvm) are made of: the undo log, progress and fault
//! injection, labels and mounts, the bundle's container, pipelock, and the files launch writes
//! (tokens, the host's addresses). Neither launch imports the other; both import this.

use super::plan::Plan;
use crate::backend::{Backend, BindMount, ContainerSpec, label, role};
use crate::config::TokenSource;
use crate::fsutil;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use std::path::PathBuf;

/// Names a step to fail at, for fault-injection tests against the real engine.
pub const FAIL_AT_ENV: &str = "BOTTLE_TUI_TEST_FAIL_AT";

/// Where the sidecar binary lands in the agent container (copied in before start).
pub const AGENT_SIDECAR_DIR: &str = "/.bottle";

pub const AGENT_SIDECAR: &str = "/.bottle/bottle-sidecar";

const BUNDLE_MEMORY: u64 = 512 << 20;

const BUNDLE_PIDS: u32 = 256;

#[derive(Debug)]
pub(super) enum Undo {
    Container(String),
    Network(String),
    File(PathBuf),
    /// A smolvm machine.
    Machine(String),
}

/// Reports progress (one short line per step) to whoever launched.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

pub(super) fn step(name: &str, progress: Progress<'_>) -> Result<()> {
    progress(name);
    if std::env::var(FAIL_AT_ENV).is_ok_and(|v| v == name) {
        bail!("injected failure at step `{name}` ({FAIL_AT_ENV})");
    }
    Ok(())
}

pub(super) fn bind(m: &super::plan::Mount) -> BindMount {
    BindMount {
        host: m.host.clone(),
        container: m.container.clone(),
        read_only: m.read_only,
    }
}

pub(super) fn labels(plan: &Plan, role: &str) -> crate::backend::Labels {
    let mut l = plan.labels.clone();
    l.insert(label::ROLE.into(), role.into());
    l.insert(
        label::STATE_DIR.into(),
        plan.state_dir.display().to_string(),
    );
    l
}

/// pipelock in the bundle's network namespace: it listens on the bundle's loopback, where the
/// gateway reaches it and the agent cannot. Root in the container (no capabilities) so it can
/// read its 0600 config.
pub(super) async fn start_pipelock(
    backend: &dyn Backend,
    plan: &Plan,
    p: &super::plan::PipelockPlan,
    undo: &mut Vec<Undo>,
) -> Result<()> {
    let config = super::prepare::in_bundle::PIPELOCK_CONFIG;
    backend
        .create_container(&ContainerSpec {
            name: p.container.clone(),
            image: p.image.clone(),
            cmd: Some(vec![
                "run".into(),
                "--config".into(),
                config.into(),
                "--listen".into(),
                p.listen.clone(),
            ]),
            user: Some("0:0".into()),
            labels: labels(plan, "pipelock"),
            network: format!("container:{}", plan.bundle.container),
            mounts: vec![BindMount {
                host: p.config_file.clone(),
                container: config.into(),
                read_only: true,
            }],
            memory_bytes: Some(BUNDLE_MEMORY),
            pids: Some(BUNDLE_PIDS),
            unprivileged: true,
            ..Default::default()
        })
        .await?;
    undo.push(Undo::Container(p.container.clone()));
    backend.start_container(&p.container).await
}

/// Appends the host's addresses to pipelock's `internal` list (rendered last by prepare).
pub(super) fn add_host_addresses_to_pipelock(
    file: &std::path::Path,
    addrs: &[std::net::IpAddr],
) -> Result<()> {
    let mut yaml = std::fs::read_to_string(file)
        .wrap_err_with(|| format!("cannot read {}", file.display()))?;
    if !yaml.trim_end().ends_with('"') || !yaml.contains("\ninternal:\n") {
        bail!(
            "{} does not end with pipelock's `internal` list; run `bottle-tui plan` to render it again",
            file.display()
        );
    }
    yaml.push_str(&super::render::pipelock::host_address_lines(addrs));
    fsutil::write(file, yaml.as_bytes(), fsutil::SECRET)
}

/// This machine's own interface addresses (the Docker host's, for a local engine), written
/// for the gateway to refuse.
pub(super) fn write_host_addresses(plan: &Plan) -> Result<Vec<std::net::IpAddr>> {
    let mut addrs: Vec<std::net::IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|it| {
            it.filter_map(|i| {
                let a = i.address?;
                a.as_sockaddr_in()
                    .map(|v4| std::net::IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
            })
            .collect()
        })
        .unwrap_or_default();
    addrs.sort();
    addrs.dedup();
    let file = plan.state_dir.join("host-addresses.json");
    let json = serde_json::to_vec(&addrs).wrap_err("cannot encode host addresses")?;
    fsutil::write(&file, &json, fsutil::PUBLIC)?;
    Ok(addrs)
}

/// The bundle container, created on `network` (with its in-bottle names there).
pub(super) fn bundle_spec(plan: &Plan, network: &str) -> ContainerSpec {
    let mut bundle_labels = labels(plan, role::BUNDLE);
    let mut mounts: Vec<BindMount> = plan.bundle.mounts.iter().map(bind).collect();
    let listed = plan.state_dir.join("host-addresses.json");
    if listed.is_file() {
        mounts.push(BindMount {
            host: listed,
            container: format!(
                "{}/host-addresses.json",
                super::prepare::in_bundle::CONFIG_DIR
            )
            .into(),
            read_only: true,
        });
    }
    bundle_labels.insert(
        label::DAEMONS.into(),
        crate::wire::daemon::Daemon::join(&plan.bundle.daemons),
    );
    ContainerSpec {
        name: plan.bundle.container.clone(),
        image: plan.bundle.image.clone(),
        env: plan.bundle.env.clone(),
        labels: bundle_labels,
        network: network.to_owned(),
        network_aliases: plan.bundle.aliases.clone(),
        mounts,
        memory_bytes: Some(BUNDLE_MEMORY),
        pids: Some(BUNDLE_PIDS),
        unprivileged: true,
        ..Default::default()
    }
}

/// Reads every route's real token and hands it to the bundle as a 0600 file. All are read
/// before any is written, so a missing one leaves nothing behind.
pub(super) fn write_tokens(plan: &Plan, undo: &mut Vec<Undo>) -> Result<()> {
    let mut tokens = Vec::with_capacity(plan.gateway.routes.len());
    for route in &plan.gateway.routes {
        let token = read_token(&route.token_source)
            .wrap_err_with(|| format!("route {}: cannot read its token", route.host))?;
        tokens.push((route.token_file.clone(), token));
    }
    for (file, token) in tokens {
        if let Some(dir) = file.parent() {
            fsutil::private_dir(dir)?;
        }
        undo.push(Undo::File(file.clone()));
        fsutil::write(&file, token.as_bytes(), fsutil::SECRET)?;
    }
    Ok(())
}

/// Checks the engine holds each image (bottles never pull).
pub(super) async fn check_images(backend: &dyn Backend, images: &[&str]) -> Result<()> {
    for image in images {
        if !backend.image_present(image).await? {
            bail!(
                "image {image} is not present on this engine (bottles never pull); build it with `bottle-tui image build`"
            );
        }
    }
    Ok(())
}

/// Reads a route's real token from its source. The value goes only to its 0600 file.
fn read_token(source: &TokenSource) -> Result<String> {
    let raw = match source {
        TokenSource::Env(var) => std::env::var(var).map_err(|_| {
            eyre!("the environment variable ${var} is not set (export it before `bottle-tui up`)")
        })?,
        TokenSource::File(path) => std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read the token file {}", path.display()))?,
    };
    let token = raw.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        bail!("the token is empty");
    }
    if token.contains(['\n', '\r']) {
        bail!("the token spans several lines; a header value must be one line");
    }
    Ok(token.to_owned())
}
