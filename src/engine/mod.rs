//! The engine: prepare → launch → provision, reconcile, kill.

pub mod activity;
pub mod agent_host;
pub mod approvals;
pub mod attach;
pub mod ca;
pub mod claude_code;
pub mod doctor;
pub mod history;
pub mod ingest;
pub mod kill;
pub mod launch;
mod launch_parts;
pub mod notify;
pub mod placeholders;
pub mod plan;
pub mod prepare;
pub mod provision;
pub mod reconcile;
pub mod redact;
pub mod render;
pub mod setup;
pub mod sidecar_bin;
pub mod smolvm_launch;
pub mod up;

pub use plan::Plan;
pub use prepare::prepare;
