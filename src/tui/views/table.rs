//! The bottles table: one row per bottle, a dot per daemon. Columns that matter least
//! (an alias column of dashes, backend, alias) give way first when the terminal is narrow;
//! the slug never is cut.

use super::{age, epoch};
use crate::engine::reconcile::BottleStatus;
use crate::tui::app::App;
use crate::types::{AgentState, BottleState};
use crate::wire::session::AgentStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    Slug,
    Bottle,
    Backend,
    State,
    Agent,
    Status,
    Up,
    Health,
    Alias,
    Blocked,
    Egress,
    Pending,
}

const ALL: [Col; 13] = [
    Col::Mark,
    Col::Slug,
    Col::Bottle,
    Col::Backend,
    Col::State,
    Col::Agent,
    Col::Status,
    Col::Up,
    Col::Health,
    Col::Alias,
    Col::Blocked,
    Col::Egress,
    Col::Pending,
];

/// Dropped in this order when the row does not fit; an alias column that would show only
/// dashes (no bottle has an alias) goes first, the live egress last.
fn optional(app: &App) -> [Col; 4] {
    if app.bottles.iter().any(|b| b.alias.is_some()) {
        [Col::Backend, Col::Alias, Col::Bottle, Col::Egress]
    } else {
        [Col::Alias, Col::Backend, Col::Bottle, Col::Egress]
    }
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Self::Mark => "",
            Self::Slug => "SLUG",
            Self::Bottle => "BOTTLE",
            Self::Backend => "BACKEND",
            Self::State => "STATE",
            Self::Agent => "AGENT",
            Self::Status => "STATUS",
            Self::Up => "UP",
            Self::Health => "HEALTH",
            Self::Alias => "ALIAS",
            Self::Blocked => "BLOCKED",
            Self::Egress => "EGRESS/MIN",
            Self::Pending => "PENDING",
        }
    }

    fn width(self, app: &App) -> u16 {
        let longest = |f: fn(&BottleStatus) -> usize, min: usize| {
            let n = app.bottles.iter().map(f).max().unwrap_or(0).clamp(min, 40);
            u16::try_from(n).unwrap_or(40)
        };
        match self {
            Self::Mark => 1,
            Self::Slug => longest(|b| b.slug.chars().count(), 4),
            Self::Bottle => longest(|b| b.bottle.chars().count(), 6),
            Self::Backend => 7,
            Self::State => 8,
            Self::Agent => 10,
            // "needs-you 12m"
            Self::Status => 13,
            Self::Up => 6,
            // A dot, the daemon's short label and a space each.
            Self::Health => longest(
                |b| b.health.keys().map(|d| d.short().len() + 2).sum::<usize>(),
                6,
            ),
            Self::Alias => 10,
            Self::Blocked => 7,
            Self::Egress => 10,
            Self::Pending => 7,
        }
    }

    fn cell(self, app: &App, b: &BottleStatus) -> Cell<'static> {
        let t = app.theme;
        match self {
            Self::Mark => Cell::from(if app.marked.contains(&b.slug) {
                "▌"
            } else {
                " "
            }),
            Self::Slug => Cell::from(b.slug.to_string()),
            Self::Bottle => Cell::from(b.bottle.clone()),
            Self::Backend => Cell::from(b.backend.clone()),
            Self::State => Cell::from(Span::styled(
                b.state.as_str(),
                match b.state {
                    BottleState::Running => t.good(),
                    BottleState::Exited | BottleState::Created => t.warn(),
                    BottleState::Broken => t.bad(),
                },
            )),
            Self::Agent => Cell::from(match (b.agent.state, b.agent.exit_code) {
                (AgentState::Exited, Some(c)) => format!("exited {c}"),
                (s, _) => s.to_string(),
            }),
            Self::Status => match app.activity(b) {
                None => Cell::from(Span::styled("–", t.dim())),
                Some(a) => {
                    let style = match a.status {
                        AgentStatus::NeedsYou => t.bad(),
                        AgentStatus::Working => t.good(),
                        AgentStatus::Idle => t.warn(),
                        AgentStatus::Starting | AgentStatus::Exited => t.dim(),
                    };
                    let since = epoch(&a.since).map_or_else(String::new, |at| age(app.now - at));
                    Cell::from(Line::from(vec![
                        Span::styled(a.status.as_str(), style),
                        Span::styled(format!(" {since}"), t.dim()),
                    ]))
                }
            },
            Self::Up => {
                Cell::from(epoch(&b.created).map_or_else(String::new, |c| age(app.now - c)))
            }
            Self::Health => {
                let mut dots = Vec::new();
                for (daemon, status) in &app.health(b) {
                    let (dot, style) = t.health(status);
                    dots.push(Span::styled(dot, style));
                    dots.push(Span::styled(format!("{} ", daemon.short()), t.dim()));
                }
                Cell::from(Line::from(dots))
            }
            Self::Alias => Cell::from(b.alias.clone().unwrap_or_else(|| "–".into())),
            Self::Blocked => {
                let n = app.blocked(&b.slug);
                Cell::from(Span::styled(
                    n.to_string(),
                    if n > 0 { t.warn() } else { t.dim() },
                ))
            }
            // Requests per minute, the last ten minutes; a minute with refusals in red.
            Self::Egress => {
                let minutes = app
                    .egress
                    .get(&b.slug)
                    .map(|e| e.minutes(app.now))
                    .unwrap_or_else(|| vec![(0, 0); crate::tui::app::EGRESS_MINUTES]);
                let counts: Vec<u64> = minutes.iter().map(|(r, _)| u64::from(*r)).collect();
                let bars = super::spark(&counts);
                Cell::from(Line::from(
                    bars.chars()
                        .zip(&minutes)
                        .map(|(c, (_, denied))| {
                            Span::styled(c.to_string(), if *denied > 0 { t.bad() } else { t.dim() })
                        })
                        .collect::<Vec<_>>(),
                ))
            }
            Self::Pending => match app.pending_of(&b.slug) {
                0 => Cell::from(Span::styled("–", t.dim())),
                n => Cell::from(Span::styled(n.to_string(), t.warn())),
            },
        }
    }
}

/// The columns that fit `width` (borders and one space between columns included).
fn columns(app: &App, width: u16) -> Vec<Col> {
    let mut cols = ALL.to_vec();
    let need = |cols: &[Col]| cols.iter().map(|c| c.width(app) + 1).sum::<u16>() + 2;
    for drop in optional(app) {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    cols
}

pub fn draw(f: &mut Frame<'_>, app: &App, area: Rect) {
    let t = app.theme;
    let cols = columns(app, area.width);
    let header = Row::new(
        cols.iter()
            .map(|c| Cell::from(Span::styled(c.title(), t.dim())))
            .collect::<Vec<_>>(),
    );
    let visible = app.visible();
    let rows: Vec<Row> = visible
        .iter()
        .map(|b| Row::new(cols.iter().map(|c| c.cell(app, b)).collect::<Vec<_>>()))
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| Constraint::Length(c.width(app)))
        .collect();
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
    state.select(
        app.selected
            .as_deref()
            .and_then(|s| visible.iter().position(|b| b.slug == s)),
    );
    f.render_stateful_widget(table, area, &mut state);
    if visible.is_empty() && area.height > 3 {
        let msg = if app.bottles.is_empty() {
            format!(
                "no bottles yet — {} launches one from the config",
                app.keymap.key_of(crate::tui::keymap::Action::Launch)
            )
        } else {
            "nothing matches the filter (esc clears it)".to_owned()
        };
        let line = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: 1,
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.dim())), line);
    }
}
