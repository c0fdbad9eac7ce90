//! Text that reaches the operator's terminal from the CLI: what an agent wrote (log lines, the
//! details of its requests) must not be able to move the cursor, retitle the window or hide
//! itself. serde_json escapes C0 controls but leaves DEL and the C1 range (U+0080–U+009F, e.g.
//! U+009B, a one-character CSI) as they are.

use std::borrow::Cow;

fn c1_or_del(c: char) -> bool {
    c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c)
}

/// JSON text with DEL and C1 controls as `\u00XX` escapes (they can only occur inside
/// strings, where the escape means the same character).
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(c1_or_del) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c1_or_del(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line for a terminal: every control character but tab shown as `\xNN` / `\u{NN}`.
pub fn line(text: &str) -> Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\t') || c1_or_del(c);
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if bad(c) {
            if (c as u32) < 0x80 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_c1_and_del_and_stays_the_same_json() {
        let value = serde_json::json!({ "msg": "a\u{9b}2Jb\u{7f}c\u{9d}0;title\u{7}" });
        let raw = serde_json::to_string(&value).expect("json");
        assert!(
            raw.contains('\u{9b}'),
            "serde leaves C1 raw (the reason for this)"
        );
        let safe = json(&raw);
        assert!(
            !safe.chars().any(|c| c1_or_del(c) || c.is_control()),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }

    #[test]
    fn lines_show_controls_instead_of_sending_them() {
        assert_eq!(line("plain\ttext é"), "plain\ttext é");
        assert_eq!(line("\u{1b}[2Jgone"), "\\x1b[2Jgone");
        assert_eq!(line("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(line("bell\u{7}"), "bell\\x07");
        assert_eq!(line("del\u{7f}"), "del\\x7f");
    }
}
