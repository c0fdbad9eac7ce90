//! The bundle's log lines: one JSON object per line (`sidecar::log` writes `time`, `daemon`,
//! `level`, `msg` and the event's fields). [`LogLine::parse`] reads one once, where it
//! arrives; the dashboard's log view and the history both read the parsed line.

use super::daemon::{Daemon, LogSource};
use serde_json::{Map, Value};

/// The gateway's `msg` for every request it decided on.
pub const REQUEST: &str = "request";
/// The gateway's `decision` for a refused request.
pub const DENY: &str = "deny";
/// supervise's `msg` when an agent asks, and when its ask is answered or withdrawn.
pub const APPROVAL_REQUESTED: &str = "approval requested";
pub const APPROVAL_ANSWERED: &str = "approval answered";
pub const APPROVAL_WITHDRAWN: &str = "approval withdrawn";
/// git-gate's `msg` prefix for a push it decided on (`push allowed`, `push denied`).
pub const PUSH: &str = "push ";
/// The history file init keeps in the bottle's state dir (and its one rotated copy): the
/// lines [`LogLine::worth_keeping`] says, so the history has them with no dashboard open.
pub const EVENTS_FILE: &str = "events.jsonl";
pub const EVENTS_FILE_OLD: &str = "events.jsonl.1";
/// Past this size the events file is rotated (the old copy replaced): two at most.
pub const EVENTS_FILE_MAX: u64 = 512 * 1024;

/// What init says about one of its daemons (`msg`, with the daemon as `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitEvent {
    Started,
    Exited,
    CannotStart,
    Restarting,
    NotAvailable,
}

impl InitEvent {
    const ALL: [Self; 5] = [
        Self::Started,
        Self::Exited,
        Self::CannotStart,
        Self::Restarting,
        Self::NotAvailable,
    ];

    pub fn msg(self) -> &'static str {
        match self {
            Self::Started => "daemon started",
            Self::Exited => "daemon exited",
            Self::CannotStart => "cannot start daemon",
            Self::Restarting => "restarting daemon",
            Self::NotAvailable => "daemon not available in this build; not restarting",
        }
    }

    fn parse(msg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.msg() == msg)
    }
}

/// The fields shown after a line's message, in this order.
const SHOWN: [&str; 7] = [
    "decision", "method", "host", "port", "status", "reason", "error",
];

/// One bundle log line. A line that is not a JSON object keeps its text as `msg` and has
/// no other field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogLine {
    /// RFC 3339, as the daemon wrote it.
    pub time: Option<String>,
    /// The `daemon` field as written (a name this build may not know).
    pub daemon: Option<String>,
    pub msg: String,
    /// The gateway's (or pipelock's) decision on a request.
    pub decision: Option<String>,
    /// The daemon an init line is about.
    pub target: Option<String>,
    pub code: Option<i64>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub reason: Option<String>,
    /// supervise's request id and action; git-gate's repository and ref.
    pub id: Option<String>,
    pub action: Option<String>,
    pub repo: Option<String>,
    pub git_ref: Option<String>,
    /// The session holder's status line's activity (the agent container's log).
    pub activity: Option<super::session::Activity>,
    /// `key=value` for [`SHOWN`] fields present, values as text.
    pub shown: Vec<(&'static str, String)>,
    /// False for a line that is not a JSON object: its text is `msg`, as it came.
    pub json: bool,
}

impl LogLine {
    pub fn parse(raw: &str) -> Self {
        match serde_json::from_str::<Value>(raw) {
            Ok(v @ Value::Object(_)) => Self::from_value(&v),
            _ => Self {
                msg: raw.to_owned(),
                ..Self::default()
            },
        }
    }

    /// A line already read as JSON (init's own lines and those it relays).
    pub fn from_value(v: &Value) -> Self {
        let Value::Object(obj) = v else {
            return Self {
                msg: v.to_string(),
                ..Self::default()
            };
        };
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            time: s("time"),
            daemon: s("daemon").filter(|d| !d.is_empty()),
            msg: s("msg").unwrap_or_default(),
            decision: s("decision"),
            target: s("target"),
            code: obj.get("code").and_then(Value::as_i64),
            host: s("host"),
            port: obj.get("port").and_then(Value::as_i64),
            reason: s("reason"),
            id: s("id"),
            action: s("action"),
            repo: s("repo"),
            git_ref: s("ref"),
            activity: (s("msg").as_deref() == Some(super::session::STATUS_MSG))
                .then(|| obj.get("activity").cloned())
                .flatten()
                .and_then(|a| serde_json::from_value(a).ok()),
            shown: shown(obj),
            json: true,
        }
    }

    pub fn source(&self) -> Option<LogSource> {
        self.daemon.as_deref().and_then(LogSource::parse)
    }

    /// A refusal, by the gateway or pipelock (which says `block`).
    pub fn is_deny(&self) -> bool {
        matches!(
            self.decision.as_deref(),
            Some("deny" | "denied" | "block" | "blocked")
        )
    }

    /// A request the gateway refused.
    pub fn is_gateway_deny(&self) -> bool {
        self.source() == Some(LogSource::Daemon(Daemon::Gateway))
            && self.msg == REQUEST
            && self.decision.as_deref() == Some(DENY)
    }

    /// A line the history keeps: a refused request, a daemon exiting or failing to start, an
    /// approval asked, answered or withdrawn, a push decided.
    pub fn worth_keeping(&self) -> bool {
        let from = |d: Daemon| self.source() == Some(LogSource::Daemon(d));
        self.is_gateway_deny()
            || self
                .init_event()
                .is_some_and(|(_, e)| matches!(e, InitEvent::Exited | InitEvent::CannotStart))
            || (from(Daemon::Supervise)
                && [APPROVAL_REQUESTED, APPROVAL_ANSWERED, APPROVAL_WITHDRAWN]
                    .contains(&self.msg.as_str()))
            || (from(Daemon::GitGate) && self.msg.starts_with(PUSH))
    }

    /// Init's word on one of its daemons.
    pub fn init_event(&self) -> Option<(Daemon, InitEvent)> {
        if self.source() != Some(LogSource::Init) {
            return None;
        }
        let event = InitEvent::parse(&self.msg)?;
        Some((Daemon::parse(self.target.as_deref()?)?, event))
    }

    /// The line for people: the time of day, the message and the shown fields, on one line.
    pub fn text(&self) -> String {
        if !self.json {
            return self.msg.replace(['\r', '\n'], " ");
        }
        let time = self
            .time
            .as_deref()
            .and_then(|t| t.get(11..19))
            .unwrap_or("");
        let mut text = format!("{time} {}", self.msg);
        for (k, v) in &self.shown {
            text.push_str(&format!(" {k}={v}"));
        }
        text.replace(['\r', '\n'], " ")
    }
}

fn shown(obj: &Map<String, Value>) -> Vec<(&'static str, String)> {
    SHOWN
        .into_iter()
        .filter_map(|k| {
            let v = obj.get(k)?;
            Some((k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_refusal_is_read_once_with_its_fields() {
        let l = LogLine::parse(
            r#"{"time":"2026-11-28T07:00:02Z","daemon":"gateway","level":"warn","msg":"request","method":"CONNECT","host":"evil.example","port":443,"decision":"deny","reason":"not on this bottle's allowlist","status":403}"#,
        );
        assert!(l.is_gateway_deny() && l.is_deny());
        assert_eq!(
            (l.host.as_deref(), l.port),
            (Some("evil.example"), Some(443))
        );
        assert_eq!(
            l.text(),
            "07:00:02 request decision=deny method=CONNECT host=evil.example port=443 status=403 reason=not on this bottle's allowlist"
        );
        assert_eq!(l.init_event(), None);
    }

    #[test]
    fn init_lines_name_a_known_daemon_and_an_event() {
        let l = LogLine::parse(
            r#"{"daemon":"init","msg":"daemon exited","target":"git-gate","code":137}"#,
        );
        assert_eq!(l.init_event(), Some((Daemon::GitGate, InitEvent::Exited)));
        assert_eq!(l.code, Some(137));
        // Another daemon saying the same words is not init; init naming no daemon is nothing.
        let other = LogLine::parse(r#"{"daemon":"gateway","msg":"daemon exited","target":"x"}"#);
        assert_eq!(other.init_event(), None);
        let unknown = LogLine::parse(r#"{"daemon":"init","msg":"daemon exited","target":"x"}"#);
        assert_eq!(unknown.init_event(), None);
        for e in InitEvent::ALL {
            assert_eq!(InitEvent::parse(e.msg()), Some(e));
        }
    }

    #[test]
    fn other_text_is_kept_as_one_line() {
        let l = LogLine::parse("plain\r\ntext");
        assert_eq!(
            (l.daemon.as_deref(), l.text().as_str()),
            (None, "plain  text")
        );
        assert!(!l.is_deny());
        // A JSON value that is not an object is text too.
        assert_eq!(LogLine::parse("[1,2]").text(), "[1,2]");
    }
}
