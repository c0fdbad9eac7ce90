use super::policy::{Denial, Policy};
use crate::wire::gateway::GatewayConfig;
use bytes::Bytes;
use color_eyre::eyre::{Result, WrapErr, bail};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const DAEMON: &str = "gateway";
/// Request heads larger than this are refused (hyper answers 431).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// A client that has not sent its request head by then is dropped (slowloris).
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) type Body = BoxBody<Bytes, hyper::Error>;

pub(super) struct State {
    policy: Policy,
    resolve: BTreeMap<String, Vec<IpAddr>>,
    /// Placeholder → the one host it may go to.
    pub(super) placeholders: Vec<(String, String)>,
    routes: Vec<crate::wire::gateway::GatewayRoute>,
    intercept: Vec<crate::types::HostPattern>,
    /// Route host → its real token, read from the route's 0600 file (again on SIGHUP).
    tokens: std::sync::RwLock<BTreeMap<String, String>>,
    /// `None` when the bottle CA cannot be loaded: routed hosts then fail closed.
    pub(super) minter: Option<super::intercept::Minter>,
    pub(super) upstream_tls: Arc<rustls::ClientConfig>,
    /// host:port of an upstream proxy (pipelock) every connection goes through.
    upstream_proxy: Option<String>,
    /// Agent connections and tunnels held at once: a flood cannot take the bundle's memory.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// A tunnel nobody sent anything through for this long is closed.
    tunnel_idle: Duration,
}

/// How many agent connections (and, separately counted, tunnels) the gateway serves at once;
/// past that, new ones wait in the listen backlog.
pub(super) const MAX_CONNECTIONS: usize = 4096;

impl State {
    pub(super) fn route(&self, host: &str) -> Option<&crate::wire::gateway::GatewayRoute> {
        self.routes
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(host))
    }

    fn load_tokens(&self) {
        let mut loaded = BTreeMap::new();
        for r in &self.routes {
            match std::fs::read_to_string(&r.token_file) {
                Ok(t) if !t.trim().is_empty() => {
                    loaded.insert(
                        r.host.to_ascii_lowercase(),
                        t.trim_end_matches(['\n', '\r']).to_owned(),
                    );
                }
                _ => crate::sidecar::log::event(
                    DAEMON,
                    "error",
                    "route token unreadable; requests to it fail closed",
                    json!({ "host": r.host, "file": r.token_file }),
                ),
            }
        }
        let count = loaded.len();
        if let Ok(mut t) = self.tokens.write() {
            *t = loaded;
        }
        crate::sidecar::log::event(
            DAEMON,
            "info",
            "route tokens loaded",
            json!({ "routes": self.routes.len(), "loaded": count }),
        );
    }

    pub(super) fn token(&self, host: &str) -> Option<String> {
        self.tokens
            .read()
            .ok()?
            .get(&host.to_ascii_lowercase())
            .cloned()
    }

    /// The upstream proxy a connection to `host:port` at `ip` goes through: none for a
    /// destination the user opted into with `allow_private` (pipelock refuses every private
    /// address, and cannot be told about a `host:port` opt-in).
    fn proxy_for(&self, host: &str, port: u16, ip: IpAddr) -> Option<&str> {
        proxy_for(self.upstream_proxy.as_deref(), &self.policy, host, port, ip)
    }

    /// A TCP stream to `ip:port` — or, with an upstream proxy, a tunnel to `host:port` through
    /// it. The proxy resolves `host` again; it refuses the same special-purpose blocks and
    /// the Docker host's addresses (see `render::pipelock`), so a rebind gains nothing.
    pub(super) async fn dial(
        &self,
        host: &str,
        ip: IpAddr,
        port: u16,
    ) -> std::io::Result<TcpStream> {
        let Some(proxy) = self.proxy_for(host, port, ip) else {
            let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, port)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            let _ = s.set_nodelay(true);
            return Ok(s);
        };
        tunnel_through(proxy, host, port).await
    }
}

fn proxy_for<'p>(
    proxy: Option<&'p str>,
    policy: &Policy,
    host: &str,
    port: u16,
    ip: IpAddr,
) -> Option<&'p str> {
    proxy.filter(|_| !policy.opted_in(host, port, ip))
}

/// A tunnel to `host:port` through the CONNECT proxy at `proxy`.
async fn tunnel_through(proxy: &str, host: &str, port: u16) -> std::io::Result<TcpStream> {
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(proxy))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream proxy timed out")
            })??;
        let _ = s.set_nodelay(true);
        let target = authority(host, port);
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await?;
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 || s.read(&mut byte).await? == 0 {
                return Err(std::io::Error::other(
                    "the upstream proxy closed the tunnel",
                ));
            }
            head.push(byte[0]);
        }
        let status_ok = head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200");
        if !status_ok {
            return Err(std::io::Error::other(format!(
                "the upstream proxy refused: {}",
                String::from_utf8_lossy(&head).lines().next().unwrap_or("")
            )));
        }
        Ok(s)
    }
}

/// Reads the config file and serves on its `listen` address (or `listen_override`).
pub async fn run(config: &Path, listen_override: Option<SocketAddr>) -> Result<()> {
    let text =
        std::fs::read(config).wrap_err_with(|| format!("cannot read {}", config.display()))?;
    let cfg: GatewayConfig = serde_json::from_slice(&text)
        .wrap_err_with(|| format!("{} is not a gateway config", config.display()))?;
    let listen: SocketAddr = match listen_override {
        Some(a) => a,
        None => crate::sidecar::listen::resolve(&cfg.listen)?,
    };
    // Before the port opens: a SIGHUP must never find the default action (exit) in place.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .wrap_err("cannot handle SIGHUP")?;
    let listener = TcpListener::bind(listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {listen}"))?;
    crate::sidecar::log::event(
        DAEMON,
        "info",
        "listening",
        json!({ "listen": listen.to_string() }),
    );
    serve(cfg, listener, hup).await
}

/// The Docker host's address as seen from the bundle: its default gateway.
fn docker_host_addresses() -> Vec<IpAddr> {
    let Ok(routes) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"00000000")).then(|| u32::from_str_radix(f.get(2)?, 16).ok())?
        })
        .map(|gw| IpAddr::V4(std::net::Ipv4Addr::from(gw.to_le_bytes())))
        .collect()
}

/// The host's own addresses, as launch listed them (none if the file is absent).
fn listed_host_addresses(file: Option<&Path>) -> Vec<IpAddr> {
    let Some(file) = file else { return Vec::new() };
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            crate::sidecar::log::event(
                DAEMON,
                "warn",
                "host address list unreadable",
                json!({ "error": e.to_string() }),
            );
            Vec::new()
        }),
        Err(_) => Vec::new(),
    }
}

pub async fn serve(
    cfg: GatewayConfig,
    listener: TcpListener,
    mut hup: tokio::signal::unix::Signal,
) -> Result<()> {
    let minter = if cfg.routes.is_empty() && cfg.intercept.is_empty() {
        None
    } else {
        match super::intercept::Minter::load(&cfg.ca_cert, &cfg.ca_key) {
            Ok(m) => Some(m),
            Err(e) => {
                crate::sidecar::log::event(
                    DAEMON,
                    "error",
                    "bottle CA unavailable; routed hosts fail closed",
                    json!({ "error": format!("{e:#}") }),
                );
                None
            }
        }
    };
    let upstream_tls = super::intercept::upstream_config(cfg.upstream_roots.as_deref())?;
    let state = Arc::new(State {
        slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        tunnel_idle: Duration::from_secs(cfg.tunnel_idle_seconds.max(1)),
        routes: cfg.routes.clone(),
        intercept: cfg.intercept.clone(),
        tokens: std::sync::RwLock::new(BTreeMap::new()),
        minter,
        upstream_tls,
        upstream_proxy: cfg.upstream_proxy.as_deref().map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        }),
        policy: Policy {
            allow: cfg.allow.clone(),
            allow_private: cfg.allow_private.clone(),
            host_addresses: docker_host_addresses()
                .into_iter()
                .chain(listed_host_addresses(cfg.host_addresses_file.as_deref()))
                .collect(),
        },
        resolve: cfg
            .resolve
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        placeholders: cfg
            .routes
            .iter()
            .filter(|r| !r.placeholder.is_empty())
            .map(|r| (r.placeholder.clone(), r.host.clone()))
            .collect(),
    });
    state.load_tokens();
    {
        let state = state.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                state.load_tokens();
            }
        });
    }
    loop {
        // A slot first: at the cap, connections wait in the kernel's backlog, not in memory.
        let Ok(slot) = state.slots.clone().acquire_owned().await else {
            bail!("the connection slots closed");
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                crate::sidecar::log::event(
                    DAEMON,
                    "warn",
                    "accept failed",
                    json!({ "error": e.to_string() }),
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // One upstream connection per agent connection, reused while it names the same origin.
            let upstream: Upstream = Arc::default();
            let service = service_fn(move |req| handle(req, state.clone(), upstream.clone()));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

pub(super) fn text(status: StatusCode, msg: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub(super) struct Entry<'a> {
    pub(super) method: &'a str,
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) started: Instant,
}

impl Entry<'_> {
    pub(super) fn log(
        &self,
        decision: &str,
        reason: &str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        crate::sidecar::log::event(
            DAEMON,
            if decision == crate::wire::log::DENY {
                "warn"
            } else {
                "info"
            },
            crate::wire::log::REQUEST,
            json!({
                "method": self.method,
                "host": self.host,
                "port": self.port,
                "decision": decision,
                "reason": reason,
                "status": status,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "duration_ms": self.started.elapsed().as_millis() as u64,
            }),
        );
    }

    /// 502 for an upstream that cannot be reached.
    pub(super) fn unreachable(&self, e: &dyn std::fmt::Display) -> Response<Body> {
        self.log("allow", "upstream-unreachable", 502, 0, 0);
        text(
            StatusCode::BAD_GATEWAY,
            format!(
                "bottle gateway: cannot connect to {}:{}: {e}",
                self.host, self.port
            ),
        )
    }

    pub(super) fn deny(&self, d: &Denial) -> Response<Body> {
        self.log("deny", d.code(), 403, 0, 0);
        text(StatusCode::FORBIDDEN, format!("bottle gateway: {d}"))
    }
}

/// The origin connection of one agent connection, with the host and port it goes to.
type Upstream = Arc<
    tokio::sync::Mutex<
        Option<(
            String,
            u16,
            hyper::client::conn::http1::SendRequest<Incoming>,
        )>,
    >,
>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    upstream: Upstream,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    if req.method() == Method::CONNECT {
        return Ok(connect(req, state, started).await);
    }
    Ok(forward(req, state, started, upstream).await)
}

/// `host:port` for a request line, with an IPv6 literal in brackets (`[::1]:443`).
pub(super) fn authority(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// TRACE (and TRACK) reflect the request back, headers and injected credentials included.
pub(super) fn refused_method(method: &Method) -> Option<Denial> {
    let m = method.as_str();
    (m.eq_ignore_ascii_case("TRACE") || m.eq_ignore_ascii_case("TRACK")).then(|| {
        Denial::BadMethod {
            method: m.to_owned(),
        }
    })
}

/// Resolves `host` (overrides first) and returns the first address the policy accepts; the
/// connection goes to that very address, so a second lookup cannot rebind it.
async fn pick_address(state: &State, host: &str, port: u16) -> Result<IpAddr, Denial> {
    let addrs: Vec<IpAddr> = if let Some(ip) = super::policy::ip_literal(host) {
        vec![ip]
    } else if let Some(fixed) = state.resolve.get(&host.to_ascii_lowercase()) {
        fixed.clone()
    } else {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        }
    };
    let mut first_denial = None;
    for ip in addrs {
        match state.policy.address_ok(host, port, ip) {
            Ok(()) => return Ok(ip),
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    Err(first_denial.unwrap_or(Denial::Unresolvable {
        host: host.to_owned(),
    }))
}

async fn connect(req: Request<Incoming>, state: Arc<State>, started: Instant) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "bottle gateway: CONNECT needs host:port".into(),
        );
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let entry = Entry {
        method: "CONNECT",
        host: &host,
        port,
        started,
    };
    if let Err(d) = state.policy.admits(&host, port) {
        return entry.deny(&d);
    }
    let opted_in = state.policy.admits_port_freely(&host, port);
    if port != 443 && !opted_in {
        return entry.deny(&Denial::BadPort {
            host: host.clone(),
            port,
        });
    }
    let ip = match pick_address(&state, &host, port).await {
        Ok(ip) => ip,
        Err(d) => return entry.deny(&d),
    };
    // A tunnel outlives the connection that asked for it: it holds a slot of its own.
    let Ok(slot) = state.slots.clone().try_acquire_owned() else {
        entry.log("deny", "too-many-connections", 503, 0, 0);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("bottle gateway: more than {MAX_CONNECTIONS} connections at once"),
        );
    };
    if state.route(&host).is_some() || state.intercept.iter().any(|p| p.matches(&host)) {
        let host_owned = host.clone();
        tokio::spawn(async move {
            let _slot = slot;
            super::routed::intercept(req, state, host_owned, port, ip, started).await;
        });
        return Response::new(empty());
    }
    let upstream = match state.dial(&host, ip, port).await {
        Ok(s) => s,
        Err(e) => return entry.unreachable(&e),
    };
    let host_owned = host.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let entry = Entry {
            method: "CONNECT",
            host: &host_owned,
            port,
            started,
        };
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = upstream.set_nodelay(true);
                let moved =
                    super::tunnel::relay(&mut client, &mut upstream, state.tunnel_idle).await;
                let reason = if moved.idle { "tunnel-idle" } else { "tunnel" };
                entry.log("allow", reason, 200, moved.down, moved.up);
            }
            Err(_) => entry.log("allow", "upgrade-failed", 200, 0, 0),
        }
    });
    Response::new(empty())
}

/// Headers that concern this hop only and are never forwarded.
pub(super) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn forward(
    mut req: Request<Incoming>,
    state: Arc<State>,
    started: Instant,
    upstream: Upstream,
) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let uri = req.uri().clone();
    let Some(host) = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "bottle gateway: send absolute-URI requests (http://host/...) or CONNECT".into(),
        );
    };
    if uri.scheme_str() != Some("http") {
        return text(
            StatusCode::BAD_REQUEST,
            "bottle gateway: only http:// is forwarded as is; use CONNECT for https".into(),
        );
    }
    let port = uri.port_u16().unwrap_or(80);
    let entry = Entry {
        method: &method,
        host: &host,
        port,
        started,
    };
    if let Err(d) = state.policy.admits(&host, port) {
        return entry.deny(&d);
    }
    if port != 80 && !state.policy.admits_port_freely(&host, port) {
        return entry.deny(&Denial::BadHttpPort {
            host: host.clone(),
            port,
        });
    }
    if let Some(d) = refused_method(req.method()) {
        return entry.deny(&d);
    }
    // The checked host is the only host: a Host naming another site on the same address
    // would reach a site the allowlist never admitted. Requests here are in absolute form, so
    // Host is replaced from the URI (as a proxy must), never taken from the client.
    if let Err(r) = super::host_header::pin(
        &uri,
        req.headers_mut(),
        &host,
        port,
        80,
        super::host_header::AbsoluteForm::Replace,
    ) {
        entry.log("deny", r.reason(), 421, 0, 0);
        return text(StatusCode::MISDIRECTED_REQUEST, r.message(&host, port));
    }
    // A placeholder on its way to any host but its own is a leak attempt.
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    let leaks = state.placeholders.iter().any(|(placeholder, owner)| {
        !owner.eq_ignore_ascii_case(&host)
            && (target.contains(placeholder.as_str())
                || req
                    .headers()
                    .values()
                    .any(|v| contains(v.as_bytes(), placeholder.as_bytes())))
    });
    if leaks {
        return entry.deny(&Denial::Leak { host: host.clone() });
    }
    let mut cached = upstream.lock().await;
    // An open connection to this very origin was checked when it was made: reuse it without
    // resolving again. Anything else is resolved, checked and dialled afresh.
    let sender = match cached.take() {
        Some((h, p, s)) if h == host && p == port && !s.is_closed() => {
            &mut cached.insert((h, p, s)).2
        }
        _ => {
            let ip = match pick_address(&state, &host, port).await {
                Ok(ip) => ip,
                Err(d) => return entry.deny(&d),
            };
            let stream = match state.dial(&host, ip, port).await {
                Ok(s) => s,
                Err(e) => return entry.unreachable(&e),
            };
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok((sender, conn)) => {
                    tokio::spawn(conn);
                    &mut cached.insert((host.clone(), port, sender)).2
                }
                Err(e) => {
                    entry.log("allow", "upstream-handshake", 502, 0, 0);
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!("bottle gateway: {host}:{port}: {e}"),
                    );
                }
            }
        }
    };
    let mut pending = LogOnDrop {
        method: method.clone(),
        host: host.clone(),
        port,
        started,
        decision: "allow",
        armed: true,
    };
    if sender.ready().await.is_err() {
        *cached = None;
        pending.disarm();
        entry.log("allow", "upstream-closed", 502, 0, 0);
        return text(
            StatusCode::BAD_GATEWAY,
            format!("bottle gateway: {host} closed the connection"),
        );
    }
    // Origin-form toward the origin; drop this hop's headers.
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *req.uri_mut() = match path.parse() {
        Ok(p) => p,
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "bottle gateway: bad request target".into(),
            );
        }
    };
    let connection_listed: Vec<String> = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for h in HOP_BY_HOP
        .iter()
        .map(|s| s.to_string())
        .chain(connection_listed)
    {
        req.headers_mut().remove(h.as_str());
    }
    let bytes_in = content_length(req.headers());
    match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let bytes_out = content_length(resp.headers());
            pending.disarm();
            entry.log("allow", "allowlisted", status, bytes_in, bytes_out);
            downstream(resp)
        }
        Err(e) => {
            *cached = None;
            pending.disarm();
            entry.log("allow", "upstream-error", 502, bytes_in, 0);
            text(
                StatusCode::BAD_GATEWAY,
                format!("bottle gateway: {host}:{port}: {e}"),
            )
        }
    }
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Logs a request the agent gave up on before the upstream answered (the service future is
/// dropped then), so every request still gets its line.
pub(super) struct LogOnDrop {
    pub(super) method: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) started: Instant,
    pub(super) decision: &'static str,
    pub(super) armed: bool,
}

impl LogOnDrop {
    /// The request was logged by other means.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let entry = Entry {
                method: &self.method,
                host: &self.host,
                port: self.port,
                started: self.started,
            };
            entry.log(self.decision, "client-closed", 499, 0, 0);
        }
    }
}

/// An origin's response as the agent gets it: the origin's hop-by-hop headers (its
/// `Connection: close`, say) concern the gateway's connection, not the agent's.
pub(super) fn downstream(mut resp: Response<Incoming>) -> Response<Body> {
    for h in HOP_BY_HOP {
        resp.headers_mut().remove(*h);
    }
    resp.map(|b| b.boxed())
}

/// The declared body size, for the log line (0 when not declared).
pub(super) fn content_length(headers: &hyper::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PrivateTarget;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    #[test]
    fn ipv6_literals_are_bracketed_in_a_request_line() {
        assert_eq!(authority("::1", 443), "[::1]:443");
        assert_eq!(authority("2001:db8::5", 8443), "[2001:db8::5]:8443");
        assert_eq!(authority("example.com", 443), "example.com:443");
        assert_eq!(authority("10.1.2.3", 80), "10.1.2.3:80");
    }

    /// Public destinations go through the upstream proxy; what `allow_private` admits is
    /// dialled directly (pipelock would refuse it as private).
    #[test]
    fn only_what_allow_private_admits_skips_the_upstream_proxy() {
        let policy = Policy {
            allow_private: vec![
                PrivateTarget::parse("10.1.0.0/16").expect("cidr"),
                PrivateTarget::parse("registry.lan:5000").expect("host:port"),
            ],
            ..Policy::default()
        };
        let proxy = Some("127.0.0.1:8888");
        let public: IpAddr = "93.184.216.34".parse().expect("ip");
        let private: IpAddr = "10.1.2.3".parse().expect("ip");
        let via = |host, port, ip| proxy_for(proxy, &policy, host, port, ip);
        assert_eq!(via("api.example.com", 443, public), proxy);
        assert_eq!(via("x.lan", 443, private), None, "an opted-in address");
        assert_eq!(
            via("registry.lan", 5000, private),
            None,
            "an opted-in host:port"
        );
        assert_eq!(
            via("REGISTRY.lan", 5000, public),
            None,
            "names match without case"
        );
        assert_eq!(via("registry.lan", 5001, public), proxy, "another port");
        assert_eq!(
            proxy_for(None, &policy, "api.example.com", 443, public),
            None
        );
    }

    /// The CONNECT the proxy gets names the host (bracketed if a literal), and the stream
    /// it returns is the tunnel; a refusal is an error naming the proxy's status.
    #[tokio::test]
    async fn a_tunnel_through_the_upstream_proxy() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let proxy = tokio::spawn(async move {
            let mut lines = Vec::new();
            for answer in [
                "HTTP/1.1 200 Connection established",
                "HTTP/1.1 403 Forbidden",
            ] {
                let (s, _) = l.accept().await.expect("accept");
                let mut r = tokio::io::BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.expect("request line");
                lines.push(line.trim_end().to_owned());
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.expect("header");
                    if h == "\r\n" {
                        break;
                    }
                }
                let mut s = r.into_inner();
                s.write_all(format!("{answer}\r\n\r\n").as_bytes())
                    .await
                    .expect("answer");
                s.write_all(b"inside").await.expect("tunnel");
            }
            lines
        });
        let mut t = tunnel_through(&addr, "::1", 443).await.expect("tunnel");
        let mut got = [0u8; 6];
        t.read_exact(&mut got).await.expect("tunnel bytes");
        assert_eq!(&got, b"inside");
        let refused = tunnel_through(&addr, "example.com", 443)
            .await
            .expect_err("refused");
        assert!(refused.to_string().contains("403 Forbidden"), "{refused}");
        let lines = proxy.await.expect("proxy");
        assert_eq!(
            lines,
            [
                "CONNECT [::1]:443 HTTP/1.1",
                "CONNECT example.com:443 HTTP/1.1"
            ]
        );
    }
}
