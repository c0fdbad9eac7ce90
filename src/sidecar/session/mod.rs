//! The agent's session: `bottle-sidecar session` holds the agent in a PTY it owns (PID 1 of the
//! agent container) and serves attach on a unix socket; `bottle-sidecar session attach` is the
//! terminal client run through `docker exec -it`. An agent therefore outlives every viewer.

pub mod attach;
mod flow;
pub mod holder;
pub mod hook;
mod model;
pub mod probe;
pub mod protocol;
pub mod screen;
mod status;

use std::path::{Path, PathBuf};

/// Overrides the session folder (tests and benchmarks run the holder outside a container).
pub const DIR_ENV: &str = "BOTTLE_SESSION_DIR";
/// Where the sidecar lives in the agent container; provision writes its marker here.
pub const DEFAULT_DIR: &str = "/.bottle";
/// Written by provision when the agent may start.
pub const READY_MARKER: &str = "provisioned";
/// Agent-owned, 0700, made by provision: the socket and the session's records.
pub const RUN_DIR: &str = "run";
/// The default detach key, the same as the dashboard pane's (`[keys] detach`).
pub const DEFAULT_DETACH_KEY: &str = "ctrl-q";

/// The session's files, all under one folder.
#[derive(Debug, Clone)]
pub struct Paths {
    dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        Self::new(std::env::var_os(DIR_ENV).map_or_else(|| DEFAULT_DIR.into(), PathBuf::from))
    }

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ready_marker(&self) -> PathBuf {
        self.dir.join(READY_MARKER)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.join(RUN_DIR)
    }

    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("session.sock")
    }

    /// `SessionRecord` as JSON, rewritten atomically on every change of state.
    pub fn record(&self) -> PathBuf {
        self.run_dir().join("session.json")
    }

    /// The agent's last screen as terminal bytes, written when it exits.
    pub fn last_screen(&self) -> PathBuf {
        self.run_dir().join("last-screen")
    }
}

pub use crate::wire::session::{SessionRecord, SessionState};

/// A single-byte detach key: `ctrl-]`, `ctrl-a` … `ctrl-z`, `ctrl-\`, `ctrl-^`, `ctrl-_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachKey {
    byte: u8,
}

impl DetachKey {
    /// ctrl-q, as `DEFAULT_DETACH_KEY` says.
    pub const DEFAULT: Self = Self { byte: 17 };

    pub fn byte(self) -> u8 {
        self.byte
    }
}

impl std::str::FromStr for DetachKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let key = lower
            .strip_prefix("ctrl-")
            .or_else(|| lower.strip_prefix("ctrl+"))
            .or_else(|| lower.strip_prefix("c-"))
            .ok_or_else(|| {
                format!("detach key {s:?}: expected ctrl-<key>, e.g. ctrl-] or ctrl-q")
            })?;
        let byte = match key.as_bytes() {
            [c @ b'a'..=b'z'] => c - b'a' + 1,
            [b'@'] => 0,
            [b'['] => {
                return Err(format!(
                    "detach key {s:?}: ctrl-[ is Escape, which every program needs"
                ));
            }
            [b'\\'] => 0x1c,
            [b']'] => 0x1d,
            [b'^'] => 0x1e,
            [b'_'] => 0x1f,
            _ => {
                return Err(format!(
                    "detach key {s:?}: expected ctrl- and one of a-z, @, \\, ], ^, _"
                ));
            }
        };
        Ok(Self { byte })
    }
}

impl std::fmt::Display for DetachKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = match self.byte {
            0 => '@',
            b @ 1..=26 => char::from(b'a' + b - 1),
            0x1c => '\\',
            0x1d => ']',
            0x1e => '^',
            _ => '_',
        };
        write!(f, "ctrl-{c}")
    }
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_and_print_back() {
        for (text, byte) in [
            ("ctrl-]", 0x1d),
            ("CTRL-Q", 17),
            ("c-a", 1),
            ("ctrl+_", 0x1f),
        ] {
            let k: DetachKey = text.parse().unwrap();
            assert_eq!(k.byte(), byte, "{text}");
            assert_eq!(k.to_string().parse::<DetachKey>().unwrap(), k);
        }
        assert!(
            "q".parse::<DetachKey>()
                .unwrap_err()
                .contains("expected ctrl-")
        );
        assert!(
            "ctrl-["
                .parse::<DetachKey>()
                .unwrap_err()
                .contains("Escape")
        );
        assert!(
            "ctrl-1"
                .parse::<DetachKey>()
                .unwrap_err()
                .contains("one of")
        );
    }
}
