//! Every key the dashboard answers to, in one table: the action, where it works, its default
//! keys and its help. Dispatch, the help overlay, the footer hints and the config's `[keys]`
//! check all read this table, so a key cannot work without being listed, and a remap that
//! collides with another key of the same view is refused.

/// What a key does. Handlers match on this, never on the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Detach,
    Quit,
    QuitNow,
    Help,
    Attach,
    Zoom,
    Launch,
    Kill,
    Approvals,
    Logs,
    Aliases,
    Inspect,
    Build,
    Filter,
    Down,
    Up,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Mark,
    Sort,
    Back,
    Follow,
    DenyOnly,
    Daemon,
    Merged,
    Save,
    Approve,
    ApproveNote,
    Deny,
    Read,
}

/// Where a key works. Keys of one context must differ; different contexts may share a key
/// (`s` sorts the table and saves the logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// The bottle table (and the dialogs opened from it that take no text).
    Table,
    Logs,
    Approvals,
    /// The agent's pane: every other key goes to the agent.
    Pane,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Self::Table => "bottles",
            Self::Logs => "logs",
            Self::Approvals => "approvals",
            Self::Pane => "agent pane",
        }
    }

    pub const ALL: [Context; 4] = [Self::Table, Self::Logs, Self::Approvals, Self::Pane];
}

pub struct Row {
    pub action: Action,
    /// The name in the config's `[keys]`.
    pub name: &'static str,
    /// The default keys; a remap replaces all of them with one.
    pub keys: &'static [&'static str],
    pub contexts: &'static [Context],
    pub help: &'static str,
}

use Context::{Approvals as A, Logs as L, Pane as P, Table as T};

const fn row(
    action: Action,
    name: &'static str,
    keys: &'static [&'static str],
    contexts: &'static [Context],
    help: &'static str,
) -> Row {
    Row {
        action,
        name,
        keys,
        contexts,
        help,
    }
}

pub const ROWS: &[Row] = &[
    row(
        Action::Detach,
        "detach",
        &["ctrl-q"],
        &[P],
        "leave the agent pane; the agent keeps running",
    ),
    row(
        Action::Quit,
        "quit",
        &["q"],
        &[T, L, A],
        "quit the dashboard (in a view: close it)",
    ),
    row(
        Action::QuitNow,
        "quit-now",
        &["ctrl-c"],
        &[T, L, A],
        "quit the dashboard from anywhere",
    ),
    row(Action::Help, "help", &["?"], &[T], "show every key"),
    row(
        Action::Attach,
        "attach",
        &["enter"],
        &[T],
        "open the selected agent's terminal",
    ),
    row(Action::Zoom, "zoom", &["z"], &[T], "agent pane full screen"),
    row(
        Action::Launch,
        "launch",
        &["n"],
        &[T],
        "launch a bottle from the config",
    ),
    row(
        Action::Kill,
        "kill",
        &["x"],
        &[T],
        "kill the selected (or marked) bottles",
    ),
    row(
        Action::Approvals,
        "approvals",
        &["a"],
        &[T, A],
        "answer pending approvals (again: close)",
    ),
    row(
        Action::Logs,
        "logs",
        &["l"],
        &[T, L],
        "live daemon logs (again: close)",
    ),
    row(
        Action::Aliases,
        "aliases",
        &["A"],
        &[T],
        "loopback alias allocations",
    ),
    row(
        Action::Inspect,
        "inspect",
        &["i"],
        &[T],
        "plan, resources and env of the selection",
    ),
    row(
        Action::Build,
        "build",
        &["b"],
        &[T],
        "build what a launch needs (sidecar, bundle and agent images)",
    ),
    row(
        Action::Filter,
        "filter",
        &["/"],
        &[T, L],
        "filter the bottles; search the logs",
    ),
    row(
        Action::Down,
        "down",
        &["down", "j"],
        &[T, L, A],
        "move down (logs: toward the newest)",
    ),
    row(
        Action::Up,
        "up",
        &["up", "k"],
        &[T, L, A],
        "move up (logs: back in time)",
    ),
    row(Action::Top, "top", &["home", "g"], &[T], "first bottle"),
    row(Action::Bottom, "bottom", &["end", "G"], &[T], "last bottle"),
    row(
        Action::PageUp,
        "page-up",
        &["pageup"],
        &[L],
        "20 lines back",
    ),
    row(
        Action::PageDown,
        "page-down",
        &["pagedown"],
        &[L],
        "20 lines forward",
    ),
    row(Action::Mark, "mark", &["space"], &[T], "mark for kill"),
    row(Action::Sort, "sort", &["s"], &[T], "cycle the sort"),
    row(
        Action::Back,
        "back",
        &["esc"],
        &[T, L, A],
        "clear marks and messages; close a view",
    ),
    row(
        Action::Follow,
        "follow",
        &["f"],
        &[L],
        "follow the newest lines",
    ),
    row(
        Action::DenyOnly,
        "deny-only",
        &["d"],
        &[L],
        "denied requests only",
    ),
    row(Action::Daemon, "daemon", &["tab"], &[L], "next daemon"),
    row(
        Action::Merged,
        "merged",
        &["m"],
        &[L],
        "every bottle's lines merged",
    ),
    row(
        Action::Save,
        "save",
        &["s"],
        &[L],
        "save what is shown under the state dir",
    ),
    row(
        Action::Approve,
        "approve",
        &["y"],
        &[A],
        "approve the selected request",
    ),
    row(
        Action::ApproveNote,
        "approve-note",
        &["Y"],
        &[A],
        "approve with a note the agent reads",
    ),
    row(
        Action::Deny,
        "deny",
        &["n", "d"],
        &[A],
        "deny, with a reason",
    ),
    row(
        Action::Read,
        "read",
        &["r"],
        &[A],
        "mark the notices shown read",
    ),
];

pub fn action_names() -> impl Iterator<Item = &'static str> {
    ROWS.iter().map(|r| r.name)
}

pub fn row_of(action: Action) -> &'static Row {
    ROWS.iter()
        .find(|r| r.action == action)
        .unwrap_or_else(|| unreachable!("every action has a row"))
}

pub fn row_named(name: &str) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.name == name)
}
