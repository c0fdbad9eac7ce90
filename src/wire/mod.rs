//! What the host and the in-bottle binary agree on, and nothing else: the daemons' config
//! files, the paths and names both sides use. `engine` writes these and `sidecar` reads them;
//! neither imports the other. Changing a shape here changes [`VERSION`]; the golden tests in
//! `tests/plan_golden.rs` pin the files as written.

pub mod daemon;
pub mod gateway;
pub mod git_gate;
pub mod in_bundle;
pub mod log;
pub mod names;
pub mod session;
pub mod supervise;

/// The wire format's version: a bundle image and a host that disagree on it were built from
/// different sources.
pub const VERSION: u32 = 1;
