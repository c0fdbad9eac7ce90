use crate::engine::plan::SupervisePlan;
use serde::{Deserialize, Serialize};

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
    crate::config::DEFAULT_MAX_PER_HOUR
}

pub fn render(plan: &SupervisePlan, queue_in_bundle: &str, host: &str) -> SuperviseConfig {
    SuperviseConfig {
        listen: format!("{host}:{}", plan.port),
        queue_dir: queue_in_bundle.to_owned(),
        timeout_seconds: plan.timeout_seconds,
        max_per_hour: plan.max_per_hour,
    }
}
