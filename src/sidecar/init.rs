//! `bottle-sidecar init`: PID 1 of the bundle (the agent's is the session holder).
//! Starts the daemons named in `BOTTLE_DAEMONS` as `bottle-sidecar <daemon>`, restarts a
//! crashed one with backoff, reaps every child (orphans included) in one `waitpid` loop,
//! forwards SIGTERM/SIGINT and exits 143/130 within a second.

use super::{EXIT_NOT_IMPLEMENTED, log};
use crate::wire::log::InitEvent;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

const DAEMON: &str = "init";
/// A daemon that ran this long before crashing starts again at the shortest backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

struct Daemon {
    name: String,
    pid: Option<Pid>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
    /// Exited with "not implemented": never restarted.
    unavailable: bool,
}

pub fn run() -> ExitCode {
    let names: Vec<String> = std::env::var("BOTTLE_DAEMONS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let Some(rt) = super::runtime(DAEMON, super::Threads::One) else {
        return ExitCode::FAILURE;
    };
    // The history's lines go to the state dir too, when the host mounted it.
    let events = std::path::Path::new(crate::wire::in_bundle::EVENTS_DIR);
    if events.is_dir() {
        log::keep_events(events);
    }
    rt.block_on(supervise(names))
}

async fn supervise(names: Vec<String>) -> ExitCode {
    let (mut term, mut int, mut child) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::child()),
    ) {
        (Ok(t), Ok(i), Ok(c)) => (t, i, c),
        _ => {
            log::event(DAEMON, "error", "cannot install signal handlers", json!({}));
            return ExitCode::FAILURE;
        }
    };
    let mut daemons: BTreeMap<String, Daemon> = names
        .into_iter()
        .map(|name| {
            let d = Daemon {
                name: name.clone(),
                pid: None,
                started: Instant::now(),
                backoff: Duration::from_secs(1),
                restart_at: Some(Instant::now()),
                unavailable: false,
            };
            (name, d)
        })
        .collect();
    log::event(
        DAEMON,
        "info",
        "starting",
        json!({ "daemons": daemons.keys().collect::<Vec<_>>() }),
    );

    loop {
        let now = Instant::now();
        for d in daemons.values_mut() {
            if d.restart_at.is_some_and(|t| t <= now) {
                d.restart_at = None;
                start(d);
            }
        }
        write_status(&daemons);
        let next = daemons.values().filter_map(|d| d.restart_at).min();
        let sleep = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = term.recv() => return shutdown(&mut daemons, Signal::SIGTERM, 143),
            _ = int.recv() => return shutdown(&mut daemons, Signal::SIGINT, 130),
            _ = child.recv() => reap(&mut daemons, false),
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Where init records each daemon's state for `bottle-sidecar health`.
pub fn status_file() -> std::path::PathBuf {
    std::env::var_os("BOTTLE_STATUS_FILE").map_or_else(
        || std::path::PathBuf::from("/tmp/bottle-init-status.json"),
        Into::into,
    )
}

fn write_status(daemons: &BTreeMap<String, Daemon>) {
    let status: BTreeMap<&str, &str> = daemons
        .values()
        .map(|d| {
            let s = if d.pid.is_some() {
                "running"
            } else if d.unavailable {
                "unavailable"
            } else {
                "restarting"
            };
            (d.name.as_str(), s)
        })
        .collect();
    let doc = json!({ "init_pid": std::process::id(), "daemons": status });
    let path = status_file();
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, doc.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// `bottle-sidecar health`: 0 when init runs and every daemon it has is up, else 1.
pub fn health() -> ExitCode {
    let path = status_file();
    let doc: serde_json::Value = match std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(d) => d,
        None => {
            println!(
                "unhealthy: {} is missing or unreadable (is init running?)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let init_alive = doc["init_pid"]
        .as_u64()
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let any_down = doc["daemons"]
        .as_object()
        .is_some_and(|m| m.values().any(|s| s.as_str() == Some("restarting")));
    if !init_alive {
        println!("unhealthy: init is not running");
        return ExitCode::FAILURE;
    }
    if any_down {
        // Every daemon's state, as when healthy: the dashboard tells which one is down.
        println!("unhealthy: {}", doc["daemons"]);
        return ExitCode::FAILURE;
    }
    println!("healthy: {}", doc["daemons"]);
    ExitCode::SUCCESS
}

fn start(d: &mut Daemon) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    match Command::new(exe)
        .arg(&d.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut c) => {
            let pid = Pid::from_raw(c.id() as i32);
            d.pid = Some(pid);
            d.started = Instant::now();
            log::event(
                DAEMON,
                "info",
                InitEvent::Started.msg(),
                json!({ "target": d.name, "pid": pid.as_raw() }),
            );
            for (stream, reader) in [
                (
                    "stdout",
                    c.stdout
                        .take()
                        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                ),
                (
                    "stderr",
                    c.stderr
                        .take()
                        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                ),
            ] {
                let Some(reader) = reader else { continue };
                let name = d.name.clone();
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(reader)
                        .lines()
                        .map_while(Result::ok)
                    {
                        log::relay(&name, stream, &line);
                    }
                });
            }
            // The std handle is dropped without waiting: the waitpid loop reaps it.
            drop(c);
        }
        Err(e) => {
            log::event(
                DAEMON,
                "error",
                InitEvent::CannotStart.msg(),
                json!({ "target": d.name, "error": e.to_string() }),
            );
            schedule_restart(d);
        }
    }
}

fn schedule_restart(d: &mut Daemon) {
    if d.started.elapsed() >= STABLE_AFTER {
        d.backoff = Duration::from_secs(1);
    }
    d.restart_at = Some(Instant::now() + d.backoff);
    log::event(
        DAEMON,
        "warn",
        InitEvent::Restarting.msg(),
        json!({ "target": d.name, "in_ms": d.backoff.as_millis() as u64 }),
    );
    d.backoff = (d.backoff * 2).min(MAX_BACKOFF);
}

/// Reaps every exited child. Daemons are rescheduled unless shutting down.
fn reap(daemons: &mut BTreeMap<String, Daemon>, shutting_down: bool) {
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Some(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Some(128 + sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        let Some(d) = daemons.values_mut().find(|d| d.pid == Some(pid)) else {
            continue; // an orphan reparented to us: reaped, nothing else to do
        };
        d.pid = None;
        if shutting_down {
            continue;
        }
        if code == Some(EXIT_NOT_IMPLEMENTED) {
            d.unavailable = true;
            log::event(
                DAEMON,
                "warn",
                InitEvent::NotAvailable.msg(),
                json!({ "target": d.name }),
            );
            continue;
        }
        log::event(
            DAEMON,
            "error",
            InitEvent::Exited.msg(),
            json!({ "target": d.name, "code": code }),
        );
        schedule_restart(d);
    }
}

fn shutdown(daemons: &mut BTreeMap<String, Daemon>, sig: Signal, code: u8) -> ExitCode {
    log::event(
        DAEMON,
        "info",
        "stopping",
        json!({ "signal": sig.as_str() }),
    );
    for pid in daemons.values().filter_map(|d| d.pid) {
        let _ = kill(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while daemons.values().any(|d| d.pid.is_some()) && Instant::now() < deadline {
        reap(daemons, true);
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in daemons.values().filter_map(|d| d.pid) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    reap(daemons, true);
    ExitCode::from(code)
}
