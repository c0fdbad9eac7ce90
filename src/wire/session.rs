//! The session holder's record of its agent (`run/session.json` in the session folder), which
//! the host reads for `ls`, the dashboard, `attach` and launch's wait; what the agent is doing
//! (its [`Activity`]), which the holder also logs on every change; what a hook reports to the
//! holder; and how the holder tells status from the terminal (`status.json`, from provision).

use serde::{Deserialize, Serialize};

/// The holder's config in the session folder, written by provision before the agent starts.
pub const STATUS_CONFIG: &str = "status.json";
/// The `msg` of the holder's log line on every change of [`Activity`] (with an `activity`).
pub const STATUS_MSG: &str = "agent status";

/// What the holder says about the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub state: SessionState,
    pub pid: Option<i32>,
    /// Set once the agent has exited.
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the agent is doing now (absent in records of older holders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
}

/// What an agent is doing, in the order people want to see them: who needs you first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentStatus {
    /// Waiting for the human: a permission, an answer (the reason says which).
    NeedsYou,
    Working,
    /// Its turn is over; it waits for the next prompt.
    Idle,
    /// Started, has said nothing yet.
    Starting,
    Exited,
}

impl AgentStatus {
    pub const ALL: [Self; 5] = [
        Self::NeedsYou,
        Self::Working,
        Self::Idle,
        Self::Starting,
        Self::Exited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsYou => "needs-you",
            Self::Working => "working",
            Self::Idle => "idle",
            Self::Starting => "starting",
            Self::Exited => "exited",
        }
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for AgentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown status {s:?}: expected one of {}", all.join(", "))
            })
    }
}

/// An agent's status, since when (RFC 3339), and why where it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub status: AgentStatus,
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Read from the agent's terminal, not said by the agent (its hooks) or its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guessed: bool,
}

impl Activity {
    /// A change into this is worth a bell and the notify command: the agent needs you (said,
    /// or the configured text on its screen), or says its turn is over. An idle guessed from a
    /// quiet terminal is not: a shell goes quiet at every pause of whoever types in it.
    pub fn worth_telling(&self) -> bool {
        match self.status {
            AgentStatus::NeedsYou => true,
            AgentStatus::Idle => !self.guessed,
            _ => false,
        }
    }

    /// Whether this began after `other` (RFC 3339 times the holder wrote). A time that does
    /// not read counts as later: a reader meets such a line after the record it compares to.
    pub fn began_after(&self, other: &Self) -> bool {
        let at = |x: &Self| {
            time::OffsetDateTime::parse(&x.since, &time::format_description::well_known::Rfc3339)
                .ok()
        };
        match (at(self), at(other)) {
            (Some(a), Some(b)) => a > b,
            _ => true,
        }
    }

    /// The activity in one of the holder's log lines, if it is a status line.
    pub fn from_log_line(raw: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Line {
            msg: String,
            activity: Activity,
        }
        serde_json::from_str::<Line>(raw)
            .ok()
            .filter(|l| l.msg == STATUS_MSG)
            .map(|l| l.activity)
    }
}

/// A reason is a line in a table and a notification: longer ones are cut.
pub const REASON_MAX: usize = 200;

/// A reason as one line of printable text, at most [`REASON_MAX`] characters: it is the
/// agent's own words, shown in terminals and passed to the notify command.
pub fn one_line_reason(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(REASON_MAX) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

/// What a hook (`bottle-sidecar session hook`) tells the holder, as the one frame it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub status: AgentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How the holder reads an agent's status from its terminal, until a hook reports (an agent
/// with hooks, Claude Code, reports from its start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusConfig {
    pub version: u32,
    /// The agent reports through hooks (Claude Code): its terminal is never read for status,
    /// so the output of its start cannot pass for work before its first hook says anything.
    #[serde(default)]
    pub hooks: bool,
    /// Text on the agent's screen, once its output has stopped, that means it waits for you.
    #[serde(default)]
    pub needs_you: Vec<String>,
    /// How long without output means the agent is no longer working.
    pub quiet_ms: u64,
}

impl StatusConfig {
    pub const VERSION: u32 = 1;
}

impl Default for StatusConfig {
    /// What a holder without a config (an older host, a test) does: read the terminal.
    fn default() -> Self {
        Self {
            version: Self::VERSION,
            hooks: false,
            needs_you: Vec::new(),
            quiet_ms: 2000,
        }
    }
}

/// The holder writes its record when the agent starts and again when it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Running,
    Exited,
}

impl SessionRecord {
    /// The agent's exit code, once it has exited (a code in a running record is not one).
    pub fn exit_code(&self) -> Option<i32> {
        (self.state == SessionState::Exited)
            .then_some(self.exit_code)
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_as_the_holder_writes_it() {
        let r: SessionRecord = serde_json::from_str(
            r#"{"state":"exited","pid":7,"exit_code":3,"started_at":null,"finished_at":"t"}"#,
        )
        .expect("a record");
        assert_eq!((r.state, r.exit_code()), (SessionState::Exited, Some(3)));
        assert_eq!(r.activity, None, "an older holder's record has no activity");
        let running = SessionRecord {
            state: SessionState::Running,
            ..r
        };
        assert_eq!(running.exit_code(), None);
        assert_eq!(
            serde_json::to_value(&running)
                .ok()
                .map(|v| v["state"].clone()),
            Some(serde_json::json!("running"))
        );
    }

    #[test]
    fn statuses_read_as_they_print_and_sort_who_needs_you_first() {
        for s in AgentStatus::ALL {
            assert_eq!(s.as_str().parse::<AgentStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        let err = "busy".parse::<AgentStatus>().expect_err("not a status");
        assert!(err.contains("needs-you, working, idle"), "{err}");
        let mut all = AgentStatus::ALL;
        all.reverse();
        all.sort();
        assert_eq!(all[0], AgentStatus::NeedsYou);
    }

    #[test]
    fn a_reason_is_one_line_and_bounded() {
        let long = format!("line one\nline\ttwo\u{1b}[2J {}", "é".repeat(500));
        let r = one_line_reason(&long);
        assert!(!r.chars().any(char::is_control), "{r}");
        assert_eq!(r.chars().count(), REASON_MAX + 1, "cut, with an ellipsis");
        assert!(r.ends_with('…'));
    }

    #[test]
    fn a_line_from_before_the_record_is_not_news() {
        let at = |status, since: &str| Activity {
            status,
            since: since.into(),
            reason: None,
            guessed: false,
        };
        let record = at(AgentStatus::Working, "2026-12-04T10:00:00.500Z");
        assert!(!at(AgentStatus::Idle, "2026-12-04T10:00:00.2Z").began_after(&record));
        assert!(!record.began_after(&record));
        assert!(at(AgentStatus::Idle, "2026-12-04T10:00:00.75Z").began_after(&record));
    }

    #[test]
    fn a_status_log_line_gives_its_activity_and_no_other_line_does() {
        let line = r#"{"time":"t","daemon":"session","msg":"agent status","activity":{"status":"needs-you","since":"t0","reason":"Claude needs your permission to use Bash"}}"#;
        let a = Activity::from_log_line(line).expect("a status line");
        assert_eq!(a.status, AgentStatus::NeedsYou);
        assert_eq!(
            a.reason.as_deref(),
            Some("Claude needs your permission to use Bash")
        );
        assert_eq!(
            Activity::from_log_line(
                r#"{"msg":"client attached","activity":{"status":"idle","since":"t"}}"#
            ),
            None
        );
        assert_eq!(Activity::from_log_line("not json"), None);
    }
}
