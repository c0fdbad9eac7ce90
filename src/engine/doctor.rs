//! `doctor`: is this machine ready to run bottles, and is its engine safe to run them on?

use crate::backend::docker::{self, EngineInfo, dns_probe};
use crate::state::StateRoot;
use serde::Serialize;

/// The pipelock image the example config names (pipelock is optional; bottles that enable it
/// need its image, which bottle-tui cannot build).
pub const PIPELOCK_IMAGE: &str = "ghcr.io/luckypipewrench/pipelock:v2.3.0";

pub fn images() -> [(String, &'static str); 4] {
    [
        (
            "debian:bookworm-slim".to_owned(),
            "base image (scripts/make-base-image.sh builds it offline)",
        ),
        (
            crate::engine::prepare::bundle_image(),
            "bundle image (bottle-tui image build --bundle)",
        ),
        (
            crate::config::DEFAULT_AGENT_IMAGE.to_owned(),
            "agent image (bottle-tui image build --agent)",
        ),
        (
            PIPELOCK_IMAGE.to_owned(),
            "pipelock image, needed only by bottles with [pipelock] enabled (never pulled: load it with `docker load`)",
        ),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// False when any check failed.
    pub ok: bool,
    pub engine: Option<EngineInfo>,
    pub dns_leak: Option<dns_probe::DnsProbe>,
    pub checks: Vec<Check>,
}

fn check(name: &str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_owned(),
        status,
        detail: detail.into(),
    }
}

pub async fn run(root: &StateRoot) -> Report {
    let mut checks = vec![state_dir_check(root), sidecar_check()];
    let mut engine = None;
    let mut dns_leak = None;
    match docker::connect().await {
        Err(e) => checks.push(check("engine", Status::Fail, format!("{e:#}"))),
        Ok(client) => {
            match docker::engine_info(&client).await {
                Ok(info) => {
                    checks.push(check(
                        "engine",
                        Status::Ok,
                        format!(
                            "Docker {} at {} (API {} negotiated; server supports {}–{})",
                            info.server_version,
                            info.host,
                            info.api_version,
                            info.min_api_version,
                            info.server_api_version
                        ),
                    ));
                    engine = Some(info);
                }
                Err(e) => checks.push(check("engine", Status::Fail, format!("{e:#}"))),
            }
            let mut base_present = false;
            for (image, what) in images() {
                match docker::image_present(&client, &image).await {
                    Ok(true) => {
                        base_present |= image == dns_probe::PROBE_IMAGE;
                        let claude = docker::image_label(
                            &client,
                            &image,
                            crate::engine::claude_code::VERSION_LABEL,
                        )
                        .await
                        .ok()
                        .flatten()
                        .map(|v| format!("; Claude Code {v}"))
                        .unwrap_or_default();
                        checks.push(check(
                            &format!("image {image}"),
                            Status::Ok,
                            format!("present: {what}{claude}"),
                        ));
                    }
                    Ok(false) => checks.push(check(
                        &format!("image {image}"),
                        Status::Warn,
                        format!("missing: {what}"),
                    )),
                    Err(e) => checks.push(check(
                        &format!("image {image}"),
                        Status::Fail,
                        format!("{e:#}"),
                    )),
                }
            }
            checks.extend(hygiene_checks(&client).await);
            let (c, probe) = dns_check(&client, base_present).await;
            checks.push(c);
            dns_leak = probe;
        }
    }
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        engine,
        dns_leak,
        checks,
    }
}

/// What of the engine's own defaults weakens a bottle, and what to change.
async fn hygiene_checks(client: &bollard::Docker) -> Vec<Check> {
    use crate::backend::docker::{LOG_MAX_FILES, LOG_MAX_SIZE};
    let mut out = Vec::new();
    match client.info().await {
        Ok(info) => {
            let driver = info.logging_driver.unwrap_or_default();
            let ours = format!(
                "bottle containers log to json-file rotated at {LOG_MAX_SIZE} × {LOG_MAX_FILES}"
            );
            out.push(if driver == "json-file" || driver.is_empty() {
                check(
                    "log rotation",
                    Status::Ok,
                    format!(
                        "{ours}; the engine's default ({driver}) rotates other containers only if /etc/docker/daemon.json sets \"log-opts\": {{\"max-size\": \"10m\"}}"
                    ),
                )
            } else {
                check(
                    "log rotation",
                    Status::Ok,
                    format!("{ours}; the engine's default driver is {driver}"),
                )
            });
        }
        Err(e) => out.push(check("log rotation", Status::Warn, format!("{e}"))),
    }
    match client.inspect_network("bridge", None).await {
        Ok(net) if net.enable_ipv6 == Some(true) => out.push(check(
            "IPv6",
            Status::Warn,
            "the engine's default bridge has IPv6 on: bottles create their networks with IPv6 off and turn it off inside, but containers started by hand get it; set \"ipv6\": false in /etc/docker/daemon.json unless you need it",
        )),
        Ok(_) => out.push(check(
            "IPv6",
            Status::Ok,
            "off on the engine's default bridge; bottle networks and agents have it off too",
        )),
        Err(e) => out.push(check(
            "IPv6",
            Status::Warn,
            format!("cannot inspect the default bridge: {e}"),
        )),
    }
    out
}

async fn dns_check(
    client: &bollard::Docker,
    base_present: bool,
) -> (Check, Option<dns_probe::DnsProbe>) {
    const NAME: &str = "internal-network DNS";
    if !base_present {
        return (
            check(
                NAME,
                Status::Warn,
                format!(
                    "not probed: the probe image {} is missing",
                    dns_probe::PROBE_IMAGE
                ),
            ),
            None,
        );
    }
    let Some(name) = dns_probe::pick_name().await else {
        return (
            check(
                NAME,
                Status::Warn,
                "not probed: this host resolves no external name to ask about (set BOTTLE_TUI_PROBE_NAME)",
            ),
            None,
        );
    };
    match dns_probe::probe(client, &name, dns_probe::PROBE_IMAGE).await {
        Err(e) => (
            check(NAME, Status::Fail, format!("the probe failed: {e:#}")),
            None,
        ),
        Ok(p) => {
            let c = match p.verdict {
                dns_probe::Verdict::NoLeak => check(
                    NAME,
                    Status::Ok,
                    format!(
                        "no leak: `{name}` resolves on a bridge but not on an internal network"
                    ),
                ),
                dns_probe::Verdict::Leaks => check(
                    NAME,
                    Status::Warn,
                    format!(
                        "LEAKS (CVE-2024-29018): `{name}` resolves from an internal network. Bottles still pin their agent's resolver, but upgrade the engine (>= 25.0.5)"
                    ),
                ),
                dns_probe::Verdict::Inconclusive => check(
                    NAME,
                    Status::Warn,
                    format!("inconclusive: `{name}` did not resolve from a plain bridge either"),
                ),
            };
            (c, Some(p))
        }
    }
}

fn sidecar_check() -> Check {
    const NAME: &str = "static bottle-sidecar";
    match crate::engine::sidecar_bin::locate() {
        Ok(p) => check(NAME, Status::Ok, format!("{}", p.display())),
        Err(_) => check(
            NAME,
            Status::Warn,
            "missing: `bottle-tui image build` (or the dashboard) builds it from this program's source with cargo",
        ),
    }
}

fn state_dir_check(root: &StateRoot) -> Check {
    const NAME: &str = "state dir";
    let probe = root.path().join(".doctor-write-test");
    let result = crate::fsutil::private_dir(root.path())
        .and_then(|()| crate::fsutil::write(&probe, b"ok", crate::fsutil::SECRET));
    let _ = std::fs::remove_file(&probe);
    match result {
        Ok(()) => check(
            NAME,
            Status::Ok,
            format!("{} is writable", root.path().display()),
        ),
        Err(e) => check(NAME, Status::Fail, format!("{e:#}")),
    }
}
