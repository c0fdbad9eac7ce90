//! What the agent is doing, kept by the holder: from its hooks where it reports (Claude Code),
//! else read from its terminal — output means working; once output has stopped for the
//! config's quiet time, text on the screen that means it waits for you means needs-you, and
//! anything else idle. Every change is written to the record and logged, which is how the
//! host learns it.

use super::{Paths, SessionRecord, SessionState, now};
use crate::sidecar::log;
use crate::wire::session::{
    Activity, AgentStatus, Report, STATUS_CONFIG, STATUS_MSG, StatusConfig, one_line_reason,
};
use serde_json::json;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const DAEMON: &str = "session";

pub struct Tracker {
    paths: Paths,
    config: StatusConfig,
    state: Mutex<State>,
    /// Wakes the terminal reader when the agent starts working (a quiet time to wait out).
    pub working: Notify,
}

struct State {
    record: SessionRecord,
    /// The hooks alone say the status: the config says the agent has them, or one reported.
    hooks_seen: bool,
    last_output: Instant,
}

/// The holder's config from the session folder; without one (an older host, tests) the
/// defaults, and a config that does not read is said in the log.
pub fn load_config(paths: &Paths) -> StatusConfig {
    let path = paths.dir().join(STATUS_CONFIG);
    match std::fs::read(&path) {
        Err(_) => StatusConfig::default(),
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            log::event(
                DAEMON,
                "warn",
                "cannot read the status config; reading the terminal with the defaults",
                json!({ "path": path, "error": e.to_string() }),
            );
            StatusConfig::default()
        }),
    }
}

impl Tracker {
    /// The agent has started: its record says so, with the status `starting`.
    pub fn start(paths: Paths, config: StatusConfig, mut record: SessionRecord) -> Self {
        record.activity = Some(activity(AgentStatus::Starting, None, false));
        let hooks_seen = config.hooks;
        let t = Self {
            paths,
            config,
            state: Mutex::new(State {
                record,
                hooks_seen,
                last_output: Instant::now(),
            }),
            working: Notify::new(),
        };
        {
            let st = t.lock();
            t.write(&st.record);
        }
        t
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub fn current(&self) -> Option<Activity> {
        self.lock().record.activity.clone()
    }

    /// A hook said what the agent is doing.
    pub fn report(&self, r: Report) {
        let mut st = self.lock();
        st.hooks_seen = true;
        // Anything in the agent can send a report: its words are cleaned here, once.
        let reason = r.reason.as_deref().map(one_line_reason);
        self.set(&mut st, r.status, reason, false);
    }

    /// The agent wrote to its terminal (every chunk it writes: an agent with hooks costs no lock).
    pub fn output(&self) {
        if self.config.hooks {
            return;
        }
        let mut st = self.lock();
        st.last_output = Instant::now();
        let status = st.record.activity.as_ref().map(|a| a.status);
        if !st.hooks_seen && status != Some(AgentStatus::Working) {
            self.set(&mut st, AgentStatus::Working, None, true);
            self.working.notify_one();
        }
    }

    /// While the terminal says the status and the agent works: when its output will have
    /// stopped for the quiet time, if nothing comes before.
    pub fn quiet_at(&self) -> Option<Instant> {
        let st = self.lock();
        let working = st.record.activity.as_ref().map(|a| a.status) == Some(AgentStatus::Working);
        (!st.hooks_seen && working)
            .then(|| st.last_output + Duration::from_millis(self.config.quiet_ms))
    }

    /// The output stopped (as `quiet_at` said) and the screen shows `screen`.
    pub fn settle(&self, screen: &str) {
        let mut st = self.lock();
        let quiet = st.last_output.elapsed() >= Duration::from_millis(self.config.quiet_ms);
        let working = st.record.activity.as_ref().map(|a| a.status) == Some(AgentStatus::Working);
        if st.hooks_seen || !quiet || !working {
            return;
        }
        match waiting_line(&self.config, screen) {
            Some(line) => self.set(
                &mut st,
                AgentStatus::NeedsYou,
                Some(one_line_reason(&line)),
                true,
            ),
            None => self.set(&mut st, AgentStatus::Idle, None, true),
        }
    }

    /// The agent exited: the record's last word.
    pub fn exited(&self, code: i32) {
        let mut st = self.lock();
        st.record.state = SessionState::Exited;
        st.record.exit_code = Some(code);
        st.record.finished_at = Some(now());
        self.set(
            &mut st,
            AgentStatus::Exited,
            Some(format!("exit code {code}")),
            false,
        );
    }

    fn set(&self, st: &mut State, status: AgentStatus, reason: Option<String>, guessed: bool) {
        if st.record.state == SessionState::Exited && status != AgentStatus::Exited {
            return;
        }
        let current = st.record.activity.as_ref();
        let unchanged = current
            .is_some_and(|a| a.status == status && a.reason == reason && a.guessed == guessed);
        if !unchanged {
            let a = activity(status, reason, guessed);
            log::event(DAEMON, "info", STATUS_MSG, json!({ "activity": a }));
            st.record.activity = Some(a);
        }
        // The exit always writes: state and code changed even if the status did not.
        if !unchanged || status == AgentStatus::Exited {
            self.write(&st.record);
        }
    }

    fn write(&self, record: &SessionRecord) {
        let text = serde_json::to_vec_pretty(record).unwrap_or_default();
        if let Err(e) = crate::fsutil::write(&self.paths.record(), &text, 0o644) {
            log::event(
                DAEMON,
                "warn",
                "cannot write the session record",
                json!({ "path": self.paths.record(), "error": format!("{e:#}") }),
            );
        }
    }
}

fn activity(status: AgentStatus, reason: Option<String>, guessed: bool) -> Activity {
    Activity {
        status,
        since: now(),
        reason,
        guessed,
    }
}

/// The screen's last non-empty line — where a prompt waits — if it holds one of the config's
/// needs-you texts (a question answered earlier, higher up, no longer counts).
fn waiting_line(config: &StatusConfig, screen: &str) -> Option<String> {
    let last = screen.lines().rev().find(|l| !l.trim().is_empty())?;
    config
        .needs_you
        .iter()
        .any(|p| !p.is_empty() && last.contains(p.as_str()))
        .then(|| last.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(dir: &std::path::Path, quiet_ms: u64) -> Tracker {
        tracker_with(
            dir,
            StatusConfig {
                needs_you: vec!["(y/n)".into()],
                quiet_ms,
                ..StatusConfig::default()
            },
        )
    }

    fn tracker_with(dir: &std::path::Path, config: StatusConfig) -> Tracker {
        let paths = Paths::new(dir);
        std::fs::create_dir_all(paths.run_dir()).expect("run dir");
        let record = SessionRecord {
            state: SessionState::Running,
            pid: Some(1),
            exit_code: None,
            started_at: Some(now()),
            finished_at: None,
            activity: None,
        };
        Tracker::start(paths, config, record)
    }

    fn on_disk(dir: &std::path::Path) -> SessionRecord {
        let bytes = std::fs::read(Paths::new(dir).record()).expect("record");
        serde_json::from_slice(&bytes).expect("a record")
    }

    fn status(t: &Tracker) -> Option<AgentStatus> {
        t.current().map(|a| a.status)
    }

    #[test]
    fn the_terminal_says_working_then_idle_or_needs_you_once_quiet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tracker(dir.path(), 0);
        assert_eq!(status(&t), Some(AgentStatus::Starting));
        assert_eq!(
            on_disk(dir.path()).activity.map(|a| a.status),
            Some(AgentStatus::Starting)
        );
        t.output();
        assert_eq!(status(&t), Some(AgentStatus::Working));
        assert!(t.quiet_at().is_some(), "a quiet time to wait out");
        t.settle("$ make\nbuilding…\ndone\n$");
        assert_eq!(status(&t), Some(AgentStatus::Idle));
        assert_eq!(t.quiet_at(), None, "nothing to wait for while idle");
        t.output();
        t.settle("Overwrite main.rs? (y/n)\n");
        let a = t.current().expect("an activity");
        assert_eq!(
            (a.status, a.reason.as_deref()),
            (AgentStatus::NeedsYou, Some("Overwrite main.rs? (y/n)"))
        );
        assert_eq!(
            on_disk(dir.path()).activity,
            Some(a),
            "every change is written"
        );
        // Answered: the question is still on screen, but no longer where the prompt is.
        t.output();
        t.settle("Overwrite main.rs? (y/n) y\nwritten\n$");
        assert_eq!(status(&t), Some(AgentStatus::Idle));
    }

    #[test]
    fn output_that_has_not_stopped_yet_is_still_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tracker(dir.path(), 60_000);
        t.output();
        t.settle("(y/n)");
        assert_eq!(status(&t), Some(AgentStatus::Working));
    }

    #[test]
    fn once_a_hook_reports_the_terminal_no_longer_says_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tracker(dir.path(), 0);
        t.report(Report {
            status: AgentStatus::NeedsYou,
            reason: Some("Claude needs your permission to use Bash".into()),
        });
        t.output();
        t.settle("");
        assert_eq!(status(&t), Some(AgentStatus::NeedsYou));
        assert_eq!(t.quiet_at(), None);
        t.report(Report {
            status: AgentStatus::Working,
            reason: None,
        });
        assert_eq!(status(&t), Some(AgentStatus::Working));
    }

    #[test]
    fn an_agent_with_hooks_is_never_read_from_its_terminal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StatusConfig {
            hooks: true,
            quiet_ms: 0,
            ..StatusConfig::default()
        };
        let t = tracker_with(dir.path(), config);
        t.output();
        t.settle("");
        assert_eq!(
            status(&t),
            Some(AgentStatus::Starting),
            "its start's output is not work"
        );
    }

    #[test]
    fn the_exit_is_the_last_word() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tracker(dir.path(), 0);
        t.exited(3);
        t.report(Report {
            status: AgentStatus::Working,
            reason: None,
        });
        t.output();
        let r = on_disk(dir.path());
        assert_eq!((r.state, r.exit_code()), (SessionState::Exited, Some(3)));
        let a = r.activity.expect("an activity");
        assert_eq!(
            (a.status, a.reason.as_deref()),
            (AgentStatus::Exited, Some("exit code 3"))
        );
    }
}
