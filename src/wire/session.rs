//! The session holder's record of its agent (`run/session.json` in the session folder), which
//! the host reads for `ls`, the dashboard, `attach` and launch's wait.

use serde::{Deserialize, Serialize};

/// What the holder says about the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub state: SessionState,
    pub pid: Option<i32>,
    /// Set once the agent has exited.
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
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
}
