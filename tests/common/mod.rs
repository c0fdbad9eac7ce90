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
