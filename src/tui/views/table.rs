//! The bottles table: one row per bottle, a dot per daemon.

use super::{age, epoch};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table, TableState};

pub fn draw(f: &mut Frame<'_>, app: &App, area: Rect) {
    let t = app.theme;
    let header = Row::new(
        [
            "",
            "SLUG",
            "BOTTLE",
            "BACKEND",
            "STATE",
            "AGENT",
            "UP",
            "HEALTH",
            "ALIAS",
            "BLOCKED",
            "APPROVALS",
        ]
        .map(|h| Cell::from(Span::styled(h, t.dim()))),
    );
    let rows: Vec<Row> = app
        .visible()
        .into_iter()
        .map(|b| {
            let mark = if app.marked.contains(&b.slug) {
                "▌"
            } else {
                " "
            };
            let state_style = match b.state.as_str() {
                "running" => t.good(),
                "exited" | "created" => t.warn(),
                _ => t.bad(),
            };
            let agent = match (b.agent.state.as_str(), b.agent.exit_code) {
                ("exited", Some(c)) => format!("exited {c}"),
                (s, _) => s.to_owned(),
            };
            let up = epoch(&b.created).map_or_else(String::new, |c| age(app.now - c));
            let mut dots = Vec::new();
            for (daemon, status) in &b.health {
                let (dot, style) = t.health(status);
                dots.push(Span::styled(dot, style));
                dots.push(Span::styled(
                    format!("{} ", daemon.chars().next().unwrap_or('?')),
                    t.dim(),
                ));
            }
            let blocked = app.blocked(&b.slug);
            Row::new(vec![
                Cell::from(mark),
                Cell::from(b.slug.clone()),
                Cell::from(b.bottle.clone()),
                Cell::from(b.backend.clone()),
                Cell::from(Span::styled(b.state.clone(), state_style)),
                Cell::from(agent),
                Cell::from(up),
                Cell::from(Line::from(dots)),
                Cell::from(b.alias.clone().unwrap_or_else(|| "–".into())),
                Cell::from(Span::styled(
                    blocked.to_string(),
                    if blocked > 0 { t.warn() } else { t.dim() },
                )),
                Cell::from(Span::styled("–", t.dim())),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let longest = |f: fn(&crate::engine::reconcile::BottleStatus) -> usize, min: usize| {
        let n = app.bottles.iter().map(f).max().unwrap_or(0).clamp(min, 32);
        u16::try_from(n).unwrap_or(32)
    };
    let widths = [
        Constraint::Length(1),
        Constraint::Length(longest(|b| b.slug.chars().count(), 4)),
        Constraint::Length(longest(|b| b.bottle.chars().count(), 6)),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(9),
    ];
    let title = if app.filter.is_empty() {
        " bottles ".to_owned()
    } else {
        format!(" bottles matching /{} ", app.filter)
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(t.selected());
    let mut state = TableState::default();
    let selected = app
        .selected
        .as_deref()
        .and_then(|s| app.visible().iter().position(|b| b.slug == s));
    state.select(selected);
    f.render_stateful_widget(table, area, &mut state);
    if empty {
        let msg = if app.bottles.is_empty() {
            format!(
                "no bottles yet — {} launches one from the config",
                app.keymap.key_of("launch")
            )
        } else {
            "nothing matches the filter (esc clears it)".to_owned()
        };
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: 1.min(area.height.saturating_sub(3)),
        };
        f.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(msg, t.dim())),
            inner,
        );
    }
}
