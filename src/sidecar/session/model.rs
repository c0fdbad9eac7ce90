//! The holder's screen model on a thread of its own, so parsing never delays reading the
//! agent's PTY or serving clients. Operations arrive in one ordered queue: output, resizes and
//! snapshot requests are applied exactly in the order the holder saw them, which is what makes
//! a client's repaint line up with the stream it receives after it.

use super::protocol::Size;
use super::screen;
use bytes::Bytes;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use tokio::sync::oneshot;

/// Chunks the model may lag behind the PTY; past that the reader waits (the agent feels
/// back-pressure at parsing speed, as with any terminal). Chunks are at most a PTY read.
const QUEUE: usize = 256;

/// Whether a snapshot starts with the lines that scrolled off the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A new client: its terminal has none of the agent's history yet.
    History,
    /// A client that has it (a refresh, or catching up after falling behind).
    ScreenOnly,
}

pub enum Op {
    Apply(Bytes),
    Resize(Size),
    /// The screen as a repaint, after everything queued before this request; with the
    /// history first for a client that has just attached.
    Snapshot(oneshot::Sender<Bytes>, Replay),
    /// The screen's text, after everything queued before this request.
    Text(oneshot::Sender<String>),
}

#[derive(Clone)]
pub struct Model {
    tx: SyncSender<Op>,
}

impl Model {
    pub fn spawn(size: Size) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("session-model".into())
            .spawn(move || run(&rx, size))?;
        Ok(Self { tx })
    }

    /// Blocks while the queue is full. A stopped model thread drops the operation.
    pub fn send(&self, op: Op) {
        let _ = self.tx.send(op);
    }
}

fn run(rx: &Receiver<Op>, size: Size) {
    let mut parser = screen::parser(size.rows, size.cols);
    while let Ok(op) = rx.recv() {
        match op {
            Op::Apply(bytes) => parser.process(&bytes),
            Op::Resize(s) => parser
                .screen_mut()
                .set_size(screen::nonzero(s.rows), screen::nonzero(s.cols)),
            Op::Snapshot(reply, replay) => {
                let repaint = screen::repaint(parser.screen());
                let bytes = match replay {
                    Replay::ScreenOnly => repaint,
                    Replay::History => {
                        let mut all = screen::history(&mut parser).into_bytes();
                        all.extend_from_slice(&repaint);
                        Bytes::from(all)
                    }
                };
                let _ = reply.send(bytes);
            }
            Op::Text(reply) => {
                let _ = reply.send(parser.screen().contents());
            }
        }
    }
}
