//! TLS interception and credential injection with real TLS on loopback: a local HTTPS origin
//! (its certificate from a test CA the gateway is told to trust) that echoes each request
//! head, reached through the gateway with curl and a raw rustls client.

mod common;
use common::stdout;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PLACEHOLDER: &str = "bottle-placeholder-feedfacefeedface";
const TOKEN: &str = "REAL-TOKEN-8d1e0c";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA and a server certificate for `names`, written as PEM files in `dir`.
fn test_pki(dir: &Path, tag: &str, names: &[&str]) -> (PathBuf, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("test origin CA {tag}"));
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let ca_path = dir.join(format!("{tag}-ca.pem"));
    std::fs::write(&ca_path, ca_cert.pem()).expect("write ca");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server config");
    (ca_path, config)
}

/// An HTTPS origin on loopback answering each request with its head; records the heads.
fn tls_origin(config: rustls::ServerConfig) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = Arc::new(config);
    let record = seen.clone();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let (config, record) = (config.clone(), record.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                loop {
                    let mut head = String::new();
                    let mut reader = BufReader::new(&mut tls);
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    record.lock().expect("seen").push(head.clone());
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}",
                        head.len()
                    );
                    if tls.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    gateway: Child,
    port: u16,
    origin: u16,
    seen: Arc<Mutex<Vec<String>>>,
    untrusted: u16,
    untrusted_seen: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<Vec<String>>>,
    origin_ca: PathBuf,
    bottle_ca: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.gateway.kill();
        let _ = self.gateway.wait();
    }
}

impl Setup {
    fn new() -> Self {
        Self::build(&[])
    }

    // The gateway is waited for in Drop.
    #[allow(clippy::zombie_processes)]
    fn build(intercept: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let (origin_ca, config) = test_pki(&dir, "origin", &["api.routed.test", "plain.test"]);
        let (origin, seen) = tls_origin(config);
        // A second origin whose CA the gateway does not trust.
        let (_, rogue) = test_pki(&dir, "rogue", &["api2.routed.test"]);
        let (untrusted, untrusted_seen) = tls_origin(rogue);
        bottle_tui::engine::ca::ensure(&dir.join("bottle-ca"), "tls-test").expect("bottle CA");
        let bottle_ca = dir.join("bottle-ca/ca.pem");
        std::fs::write(dir.join("route-0.token"), format!("{TOKEN}\n")).expect("token");
        std::fs::write(dir.join("route-1.token"), "OTHER-TOKEN\n").expect("token");
        let config = serde_json::json!({
            "listen": "127.0.0.1:0",
            "allow": ["api.routed.test", "plain.test", "api2.routed.test"],
            "allow_private": [format!("api.routed.test:{origin}"), format!("plain.test:{origin}"), format!("api2.routed.test:{untrusted}")],
            "routes": [
                { "host": "api.routed.test", "header": "Authorization", "format": "Bearer {token}",
                  "placeholder": PLACEHOLDER, "token_file": dir.join("route-0.token") },
                { "host": "api2.routed.test", "header": "Authorization", "format": "Bearer {token}",
                  "placeholder": "bottle-placeholder-second", "token_file": dir.join("route-1.token") },
            ],
            "ca_cert": bottle_ca, "ca_key": dir.join("bottle-ca/ca.key"), "upstream_proxy": null,
            "resolve": { "api.routed.test": ["127.0.0.1"], "plain.test": ["127.0.0.1"], "api2.routed.test": ["127.0.0.1"] },
            "upstream_roots": origin_ca,
            "intercept": intercept,
        });
        std::fs::write(dir.join("gateway.json"), config.to_string()).expect("config");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let mut gateway = Command::new(env!("CARGO_BIN_EXE_bottle-sidecar"))
            .args([
                "gateway",
                "--config",
                dir.join("gateway.json").to_str().expect("utf-8"),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("gateway");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (out, sink) = (gateway.stdout.take().expect("stdout"), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        common::eventually("the gateway listens", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self {
            _dir: tmp,
            dir,
            gateway,
            port,
            origin,
            seen,
            untrusted,
            untrusted_seen,
            log,
            origin_ca,
            bottle_ca,
        }
    }

    fn curl(&self, cacert: &Path, url: &str, extra: &[&str]) -> (String, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                cacert.to_str().expect("utf-8"),
            ])
            .args([
                "-x",
                &format!("http://127.0.0.1:{}", self.port),
                "-w",
                "\n%{http_code}",
                url,
            ])
            .args(extra)
            .output()
            .expect("curl");
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        (code.trim().to_owned(), body.to_owned())
    }

    /// The gateway's log once it holds `want` (lines arrive through a reader thread).
    fn logs_with(&self, want: &str) -> String {
        common::eventually(
            &format!("the gateway logs {want}"),
            Duration::from_secs(30),
            || {
                let logs = self.log.lock().expect("log").join("\n");
                logs.contains(want).then_some(logs)
            },
        )
    }

    fn all_seen(&self) -> String {
        let mut all = self.seen.lock().expect("seen").join("\n");
        all.push_str(&self.untrusted_seen.lock().expect("seen").join("\n"));
        all
    }
}

fn auth() -> String {
    format!("Authorization: Bearer {PLACEHOLDER}")
}

#[test]
fn the_routed_host_gets_the_real_token_through_interception() {
    let s = Setup::new();
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://api.routed.test:{}/v1/messages", s.origin),
        &["-H", &auth()],
    );
    assert_eq!(code, "200", "{body}");
    assert!(body.starts_with("GET /v1/messages HTTP/1.1"), "{body}");
    // The origin got the real token (its own record); its echo comes back to the agent with
    // the token masked.
    let seen = s.seen.lock().expect("seen").join("\n");
    assert!(
        seen.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            TOKEN.to_ascii_lowercase()
        )),
        "{seen}"
    );
    assert!(!seen.contains(PLACEHOLDER), "{seen}");
    assert!(!body.contains(TOKEN), "the echo returned the token: {body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("authorization: bearer [redacted]"),
        "{body}"
    );
    // Keep-alive: two requests on one agent connection both get the token.
    let url = format!("https://api.routed.test:{}/a", s.origin);
    let (code, body) = s.curl(
        &s.bottle_ca,
        &url,
        &[
            "-H",
            &auth(),
            "--next",
            "-sS",
            "--cacert",
            s.bottle_ca.to_str().expect("utf-8"),
            "-x",
            &format!("http://127.0.0.1:{}", s.port),
            "-w",
            "\n%{http_code}",
            "-H",
            &auth(),
            &url,
        ],
    );
    assert_eq!(code, "200");
    assert_eq!(body.matches("Bearer [REDACTED]").count(), 2, "{body}");
    let seen = s.seen.lock().expect("seen").join("\n");
    assert_eq!(seen.matches(TOKEN).count(), 3, "{seen}");
    let logs = s.logs_with("\"decision\":\"inject\"");
    assert!(
        !logs.contains(TOKEN) && !logs.contains(PLACEHOLDER),
        "secrets in the log: {logs}"
    );
}

#[test]
fn an_unrouted_host_is_tunnelled_and_never_sees_the_token() {
    let s = Setup::new();
    // Not intercepted: the agent verifies the origin's own certificate.
    let (code, body) = s.curl(
        &s.origin_ca,
        &format!("https://plain.test:{}/", s.origin),
        &["-H", &auth()],
    );
    assert_eq!(code, "200", "{body}");
    assert!(
        body.contains(PLACEHOLDER) && !body.contains(TOKEN),
        "{body}"
    );
    // CONNECT to the unrouted host with the routed host in the Host header: still no token.
    let (code, body) = s.curl(
        &s.origin_ca,
        &format!("https://plain.test:{}/", s.origin),
        &["-H", &auth(), "-H", "Host: api.routed.test"],
    );
    assert_eq!(code, "200", "{body}");
    assert!(!body.contains(TOKEN), "{body}");
    assert!(!s.all_seen().contains(TOKEN));
}

#[test]
fn a_host_header_that_disagrees_with_the_tunnel_is_refused() {
    let s = Setup::new();
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://api.routed.test:{}/", s.origin),
        &["-H", &auth(), "-H", "Host: plain.test"],
    );
    assert_eq!(code, "421", "{body}");
    assert!(
        body.contains("this request goes to api.routed.test"),
        "{body}"
    );
    assert!(!s.all_seen().contains(TOKEN), "the token went out");
}

#[test]
fn an_sni_that_disagrees_with_the_connect_host_is_refused() {
    let s = Setup::new();
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    write!(
        tcp,
        "CONNECT api.routed.test:{0} HTTP/1.1\r\nHost: api.routed.test:{0}\r\n\r\n",
        s.origin
    )
    .expect("write");
    let mut head = [0u8; 39];
    tcp.read_exact(&mut head).expect("read 200");
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&s.bottle_ca).expect("ca");
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("plain.test").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let r = tls
        .write_all(format!("GET / HTTP/1.1\r\nHost: plain.test\r\n{}\r\n\r\n", auth()).as_bytes())
        .and_then(|()| {
            let mut buf = [0u8; 64];
            tls.read(&mut buf)
        });
    assert!(
        matches!(r, Err(_) | Ok(0)),
        "the handshake with a mismatched SNI went through: {r:?}"
    );
    s.logs_with("\"reason\":\"sni-mismatch\"");
    assert!(!s.all_seen().contains(TOKEN));
}

#[test]
fn an_upstream_whose_certificate_does_not_verify_gets_nothing() {
    let s = Setup::new();
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://api2.routed.test:{}/", s.untrusted),
        &["-H", "Authorization: Bearer bottle-placeholder-second"],
    );
    assert_eq!(code, "502", "{body}");
    assert!(body.contains("TLS"), "{body}");
    assert!(
        s.untrusted_seen.lock().expect("seen").is_empty(),
        "a request reached the unverified origin"
    );
}

#[test]
fn the_token_is_re_read_on_sighup() {
    let s = Setup::new();
    std::fs::write(s.dir.join("route-0.token"), "ROTATED-TOKEN-42\n").expect("rotate");
    let pid = nix::unistd::Pid::from_raw(s.gateway.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    // The signal is handled asynchronously: ask until a request carries the new token.
    common::eventually("SIGHUP rotating the token", Duration::from_secs(10), || {
        let (code, body) = s.curl(
            &s.bottle_ca,
            &format!("https://api.routed.test:{}/", s.origin),
            &["-H", &auth()],
        );
        assert_eq!(code, "200", "{body}");
        let last = s
            .seen
            .lock()
            .expect("seen")
            .last()
            .cloned()
            .unwrap_or_default();
        if !last.contains("ROTATED-TOKEN-42") {
            assert!(last.contains(TOKEN), "neither token went out: {last}");
            return None;
        }
        assert!(!last.contains(TOKEN), "{last}");
        assert!(!body.contains("ROTATED-TOKEN-42"), "echoed back: {body}");
        Some(())
    });
}

#[test]
fn the_placeholder_of_a_route_sent_to_another_routed_host_is_a_leak() {
    let s = Setup::new();
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://api.routed.test:{}/", s.origin),
        &["-H", "X-Other: bottle-placeholder-second"],
    );
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("leak"), "{body}");
    // In the URL too (before, only headers were checked on the routed path).
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!(
            "https://api.routed.test:{}/?k=bottle-placeholder-second",
            s.origin
        ),
        &["-H", &auth()],
    );
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("leak"), "{body}");
    assert!(!s.all_seen().contains("bottle-placeholder-second"));
    // TRACE would reflect the injected credential: refused, inside the tunnel too.
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://api.routed.test:{}/", s.origin),
        &["-X", "TRACE", "-H", &auth()],
    );
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("TRACE requests are not forwarded"), "{body}");
}

#[test]
fn an_intercepted_unrouted_host_is_opened_so_a_placeholder_inside_tls_is_caught() {
    let s = Setup::build(&["plain.test"]);
    // Now the agent sees the bottle CA's certificate for plain.test, and requests pass...
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://plain.test:{}/ok", s.origin),
        &[],
    );
    assert_eq!(code, "200", "{body}");
    assert!(body.starts_with("GET /ok HTTP/1.1"), "{body}");
    // ...but the routed host's placeholder inside that TLS is a leak, and nothing is injected.
    let (code, body) = s.curl(
        &s.bottle_ca,
        &format!("https://plain.test:{}/", s.origin),
        &["-H", &auth()],
    );
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("leak"), "{body}");
    assert!(!s.all_seen().contains(TOKEN) && !s.all_seen().contains(PLACEHOLDER));
}
