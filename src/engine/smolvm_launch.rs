//! launch on the smolvm backend: the bundle runs in Docker and publishes its entry ports on
//! the bottle's loopback alias only; the agent runs in a smolvm machine whose TSI allowlist is
//! that alias's /32. Order and repairs follow what the original tool learned the hard way
//! (shared/seed/claude-bottle-history.txt).

use super::launch_parts::{Progress, Undo, bundle_spec, check_images, labels, step, write_tokens};
use super::plan::{GATEWAY_PORT, GIT_GATE_PORT, Plan, SUPERVISE_PORT};
use super::provision::{DONE_MARKER, INSTALL_CA};
use crate::backend::smolvm::cli::{MachineCreate, MachineSource, Smolvm};
use crate::backend::smolvm::{Platform, alias, allowlist};
use crate::backend::{Backend, NetworkSpec, label, role};
use color_eyre::eyre::{Result, WrapErr, bail, ensure, eyre};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The smolvm launch steps, in order (fault-injection names, like the docker ones).
pub const STEPS: &[&str] = &[
    "check-images",
    "read-tokens",
    "alias",
    "network-egress",
    "bundle-create",
    "bundle-start",
    "pipelock-start",
    "bundle-ports",
    "pack",
    "machine-create",
    "allowlist",
    "machine-start",
    "machine-ready",
    "repairs",
    "provision",
];

/// How long a started VM may take before its exec channel answers.
const READY_WITHIN: Duration = Duration::from_secs(30);

pub fn machine_name(plan: &Plan) -> String {
    format!("bottle-{}", plan.slug)
}

/// The smolvm client, with its pack cache under the state root.
pub fn client(plan: &Plan) -> Smolvm {
    let root = plan
        .state_dir
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(|| plan.state_dir.clone(), |p| p.to_owned());
    Smolvm::new(root.join("cache").join("smolmachines"))
}

/// The guest's environment, given where the bundle's ports landed on the alias. Passed at
/// create and again on every exec.
fn guest_env(plan: &Plan, alias: Ipv4Addr, ports: &BTreeMap<u16, u16>) -> BTreeMap<String, String> {
    let mut env = plan.agent.env.clone();
    if let Some(gw) = ports.get(&GATEWAY_PORT) {
        let proxy = format!("http://{alias}:{gw}");
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.insert(k.into(), proxy.clone());
        }
    }
    // The alias must bypass the proxy, or the MCP URL is sent to the gateway (seed history).
    let mut no_proxy = String::from("localhost,127.0.0.1");
    if alias != Ipv4Addr::LOCALHOST {
        no_proxy.push_str(&format!(",{alias}"));
    }
    env.insert("NO_PROXY".into(), no_proxy.clone());
    env.insert("no_proxy".into(), no_proxy);
    env
}

pub(super) async fn steps(
    backend: &dyn Backend,
    smolvm: &Smolvm,
    plan: &Plan,
    progress: Progress<'_>,
    undo: &mut Vec<Undo>,
) -> Result<()> {
    let platform = Platform::current();
    let machine = machine_name(plan);

    step("check-images", progress)?;
    let mut images = vec![plan.bundle.image.as_str()];
    if let Some(p) = &plan.pipelock {
        images.push(&p.image);
    }
    check_images(backend, &images).await?;

    step("read-tokens", progress)?;
    write_tokens(plan, undo)?;
    super::launch_parts::write_host_addresses(plan)?;

    step("alias", progress)?;
    alias::ensure(platform, std::path::Path::new("/sbin/ifconfig")).await?;
    let alias = alias::allocate(backend, platform, plan.slug.as_str()).await?;

    step("network-egress", progress)?;
    backend
        .create_network(&NetworkSpec {
            name: plan.network.egress.clone(),
            internal: false,
            labels: labels(plan, role::NETWORK_EGRESS),
        })
        .await?;
    undo.push(Undo::Network(plan.network.egress.clone()));

    step("bundle-create", progress)?;
    let mut entry = vec![GATEWAY_PORT];
    if plan.git_gate.is_some() {
        entry.push(GIT_GATE_PORT);
    }
    if plan.supervise.is_some() {
        entry.push(SUPERVISE_PORT);
    }
    let mut spec = bundle_spec(plan, &plan.network.egress);
    spec.network_aliases.clear();
    spec.publish = entry.iter().map(|p| (IpAddr::V4(alias), *p)).collect();
    spec.labels.insert(label::BACKEND.into(), "smolvm".into());
    spec.labels.insert(label::ALIAS.into(), alias.to_string());
    spec.labels.insert(label::MACHINE.into(), machine.clone());
    backend.create_container(&spec).await?;
    undo.push(Undo::Container(plan.bundle.container.clone()));

    step("bundle-start", progress)?;
    backend.start_container(&plan.bundle.container).await?;

    step("pipelock-start", progress)?;
    if let Some(p) = &plan.pipelock {
        super::launch_parts::start_pipelock(backend, plan, p, undo).await?;
    }

    step("bundle-ports", progress)?;
    let info = backend
        .inspect_container(&plan.bundle.container)
        .await?
        .ok_or_else(|| eyre!("the bundle {} vanished after start", plan.bundle.container))?;
    let mut ports = BTreeMap::new();
    for p in &info.ports {
        ensure!(
            p.host_ip == Some(IpAddr::V4(alias)),
            "the bundle published port {} on {:?}, not only on the alias {alias}",
            p.container_port,
            p.host_ip
        );
        ports.insert(p.container_port, p.host_port);
    }
    for p in &entry {
        ensure!(
            ports.contains_key(p),
            "the bundle's port {p} was not published on {alias}"
        );
    }
    let env = guest_env(plan, alias, &ports);

    step("pack", progress)?;
    let packed = smolvm.pack(&plan.agent.image).await?;

    step("machine-create", progress)?;
    let cidr = ipnet::IpNet::from(IpAddr::V4(alias));
    smolvm
        .machine_create(&MachineCreate {
            name: machine.clone(),
            source: MachineSource::From(packed),
            allow_cidrs: vec![cidr],
            env: env.clone(),
        })
        .await?;
    undo.push(Undo::Machine(machine.clone()));

    // `--allow-cidr` with `--from` is stored as null; smolvm reads the row at start.
    step("allowlist", progress)?;
    allowlist::enforce(platform, &allowlist::default_db(), &machine, &[cidr])?;

    step("machine-start", progress)?;
    smolvm.machine_start(&machine).await?;

    // Back-to-back execs right after start race libkrun's exec channel (the original slept
    // 1.5 s): poll until a trivial exec answers, within a bound.
    step("machine-ready", progress)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let out = smolvm.machine_exec(&machine, &env, &["true"]).await?;
        if out.code == 0 {
            break;
        }
        if started.elapsed() > READY_WITHIN {
            bail!(
                "the machine {machine} did not accept commands within {} s: {}",
                READY_WITHIN.as_secs(),
                out.stderr.trim()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }

    // smolvm's pack remaps ownership to the host user: home and the tmp dirs come out wrong.
    step("repairs", progress)?;
    let home = super::prepare::in_agent::HOME;
    let user = &plan.agent.user;
    let repair = format!(
        "mkdir -p {home}/.bottle && chown -R {user}:{user} {home} && chown root:root /tmp /var/tmp && chmod 1777 /tmp /var/tmp && stat -c %a /tmp"
    );
    exec_ok(
        smolvm,
        &machine,
        &env,
        "repairing ownership",
        &["sh", "-c", &repair],
    )
    .await
    .and_then(|out| {
        ensure!(
            out.trim() == "1777",
            "/tmp has mode {} after repair",
            out.trim()
        );
        Ok(())
    })?;

    step("provision", progress)?;
    provision(smolvm, plan, &machine, &env, alias, &ports, progress).await
}

async fn exec_ok(
    smolvm: &Smolvm,
    machine: &str,
    env: &BTreeMap<String, String>,
    what: &str,
    cmd: &[&str],
) -> Result<String> {
    let out = smolvm.machine_exec(machine, env, cmd).await?;
    if out.code != 0 {
        bail!(
            "{what}: `{}` exited {} in {machine}: {}",
            cmd.join(" "),
            out.code,
            out.stderr.trim()
        );
    }
    Ok(out.stdout)
}

async fn provision(
    smolvm: &Smolvm,
    plan: &Plan,
    machine: &str,
    env: &BTreeMap<String, String>,
    alias: Ipv4Addr,
    ports: &BTreeMap<u16, u16>,
    progress: Progress<'_>,
) -> Result<()> {
    let user = &plan.agent.user;
    if let Some(prompt) = &plan.agent.prompt {
        progress("provision: prompt");
        let dst = prompt.container.display().to_string();
        smolvm.machine_cp(machine, &prompt.host, &dst).await?;
        exec_ok(
            smolvm,
            machine,
            env,
            "owning the prompt",
            &["chown", &format!("{user}:{user}"), &dst],
        )
        .await?;
    }
    for skill in &plan.agent.skills {
        progress("provision: skills");
        for entry in walk(&skill.host)? {
            let rel = entry.strip_prefix(&skill.host).unwrap_or(&entry);
            let dst = skill.container.join(rel);
            let parent = dst
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            exec_ok(
                smolvm,
                machine,
                env,
                "making the skill folder",
                &["mkdir", "-p", &parent],
            )
            .await?;
            smolvm
                .machine_cp(machine, &entry, &dst.display().to_string())
                .await?;
        }
        let dir = skill.container.display().to_string();
        exec_ok(
            smolvm,
            machine,
            env,
            "owning the skills",
            &["chown", "-R", &format!("{user}:{user}"), &dir],
        )
        .await?;
    }

    // One exec for the CA, which fails unless the trust store gained it.
    progress("provision: CA trust");
    let ca_dst = plan.agent.ca_cert_in_agent.display().to_string();
    smolvm
        .machine_cp(machine, &plan.gateway.ca_cert, &ca_dst)
        .await?;
    let ca = std::fs::read_to_string(&plan.gateway.ca_cert)
        .wrap_err_with(|| format!("cannot read {}", plan.gateway.ca_cert.display()))?;
    let probe = ca
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .unwrap_or_default();
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    exec_ok(
        smolvm,
        machine,
        env,
        "installing the bottle CA",
        &["sh", "-c", INSTALL_CA, "sh", &ca_dst, bundle, probe],
    )
    .await?;

    let home = super::prepare::in_agent::HOME;
    if let (Some(gate), Some(port)) = (&plan.git_gate, ports.get(&GIT_GATE_PORT)) {
        progress("provision: git");
        let mut script = String::from("set -e\n");
        for repo in &gate.repos {
            let url = format!("git://{alias}:{port}/{}.git", repo.name);
            script.push_str(&format!(
                "HOME={home} git config --global --replace-all 'url.{url}.insteadOf' '{}'\n",
                repo.upstream.replace('\'', "'\\''")
            ));
        }
        script.push_str(&format!("chown {user}:{user} {home}/.gitconfig\n"));
        exec_ok(
            smolvm,
            machine,
            env,
            "pointing git at the gate",
            &["sh", "-c", &script],
        )
        .await?;
    }

    if let (Some(_), Some(port)) = (&plan.supervise, ports.get(&SUPERVISE_PORT)) {
        progress("provision: supervise MCP");
        let url = format!("http://{alias}:{port}/mcp");
        let doc =
            serde_json::json!({ "mcpServers": { "supervise": { "type": "http", "url": url } } });
        let file = plan.state_dir.join("agent-claude.json");
        crate::fsutil::write(&file, doc.to_string().as_bytes(), crate::fsutil::SECRET)?;
        let dst = format!("{home}/.claude.json");
        smolvm.machine_cp(machine, &file, &dst).await?;
        exec_ok(
            smolvm,
            machine,
            env,
            "owning .claude.json",
            &[
                "sh",
                "-c",
                &format!("chown {user}:{user} {dst} && chmod 600 {dst}"),
            ],
        )
        .await?;
    }

    progress("provision: done");
    exec_ok(
        smolvm,
        machine,
        env,
        "marking provision done",
        &[
            "sh",
            "-c",
            &format!("mkdir -p /.bottle && echo ok > {DONE_MARKER}"),
        ],
    )
    .await?;
    Ok(())
}

/// Regular files below `dir`, sorted (symlinks are skipped: they could point anywhere).
fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).wrap_err_with(|| format!("cannot read {}", d.display()))? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
