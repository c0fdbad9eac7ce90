//! The command-line contract (DESIGN §12). Keep it stable; document changes in CHANGELOG.md.

use crate::sidecar::supervise::queue::RequestId;
use crate::types::Slug;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Run coding agents in bottles — sandboxes whose only way out is their own sidecars — and
/// drive them from a full-screen dashboard or from scripts.
///
/// With no command, opens the dashboard. Every command reads the same config: --config, else
/// $BOTTLE_TUI_CONFIG, else ./bottle.toml, else $XDG_CONFIG_HOME/bottle-tui/config.toml.
///
/// Exit codes: 0 success, 1 failure, 2 bad config or usage.
#[derive(Debug, Parser)]
#[command(name = "bottle-tui", version, max_term_width = 100)]
pub struct Cli {
    /// Config file to read.
    #[arg(long, global = true, env = "BOTTLE_TUI_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Where state lives: bottles' rendered configs, CA, queues, history, logs.
    /// [default: $XDG_STATE_HOME/bottle-tui]
    #[arg(long, global = true, env = "BOTTLE_TUI_STATE_DIR", value_name = "PATH")]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, locate or create the config file.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Show what launching BOTTLE would do, without starting anything.
    ///
    /// Renders the bottle's state dir (gateway config, CA, placeholders, pipelock.yaml,
    /// git-gate hooks, supervise queue) and prints the plan. Real tokens are not read.
    Plan {
        /// Bottle definition from the config ([bottles.NAME]).
        bottle: Slug,
        /// Slug of the instance [default: the bottle's name].
        #[arg(long, value_name = "SLUG")]
        name: Option<Slug>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Launch and provision bottles; prints each slug. All-or-nothing.
    Up {
        /// Bottle definitions to launch (several launch concurrently).
        #[arg(required = true)]
        bottles: Vec<Slug>,
        /// Slug for the instance (only with one bottle).
        #[arg(long, value_name = "SLUG")]
        name: Option<Slug>,
    },

    /// List running bottles (the engine is the source of truth).
    Ls {
        #[arg(long)]
        json: bool,
    },

    /// Show a bottle's plan, resources and environment (secrets redacted).
    Inspect {
        slug: Slug,
        #[arg(long)]
        json: bool,
    },

    /// Show a bottle's daemon logs.
    Logs {
        slug: Slug,
        /// Only this daemon: gateway, pipelock, git-gate, supervise, init.
        #[arg(long, value_name = "NAME")]
        daemon: Option<String>,
        /// Keep printing new lines.
        #[arg(long, short)]
        follow: bool,
    },

    /// Run a command in a bottle's agent and exit with its status.
    Exec {
        slug: Slug,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },

    /// Attach this terminal to a bottle's agent; the detach key leaves it running.
    ///
    /// The screen is repainted at once, input and window resizes go to the agent, and several
    /// terminals may attach to one agent. A finished agent's last screen is shown instead.
    /// Needs the `docker` CLI ($BOTTLE_TUI_DOCKER overrides it).
    Attach {
        slug: Slug,
        /// Detach key (ctrl-<key>); default: the config's `[keys] detach`, else ctrl-q.
        #[arg(long, value_name = "KEY")]
        detach_key: Option<crate::sidecar::session::DetachKey>,
    },

    /// Wait until a bottle's agent is in a status, then exit 0 (124 on --timeout).
    ///
    /// The status comes from the agent itself where it reports (Claude Code's hooks), else
    /// from its terminal. Returns at once if the agent is already there; exits 1 if the
    /// agent exits first. Chain agents: `bottle-tui wait a --for idle && bottle-tui up b`.
    Wait {
        /// The bottle's slug, as `ls` shows it.
        slug: Slug,
        /// needs-you, working, idle, starting or exited.
        #[arg(long = "for", value_name = "STATUS")]
        status: crate::wire::session::AgentStatus,
        /// Give up after this long ("90s", "10m", "1h"), with exit code 124.
        #[arg(long, value_name = "DURATION", value_parser = grace)]
        timeout: Option<std::time::Duration>,
        /// Print the status reached as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Remove every resource of the named bottles. Safe to repeat.
    ///
    /// The agent is asked to stop first (SIGTERM, passed on by its session) and given
    /// --grace to do so; then everything goes. Anything the agent has not written to its
    /// workspace or pushed through the git gate is lost.
    Kill {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        slugs: Vec<Slug>,
        /// Kill every bottle.
        #[arg(long)]
        all: bool,
        /// How long the agent may take to stop by itself: "10s", "1m", or 0 to kill at once.
        #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = grace)]
        grace: std::time::Duration,
    },

    /// List the requests agents wait on (supervise's `request_approval`), oldest first.
    ///
    /// Answer them with `approve` / `deny`; unanswered ones are denied when the bottle's
    /// [supervise] timeout runs out.
    Queue {
        /// Print a JSON array of {slug, id, action, details, created, expires_ms}.
        #[arg(long)]
        json: bool,
    },

    /// Approve an agent's request: its `request_approval` call returns `approved`.
    Approve {
        slug: Slug,
        /// The request id `bottle-tui queue` shows.
        id: RequestId,
        /// Told to the agent with the answer.
        #[arg(long)]
        reason: Option<String>,
    },

    /// Deny an agent's request: its `request_approval` call returns `denied: REASON`.
    Deny {
        slug: Slug,
        /// The request id `bottle-tui queue` shows.
        id: RequestId,
        /// Told to the agent.
        #[arg(long)]
        reason: Option<String>,
    },

    /// The approvals audit trail: every answered request, newest first (who asked what, who
    /// answered, when, how — timeouts included).
    Audit {
        /// Only this bottle.
        slug: Option<Slug>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },

    /// What happened to bottles, newest first: launches, kills, blocked requests, approvals
    /// asked and answered, pushes, daemon exits and the agents' status changes — also while
    /// no bottle-tui ran (each bundle keeps them in its state dir; they are read in first).
    /// History, not truth: `ls` says what runs.
    History {
        /// Only this bottle.
        slug: Option<Slug>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only what happened this recently: "30m", "1h", "2d".
        #[arg(long, value_name = "DURATION", value_parser = since)]
        since: Option<std::time::Duration>,
        /// Print a JSON array of {id, time, slug, kind, detail}.
        #[arg(long)]
        json: bool,
    },

    /// Show what agents told you (supervise's `notify`) and you have not read yet, newest
    /// first.
    ///
    /// Each bottle keeps at most 1000 unread notices; `--mark-read` files the ones shown as
    /// read, which frees the agent to send more.
    Notices {
        /// Only this bottle.
        slug: Option<Slug>,
        /// Mark every notice shown as read.
        #[arg(long)]
        mark_read: bool,
        /// Print a JSON array of {slug, id, message, created}.
        #[arg(long)]
        json: bool,
    },

    /// Build the images bottles run from.
    #[command(subcommand)]
    Image(ImageCommand),

    /// Check this machine: engine, API version, DNS leaks from internal networks, state dir,
    /// images.
    Doctor {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config; exit 0, or 2 with `PATH:LINE:COL: key: message` lines on stderr.
    Check {
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print which config file would be used and where it was looked for.
    Path,
    /// Write a commented example config to PATH [default: the user config path].
    Init {
        path: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build images through the Docker API (bundle and agent when none is named).
    Build(ImageBuild),
}

#[derive(Debug, Args)]
#[command(
    after_help = "With no image named, builds the bundle and agent images. The agent image's \
Claude Code is fetched on this host from the npm registry ($npm_config_registry, default \
https://registry.npmjs.org/), checked against the registry's sha512 and cached under \
~/.cache/bottle-tui/claude-code, so the build container needs no network beyond Debian's mirror. \
A missing static bottle-sidecar is built first with cargo."
)]
pub struct ImageBuild {
    /// The bundle image (the sidecar daemons).
    #[arg(long)]
    pub bundle: bool,
    /// The agent image: Claude Code's native executable on Debian.
    #[arg(long)]
    pub agent: bool,
    /// The test-agent image the integration tests launch (no Claude Code).
    #[arg(long)]
    pub test_agent: bool,
    /// The Claude Code version to put in the agent image (default: the pinned one; also
    /// $BOTTLE_TUI_CLAUDE_VERSION).
    #[arg(long, value_name = "VERSION")]
    pub claude_version: Option<String>,
    /// Use this Claude Code instead of fetching it: npm's package (`npm pack
    /// @anthropic-ai/claude-code-linux-x64@VERSION`) or the `claude` executable.
    #[arg(long, value_name = "FILE", conflicts_with = "claude_version")]
    pub claude_code: Option<std::path::PathBuf>,
}

/// `--grace`: a duration, or 0 for none.
fn since(s: &str) -> Result<std::time::Duration, String> {
    // Days too: a history is looked at over days.
    if let Some(days) = s
        .trim()
        .strip_suffix('d')
        .and_then(|d| d.parse::<u64>().ok())
    {
        return Ok(std::time::Duration::from_secs(days * 86_400));
    }
    crate::types::Timeout::parse(s).map(|t| std::time::Duration::from_secs(t.seconds))
}

fn grace(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" || s.trim() == "0s" {
        return Ok(std::time::Duration::ZERO);
    }
    crate::types::Timeout::parse(s).map(|t| std::time::Duration::from_secs(t.seconds))
}
