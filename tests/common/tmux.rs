//! A private tmux server (its own socket) for end-to-end tests of terminal programs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

/// The host shell's prompt inside tmux, distinct from the agent's `$ `.
pub const HOST_PROMPT: &str = "host>";

impl Tmux {
    /// A detached session running `sh` in `cwd` with `env`, `cols`×`rows`.
    pub fn start(name: &str, cwd: &Path, env: &[(&str, String)], cols: u16, rows: u16) -> Self {
        let t = Self {
            socket: format!("bottle-test-{name}-{}", std::process::id()),
        };
        let mut args: Vec<String> = vec![
            "-f".into(),
            "/dev/null".into(),
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            "main".into(),
            "-x".into(),
            cols.to_string(),
            "-y".into(),
            rows.to_string(),
            "-c".into(),
            cwd.display().to_string(),
        ];
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        for (k, v) in vars {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push("sh".into());
        t.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        // dash gives root `# ` whatever the environment says; set the prompt by hand.
        t.line(&format!("PS1='{HOST_PROMPT} '"));
        t.wait_for(HOST_PROMPT, Duration::from_secs(10));
        t
    }

    /// A 160×48 session whose shell runs `bottle-tui` as the scratch folder's tests do (its
    /// state dir, home and config lookup), plus `extra` environment.
    pub fn for_scratch(scratch: &super::Scratch, name: &str, extra: &[(&str, String)]) -> Self {
        let mut env = vec![
            (
                "BOTTLE_TUI_STATE_DIR",
                scratch.state_dir().display().to_string(),
            ),
            ("HOME", scratch.path().display().to_string()),
            (
                "XDG_CONFIG_HOME",
                scratch.path().join("xdg-config").display().to_string(),
            ),
        ];
        env.extend(extra.iter().cloned());
        Self::start(name, scratch.path(), &env, 160, 48)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, then Enter.
    pub fn line(&self, text: &str) {
        self.ok(&["send-keys", "-t", "main", "-l", text]);
        self.ok(&["send-keys", "-t", "main", "Enter"]);
    }

    /// Types `text` literally, without Enter.
    pub fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", "main", "-l", text]);
    }

    /// The pid of the pane's shell.
    pub fn shell_pid(&self) -> u32 {
        self.ok(&["list-panes", "-t", "main", "-F", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }

    /// tmux key names: `C-q`, `Enter`, `Escape` …
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.ok(&args);
        if keys.last() == Some(&"Escape") {
            // An escape read together with the next key is alt+key: keep them apart.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Appends everything the pane's program writes from now on, raw, to `file`.
    pub fn pipe_output_to(&self, file: &Path) {
        self.ok(&[
            "pipe-pane",
            "-t",
            "main",
            "-o",
            &format!("cat >> '{}'", file.display()),
        ]);
    }

    pub fn capture(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "main"])
    }

    /// The screen with its colours as SGR escape sequences (`capture-pane -e`).
    pub fn capture_with_colours(&self) -> String {
        self.ok(&["capture-pane", "-p", "-e", "-t", "main"])
    }

    pub fn clear(&self) {
        self.line("clear");
        self.wait_for(HOST_PROMPT, Duration::from_secs(10));
        self.ok(&["clear-history", "-t", "main"]);
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        self.ok(&[
            "resize-window",
            "-t",
            "main",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// Whether the pane shows `needle` within `within`.
    pub fn shows_within(&self, needle: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.capture().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Waits until `needle` is no longer on the visible pane.
    pub fn wait_gone(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while self.capture().contains(needle) {
            assert!(
                start.elapsed() < within,
                "{needle:?} still on screen after {within:?}:\n{}",
                self.capture()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the visible pane shows `needle`; returns how long it took.
    pub fn wait_for(&self, needle: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.contains(needle) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{needle:?} not on screen after {within:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
