//! Flow control between the agent and its lossless viewers, as a terminal gives it: the
//! agent's output waits for every lossless viewer (at most `BUDGET` bytes and `EVENTS` output
//! events ahead), so such a viewer sees every byte — however slow it is, for as long as it is
//! connected. That is the promise `attach --lossless` makes: like a terminal under flow
//! control, a lossless viewer that stops reading stops the agent. Viewers that did not ask for
//! it never join the flow; they are repainted when they fall behind and never slow the agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// How many bytes ahead of a lossless viewer the agent may run.
pub const BUDGET: u64 = 1 << 20;
/// How many output events ahead: the holder's backlog must never drop an event such a viewer
/// has not read, whatever the size of the agent's writes (half of it, for margin).
pub const EVENTS: u64 = 256;

/// A place in the output stream: bytes and output events published before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    pub bytes: u64,
    pub events: u64,
}

pub struct Viewer {
    bytes: AtomicU64,
    events: AtomicU64,
}

pub struct Flow {
    viewers: Mutex<Vec<Weak<Viewer>>>,
    wake: Condvar,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            viewers: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        }
    }
}

impl Flow {
    /// A viewer that has seen the output up to `at` (its repaint).
    pub fn join(&self, at: Pos) -> Arc<Viewer> {
        let v = Arc::new(Viewer {
            bytes: AtomicU64::new(at.bytes),
            events: AtomicU64::new(at.events),
        });
        let mut list = self
            .viewers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&v));
        v
    }

    /// The viewer has written everything up to `upto` to its client.
    pub fn wrote(&self, v: &Viewer, upto: Pos) {
        v.bytes.fetch_max(upto.bytes, Ordering::AcqRel);
        v.events.fetch_max(upto.events, Ordering::AcqRel);
        self.wake.notify_all();
    }

    /// Whether a connected lossless viewer has not yet written all of `published`.
    pub fn behind(&self, published: Pos) -> bool {
        self.viewers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .any(|v| v.bytes.load(Ordering::Acquire) < published.bytes)
    }

    /// Wakes the PTY reader to look again (a viewer left).
    pub fn left(&self) {
        self.wake.notify_all();
    }

    /// Blocks the PTY reader while a connected lossless viewer is more than `BUDGET` bytes or
    /// `EVENTS` events behind `published`.
    pub fn wait_room(&self, published: Pos) {
        let mut list = self
            .viewers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let full = list.iter().filter_map(Weak::upgrade).any(|v| {
                published
                    .bytes
                    .saturating_sub(v.bytes.load(Ordering::Acquire))
                    > BUDGET
                    || published
                        .events
                        .saturating_sub(v.events.load(Ordering::Acquire))
                        >= EVENTS
            });
            if !full {
                return;
            }
            // Re-checked every 50 ms too, so a viewer that went away is noticed without a wake.
            list = match self.wake.wait_timeout(list, Duration::from_millis(50)) {
                Ok((l, _)) => l,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pos(bytes: u64, events: u64) -> Pos {
        Pos { bytes, events }
    }

    #[test]
    fn a_lossless_viewer_holds_the_agent_back_until_it_reads_or_leaves() {
        let flow = Arc::new(Flow::default());
        let v = flow.join(Pos::default());
        // Within budget: no wait.
        flow.wait_room(pos(BUDGET, EVENTS - 1));
        // Over the byte budget: waits until the viewer catches up, however long that takes.
        let f = Arc::clone(&flow);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            f.wait_room(pos(BUDGET * 3, 1));
            tx.send(()).expect("send");
        });
        // Far longer than any grace would be: still waiting.
        assert!(rx.recv_timeout(Duration::from_millis(1500)).is_err());
        flow.wrote(&v, pos(BUDGET * 2, 1));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("released by the read");
        t.join().expect("join");
        // Too many small events ahead holds it back too (the backlog would drop them).
        let f = Arc::clone(&flow);
        let t = std::thread::spawn(move || f.wait_room(pos(BUDGET * 2, 1 + EVENTS)));
        let start = Instant::now();
        while !t.is_finished() && start.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!t.is_finished(), "ran past a viewer {EVENTS} events behind");
        // A viewer that went away never counts.
        drop(v);
        flow.left();
        t.join().expect("join");
        flow.wait_room(pos(u64::MAX, u64::MAX));
    }
}
