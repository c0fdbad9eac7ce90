//! Renders the bundle daemons' config files from a plan. Pure: text in, text out.

pub mod gateway;
pub mod git_gate;
pub mod pipelock;
pub mod supervise;
