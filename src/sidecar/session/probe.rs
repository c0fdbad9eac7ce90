//! Is anyone still at the other end of the attach client's terminal? Docker leaves an exec
//! running when its client dies (no hangup, no end of input), so the client asks its terminal
//! for a status report (`ESC [ 5 n`) when the line is quiet; every terminal answers `ESC [ 0 n`.
//! No answer in time means nobody is there, and the client leaves instead of lingering.

use std::time::{Duration, Instant};

pub const QUERY: &[u8] = b"\x1b[5n";
const REPLY: &[u8] = b"\x1b[0n";
/// `interval,timeout` in seconds, for tests.
pub const ENV: &str = "BOTTLE_ATTACH_PROBE";

#[derive(Debug)]
pub struct Probe {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    asked_at: Option<Instant>,
    /// Replies still to come; only that many are taken out of the input.
    outstanding: u32,
}

pub enum Tick {
    Nothing,
    Ask,
    Gone,
}

impl Probe {
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            last_heard: Instant::now(),
            asked_at: None,
            outstanding: 0,
        }
    }

    pub fn from_env() -> Self {
        let parsed = std::env::var(ENV).ok().and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        });
        let (interval, timeout) = parsed.unwrap_or((10.0, 30.0));
        Self::new(
            Duration::from_secs_f64(interval),
            Duration::from_secs_f64(timeout),
        )
    }

    /// How often `tick` should run.
    pub fn period(&self) -> Duration {
        self.interval.min(self.timeout) / 2
    }

    pub fn tick(&mut self, now: Instant) -> Tick {
        match self.asked_at {
            Some(at) if now.duration_since(at) >= self.timeout => Tick::Gone,
            Some(_) => Tick::Nothing,
            None if now.duration_since(self.last_heard) >= self.interval => {
                self.asked_at = Some(now);
                self.outstanding += 1;
                Tick::Ask
            }
            None => Tick::Nothing,
        }
    }

    /// Input from the terminal: proof of life. Our replies come out; the rest goes on.
    pub fn filter(&mut self, input: &[u8], now: Instant) -> Vec<u8> {
        self.last_heard = now;
        self.asked_at = None;
        if self.outstanding == 0 {
            return input.to_vec();
        }
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            if self.outstanding > 0 && input[i..].starts_with(REPLY) {
                self.outstanding -= 1;
                i += REPLY.len();
            } else {
                out.push(input[i]);
                i += 1;
            }
        }
        out
    }
}

/// Whether `out` stops inside an escape sequence or a UTF-8 character, judged from its tail.
pub fn ends_mid_sequence(out: &[u8]) -> bool {
    let tail = &out[out.len().saturating_sub(64)..];
    if let Some(&last) = tail.last() {
        // A UTF-8 lead byte, or a continuation whose character may be unfinished.
        if last >= 0xc0 || (last & 0xc0 == 0x80 && std::str::from_utf8(tail).is_err()) {
            return true;
        }
    }
    let Some(esc) = tail.iter().rposition(|&b| b == 0x1b) else {
        return false;
    };
    let rest = &tail[esc + 1..];
    match rest.first() {
        None => true,
        // CSI: parameters and intermediates until a final byte.
        Some(b'[') => !rest[1..].iter().any(|b| (0x40..=0x7e).contains(b)),
        // OSC, DCS and friends: until BEL or ST.
        Some(b']' | b'P' | b'X' | b'^' | b'_') => {
            !rest.contains(&0x07) && !rest.windows(2).any(|w| w == b"\x1b\\")
        }
        // Charset designations take one more byte.
        Some(b'(' | b')' | b'*' | b'+' | b'#' | b'%') => rest.len() < 2,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_when_output_stops_mid_sequence() {
        for done in [
            &b"plain"[..],
            b"\x1b[31mred",
            b"\x1b]2;title\x07",
            "é".as_bytes(),
            b"\x1b(B",
        ] {
            assert!(!ends_mid_sequence(done), "{done:?}");
        }
        for open in [
            &b"x\x1b"[..],
            b"\x1b[3",
            b"\x1b]2;tit",
            &"é".as_bytes()[..1],
            b"\x1b(",
        ] {
            assert!(ends_mid_sequence(open), "{open:?}");
        }
    }

    #[test]
    fn asks_when_quiet_and_gives_up_without_an_answer() {
        let t0 = Instant::now();
        let mut p = Probe::new(Duration::from_secs(10), Duration::from_secs(30));
        assert!(matches!(p.tick(t0 + Duration::from_secs(5)), Tick::Nothing));
        assert!(matches!(p.tick(t0 + Duration::from_secs(11)), Tick::Ask));
        assert!(matches!(
            p.tick(t0 + Duration::from_secs(20)),
            Tick::Nothing
        ));
        assert!(matches!(p.tick(t0 + Duration::from_secs(41)), Tick::Gone));
    }

    #[test]
    fn only_our_replies_are_taken_out_of_the_input() {
        let t0 = Instant::now();
        let mut p = Probe::new(Duration::from_secs(1), Duration::from_secs(3));
        // The agent's own status query gets its answer through untouched.
        assert_eq!(p.filter(b"a\x1b[0nb", t0), b"a\x1b[0nb");
        assert!(matches!(p.tick(t0 + Duration::from_secs(2)), Tick::Ask));
        assert_eq!(
            p.filter(b"x\x1b[0ny\x1b[0n", t0 + Duration::from_secs(2)),
            b"xy\x1b[0n"
        );
        // Answered: no give-up later, and a fresh question only after a quiet interval.
        assert!(matches!(p.tick(t0 + Duration::from_secs(2)), Tick::Nothing));
        assert!(matches!(p.tick(t0 + Duration::from_secs(4)), Tick::Ask));
    }
}
