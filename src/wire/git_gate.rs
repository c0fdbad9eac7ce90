//! `git-gate.json`: what the host writes and the git-gate daemon reads.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The largest pack one push may send to the gate when the config does not say: a bound on
/// what an agent can write to the bundle's disk per push.
pub const DEFAULT_MAX_PUSH: u64 = 512 << 20;

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
    DEFAULT_MAX_PUSH
}

fn every_interface() -> String {
    "0.0.0.0".into()
}
