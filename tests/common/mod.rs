//! Helpers shared by the integration tests: run the real binary in a scratch folder.
#![allow(dead_code)]

pub mod docker;
pub mod mcp;
pub mod pki;
pub mod session;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A scratch folder with the files configs in tests refer to: `prompt.md`, `id_web` (an
    /// identity file), `skills/review/`, `upstream/` (a folder for file:// upstreams), `file.txt`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::write(p.join("prompt.md"), "Be careful.\n").expect("write prompt");
        std::fs::write(p.join("id_web"), "not a real key\n").expect("write identity");
        std::fs::write(p.join("file.txt"), "x\n").expect("write file");
        std::fs::create_dir_all(p.join("skills/review")).expect("mkdir skills");
        std::fs::create_dir_all(p.join("upstream")).expect("mkdir upstream");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.path().join("bottle.toml");
        std::fs::write(&path, toml).expect("write config");
        path
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Runs `bottle-tui ARGS` with this folder as cwd and state dir, and no config env.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run bottle-tui")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bottle-tui"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("BOTTLE_TUI_CONFIG")
            .env("BOTTLE_TUI_STATE_DIR", self.state_dir())
            .env("XDG_CONFIG_HOME", self.path().join("xdg-config"))
            .env("HOME", self.path());
        c
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `check` until it returns `Some`, failing with `what` (and the last state `check`
/// left in `last`) after `within`. The one place new tests wait for a condition: no test
/// sleeps a fixed time for something it can ask about.
pub fn eventually<T>(
    what: &str,
    within: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(POLL);
    }
}

/// Checks that `broken` stays false for all of `window`, asking every [`POLL`]: for promises
/// that something does *not* happen, which no condition can announce. Fails at once when it
/// happens.
pub fn holds_for(what: &str, window: std::time::Duration, mut broken: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < window {
        assert!(!broken(), "{what}");
        std::thread::sleep(POLL);
    }
    assert!(!broken(), "{what}");
}

/// How often [`eventually`] and [`holds_for`] ask.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(50);
