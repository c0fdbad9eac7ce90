//! Flow control between the agent and its viewers, as a terminal gives it: while a viewer keeps
//! reading, the agent's output waits for it (at most `BUDGET` ahead), so a viewer sees every
//! byte; a viewer that makes no progress for `GRACE` stops counting and is repainted once it
//! reads again. One stuck client therefore never stalls the agent or the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How far ahead of a reading viewer the agent may run.
pub const BUDGET: u64 = 1 << 20;
/// A viewer that writes nothing for this long while behind no longer holds the agent back.
pub const GRACE: Duration = Duration::from_millis(500);

pub struct Viewer {
    consumed: AtomicU64,
    progress_ms: AtomicU64,
}

pub struct Flow {
    viewers: Mutex<Vec<Weak<Viewer>>>,
    wake: Condvar,
    epoch: Instant,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            viewers: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            epoch: Instant::now(),
        }
    }
}

impl Flow {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A viewer that has seen the output up to `at` (its repaint).
    pub fn join(&self, at: u64) -> Arc<Viewer> {
        let v = Arc::new(Viewer {
            consumed: AtomicU64::new(at),
            progress_ms: AtomicU64::new(self.now_ms()),
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
    pub fn wrote(&self, v: &Viewer, upto: u64) {
        v.consumed.fetch_max(upto, Ordering::AcqRel);
        v.progress_ms.store(self.now_ms(), Ordering::Release);
        self.wake.notify_all();
    }

    /// Blocks the PTY reader while a viewer that is still reading is more than `BUDGET`
    /// behind `published`.
    pub fn wait_room(&self, published: u64) {
        let mut list = self
            .viewers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let now = self.now_ms();
            let grace = u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX);
            let behind = list
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|v| now.saturating_sub(v.progress_ms.load(Ordering::Acquire)) < grace)
                .map(|v| published.saturating_sub(v.consumed.load(Ordering::Acquire)))
                .max()
                .unwrap_or(0);
            if behind <= BUDGET {
                return;
            }
            // Re-checked at least every 50 ms so a viewer that stops reading drops out in time.
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

    #[test]
    fn a_reading_viewer_holds_the_agent_back_and_a_stuck_one_stops_doing_so() {
        let flow = Arc::new(Flow::default());
        let v = flow.join(0);
        // Within budget: no wait.
        flow.wait_room(BUDGET);
        // Over budget: waits until the viewer catches up.
        let f = Arc::clone(&flow);
        let v2 = Arc::clone(&v);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            f.wrote(&v2, BUDGET * 2);
        });
        let start = Instant::now();
        flow.wait_room(BUDGET * 3);
        assert!(start.elapsed() >= Duration::from_millis(90));
        t.join().unwrap();
        // Stuck past the grace: no longer waited for.
        let start = Instant::now();
        flow.wait_room(BUDGET * 100);
        assert!(start.elapsed() >= GRACE - Duration::from_millis(150));
        assert!(start.elapsed() < GRACE + Duration::from_secs(2));
        // A viewer that went away never counts.
        drop(v);
        flow.wait_room(u64::MAX);
    }
}
