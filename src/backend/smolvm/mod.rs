//! The smolvm backend: the agent runs in a smolvm microVM (macOS first), the bundle still runs
//! in Docker, and the guest reaches only its bottle's bundle, published on a per-bottle
//! loopback alias that the VM's TSI allowlist names alone. The seed history
//! (shared/seed/claude-bottle-history.txt) records each quirk handled here.

pub mod alias;
pub mod allowlist;
pub mod cli;

/// Which host we are on decides whether aliases and the allowlist patch are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    MacOs,
    Linux,
}

impl Platform {
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::MacOs
        } else {
            Self::Linux
        }
    }
}
