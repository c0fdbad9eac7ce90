//! The `bottle-tui` command line: parse once, dispatch, map outcomes to exit codes.

pub mod args;
mod attach_cmd;
mod bottles_cmd;
mod config_cmd;
mod doctor_cmd;
mod escape;
mod image_cmd;
mod plan_cmd;
mod queue_cmd;
mod wait_cmd;

use crate::config::{self, Config, ConfigErrors};
use crate::sidecar::supervise::queue::Decision;
use crate::state::StateRoot;
use args::{Cli, Command, ImageCommand};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit codes of the CLI contract.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const BAD_CONFIG: u8 = 2;
}

/// A command's outcome when it does not simply succeed.
#[derive(Debug)]
pub enum Failure {
    /// Config problems, printed one per line.
    Config(ConfigErrors),
    /// A usage problem worth exit code 2 (no config found, unknown bottle, ...).
    Usage(String),
    /// Already reported on stdout/stderr; just exit with this code.
    Silent(u8),
    Other(color_eyre::Report),
}

impl From<color_eyre::Report> for Failure {
    fn from(e: color_eyre::Report) -> Self {
        Self::Other(e)
    }
}

pub type Outcome = Result<(), Failure>;

pub fn main(cli: Cli) -> ExitCode {
    let root = StateRoot::new(cli.state_dir.clone());
    let _log = crate::logging::init(&root.log_dir());
    tracing::info!(command = ?cli.command.as_ref().map(command_name), "start");
    match run(cli, &root) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure::Config(errors)) => {
            eprintln!("{errors}");
            ExitCode::from(exit::BAD_CONFIG)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(exit::BAD_CONFIG)
        }
        Err(Failure::Silent(code)) => ExitCode::from(code),
        Err(Failure::Other(report)) => {
            tracing::error!(error = %format!("{report:#}"), "failed");
            eprintln!("Error: {report:?}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Config(_) => "config",
        Command::Plan { .. } => "plan",
        Command::Up { .. } => "up",
        Command::Ls { .. } => "ls",
        Command::Inspect { .. } => "inspect",
        Command::Logs { .. } => "logs",
        Command::Exec { .. } => "exec",
        Command::Attach { .. } => "attach",
        Command::Kill { .. } => "kill",
        Command::Wait { .. } => "wait",
        Command::Queue { .. } => "queue",
        Command::Approve { .. } => "approve",
        Command::Deny { .. } => "deny",
        Command::Audit { .. } => "audit",
        Command::Notices { .. } => "notices",
        Command::History { .. } => "history",
        Command::Image(_) => "image build",
        Command::Doctor { .. } => "doctor",
    }
}

fn run(cli: Cli, root: &StateRoot) -> Outcome {
    let Some(command) = cli.command else {
        let (config, banner) = load_or_default(cli.config)?;
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(
                "the dashboard needs a terminal; for scripts use `bottle-tui ls --json` and the other commands".into(),
            ));
        }
        return crate::tui::run::run(config, banner, root.clone()).map_err(Failure::Other);
    };
    match command {
        Command::Config(c) => config_cmd::run(c, cli.config),
        Command::Plan { bottle, name, json } => {
            let config = load_or_default_noting(cli.config)?;
            plan_cmd::run(&config, root, &bottle, name, json)
        }
        Command::Doctor { json } => doctor_cmd::run(root, json),
        Command::Up { bottles, name } => {
            let config = load_or_default_noting(cli.config)?;
            bottles_cmd::up_cmd(&config, root, bottles, name)
        }
        Command::Ls { json } => bottles_cmd::ls_cmd(json),
        Command::Inspect { slug, json } => bottles_cmd::inspect_cmd(root, &slug, json),
        Command::Logs {
            slug,
            daemon,
            follow,
        } => bottles_cmd::logs_cmd(&slug, daemon, follow),
        Command::Exec { slug, command } => bottles_cmd::exec_cmd(root, &slug, command),
        Command::Kill { slugs, all, grace } => bottles_cmd::kill_cmd(root, slugs, all, grace),
        Command::Wait {
            slug,
            status,
            timeout,
            json,
        } => wait_cmd::wait_cmd(&slug, status, timeout, json),
        Command::Attach { slug, detach_key } => attach_cmd::run(&slug, detach_key, cli.config),
        Command::Queue { json } => queue_cmd::queue_cmd(root, json),
        Command::Approve { slug, id, reason } => {
            queue_cmd::answer_cmd(root, &slug, &id, Decision::Approved, reason)
        }
        Command::Deny { slug, id, reason } => {
            queue_cmd::answer_cmd(root, &slug, &id, Decision::Denied, reason)
        }
        Command::Audit { slug, limit, json } => {
            queue_cmd::audit_cmd(root, slug.as_ref(), limit, json)
        }
        Command::History {
            slug,
            limit,
            since,
            json,
        } => bottles_cmd::history_cmd(root, slug.as_ref(), limit, since, json),
        Command::Notices {
            slug,
            mark_read,
            json,
        } => queue_cmd::notices_cmd(root, slug.as_ref(), mark_read, json),
        Command::Image(ImageCommand::Build(args)) => image_cmd::build(args),
    }
}

/// The config file if there is one, else (unless one was named) the built-in default with a
/// line saying so.
pub fn load_or_default(
    explicit: Option<std::path::PathBuf>,
) -> Result<(Config, Option<String>), Failure> {
    let location = config::locate(explicit.clone());
    if location.path.is_none() && !location.explicit {
        let credential = config::builtin::Credential::from_env();
        let config = config::builtin::config(credential).map_err(Failure::Config)?;
        return Ok((config, Some(config::builtin::banner(credential))));
    }
    Ok((load_config(explicit)?, None))
}

/// [`load_or_default`], saying on stderr when the default is used.
fn load_or_default_noting(explicit: Option<std::path::PathBuf>) -> Result<Config, Failure> {
    let (config, banner) = load_or_default(explicit)?;
    if let Some(b) = banner {
        eprintln!("note: {b}");
    }
    Ok(config)
}

/// Finds and validates the config, or explains where it was looked for.
pub fn load_config(explicit: Option<std::path::PathBuf>) -> Result<Config, Failure> {
    let location = config::locate(explicit);
    let Some(path) = location.path else {
        let searched: Vec<String> = location
            .searched
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect();
        return Err(Failure::Usage(format!(
            "no config file found; looked for:\n{}\nCreate one with `bottle-tui config init` (or pass --config PATH).",
            searched.join("\n")
        )));
    };
    config::load(&path).map_err(Failure::Config)
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Outcome {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Other(color_eyre::eyre::eyre!("cannot encode JSON: {e}")))?;
    println!("{}", escape::json(&text));
    Ok(())
}
