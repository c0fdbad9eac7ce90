//! What the benchmarks share: running `bottle-tui` in a folder of their own.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_bottle-tui");

/// `bottle-tui ARGS` with `dir` as its folder and state dir root; panics with its stderr on
/// failure.
pub fn bottle_tui(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("BOTTLE_TUI_STATE_DIR", dir.join("state"))
        .output()
        .expect("bottle-tui");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
