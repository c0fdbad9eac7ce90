//! The terminal UI. `pane` is the embedded agent terminal the dashboard mounts.

pub mod app;
pub mod keymap;
pub mod logs;
pub mod msg;
pub mod pane;
pub mod run;
pub mod text;
pub mod theme;
pub mod views;
pub mod worker;
