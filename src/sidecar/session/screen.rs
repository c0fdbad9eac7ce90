//! Turning the holder's screen model into bytes a fresh terminal can show, and undoing what an
//! agent left switched on when a client leaves.

use bytes::Bytes;

/// Lines of history the holder keeps beyond the screen.
pub const SCROLLBACK: usize = 1000;

pub fn parser(rows: u16, cols: u16) -> vt100::Parser {
    vt100::Parser::new(nonzero(rows), nonzero(cols), SCROLLBACK)
}

pub fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

/// Everything needed to show `screen` on a terminal in an unknown state: the alternate screen
/// if the agent is on it, every cell with its attributes, the cursor, and the input modes
/// (application cursor keys, bracketed paste, mouse reporting) the agent expects.
pub fn repaint(screen: &vt100::Screen) -> Bytes {
    let mut out = String::with_capacity(8192);
    out.push_str(if screen.alternate_screen() {
        "\x1b[?1049h"
    } else {
        "\x1b[?1049l"
    });
    out.push_str(&screen.state_formatted());
    if screen.hide_cursor() {
        out.push_str("\x1b[?25l");
    } else {
        out.push_str("\x1b[?25h");
    }
    Bytes::from(out)
}

/// Puts a terminal back the way a shell expects it after the agent's screen: main screen,
/// plain attributes, visible cursor, no mouse reporting, no bracketed paste, normal keys.
pub const RESET_MODES: &str = "\x1b[?1049l\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?2004l\x1b[?1l\x1b>\x1b[r";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repaint_reproduces_the_screen_on_a_fresh_terminal() {
        let mut agent = parser(5, 20);
        agent.process(b"\x1b[31mred\x1b[0m plain\r\nsecond line\x1b[?2004h\x1b[3;4H");
        let bytes = repaint(agent.screen());
        let mut viewer = parser(5, 20);
        viewer.process(b"junk that was there before\r\n\x1b[7mmore");
        viewer.process(&bytes);
        assert_eq!(viewer.screen().contents(), agent.screen().contents());
        assert_eq!(viewer.screen().cursor_position(), (2, 3));
        assert!(viewer.screen().bracketed_paste());
        assert_eq!(
            viewer.screen().cell(0, 0).unwrap().fgcolor(),
            vt100::Color::Idx(1)
        );
    }

    #[test]
    fn a_repaint_of_a_full_screen_program_enters_the_alternate_screen() {
        let mut agent = parser(5, 20);
        agent.process(b"shell\x1b[?1049hin vim\x1b[?25l");
        let mut viewer = parser(5, 20);
        viewer.process(&repaint(agent.screen()));
        assert!(viewer.screen().alternate_screen());
        assert!(viewer.screen().hide_cursor());
        assert!(viewer.screen().contents().contains("in vim"));
    }
}
