//! `bottle-sidecar session attach`: a transparent terminal client for the agent's session,
//! run through `docker exec -it`. Raw mode, the current screen at once, input and resizes
//! forwarded, and a detach key that leaves the agent running.

use super::probe::{self, Probe, Tick};
use super::protocol::{self, ClientFrame, ServerFrame, Size};
use super::{DetachKey, Paths, screen};
use bytes::Bytes;
use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

pub struct Options {
    pub detach_key: DetachKey,
    /// Shown in the title and the detach message (the bottle's slug).
    pub name: String,
    /// Never skip output: hold the agent back instead (see `ClientFrame::Hello`).
    pub lossless: bool,
    /// Set the agent's size to this terminal's (off for previews).
    pub resize: bool,
}

/// Leaves raw mode however the client ends.
struct RawMode(bool);

impl RawMode {
    fn enter() -> Self {
        Self(std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// `docker exec -it` starts the TTY at 0×0 and sizes it a moment later (a SIGWINCH); until
/// then the size is unknown, which the holder reads as "keep the agent's size".
/// `COLSxROWS` of the viewer's terminal, as the host side saw it when it started the attach.
/// docker exec sets the exec's TTY size only after start, with a few quick retries that a busy
/// engine can exhaust, leaving it 0×0: this is the size to use until a real one arrives.
pub const SIZE_ENV: &str = "BOTTLE_ATTACH_SIZE";

fn terminal_size() -> Size {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => Size { rows, cols },
        _ => std::env::var(SIZE_ENV)
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(Size::UNKNOWN),
    }
}

fn parse_size(v: &str) -> Option<Size> {
    let (cols, rows) = v.split_once('x')?;
    let (cols, rows) = (cols.parse().ok()?, rows.parse().ok()?);
    (cols > 0 && rows > 0).then_some(Size { rows, cols })
}

enum End {
    Detached,
    Exited(i32),
    Refused(String),
    Lost(String),
}

pub fn run(opts: &Options) -> ExitCode {
    let paths = Paths::from_env();
    let socket = paths.socket();
    let stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) => {
            let why = if paths.last_screen().exists() {
                "the agent has exited".to_owned()
            } else if paths.ready_marker().exists() {
                format!("the session is not serving ({e})")
            } else {
                "the agent has not started yet: provision is still running".to_owned()
            };
            eprintln!(
                "error: cannot attach to {}: {why} (socket {})",
                opts.name,
                socket.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let Some(rt) = crate::sidecar::runtime("attach", crate::sidecar::Threads::One) else {
        eprintln!("error: cannot start the attach client's runtime");
        return ExitCode::FAILURE;
    };
    let raw = RawMode::enter();
    let end = rt.block_on(session(stream, opts));
    // The stdin reader is a blocking read nobody can cancel; do not wait for a keypress.
    rt.shutdown_background();
    {
        let mut out = std::io::stdout().lock();
        let bottom = format!("\x1b[{};1H\r\n", terminal_size().rows.max(1));
        let _ = out.write_all(screen::RESET_MODES.as_bytes());
        let _ = out.write_all(bottom.as_bytes());
        let _ = out.write_all(b"\x1b]2;\x07");
        let _ = out.flush();
    }
    drop(raw);
    match end {
        End::Detached => {
            eprintln!(
                "[detached from {0}; the agent is still running — `bottle-tui attach {0}` returns]",
                opts.name
            );
            ExitCode::SUCCESS
        }
        End::Exited(code) => {
            eprintln!("[the agent in {} exited with code {code}]", opts.name);
            ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
        }
        End::Refused(why) => {
            eprintln!("error: the session refused the attach: {why}");
            ExitCode::FAILURE
        }
        End::Lost(why) => {
            eprintln!("error: lost the session of {}: {why}", opts.name);
            ExitCode::FAILURE
        }
    }
}

/// The detach key on the bottom line, in reverse video, leaving the cursor where it was.
struct Hint {
    text: String,
}

impl Hint {
    fn render(&self) -> Option<Vec<u8>> {
        let size = terminal_size();
        (size != Size::UNKNOWN).then(|| {
            format!(
                "\x1b7\x1b[{};1H\x1b[7m{}\x1b[0m\x1b[K\x1b8",
                size.rows, self.text
            )
            .into_bytes()
        })
    }
}

/// How long the detach hint stays on the bottom line once drawn.
const HINT_FOR: std::time::Duration = std::time::Duration::from_millis(2500);
/// How long the hint waits for the terminal's size (docker exec sets it after start, slowly on
/// a busy engine) before it is given up.
const HINT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a hint still waiting for a size is looked at.
const HINT_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// What the output thread last wrote, read by the probe under the same stdout lock so its
/// query never lands inside the agent's own escape sequence or character.
struct Written {
    at: Instant,
    mid_sequence: bool,
    /// The detach hint, until it is drawn: after the first screen, or once the terminal has a
    /// size (docker exec sizes it a moment after start).
    hint: Option<Hint>,
    /// When the hint was drawn: it stays [`HINT_FOR`] from then.
    hint_drawn: Option<Instant>,
    /// The first screen has been written. A hint drawn before it would be wiped by its
    /// clear-screen (a SIGWINCH can come before the holder's repaint).
    screen_seen: bool,
}

impl Written {
    /// Draws the pending hint if the terminal has a size and the agent's output is between
    /// sequences. The caller holds the stdout lock.
    fn draw_hint(&mut self, out: &mut impl Write) {
        if self.mid_sequence || !self.screen_seen {
            return;
        }
        if let Some(bytes) = self.hint.as_ref().and_then(Hint::render) {
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
            self.hint = None;
            self.hint_drawn = Some(Instant::now());
        }
    }
}

/// Socket → terminal on a plain thread: a buffered read, one write per frame, nothing else in
/// the way. Ends with how the session ended.
fn pump_output(stream: UnixStream, written: &Mutex<Written>, end: oneshot::Sender<End>) {
    let mut rd = std::io::BufReader::with_capacity(256 * 1024, stream);
    let stdout = std::io::stdout();
    let why = loop {
        match protocol::read_server_blocking(&mut rd) {
            Ok(Some(ServerFrame::Output(bytes))) => {
                let mut out = stdout.lock();
                if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                    break End::Lost("cannot write to the terminal".into());
                }
                let mut w = written
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                w.at = Instant::now();
                w.mid_sequence = probe::ends_mid_sequence(&bytes);
                w.screen_seen = true;
                // With a size known (docker's, or the viewer's passed in), the hint goes
                // on the bottom line right after the screen; else it waits for SIGWINCH.
                w.draw_hint(&mut out);
            }
            Ok(Some(ServerFrame::Exit(code))) => break End::Exited(code),
            Ok(Some(ServerFrame::Error(why))) => break End::Refused(why),
            Ok(None) => break End::Lost("the session closed the connection".into()),
            Err(e) => break End::Lost(e.to_string()),
        }
    };
    let _ = end.send(why);
}

async fn session(stream: UnixStream, opts: &Options) -> End {
    // Signals first: docker exec sizes the TTY a moment after start, and a SIGWINCH that comes
    // before its handler is lost (the agent would keep the old size).
    let mut winch = signal(SignalKind::window_change()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    let size = if opts.resize {
        terminal_size()
    } else {
        Size::UNKNOWN
    };
    let mut wr = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return End::Lost(e.to_string()),
    };
    // Client frames are small and the holder reads them at once: blocking writes are fine.
    let mut send = |frame: &ClientFrame| protocol::write_client_blocking(&mut wr, frame);
    let hello = ClientFrame::Hello {
        size,
        lossless: opts.lossless,
    };
    if let Err(e) = send(&hello) {
        return End::Lost(e.to_string());
    }
    {
        let title = format!(
            "\x1b]2;bottle {} · {} detaches\x07",
            opts.name, opts.detach_key
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(title.as_bytes()).and_then(|()| out.flush());
    }

    let interactive = std::io::stdin().is_terminal();
    // The detach key, shown on the bottom line for a moment after attaching (drawn where the
    // bottom is once the first screen arrives: docker exec sizes the TTY only after start).
    let hint = interactive.then(|| Hint {
        text: format!(
            " bottle {} · {} detaches, the agent keeps running ",
            opts.name, opts.detach_key
        ),
    });
    let attached = Instant::now();
    let mut hint_until = interactive.then(|| tokio::time::Instant::now() + HINT_POLL);
    let written = Arc::new(Mutex::new(Written {
        at: Instant::now(),
        mid_sequence: false,
        hint,
        hint_drawn: None,
        screen_seen: false,
    }));
    let (end_tx, mut ended) = oneshot::channel();
    {
        let written = Arc::clone(&written);
        std::thread::spawn(move || pump_output(stream, &written, end_tx));
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    let mut probe = Probe::from_env();
    let mut probe_timer = tokio::time::interval(probe.period());
    probe_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            end = &mut ended => {
                return end.unwrap_or_else(|_| End::Lost("the output thread stopped".into()));
            }
            n = stdin.read(&mut buf), if stdin_open => match n {
                // A terminal that ends is gone (docker exec's client died and the engine closed
                // the TTY): leave rather than linger as an invisible viewer. A pipe that ends
                // just leaves a read-only viewer.
                Ok(0) | Err(_) if interactive => return End::Lost("the terminal closed".into()),
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let input = probe.filter(&buf[..n], Instant::now());
                    let key = opts.detach_key.byte();
                    let (before, detach) = match input.iter().position(|&b| b == key) {
                        Some(i) => (&input[..i], true),
                        None => (input.as_slice(), false),
                    };
                    if !before.is_empty() {
                        if let Err(e) = send(&ClientFrame::Input(Bytes::copy_from_slice(before))) {
                            return End::Lost(e.to_string());
                        }
                    }
                    if detach {
                        let _ = send(&ClientFrame::Detach);
                        return End::Detached;
                    }
                }
            },
            // Conditions on time are checked inside: a select guard is only re-read when
            // something else wakes the loop.
            _ = probe_timer.tick(), if interactive => {
                let mut out = std::io::stdout().lock();
                let quiet = {
                    let w = written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    !w.mid_sequence && w.at.elapsed() >= probe.period()
                };
                if quiet {
                    match probe.tick(Instant::now()) {
                        Tick::Ask => {
                            let _ = out.write_all(probe::QUERY).and_then(|()| out.flush());
                        }
                        Tick::Gone => return End::Lost("the terminal stopped answering".into()),
                        Tick::Nothing => {}
                    }
                }
            }
            () = async {
                match hint_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let drawn = {
                    let mut w = written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if w.hint_drawn.is_none() && attached.elapsed() >= HINT_WAIT {
                        // Too late for a hint that never found a size: drop it.
                        w.hint = None;
                    }
                    (w.hint_drawn, w.hint.is_some())
                };
                let now = tokio::time::Instant::now();
                match drawn {
                    // Shown: it stays its full time, then the agent's screen is restored.
                    (Some(at), _) if at.elapsed() < HINT_FOR => {
                        hint_until = Some(now + (HINT_FOR - at.elapsed()));
                    }
                    // Still waiting for a size.
                    (None, true) => hint_until = Some(now + HINT_POLL),
                    // Done (shown its time, or given up): a fresh screen from the holder.
                    _ => {
                        hint_until = None;
                        if let Err(e) = send(&ClientFrame::Refresh) {
                            return End::Lost(e.to_string());
                        }
                    }
                }
            }
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                return End::Lost("the terminal hung up".into());
            }
            Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => None } } => {
                let size = terminal_size();
                if size == Size::UNKNOWN {
                    continue;
                }
                {
                    let mut out = std::io::stdout().lock();
                    written
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .draw_hint(&mut out);
                }
                if !opts.resize {
                    continue;
                }
                if let Err(e) = send(&ClientFrame::Resize(size)) {
                    return End::Lost(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_size_parses_cols_x_rows() {
        assert_eq!(
            parse_size("160x48"),
            Some(Size {
                rows: 48,
                cols: 160
            })
        );
        for bad in ["", "160", "0x48", "160x0", "x", "axb", "160x48x1"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
