//! `gateway.json`: what the host writes and the gateway daemon reads.

use crate::types::{HostPattern, PrivateTarget};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `gateway.json`, as the gateway daemon reads it inside the bundle. Holds placeholders (so it
/// is written 0600) but never a real token: those are in their own files, read at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayConfig {
    pub listen: String,
    pub allow: Vec<HostPattern>,
    pub allow_private: Vec<PrivateTarget>,
    /// Unrouted hosts to intercept anyway.
    #[serde(default)]
    pub intercept: Vec<HostPattern>,
    pub routes: Vec<GatewayRoute>,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub upstream_proxy: Option<String>,
    /// Fixed answers for names, like curl's `--resolve` (each still passes the address
    /// checks). For a local service a test or a user opts into with `allow_private`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolve: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// A file listing the Docker host's own addresses (JSON array), written at launch; the
    /// gateway refuses them like private ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_addresses_file: Option<PathBuf>,
    /// Extra roots (PEM) trusted for upstream TLS besides the system's: a private origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_roots: Option<PathBuf>,
    /// A tunnel (CONNECT, not intercepted) that moves no byte for this long is closed.
    #[serde(default = "default_tunnel_idle")]
    pub tunnel_idle_seconds: u64,
}

/// Long enough for a quiet long poll or a stream's keep-alives, short enough that forgotten
/// tunnels do not pile up.
pub const TUNNEL_IDLE_SECONDS: u64 = 600;

fn default_tunnel_idle() -> u64 {
    TUNNEL_IDLE_SECONDS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayRoute {
    pub host: String,
    pub header: String,
    pub format: String,
    pub placeholder: String,
    pub token_file: PathBuf,
}
