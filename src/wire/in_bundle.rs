//! Where the bundle sees what the host's state dir holds: the paths both sides name.

pub const CONFIG_DIR: &str = "/etc/bottle";
pub const CA_DIR: &str = "/etc/bottle/ca";
pub const GATEWAY_CONFIG: &str = "/etc/bottle/gateway.json";
pub const PIPELOCK_CONFIG: &str = "/etc/pipelock/pipelock.yaml";
pub const GIT_GATE_CONFIG: &str = "/etc/bottle/git-gate.json";
pub const GIT_HOOKS: &str = "/etc/bottle/git-hooks";
pub const IDENTITIES: &str = "/etc/bottle/identities";
pub const KNOWN_HOSTS: &str = "/etc/bottle/known_hosts";
pub const LOCAL_UPSTREAMS: &str = "/srv/bottle/upstreams";
pub const SUPERVISE_CONFIG: &str = "/etc/bottle/supervise.json";
pub const SECRETS: &str = "/run/bottle/secrets";
pub const UPSTREAM_CA: &str = "/etc/bottle/upstream-ca.pem";
pub const QUEUE: &str = "/var/lib/bottle/queue";
/// Where init keeps the history's lines (`wire::log::EVENTS_FILE`), the state dir's `events`.
pub const EVENTS_DIR: &str = "/var/lib/bottle/events";
