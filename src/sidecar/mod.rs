//! The in-bottle daemons, served by the `bottle-sidecar` multi-call binary. Nothing here
//! depends on the TUI.

pub mod gateway;
pub mod git_gate;
pub mod init;
pub mod listen;
pub mod log;
pub mod session;
pub mod supervise;

/// Exit code of a daemon this build does not have yet: init does not restart it.
pub const EXIT_NOT_IMPLEMENTED: i32 = 3;

/// How many worker threads a daemon's runtime gets.
#[derive(Debug, Clone, Copy)]
pub enum Threads {
    /// Everything on the calling thread.
    One,
    Workers(usize),
    /// Tokio's default: one per core.
    PerCore,
}

/// A daemon's tokio runtime; on failure the reason is logged as the daemon's JSON line and
/// `None` comes back, for the caller to exit with.
pub fn runtime(daemon: &str, threads: Threads) -> Option<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Workers(_) | Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Threads::Workers(n) = threads {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            log::event(
                daemon,
                "error",
                "cannot start the runtime",
                serde_json::json!({ "error": e.to_string() }),
            );
            None
        }
    }
}
