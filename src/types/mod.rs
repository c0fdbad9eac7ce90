//! Small value types parsed once at the edge (config, CLI) and trusted afterwards.

pub mod age;
mod byte_size;
mod duration;
mod host_pattern;
mod key_spec;
mod private_target;
mod slug;
mod state;

pub use byte_size::ByteSize;
pub use duration::Timeout;
pub use host_pattern::HostPattern;
pub use key_spec::KeySpec;
pub use private_target::PrivateTarget;
pub use slug::Slug;
pub use state::{AgentState, BottleState, ContainerState};

/// Where a bottle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Docker,
    Smolvm,
}

impl BackendKind {
    pub const NAMES: &'static [&'static str] = &["docker", "smolvm"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "docker" => Some(Self::Docker),
            "smolvm" => Some(Self::Smolvm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Smolvm => "smolvm",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// True for a POSIX-style environment variable name.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
