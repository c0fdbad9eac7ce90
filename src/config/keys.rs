//! The dashboard's remappable actions and their default keys. One table drives dispatch, the
//! help overlay and the footer hints (see the dashboard); the config's `[keys]` overrides it.

pub struct Action {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const ACTIONS: &[Action] = &[
    Action {
        name: "detach",
        default: "ctrl-q",
        help: "leave the agent pane; the agent keeps running",
    },
    Action {
        name: "quit",
        default: "q",
        help: "quit the dashboard",
    },
    Action {
        name: "help",
        default: "?",
        help: "show every key",
    },
    Action {
        name: "attach",
        default: "enter",
        help: "open the selected agent's terminal",
    },
    Action {
        name: "zoom",
        default: "z",
        help: "agent pane full screen",
    },
    Action {
        name: "launch",
        default: "n",
        help: "launch a bottle from the config",
    },
    Action {
        name: "kill",
        default: "x",
        help: "kill the selected bottles",
    },
    Action {
        name: "approvals",
        default: "a",
        help: "answer pending approvals",
    },
    Action {
        name: "logs",
        default: "l",
        help: "live daemon logs",
    },
    Action {
        name: "aliases",
        default: "A",
        help: "loopback alias allocations",
    },
    Action {
        name: "inspect",
        default: "i",
        help: "plan, resources and env of the selection",
    },
    Action {
        name: "build",
        default: "b",
        help: "build what a launch needs (sidecar, bundle and agent images)",
    },
    Action {
        name: "filter",
        default: "/",
        help: "filter or search",
    },
];

pub fn action_names() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|a| a.name)
}
