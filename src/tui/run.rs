//! The dashboard's loop: one `select!` over terminal events, worker messages, pane events and a
//! slow clock. State lives in `App`; the screen is redrawn only when something changed.

use super::app::{App, Mode};
use super::keymap::Keymap;
use super::msg::{Effect, Msg};
use super::pane::{Pane, PaneEvent, PaneId, PaneSize};
use super::theme::Theme;
use super::views;
use super::worker::{self, Context};
use crate::config::Config;
use crate::sidecar::session::DetachKey;
use crate::state::StateRoot;
use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use std::io::Stdout;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A preview's terminal is bigger than any panel: it never sets the agent's size, so it must
/// hold whatever size the agent has and the panel shows its top-left corner.
const PREVIEW: PaneSize = PaneSize {
    rows: 60,
    cols: 250,
};

/// Leaves the terminal as it found it, however the loop ends (a panic included).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<Self> {
        crossterm::terminal::enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableMouseCapture,
            crossterm::event::EnableBracketedPaste
        )
        .wrap_err("cannot set up the terminal")?;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            hook(info);
        }));
        Ok(Self)
    }
}

fn restore() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::event::DisableBracketedPaste,
        crossterm::event::DisableMouseCapture,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = crossterm::terminal::disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

pub fn run(config: Config, banner: Option<String>, root: StateRoot) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    let keymap = Keymap::new(&config.keys);
    let detach_key = detach_key(&keymap);
    let mut app = App::new(
        keymap,
        Theme::from_env(),
        config.bottles.keys().cloned().collect(),
    );
    app.save_dir = root.path().join("saved-logs");
    app.bell = config.dashboard.bell;
    app.banner = banner;
    let result = rt.block_on(async {
        let _guard = TerminalGuard::enter()?;
        let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
            .wrap_err("cannot draw on this terminal")?;
        terminal.clear()?;
        event_loop(&mut terminal, &mut app, config, root, detach_key).await
    });
    // Panes end with the app: their attach clients are sent the detach key, given a moment to
    // leave (both halves, the one inside the container too), and the agents keep running.
    let had_panes = app.pane.is_some() || app.preview.is_some();
    drop(app);
    if had_panes {
        std::thread::sleep(Duration::from_millis(300));
    }
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// The pane's attach client detaches on the same key the dashboard uses when that key can
/// reach it (a ctrl chord); the dashboard catches it first anyway.
fn detach_key(keymap: &Keymap) -> DetachKey {
    keymap
        .key_of(crate::tui::keymap::Action::Detach)
        .parse()
        .unwrap_or(DetachKey::DEFAULT)
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: &mut App,
    config: Config,
    root: StateRoot,
    detach_key: DetachKey,
) -> Result<()> {
    let (msg_tx, mut msgs) = mpsc::unbounded_channel::<Msg>();
    let (pane_tx, mut pane_events) = mpsc::unbounded_channel::<PaneEvent>();
    let commands = worker::spawn(
        Context {
            config: Arc::new(config),
            root,
            detach_key,
        },
        msg_tx,
    );
    let mut input = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(5));
    let mut next_pane: PaneId = 1;
    let mut dirty = true;
    app.now = time::OffsetDateTime::now_utc().unix_timestamp();
    loop {
        if dirty {
            terminal.draw(|f| views::draw(f, app))?;
            dirty = false;
        }
        if std::mem::take(&mut app.ring) {
            // BEL outside any escape sequence: the terminal (or tmux) flags the window.
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = out.write_all(b"\x07").and_then(|()| out.flush());
        }
        let mut todo: Vec<Effect> = Vec::new();
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    todo = app.on_key(&key);
                    tracing::debug!(?key, mode = ?app.mode, ?todo, "key");
                    dirty = true;
                }
                Some(Ok(Event::Mouse(m))) => {
                    let size = terminal.size()?;
                    let areas = views::layout(Rect::new(0, 0, size.width, size.height), app);
                    if app.mode == Mode::Pane {
                        if let (Some(p), Some(inner)) = (&app.pane, areas.pane) {
                            if m.column >= inner.x && m.row >= inner.y {
                                p.pane.mouse(&m, m.column - inner.x, m.row - inner.y);
                            }
                        }
                    } else {
                        todo = app.on_mouse(&m, areas.table.y + 1);
                        dirty = true;
                    }
                }
                Some(Ok(Event::Paste(text))) => {
                    if let (Mode::Pane, Some(p)) = (&app.mode, &app.pane) {
                        p.pane.paste(&text);
                    }
                }
                Some(Ok(Event::Resize(w, h))) => {
                    resize_pane(app, Rect::new(0, 0, w, h));
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).wrap_err("cannot read the terminal"),
                None => return Ok(()),
            },
            Some(msg) = msgs.recv() => {
                tracing::debug!(?msg, "message");
                todo = app.on_msg(msg);
                dirty = true;
            }
            Some(ev) = pane_events.recv() => {
                match &ev {
                    PaneEvent::Output(_) => {
                        let pane = app.pane.as_ref().map(|p| p.pane.take_dirty()).unwrap_or(false);
                        let preview = app.preview.as_ref().map(|p| p.pane.take_dirty()).unwrap_or(false);
                        dirty |= pane || preview;
                    }
                    PaneEvent::Exited(..) => {
                        app.on_pane_event(&ev);
                        dirty = true;
                    }
                }
            }
            _ = clock.tick() => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                // Uptimes move in minutes: redraw when one of them would change.
                let changed = app.bottles.iter().filter_map(|b| views::epoch(&b.created)).any(|c| {
                    (now - c) / 60 != (app.now - c) / 60
                });
                dirty |= changed;
                app.now = now;
            }
        }
        for effect in todo {
            match effect {
                Effect::Engine(c) => {
                    let _ = commands.send(c);
                }
                Effect::PaneKey(key) => {
                    if let Some(p) = &app.pane {
                        p.pane.key(&key);
                    }
                }
                Effect::Save { path, text } => {
                    let written = path
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&path, text))
                        .map(|()| path);
                    app.saved(written);
                    dirty = true;
                }
                Effect::OpenPane {
                    slug,
                    preview,
                    zoomed,
                    command,
                } => {
                    let size = terminal.size()?;
                    let area = Rect::new(0, 0, size.width, size.height);
                    let pane_size = if preview {
                        PREVIEW
                    } else {
                        let r = views::pane_area(area, app, zoomed);
                        PaneSize {
                            rows: r.height,
                            cols: r.width,
                        }
                    };
                    // In case the engine's exec never sizes its terminal.
                    let command = command.with_size(pane_size.cols, pane_size.rows);
                    let pane = Pane::spawn(next_pane, &command, pane_size, pane_tx.clone())
                        .map(|p| p.with_farewell(vec![detach_key.byte()]));
                    next_pane += 1;
                    app.pane_opened(slug, preview, zoomed, pane);
                    dirty = true;
                }
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}

fn resize_pane(app: &mut App, area: Rect) {
    let Some(zoomed) = app.pane.as_ref().map(|p| p.zoomed) else {
        return;
    };
    let r = views::pane_area(area, app, zoomed);
    if let Some(p) = app.pane.as_mut() {
        p.pane.resize(PaneSize {
            rows: r.height,
            cols: r.width,
        });
    }
}
