//! The names and ports the agent reaches the bundle's daemons by: the host puts them in the
//! agent's environment and the bundle's aliases, the daemons listen and check `Host` by them.

pub const GATEWAY_HOST: &str = "gateway";
pub const GIT_GATE_HOST: &str = "git-gate";
pub const SUPERVISE_HOST: &str = "supervise";
pub const GATEWAY_PORT: u16 = 8888;
pub const GIT_GATE_PORT: u16 = 9418;
pub const SUPERVISE_PORT: u16 = 8900;
/// pipelock listens on the bundle's own loopback: only the gateway reaches it.
pub const PIPELOCK_LISTEN: &str = "127.0.0.1:8889";
