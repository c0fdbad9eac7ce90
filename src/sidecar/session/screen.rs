//! Turning the holder's screen model into bytes a fresh terminal can show, and undoing what an
//! agent left switched on when a client leaves.

use bytes::Bytes;

/// Lines of history the holder keeps beyond the screen.
pub const SCROLLBACK: usize = 1000;
/// At most this much history goes to a new client (the newest lines): formatting is done on the
/// model thread, which the agent's output waits for.
pub const HISTORY_BUDGET: usize = 2 << 20;

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

/// The lines that scrolled off the top of the main screen, oldest first, printed so that a
/// terminal puts them in its own scrollback: a new client gets them once, before its first
/// repaint, and can scroll back through what the agent printed before it attached. Followed by
/// a screenful of line feeds that push them off the visible rows the repaint then draws. Empty
/// on the alternate screen (full-screen programs keep no history there).
pub fn history(parser: &mut vt100::Parser) -> String {
    let screen = parser.screen_mut();
    let n = screen.scrollback_len();
    if screen.alternate_screen() || n == 0 {
        return String::new();
    }
    let (rows, cols) = screen.size();
    // Newest first, a page at a time: at offset `k` the top rows shown are the history lines
    // from `n - k` on. Stops at the budget, so the oldest lines are the ones left out.
    let mut lines: Vec<String> = Vec::new();
    let mut size = 0;
    let mut done = 0;
    'pages: while done < n {
        let take = (n - done).min(usize::from(rows.get()));
        screen.set_scrollback(done + take);
        let page: Vec<String> = screen.rows_formatted(0, cols.get()).take(take).collect();
        for row in page.into_iter().rev() {
            size += row.len() + 6;
            if size > HISTORY_BUDGET {
                break 'pages;
            }
            lines.push(row);
        }
        done += take;
    }
    screen.set_scrollback(0);
    let mut out = String::with_capacity(size + 16 + usize::from(rows.get()) * 2);
    out.push_str("\x1b[?1049l\x1b[0m\r\n");
    for row in lines.iter().rev() {
        out.push_str(row);
        out.push_str("\x1b[0m\r\n");
    }
    for _ in 0..rows.get() {
        out.push_str("\r\n");
    }
    out
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

    /// Every line a parser holds, history then screen, as text.
    fn all_lines(p: &mut vt100::Parser) -> Vec<String> {
        let screen = p.screen_mut();
        let n = screen.scrollback_len();
        let (rows, cols) = screen.size();
        let mut lines = Vec::new();
        let mut left = n;
        while left > 0 {
            screen.set_scrollback(left);
            let take = left.min(usize::from(rows.get()));
            lines.extend(screen.rows(0, cols.get()).take(take));
            left -= take;
        }
        screen.set_scrollback(0);
        lines.extend(screen.rows(0, cols.get()));
        lines
    }

    #[test]
    fn a_new_viewer_gets_the_history_in_its_scrollback_and_the_same_screen() {
        let mut agent = parser(5, 20);
        agent.process(b"\x1b[31mred first\x1b[0m\r\n");
        for i in 2..=30 {
            agent.process(format!("line {i}\r\n").as_bytes());
        }
        agent.process(b"$ ");
        let mut bytes = history(&mut agent).into_bytes();
        assert_eq!(
            agent.screen().scrollback(),
            0,
            "the agent's view is left live"
        );
        bytes.extend_from_slice(&repaint(agent.screen()));

        let mut viewer = parser(5, 20);
        viewer.process(b"the viewer's own prompt");
        viewer.process(&bytes);
        assert_eq!(viewer.screen().contents(), agent.screen().contents());
        let text: Vec<String> = all_lines(&mut viewer)
            .into_iter()
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        // The viewer's own line stays above the agent's history (cut at 20 columns).
        let mut want = vec!["the viewer's own pro".to_owned(), "red first".to_owned()];
        want.extend((2..=30).map(|i| format!("line {i}")));
        want.push("$".into());
        assert_eq!(text, want);
        // Attributes survive: the first history line is still red.
        viewer.screen_mut().set_scrollback(usize::MAX);
        let top = (0..5)
            .find(|&r| {
                viewer
                    .screen()
                    .contents_between(r, 0, r, 20)
                    .starts_with("red")
            })
            .expect("the red line is in the scrollback");
        assert_eq!(
            viewer.screen().cell(top, 0).map(vt100::Cell::fgcolor),
            Some(vt100::Color::Idx(1))
        );
    }

    #[test]
    fn no_history_no_bytes_and_none_from_the_alternate_screen() {
        let mut fresh = parser(5, 20);
        assert!(history(&mut fresh).is_empty());
        let mut full = parser(5, 20);
        for i in 0..30 {
            full.process(format!("line {i}\r\n").as_bytes());
        }
        full.process(b"\x1b[?1049h");
        assert!(history(&mut full).is_empty());
    }

    /// However much history there is, a new client gets at most the budget of it: the newest
    /// lines.
    #[test]
    fn history_stops_at_its_budget_keeping_the_newest_lines() {
        let mut agent = parser(5, 500);
        for i in 0..1200 {
            // Every cell its own colours: the costliest kind of line to format.
            let mut line = format!("L{i:04}-");
            for c in 0..490 {
                line.push_str(&format!("\x1b[3{};4{}mx", c % 8, (c + 3) % 8));
            }
            agent.process(format!("{line}\x1b[0m\r\n").as_bytes());
        }
        let bytes = history(&mut agent);
        assert!(
            bytes.len() <= HISTORY_BUDGET + 5 * 2 + 16,
            "{}",
            bytes.len()
        );
        assert!(bytes.contains("L1195-"), "the newest history line is there");
        assert!(
            !bytes.contains("L0200-"),
            "the oldest lines are the ones left out ({} bytes)",
            bytes.len()
        );
        assert_eq!(agent.screen().scrollback(), 0);
    }
}
