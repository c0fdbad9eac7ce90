//! The in-bottle daemons, served by the `bottle-sidecar` multi-call binary. Nothing here
//! depends on the TUI.

pub mod gateway;
pub mod init;
pub mod log;
pub mod session;

/// Exit code of a daemon this build does not have yet: init does not restart it.
pub const EXIT_NOT_IMPLEMENTED: i32 = 3;
