//! Tracing to a daily-rolling file under the state dir — never to the terminal, which the
//! dashboard owns. `BOTTLE_TUI_LOG` sets the filter (default `info`).

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the file logger. Returns the guard that flushes it on drop, or `None` when the log
/// folder cannot be made (logging is then off; the command itself still works).
pub fn init(log_dir: &Path) -> Option<WorkerGuard> {
    crate::fsutil::private_dir(log_dir).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("bottle-tui")
        .filename_suffix("log")
        .max_log_files(7)
        .build(log_dir)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter =
        EnvFilter::try_from_env("BOTTLE_TUI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}
