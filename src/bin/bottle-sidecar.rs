//! `bottle-sidecar`: the multi-call binary that serves every in-bottle daemon.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    /// Claude Code's hook: reads the event's JSON on stdin and tells the session holder what
    /// the agent is doing. Prints nothing and always exits 0.
    Hook,
}

const GIT_GATE_CONFIG: &str = bottle_tui::engine::prepare::in_bundle::GIT_GATE_CONFIG;

#[derive(Debug, Subcommand)]
enum GitGateAction {
    /// The gate's pre-receive hook: the branch policy, then the push forwarded upstream.
    PreReceive {
        #[arg(long, default_value = GIT_GATE_CONFIG)]
        config: PathBuf,
    },
    /// git daemon's access hook: SERVICE PATH HOST CANONICAL-HOST IP PORT.
    Access {
        #[arg(long, default_value = GIT_GATE_CONFIG)]
        config: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// git's credential helper for an https upstream: reads the token from IDENTITY.
    Credential {
        #[arg(long)]
        identity: PathBuf,
        /// get, store or erase (only get answers).
        op: String,
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
    /// Serve git upstreams through a gate that holds the keys (the daemon, or one of the
    /// hooks git runs for it).
    #[command(args_conflicts_with_subcommands = true)]
    GitGate {
        #[command(subcommand)]
        action: Option<GitGateAction>,
        /// The rendered git-gate config.
        #[arg(long, default_value = GIT_GATE_CONFIG)]
        config: PathBuf,
    },
    /// The MCP server agents ask humans through (streamable HTTP at /mcp).
    Supervise {
        /// The rendered supervise config.
        #[arg(
            long,
            env = "BOTTLE_SUPERVISE_CONFIG",
            default_value = "/etc/bottle/supervise.json"
        )]
        config: PathBuf,
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
    match cli.command {
        Command::Init => bottle_tui::sidecar::init::run(),
        Command::Gateway { config, listen } => gateway(&config, listen),
        Command::Health => bottle_tui::sidecar::init::health(),
        Command::GitGate { action, config } => git_gate(action, &config),
        Command::Supervise { config, listen } => daemon(
            "supervise",
            bottle_tui::sidecar::Threads::Workers(2),
            bottle_tui::sidecar::supervise::run(&config, listen),
        ),
        Command::Session {
            action:
                Some(SessionAction::Attach {
                    detach_key,
                    name,
                    lossless,
                    no_resize,
                }),
            ..
        } => bottle_tui::sidecar::session::attach::run(
            &bottle_tui::sidecar::session::attach::Options {
                detach_key,
                name,
                lossless,
                resize: !no_resize,
            },
        ),
        Command::Session {
            action: Some(SessionAction::Hook),
            ..
        } => bottle_tui::sidecar::session::hook::run(),
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
            bottle_tui::sidecar::session::holder::run(command)
        }
    }
}

fn gateway(config: &std::path::Path, listen: Option<std::net::SocketAddr>) -> ExitCode {
    daemon(
        "gateway",
        bottle_tui::sidecar::Threads::PerCore,
        bottle_tui::sidecar::gateway::run(config, listen),
    )
}

fn git_gate(action: Option<GitGateAction>, config: &std::path::Path) -> ExitCode {
    use bottle_tui::sidecar::git_gate::{self, hooks};
    match action {
        Some(GitGateAction::PreReceive { config }) => hooks::pre_receive(&config),
        Some(GitGateAction::Access { config, args }) => hooks::access(&config, &args),
        Some(GitGateAction::Credential { identity, op }) => hooks::credential(&identity, &op),
        None => daemon(
            "git-gate",
            bottle_tui::sidecar::Threads::Workers(2),
            git_gate::run(config),
        ),
    }
}

/// Runs a daemon on its runtime; its fatal error becomes its last JSON line.
fn daemon(
    name: &str,
    threads: bottle_tui::sidecar::Threads,
    run: impl std::future::Future<Output = color_eyre::eyre::Result<()>>,
) -> ExitCode {
    let Some(rt) = bottle_tui::sidecar::runtime(name, threads) else {
        return ExitCode::FAILURE;
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            bottle_tui::sidecar::log::event(
                name,
                "error",
                &format!("{name} stopped"),
                serde_json::json!({ "error": format!("{e:#}") }),
            );
            ExitCode::FAILURE
        }
    }
}
