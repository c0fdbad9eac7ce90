//! A session holder run on this host (its folder in a tempdir) and a raw protocol client.

use bottle_tui::sidecar::session::protocol::{self, ClientFrame, ServerFrame, Size};
use bottle_tui::sidecar::session::{DIR_ENV, Paths};
use bytes::Bytes;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

pub const SIDECAR: &str = env!("CARGO_BIN_EXE_bottle-sidecar");

pub struct Holder {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Holder {
    /// Starts `bottle-sidecar session -- argv`; with `ready`, provision's marker exists already.
    pub fn start(argv: &[&str], ready: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        if ready {
            std::fs::write(dir.path().join("provisioned"), "ok\n").expect("marker");
        }
        let child = Command::new(SIDECAR)
            .args(["session", "--"])
            .args(argv)
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the holder");
        Self { child, dir }
    }

    pub fn paths(&self) -> Paths {
        Paths::new(self.dir.path())
    }

    pub fn mark_ready(&self) {
        std::fs::write(self.dir.path().join("provisioned"), "ok\n").expect("marker");
    }

    /// Waits for the socket, then connects and says hello.
    pub async fn connect(&self, size: Size) -> Client {
        self.connect_with(size, false).await
    }

    /// `connect`, optionally as a lossless client.
    pub async fn connect_with(&self, size: Size, lossless: bool) -> Client {
        let socket = self.paths().socket();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = UnixStream::connect(&socket).await {
                let (rd, mut wr) = s.into_split();
                protocol::write_client(&mut wr, &ClientFrame::Hello { size, lossless })
                    .await
                    .expect("hello");
                return Client {
                    rd,
                    wr,
                    screen: bottle_tui::sidecar::session::screen::parser(size.rows, size.cols),
                    received: 0,
                    tail: Vec::new(),
                };
            }
            assert!(
                Instant::now() < deadline,
                "no session socket at {}",
                socket.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory of the holder, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("holder status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Waits (bounded) for the holder to exit and returns its code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the holder did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub rd: OwnedReadHalf,
    pub wr: OwnedWriteHalf,
    /// What this client's terminal would show.
    pub screen: vt100::Parser,
    pub received: usize,
    /// The last bytes received, for finding text that scrolled away.
    pub tail: Vec<u8>,
}

pub enum Seen {
    Found,
    Exit(i32),
}

impl Client {
    pub async fn send(&mut self, bytes: &[u8]) {
        protocol::write_client(
            &mut self.wr,
            &ClientFrame::Input(Bytes::copy_from_slice(bytes)),
        )
        .await
        .expect("send input");
    }

    pub async fn frame(&mut self) -> Option<ServerFrame> {
        protocol::read_server(&mut self.rd)
            .await
            .expect("read frame")
    }

    /// Reads until the holder closes the connection; output still in flight (a shell's prompt
    /// arriving after the line the test waited for) is read past. Anything else is returned as
    /// the reason the connection did not simply close.
    pub async fn until_closed(&mut self, within: Duration) -> Result<(), String> {
        let fut = async {
            loop {
                match self.frame().await {
                    None => return Ok(()),
                    Some(ServerFrame::Output(b)) => self.screen.process(&b),
                    Some(other) => return Err(format!("got {other:?} instead of the close")),
                }
            }
        };
        tokio::time::timeout(within, fut)
            .await
            .unwrap_or_else(|_| Err(format!("still open after {within:?}")))
    }

    /// Reads output until `needle` is in the recent stream or the agent exits; panics after
    /// `within` (a hang, not a performance limit).
    pub async fn until(&mut self, needle: &str, within: Duration) -> Seen {
        let fut = async {
            loop {
                match self.frame().await {
                    Some(ServerFrame::Output(b)) => {
                        self.received += b.len();
                        self.screen.process(&b);
                        self.tail.extend_from_slice(&b);
                        if self.tail.len() > 1 << 16 {
                            self.tail.drain(..self.tail.len() - (1 << 15));
                        }
                        if String::from_utf8_lossy(&self.tail).contains(needle) {
                            return Seen::Found;
                        }
                    }
                    Some(ServerFrame::Exit(code)) => return Seen::Exit(code),
                    Some(ServerFrame::Error(e)) => panic!("the holder refused: {e}"),
                    None => panic!("the holder closed the connection"),
                }
            }
        };
        tokio::time::timeout(within, fut)
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive within {within:?}"))
    }
}
