//! `supervise.json`: what the host writes and the supervise daemon reads.

use serde::{Deserialize, Serialize};

/// Approval requests one bottle may file in an hour when the config does not say (withdrawn
/// ones count).
pub const DEFAULT_MAX_PER_HOUR: u32 = 120;

/// `supervise.json`, as the supervise daemon reads it inside the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuperviseConfig {
    pub listen: String,
    pub queue_dir: String,
    pub timeout_seconds: u64,
    /// Approval requests the agent may file in an hour.
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
}

fn default_max_per_hour() -> u32 {
    DEFAULT_MAX_PER_HOUR
}
