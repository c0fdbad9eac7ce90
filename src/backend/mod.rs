//! Where bottles run. The engine talks to a [`Backend`]; nothing above the engine touches
//! bollard. The trait is narrow on purpose: resources by name and label, exec, copy in, logs
//! and events — enough for another engine (Kubernetes, a remote Docker) to fit without
//! touching the TUI.

pub mod docker;
pub mod smolvm;

use async_trait::async_trait;
use color_eyre::eyre::Result;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::types::ContainerState;

pub type Labels = BTreeMap<String, String>;

pub mod label {
    pub const SLUG: &str = "bottle.slug";
    pub const ROLE: &str = "bottle.role";
    pub const BOTTLE: &str = "bottle.bottle";
    pub const CONFIG_HASH: &str = "bottle.config-hash";
    pub const VERSION: &str = "bottle.version";
    pub const DAEMONS: &str = "bottle.daemons";
    pub const STATE_DIR: &str = "bottle.state-dir";
    /// Where the agent runs, when not in the bundle's engine (`smolvm`).
    pub const BACKEND: &str = "bottle.backend";
    /// The loopback alias the bundle publishes on (smolvm).
    pub const ALIAS: &str = "bottle.alias";
    /// The smolvm machine holding the agent.
    pub const MACHINE: &str = "bottle.machine";
    /// Who the agent runs as in its smolvm machine (exec and attach drop to this user).
    pub const AGENT_USER: &str = "bottle.agent-user";
}

pub mod role {
    pub const BUNDLE: &str = "bundle";
    pub const AGENT: &str = "agent";
    pub const NETWORK_INTERNAL: &str = "network-internal";
    pub const NETWORK_EGRESS: &str = "network-egress";
}

#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: String,
    /// No route out, and no address of the host on it: the agent's network.
    pub internal: bool,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct BindMount {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub labels: Labels,
    /// The one network the container is created on (API 1.41 allows one at create), or
    /// `container:NAME` to share another container's network namespace.
    pub network: String,
    pub network_aliases: Vec<String>,
    pub mounts: Vec<BindMount>,
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// DNS servers (the engine's embedded resolver forwards unknown names to them).
    pub dns: Vec<String>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u32>,
    pub cpus: Option<f64>,
    /// Drop every capability and forbid gaining privileges (setuid, file caps).
    pub unprivileged: bool,
    /// Capabilities to add (only launch's short-lived network helper uses this).
    pub cap_add: Vec<String>,
    /// Container TCP ports to publish on one host address each, at a port the engine picks.
    /// Only the smolvm backend publishes (on the bottle's loopback alias).
    pub publish: Vec<(IpAddr, u16)>,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ContainerInfo {
    pub name: String,
    pub id: String,
    pub image: String,
    pub state: ContainerState,
    pub exit_code: Option<i64>,
    /// Docker health status when the image has a HEALTHCHECK.
    pub health: Option<String>,
    /// What the last health check printed.
    pub health_output: Option<String>,
    pub labels: Labels,
    /// Network name → address.
    pub networks: BTreeMap<String, Option<IpAddr>>,
    pub created: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub env: Vec<String>,
    /// Ports published on the host (while running).
    pub ports: Vec<PublishedPort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub stream: OutputStream,
    pub text: String,
}

/// Something changed in the engine for a labelled resource.
#[derive(Debug, Clone)]
pub struct EngineEvent {
    pub kind: ResourceKind,
    pub action: String,
    pub name: String,
    pub labels: Labels,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name shown to users (`docker`).
    fn name(&self) -> &'static str;
    async fn image_present(&self, image: &str) -> Result<bool>;
    async fn create_network(&self, spec: &NetworkSpec) -> Result<()>;
    /// Idempotent: a missing network is not an error.
    async fn remove_network(&self, name: &str) -> Result<()>;
    async fn create_container(&self, spec: &ContainerSpec) -> Result<()>;
    async fn connect_network(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<()>;
    async fn start_container(&self, name: &str) -> Result<()>;
    /// Waits for a container to exit and returns its exit code.
    async fn wait_container(&self, name: &str, timeout: Duration) -> Result<i64>;
    /// Idempotent: a missing or stopped container is not an error.
    async fn stop_container(&self, name: &str, grace: Duration) -> Result<()>;
    /// Idempotent, and forced: a running container is killed.
    async fn remove_container(&self, name: &str) -> Result<()>;
    /// Idempotent.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Extracts a tar archive into `dest_dir` of the container (which may be stopped).
    async fn copy_in(&self, container: &str, dest_dir: &str, tar: Vec<u8>) -> Result<()>;
    /// The contents of one regular file in a container (which may be stopped); `None` if it
    /// or the container does not exist.
    async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>>;
    /// Runs a command; output goes to `sink` as it arrives. Returns the exit code.
    async fn exec_streaming(
        &self,
        container: &str,
        spec: &ExecSpec,
        sink: &mut (dyn for<'b> FnMut(OutputStream, &'b [u8]) + Send),
    ) -> Result<i64>;
    async fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>>;
    /// Every container (running or not), network and volume carrying all `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Resource>>;
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>>;
    fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<LogLine>>;
    /// Events for resources that carry `label` (any value).
    fn events(&self, label: &str) -> BoxStream<'static, Result<EngineEvent>>;

    /// Runs a command and collects its output.
    async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let mut out = ExecOutput::default();
        let code = self
            .exec_streaming(container, spec, &mut |stream, bytes| match stream {
                OutputStream::Stdout => out.stdout.extend_from_slice(bytes),
                OutputStream::Stderr => out.stderr.extend_from_slice(bytes),
            })
            .await?;
        out.code = code;
        Ok(out)
    }
}
