//! Typed messages into the UI loop, and the commands the loop hands to the engine worker.

use crate::engine::approvals::{Pending, Unread};
use crate::engine::attach::AttachCommand;
use crate::engine::reconcile::BottleStatus;
use crate::sidecar::supervise::queue::{Decision, RequestId};
use crate::types::Slug;
use crate::wire::log::LogLine;

/// Everything that can change what the dashboard shows.
#[derive(Debug)]
pub enum Msg {
    /// A fresh read of every bottle from the engine.
    Bottles(Vec<BottleStatus>),
    /// The engine cannot be reached (the worker keeps trying).
    EngineDown(String),
    /// A bundle's log line (raw text as the daemon printed it).
    Log {
        slug: Slug,
        line: Box<LogLine>,
    },
    /// What an agent is doing; `news` for a change seen live (not the state found at start).
    Activity {
        slug: Slug,
        activity: crate::wire::session::Activity,
        news: bool,
    },
    /// A sample of the charted bottle's CPU and memory.
    Usage {
        slug: Slug,
        usage: crate::backend::docker::stats::Usage,
    },
    LaunchStep {
        slug: Slug,
        step: String,
    },
    LaunchDone {
        slug: Slug,
        error: Option<String>,
    },
    KillDone {
        slug: Slug,
        error: Option<String>,
    },
    /// How to reach an agent's session, for the pane or the preview.
    Attach {
        slug: Slug,
        preview: bool,
        target: Result<AttachCommand, String>,
    },
    /// What a bottle's plan says, as label/value lines for the detail panel.
    Plan {
        slug: Slug,
        lines: Vec<(String, String)>,
    },
    /// A bottle's recent history (time, one line), newest first.
    History {
        slug: Slug,
        lines: Vec<(String, String)>,
    },
    /// The requests agents wait on, oldest first (sent when the queue folders change).
    Approvals(Vec<Pending>),
    /// The notices agents filed and nobody read yet, newest first (sent when they change).
    Notices(Vec<Unread>),
    /// How marking notices read went: how many, or why it failed.
    MarkedRead(Result<usize, String>),
    /// The approvals queues cannot be read (why), or can again (None): the badge may be stale.
    QueueTrouble(Option<String>),
    /// Request files in the queues that cannot be read (corrupt, or from a newer version).
    UnreadableRequests(Vec<String>),
    /// What a launch needs and this machine lacks (descriptions; empty when ready).
    Setup(Vec<String>),
    /// A progress line of building what was missing.
    SetupLine(String),
    /// Building what was missing ended: None on success, else why it failed.
    SetupDone(Option<String>),
    /// How answering a request went: the answer's summary, or why it failed.
    Answered {
        slug: Slug,
        id: RequestId,
        result: Result<String, String>,
    },
}

/// Work for the engine worker; each runs in a task and answers with `Msg`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Refresh,
    Launch {
        bottle: Slug,
        name: Option<Slug>,
    },
    Kill(Vec<Slug>),
    /// Chart this bottle's CPU and memory (one stats stream, replacing the last), or none.
    Usage(Option<Slug>),
    /// Read a bottle's plan from its state dir.
    Plan(Slug),
    /// Read a bottle's recent history from the store.
    History(Slug),
    Attach {
        slug: Slug,
        preview: bool,
    },
    /// Approve or deny an agent's request.
    Answer {
        slug: Slug,
        id: RequestId,
        decision: Decision,
        reason: Option<String>,
    },
    /// Mark these notices read.
    MarkRead(Vec<(Slug, RequestId)>),
    /// Look again for what a launch needs (answers with `Msg::Setup`).
    CheckSetup,
    /// Build what a launch needs and this machine lacks.
    BuildSetup,
}

/// What a key or a message asks for beyond changing the dashboard's state. `App` does no I/O:
/// it returns these, the UI loop performs them and tells `App` how they went where that
/// matters (`App::pane_opened`, `App::saved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Work for the engine worker.
    Engine(Command),
    /// A key for the attached agent's terminal.
    PaneKey(crossterm::event::KeyEvent),
    /// Write a log view to `path`.
    Save {
        path: std::path::PathBuf,
        text: String,
    },
    /// Start `command` in the agent pane (or the selected row's preview).
    OpenPane {
        slug: Slug,
        preview: bool,
        zoomed: bool,
        command: AttachCommand,
    },
}

/// Engine commands as effects.
pub fn engine(commands: Vec<Command>) -> Vec<Effect> {
    commands.into_iter().map(Effect::Engine).collect()
}
