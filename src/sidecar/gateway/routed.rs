//! Requests to a routed host, inside the intercepted tunnel: SNI, Host and CONNECT host must
//! agree; the route's placeholder becomes the real token; everything goes on over verified TLS
//! on one upstream connection per agent connection.

use super::intercept::server_config;
use super::policy::Denial;
use super::server::{
    Body, Entry, HEAD_TIMEOUT, HOP_BY_HOP, LogOnDrop, MAX_HEAD, State, contains, content_length,
    downstream, text,
};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

pub(super) async fn intercept(
    req: Request<Incoming>,
    state: Arc<State>,
    host: String,
    port: u16,
    ip: IpAddr,
    started: Instant,
) {
    let entry = Entry {
        method: "CONNECT",
        host: &host,
        port,
        started,
    };
    let Ok(upgraded) = hyper::upgrade::on(req).await else {
        entry.log("deny", "upgrade-failed", 400, 0, 0);
        return;
    };
    let Some(minter) = &state.minter else {
        entry.log("deny", "no-bottle-ca", 502, 0, 0);
        return;
    };
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(
        rustls::server::Acceptor::default(),
        TokioIo::new(upgraded),
    );
    let Ok(handshake) = tokio::time::timeout(HEAD_TIMEOUT, acceptor).await else {
        entry.log("deny", "tls-timeout", 400, 0, 0);
        return;
    };
    let Ok(start) = handshake else {
        entry.log("deny", "not-tls", 400, 0, 0);
        return;
    };
    // The name the client asks TLS for must be the host it CONNECTed to.
    let sni_ok = start
        .client_hello()
        .server_name()
        .is_some_and(|s| s.eq_ignore_ascii_case(&host));
    if !sni_ok {
        entry.log("deny", "sni-mismatch", 403, 0, 0);
        return;
    }
    let config = match minter.for_host(&host).and_then(server_config) {
        Ok(c) => c,
        Err(_) => {
            entry.log("deny", "certificate-minting-failed", 502, 0, 0);
            return;
        }
    };
    let Ok(tls) = start.into_stream(config).await else {
        entry.log("deny", "tls-handshake-failed", 400, 0, 0);
        return;
    };
    entry.log("allow", "intercept", 200, 0, 0);
    let upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
    let service = service_fn(move |req| {
        let (state, host, upstream) = (state.clone(), host.clone(), upstream.clone());
        async move { Ok::<_, Infallible>(request(req, &state, &host, port, ip, &upstream).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn request(
    mut req: Request<Incoming>,
    state: &State,
    host: &str,
    port: u16,
    ip: IpAddr,
    upstream: &Mutex<Option<SendRequest<Incoming>>>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let entry = Entry {
        method: &method,
        host,
        port,
        started,
    };
    // The CONNECT host is the only host: the URI and the one Host header must name it, and
    // Host is rewritten to it before anything is injected.
    let uri = req.uri().clone();
    if let Err(r) = super::host_header::pin(
        &uri,
        req.headers_mut(),
        host,
        port,
        443,
        super::host_header::AbsoluteForm::Strict,
    ) {
        entry.log("deny", r.reason(), 421, 0, 0);
        return text(StatusCode::MISDIRECTED_REQUEST, r.message(host, port));
    }
    if let Some(d) = super::server::refused_method(req.method()) {
        return entry.deny(&d);
    }
    // Another route's placeholder, in a header or in the URL, is a leak attempt.
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let leaks = state.placeholders.iter().any(|(placeholder, owner)| {
        !owner.eq_ignore_ascii_case(host)
            && (target.contains(placeholder.as_str())
                || req
                    .headers()
                    .values()
                    .any(|v| contains(v.as_bytes(), placeholder.as_bytes())))
    });
    if leaks {
        return entry.deny(&Denial::Leak {
            host: host.to_owned(),
        });
    }
    // Swap the placeholder for the real token in the route's header.
    let mut decision = "allow";
    if let Some(route) = state.route(host) {
        let carries = req
            .headers()
            .get(route.header.as_str())
            .is_some_and(|v| contains(v.as_bytes(), route.placeholder.as_bytes()));
        if carries {
            let Some(token) = state.token(host) else {
                entry.log("deny", "token-unavailable", 502, 0, 0);
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("bottle gateway: the credential for {host} is not available"),
                );
            };
            let value = route.format.replace("{token}", &token);
            match header::HeaderValue::from_str(&value) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    let Ok(name) = header::HeaderName::from_bytes(route.header.as_bytes()) else {
                        return text(
                            StatusCode::BAD_GATEWAY,
                            "bottle gateway: bad route header".into(),
                        );
                    };
                    req.headers_mut().insert(name, v);
                    // Plain bodies, so an echo of the token can be masked on the way back.
                    req.headers_mut().insert(
                        header::ACCEPT_ENCODING,
                        header::HeaderValue::from_static("identity"),
                    );
                    decision = "inject";
                }
                Err(_) => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        "bottle gateway: the credential is not a valid header value".into(),
                    );
                }
            }
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Ok(p) = path.parse() {
        *req.uri_mut() = p;
    }
    for h in HOP_BY_HOP {
        req.headers_mut().remove(*h);
    }
    let mut pending = LogOnDrop {
        method: method.clone(),
        host: host.to_owned(),
        port,
        started,
        decision,
        armed: true,
    };
    let mut guard = upstream.lock().await;
    let sender = match guard.take() {
        Some(s) if !s.is_closed() => guard.insert(s),
        _ => match connect_upstream(state, host, port, ip).await {
            Ok(s) => guard.insert(s),
            Err(e) => {
                pending.disarm();
                entry.log(decision, "upstream-unreachable", 502, 0, 0);
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("bottle gateway: {host}:{port}: {e}"),
                );
            }
        },
    };
    if sender.ready().await.is_err() {
        *guard = None;
        pending.disarm();
        entry.log(decision, "upstream-closed", 502, 0, 0);
        return text(
            StatusCode::BAD_GATEWAY,
            format!("bottle gateway: {host} closed the connection"),
        );
    }
    let bytes_in = content_length(req.headers());
    match sender.send_request(req).await {
        Ok(resp) => {
            let bytes_out = content_length(resp.headers());
            pending.disarm();
            entry.log(
                decision,
                "routed",
                resp.status().as_u16(),
                bytes_in,
                bytes_out,
            );
            match state.token(host) {
                Some(token) => redacted(resp, &token, host, port),
                None => downstream(resp),
            }
        }
        Err(e) => {
            *guard = None;
            pending.disarm();
            entry.log(decision, "upstream-error", 502, bytes_in, 0);
            text(
                StatusCode::BAD_GATEWAY,
                format!("bottle gateway: {host}: {e}"),
            )
        }
    }
}

/// Verified TLS to the routed host (its name checked against the system roots).
async fn connect_upstream(
    state: &State,
    host: &str,
    port: u16,
    ip: IpAddr,
) -> Result<SendRequest<Incoming>, String> {
    let tcp = state
        .dial(host, ip, port)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(state.upstream_tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The response with the real token masked wherever the host echoes it; the masking is
/// logged once the body is done.
fn redacted(mut resp: Response<Incoming>, token: &str, host: &str, port: u16) -> Response<Body> {
    use super::echo_redact::{Redacted, headers};
    let in_headers = headers(resp.headers_mut(), token.as_bytes());
    let (host, token) = (host.to_owned(), token.as_bytes().to_vec());
    downstream(resp).map(move |body| {
        let report = move |hits: usize| {
            if hits > 0 {
                crate::sidecar::log::event(
                    "gateway",
                    "warn",
                    "token-echo-redacted",
                    serde_json::json!({ "host": host, "port": port, "occurrences": hits }),
                );
            }
        };
        http_body_util::BodyExt::boxed(Redacted::new(body, &token, in_headers, Box::new(report)))
    })
}
