//! Renders the bundle daemons' config files from a plan. Pure: text in, text out.

pub mod gateway;
pub mod git_gate;
pub mod pipelock;
pub mod supervise;

use super::plan::Plan;
use crate::types::BackendKind;

/// Where a bundle daemon listens. On Docker: its own alias, which resolves (inside the bundle)
/// to the bundle's address on the internal network only, so nothing on the egress bridge — the
/// host included — reaches it. On smolvm the entry ports are published on the bottle's loopback
/// alias, which Docker forwards to the egress side, so the daemons listen everywhere in the
/// bundle and the alias is what confines them (see ARCHITECTURE.md).
pub fn listen_host(plan: &Plan, alias: &str) -> String {
    match plan.backend {
        BackendKind::Docker => alias.to_owned(),
        BackendKind::Smolvm => "0.0.0.0".to_owned(),
    }
}
