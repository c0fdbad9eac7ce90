//! The bundle's daemons by name: what init runs (`BOTTLE_DAEMONS`), what its health map and
//! log lines name, and what the dashboard's log filter steps through.

use serde::{Deserialize, Serialize};

/// A daemon the bundle's init runs as `bottle-sidecar <name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Daemon {
    Gateway,
    GitGate,
    Supervise,
}

impl Daemon {
    pub const ALL: [Self; 3] = [Self::Gateway, Self::GitGate, Self::Supervise];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::GitGate => "git-gate",
            Self::Supervise => "supervise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The short label of the dashboard's health column (distinct for every daemon).
    pub fn short(self) -> &'static str {
        match self {
            Self::Gateway => "gw",
            Self::GitGate => "git",
            Self::Supervise => "sup",
        }
    }

    /// `BOTTLE_DAEMONS` / the bundle's label: names joined by commas.
    pub fn join(daemons: &[Self]) -> String {
        daemons
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The names in a `BOTTLE_DAEMONS` list this build knows, in order; others are dropped.
    pub fn split(list: &str) -> Vec<Self> {
        list.split(',')
            .filter_map(|s| Self::parse(s.trim()))
            .collect()
    }
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Who wrote a bundle log line: one of init's daemons, init itself, or pipelock (in its own
/// container). The log view's daemon filter steps through [`LogSource::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    Daemon(Daemon),
    Init,
    Pipelock,
}

impl LogSource {
    pub const ALL: [Self; 5] = [
        Self::Daemon(Daemon::Gateway),
        Self::Pipelock,
        Self::Daemon(Daemon::GitGate),
        Self::Daemon(Daemon::Supervise),
        Self::Init,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daemon(d) => d.as_str(),
            Self::Init => "init",
            Self::Pipelock => "pipelock",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The filter after `current` (`None` = every source), `None` after the last.
    pub fn next(current: Option<Self>) -> Option<Self> {
        match current {
            None => Some(Self::ALL[0]),
            Some(c) => Self::ALL
                .iter()
                .position(|x| *x == c)
                .and_then(|i| Self::ALL.get(i + 1))
                .copied(),
        }
    }
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_short_labels_differ() {
        for d in Daemon::ALL {
            assert_eq!(Daemon::parse(d.as_str()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).ok(),
                Some(format!("\"{}\"", d.as_str()))
            );
        }
        let shorts: std::collections::BTreeSet<_> = Daemon::ALL.iter().map(|d| d.short()).collect();
        assert_eq!(shorts.len(), Daemon::ALL.len());
        assert_eq!(
            Daemon::split("gateway, git-gate,nope,supervise"),
            Daemon::ALL.to_vec()
        );
        assert_eq!(Daemon::join(&Daemon::ALL), "gateway,git-gate,supervise");
    }

    #[test]
    fn the_log_filter_steps_through_every_source_then_all() {
        let mut seen = Vec::new();
        let mut at = LogSource::next(None);
        while let Some(s) = at {
            assert_eq!(LogSource::parse(s.as_str()), Some(s));
            seen.push(s);
            at = LogSource::next(at);
        }
        assert_eq!(seen, LogSource::ALL.to_vec());
    }
}
