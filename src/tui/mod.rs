//! The terminal UI. `pane` is the embedded agent terminal the dashboard mounts.

pub mod pane;
