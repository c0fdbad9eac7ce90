use crate::engine::plan::SupervisePlan;

pub use crate::wire::supervise::SuperviseConfig;

pub fn render(plan: &SupervisePlan, queue_in_bundle: &str, host: &str) -> SuperviseConfig {
    SuperviseConfig {
        listen: format!("{host}:{}", plan.port),
        queue_dir: queue_in_bundle.to_owned(),
        timeout_seconds: plan.timeout_seconds,
        max_per_hour: plan.max_per_hour,
    }
}
