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
enum SessionAction {
    /// Attach this terminal to the agent's session (run it through `docker exec -it`).
    Attach {
        /// The key that detaches and leaves the agent running.
        #[arg(long, default_value = bottle_tui::sidecar::session::DEFAULT_DETACH_KEY)]
        detach_key: bottle_tui::sidecar::session::DetachKey,
        /// The name shown in the title and the detach message.
        #[arg(long, env = "BOTTLE_SLUG", default_value = "the bottle")]
        name: String,
        /// Receive every byte, holding the agent back if this terminal is slow (by default a
        /// terminal that falls behind is repainted and the agent never waits).
        #[arg(long)]
        lossless: bool,
        /// Watch without setting the agent's size (previews): the agent keeps the size its
        /// other viewers gave it.
        #[arg(long)]
        no_resize: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the daemons named in BOTTLE_DAEMONS, restart them, forward signals.
    Init,
    /// The agent's only HTTP(S) way out: allowlist, SSRF guard, credential injection.
    Gateway {
        /// The rendered gateway config.
        #[arg(long, default_value = "/etc/bottle/gateway.json")]
        config: std::path::PathBuf,
        /// Listen here instead of the config's address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serve git upstreams through a gate that holds the keys.
    GitGate,
    /// The MCP server agents ask humans through (streamable HTTP at /mcp).
    Supervise {
        /// The rendered supervise config.
        #[arg(long, default_value = "/etc/bottle/supervise.json")]
        config: std::path::PathBuf,
        /// Listen here instead of the config's address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// The agent container's entrypoint: runs COMMAND in a PTY once provision is done, keeps
    /// its screen, serves attach. `session attach` is the terminal client.
    #[command(args_conflicts_with_subcommands = true)]
    Session {
        #[command(subcommand)]
        action: Option<SessionAction>,
        /// The agent command and its arguments (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Exit 0 when every daemon is healthy (the bundle's HEALTHCHECK).
    Health,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, issue) = match cli.command {
        Command::Init => return bottle_tui::sidecar::init::run(),
        Command::Gateway { config, listen } => return gateway(&config, listen),
        Command::Health => return bottle_tui::sidecar::init::health(),
        Command::GitGate => ("git-gate", "issue #5"),
        Command::Supervise { config, listen } => return supervise(&config, listen),
        Command::Session {
            action:
                Some(SessionAction::Attach {
                    detach_key,
                    name,
                    lossless,
                    no_resize,
                }),
            ..
        } => {
            return bottle_tui::sidecar::session::attach::run(
                &bottle_tui::sidecar::session::attach::Options {
                    detach_key,
                    name,
                    lossless,
                    resize: !no_resize,
                },
            );
        }
        Command::Session {
            action: None,
            command,
        } => {
            if command.is_empty() {
                eprintln!(
                    "error: the agent command is missing: bottle-sidecar session -- COMMAND [ARGS…] (or `session attach`)"
                );
                return ExitCode::from(2);
            }
            return bottle_tui::sidecar::session::holder::run(command);
        }
    };
    eprintln!(
        "error: `bottle-sidecar {name}` is not implemented yet in {} (planned in {issue})",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(bottle_tui::sidecar::EXIT_NOT_IMPLEMENTED as u8)
}

fn gateway(config: &std::path::Path, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let Some(rt) = bottle_tui::sidecar::runtime("gateway", bottle_tui::sidecar::Threads::PerCore)
    else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(bottle_tui::sidecar::gateway::run(config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            bottle_tui::sidecar::log::event(
                "gateway",
                "error",
                "gateway stopped",
                serde_json::json!({ "error": format!("{e:#}") }),
            );
            ExitCode::FAILURE
        }
    }
}

fn supervise(config: &std::path::Path, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let Some(rt) =
        bottle_tui::sidecar::runtime("supervise", bottle_tui::sidecar::Threads::Workers(2))
    else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(bottle_tui::sidecar::supervise::run(config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            bottle_tui::sidecar::log::event(
                "supervise",
                "error",
                "supervise stopped",
                serde_json::json!({ "error": format!("{e:#}") }),
            );
            ExitCode::FAILURE
        }
    }
}
