//! The embedded pane with local commands: drawing, keys, resizes, exit reports, and the whole
//! chain pane → attach client → session holder → shell on this host.

mod common;

use bottle_tui::engine::attach::AttachCommand;
use bottle_tui::tui::pane::view::ScreenView;
use bottle_tui::tui::pane::{Exit, Pane, PaneEvent, PaneSize};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::widgets::{Block, Borders};
use std::time::Duration;
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(30);

fn cmd(program: &str, args: &[&str]) -> AttachCommand {
    AttachCommand {
        program: program.into(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn spawn(
    program: &str,
    args: &[&str],
    size: PaneSize,
) -> (Pane, mpsc::UnboundedReceiver<PaneEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pane = Pane::spawn(1, &cmd(program, args), size, tx).expect("spawn");
    (pane, rx)
}

const SIZE: PaneSize = PaneSize { rows: 24, cols: 80 };

/// Waits until the pane's screen contains `needle` (taking the dirty flag as a UI would).
async fn until_text(pane: &Pane, rx: &mut mpsc::UnboundedReceiver<PaneEvent>, needle: &str) {
    let fut = async {
        loop {
            if pane.screen().screen().contents().contains(needle) {
                return;
            }
            match rx.recv().await {
                Some(PaneEvent::Output(_)) => {
                    pane.take_dirty();
                }
                Some(PaneEvent::Exited(_, e)) => {
                    assert!(
                        pane.screen().screen().contents().contains(needle),
                        "exited ({e}) without showing {needle:?}:\n{}",
                        pane.screen().screen().contents()
                    );
                    return;
                }
                None => panic!("pane channel closed"),
            }
        }
    };
    tokio::time::timeout(LONG, fut).await.unwrap_or_else(|_| {
        panic!(
            "{needle:?} never appeared; screen:\n{}",
            pane.screen().screen().contents()
        )
    });
}

async fn until_exit(rx: &mut mpsc::UnboundedReceiver<PaneEvent>) -> Exit {
    tokio::time::timeout(LONG, async {
        loop {
            if let Some(PaneEvent::Exited(_, e)) = rx.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("the pane's program did not exit")
}

#[tokio::test]
async fn output_is_drawn_with_colours_and_the_exit_is_reported() {
    let (pane, mut rx) = spawn(
        "sh",
        &["-c", "printf '\\033[32mgreen\\033[0m ok'; exit 3"],
        PaneSize { rows: 4, cols: 30 },
    );
    let exit = until_exit(&mut rx).await;
    assert_eq!(
        exit,
        Exit {
            code: 3,
            signal: None
        }
    );
    assert_eq!(pane.exit(), Some(exit));
    let mut term = Terminal::new(TestBackend::new(32, 6)).unwrap();
    term.draw(|f| {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(" agent · ctrl-q detaches ");
        let inner = block.inner(f.area());
        f.render_widget(block, f.area());
        let screen = pane.screen();
        f.render_widget(ScreenView::new(screen.screen()), inner);
    })
    .unwrap();
    let buf = term.backend().buffer().clone();
    assert_eq!(buf[(1, 1)].symbol(), "g");
    assert_eq!(buf[(1, 1)].fg, Color::Indexed(2));
    assert_eq!(buf[(7, 1)].fg, Color::Reset);
    insta::assert_snapshot!(term.backend());
}

#[tokio::test]
async fn one_output_event_per_burst_until_the_ui_takes_it() {
    let (pane, mut rx) = spawn("sh", &["-c", "seq 1 20000"], SIZE);
    // Count every event until the exit: the UI never took the dirty flag, so 20,000 lines
    // (many reads) must have woken it exactly once.
    let mut outputs = 0;
    tokio::time::timeout(LONG, async {
        loop {
            match rx.recv().await {
                Some(PaneEvent::Output(_)) => outputs += 1,
                Some(PaneEvent::Exited(..)) => break,
                None => panic!("pane channel closed"),
            }
        }
    })
    .await
    .expect("the program did not exit");
    assert_eq!(outputs, 1, "output events without a redraw");
    assert!(pane.take_dirty());
    assert!(!pane.take_dirty());
    assert!(pane.screen().screen().contents().contains("20000"));
}

#[tokio::test]
async fn keys_reach_the_program() {
    let (pane, mut rx) = spawn("cat", &[], SIZE);
    for c in "hello".chars() {
        pane.key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    pane.key(&KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    // The terminal echoes the line, then cat prints it again.
    until_text(&pane, &mut rx, "hello\nhello").await;
    pane.key(&KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL));
    assert_eq!(until_exit(&mut rx).await.code, 0);
}

#[tokio::test]
async fn a_resize_reaches_the_program() {
    let (mut pane, mut rx) = spawn("sh", &["-c", "read x; stty size; sleep 5"], SIZE);
    pane.resize(PaneSize { rows: 10, cols: 40 });
    pane.send(b"\r".to_vec());
    until_text(&pane, &mut rx, "10 40").await;
    assert_eq!(pane.screen().screen().size().1.get(), 40);
}

#[tokio::test]
async fn killing_the_pane_reports_the_signal() {
    let (mut pane, mut rx) = spawn("sleep", &["100"], SIZE);
    pane.kill();
    let exit = until_exit(&mut rx).await;
    assert!(exit.signal.is_some(), "{exit:?}");
}

#[tokio::test]
async fn the_pane_attaches_to_a_session_and_its_detach_key_leaves_the_agent_running() {
    let holder = common::session::Holder::start(&["sh"], true);
    drop(
        holder
            .connect(bottle_tui::sidecar::session::protocol::Size::UNKNOWN)
            .await,
    );
    let dir = format!("BOTTLE_SESSION_DIR={}", holder.dir.path().display());
    let attach = [
        dir.as_str(),
        common::session::SIDECAR,
        "session",
        "attach",
        "--name",
        "local",
    ];
    let (pane, mut rx) = spawn("env", &attach, SIZE);
    for c in "echo hi-$((6*7))".chars() {
        pane.key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    pane.key(&KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    until_text(&pane, &mut rx, "hi-42").await;
    // ctrl-q is the attach client's default detach key.
    pane.key(&KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL));
    assert_eq!(until_exit(&mut rx).await.code, 0);
    let record = std::fs::read_to_string(holder.paths().record()).unwrap();
    assert!(record.contains("\"running\""), "{record}");

    // A second pane repaints the earlier output at once.
    let (again, mut rx2) = spawn("env", &attach, SIZE);
    until_text(&again, &mut rx2, "hi-42").await;
}

#[tokio::test]
async fn the_pane_answers_status_and_cursor_position_queries() {
    let script = r#"stty -echo -icanon; printf 'ab\033[6n'; r=$(dd bs=1 count=6 2>/dev/null); printf '\033[5n'; s=$(dd bs=1 count=4 2>/dev/null); printf '\ngot:%s %s\n' "$r" "$s" | tr -d '\033'; sleep 2"#;
    let (pane, mut rx) = spawn("sh", &["-c", script], SIZE);
    until_text(&pane, &mut rx, "got:[1;3R [0n").await;
}
