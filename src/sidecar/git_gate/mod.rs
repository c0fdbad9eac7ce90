//! `bottle-sidecar git-gate`: serves each configured upstream as `git://git-gate/NAME.git`
//! through real `git daemon`, from a bare mirror refreshed before every clone or fetch. Pushes
//! pass the gate's pre-receive hook (the branch policy) and are forwarded upstream with the
//! upstream's identity, which only the bundle holds. Hooks and config an agent pushes never run
//! here: every git of the gate takes its hooks from a read-only folder holding only ours.
//!
//! The daemon exits when git daemon does, so init restarts both; SIGTERM is passed on.

pub mod events;
pub mod git;
pub mod hooks;
pub mod mirror;
pub mod policy;

use color_eyre::eyre::{Result, WrapErr, bail};
use events::{DAEMON, Decision, Event, Level, Op};
use git::Layout;
use std::path::{Path, PathBuf};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

/// The unix datagram socket the hooks send their events to.
pub const EVENTS_SOCKET: &str = "/run/bottle-git-gate/events.sock";
/// git daemon's pid, so a restarted gate can stop the daemon a killed one left behind.
const DAEMON_PID: &str = "/run/bottle-git-gate/git-daemon.pid";

pub async fn run(config_path: &Path) -> Result<()> {
    let config = hooks::load(config_path)?;
    let layout = Layout::default();
    layout.prepare()?;
    layout.write_ca_bundle(
        config.upstream_ca.as_deref(),
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
    )?;
    for repo in &config.repos {
        mirror::ensure(&layout, repo)
            .wrap_err_with(|| format!("cannot set up the mirror of {}", repo.name))?;
    }

    let socket_path = PathBuf::from(EVENTS_SOCKET);
    let socket = bind_events(&socket_path)?;
    tokio::spawn(events::relay(socket));

    let pid_file = PathBuf::from(DAEMON_PID);
    stop_orphan(&pid_file).await;
    // The resolved address, so git and the gate agree on where it listens.
    let listen =
        crate::sidecar::listen::resolve(&format!("{}:{}", config.listen_host, config.port))?;
    let mut daemon = git_daemon(&layout, config_path, listen, &socket_path)?;
    if let Some(pid) = daemon.id() {
        std::fs::write(&pid_file, pid.to_string())
            .wrap_err_with(|| format!("cannot write {}", pid_file.display()))?;
    }
    crate::sidecar::log::event(
        DAEMON,
        "info",
        "serving",
        serde_json::json!({
            "port": config.port,
            "repos": config.repos.iter().map(|r| &r.name).collect::<Vec<_>>(),
        }),
    );

    // The first mirror runs beside git daemon: a clone meanwhile waits on the repo's lock and
    // then refreshes it again itself.
    for repo in config.repos.clone() {
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || {
            let event = match mirror::refresh(&layout, &repo) {
                Ok(()) => Event::new(&repo.name, Op::Fetch, Decision::Allow, "initial mirror"),
                Err(e) => Event::new(
                    &repo.name,
                    Op::Fetch,
                    Decision::Allow,
                    format!("initial mirror failed; retried on the first clone or fetch: {e:#}"),
                )
                .with_level(Level::Warn),
            };
            event.log();
        });
    }

    let mut term = signal(SignalKind::terminate()).wrap_err("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).wrap_err("cannot watch SIGINT")?;
    let stop = |daemon: &tokio::process::Child, sig| {
        if let Some(pid) = daemon.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    };
    tokio::select! {
        status = daemon.wait() => {
            let status = status.wrap_err("cannot wait for git daemon")?;
            bail!("git daemon exited ({status})");
        }
        _ = term.recv() => stop(&daemon, nix::sys::signal::Signal::SIGTERM),
        _ = int.recv() => stop(&daemon, nix::sys::signal::Signal::SIGTERM),
    }
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), daemon.wait()).await;
    Ok(())
}

/// A gate killed outright (SIGKILL, OOM) leaves its git daemon running and holding the port,
/// so every restart would fail to listen. Stop that orphan first.
async fn stop_orphan(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_git_daemon = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "git-daemon")
    };
    if !is_git_daemon(pid) {
        return;
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    for _ in 0..100 {
        if !is_git_daemon(pid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    crate::sidecar::log::event(
        DAEMON,
        "warn",
        "stopped the git daemon a previous run left behind",
        serde_json::json!({ "pid": pid }),
    );
}

fn bind_events(path: &Path) -> Result<tokio::net::UnixDatagram> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    }
    // A socket left by a previous run (init restarted us) would make bind fail.
    let _ = std::fs::remove_file(path);
    tokio::net::UnixDatagram::bind(path)
        .wrap_err_with(|| format!("cannot bind the event socket {}", path.display()))
}

/// git's folder of helper programs (`git --exec-path`).
fn exec_path(layout: &Layout) -> Option<PathBuf> {
    let mut c = layout.git(None);
    c.arg("--exec-path");
    let out = git::run(c, "find git's helpers", std::time::Duration::from_secs(10)).ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Starts `git daemon` with the gate's isolation; its stderr becomes our log lines.
fn git_daemon(
    layout: &Layout,
    config_path: &Path,
    listen: std::net::SocketAddr,
    socket: &Path,
) -> Result<tokio::process::Child> {
    let (host, port) = (listen.ip(), listen.port());
    let exe = std::env::current_exe().wrap_err("cannot find bottle-sidecar's own path")?;
    // git daemon runs the access hook through sh, with the service and path appended.
    let access_hook = format!(
        "{} git-gate access --config {}",
        git::shell_quote(&exe.display().to_string()),
        git::shell_quote(&config_path.display().to_string())
    );
    // The daemon itself rather than the `git` wrapper, so the pid we hold is the listener's.
    let mut c = match exec_path(layout) {
        Some(dir) if dir.join("git-daemon").exists() => {
            let mut c = std::process::Command::new(dir.join("git-daemon"));
            layout.isolate(&mut c);
            c
        }
        _ => {
            let mut c = layout.git(None);
            c.arg("daemon");
            c
        }
    };
    c.arg("--reuseaddr")
        .arg(format!("--base-path={}", layout.root.display()))
        .arg("--export-all")
        .arg("--enable=receive-pack")
        .arg("--informative-errors")
        .arg(format!("--listen={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--access-hook={access_hook}"))
        .arg("--init-timeout=30")
        .arg("--timeout=600")
        .arg("--max-connections=64")
        // Nothing outside the mirrors' folder is ever served.
        .arg(&layout.root)
        .env(events::SOCKET_ENV, socket)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(c)
        .kill_on_drop(true)
        .spawn()
        .wrap_err("cannot start git daemon (is git installed in the bundle?)")?;
    if let Some(stderr) = child.stderr.take() {
        // git daemon echoes client-sent paths into its errors: read bytes, not UTF-8 lines,
        // and never stop draining (a closed pipe would SIGPIPE the daemon's children).
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        crate::sidecar::log::event(
                            DAEMON,
                            "info",
                            line.trim_end(),
                            serde_json::json!({ "stream": "git-daemon" }),
                        );
                    }
                }
            }
        });
    }
    Ok(child)
}
