//! The embedded agent terminal: runs a command (the attach client through `docker exec -it`,
//! or anything else) in a PTY of its own, feeds its output to a vt100 parser on a reader
//! thread, and tells the UI loop over a channel when there is something new to draw. Input goes
//! through a writer thread, so a program that stops reading never blocks the UI.

pub mod input;
pub mod view;

use crate::engine::attach::AttachCommand;
use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::{KeyEvent, MouseEvent};
use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Lines of history the pane keeps for scrolling back.
pub const SCROLLBACK: usize = 1000;

/// What a pane tells the UI loop. `Output` is sent once per burst: the pane stays dirty until
/// the UI takes the flag, however much arrives meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneEvent {
    Output(PaneId),
    Exited(PaneId, Exit),
}

/// Tells one pane's events from another's when the UI has several.
pub type PaneId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u32,
    pub signal: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.signal {
            Some(s) => write!(f, "killed by {s}"),
            None => write!(f, "exited with code {}", self.code),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneSize {
    pub rows: u16,
    pub cols: u16,
}

impl PaneSize {
    fn pty(self) -> PtySize {
        PtySize {
            rows: self.rows.max(1),
            cols: self.cols.max(1),
            pixel_width: 0,
            pixel_height: 0,
        }
    }
}

/// Answers the status queries a real terminal answers: programs (and the attach client's
/// liveness probe) wait for them.
#[derive(Debug, Default)]
pub struct Replies {
    pending: Vec<u8>,
}

impl vt100::Callbacks for Replies {
    fn unhandled_csi(
        &mut self,
        screen: &mut vt100::Screen,
        i1: Option<u8>,
        _i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        if c != 'n' || i1.is_some() {
            return;
        }
        match params.first().and_then(|p| p.first()) {
            Some(5) => self.pending.extend_from_slice(b"\x1b[0n"),
            Some(6) => {
                let (row, col) = screen.cursor_position();
                self.pending
                    .extend_from_slice(format!("\x1b[{};{}R", row + 1, col + 1).as_bytes());
            }
            _ => {}
        }
    }
}

pub type Parser = vt100::Parser<Replies>;

pub struct Pane {
    id: PaneId,
    parser: Arc<Mutex<Parser>>,
    master: Box<dyn MasterPty + Send>,
    input: std::sync::mpsc::Sender<Vec<u8>>,
    killer: Box<dyn ChildKiller + Send + Sync>,
    exit: Arc<Mutex<Option<Exit>>>,
    dirty: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    size: PaneSize,
    /// Sent instead of a kill when the pane goes away (an attach client's detach key), so the
    /// program leaves by itself; it is killed only if it has not within a moment.
    farewell: Option<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pane {
    /// Starts `cmd` in a PTY of `size`; events go to `events` tagged with `id`.
    pub fn spawn(
        id: PaneId,
        cmd: &AttachCommand,
        size: PaneSize,
        events: mpsc::UnboundedSender<PaneEvent>,
    ) -> Result<Self> {
        let pair = native_pty_system()
            .openpty(size.pty())
            .map_err(|e| eyre!("cannot open a PTY for the pane: {e}"))?;
        let mut builder = CommandBuilder::new(&cmd.program);
        builder.args(&cmd.args);
        if let Ok(cwd) = std::env::current_dir() {
            builder.cwd(cwd);
        }
        builder.env("TERM", "xterm-256color");
        let mut child = pair
            .slave
            .spawn_command(builder)
            .map_err(|e| eyre!("cannot start `{}`: {e}", cmd.program))?;
        drop(pair.slave);
        let killer = child.clone_killer();
        let reader = pair
            .master
            .try_clone_reader()
            .map_err(|e| eyre!("cannot read the pane's PTY: {e}"))?;
        let writer = pair
            .master
            .take_writer()
            .map_err(|e| eyre!("cannot write to the pane's PTY: {e}"))?;
        let parser = Arc::new(Mutex::new(vt100::Parser::new_with_callbacks(
            nonzero(size.rows),
            nonzero(size.cols),
            SCROLLBACK,
            Replies::default(),
        )));
        let dirty = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let exit = Arc::new(Mutex::new(None));

        let (input, input_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name(format!("pane-{id}-write"))
            .spawn(move || write_input(writer, &input_rx))
            .wrap_err("cannot start the pane's writer")?;
        let (drained_tx, drained_rx) = std::sync::mpsc::channel::<()>();
        {
            let parser = Arc::clone(&parser);
            let dirty = Arc::clone(&dirty);
            let events = events.clone();
            let replies = input.clone();
            let received = Arc::clone(&received);
            std::thread::Builder::new()
                .name(format!("pane-{id}-read"))
                .spawn(move || {
                    let sink = Sink {
                        parser: &parser,
                        dirty: &dirty,
                        received: &received,
                        events: &events,
                        replies: &replies,
                    };
                    read_output(id, reader, &sink, &drained_tx);
                })
                .wrap_err("cannot start the pane's reader")?;
        }
        {
            let exit = Arc::clone(&exit);
            std::thread::Builder::new()
                .name(format!("pane-{id}-wait"))
                .spawn(move || {
                    let status = child.wait();
                    // Output written just before the end is parsed before the UI hears of it;
                    // a leftover process holding the PTY cannot delay the news for long.
                    let _ = drained_rx.recv_timeout(Duration::from_secs(1));
                    let e = match status {
                        Ok(s) => Exit {
                            code: s.exit_code(),
                            signal: s.signal().map(str::to_owned),
                        },
                        Err(e) => Exit {
                            code: 255,
                            signal: Some(format!("unknown ({e})")),
                        },
                    };
                    *lock(&exit) = Some(e.clone());
                    let _ = events.send(PaneEvent::Exited(id, e));
                })
                .wrap_err("cannot start the pane's waiter")?;
        }
        Ok(Self {
            id,
            parser,
            master: pair.master,
            input,
            killer,
            exit,
            dirty,
            received,
            size,
            farewell: None,
        })
    }

    /// Bytes that make the program leave by itself (see `farewell`).
    pub fn with_farewell(mut self, bytes: Vec<u8>) -> Self {
        self.farewell = Some(bytes);
        self
    }

    pub fn id(&self) -> PaneId {
        self.id
    }

    pub fn size(&self) -> PaneSize {
        self.size
    }

    /// Follows the layout: the program sees a resize, the model reflows.
    pub fn resize(&mut self, size: PaneSize) {
        if size == self.size || size.rows == 0 || size.cols == 0 {
            return;
        }
        self.size = size;
        lock(&self.parser)
            .screen_mut()
            .set_size(nonzero(size.rows), nonzero(size.cols));
        // A failed resize leaves the old size: the program still works, just wrongly sized.
        let _ = self.master.resize(size.pty());
        self.dirty.store(true, Ordering::Release);
    }

    /// Raw bytes to the program.
    pub fn send(&self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let _ = self.input.send(bytes);
        }
    }

    pub fn key(&self, key: &KeyEvent) {
        let app_cursor = lock(&self.parser).screen().application_cursor();
        if let Some(bytes) = input::encode_key(key, app_cursor) {
            self.scroll_to_bottom();
            self.send(bytes);
        }
    }

    pub fn paste(&self, text: &str) {
        let bracketed = lock(&self.parser).screen().bracketed_paste();
        self.send(input::encode_paste(text, bracketed));
    }

    /// A mouse event at (`col`, `row`) inside the pane. When the program does not want the
    /// mouse, the wheel scrolls the pane's own history instead.
    pub fn mouse(&self, ev: &MouseEvent, col: u16, row: u16) {
        let (mode, encoding) = {
            let p = lock(&self.parser);
            (
                p.screen().mouse_protocol_mode(),
                p.screen().mouse_protocol_encoding(),
            )
        };
        match input::encode_mouse(ev, col, row, mode, encoding) {
            Some(bytes) => self.send(bytes),
            None => match ev.kind {
                crossterm::event::MouseEventKind::ScrollUp => self.scroll(3),
                crossterm::event::MouseEventKind::ScrollDown => self.scroll(-3),
                _ => {}
            },
        }
    }

    /// Moves the view into history (positive: back in time).
    pub fn scroll(&self, lines: isize) {
        let mut p = lock(&self.parser);
        let now = p.screen().scrollback();
        let to = now.saturating_add_signed(lines);
        p.screen_mut().set_scrollback(to);
        self.dirty.store(true, Ordering::Release);
    }

    fn scroll_to_bottom(&self) {
        let mut p = lock(&self.parser);
        if p.screen().scrollback() != 0 {
            p.screen_mut().set_scrollback(0);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// The screen model, for drawing. Hold it only while rendering.
    pub fn screen(&self) -> MutexGuard<'_, Parser> {
        lock(&self.parser)
    }

    /// True once since the last call if the screen changed: the UI redraws only then.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// Bytes the program has written so far (all of them parsed).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    pub fn exit(&self) -> Option<Exit> {
        lock(&self.exit).clone()
    }

    /// Ends the program (for an attach client: detaches; the agent keeps running).
    pub fn kill(&mut self) {
        if self.exit().is_none() {
            let _ = self.killer.kill();
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let Some(bytes) = self.farewell.take() else {
            self.kill();
            return;
        };
        if self.exit().is_some() {
            return;
        }
        // An attach client killed outright leaves its half inside the container running (Docker
        // keeps execs whose client died); its detach key ends both halves cleanly.
        self.send(bytes);
        let exit = Arc::clone(&self.exit);
        let killer = self.killer.clone_killer();
        let _ = std::thread::Builder::new()
            .name(format!("pane-{}-close", self.id))
            .spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                if lock(&exit).is_none() {
                    let mut killer = killer;
                    let _ = killer.kill();
                }
            });
    }
}

fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

/// Where the reader thread puts what it reads.
struct Sink<'a> {
    parser: &'a Mutex<Parser>,
    dirty: &'a AtomicBool,
    received: &'a AtomicU64,
    events: &'a mpsc::UnboundedSender<PaneEvent>,
    replies: &'a std::sync::mpsc::Sender<Vec<u8>>,
}

fn read_output(
    id: PaneId,
    mut reader: Box<dyn Read + Send>,
    sink: &Sink<'_>,
    drained: &std::sync::mpsc::Sender<()>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let answer = {
                    let mut p = lock(sink.parser);
                    p.process(&buf[..n]);
                    std::mem::take(&mut p.callbacks_mut().pending)
                };
                sink.received.fetch_add(n as u64, Ordering::AcqRel);
                if !answer.is_empty() {
                    let _ = sink.replies.send(answer);
                }
                if !sink.dirty.swap(true, Ordering::AcqRel) {
                    let _ = sink.events.send(PaneEvent::Output(id));
                }
            }
        }
    }
    let _ = drained.send(());
}

fn write_input(mut writer: Box<dyn Write + Send>, rx: &std::sync::mpsc::Receiver<Vec<u8>>) {
    while let Ok(bytes) = rx.recv() {
        if writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .is_err()
        {
            break;
        }
    }
}
