//! `bottle-sidecar`: the multi-call binary that serves every in-bottle daemon.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The in-bottle daemons of bottle-tui. Runs inside the bundle and agent containers.
#[derive(Debug, Parser)]
#[command(name = "bottle-sidecar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the daemons named in BOTTLE_DAEMONS, restart them, forward signals.
    Init,
    /// The agent's only HTTP(S) way out: allowlist, SSRF guard, credential injection.
    Gateway,
    /// Serve git upstreams through a gate that holds the keys.
    GitGate,
    /// The MCP server agents ask humans through.
    Supervise,
    /// The agent container's entrypoint: PTY, screen model, attach socket.
    Session,
    /// Exit 0 when every daemon is healthy (the bundle's HEALTHCHECK).
    Health,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, issue) = match cli.command {
        Command::Init => return bottle_tui::sidecar::init::run(),
        Command::Gateway => ("gateway", "issue #4"),
        Command::Health => ("health", "issue #4"),
        Command::GitGate => ("git-gate", "issue #5"),
        Command::Supervise => ("supervise", "issue #5"),
        Command::Session => ("session", "issue #6"),
    };
    eprintln!(
        "error: `bottle-sidecar {name}` is not implemented yet in {} (planned in {issue})",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(bottle_tui::sidecar::EXIT_NOT_IMPLEMENTED as u8)
}
