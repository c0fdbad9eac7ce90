//! `bottle-sidecar session -- CMD…`: PID 1 of the agent container. It reaps every child and
//! forwards signals; once provision's marker exists it runs CMD in a PTY it owns, keeps a vt100
//! model of the screen, and serves any number of attach clients on a unix socket. The agent
//! sees a client come or go only as a resize; a slow or hostile client costs the agent nothing.

use super::flow::{Flow, Pos, Viewer};
use super::model::{Model, Op, Replay};
use super::protocol::{self, ClientFrame, ServerFrame, Size};
use super::status::{self, Tracker};
use super::{Paths, SessionRecord, SessionState, now};
use crate::sidecar::log;
use bytes::{Bytes, BytesMut};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;

const DAEMON: &str = "session";
/// Output events kept for clients that fall behind; past that a client gets a repaint instead.
/// It must hold more than `flow::EVENTS` (how far the agent may run ahead of a lossless
/// client); with reads of at most `READ_CHUNK` bytes it bounds the holder's buffering.
const BACKLOG: usize = 512;
/// A client (not lossless) this many output events behind is repainted rather than fed the
/// backlog: it shows the current screen sooner, and the agent never waits for it.
const REPAINT_BEHIND: usize = 64;
const READ_CHUNK: usize = 32 * 1024;
/// A client batches this much queued output into one write.
const WRITE_BATCH: usize = 256 * 1024;
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// After the agent exits, how long its PTY may take to drain and clients to receive the end;
/// longer while a connected lossless viewer has not yet had every byte, up to [`DRAIN_MAX`]
/// (a daemon the agent left behind may hold the PTY, and write to it, forever).
const DRAIN: Duration = Duration::from_secs(1);
const DRAIN_MAX: Duration = Duration::from_secs(600);
const INITIAL: Size = Size { rows: 24, cols: 80 };

#[derive(Clone)]
enum Event {
    /// A chunk and the stream position at its end.
    Output(Bytes, Pos),
    Exit(i32),
}

/// Where output goes: to the clients' broadcast and the model's queue, both under one lock,
/// so a subscription (a broadcast receiver plus a snapshot request) falls between the same
/// two chunks in both, and a client's repaint and its stream never overlap or leave a gap.
struct Feed {
    tx: broadcast::Sender<Event>,
    model: Model,
    exited: Option<i32>,
    /// Output so far (bytes and events).
    published: Pos,
}

struct Shared {
    feed: Mutex<Feed>,
    status: Arc<Tracker>,
    flow: Flow,
    master: Mutex<Box<dyn MasterPty + Send>>,
    size: Mutex<Size>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the agent's session down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The current screen as a repaint (the history first, for a new client), a stream of
    /// everything after it, and the offset where the stream starts.
    async fn subscribe(&self, replay: Replay) -> Subscription {
        let (reply, repaint) = oneshot::channel();
        let (rx, exited, at) = {
            let f = lock(&self.feed);
            f.model.send(Op::Snapshot(reply, replay));
            (f.tx.subscribe(), f.exited, f.published)
        };
        Subscription {
            repaint: repaint.await.unwrap_or_default(),
            rx,
            exited,
            at,
        }
    }

    /// Output from the PTY, to clients at once and to the model in order.
    fn publish(&self, chunk: Bytes, published: &mut Pos) {
        self.flow.wait_room(*published);
        self.status.output();
        let mut f = lock(&self.feed);
        f.published.bytes += chunk.len() as u64;
        f.published.events += 1;
        *published = f.published;
        // No receiver is not an error: nobody is attached.
        let _ = f.tx.send(Event::Output(chunk.clone(), f.published));
        f.model.send(Op::Apply(chunk));
    }

    /// The end: clients hear the code, and the model gives the last screen.
    async fn finish(&self, code: i32) -> Bytes {
        let (reply, last) = oneshot::channel();
        {
            let mut f = lock(&self.feed);
            f.exited = Some(code);
            let _ = f.tx.send(Event::Exit(code));
            f.model.send(Op::Snapshot(reply, Replay::ScreenOnly));
        }
        last.await.unwrap_or_default()
    }

    /// The screen's text, once the model has everything published so far.
    async fn screen_text(&self) -> String {
        let (reply, text) = oneshot::channel();
        lock(&self.feed).model.send(Op::Text(reply));
        text.await.unwrap_or_default()
    }

    /// The latest client to attach or resize sets the size (as tmux's `latest`).
    fn resize(&self, size: Size) {
        if size.rows == 0 || size.cols == 0 {
            return;
        }
        let size = size.sane();
        let mut current = lock(&self.size);
        if *current == size {
            return;
        }
        *current = size;
        lock(&self.feed).model.send(Op::Resize(size));
        if let Err(e) = lock(&self.master).resize(pty_size(size)) {
            log::event(
                DAEMON,
                "warn",
                "cannot resize the agent's terminal",
                json!({ "error": e.to_string() }),
            );
        }
    }
}

struct Subscription {
    repaint: Bytes,
    rx: broadcast::Receiver<Event>,
    exited: Option<i32>,
    at: Pos,
}

fn pty_size(s: Size) -> PtySize {
    PtySize {
        rows: s.rows,
        cols: s.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

pub fn run(command: Vec<String>) -> ExitCode {
    let Some(rt) = crate::sidecar::runtime(DAEMON, crate::sidecar::Threads::Workers(2)) else {
        return ExitCode::FAILURE;
    };
    let code = rt.block_on(hold(Paths::from_env(), command));
    // Leftover client writers must not keep PID 1 alive.
    rt.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

fn fail(msg: &str, error: impl std::fmt::Display) -> i32 {
    log::event(DAEMON, "error", msg, json!({ "error": error.to_string() }));
    1
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            child: signal(SignalKind::child())?,
        })
    }

    /// The next signal to pass on to the agent, or `SIGCHLD`.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.quit.recv() => Signal::SIGQUIT,
            _ = self.child.recv() => Signal::SIGCHLD,
        }
    }
}

/// Reaps every child that has exited (orphans of the agent included); returns the agent's
/// code if it was among them.
fn reap(agent: Option<Pid>) -> Option<i32> {
    let mut agent_code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == agent => agent_code = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if Some(pid) == agent => {
                agent_code = Some(128 + sig as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return agent_code,
            Ok(_) => {}
        }
    }
}

async fn hold(paths: Paths, command: Vec<String>) -> i32 {
    if command.is_empty() {
        return fail(
            "no agent command",
            "usage: bottle-sidecar session -- COMMAND [ARGS…]",
        );
    }
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail("cannot install signal handlers", e),
    };
    // Outside a container (tests, a smolvm machine) orphans should still come to us.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    // Provision copies files in and fixes /tmp; the agent must not start before it is done.
    let marker = paths.ready_marker();
    let mut waited = false;
    while !marker.exists() {
        if !waited {
            log::event(
                DAEMON,
                "info",
                "waiting for provision",
                json!({ "marker": marker }),
            );
            waited = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            sig = signals.next() => match sig {
                Signal::SIGCHLD => { reap(None); }
                other => {
                    log::event(DAEMON, "info", "stopped before the agent started", json!({ "signal": other.as_str() }));
                    return 128 + other as i32;
                }
            },
        }
    }

    let run_dir = paths.run_dir();
    if let Err(e) = std::fs::create_dir_all(&run_dir) {
        return fail(&format!("cannot create {}", run_dir.display()), e);
    }

    let pair = match native_pty_system().openpty(pty_size(INITIAL)) {
        Ok(p) => p,
        Err(e) => return fail("cannot open a PTY", e),
    };
    let mut cmd = CommandBuilder::from_argv(command.iter().map(Into::into).collect());
    if let Ok(cwd) = std::env::current_dir() {
        cmd.cwd(cwd);
    }
    if std::env::var_os("TERM").is_none() {
        cmd.env("TERM", "xterm-256color");
    }
    for internal in ["BOTTLE_DAEMONS", super::DIR_ENV] {
        cmd.env_remove(internal);
    }
    let child = match pair.slave.spawn_command(cmd) {
        Ok(c) => c,
        Err(e) => return fail(&format!("cannot start the agent command {command:?}"), e),
    };
    drop(pair.slave);
    let agent = child.process_id().map(|p| Pid::from_raw(p as i32));
    // We reap with waitpid(-1); the handle's own wait would race it.
    drop(child);
    let status = Arc::new(Tracker::start(
        paths.clone(),
        status::load_config(&paths),
        SessionRecord {
            state: SessionState::Running,
            pid: agent.map(Pid::as_raw),
            exit_code: None,
            started_at: Some(now()),
            finished_at: None,
            activity: None,
        },
    ));
    log::event(
        DAEMON,
        "info",
        "agent started",
        json!({ "command": command, "pid": agent.map(Pid::as_raw) }),
    );

    let (reader, writer) = match (pair.master.try_clone_reader(), pair.master.take_writer()) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => return fail("cannot open the PTY master", e),
    };
    let (tx, _) = broadcast::channel(BACKLOG);
    let model = match Model::spawn(INITIAL) {
        Ok(m) => m,
        Err(e) => return fail("cannot start the screen model", e),
    };
    let shared = Arc::new(Shared {
        feed: Mutex::new(Feed {
            tx,
            model,
            exited: None,
            published: Pos::default(),
        }),
        status: Arc::clone(&status),
        flow: Flow::default(),
        master: Mutex::new(pair.master),
        size: Mutex::new(INITIAL),
    });
    let (drained_tx, mut drained) = oneshot::channel();
    let pump_shared = Arc::clone(&shared);
    std::thread::spawn(move || pump_output(reader, &pump_shared, drained_tx));
    let (input_tx, input_rx) = mpsc::channel::<Bytes>(64);
    std::thread::spawn(move || pump_input(writer, input_rx));
    let reading = tokio::spawn(read_status_from_the_terminal(Arc::clone(&shared)));

    let socket = paths.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}", socket.display()), e),
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    }

    let mut clients = JoinSet::new();
    let code = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let input = input_tx.clone();
                    clients.spawn(async move { serve(stream, shared, input).await });
                }
                Err(e) => log::event(DAEMON, "warn", "accept failed", json!({ "error": e.to_string() })),
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            sig = signals.next() => match sig {
                Signal::SIGCHLD => if let Some(code) = reap(agent) { break code },
                other => forward(agent, other),
            },
        }
    };
    log::event(DAEMON, "info", "agent exited", json!({ "exit_code": code }));
    // The PTY ends when the last process holding it exits; a daemon the agent left behind
    // could hold it forever, so draining is bounded.
    while_viewers_read(&shared, &mut drained).await;
    let last = shared.finish(code).await;
    if let Err(e) = crate::fsutil::write(&paths.last_screen(), &last, 0o644) {
        log::event(
            DAEMON,
            "warn",
            "cannot keep the last screen",
            json!({ "error": format!("{e:#}") }),
        );
    }
    reading.abort();
    status.exited(code);
    let _ = std::fs::remove_file(&socket);
    while_viewers_read(&shared, async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    code
}

/// For an agent without hooks: once its output has stopped for the quiet time, its screen
/// says whether it waits for you or is idle.
async fn read_status_from_the_terminal(shared: Arc<Shared>) {
    loop {
        match shared.status.quiet_at() {
            None => shared.status.working.notified().await,
            Some(at) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                if shared
                    .status
                    .quiet_at()
                    .is_some_and(|at| at <= Instant::now())
                {
                    let text = shared.screen_text().await;
                    shared.status.settle(&text);
                }
            }
        }
    }
}

/// Waits for `done` for [`DRAIN`], and on while a connected lossless viewer has not had every
/// byte yet: `--lossless` promises every byte for as long as the viewer stays, the agent's
/// last ones included, however slow the viewer is.
async fn while_viewers_read(shared: &Shared, done: impl std::future::Future) {
    tokio::pin!(done);
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut done => return,
            () = tokio::time::sleep(DRAIN) => {
                let published = lock(&shared.feed).published;
                if !shared.flow.behind(published) || started.elapsed() >= DRAIN_MAX {
                    return;
                }
            }
        }
    }
}

/// Passes a signal to the agent; SIGTERM also hangs up its terminal so an interactive shell,
/// which ignores SIGTERM, ends as if its window closed.
fn forward(agent: Option<Pid>, sig: Signal) {
    let Some(pid) = agent else { return };
    let _ = kill(pid, sig);
    if sig == Signal::SIGTERM {
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGHUP);
    }
}

/// PTY → clients and model. Clients never block this thread; a model far behind does.
fn pump_output(mut reader: Box<dyn Read + Send>, shared: &Shared, drained: oneshot::Sender<()>) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut published = Pos::default();
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => shared.publish(Bytes::copy_from_slice(&buf[..n]), &mut published),
        }
    }
    let _ = drained.send(());
}

/// Clients → PTY, on its own thread: an agent that stops reading its input blocks only this.
fn pump_input(mut writer: Box<dyn Write + Send>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = rx.blocking_recv() {
        if writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .is_err()
        {
            break;
        }
    }
}

async fn serve(stream: UnixStream, shared: Arc<Shared>, input: mpsc::Sender<Bytes>) {
    let (mut rd, mut wr) = stream.into_split();
    let (size, lossless) =
        match tokio::time::timeout(HELLO_TIMEOUT, protocol::read_client(&mut rd)).await {
            Ok(Ok(Some(ClientFrame::Hello { size, lossless }))) => (size, lossless),
            // A hook's one frame: no client to serve.
            Ok(Ok(Some(ClientFrame::Report(r)))) => return shared.status.report(r),
            other => {
                let why = match other {
                    Err(_) => "no hello within 5 s".to_owned(),
                    Ok(Ok(None)) => return,
                    Ok(Ok(Some(f))) => format!("expected a hello frame first, got {f:?}"),
                    Ok(Err(e)) => format!("protocol error: {e}"),
                };
                reject(&mut wr, why).await;
                return;
            }
        };
    shared.resize(size);
    // A client that did not say its size (a preview) shows the screen only: history formatted
    // at another width would be garbled, and previews come and go with every selection.
    let replay = if size.rows == 0 || size.cols == 0 {
        Replay::ScreenOnly
    } else {
        Replay::History
    };
    let sub = shared.subscribe(replay).await;
    // Only a lossless client holds the agent back; any other one is repainted if it falls
    // behind, so no viewer ever slows the agent down. It joins the flow here, before any of
    // its input reaches the agent: joined later (in the writer task), output its own input
    // caused could overrun the stream first and cost it a repaint.
    let viewer = lossless.then(|| shared.flow.join(sub.at));
    log::event(
        DAEMON,
        "info",
        "client attached",
        json!({ "size": size.to_string(), "lossless": lossless }),
    );
    let (err_tx, err_rx) = oneshot::channel::<String>();
    let refresh = Arc::new(tokio::sync::Notify::new());
    let writer_shared = Arc::clone(&shared);
    let writer_refresh = Arc::clone(&refresh);
    let mut writer = tokio::spawn(async move {
        let ctl = Control {
            viewer,
            refresh: writer_refresh,
            err_rx,
        };
        stream_to_client(&mut wr, &writer_shared, sub, ctl).await;
    });
    let reason = loop {
        tokio::select! {
            frame = protocol::read_client(&mut rd) => match frame {
                Ok(Some(ClientFrame::Input(bytes))) => {
                    if input.send(bytes).await.is_err() {
                        break "the agent's input is closed".to_owned();
                    }
                }
                Ok(Some(ClientFrame::Resize(size))) => shared.resize(size),
                Ok(Some(ClientFrame::Refresh)) => refresh.notify_one(),
                Ok(Some(ClientFrame::Detach)) => break "detached".to_owned(),
                Ok(Some(ClientFrame::Hello { .. } | ClientFrame::Report(_))) => {
                    let _ = err_tx.send("protocol error: a hello or report after the hello".into());
                    break "protocol error".to_owned();
                }
                Ok(None) => break "disconnected".to_owned(),
                Err(e) => {
                    let _ = err_tx.send(format!("protocol error: {e}"));
                    break format!("protocol error: {e}");
                }
            },
            _ = &mut writer => break "finished".to_owned(),
        }
    };
    log::event(DAEMON, "info", "client left", json!({ "reason": reason }));
    if reason.starts_with("protocol error") {
        // Let the writer send the error; a client that does not read gets dropped anyway.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    }
    writer.abort();
    // A lossless viewer that left no longer holds the agent (its flow entry goes with the
    // writer task; the reader re-checks within 50 ms if this wake comes first).
    shared.flow.left();
}

async fn reject(wr: &mut tokio::net::unix::OwnedWriteHalf, why: String) {
    log::event(DAEMON, "warn", "client rejected", json!({ "reason": why }));
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        protocol::write_server(wr, &ServerFrame::Error(why)),
    )
    .await;
}

/// How the reading half steers the writing half of one client.
struct Control {
    /// The flow position of a lossless client.
    viewer: Option<Arc<Viewer>>,
    refresh: Arc<tokio::sync::Notify>,
    err_rx: oneshot::Receiver<String>,
}

async fn stream_to_client(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    shared: &Shared,
    sub: Subscription,
    mut ctl: Control,
) {
    let viewer = ctl.viewer.take();
    let mut rx = sub.rx;
    let mut batch = BytesMut::new();
    ServerFrame::Output(sub.repaint).encode(&mut batch);
    let mut next = Next::More;
    if let Some(code) = sub.exited {
        ServerFrame::Exit(code).encode(&mut batch);
        next = Next::Done;
    }
    let mut upto = sub.at;
    // A lossless viewer's refresh waits until it has had every byte so far, so the repaint
    // skips nothing (answered like falling behind, it would drop the unsent backlog).
    let mut refresh_due = false;
    loop {
        if tokio::io::AsyncWriteExt::write_all(wr, &batch)
            .await
            .is_err()
            || next == Next::Done
        {
            return;
        }
        if let Some(v) = &viewer {
            shared.flow.wrote(v, upto);
        }
        batch.clear();
        if refresh_due && rx.is_empty() {
            let fresh = shared.subscribe(Replay::ScreenOnly).await;
            if fresh.at == upto && fresh.exited.is_none() {
                refresh_due = false;
                rx = fresh.rx;
                ServerFrame::Output(fresh.repaint).encode(&mut batch);
                continue;
            }
            // Output came in between (or the end): stream it, and look again once caught up.
        }
        let first = tokio::select! {
            ev = rx.recv() => Some(ev),
            () = ctl.refresh.notified() => {
                if viewer.is_some() {
                    refresh_due = true;
                    continue;
                }
                None
            }
            Ok(why) = &mut ctl.err_rx => {
                let _ = protocol::write_server(wr, &ServerFrame::Error(why)).await;
                return;
            }
        };
        // A refresh is answered like falling behind: the screen as it is, then the stream.
        next = first.map_or(Next::Lagged, |ev| add(ev, &mut batch, &mut upto));
        if viewer.is_none() && rx.len() > REPAINT_BEHIND {
            next = Next::Lagged;
        }
        while next == Next::More && batch.len() < WRITE_BATCH {
            next = match rx.try_recv() {
                Ok(ev) => add(Ok(ev), &mut batch, &mut upto),
                Err(broadcast::error::TryRecvError::Lagged(_)) => Next::Lagged,
                Err(_) => break,
            };
        }
        if next == Next::Lagged {
            // This client fell behind (or stopped reading long enough to lose output): it gets
            // the screen as it is now and the stream from there.
            let fresh = shared.subscribe(Replay::ScreenOnly).await;
            rx = fresh.rx;
            upto = fresh.at;
            batch.clear();
            ServerFrame::Output(fresh.repaint).encode(&mut batch);
            next = match fresh.exited {
                Some(code) => {
                    ServerFrame::Exit(code).encode(&mut batch);
                    Next::Done
                }
                None => Next::More,
            };
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    More,
    Lagged,
    Done,
}

/// Adds one event to a client's next write.
fn add(
    ev: Result<Event, broadcast::error::RecvError>,
    batch: &mut BytesMut,
    upto: &mut Pos,
) -> Next {
    match ev {
        Ok(Event::Output(b, end)) => {
            ServerFrame::Output(b).encode(batch);
            *upto = end;
            Next::More
        }
        Ok(Event::Exit(code)) => {
            ServerFrame::Exit(code).encode(batch);
            Next::Done
        }
        Err(broadcast::error::RecvError::Lagged(_)) => Next::Lagged,
        Err(broadcast::error::RecvError::Closed) => Next::Done,
    }
}
