//! One binding table for the dashboard: built from `config::keys::ACTIONS` and the config's
//! `[keys]`, it drives dispatch, the help overlay and the footer hints alike.

use crate::config::keys::ACTIONS;
use crate::types::KeySpec;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Binding {
    pub action: &'static str,
    pub key: KeySpec,
    pub help: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Keymap {
    /// The defaults with the config's overrides (already validated by the config reader).
    pub fn new(overrides: &BTreeMap<String, KeySpec>) -> Self {
        let bindings = ACTIONS
            .iter()
            .filter_map(|a| {
                let key = overrides
                    .get(a.name)
                    .cloned()
                    .or_else(|| KeySpec::parse(a.default).ok())?;
                Some(Binding {
                    action: a.name,
                    key,
                    help: a.help,
                })
            })
            .collect();
        Self { bindings }
    }

    pub fn action(&self, key: &KeyEvent) -> Option<&'static str> {
        self.bindings
            .iter()
            .find(|b| matches(&b.key, key))
            .map(|b| b.action)
    }

    pub fn key_of(&self, action: &str) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == action)
            .map_or_else(|| "?".to_owned(), |b| b.key.to_string())
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }
}

/// Whether a key press is the one `spec` names. For characters the character itself carries
/// shift (`A` is shift-a), so shift is only compared for named keys.
pub fn matches(spec: &KeySpec, key: &KeyEvent) -> bool {
    let m = key.modifiers;
    if spec.ctrl != m.contains(KeyModifiers::CONTROL) || spec.alt != m.contains(KeyModifiers::ALT) {
        return false;
    }
    let named = |name: &str| spec.key == name && spec.shift == m.contains(KeyModifiers::SHIFT);
    match key.code {
        KeyCode::Char(' ') => named("space"),
        KeyCode::Char(c) => {
            let mut want = spec.key.chars();
            match (want.next(), want.next()) {
                (Some(w), None) if spec.ctrl => w.eq_ignore_ascii_case(&c),
                (Some(w), None) => w == c || (spec.shift && w.to_ascii_uppercase() == c),
                _ => false,
            }
        }
        KeyCode::Enter => named("enter"),
        KeyCode::Esc => named("esc"),
        KeyCode::Tab => named("tab"),
        KeyCode::BackTab => spec.key == "backtab",
        KeyCode::Backspace => named("backspace"),
        KeyCode::Delete => named("delete"),
        KeyCode::Insert => named("insert"),
        KeyCode::Home => named("home"),
        KeyCode::End => named("end"),
        KeyCode::PageUp => named("pageup"),
        KeyCode::PageDown => named("pagedown"),
        KeyCode::Up => named("up"),
        KeyCode::Down => named("down"),
        KeyCode::Left => named("left"),
        KeyCode::Right => named("right"),
        KeyCode::F(n) => named(&format!("f{n}")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_and_overrides_drive_dispatch() {
        let mut over = BTreeMap::new();
        over.insert("quit".to_owned(), KeySpec::parse("ctrl-x").unwrap());
        let k = Keymap::new(&over);
        assert_eq!(
            k.action(&press(KeyCode::Char('x'), KeyModifiers::CONTROL)),
            Some("quit")
        );
        assert_eq!(
            k.action(&press(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            k.action(&press(KeyCode::Char('x'), KeyModifiers::NONE)),
            Some("kill")
        );
        assert_eq!(
            k.action(&press(KeyCode::Enter, KeyModifiers::NONE)),
            Some("attach")
        );
        assert_eq!(
            k.action(&press(KeyCode::Char('A'), KeyModifiers::SHIFT)),
            Some("aliases")
        );
        assert_eq!(
            k.action(&press(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some("detach")
        );
        assert_eq!(k.key_of("quit"), "ctrl-x");
    }
}
