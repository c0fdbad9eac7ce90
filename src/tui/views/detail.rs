//! The detail panel for the selection: what it is, what it is made of, its environment with
//! credentials redacted, its latest log lines, and a live preview of the agent's screen.

use crate::engine::redact::redact;
use crate::tui::app::App;
use crate::tui::pane::view::ScreenView;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn draw(f: &mut Frame<'_>, app: &App, area: Rect) {
    let t = app.theme;
    let Some(b) = app.selected_bottle() else {
        f.render_widget(
            Paragraph::new(Span::styled("select a bottle", t.dim()))
                .block(Block::default().borders(Borders::ALL).title(" detail ")),
            area,
        );
        return;
    };
    let preview = app.preview.as_ref().filter(|p| p.slug == b.slug);
    let [info, screen] = if preview.is_some() {
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area)
    } else {
        [area, Rect::default()]
    };
    let key = |k: &str| Span::styled(format!("{k:<10}"), t.dim());
    let mut lines = vec![
        Line::from(vec![
            key("bottle"),
            Span::raw(format!("{} ({})", b.bottle, b.backend)),
        ]),
        Line::from(vec![key("state"), Span::raw(b.state.as_str())]),
        Line::from(vec![
            key("agent"),
            Span::raw(match b.agent.exit_code {
                Some(c) => format!("{} (code {c})", b.agent.state),
                None => b.agent.state.to_string(),
            }),
        ]),
        match app.activity(b) {
            None => Line::from(vec![key("status"), Span::styled("not said yet", t.dim())]),
            Some(a) => {
                let since = super::epoch(&a.since)
                    .map(|at| format!(" for {}", super::age(app.now - at)))
                    .unwrap_or_default();
                let reason = a.reason.as_deref().map_or_else(String::new, |r| {
                    format!(": {}", crate::engine::approvals::one_line(r, 200))
                });
                Line::from(vec![
                    key("status"),
                    Span::raw(format!("{}{since}{reason}", a.status)),
                ])
            }
        },
        Line::from(vec![key("created"), Span::raw(b.created.clone())]),
        Line::from(vec![
            key("config"),
            Span::raw(format!(
                "{} · v{}",
                b.config_hash.get(..12).unwrap_or(&b.config_hash),
                b.version
            )),
        ]),
    ];
    // CPU and memory over the last minutes, from the one stats stream (the selection's).
    if let Some((_, samples)) = app.usage.as_ref().filter(|(s, _)| *s == b.slug) {
        let width = usize::from(info.width.saturating_sub(28)).clamp(8, 60);
        let recent: Vec<_> = samples.iter().rev().take(width).rev().collect();
        let cpu: Vec<u64> = recent
            .iter()
            .map(|u| u.cpu_percent.round() as u64)
            .collect();
        let mem: Vec<u64> = recent.iter().map(|u| u.memory_bytes).collect();
        if let Some(last) = recent.last() {
            lines.push(Line::from(vec![
                key("cpu"),
                Span::styled(super::spark(&cpu), t.good()),
                Span::raw(format!(" {:.0}%", last.cpu_percent)),
            ]));
            lines.push(Line::from(vec![
                key("memory"),
                Span::styled(super::spark(&mem), t.good()),
                Span::raw(format!(
                    " {} of {}",
                    mib(last.memory_bytes),
                    mib(last.memory_limit)
                )),
            ]));
        }
    }
    if let Some(plan) = app.plans.get(&b.slug) {
        for (k, v) in plan {
            lines.push(Line::from(vec![key(k), Span::raw(v.clone())]));
        }
    }
    for (daemon, status) in &app.health(b) {
        let (dot, style) = t.health(status);
        lines.push(Line::from(vec![
            key(daemon.as_str()),
            Span::styled(dot, style),
            Span::raw(format!(" {status}")),
        ]));
    }
    // What happened lately comes before the resources: with the preview open, the panel's
    // lower half is cut.
    for (time, what) in app.history.get(&b.slug).into_iter().flatten() {
        let ago = super::epoch(time)
            .map(|at| format!("{} ago ", super::age(app.now - at)))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            key("history"),
            Span::styled(ago, t.dim()),
            Span::raw(crate::engine::approvals::one_line(what, 200)),
        ]));
    }
    for c in b.bundle.iter().chain(b.agent_container.iter()) {
        let addrs: Vec<String> = c
            .networks
            .iter()
            .map(|(n, ip)| match ip {
                Some(ip) => format!("{n} {ip}"),
                None => n.clone(),
            })
            .collect();
        lines.push(Line::from(vec![
            key("container"),
            Span::raw(format!("{} [{}]", c.name, addrs.join(", "))),
        ]));
    }
    for n in &b.networks {
        lines.push(Line::from(vec![key("network"), Span::raw(n.clone())]));
    }
    if let Some(a) = &b.agent_container {
        for e in a.env.iter().filter(|e| !e.starts_with("PATH=")) {
            lines.push(Line::from(vec![key("env"), Span::raw(redact(e, &[]))]));
        }
    }
    for e in app.logs.recent(&b.slug, 5) {
        let style = if e.deny { t.warn() } else { t.dim() };
        lines.push(Line::from(vec![
            key(&e.daemon),
            Span::styled(e.text.chars().take(200).collect::<String>(), style),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} ", b.slug)),
        ),
        info,
    );
    if let Some(p) = preview {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.dim())
            .title(Span::styled(
                format!(
                    " agent screen (live) · {} opens ",
                    app.keymap.key_of(crate::tui::keymap::Action::Attach)
                ),
                t.dim(),
            ));
        let inner = block.inner(screen);
        f.render_widget(block, screen);
        let parser = p.pane.screen();
        f.render_widget(ScreenView::new(parser.screen()), inner);
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}
