//! What a bottle and its agent are doing, as the engine (or the agent's session holder) says:
//! read once by `reconcile`, shown by `ls` and the dashboard, compared as values.

use serde::Serialize;

/// A bottle as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BottleState {
    /// A part is missing or stopped.
    #[default]
    Broken,
    /// Made but not started.
    Created,
    /// The agent finished; the bundle still runs.
    Exited,
    /// Bundle and agent up.
    Running,
}

impl BottleState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::Created => "created",
            Self::Exited => "exited",
            Self::Running => "running",
        }
    }
}

/// The agent: its container's state on Docker, its holder's record on a smolvm machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Its holder has written nothing yet (launch is still provisioning).
    Starting,
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// No agent container.
    Missing,
    /// smolvm could not ask the machine (stopped, removed, or smolvm missing).
    Unreachable,
    /// The machine was not asked: its bundle is not running.
    NotAsked,
    /// A state this build does not know.
    #[default]
    Unknown,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Missing => "missing",
            Self::Unreachable => "unreachable",
            Self::NotAsked => "not-asked",
            Self::Unknown => "unknown",
        }
    }

    /// Finished: exited, or dead (the engine could not stop it cleanly).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Exited | Self::Dead)
    }
}

/// A container's state as the engine reports it (`docker inspect`'s `State.Status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    #[default]
    Unknown,
}

impl ContainerState {
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        AgentState::from(self).as_str()
    }
}

impl From<ContainerState> for AgentState {
    fn from(s: ContainerState) -> Self {
        match s {
            ContainerState::Created => Self::Created,
            ContainerState::Running => Self::Running,
            ContainerState::Paused => Self::Paused,
            ContainerState::Restarting => Self::Restarting,
            ContainerState::Removing => Self::Removing,
            ContainerState::Exited => Self::Exited,
            ContainerState::Dead => Self::Dead,
            ContainerState::Unknown => Self::Unknown,
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}
display_as_str!(BottleState, AgentState, ContainerState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_print_as_they_serialize() {
        for s in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            let c = ContainerState::parse(s);
            assert_eq!(c.as_str(), s);
            assert_eq!(serde_json::to_value(c).ok(), Some(serde_json::json!(s)));
            assert_eq!(
                serde_json::to_value(AgentState::from(c)).ok(),
                Some(serde_json::json!(s))
            );
        }
        assert_eq!(ContainerState::parse("what"), ContainerState::Unknown);
        assert_eq!(
            serde_json::to_value(AgentState::NotAsked).ok(),
            Some(serde_json::json!(AgentState::NotAsked.as_str()))
        );
        for b in [
            BottleState::Broken,
            BottleState::Created,
            BottleState::Exited,
            BottleState::Running,
        ] {
            assert_eq!(
                serde_json::to_value(b).ok(),
                Some(serde_json::json!(b.as_str()))
            );
        }
    }
}
