//! `bottle-sidecar gateway`: the agent's only way out. An HTTP forward proxy (absolute-URI
//! requests and CONNECT) that denies by default, resolves names itself and refuses every
//! non-public address after resolution, and logs one JSON line per request.

mod echo_redact;
mod host_header;
mod intercept;
pub mod policy;
mod routed;
mod server;
mod tunnel;

pub use server::{run, serve};
