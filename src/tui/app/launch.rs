//! The launch dialog: pick a bottle, optionally name the launch, then watch its steps.

use crate::types::Slug;
use crossterm::event::{KeyCode, KeyEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchForm {
    pub choices: Vec<Slug>,
    pub selected: usize,
    pub name: String,
    /// Typing into the name field rather than picking.
    pub naming: bool,
    /// Set once submitted: the slug being launched.
    pub launching: Option<Slug>,
    pub steps: Vec<String>,
    pub error: Option<String>,
}

/// What a key in the launch dialog asks of the app.
#[derive(Debug, PartialEq, Eq)]
pub enum LaunchKey {
    Stay,
    /// Close the dialog (a launch under way goes on and reports in the footer).
    Close,
    Launch {
        bottle: Slug,
        name: Option<Slug>,
    },
}

impl LaunchForm {
    pub fn new(choices: Vec<Slug>) -> Self {
        Self {
            choices,
            selected: 0,
            name: String::new(),
            naming: false,
            launching: None,
            steps: Vec::new(),
            error: None,
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> LaunchKey {
        if self.launching.is_some() {
            return if key.code == KeyCode::Esc {
                LaunchKey::Close
            } else {
                LaunchKey::Stay
            };
        }
        match key.code {
            KeyCode::Esc => return LaunchKey::Close,
            KeyCode::Tab => self.naming = !self.naming,
            KeyCode::Up if !self.naming => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down if !self.naming => {
                self.selected = (self.selected + 1).min(self.choices.len().saturating_sub(1));
            }
            KeyCode::Backspace if self.naming => {
                self.name.pop();
            }
            KeyCode::Char(c) if self.naming => self.name.push(c),
            KeyCode::Enter => return self.submit(),
            _ => {}
        }
        LaunchKey::Stay
    }

    fn submit(&mut self) -> LaunchKey {
        let Some(bottle) = self.choices.get(self.selected).cloned() else {
            self.error = Some("the config defines no bottles".into());
            return LaunchKey::Stay;
        };
        let name = match Some(self.name.trim())
            .filter(|n| !n.is_empty())
            .map(Slug::parse)
        {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(e)) => {
                self.error = Some(format!("name: {e}"));
                return LaunchKey::Stay;
            }
        };
        self.launching = Some(name.clone().unwrap_or_else(|| bottle.clone()));
        self.steps.clear();
        self.error = None;
        LaunchKey::Launch { bottle, name }
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
    fn a_bad_name_stays_in_the_dialog_and_a_good_one_launches() {
        let slug = |s: &str| Slug::parse(s).expect("a slug");
        let mut f = LaunchForm::new(vec![slug("demo"), slug("review")]);
        assert_eq!(f.on_key(&key(KeyCode::Down)), LaunchKey::Stay);
        assert_eq!(f.on_key(&key(KeyCode::Tab)), LaunchKey::Stay);
        for c in "Bad Name".chars() {
            f.on_key(&key(KeyCode::Char(c)));
        }
        assert_eq!(f.on_key(&key(KeyCode::Enter)), LaunchKey::Stay);
        assert!(f.error.as_deref().is_some_and(|e| e.starts_with("name: ")));
        f.name = "rev-2".into();
        assert_eq!(
            f.on_key(&key(KeyCode::Enter)),
            LaunchKey::Launch {
                bottle: slug("review"),
                name: Some(slug("rev-2"))
            }
        );
        assert_eq!(f.launching.as_deref(), Some("rev-2"));
        // While launching only Esc does anything: it hides the dialog.
        assert_eq!(f.on_key(&key(KeyCode::Enter)), LaunchKey::Stay);
        assert_eq!(f.on_key(&key(KeyCode::Esc)), LaunchKey::Close);
        let mut empty = LaunchForm::new(Vec::new());
        assert_eq!(empty.on_key(&key(KeyCode::Enter)), LaunchKey::Stay);
        assert_eq!(
            empty.error.as_deref(),
            Some("the config defines no bottles")
        );
    }
}
