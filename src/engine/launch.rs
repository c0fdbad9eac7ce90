//! launch: a plan becomes networks, a bundle and an agent, in order. Every step registers its
//! undo first-class; any failure (or Ctrl-C) removes everything created so far. No orphans.

pub use super::launch_parts::{AGENT_SIDECAR, AGENT_SIDECAR_DIR, FAIL_AT_ENV, Progress};
use super::launch_parts::{
    Undo, add_host_addresses_to_pipelock, bind, bundle_spec, check_images, labels, start_pipelock,
    step, write_host_addresses, write_tokens,
};
use super::plan::Plan;
use super::provision;
use crate::backend::{Backend, ContainerSpec, NetworkSpec, label, role};
use crate::types::AgentState;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use std::path::Path;
use std::time::Duration;

/// The launch steps, in order. Tests inject a failure at each through [`FAIL_AT_ENV`].
pub const STEPS: &[&str] = &[
    "check-images",
    "read-tokens",
    "network-internal",
    "network-egress",
    "bundle-create",
    "bundle-connect-egress",
    "bundle-start",
    "pipelock-start",
    "bundle-address",
    "agent-create",
    "agent-copy-sidecar",
    "agent-start",
    "agent-seal",
    "provision",
];

/// Launches `plan` all-or-nothing. On failure every resource it created is removed before the
/// error is returned.
pub async fn launch(
    backend: &dyn Backend,
    plan: &Plan,
    sidecar: &Path,
    progress: Progress<'_>,
) -> Result<()> {
    let mut undo = Vec::new();
    let smolvm = super::smolvm_launch::client(plan);
    let run = async {
        match plan.backend {
            crate::types::BackendKind::Docker => {
                steps(backend, plan, sidecar, progress, &mut undo).await
            }
            crate::types::BackendKind::Smolvm => {
                super::smolvm_launch::steps(backend, &smolvm, plan, sidecar, progress, &mut undo)
                    .await
            }
        }
    };
    let outcome = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Err(eyre!("interrupted")),
    };
    let Err(error) = outcome else {
        return Ok(());
    };
    progress("rolling back");
    // Undo what was recorded, then sweep by label: a create cut short by Ctrl-C may have
    // happened in the engine without being recorded. `up` checked that nothing carried this
    // slug before it started, so everything labelled with it is ours.
    let swept = async {
        rollback(backend, &smolvm, undo).await?;
        if plan.backend == crate::types::BackendKind::Smolvm {
            smolvm
                .machine_rm(&super::smolvm_launch::machine_name(plan))
                .await?;
        }
        let leftovers = backend.list(&[(label::SLUG, plan.slug.as_str())]).await?;
        for r in leftovers {
            match r.kind {
                crate::backend::ResourceKind::Container => {
                    backend.remove_container(&r.name).await?
                }
                crate::backend::ResourceKind::Network => backend.remove_network(&r.name).await?,
                crate::backend::ResourceKind::Volume => backend.remove_volume(&r.name).await?,
            }
        }
        Ok::<(), color_eyre::Report>(())
    };
    match swept.await {
        Ok(()) => Err(error.wrap_err(format!(
            "launching {} failed; everything it created was removed",
            plan.slug
        ))),
        Err(cleanup) => Err(error.wrap_err(format!(
            "launching {} failed, and removing what it created failed too ({cleanup:#}); run `bottle-tui kill {}`",
            plan.slug, plan.slug
        ))),
    }
}

async fn rollback(
    backend: &dyn Backend,
    smolvm: &crate::backend::smolvm::cli::Smolvm,
    undo: Vec<Undo>,
) -> Result<()> {
    let mut errors = Vec::new();
    for step in undo.into_iter().rev() {
        let r = match &step {
            Undo::Machine(name) => smolvm.machine_rm(name).await,
            Undo::Container(name) => backend.remove_container(name).await,
            Undo::Network(name) => backend.remove_network(name).await,
            Undo::File(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).wrap_err_with(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        };
        if let Err(e) = r {
            errors.push(format!("{e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(eyre!(errors.join("; ")))
    }
}

async fn steps(
    backend: &dyn Backend,
    plan: &Plan,
    sidecar: &Path,
    progress: Progress<'_>,
    undo: &mut Vec<Undo>,
) -> Result<()> {
    step("check-images", progress)?;
    let mut images = vec![plan.bundle.image.as_str(), plan.agent.image.as_str()];
    if let Some(p) = &plan.pipelock {
        images.push(&p.image);
    }
    check_images(backend, &images).await?;

    step("read-tokens", progress)?;
    write_tokens(plan, undo)?;
    let host_addresses = write_host_addresses(plan)?;
    if let Some(p) = &plan.pipelock {
        add_host_addresses_to_pipelock(&p.config_file, &host_addresses)?;
    }

    step("network-internal", progress)?;
    step("network-egress", progress)?;
    let internal = NetworkSpec {
        name: plan.network.internal.clone(),
        internal: true,
        labels: labels(plan, role::NETWORK_INTERNAL),
    };
    let egress = NetworkSpec {
        name: plan.network.egress.clone(),
        internal: false,
        labels: labels(plan, role::NETWORK_EGRESS),
    };
    let (made_internal, made_egress) = tokio::join!(
        backend.create_network(&internal),
        backend.create_network(&egress)
    );
    // Record whichever was made before reporting either failure.
    if made_internal.is_ok() {
        undo.push(Undo::Network(internal.name));
    }
    if made_egress.is_ok() {
        undo.push(Undo::Network(egress.name));
    }
    made_internal?;
    made_egress?;

    step("bundle-create", progress)?;
    backend
        .create_container(&bundle_spec(plan, &plan.network.internal))
        .await?;
    undo.push(Undo::Container(plan.bundle.container.clone()));

    step("bundle-connect-egress", progress)?;
    backend
        .connect_network(&plan.bundle.container, &plan.network.egress, &[])
        .await?;

    step("bundle-start", progress)?;
    backend.start_container(&plan.bundle.container).await?;

    step("pipelock-start", progress)?;
    if let Some(p) = &plan.pipelock {
        start_pipelock(backend, plan, p, undo).await?;
    }

    step("bundle-address", progress)?;
    let bundle_ip = bundle_address(backend, plan).await?;

    step("agent-create", progress)?;
    let env = plan.agent.env.clone();
    let mut mounts = Vec::new();
    if let Some(w) = &plan.agent.workspace {
        mounts.push(bind(w));
    }
    backend
        .create_container(&ContainerSpec {
            name: plan.agent.container.clone(),
            image: plan.agent.image.clone(),
            // The session holder is PID 1 and runs the agent command once provision is done.
            entrypoint: Some(vec![AGENT_SIDECAR.into(), "session".into(), "--".into()]),
            cmd: Some(plan.agent.command.clone()),
            user: Some(plan.agent.user.clone()),
            working_dir: Some(plan.agent.workdir.display().to_string()),
            env,
            labels: labels(plan, role::AGENT),
            network: plan.network.internal.clone(),
            mounts,
            extra_hosts: plan
                .agent
                .hosts
                .iter()
                .map(|h| (h.clone(), bundle_ip))
                .collect(),
            dns: plan.agent.dns.clone(),
            memory_bytes: Some(plan.agent.memory_bytes),
            pids: Some(plan.agent.pids),
            cpus: plan.agent.cpus,
            unprivileged: true,
            ..Default::default()
        })
        .await?;
    undo.push(Undo::Container(plan.agent.container.clone()));

    step("agent-copy-sidecar", progress)?;
    backend
        .copy_in(&plan.agent.container, "/", sidecar_tar(sidecar)?)
        .await?;

    step("agent-start", progress)?;
    backend.start_container(&plan.agent.container).await?;

    // Sealing and provisioning touch different things; both must finish before the agent
    // command may start (the done marker).
    step("agent-seal", progress)?;
    step("provision", progress)?;
    let agent = super::agent_host::Container {
        backend,
        name: &plan.agent.container,
    };
    let (sealed, provisioned) = tokio::join!(
        seal(backend, plan, undo),
        provision::provision(&agent, plan, progress)
    );
    sealed?;
    let ids = provisioned?;
    provision::mark_done(&agent, plan, ids, progress).await
}

/// Removes the agent's default route. Docker gives even `internal` networks one; with no
/// route at all, nothing outside the internal subnet is even addressable. The agent has no
/// NET_ADMIN, so a short-lived helper joins its network namespace to do it.
async fn seal(backend: &dyn Backend, plan: &Plan, undo: &mut Vec<Undo>) -> Result<()> {
    let helper = format!("bottle-{}-seal", plan.slug);
    backend
        .create_container(&ContainerSpec {
            name: helper.clone(),
            image: plan.bundle.image.clone(),
            // The helper shares the agent's network namespace, so its view of the route table
            // is the agent's: it removes the default route and checks none is left.
            entrypoint: Some(vec!["sh".into(), "-c".into(), SEAL_SCRIPT.into()]),
            cmd: Some(Vec::new()),
            labels: labels(plan, "seal-helper"),
            network: format!("container:{}", plan.agent.container),
            cap_add: vec!["NET_ADMIN".into()],
            memory_bytes: Some(64 << 20),
            pids: Some(16),
            ..Default::default()
        })
        .await?;
    undo.push(Undo::Container(helper.clone()));
    let outcome = async {
        backend.start_container(&helper).await?;
        backend
            .wait_container(&helper, Duration::from_secs(20))
            .await
    }
    .await;
    backend.remove_container(&helper).await?;
    match outcome? {
        0 => Ok(()),
        3 => bail!("the agent still has a default route after sealing"),
        code => bail!("removing the agent's default route failed (exit {code})"),
    }
}

/// Deletes every default route (none is fine), then fails with 3 if one is still there.
const SEAL_SCRIPT: &str = "while ip route del default 2>/dev/null; do :; done; \
     if [ -n \"$(ip route show default)\" ]; then exit 3; fi";

/// The bundle's address on the internal network: what the agent's `/etc/hosts` points at.
async fn bundle_address(backend: &dyn Backend, plan: &Plan) -> Result<std::net::IpAddr> {
    for _ in 0..50 {
        let info = backend
            .inspect_container(&plan.bundle.container)
            .await?
            .ok_or_else(|| eyre!("the bundle {} vanished after start", plan.bundle.container))?;
        if AgentState::from(info.state).is_finished() {
            bail!(
                "the bundle {} exited right after start (code {}); see `bottle-tui logs {}`",
                plan.bundle.container,
                info.exit_code.unwrap_or(-1),
                plan.slug
            );
        }
        if let Some(Some(ip)) = info.networks.get(&plan.network.internal) {
            return Ok(*ip);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "the bundle {} got no address on {}",
        plan.bundle.container,
        plan.network.internal
    )
}

pub(super) fn sidecar_tar(sidecar: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(sidecar).wrap_err_with(|| format!("cannot read {}", sidecar.display()))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(0);
    dir.set_cksum();
    let name = AGENT_SIDECAR_DIR.trim_start_matches('/');
    tar.append_data(&mut dir, format!("{name}/"), std::io::empty())
        .wrap_err("cannot build the sidecar archive")?;
    crate::backend::docker::images::append(
        &mut tar,
        &format!("{name}/bottle-sidecar"),
        &bytes,
        0o755,
    )?;
    tar.into_inner()
        .wrap_err("cannot build the sidecar archive")
}
