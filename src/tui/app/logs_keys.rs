//! Keys in the logs view: scroll, follow, filter by daemon or denials, search, save.

use crate::tui::keymap::Action;
use crate::tui::logs::LogsView;
use crate::wire::daemon::LogSource;
use crossterm::event::{KeyCode, KeyEvent};

/// What a key in the logs view asks of the app.
#[derive(Debug, PartialEq, Eq)]
pub enum LogsKey {
    Stay,
    Close,
    /// Write what the view shows to a file.
    Save,
}

/// Lines a page key scrolls.
const PAGE: usize = 20;

impl LogsView {
    pub fn on_key(&mut self, key: &KeyEvent, action: Option<Action>) -> LogsKey {
        if self.searching {
            match key.code {
                KeyCode::Esc => {
                    self.search.clear();
                    self.searching = false;
                }
                KeyCode::Enter => self.searching = false,
                KeyCode::Backspace => {
                    self.search.pop();
                }
                KeyCode::Char(c) => self.search.push(c),
                _ => {}
            }
            return LogsKey::Stay;
        }
        match action {
            Some(Action::Back | Action::Logs | Action::Quit) => return LogsKey::Close,
            Some(Action::Save) => return LogsKey::Save,
            Some(Action::Filter) => self.searching = true,
            Some(Action::Follow) => {
                self.follow = !self.follow;
                self.scroll = 0;
            }
            Some(Action::DenyOnly) => self.deny_only = !self.deny_only,
            Some(Action::Merged) => self.slug = None,
            Some(Action::Daemon) => self.daemon = LogSource::next(self.daemon),
            Some(Action::Up) => self.scroll_up(1),
            Some(Action::Down) => self.scroll_down(1),
            Some(Action::PageUp) => self.scroll_up(PAGE),
            Some(Action::PageDown) => self.scroll_down(PAGE),
            _ => {}
        }
        LogsKey::Stay
    }

    fn scroll_up(&mut self, n: usize) {
        self.follow = false;
        self.scroll += n;
    }

    /// Back at the newest line, the view follows again.
    fn scroll_down(&mut self, n: usize) {
        self.scroll = self.scroll.saturating_sub(n);
        self.follow = self.scroll == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    #[test]
    fn scrolling_back_to_the_newest_line_follows_again() {
        let none = KeyEvent::new(KeyCode::Null, KeyModifiers::NONE);
        let mut v = LogsView::following(crate::types::Slug::parse("a").ok());
        assert_eq!(v.on_key(&none, Some(Action::PageUp)), LogsKey::Stay);
        assert_eq!((v.follow, v.scroll), (false, PAGE));
        v.on_key(&none, Some(Action::Down));
        assert_eq!((v.follow, v.scroll), (false, PAGE - 1));
        v.on_key(&none, Some(Action::PageDown));
        assert_eq!((v.follow, v.scroll), (true, 0));
        v.on_key(&none, Some(Action::Daemon));
        assert_eq!(v.daemon, Some(LogSource::ALL[0]));
        assert_eq!(v.on_key(&none, Some(Action::Save)), LogsKey::Save);
        assert_eq!(v.on_key(&none, Some(Action::Back)), LogsKey::Close);
    }
}
