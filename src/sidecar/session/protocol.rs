//! The attach protocol on the session socket: length-prefixed frames, one kind byte and a
//! big-endian u32 length. The first client frame must be `Hello`; anything else is a protocol
//! error that closes that one connection and nothing more.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// No frame may be larger: a hostile length cannot make either side allocate more.
pub const MAX_FRAME: usize = 1 << 20;
const HEADER: usize = 5;

/// A terminal size, rows first as in `stty size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

impl Size {
    /// Sent by a client whose terminal has no size yet: the agent keeps its own.
    pub const UNKNOWN: Self = Self { rows: 0, cols: 0 };

    /// Zero is what an unsized terminal reports; nothing can be drawn in it.
    pub fn sane(self) -> Self {
        Self {
            rows: self.rows.clamp(1, 1000),
            cols: self.cols.clamp(1, 1000),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.cols, self.rows)
    }
}

/// Client → holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// First frame. `lossless`: hold the agent back rather than ever skip output for this
    /// client (recording, benchmarks); by default a client that falls behind is repainted.
    Hello {
        size: Size,
        lossless: bool,
    },
    Input(Bytes),
    Resize(Size),
    /// Send me the current screen again (after the client drew something of its own).
    Refresh,
    Detach,
    /// Instead of a hello, a hook's one frame: what the agent is doing (JSON).
    Report(crate::wire::session::Report),
}

/// Holder → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// Bytes for the client's terminal: the repaint first, then the agent's output.
    Output(Bytes),
    /// The agent finished with this code; the holder closes the connection after it.
    Exit(i32),
    /// Why the holder is closing this connection.
    Error(String),
}

mod kind {
    pub const HELLO: u8 = 1;
    pub const INPUT: u8 = 2;
    pub const RESIZE: u8 = 3;
    pub const DETACH: u8 = 4;
    pub const REFRESH: u8 = 5;
    pub const REPORT: u8 = 6;
    pub const OUTPUT: u8 = 16;
    pub const EXIT: u8 = 17;
    pub const ERROR: u8 = 18;
}

#[derive(Debug, PartialEq, Eq)]
pub enum ProtocolError {
    UnknownKind(u8),
    TooLarge(usize),
    BadPayload { kind: u8, len: usize },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            Self::TooLarge(n) => write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte limit"),
            Self::BadPayload { kind, len } => {
                write!(f, "frame kind {kind} cannot have a {len}-byte payload")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

fn header(out: &mut BytesMut, kind: u8, len: usize) {
    out.reserve(HEADER + len);
    out.put_u8(kind);
    // Callers keep payloads under MAX_FRAME, far below u32::MAX.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn size_payload(out: &mut BytesMut, kind: u8, s: Size) {
    header(out, kind, 4);
    out.put_u16(s.rows);
    out.put_u16(s.cols);
}

impl ClientFrame {
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Hello { size, lossless } => {
                header(out, kind::HELLO, 5);
                out.put_u16(size.rows);
                out.put_u16(size.cols);
                out.put_u8(u8::from(*lossless));
            }
            Self::Resize(s) => size_payload(out, kind::RESIZE, *s),
            Self::Input(b) => {
                for chunk in b.chunks(MAX_FRAME) {
                    header(out, kind::INPUT, chunk.len());
                    out.put_slice(chunk);
                }
            }
            Self::Detach => header(out, kind::DETACH, 0),
            Self::Refresh => header(out, kind::REFRESH, 0),
            Self::Report(r) => {
                let json = serde_json::to_vec(r).unwrap_or_default();
                header(out, kind::REPORT, json.len());
                out.put_slice(&json);
            }
        }
    }

    fn decode(kind: u8, mut payload: Bytes) -> Result<Self, ProtocolError> {
        let bad = |p: &Bytes| ProtocolError::BadPayload { kind, len: p.len() };
        match kind {
            kind::HELLO if payload.len() == 4 || payload.len() == 5 => {
                let size = Size {
                    rows: payload.get_u16(),
                    cols: payload.get_u16(),
                };
                let lossless = payload.has_remaining() && payload.get_u8() == 1;
                Ok(Self::Hello { size, lossless })
            }
            kind::RESIZE if payload.len() == 4 => Ok(Self::Resize(Size {
                rows: payload.get_u16(),
                cols: payload.get_u16(),
            })),
            kind::HELLO | kind::RESIZE => Err(bad(&payload)),
            kind::INPUT => Ok(Self::Input(payload)),
            kind::DETACH if payload.is_empty() => Ok(Self::Detach),
            kind::REFRESH if payload.is_empty() => Ok(Self::Refresh),
            kind::DETACH | kind::REFRESH => Err(bad(&payload)),
            kind::REPORT => serde_json::from_slice(&payload)
                .map(Self::Report)
                .map_err(|_| bad(&payload)),
            other => Err(ProtocolError::UnknownKind(other)),
        }
    }
}

impl ServerFrame {
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Output(b) => {
                for chunk in b.chunks(MAX_FRAME) {
                    header(out, kind::OUTPUT, chunk.len());
                    out.put_slice(chunk);
                }
            }
            Self::Exit(code) => {
                header(out, kind::EXIT, 4);
                out.put_i32(*code);
            }
            Self::Error(msg) => {
                let m = &msg.as_bytes()[..msg.len().min(4096)];
                header(out, kind::ERROR, m.len());
                out.put_slice(m);
            }
        }
    }

    fn decode(kind: u8, mut payload: Bytes) -> Result<Self, ProtocolError> {
        match kind {
            kind::OUTPUT => Ok(Self::Output(payload)),
            kind::EXIT if payload.len() == 4 => Ok(Self::Exit(payload.get_i32())),
            kind::ERROR => Ok(Self::Error(String::from_utf8_lossy(&payload).into_owned())),
            kind::EXIT => Err(ProtocolError::BadPayload {
                kind,
                len: payload.len(),
            }),
            other => Err(ProtocolError::UnknownKind(other)),
        }
    }
}

/// Checks a frame header: an unknown kind is refused before its length is trusted, so
/// garbage gets the clearer error.
fn check_header(head: &[u8; HEADER], known: &[u8]) -> std::io::Result<usize> {
    if !known.contains(&head[0]) {
        return Err(invalid(ProtocolError::UnknownKind(head[0])));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(invalid(ProtocolError::TooLarge(len)));
    }
    Ok(len)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames. Not cancel-safe: a
/// caller that may drop it mid-frame must read on a task of its own.
async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    known: &[u8],
) -> std::io::Result<Option<(u8, Bytes)>> {
    let mut head = [0u8; HEADER];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if !known.contains(&head[0]) {
        return Err(invalid(ProtocolError::UnknownKind(head[0])));
    }
    r.read_exact(&mut head[1..]).await?;
    let len = check_header(&head, known)?;
    let mut payload = BytesMut::zeroed(len);
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload.freeze())))
}

/// The blocking twin of `read_raw`, for a plain reader thread.
fn read_raw_blocking<R: std::io::Read>(
    r: &mut R,
    known: &[u8],
) -> std::io::Result<Option<(u8, Bytes)>> {
    let mut head = [0u8; HEADER];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if !known.contains(&head[0]) {
        return Err(invalid(ProtocolError::UnknownKind(head[0])));
    }
    r.read_exact(&mut head[1..])?;
    let len = check_header(&head, known)?;
    let mut payload = BytesMut::zeroed(len);
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload.freeze())))
}

const SERVER_KINDS: &[u8] = &[kind::OUTPUT, kind::EXIT, kind::ERROR];
const CLIENT_KINDS: &[u8] = &[
    kind::HELLO,
    kind::INPUT,
    kind::RESIZE,
    kind::DETACH,
    kind::REFRESH,
    kind::REPORT,
];

pub fn read_server_blocking<R: std::io::Read>(r: &mut R) -> std::io::Result<Option<ServerFrame>> {
    match read_raw_blocking(r, SERVER_KINDS)? {
        None => Ok(None),
        Some((k, p)) => ServerFrame::decode(k, p).map(Some).map_err(invalid),
    }
}

pub fn write_client_blocking<W: std::io::Write>(w: &mut W, f: &ClientFrame) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    f.encode(&mut buf);
    w.write_all(&buf)?;
    w.flush()
}

fn invalid(e: ProtocolError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

pub async fn read_client<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<ClientFrame>> {
    match read_raw(r, CLIENT_KINDS).await? {
        None => Ok(None),
        Some((k, p)) => ClientFrame::decode(k, p).map(Some).map_err(invalid),
    }
}

pub async fn read_server<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<ServerFrame>> {
    match read_raw(r, SERVER_KINDS).await? {
        None => Ok(None),
        Some((k, p)) => ServerFrame::decode(k, p).map(Some).map_err(invalid),
    }
}

pub async fn write_client<W: AsyncWrite + Unpin>(
    w: &mut W,
    f: &ClientFrame,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    f.encode(&mut buf);
    w.write_all(&buf).await?;
    w.flush().await
}

pub async fn write_server<W: AsyncWrite + Unpin>(
    w: &mut W,
    f: &ServerFrame,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    f.encode(&mut buf);
    w.write_all(&buf).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip_client(f: ClientFrame) -> ClientFrame {
        let mut buf = BytesMut::new();
        f.encode(&mut buf);
        let mut r = &buf[..];
        read_client(&mut r).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn client_frames_round_trip() {
        let s = Size {
            rows: 48,
            cols: 160,
        };
        for f in [
            ClientFrame::Hello {
                size: s,
                lossless: true,
            },
            ClientFrame::Resize(s),
            ClientFrame::Input(Bytes::from_static(b"ls\r")),
            ClientFrame::Detach,
            ClientFrame::Refresh,
            ClientFrame::Report(crate::wire::session::Report {
                status: crate::wire::session::AgentStatus::NeedsYou,
                reason: Some("Claude needs your permission to use Bash".into()),
            }),
        ] {
            assert_eq!(roundtrip_client(f.clone()).await, f);
        }
    }

    #[tokio::test]
    async fn server_frames_round_trip() {
        for f in [
            ServerFrame::Output(Bytes::from_static(b"\x1b[31mred")),
            ServerFrame::Exit(-9),
            ServerFrame::Error("nope".into()),
        ] {
            let mut buf = BytesMut::new();
            f.encode(&mut buf);
            let mut r = &buf[..];
            assert_eq!(read_server(&mut r).await.unwrap().unwrap(), f);
        }
    }

    #[tokio::test]
    async fn garbage_is_a_clear_error() {
        let mut r: &[u8] = &[99, 0, 0, 0, 0];
        let e = read_client(&mut r).await.unwrap_err();
        assert_eq!(e.to_string(), "unknown frame kind 99");
        let mut r: &[u8] = &[2, 0xff, 0xff, 0xff, 0xff];
        let e = read_client(&mut r).await.unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        let mut r: &[u8] = &[1, 0, 0, 0, 1, 7];
        let e = read_client(&mut r).await.unwrap_err();
        assert_eq!(e.to_string(), "frame kind 1 cannot have a 1-byte payload");
    }

    #[tokio::test]
    async fn clean_end_between_frames_is_none_and_mid_frame_is_an_error() {
        let mut r: &[u8] = &[];
        assert!(read_client(&mut r).await.unwrap().is_none());
        let mut r: &[u8] = &[2, 0, 0, 0, 5, b'a'];
        assert!(read_client(&mut r).await.is_err());
    }
}
