//! Where bottle-tui keeps its own files: `$XDG_STATE_HOME/bottle-tui/` unless `--state-dir` /
//! `BOTTLE_TUI_STATE_DIR` says otherwise.

use crate::types::Slug;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct StateRoot(PathBuf);

impl StateRoot {
    pub fn new(explicit: Option<PathBuf>) -> Self {
        Self(explicit.unwrap_or_else(default_root))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The bottle's state dir: rendered configs, CA, queue — what the bundle mounts.
    pub fn bottle_dir(&self, slug: &Slug) -> PathBuf {
        self.0.join("bottles").join(slug.as_str())
    }

    pub fn db_path(&self) -> PathBuf {
        self.0.join("state.db")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.0.join("logs")
    }
}

fn default_root() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from(".local/state"));
    base.join("bottle-tui")
}
