use crate::engine::plan::GitGatePlan;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `git-gate.json`, as the git-gate daemon reads it inside the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitGateConfig {
    pub port: u16,
    /// The name or address git daemon listens on (older configs: every interface).
    #[serde(default = "every_interface")]
    pub listen_host: String,
    pub repos: Vec<GitGateRepo>,
    /// A CA https upstreams may be signed by, trusted besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitGateRepo {
    pub name: String,
    pub upstream: String,
    pub identity: Option<PathBuf>,
    /// Pinned ssh host keys: with them the gate checks strictly instead of trusting on first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    pub push: Vec<String>,
    pub protect: Vec<String>,
    /// The largest pack one push may send, in bytes; a larger one is refused while it
    /// arrives and nothing of it stays on disk.
    #[serde(default = "default_max_push")]
    pub max_push: u64,
}

fn default_max_push() -> u64 {
    crate::config::DEFAULT_MAX_PUSH.0
}

fn every_interface() -> String {
    "0.0.0.0".into()
}

pub fn render(plan: &GitGatePlan, host: &str) -> GitGateConfig {
    GitGateConfig {
        port: plan.port,
        listen_host: host.to_owned(),
        repos: plan
            .repos
            .iter()
            .map(|r| GitGateRepo {
                name: r.name.to_string(),
                upstream: r.upstream_in_bundle.clone(),
                identity: r.identity_in_bundle.clone(),
                known_hosts: r.known_hosts_in_bundle.clone(),
                push: r.push.clone(),
                protect: r.protect.clone(),
                max_push: r.max_push.0,
            })
            .collect(),
        upstream_ca: plan.upstream_ca_in_bundle.clone(),
    }
}

/// The gate's own pre-receive hook. It delegates to the sidecar binary so the policy is code we
/// test; hooks and config an agent pushes are never installed or run on the gate.
pub fn pre_receive_hook(config_in_bundle: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by bottle-tui: the gate's branch policy. Agent-supplied hooks never run here.\n\
         exec /usr/local/bin/bottle-sidecar git-gate pre-receive --config {config_in_bundle} \"$@\"\n"
    )
}
