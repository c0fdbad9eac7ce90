//! `bottle-sidecar supervise`: the MCP server (streamable HTTP, rmcp) an agent asks a human
//! through. Requests and answers are files in the queue folder the host mounts ([`queue`]),
//! so the CLI and the dashboard answer them directly and nothing depends on this process
//! staying up: a restarted supervise finds the pending requests where it left them.

pub mod queue;
pub mod tools;

use crate::sidecar::log;
use crate::wire::supervise::SuperviseConfig;
use color_eyre::eyre::{Result, WrapErr};
use queue::{Answered, Queue};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The names the agent reaches supervise by; the `Host` header must be one of them.
pub const ALLOWED_HOSTS: &[&str] = &[crate::wire::names::SUPERVISE_HOST, "localhost", "127.0.0.1"];

/// How often expired requests are closed (covers requests whose caller is gone, e.g. after a
/// restart of supervise).
const SWEEP: Duration = Duration::from_secs(1);
/// The sweep leaves a request this long past its expiry to the call waiting on it, which
/// closes it itself (one answer, one log line).
const GRACE_MS: u64 = 3000;

pub fn load(path: &Path) -> Result<SuperviseConfig> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read the supervise config {}", path.display()))?;
    serde_json::from_str(&text)
        .wrap_err_with(|| format!("{} is not a supervise config", path.display()))
}

/// Connections served at once; a request head must arrive within [`HEAD_TIMEOUT`] and fit in
/// [`MAX_HEAD`].
const MAX_CONNECTIONS: usize = 256;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 64 * 1024;

pub async fn run(config_path: &Path, listen: Option<std::net::SocketAddr>) -> Result<()> {
    let config = load(config_path)?;
    let queue = Queue::new(&config.queue_dir).with_hourly_limit(config.max_per_hour as usize);
    queue.ensure()?;
    let addr: std::net::SocketAddr = match listen {
        Some(a) => a,
        None => crate::sidecar::listen::resolve(&config.listen)
            .wrap_err_with(|| format!("in {}", config_path.display()))?,
    };
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .wrap_err_with(|| format!("cannot listen on {addr}"))?;
    let (pending, unreadable) = queue.pending()?;
    log::event(
        "supervise",
        "info",
        "listening",
        json!({
            "addr": addr.to_string(),
            "queue": config.queue_dir,
            "timeout_seconds": timeout.as_secs(),
            "pending": pending.len(),
            "unreadable": unreadable,
        }),
    );
    tokio::spawn(sweep(queue.clone()));

    let service = StreamableHttpService::new(
        {
            let queue = queue.clone();
            let waiting = tools::Waiting::default();
            move || {
                Ok(tools::Supervise::new(
                    queue.clone(),
                    timeout,
                    Arc::clone(&waiting),
                ))
            }
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(ALLOWED_HOSTS.iter().copied())
            // Long approval waits keep their event stream open; pings keep idle-timeouts away.
            .with_sse_keep_alive(Some(Duration::from_secs(15))),
    );
    // Bounded like the gateway: a flood of half-open connections cannot take the bundle.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            color_eyre::eyre::bail!("the connection slots closed");
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::event(
                    "supervise",
                    "warn",
                    "accept failed",
                    json!({ "error": e.to_string() }),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(io, service)
                .await
            {
                log::event(
                    "supervise",
                    "debug",
                    "connection ended with an error",
                    json!({ "peer": peer.to_string(), "error": e.to_string() }),
                );
            }
        });
    }
}

/// Closes expired requests: "denied: timed out", unless a human answered first.
async fn sweep(queue: Queue) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let q = queue.clone();
        let closed = tokio::task::spawn_blocking(move || close_expired(&q)).await;
        if let Ok(Err(e)) = closed {
            log::event(
                "supervise",
                "warn",
                "sweep failed",
                json!({ "error": format!("{e:#}") }),
            );
        }
    }
}

/// Closes requests more than [`GRACE_MS`] past their expiry: "denied: timed out".
pub fn close_expired(queue: &Queue) -> Result<usize> {
    let now = queue::now_ms();
    let mut n = 0;
    for r in queue
        .pending()?
        .0
        .into_iter()
        .filter(|r| r.expires_ms.saturating_add(GRACE_MS) <= now)
    {
        if let Answered::Recorded(a) = queue.close(&r.id, "timed out", "supervise")? {
            n += 1;
            tools::log_answer("approval answered", &a);
        }
    }
    Ok(n)
}
