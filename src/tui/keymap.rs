//! The dashboard's bindings: `config::keys::ROWS` with the config's `[keys]` remaps applied.
//! Dispatch (by context), the help overlay and the footer hints all read it.

use crate::config::keys::ROWS;
pub use crate::config::keys::{Action, Context};
use crate::types::KeySpec;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Binding {
    pub action: Action,
    pub keys: Vec<KeySpec>,
    pub contexts: &'static [Context],
    pub help: &'static str,
}

impl Binding {
    /// The keys as the help shows them: `down/j`.
    pub fn keys_text(&self) -> String {
        let names: Vec<String> = self.keys.iter().map(ToString::to_string).collect();
        names.join("/")
    }
}

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Keymap {
    /// The table with the config's remaps (already checked for collisions by the config
    /// reader): a remapped action answers to its one new key only.
    pub fn new(remapped: &BTreeMap<String, KeySpec>) -> Self {
        let bindings = ROWS
            .iter()
            .map(|r| Binding {
                action: r.action,
                keys: match remapped.get(r.name) {
                    Some(k) => vec![k.clone()],
                    None => r
                        .keys
                        .iter()
                        .filter_map(|k| KeySpec::parse(k).ok())
                        .collect(),
                },
                contexts: r.contexts,
                help: r.help,
            })
            .collect();
        Self { bindings }
    }

    /// What `key` does in `context`, if anything.
    pub fn action(&self, context: Context, key: &KeyEvent) -> Option<Action> {
        self.bindings
            .iter()
            .filter(|b| b.contexts.contains(&context))
            .find(|b| b.keys.iter().any(|k| matches(k, key)))
            .map(|b| b.action)
    }

    /// The first key of `action`, as the footer and messages name it.
    pub fn key_of(&self, action: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == action)
            .and_then(|b| b.keys.first())
            .map_or_else(|| "?".to_owned(), ToString::to_string)
    }

    pub fn binding(&self, action: Action) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.action == action)
    }

    /// The bindings of one context, in table order.
    pub fn in_context(&self, context: Context) -> impl Iterator<Item = &Binding> {
        self.bindings
            .iter()
            .filter(move |b| b.contexts.contains(&context))
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
    fn defaults_and_remaps_drive_dispatch_per_context() {
        let mut over = BTreeMap::new();
        over.insert("quit".to_owned(), KeySpec::parse("ctrl-x").unwrap());
        let k = Keymap::new(&over);
        let t = |code, m| k.action(Context::Table, &press(code, m));
        assert_eq!(
            t(KeyCode::Char('x'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(
            t(KeyCode::Char('q'), KeyModifiers::NONE),
            None,
            "remapped away"
        );
        assert_eq!(
            t(KeyCode::Char('x'), KeyModifiers::NONE),
            Some(Action::Kill)
        );
        assert_eq!(t(KeyCode::Enter, KeyModifiers::NONE), Some(Action::Attach));
        assert_eq!(
            t(KeyCode::Char('A'), KeyModifiers::SHIFT),
            Some(Action::Aliases)
        );
        assert_eq!(
            t(KeyCode::Char('j'), KeyModifiers::NONE),
            Some(Action::Down)
        );
        assert_eq!(t(KeyCode::Down, KeyModifiers::NONE), Some(Action::Down));
        assert_eq!(
            t(KeyCode::Char('s'), KeyModifiers::NONE),
            Some(Action::Sort)
        );
        // The same key means what its view says.
        let l = k.action(
            Context::Logs,
            &press(KeyCode::Char('s'), KeyModifiers::NONE),
        );
        assert_eq!(l, Some(Action::Save));
        let a = k.action(
            Context::Approvals,
            &press(KeyCode::Char('d'), KeyModifiers::NONE),
        );
        assert_eq!(a, Some(Action::Deny));
        let p = |code, m| k.action(Context::Pane, &press(code, m));
        assert_eq!(
            p(KeyCode::Char('q'), KeyModifiers::CONTROL),
            Some(Action::Detach)
        );
        assert_eq!(
            p(KeyCode::Char('x'), KeyModifiers::NONE),
            None,
            "the agent's key"
        );
        assert_eq!(k.key_of(Action::Quit), "ctrl-x");
        assert_eq!(
            k.binding(Action::Down).map(Binding::keys_text).as_deref(),
            Some("down/j")
        );
    }

    /// `[keys] launch = "s"` with sort remapped too: `s` launches and nothing else, sort
    /// has its new key, and the old launch key does nothing in the table.
    #[test]
    fn a_key_freed_by_a_remap_can_be_taken() {
        let mut over = BTreeMap::new();
        over.insert("launch".to_owned(), KeySpec::parse("s").unwrap());
        over.insert("sort".to_owned(), KeySpec::parse("o").unwrap());
        let k = Keymap::new(&over);
        let t = |c| k.action(Context::Table, &press(KeyCode::Char(c), KeyModifiers::NONE));
        assert_eq!(t('s'), Some(Action::Launch));
        assert_eq!(t('o'), Some(Action::Sort));
        assert_eq!(t('n'), None);
        // The logs view keeps its own `s`.
        let l = k.action(
            Context::Logs,
            &press(KeyCode::Char('s'), KeyModifiers::NONE),
        );
        assert_eq!(l, Some(Action::Save));
    }

    /// No two actions of one view share a default key.
    #[test]
    fn the_defaults_never_collide_within_a_view() {
        let k = Keymap::new(&BTreeMap::new());
        for c in Context::ALL {
            let mut seen = BTreeMap::new();
            for b in k.in_context(c) {
                for key in &b.keys {
                    if let Some(other) = seen.insert(key.to_string(), b.action) {
                        panic!("{key} is {other:?} and {:?} in {c:?}", b.action);
                    }
                }
            }
        }
    }
}
