//! bottle-tui: run coding agents in bottles — sandboxes whose only way out is their own sidecars —
//! and drive them from a terminal cockpit or a scriptable CLI.
//!
//! Dependency direction: `cli`/`tui` → `engine` → `backend`; `config`, `types` and `wire` are
//! shared, and the in-bottle `sidecar` imports only `wire`, `types` and its own modules.

pub mod backend;
pub mod cli;
pub mod config;
pub mod engine;
pub mod fsutil;
pub mod logging;
pub mod sidecar;
pub mod state;
pub mod store;
pub mod tui;
pub mod types;
pub mod wire;

/// The version stamped on every resource this build creates (`bottle.version` label).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
