//! The plan: everything launch will do, as plain data. Made by prepare, shown by `plan`,
//! stored in the state dir. It names where secrets come from, never their values.

use crate::config::{PipelockMode, TokenSource};
use crate::types::{BackendKind, ByteSize, HostPattern, PrivateTarget, Slug};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Bumped when the plan's shape changes incompatibly.
pub const PLAN_FORMAT: u32 = 1;

pub use crate::wire::names::{
    GATEWAY_HOST, GATEWAY_PORT, GIT_GATE_HOST, GIT_GATE_PORT, PIPELOCK_LISTEN, SUPERVISE_HOST,
    SUPERVISE_PORT,
};

/// Where the agent sees what provision copies in.
pub mod in_agent {
    pub const USER: &str = "node";
    pub const HOME: &str = "/home/node";
    pub const PROMPT: &str = "/home/node/.bottle/prompt.md";
    /// Where Claude Code reads the user's instructions on every start.
    pub const CLAUDE_MD: &str = "/home/node/.claude/CLAUDE.md";
    pub const SKILLS: &str = "/home/node/.claude/skills";
    pub const WORKSPACE: &str = "/workspace";
    pub const CA_CERT: &str = "/usr/local/share/ca-certificates/bottle-ca.crt";
    pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub tool_version: String,
    pub slug: Slug,
    pub bottle: Slug,
    pub backend: BackendKind,
    pub config_path: PathBuf,
    /// Hash of the bottle's and its agent's config; stamped as the `bottle.config-hash` label.
    pub config_hash: String,
    pub state_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkPlan,
    pub bundle: BundlePlan,
    pub gateway: GatewayPlan,
    pub pipelock: Option<PipelockPlan>,
    pub git_gate: Option<GitGatePlan>,
    pub supervise: Option<SupervisePlan>,
    pub agent: AgentPlan,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// `internal: true`: the agent's only network; its one peer is the bundle.
    pub internal: String,
    /// A plain bridge only the bundle joins: the way out.
    pub egress: String,
}

/// A host file or folder mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundlePlan {
    pub container: String,
    pub image: String,
    /// What the bundle's init starts (`BOTTLE_DAEMONS`).
    pub daemons: Vec<crate::wire::daemon::Daemon>,
    /// Names the agent reaches the bundle by on the internal network.
    pub aliases: Vec<String>,
    pub mounts: Vec<Mount>,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayPlan {
    pub listen_port: u16,
    pub config_file: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub allow: Vec<HostPattern>,
    /// Explicit opt-ins to non-public destinations; empty unless the config asks.
    pub allow_private: Vec<PrivateTarget>,
    /// Unrouted hosts intercepted anyway (so a placeholder inside their TLS is caught).
    pub intercept: Vec<HostPattern>,
    /// A private CA trusted for upstream TLS besides the system roots (mounted in the bundle).
    pub upstream_ca: Option<PathBuf>,
    pub routes: Vec<RoutePlan>,
    /// pipelock, when enabled: everything the gateway forwards goes through it.
    pub upstream_proxy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutePlan {
    pub host: String,
    pub header: String,
    pub format: String,
    pub placeholder_env: String,
    /// Where launch reads the real token (not the token).
    pub token_source: TokenSource,
    /// Host path of the 0600 file launch writes the token to; mounted read-only in the bundle.
    pub token_file: PathBuf,
    pub token_file_in_bundle: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelockPlan {
    /// Its own container, sharing the bundle's network namespace.
    pub container: String,
    pub image: String,
    pub mode: PipelockMode,
    pub listen: String,
    pub config_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitGatePlan {
    pub port: u16,
    pub config_file: PathBuf,
    pub hooks_dir: PathBuf,
    pub repos: Vec<GitRepoPlan>,
    /// The bottle's `upstream_ca` as the bundle sees it: https upstreams may be signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca_in_bundle: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitRepoPlan {
    pub name: Slug,
    pub upstream: String,
    /// The upstream as the gate sees it: a `file://` upstream is mounted into the bundle.
    pub upstream_in_bundle: String,
    /// The URL the agent uses (its usual upstream URL is rewritten to this with `insteadOf`).
    pub gate_url: String,
    pub identity: Option<PathBuf>,
    pub identity_in_bundle: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_in_bundle: Option<PathBuf>,
    pub push: Vec<String>,
    pub protect: Vec<String>,
    pub max_push: ByteSize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisePlan {
    pub port: u16,
    pub url: String,
    pub queue_dir: PathBuf,
    pub timeout_seconds: u64,
    pub max_per_hour: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentPlan {
    pub name: Slug,
    pub container: String,
    pub image: String,
    pub command: Vec<String>,
    pub user: String,
    pub env: BTreeMap<String, String>,
    /// Names written into the agent's `/etc/hosts`, pointing at the bundle (address set at
    /// launch). The agent's resolver answers nothing else.
    pub hosts: Vec<String>,
    /// The agent's DNS servers. The engine's embedded resolver still answers the names of
    /// the bundle on the internal network, but forwards everything else here — the agent's
    /// own loopback, where nothing listens — so an engine that leaks DNS from internal
    /// networks (CVE-2024-29018) has nowhere to leak to.
    pub dns: Vec<String>,
    pub prompt: Option<Mount>,
    pub skills: Vec<Mount>,
    pub workspace: Option<Mount>,
    /// The folder the agent starts in: the workspace's mount point, which provision creates
    /// (owned by the agent) when the bottle names no workspace.
    #[serde(default = "default_workdir")]
    pub workdir: PathBuf,
    /// What provision answers for Claude Code's first run, when the agent is Claude Code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude: Option<ClaudeSeed>,
    /// How the session holder reads the agent's status from its terminal (provision writes it
    /// to the session folder); Claude Code reports through hooks from its start.
    #[serde(default)]
    pub status: crate::wire::session::StatusConfig,
    pub ca_cert_in_agent: PathBuf,
    pub memory_bytes: u64,
    pub pids: u32,
    pub cpus: Option<f64>,
}

fn default_workdir() -> PathBuf {
    PathBuf::from(in_agent::WORKSPACE)
}

/// Claude Code's first-run screens, answered ahead: onboarding done, the workdir trusted, the
/// bypass-permissions warning accepted when the command skips permissions, and the API key
/// in `ANTHROPIC_API_KEY` (the bottle's placeholder) approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaudeSeed {
    pub skip_permissions: bool,
    /// The last 20 characters of the placeholder in `ANTHROPIC_API_KEY`, which is how Claude
    /// Code remembers an approved key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_key_suffix: Option<String>,
}
