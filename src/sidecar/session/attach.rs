//! `bottle-sidecar session attach`: a transparent terminal client for the agent's session,
//! run through `docker exec -it`. Raw mode, the current screen at once, input and resizes
//! forwarded, and a detach key that leaves the agent running.

use super::probe::{self, Probe, Tick};
use super::protocol::{self, ClientFrame, ServerFrame, Size};
use super::{DetachKey, Paths, screen};
use bytes::Bytes;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::signal::unix::{SignalKind, signal};

pub struct Options {
    pub detach_key: DetachKey,
    /// Shown in the title and the detach message (the bottle's slug).
    pub name: String,
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
fn terminal_size() -> Size {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => Size { rows, cols },
        _ => Size::UNKNOWN,
    }
}

enum End {
    Detached,
    Exited(i32),
    Refused(String),
    Lost(String),
}

pub fn run(opts: &Options) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let paths = Paths::from_env();
    let socket = paths.socket();
    let stream = match rt.block_on(UnixStream::connect(&socket)) {
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
    let raw = RawMode::enter();
    let size = terminal_size();
    let end = rt.block_on(session(stream, opts, size));
    // The stdin reader is a blocking read nobody can cancel; do not wait for a keypress.
    rt.shutdown_background();
    let mut out = std::io::stdout().lock();
    let bottom = format!("\x1b[{};1H\r\n", terminal_size().rows.max(1));
    let _ = std::io::Write::write_all(&mut out, screen::RESET_MODES.as_bytes());
    let _ = std::io::Write::write_all(&mut out, bottom.as_bytes());
    let _ = std::io::Write::write_all(&mut out, b"\x1b]2;\x07");
    let _ = std::io::Write::flush(&mut out);
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

async fn session(stream: UnixStream, opts: &Options, size: Size) -> End {
    let (mut rd, mut wr) = stream.into_split();
    if let Err(e) = protocol::write_client(&mut wr, &ClientFrame::Hello(size)).await {
        return End::Lost(e.to_string());
    }
    let mut stdout = tokio::io::stdout();
    let title = format!(
        "\x1b]2;bottle {} · {} detaches\x07",
        opts.name, opts.detach_key
    );
    let _ = stdout.write_all(title.as_bytes()).await;
    let mut winch = signal(SignalKind::window_change()).ok();
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    let interactive = std::io::stdin().is_terminal();
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut probe = Probe::from_env();
    // The probe's query must not land inside the agent's own escape sequence or character.
    let mut output_at = Instant::now();
    let mut mid_sequence = false;
    let mut probe_timer = tokio::time::interval(probe.period());
    probe_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            frame = protocol::read_server(&mut rd) => match frame {
                Ok(Some(ServerFrame::Output(bytes))) => {
                    output_at = Instant::now();
                    mid_sequence = probe::ends_mid_sequence(&bytes);
                    if stdout.write_all(&bytes).await.is_err() || stdout.flush().await.is_err() {
                        return End::Lost("cannot write to the terminal".into());
                    }
                }
                Ok(Some(ServerFrame::Exit(code))) => return End::Exited(code),
                Ok(Some(ServerFrame::Error(why))) => return End::Refused(why),
                Ok(None) => return End::Lost("the session closed the connection".into()),
                Err(e) => return End::Lost(e.to_string()),
            },
            n = stdin.read(&mut buf), if stdin_open => match n {
                // A terminal that ends is gone (docker exec's client died and the engine closed
                // the TTY): leave rather than linger as an invisible viewer. A pipe that ends
                // just leaves a read-only viewer.
                Ok(0) | Err(_) if interactive => return End::Lost("the terminal closed".into()),
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let input = probe.filter(&buf[..n], Instant::now());
                    let input = input.as_slice();
                    let key = opts.detach_key.byte();
                    let (before, detach) = match input.iter().position(|&b| b == key) {
                        Some(i) => (&input[..i], true),
                        None => (input, false),
                    };
                    if !before.is_empty() {
                        let frame = ClientFrame::Input(Bytes::copy_from_slice(before));
                        if let Err(e) = protocol::write_client(&mut wr, &frame).await {
                            return End::Lost(e.to_string());
                        }
                    }
                    if detach {
                        let _ = protocol::write_client(&mut wr, &ClientFrame::Detach).await;
                        return End::Detached;
                    }
                }
            },
            // Conditions on time are checked inside: a select guard is only re-read when
            // something else wakes the loop.
            _ = probe_timer.tick(), if interactive => {
                if !mid_sequence && output_at.elapsed() >= probe.period() {
                    match probe.tick(Instant::now()) {
                        Tick::Ask => {
                            let _ = stdout.write_all(probe::QUERY).await;
                            let _ = stdout.flush().await;
                        }
                        Tick::Gone => return End::Lost("the terminal stopped answering".into()),
                        Tick::Nothing => {}
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
                let frame = ClientFrame::Resize(size);
                if let Err(e) = protocol::write_client(&mut wr, &frame).await {
                    return End::Lost(e.to_string());
                }
            }
        }
    }
}
