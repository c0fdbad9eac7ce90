//! Keys and mouse events as the bytes a terminal program expects, honouring the modes the
//! program asked for (application cursor keys, mouse reporting and its encoding).

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use vt100::{MouseProtocolEncoding, MouseProtocolMode};

/// xterm's modifier parameter: 1 + shift + 2·alt + 4·ctrl.
fn modifier_param(m: KeyModifiers) -> u8 {
    1 + u8::from(m.contains(KeyModifiers::SHIFT))
        + 2 * u8::from(m.contains(KeyModifiers::ALT))
        + 4 * u8::from(m.contains(KeyModifiers::CONTROL))
}

/// The bytes for a key press; `None` for keys a terminal has no encoding for (and releases).
pub fn encode_key(key: &KeyEvent, application_cursor: bool) -> Option<Vec<u8>> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let m = key.modifiers;
    let param = modifier_param(m);
    let alt = m.contains(KeyModifiers::ALT);
    let with_alt = |mut bytes: Vec<u8>| {
        if alt {
            bytes.insert(0, 0x1b);
        }
        bytes
    };
    // CSI-style keys: plain `ESC [ x` / `ESC O x`, or `ESC [ 1 ; mod x` with modifiers.
    let cursor = |c: u8| {
        if param > 1 {
            format!("\x1b[1;{param}{}", c as char).into_bytes()
        } else if application_cursor {
            vec![0x1b, b'O', c]
        } else {
            vec![0x1b, b'[', c]
        }
    };
    let tilde = |n: u8| {
        if param > 1 {
            format!("\x1b[{n};{param}~").into_bytes()
        } else {
            format!("\x1b[{n}~").into_bytes()
        }
    };
    Some(match key.code {
        KeyCode::Char(c) if m.contains(KeyModifiers::CONTROL) => {
            let byte = match c.to_ascii_lowercase() {
                c @ 'a'..='z' => c as u8 - b'a' + 1,
                '@' | ' ' | '2' => 0,
                '[' | '3' => 0x1b,
                '\\' | '4' => 0x1c,
                ']' | '5' => 0x1d,
                '^' | '6' => 0x1e,
                '_' | '-' | '7' => 0x1f,
                '?' | '8' => 0x7f,
                _ => return None,
            };
            with_alt(vec![byte])
        }
        KeyCode::Char(c) => {
            let mut buf = [0u8; 4];
            with_alt(c.encode_utf8(&mut buf).as_bytes().to_vec())
        }
        KeyCode::Enter => with_alt(vec![b'\r']),
        KeyCode::Tab => with_alt(vec![b'\t']),
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Backspace if m.contains(KeyModifiers::CONTROL) => with_alt(vec![0x08]),
        KeyCode::Backspace => with_alt(vec![0x7f]),
        KeyCode::Esc => with_alt(vec![0x1b]),
        KeyCode::Up => cursor(b'A'),
        KeyCode::Down => cursor(b'B'),
        KeyCode::Right => cursor(b'C'),
        KeyCode::Left => cursor(b'D'),
        KeyCode::Home => cursor(b'H'),
        KeyCode::End => cursor(b'F'),
        KeyCode::Insert => tilde(2),
        KeyCode::Delete => tilde(3),
        KeyCode::PageUp => tilde(5),
        KeyCode::PageDown => tilde(6),
        KeyCode::F(n @ 1..=4) => {
            let c = b"PQRS"[usize::from(n - 1)];
            if param > 1 {
                format!("\x1b[1;{param}{}", c as char).into_bytes()
            } else {
                vec![0x1b, b'O', c]
            }
        }
        KeyCode::F(n @ 5..=12) => tilde([15, 17, 18, 19, 20, 21, 23, 24][usize::from(n - 5)]),
        _ => return None,
    })
}

/// Pasted text, bracketed if the program asked for it (so it is not run line by line).
pub fn encode_paste(text: &str, bracketed: bool) -> Vec<u8> {
    // Line endings as a terminal sends them; a paste must not smuggle its own end marker.
    let body = text
        .replace("\r\n", "\r")
        .replace('\n', "\r")
        .replace("\x1b[201~", "");
    if bracketed {
        format!("\x1b[200~{body}\x1b[201~").into_bytes()
    } else {
        body.into_bytes()
    }
}

/// A mouse event at (`col`, `row`) inside the pane (0-based), if the program wants it.
pub fn encode_mouse(
    ev: &MouseEvent,
    col: u16,
    row: u16,
    mode: MouseProtocolMode,
    encoding: MouseProtocolEncoding,
) -> Option<Vec<u8>> {
    let button_code = |b: MouseButton| match b {
        MouseButton::Left => 0u16,
        MouseButton::Middle => 1,
        MouseButton::Right => 2,
    };
    let (mut code, release) = match ev.kind {
        MouseEventKind::Down(b) => (button_code(b), false),
        MouseEventKind::Up(b) => {
            if mode == MouseProtocolMode::Press {
                return None;
            }
            (button_code(b), true)
        }
        MouseEventKind::Drag(b) => {
            if !matches!(
                mode,
                MouseProtocolMode::ButtonMotion | MouseProtocolMode::AnyMotion
            ) {
                return None;
            }
            (button_code(b) + 32, false)
        }
        MouseEventKind::Moved => {
            if mode != MouseProtocolMode::AnyMotion {
                return None;
            }
            (3 + 32, false)
        }
        MouseEventKind::ScrollUp => (64, false),
        MouseEventKind::ScrollDown => (65, false),
        MouseEventKind::ScrollLeft => (66, false),
        MouseEventKind::ScrollRight => (67, false),
    };
    if mode == MouseProtocolMode::None {
        return None;
    }
    if ev.modifiers.contains(KeyModifiers::SHIFT) {
        code += 4;
    }
    if ev.modifiers.contains(KeyModifiers::ALT) {
        code += 8;
    }
    if ev.modifiers.contains(KeyModifiers::CONTROL) {
        code += 16;
    }
    let (x, y) = (col + 1, row + 1);
    Some(match encoding {
        MouseProtocolEncoding::Sgr => {
            let end = if release { 'm' } else { 'M' };
            format!("\x1b[<{code};{x};{y}{end}").into_bytes()
        }
        MouseProtocolEncoding::Default | MouseProtocolEncoding::Utf8 => {
            // The legacy form reports a release as button 3 and cannot go past column 223.
            let code = if release { 3 + (code & !3) } else { code };
            let clamp = |v: u16| u8::try_from((v + 32).min(255)).unwrap_or(255);
            vec![0x1b, b'[', b'M', clamp(code), clamp(x), clamp(y)]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn keys_encode_as_xterm_does() {
        let none = KeyModifiers::NONE;
        let cases: Vec<(KeyEvent, bool, &[u8])> = vec![
            (key(KeyCode::Char('a'), none), false, b"a"),
            (key(KeyCode::Char('é'), none), false, "é".as_bytes()),
            (
                key(KeyCode::Char('c'), KeyModifiers::CONTROL),
                false,
                b"\x03",
            ),
            (key(KeyCode::Char('x'), KeyModifiers::ALT), false, b"\x1bx"),
            (key(KeyCode::Enter, none), false, b"\r"),
            (key(KeyCode::Backspace, none), false, b"\x7f"),
            (key(KeyCode::Up, none), false, b"\x1b[A"),
            (key(KeyCode::Up, none), true, b"\x1bOA"),
            (
                key(KeyCode::Left, KeyModifiers::CONTROL),
                true,
                b"\x1b[1;5D",
            ),
            (key(KeyCode::Delete, none), false, b"\x1b[3~"),
            (
                key(KeyCode::PageUp, KeyModifiers::SHIFT),
                false,
                b"\x1b[5;2~",
            ),
            (key(KeyCode::F(1), none), false, b"\x1bOP"),
            (key(KeyCode::F(5), none), false, b"\x1b[15~"),
            (key(KeyCode::F(12), none), false, b"\x1b[24~"),
            (key(KeyCode::BackTab, KeyModifiers::SHIFT), false, b"\x1b[Z"),
        ];
        for (k, app, want) in cases {
            assert_eq!(encode_key(&k, app).as_deref(), Some(want), "{k:?}");
        }
        let mut release = key(KeyCode::Char('a'), none);
        release.kind = KeyEventKind::Release;
        assert_eq!(encode_key(&release, false), None);
    }

    #[test]
    fn pastes_are_bracketed_when_asked_and_cannot_end_the_bracket_early() {
        assert_eq!(encode_paste("a\nb", false), b"a\rb");
        assert_eq!(
            encode_paste("x\x1b[201~rm -rf /\n", true),
            b"\x1b[200~xrm -rf /\r\x1b[201~"
        );
    }

    #[test]
    fn mouse_events_follow_the_programs_mode_and_encoding() {
        let ev = |kind| MouseEvent {
            kind,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        };
        let down = ev(MouseEventKind::Down(MouseButton::Left));
        let up = ev(MouseEventKind::Up(MouseButton::Left));
        use MouseProtocolEncoding as E;
        use MouseProtocolMode as M;
        assert_eq!(encode_mouse(&down, 4, 2, M::None, E::Sgr), None);
        assert_eq!(
            encode_mouse(&down, 4, 2, M::PressRelease, E::Sgr).unwrap(),
            b"\x1b[<0;5;3M"
        );
        assert_eq!(
            encode_mouse(&up, 4, 2, M::PressRelease, E::Sgr).unwrap(),
            b"\x1b[<0;5;3m"
        );
        assert_eq!(encode_mouse(&up, 4, 2, M::Press, E::Sgr), None);
        assert_eq!(
            encode_mouse(&down, 4, 2, M::PressRelease, E::Default).unwrap(),
            vec![0x1b, b'[', b'M', 32, 37, 35]
        );
        let wheel = ev(MouseEventKind::ScrollUp);
        assert_eq!(
            encode_mouse(&wheel, 0, 0, M::PressRelease, E::Sgr).unwrap(),
            b"\x1b[<64;1;1M"
        );
        let moved = ev(MouseEventKind::Moved);
        assert_eq!(encode_mouse(&moved, 0, 0, M::ButtonMotion, E::Sgr), None);
    }
}
