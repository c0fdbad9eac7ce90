//! The validated config: what the rest of the program trusts.

use crate::types::{BackendKind, ByteSize, HostPattern, KeySpec, PrivateTarget, Slug, Timeout};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this was read from, and its folder (relative paths resolve against it).
    pub path: PathBuf,
    pub dir: PathBuf,
    pub defaults: Defaults,
    pub agents: BTreeMap<Slug, Agent>,
    pub bottles: BTreeMap<Slug, Bottle>,
    pub keys: BTreeMap<String, KeySpec>,
    pub dashboard: Dashboard,
    pub notify: Notify,
}

/// `[notify]`: who hears when an agent comes to need you or goes idle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Notify {
    /// Run (no shell) on each such change, with the bottle, status and reason as arguments
    /// after these and as `BOTTLE_SLUG`, `BOTTLE_STATUS`, `BOTTLE_REASON`.
    pub command: Vec<String>,
}

/// `[dashboard]`: how the full-screen dashboard behaves.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Ring the terminal's bell when an agent asks for an approval, or comes to need you or
    /// goes idle (tmux marks the window).
    pub bell: bool,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self { bell: true }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Defaults {
    pub backend: BackendKind,
    pub agent: Slug,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub name: Slug,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub prompt: Option<Prompt>,
    pub skills: Vec<PathBuf>,
    pub memory: ByteSize,
    pub pids: u32,
    pub cpus: Option<f64>,
    /// `claude_code = true|false`: whether the command runs Claude Code; unset, it is inferred.
    pub claude_code: Option<bool>,
    /// `needs_you = ["(y/n)"]`: for an agent without hooks, text on its screen, once its
    /// output stopped, that means it waits for you.
    pub needs_you: Vec<String>,
    /// `quiet = "2s"`: how long without output means such an agent stopped working.
    pub quiet: Timeout,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    Text(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Serialize)]
pub struct Bottle {
    pub name: Slug,
    pub agent: Slug,
    pub backend: BackendKind,
    pub workspace: Option<PathBuf>,
    pub allow: Vec<HostPattern>,
    pub allow_private: Vec<PrivateTarget>,
    /// Allowed hosts the gateway opens up (TLS interception without injection).
    pub intercept: Vec<HostPattern>,
    /// A CA (PEM) the gateway trusts for upstream TLS besides the system roots.
    pub upstream_ca: Option<PathBuf>,
    pub routes: Vec<Route>,
    pub git: Vec<GitUpstream>,
    pub supervise: Supervise,
    pub pipelock: Pipelock,
}

/// Credential injection: the gateway swaps the agent's placeholder for the real token on
/// requests to `host`.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub host: String,
    pub header: String,
    /// Contains `{token}` exactly once.
    pub format: String,
    pub placeholder_env: String,
    pub token: TokenSource,
}

/// Where launch reads the real token. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Serialize)]
pub struct GitUpstream {
    pub name: Slug,
    pub upstream: String,
    pub identity: Option<PathBuf>,
    /// The upstream's pinned ssh host keys (known_hosts format); without it the gate trusts
    /// the key it sees first.
    pub known_hosts: Option<PathBuf>,
    pub push: Vec<String>,
    pub protect: Vec<String>,
    /// The largest pack one push may send (`receive.maxInputSize` on the gate's mirror).
    pub max_push: ByteSize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Supervise {
    pub enabled: bool,
    pub timeout: Timeout,
    /// Approval requests the agent may file in an hour.
    pub max_per_hour: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelockMode {
    Strict,
    Balanced,
    Audit,
}

impl PipelockMode {
    pub const NAMES: &'static [&'static str] = &["strict", "balanced", "audit"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Self::Strict),
            "balanced" => Some(Self::Balanced),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Balanced => "balanced",
            Self::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipelock {
    pub enabled: bool,
    pub image: Option<String>,
    pub mode: PipelockMode,
}

impl Agent {
    /// True when the agent runs Claude Code: `claude_code = true`, or unset and the command is
    /// `claude` by any path. Provision then answers its first-run screens and installs the
    /// prompt where it reads one. A wrapper script that runs `claude` sets the key.
    pub fn is_claude_code(&self) -> bool {
        self.claude_code.unwrap_or_else(|| {
            self.command
                .first()
                .and_then(|c| std::path::Path::new(c).file_name())
                .is_some_and(|n| n == "claude")
        })
    }

    /// True when Claude Code runs with `--dangerously-skip-permissions` (also inside a
    /// wrapper's `sh -c` script): provision then accepts the mode's warning for it.
    pub fn skips_permissions(&self) -> bool {
        self.command
            .iter()
            .any(|a| a.contains("--dangerously-skip-permissions"))
    }
}

impl Config {
    /// The agent a bottle runs (validated to exist at load time).
    pub fn agent_of(&self, bottle: &Bottle) -> &Agent {
        &self.agents[&bottle.agent]
    }
}
