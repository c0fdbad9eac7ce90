//! Draws a vt100 screen into a ratatui buffer: every cell with its colours and attributes,
//! wide characters once, and where the cursor goes.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;

pub struct ScreenView<'a> {
    screen: &'a vt100::Screen,
}

impl<'a> ScreenView<'a> {
    pub fn new(screen: &'a vt100::Screen) -> Self {
        Self { screen }
    }

    /// Where the terminal cursor belongs when the screen is drawn in `area`, if it shows.
    pub fn cursor(&self, area: Rect) -> Option<Position> {
        if self.screen.hide_cursor() || self.screen.scrollback() > 0 {
            return None;
        }
        let (row, col) = self.screen.cursor_position();
        (row < area.height && col < area.width).then(|| Position::new(area.x + col, area.y + row))
    }
}

fn color(c: vt100::Color) -> Color {
    match c {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(i) => Color::Indexed(i),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

pub fn style_of(cell: &vt100::Cell) -> Style {
    let mut m = Modifier::empty();
    if cell.bold() {
        m |= Modifier::BOLD;
    }
    if cell.dim() {
        m |= Modifier::DIM;
    }
    if cell.italic() {
        m |= Modifier::ITALIC;
    }
    if cell.underline() {
        m |= Modifier::UNDERLINED;
    }
    if cell.inverse() {
        m |= Modifier::REVERSED;
    }
    Style::default()
        .fg(color(cell.fgcolor()))
        .bg(color(cell.bgcolor()))
        .add_modifier(m)
}

impl Widget for ScreenView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (rows, cols) = self.screen.size();
        let height = area.height.min(rows.get());
        let width = area.width.min(cols.get());
        for row in 0..height {
            for col in 0..width {
                let Some(cell) = self.screen.cell(row, col) else {
                    continue;
                };
                if cell.is_wide_continuation() {
                    continue;
                }
                let Some(target) = buf.cell_mut(Position::new(area.x + col, area.y + row)) else {
                    continue;
                };
                let text = cell.contents();
                // A wide character that does not fit the last column is dropped, not cut.
                if cell.is_wide() && col + 1 >= width {
                    target.set_symbol(" ");
                } else {
                    target.set_symbol(if text.is_empty() { " " } else { text });
                }
                target.set_style(style_of(cell));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(bytes: &[u8], w: u16, h: u16) -> (Buffer, Option<Position>) {
        let mut p = vt100::Parser::new(
            std::num::NonZeroU16::new(h).unwrap(),
            std::num::NonZeroU16::new(w).unwrap(),
            0,
        );
        p.process(bytes);
        let area = Rect::new(0, 0, w, h);
        let mut buf = Buffer::empty(area);
        let view = ScreenView::new(p.screen());
        let cursor = view.cursor(area);
        view.render(area, &mut buf);
        (buf, cursor)
    }

    #[test]
    fn cells_keep_text_colours_and_attributes() {
        let (buf, cursor) = render(
            b"\x1b[1;31mred\x1b[0m \x1b[7;38;2;1;2;3mrgb\x1b[0m\r\nnext",
            12,
            3,
        );
        let c = &buf[(0, 0)];
        assert_eq!(c.symbol(), "r");
        assert_eq!(c.fg, Color::Indexed(1));
        assert!(c.modifier.contains(Modifier::BOLD));
        let r = &buf[(4, 0)];
        assert_eq!(r.fg, Color::Rgb(1, 2, 3));
        assert!(r.modifier.contains(Modifier::REVERSED));
        assert_eq!(buf[(0, 1)].symbol(), "n");
        assert_eq!(cursor, Some(Position::new(4, 1)));
    }

    #[test]
    fn wide_characters_take_two_cells_and_a_hidden_cursor_is_not_placed() {
        let (buf, cursor) = render("日本\x1b[?25l".as_bytes(), 6, 1);
        assert_eq!(buf[(0, 0)].symbol(), "日");
        assert_eq!(buf[(2, 0)].symbol(), "本");
        assert_eq!(cursor, None);
    }

    #[test]
    fn a_smaller_area_clips_instead_of_panicking() {
        let (buf, _) = render(b"0123456789", 10, 2);
        let mut small = Buffer::empty(Rect::new(0, 0, 4, 1));
        let mut p = vt100::Parser::new(
            std::num::NonZeroU16::new(2).unwrap(),
            std::num::NonZeroU16::new(10).unwrap(),
            0,
        );
        p.process(b"0123456789");
        ScreenView::new(p.screen()).render(Rect::new(0, 0, 4, 1), &mut small);
        assert_eq!(small[(3, 0)].symbol(), "3");
        assert_eq!(buf[(9, 0)].symbol(), "9");
    }
}
