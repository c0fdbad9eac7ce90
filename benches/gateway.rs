//! `cargo bench --bench gateway`: the gateway against its anchors in the same run — no proxy,
//! and mitmproxy's mitmdump with a header-injecting addon (what the original tool used).
//! Plain HTTP at 1 and 32 connections (wrk), HTTPS with interception, injection and keep-alive
//! (an in-process client), and one-shot curl over HTTPS against no proxy. Prints requests/s,
//! milliseconds and ratios. Needs wrk, curl and mitmdump (pip install mitmproxy).
//!
//! With `BOTTLE_BENCH_BASELINE_SIDECAR=PATH` (a `bottle-sidecar` built from an earlier commit),
//! that gateway is measured in the same run on the same config, and each figure is also given
//! as a ratio to it: the cost of a change, measured rather than guessed.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PLACEHOLDER: &str = "bottle-placeholder-bench";
const SECONDS: u64 = 5;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An origin answering "ok", plain or over TLS.
async fn origin(tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                match tls {
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(s), svc)
                                .await;
                        }
                    }
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    }
                }
            });
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_port(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// wrk against `proxy` (or the origin directly) for plain HTTP; returns requests/s.
fn wrk(target_port: u16, url: &str, connections: u32, dir: &Path) -> f64 {
    let script = dir.join(format!("wrk-{connections}-{target_port}.lua"));
    std::fs::write(&script, format!("wrk.path = \"{url}\"\n")).expect("script");
    let out = Command::new("wrk")
        .args([
            "-t",
            "1",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{SECONDS}s"),
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{target_port}/"))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    assert!(!errors, "wrk saw errors:\n{text}");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or_else(|| panic!("no wrk result:\n{text}"))
}

/// HTTPS through a proxy: `conns` keep-alive connections (CONNECT + TLS) sending requests
/// with the placeholder for SECONDS; returns requests/s.
async fn https_through(
    proxy: u16,
    port: u16,
    roots: Arc<rustls::ClientConfig>,
    conns: usize,
    check: &'static str,
) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (count, roots) = (count.clone(), roots.clone());
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(("127.0.0.1", proxy))
                .await
                .expect("proxy");
            let _ = tcp.set_nodelay(true);
            tcp.write_all(
                format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("connect");
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                tcp.read_exact(&mut b).await.expect("connect reply");
                head.push(b[0]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
                "{}",
                String::from_utf8_lossy(&head)
            );
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let tls = tokio_rustls::TlsConnector::from(roots)
                .connect(name, tcp)
                .await
                .expect("tls");
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let req = hyper::Request::get("/")
                    .header("host", format!("localhost:{port}"))
                    .header("authorization", format!("Bearer {PLACEHOLDER}"))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let resp = send.send_request(req).await.expect("send");
                assert!(resp.status().is_success(), "{check}: {}", resp.status());
                let _ = resp.into_body().collect().await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    count.load(Ordering::Relaxed) as f64 / SECONDS as f64
}

/// Median milliseconds of one-shot `curl` calls.
fn curl_ms(args: &[String], n: usize) -> f64 {
    let mut v = Vec::new();
    for _ in 0..n {
        let started = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--fail"])
            .args(args)
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        v.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    v[n / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("gateway: run with `cargo bench --bench gateway`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_owned();

    // A "public" CA for the TLS origin, trusted by every client and proxy here.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names, or OpenSSL takes the leaf for self-signed.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "bench origin CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("p");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    std::fs::write(d.join("origin-ca.pem"), ca_cert.pem()).expect("ca");
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("v")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server");
    let (plain, tls) =
        rt.block_on(async { (origin(None).await, origin(Some(Arc::new(server))).await) });

    // bottle-tui's gateway, routing `localhost` with injection.
    bottle_tui::engine::ca::ensure(&d.join("bottle-ca"), "bench").expect("bottle CA");
    std::fs::write(d.join("token"), "REAL-TOKEN-bench").expect("token");
    let cfg = serde_json::json!({
        "listen": "127.0.0.1:0", "allow": ["localhost"],
        "allow_private": [format!("localhost:{plain}"), format!("localhost:{tls}")],
        "routes": [{ "host": "localhost", "header": "authorization", "format": "Bearer {token}", "placeholder": PLACEHOLDER, "token_file": d.join("token") }],
        "ca_cert": d.join("bottle-ca/ca.pem"), "ca_key": d.join("bottle-ca/ca.key"), "upstream_proxy": null,
        "resolve": { "localhost": ["127.0.0.1"] }, "upstream_roots": d.join("origin-ca.pem"),
    });
    std::fs::write(d.join("gateway.json"), cfg.to_string()).expect("cfg");
    let gateway = |exe: &Path| {
        let port = free_port();
        let child = Killed(
            Command::new(exe)
                .args(["gateway", "--config"])
                .arg(d.join("gateway.json"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .spawn()
                .expect("gateway"),
        );
        (port, child)
    };
    let (ours, _gw) = gateway(Path::new(env!("CARGO_BIN_EXE_bottle-sidecar")));
    let baseline = std::env::var_os("BOTTLE_BENCH_BASELINE_SIDECAR").map(PathBuf::from);
    let base = baseline.as_deref().map(&gateway);
    // mitmdump with the same injection as an addon.
    std::fs::write(
        d.join("inject.py"),
        String::from("class Inject:\n    def request(self, flow):\n        if flow.request.pretty_host == 'localhost' and 'authorization' in flow.request.headers:\n            flow.request.headers['authorization'] = 'Bearer REAL-TOKEN-bench'\naddons = [Inject()]\n"),
    )
    .expect("addon");
    let mitm = free_port();
    let _mitm = Killed(
        Command::new("mitmdump")
            .args([
                "-q",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                &mitm.to_string(),
                "-s",
            ])
            .arg(d.join("inject.py"))
            .args(["--set", &format!("confdir={}", d.join("mitm").display())])
            .args([
                "--set",
                &format!(
                    "ssl_verify_upstream_trusted_ca={}",
                    d.join("origin-ca.pem").display()
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mitmdump (pip install mitmproxy)"),
    );
    wait_port(ours);
    wait_port(mitm);
    if let Some((port, _)) = &base {
        wait_port(*port);
    }
    std::thread::sleep(Duration::from_secs(1));

    let url = format!("http://localhost:{plain}/");
    let direct1 = wrk(plain, "/", 1, &d);
    let ours1 = wrk(ours, &url, 1, &d);
    let mitm1 = wrk(mitm, &url, 1, &d);
    let direct32 = wrk(plain, "/", 32, &d);
    let ours32 = wrk(ours, &url, 32, &d);
    let mitm32 = wrk(mitm, &url, 32, &d);

    let roots = |extra: &[PathBuf]| {
        use rustls::pki_types::pem::PemObject;
        let mut store = rustls::RootCertStore::empty();
        for p in extra {
            for c in rustls::pki_types::CertificateDer::pem_file_iter(p).expect("pem") {
                store.add(c.expect("cert")).expect("root");
            }
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("v")
                .with_root_certificates(store)
                .with_no_client_auth(),
        )
    };
    let mitm_ca = d.join("mitm/mitmproxy-ca-cert.pem");
    let ours_tls = rt.block_on(https_through(
        ours,
        tls,
        roots(&[d.join("bottle-ca/ca.pem")]),
        8,
        "bottle-tui",
    ));
    let mitm_tls = rt.block_on(https_through(
        mitm,
        tls,
        roots(std::slice::from_ref(&mitm_ca)),
        8,
        "mitmdump",
    ));

    let one_shot = |extra: Vec<String>| {
        let mut a = extra;
        a.push(format!("https://localhost:{tls}/"));
        curl_ms(&a, 21)
    };
    let origin_ca = d.join("origin-ca.pem").display().to_string();
    let direct_ms = one_shot(vec!["--cacert".into(), origin_ca]);
    let through = |port: u16| {
        one_shot(vec![
            "--cacert".into(),
            d.join("bottle-ca/ca.pem").display().to_string(),
            "-x".into(),
            format!("http://127.0.0.1:{port}"),
            "-H".into(),
            format!("authorization: Bearer {PLACEHOLDER}"),
        ])
    };
    let ours_ms = through(ours);
    // The same loads on both gateways, interleaved (baseline, this, baseline, this) so drift
    // in the machine's state falls on both; the better of two runs of each.
    let ab = base.as_ref().map(|(port, _)| {
        let base_port = *port;
        let figures = |port: u16| {
            (
                wrk(port, &url, 1, &d),
                wrk(port, &url, 32, &d),
                rt.block_on(https_through(
                    port,
                    tls,
                    roots(&[d.join("bottle-ca/ca.pem")]),
                    8,
                    "a/b",
                )),
                through(port),
            )
        };
        let best = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
            (a.0.max(b.0), a.1.max(b.1), a.2.max(b.2), a.3.min(b.3))
        };
        let (b1, o1) = (figures(base_port), figures(ours));
        let (b2, o2) = (figures(base_port), figures(ours));
        (best(b1, b2), best(o1, o2))
    });

    println!("gateway benchmark ({SECONDS} s per load; requests/s; ratio = bottle-tui / anchor)");
    println!(
        "  plain HTTP, 1 conn     no proxy {direct1:>9.0}   mitmdump {mitm1:>9.0}   bottle-tui {ours1:>9.0}   vs mitmdump {:>6.1}x",
        ours1 / mitm1
    );
    println!(
        "  plain HTTP, 32 conns   no proxy {direct32:>9.0}   mitmdump {mitm32:>9.0}   bottle-tui {ours32:>9.0}   vs mitmdump {:>6.1}x",
        ours32 / mitm32
    );
    println!(
        "  HTTPS intercept+inject, 8 keep-alive conns   mitmdump {mitm_tls:>9.0}   bottle-tui {ours_tls:>9.0}   vs mitmdump {:>6.1}x  (target >= 20)",
        ours_tls / mitm_tls
    );
    println!(
        "  one-shot curl over HTTPS (median of 21)   no proxy {direct_ms:>6.1} ms   bottle-tui {ours_ms:>6.1} ms   ratio {:.2}  (target <= 1.5)",
        ours_ms / direct_ms
    );
    if let (Some(((b1, b32, btls, bms), (ours1, ours32, ours_tls, ours_ms))), Some(exe)) =
        (ab, &baseline)
    {
        println!(
            "against the baseline {} (interleaved, best of 2 each; ratio = this build / baseline)",
            exe.display()
        );
        println!(
            "  plain HTTP, 1 conn     baseline {b1:>9.0}   this {ours1:>9.0}   ratio {:.2}",
            ours1 / b1
        );
        println!(
            "  plain HTTP, 32 conns   baseline {b32:>9.0}   this {ours32:>9.0}   ratio {:.2}",
            ours32 / b32
        );
        println!(
            "  HTTPS intercept+inject baseline {btls:>9.0}   this {ours_tls:>9.0}   ratio {:.2}",
            ours_tls / btls
        );
        println!(
            "  one-shot curl          baseline {bms:>7.1} ms  this {ours_ms:>7.1} ms  ratio {:.2}",
            ours_ms / bms
        );
    }
}
