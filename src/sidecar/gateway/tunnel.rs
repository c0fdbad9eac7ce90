//! A tunnel's bytes relayed both ways, closed when neither side has sent anything for the
//! idle limit: a tunnel an agent opens and forgets would otherwise hold a connection slot,
//! two sockets and their buffers for as long as the bundle runs.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What a relay moved, and whether it ended for being idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Relayed {
    /// Client to upstream.
    pub up: u64,
    /// Upstream to client.
    pub down: u64,
    pub idle: bool,
}

/// Relays `client` ⇄ `upstream` until either closes, or until nothing moved for `idle`.
pub(super) async fn relay<C, U>(client: &mut C, upstream: &mut U, idle: Duration) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let clock = Arc::new(Clock::new());
    let mut c = Watched::new(client, &clock, Side::Up);
    let mut u = Watched::new(upstream, &clock, Side::Down);
    let copy = tokio::io::copy_bidirectional(&mut c, &mut u);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            done = &mut copy => {
                let (up, down) = done.unwrap_or_else(|_| clock.moved());
                return Relayed { up, down, idle: false };
            }
            _ = tokio::time::sleep_until(clock.last() + idle) => {
                if clock.last() + idle <= Instant::now() {
                    let (up, down) = clock.moved();
                    return Relayed { up, down, idle: true };
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Up,
    Down,
}

/// When bytes last arrived on either side, and how many went each way.
struct Clock {
    base: Instant,
    last_ms: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn read(&self, side: Side, n: usize) {
        let count = match side {
            Side::Up => &self.up,
            Side::Down => &self.down,
        };
        count.fetch_add(n as u64, Ordering::Relaxed);
        let now = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn moved(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// A stream whose reads are counted on the clock; writes pass through.
struct Watched<'a, S> {
    inner: &'a mut S,
    clock: Arc<Clock>,
    side: Side,
}

impl<'a, S> Watched<'a, S> {
    fn new(inner: &'a mut S, clock: &Arc<Clock>, side: Side) -> Self {
        Self {
            inner,
            clock: Arc::clone(clock),
            side,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.clock.read(self.side, n);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// With time paused, an idle tunnel ends exactly at the limit, and traffic keeps a busy
    /// one open past it.
    #[tokio::test(start_paused = true)]
    async fn a_tunnel_ends_when_idle_and_traffic_keeps_it_open() {
        let (mut client, mut client_far) = tokio::io::duplex(1024);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(60);
        let started = Instant::now();
        let relay = tokio::spawn(async move { relay(&mut client, &mut upstream, idle).await });
        // Busy for three idle periods: a byte every 30 s each way.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(30)).await;
            client_far.write_all(b"x").await.expect("write");
            let mut b = [0u8; 1];
            upstream_far.read_exact(&mut b).await.expect("relayed up");
            upstream_far.write_all(b"yy").await.expect("write");
            let mut b = [0u8; 2];
            client_far.read_exact(&mut b).await.expect("relayed down");
        }
        assert!(!relay.is_finished(), "closed while busy");
        let done = relay.await.expect("relay");
        assert_eq!(
            done,
            Relayed {
                up: 6,
                down: 12,
                idle: true
            }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(180 + 60));
    }

    #[tokio::test]
    async fn a_tunnel_either_side_closes_is_not_idle() {
        let (mut client, client_far) = tokio::io::duplex(64);
        let (mut upstream, upstream_far) = tokio::io::duplex(64);
        drop((client_far, upstream_far));
        let done = relay(&mut client, &mut upstream, Duration::from_secs(3600)).await;
        assert!(!done.idle);
    }
}
