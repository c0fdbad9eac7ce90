//! The approvals dialog: a cursor over the pending requests, the reason being typed for a
//! denial (or an approval with a note), and marking the shown notices read.

use crate::sidecar::supervise::queue::Decision;
use crate::tui::keymap::Action;
use crossterm::event::{KeyCode, KeyEvent};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalsView {
    pub selected: usize,
    /// Some while typing the reason that goes with `decision`.
    pub reason: Option<String>,
    pub decision: Option<Decision>,
}

/// What a key in the approvals dialog asks of the app.
#[derive(Debug, PartialEq, Eq)]
pub enum ApprovalsKey {
    Stay,
    Close,
    /// Answer the request at `index`.
    Answer {
        index: usize,
        decision: Decision,
        reason: Option<String>,
    },
    /// Mark the notices shown read.
    MarkRead,
}

impl ApprovalsView {
    /// `pending`: requests listed; `notices`: whether any notice is shown.
    pub fn on_key(
        &mut self,
        key: &KeyEvent,
        action: Option<Action>,
        pending: usize,
        notices: bool,
    ) -> ApprovalsKey {
        if let (Some(reason), Some(decision)) = (&mut self.reason, self.decision) {
            match key.code {
                KeyCode::Esc => {
                    self.reason = None;
                    self.decision = None;
                }
                KeyCode::Enter => {
                    let reason = Some(reason.trim().to_owned()).filter(|r| !r.is_empty());
                    self.reason = None;
                    self.decision = None;
                    return ApprovalsKey::Answer {
                        index: self.selected,
                        decision,
                        reason,
                    };
                }
                KeyCode::Backspace => {
                    reason.pop();
                }
                KeyCode::Char(c) => reason.push(c),
                _ => {}
            }
            return ApprovalsKey::Stay;
        }
        match action {
            Some(Action::Back | Action::Approvals | Action::Quit) => return ApprovalsKey::Close,
            Some(Action::Down) => {
                self.selected = (self.selected + 1).min(pending.saturating_sub(1));
            }
            Some(Action::Up) => self.selected = self.selected.saturating_sub(1),
            Some(Action::Approve) if pending > 0 => {
                return ApprovalsKey::Answer {
                    index: self.selected,
                    decision: Decision::Approved,
                    reason: None,
                };
            }
            // With a note: the agent reads it with the answer.
            Some(Action::ApproveNote) if pending > 0 => self.ask_reason(Decision::Approved),
            Some(Action::Deny) if pending > 0 => self.ask_reason(Decision::Denied),
            Some(Action::Read) if notices => return ApprovalsKey::MarkRead,
            _ => {}
        }
        ApprovalsKey::Stay
    }

    fn ask_reason(&mut self, decision: Decision) {
        self.reason = Some(String::new());
        self.decision = Some(decision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn a_denial_carries_the_reason_typed_and_nothing_answers_an_empty_queue() {
        let mut v = ApprovalsView::default();
        let none = key(KeyCode::Null);
        assert_eq!(
            v.on_key(&none, Some(Action::Approve), 0, false),
            ApprovalsKey::Stay
        );
        assert_eq!(
            v.on_key(&none, Some(Action::Read), 0, false),
            ApprovalsKey::Stay
        );
        v.on_key(&none, Some(Action::Down), 2, false);
        v.on_key(&none, Some(Action::Down), 2, false);
        assert_eq!(v.selected, 1, "the cursor stops at the last request");
        v.on_key(&none, Some(Action::Deny), 2, false);
        for c in " no ".chars() {
            // Typing a reason: keys are text, not actions.
            assert_eq!(
                v.on_key(&key(KeyCode::Char(c)), Some(Action::Quit), 2, false),
                ApprovalsKey::Stay
            );
        }
        assert_eq!(
            v.on_key(&key(KeyCode::Enter), None, 2, false),
            ApprovalsKey::Answer {
                index: 1,
                decision: Decision::Denied,
                reason: Some("no".into())
            }
        );
        assert_eq!(v.reason, None);
        assert_eq!(
            v.on_key(&none, Some(Action::Read), 2, true),
            ApprovalsKey::MarkRead
        );
    }
}
