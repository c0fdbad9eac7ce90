//! launch on the smolvm backend: the bundle runs in Docker and publishes its entry ports on
//! the bottle's loopback alias only; the agent runs in a smolvm machine whose TSI allowlist is
//! that alias's /32. Order and repairs follow what the original tool learned the hard way
//! (shared/seed/claude-bottle-history.txt).

use super::agent_host::{AgentHost, Machine};
use super::launch_parts::{
    AGENT_SIDECAR, Progress, Undo, bundle_spec, check_images, labels, step, write_tokens,
};
use super::plan::{GATEWAY_PORT, GIT_GATE_PORT, Plan, SUPERVISE_PORT};
use crate::backend::smolvm::cli::{MachineCreate, MachineSource, Smolvm};
use crate::backend::smolvm::{Platform, alias, allowlist};
use crate::backend::{Backend, NetworkSpec, label, role};
use color_eyre::eyre::{Result, bail, ensure, eyre};
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
    "agent-copy-sidecar",
    "provision",
    "session-start",
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
    sidecar: &std::path::Path,
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
    spec.labels
        .insert(label::AGENT_USER.into(), plan.agent.user.clone());
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

    // smolvm's pack remaps ownership to the host user: the home comes out wrong (/tmp too,
    // which provision's CA step repairs and checks).
    step("repairs", progress)?;
    let home = super::prepare::in_agent::HOME;
    let user = &plan.agent.user;
    let repair = format!("mkdir -p {home} && chown -R {user}: {home}");
    let out = smolvm
        .machine_exec(&machine, &env, &["sh", "-c", &repair])
        .await?;
    ensure!(
        out.code == 0,
        "repairing the ownership of {home} in {machine} failed (exit {}): {}",
        out.code,
        out.stderr.trim()
    );

    let seen = as_seen_from(plan, alias, &ports, env);
    super::agent_host::save_guest_env(&plan.state_dir, &seen.agent.env)?;
    let agent = Machine::new(smolvm, &machine, &seen.agent.env, &plan.state_dir);

    step("agent-copy-sidecar", progress)?;
    agent
        .copy_in("/", super::launch::sidecar_tar(sidecar)?)
        .await?;

    step("provision", progress)?;
    let ids = super::provision::provision(&agent, &seen, progress).await?;
    super::provision::mark_done(&agent, &seen, ids, progress).await?;

    step("session-start", progress)?;
    start_session(&agent, &seen).await
}

/// The plan as the machine sees it: the bundle is the alias, its services the published
/// ports, and the environment the guest's.
fn as_seen_from(
    plan: &Plan,
    alias: Ipv4Addr,
    ports: &BTreeMap<u16, u16>,
    env: BTreeMap<String, String>,
) -> Plan {
    let mut seen = plan.clone();
    if let (Some(gate), Some(port)) = (seen.git_gate.as_mut(), ports.get(&GIT_GATE_PORT)) {
        for repo in &mut gate.repos {
            repo.gate_url = format!("git://{alias}:{port}/{}.git", repo.name);
        }
    }
    if let (Some(s), Some(port)) = (seen.supervise.as_mut(), ports.get(&SUPERVISE_PORT)) {
        s.url = format!("http://{alias}:{port}/mcp");
    }
    seen.agent.env = env;
    seen
}

/// How long the session holder may take to say it runs the agent.
const SESSION_WITHIN: Duration = Duration::from_secs(30);

/// Starts the session holder in the machine, detached from the exec that starts it, as the
/// agent user in its workdir — the machine's equivalent of the container's PID 1 — and waits
/// until its record says the agent runs (or already ended).
async fn start_session(agent: &Machine<'_>, plan: &Plan) -> Result<()> {
    let workdir = plan.agent.workdir.display().to_string();
    let mut holder: Vec<&str> = vec![AGENT_SIDECAR, "session", "--"];
    holder.extend(plan.agent.command.iter().map(String::as_str));
    let argv = super::agent_host::as_user(&plan.agent.user, Some(&workdir), &holder);
    let (pid, log) = super::agent_host::holder_files();
    let mut detach: Vec<&str> = vec!["sh", "-c", DETACH, "sh", &pid, &log];
    detach.extend(argv.iter().map(String::as_str));
    let out = agent
        .smolvm
        .machine_exec(agent.name, agent.env, &detach)
        .await?;
    ensure!(
        out.code == 0,
        "starting the session holder in {} failed (exit {}): {}",
        agent.name,
        out.code,
        out.stderr.trim()
    );
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        // A record that cannot be read yet is the holder still starting.
        let record = super::agent_host::machine_session(agent.smolvm, agent.name)
            .await
            .ok()
            .flatten();
        // The holder writes its record once the agent starts.
        if record.is_some() {
            return Ok(());
        }
        if started.elapsed() > SESSION_WITHIN {
            let said = agent
                .smolvm
                .machine_exec(agent.name, agent.env, &["cat", &log])
                .await
                .map(|o| o.stdout)
                .unwrap_or_default();
            bail!(
                "the session holder in {} did not start the agent within {} s; it said: {}",
                agent.name,
                SESSION_WITHIN.as_secs(),
                said.trim()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

/// `$1` pid file, `$2` log file, the rest the holder's argv: a new session of its own, no
/// terminal, so it outlives the exec that started it. setsid execs (a background job leads
/// no group), so `$!` is the holder's pid.
const DETACH: &str = r#"pid="$1"; log="$2"; shift 2
mkdir -p "$(dirname "$pid")"
setsid "$@" </dev/null >>"$log" 2>&1 &
echo $! > "$pid""#;

#[cfg(test)]
mod tests {
    use super::DETACH;

    fn session_of(pid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // Fields after the command's closing paren: state ppid pgrp session …
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        rest.split(' ')
            .nth(3)
            .expect("session")
            .parse()
            .expect("number")
    }

    #[test]
    fn detach_records_the_holders_pid_and_the_holder_leads_its_own_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("run/holder.pid");
        let log = dir.path().join("holder.log");
        let ready = dir.path().join("ready");
        let out = std::process::Command::new("sh")
            .args(["-c", DETACH, "sh"])
            .arg(&pid_file)
            .arg(&log)
            .args(["sh", "-c", "echo started; touch \"$0\"; exec sleep 30"])
            .arg(&ready)
            .output()
            .expect("sh");
        assert!(out.status.success(), "{out:?}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("the pid file")
            .trim()
            .parse()
            .expect("a pid");
        // The exec that started it has returned; the holder still runs, in its own session.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ready.exists() {
            assert!(std::time::Instant::now() < deadline, "the holder never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sid = session_of(pid);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert_eq!(sid, pid, "the holder leads a session of its own");
        assert_ne!(sid, session_of(std::process::id() as i32));
        assert_eq!(std::fs::read_to_string(&log).expect("log"), "started\n");
    }
}
