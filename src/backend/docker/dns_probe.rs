//! Does this engine forward DNS from `internal: true` networks (CVE-2024-29018)? Version
//! numbers mislead (Debian's patched 20.10.24 does not leak), so ask the engine for real: a
//! throwaway container on an internal network resolves a name the host resolves. A control
//! container on a plain bridge resolves the same name, so "no answer" means "no leak" rather
//! than "the probe is broken".

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

pub const PROBE_IMAGE: &str = "debian:bookworm-slim";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    NoLeak,
    Leaks,
    /// The control could not resolve the name either: the probe proves nothing.
    Inconclusive,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsProbe {
    pub name: String,
    pub image: String,
    pub control_resolved: bool,
    pub internal_resolved: bool,
    pub verdict: Verdict,
}

/// Runs the probe with `name` (which the host must resolve). Cleans up every resource it made.
pub async fn probe(docker: &Docker, name: &str, image: &str) -> Result<DnsProbe> {
    let tag = format!("bottle-doctor-{}-{}", std::process::id(), unique());
    let internal = format!("{tag}-int");
    let control = format!("{tag}-ctl");
    let result = async {
        create_network(docker, &internal, true).await?;
        create_network(docker, &control, false).await?;
        let control_resolved = resolves(docker, &format!("{tag}-c"), &control, name, image).await?;
        let internal_resolved =
            resolves(docker, &format!("{tag}-i"), &internal, name, image).await?;
        let verdict = match (control_resolved, internal_resolved) {
            (_, true) => Verdict::Leaks,
            (true, false) => Verdict::NoLeak,
            (false, false) => Verdict::Inconclusive,
        };
        Ok(DnsProbe {
            name: name.to_owned(),
            image: image.to_owned(),
            control_resolved,
            internal_resolved,
            verdict,
        })
    }
    .await;
    for c in [format!("{tag}-c"), format!("{tag}-i")] {
        let _ = docker
            .remove_container(
                &c,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
    for n in [&internal, &control] {
        let _ = docker.remove_network(n).await;
    }
    result
}

fn unique() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn labels() -> HashMap<String, String> {
    HashMap::from([("bottle.role".to_owned(), "doctor-probe".to_owned())])
}

async fn create_network(docker: &Docker, name: &str, internal: bool) -> Result<()> {
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            internal: Some(internal),
            labels: Some(labels()),
            ..Default::default()
        })
        .await
        .wrap_err_with(|| format!("cannot create the probe network {name}"))?;
    Ok(())
}

/// Runs `getent hosts NAME` in a fresh container on `network`; true if it printed an answer.
async fn resolves(
    docker: &Docker,
    container: &str,
    network: &str,
    name: &str,
    image: &str,
) -> Result<bool> {
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(container.to_owned()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                cmd: Some(vec!["getent".into(), "hosts".into(), name.to_owned()]),
                // An unanswered lookup otherwise retries for ~10 s; a leaking engine forwards
                // to the host's resolver and answers in milliseconds.
                env: Some(vec!["RES_OPTIONS=timeout:1 attempts:2".into()]),
                labels: Some(labels()),
                host_config: Some(HostConfig {
                    network_mode: Some(network.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .wrap_err_with(|| format!("cannot create the probe container from {image}"))?;
    docker
        .start_container(container, None)
        .await
        .wrap_err("cannot start the probe container")?;
    let mut wait = docker.wait_container(container, None);
    let code = match tokio::time::timeout(Duration::from_secs(30), wait.next()).await {
        Err(_) => return Err(eyre!("the probe container did not finish within 30 s")),
        Ok(None) => return Err(eyre!("the engine ended the wait without an exit code")),
        Ok(Some(Ok(r))) => r.status_code,
        Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
        Ok(Some(Err(e))) => return Err(e).wrap_err("waiting for the probe container failed"),
    };
    // getent: 0 = found, 2 = not found; anything else is a broken probe.
    match code {
        0 => Ok(true),
        2 => Ok(false),
        other => Err(eyre!(
            "`getent hosts {name}` in the probe container exited {other}"
        )),
    }
}

/// A name the host itself resolves, to ask the containers about: `BOTTLE_TUI_PROBE_NAME` if
/// set, else the hosts of this machine's apt sources, then `deb.debian.org`.
pub async fn pick_name() -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("BOTTLE_TUI_PROBE_NAME").into_iter().collect();
    candidates.extend(apt_source_hosts());
    candidates.push("deb.debian.org".into());
    candidates.dedup();
    for name in candidates {
        let lookup = tokio::net::lookup_host((name.clone(), 80));
        let found = match tokio::time::timeout(Duration::from_secs(3), lookup).await {
            Ok(Ok(addrs)) => addrs.into_iter().any(|a| !a.ip().is_loopback()),
            _ => false,
        };
        if found {
            return Some(name);
        }
    }
    None
}

fn apt_source_hosts() -> Vec<String> {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    text.push_str(&std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    let mut hosts = Vec::new();
    let words = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace);
    for word in words {
        let Some(rest) = word
            .strip_prefix("http://")
            .or_else(|| word.strip_prefix("https://"))
        else {
            continue;
        };
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !host.is_empty() && !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_owned());
        }
    }
    hosts
}
