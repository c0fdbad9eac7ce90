//! Views are pure functions of the `App`: the same state always draws the same screen, which is
//! what the snapshot tests pin. `layout` is shared with the loop, which sizes panes from it.

mod detail;
mod overlays;
mod table;

use super::app::{App, Engine, Mode};
use super::keymap::Action;
use super::pane::view::ScreenView;
pub use super::text::plural;
use crate::types::BottleState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Where everything goes for a terminal of `area`.
pub struct Areas {
    pub header: Rect,
    pub table: Rect,
    pub detail: Rect,
    /// The agent pane (inside its border), when one is open.
    pub pane: Option<Rect>,
    pub footer: Rect,
}

/// Wide terminals put the detail panel beside the table, narrow ones below it.
pub fn layout(area: Rect, app: &App) -> Areas {
    layout_with(area, app, app.pane.as_ref().map(|p| p.zoomed))
}

/// Where a pane opened now would go (inside its border).
pub fn pane_area(area: Rect, app: &App, zoomed: bool) -> Rect {
    layout_with(area, app, Some(zoomed))
        .pane
        .unwrap_or_default()
}

/// `pane`: None with no pane open, else whether it is zoomed.
fn layout_with(area: Rect, app: &App, pane: Option<bool>) -> Areas {
    let top = 1 + u16::from(app.banner.is_some() || !app.setup.needs.is_empty());
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(top),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    if let Some(zoomed) = pane {
        if zoomed {
            return Areas {
                header,
                table: Rect::default(),
                detail: Rect::default(),
                pane: Some(Block::bordered().inner(body)),
                footer,
            };
        }
        let rows = u16::try_from(app.visible().len()).unwrap_or(u16::MAX);
        let table_h = fit(rows + 3, 4, body.height / 3);
        let [table, pane] =
            Layout::vertical([Constraint::Length(table_h), Constraint::Min(3)]).areas(body);
        return Areas {
            header,
            table,
            detail: Rect::default(),
            pane: Some(Block::bordered().inner(pane)),
            footer,
        };
    }
    // Side by side when wide; stacked otherwise, the table only as tall as its rows.
    let split = if body.width >= 140 {
        Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
            .split(body)
    } else {
        let rows = u16::try_from(app.visible().len()).unwrap_or(u16::MAX);
        let table_h = fit(rows + 3, 5, body.height / 2);
        Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(table_h), Constraint::Min(3)])
            .split(body)
    };
    Areas {
        header,
        table: split[0],
        detail: split[1],
        pane: None,
        footer,
    }
}

pub fn draw(f: &mut Frame<'_>, app: &App) {
    let areas = layout(f.area(), app);
    header(f, app, areas.header);
    match &app.mode {
        Mode::Logs(view) => {
            let body = Rect {
                y: areas.header.y + areas.header.height,
                height: f.area().height.saturating_sub(areas.header.height + 1),
                ..f.area()
            };
            overlays::logs(f, app, view, body);
        }
        Mode::Aliases => {
            let body = Rect {
                y: areas.header.y + areas.header.height,
                height: f.area().height.saturating_sub(areas.header.height + 1),
                ..f.area()
            };
            overlays::aliases(f, app, body);
        }
        _ => {
            if areas.table.height > 0 {
                table::draw(f, app, areas.table);
            }
            if let (Some(inner), Some(p)) = (areas.pane, &app.pane) {
                let outer = Rect {
                    x: inner.x - 1,
                    y: inner.y - 1,
                    width: inner.width + 2,
                    height: inner.height + 2,
                };
                let title = format!(
                    " {} · {} detaches, the agent keeps running ",
                    p.slug,
                    app.keymap.key_of(crate::tui::keymap::Action::Detach)
                );
                let focused = app.mode == Mode::Pane;
                let style = if focused {
                    app.theme.title()
                } else {
                    app.theme.dim()
                };
                f.render_widget(
                    Block::default()
                        .borders(Borders::ALL)
                        .border_style(style)
                        .title(Span::styled(title, style)),
                    outer,
                );
                let screen = p.pane.screen();
                let view = ScreenView::new(screen.screen());
                if focused {
                    if let Some(pos) = view.cursor(inner) {
                        f.set_cursor_position(pos);
                    }
                }
                f.render_widget(view, inner);
            } else if areas.detail.height > 0 {
                detail::draw(f, app, areas.detail);
            }
        }
    }
    footer(f, app, areas.footer);
    match &app.mode {
        Mode::Help => overlays::help(f, app),
        Mode::ConfirmKill(slugs) => overlays::confirm_kill(f, app, slugs),
        Mode::Launch(form) => overlays::launch(f, app, form),
        Mode::Approvals(view) => overlays::approvals(f, app, view),
        Mode::Setup => overlays::setup(f, app),
        _ => {}
    }
}

fn header(f: &mut Frame<'_>, app: &App, area: Rect) {
    let t = app.theme;
    let running = app
        .bottles
        .iter()
        .filter(|b| b.state == BottleState::Running)
        .count();
    let mut spans = vec![Span::styled(" bottle-tui ", t.title()), Span::raw(" ")];
    match &app.engine {
        Engine::Up => spans.push(Span::styled("engine ●", t.good())),
        Engine::Connecting => spans.push(Span::styled("engine: connecting…", t.warn())),
        Engine::Down(why) => spans.push(Span::styled(
            format!("engine unreachable — retrying: {why}"),
            t.bad(),
        )),
    }
    spans.push(Span::raw(format!(
        "   {} bottles, {running} running",
        app.bottles.len()
    )));
    let needing = app.needing_you();
    if needing > 0 {
        spans.push(Span::styled(
            format!(
                "   ● {needing} {} you",
                if needing == 1 { "needs" } else { "need" }
            ),
            t.bad(),
        ));
    }
    // What waits for the operator, each with the key that shows it.
    let key = app.keymap.key_of(crate::tui::keymap::Action::Approvals);
    let pending = app.pending_approvals();
    let badges = [
        (
            pending,
            "⚑",
            format!("{pending} pending"),
            "answers",
            t.warn(),
        ),
        (
            app.notices.len(),
            "✉",
            plural(app.notices.len(), "notice"),
            "reads",
            t.warn(),
        ),
        (
            app.unreadable_requests.len(),
            "⚠",
            plural(app.unreadable_requests.len(), "unreadable request file"),
            "names them",
            t.bad(),
        ),
    ];
    for (n, sign, what, verb, style) in badges {
        if n > 0 {
            spans.push(Span::styled(
                format!("   {sign} {what} — {key} {verb}"),
                style,
            ));
        }
    }
    if let Some(why) = &app.queue_trouble {
        spans.push(Span::styled(
            format!("   ⚠ {why} (the pending count may be stale)"),
            t.bad(),
        ));
    }
    if !app.marked.is_empty() {
        spans.push(Span::raw(format!("   {} marked", app.marked.len())));
    }
    spans.push(Span::styled(
        format!("   sort: {}", app.sort.name()),
        t.dim(),
    ));
    let mut lines = vec![Line::from(spans)];
    // The second line: what a launch lacks (with the key that builds it), else which config.
    if app.setup.building {
        let last = app.setup.lines.last().map_or("", |l| l.trim());
        lines.push(Line::from(Span::styled(
            format!(
                " building what a launch needs — {} shows progress: {last}",
                app.keymap.key_of(crate::tui::keymap::Action::Build)
            ),
            t.warn(),
        )));
    } else if !app.setup.needs.is_empty() {
        lines.push(Line::from(Span::styled(
            format!(
                " this machine lacks {} a launch needs — {} shows and builds {}",
                plural(app.setup.needs.len(), "thing"),
                app.keymap.key_of(crate::tui::keymap::Action::Build),
                if app.setup.needs.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ),
            t.warn(),
        )));
    } else if let Some(b) = &app.banner {
        lines.push(Line::from(Span::styled(format!(" {b}"), t.dim())));
    }
    f.render_widget(Paragraph::new(lines), area);
}

/// The footer: the filter being typed, a status message, or the key hints from the binding
/// table for what can be done now.
fn footer(f: &mut Frame<'_>, app: &App, area: Rect) {
    let t = app.theme;
    let line = match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", t.key()),
            Span::raw(app.filter.clone()),
            Span::styled("▏ enter keeps, esc clears", t.dim()),
        ]),
        Mode::Pane => hints(app, &[Action::Detach]),
        Mode::Logs(v) if v.searching => Line::from(vec![
            Span::styled("search: ", t.key()),
            Span::raw(v.search.clone()),
            Span::styled("▏", t.dim()),
        ]),
        Mode::Logs(_) => hints(
            app,
            &[
                Action::Filter,
                Action::Logs,
                Action::Follow,
                Action::DenyOnly,
                Action::Daemon,
                Action::Merged,
                Action::Save,
            ],
        ),
        _ => match &app.status {
            Some(s) => Line::from(Span::styled(s.clone(), t.warn())),
            None => hints(
                app,
                &[
                    Action::Attach,
                    Action::Zoom,
                    Action::Launch,
                    Action::Kill,
                    Action::Logs,
                    Action::Approvals,
                    Action::Filter,
                    Action::Help,
                    Action::Quit,
                    Action::Mark,
                    Action::Sort,
                ],
            ),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

/// `KEY name` for each action, as the key table has them (remaps included).
fn hints(app: &App, actions: &[Action]) -> Line<'static> {
    let t = app.theme;
    let mut spans = Vec::new();
    for action in actions {
        let name = crate::config::keys::row_of(*action).name;
        spans.push(Span::styled(
            format!(" {} ", app.keymap.key_of(*action)),
            t.key(),
        ));
        spans.push(Span::raw(name.to_owned()));
    }
    Line::from(spans)
}

/// `v` at least `lo` and at most `hi`; `hi` wins when the terminal is too small for `lo`
/// (`clamp` would panic).
fn fit(v: u16, lo: u16, hi: u16) -> u16 {
    v.max(lo).min(hi)
}

pub use crate::types::age::{age, epoch};

/// A sparkline of `values` in block characters, scaled to the largest: `▁` is nothing.
pub fn spark(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| match (v, max) {
            (0, _) | (_, 0) => BARS[0],
            // Anything at all shows above nothing; the largest is a full bar.
            _ => BARS[((v * 7).div_ceil(max) as usize).clamp(1, 7)],
        })
        .collect()
}
