//! The Claude Code package that goes into the agent image, fetched on the host.
//!
//! Build containers often cannot reach the npm registry over TLS (a TLS-intercepting network or
//! a corporate proxy whose CA only the host trusts), so the host fetches the native package
//! (`@anthropic-ai/claude-code-linux-<arch>`: one executable, no Node needed), checks it against
//! the registry's published `sha512` integrity, and keeps it in a cache; the image build then
//! only copies it in.

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha512};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The Claude Code release the agent image carries unless told otherwise.
pub const VERSION: &str = "2.1.334";
/// Overrides [`VERSION`] (as does `image build --claude-version`).
pub const VERSION_ENV: &str = "BOTTLE_TUI_CLAUDE_VERSION";
/// The registry, as npm's own setting names it.
pub const REGISTRY_ENV: &str = "npm_config_registry";
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";
/// The image label that records which Claude Code an agent image holds.
pub const VERSION_LABEL: &str = "bottle.claude-code.version";

const TIMEOUT: Duration = Duration::from_secs(600);
const MAX_REDIRECTS: usize = 5;

/// A package ready for the build context: the archive (npm's .tgz, or a tar holding
/// `package/claude`) and the version it holds.
#[derive(Debug, Clone)]
pub struct Package {
    pub archive: PathBuf,
    pub version: String,
}

/// The version to fetch: `explicit`, else `$BOTTLE_TUI_CLAUDE_VERSION`, else [`VERSION`].
pub fn wanted_version(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| {
            std::env::var(VERSION_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| VERSION.to_owned())
}

/// npm's name for an engine architecture (`docker info`'s `Architecture`).
pub fn npm_arch(engine_arch: &str) -> Result<&'static str> {
    match engine_arch {
        "x86_64" | "amd64" => Ok("x64"),
        "aarch64" | "arm64" => Ok("arm64"),
        other => bail!(
            "Claude Code has no native package for the engine's architecture {other:?} (x86_64 and aarch64 have one)"
        ),
    }
}

/// Where fetched packages are kept: `$XDG_CACHE_HOME/bottle-tui/claude-code`, else
/// `~/.cache/bottle-tui/claude-code`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("bottle-tui-cache"))
        .join("bottle-tui")
        .join("claude-code")
}

/// The package for `version` and `arch`: from the cache if it is there and still matches the
/// integrity recorded beside it, else fetched from the registry and verified.
pub async fn fetch(
    version: &str,
    arch: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Package> {
    validate_version(version)?;
    let name = format!("claude-code-linux-{arch}");
    let dir = cache_dir();
    let archive = dir.join(format!("{name}-{version}.tgz"));
    let integrity_file = dir.join(format!("{name}-{version}.tgz.integrity"));
    if let (Ok(expected), true) = (std::fs::read_to_string(&integrity_file), archive.is_file()) {
        if verify_file(&archive, expected.trim()).is_ok() {
            progress(&format!(
                "Claude Code {version}: cached at {}",
                archive.display()
            ));
            return Ok(Package {
                archive,
                version: version.to_owned(),
            });
        }
    }
    let registry = std::env::var(REGISTRY_ENV)
        .ok()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REGISTRY.to_owned());
    let registry = registry.trim_end_matches('/');
    let meta_url = format!("{registry}/@anthropic-ai%2f{name}/{version}");
    progress(&format!("Claude Code {version}: asking {meta_url}"));
    let meta = get(&meta_url, None)
        .await
        .wrap_err_with(|| hint(&meta_url))?;
    let meta: Meta = serde_json::from_slice(&meta)
        .wrap_err_with(|| format!("{meta_url} did not answer with a package description"))?;
    let integrity = meta.dist.integrity.ok_or_else(|| {
        eyre!("{meta_url} publishes no sha512 integrity for the package; refusing an unverifiable download")
    })?;
    std::fs::create_dir_all(&dir)
        .wrap_err_with(|| format!("cannot create the cache {}", dir.display()))?;
    let partial = dir.join(format!("{name}-{version}.tgz.partial"));
    progress(&format!(
        "Claude Code {version}: downloading {}",
        meta.dist.tarball
    ));
    {
        let mut file = std::fs::File::create(&partial)
            .wrap_err_with(|| format!("cannot write {}", partial.display()))?;
        let mut sink = Sink {
            file: &mut file,
            progress: &mut |done, total| {
                progress(&format!("Claude Code {version}: {}", fraction(done, total)))
            },
        };
        get(&meta.dist.tarball, Some(&mut sink))
            .await
            .wrap_err_with(|| hint(&meta.dist.tarball))?;
        file.flush()?;
    }
    verify_file(&partial, &integrity).wrap_err_with(|| {
        let _ = std::fs::remove_file(&partial);
        format!(
            "the download of {} is not the published package",
            meta.dist.tarball
        )
    })?;
    std::fs::rename(&partial, &archive)
        .wrap_err_with(|| format!("cannot move the download to {}", archive.display()))?;
    std::fs::write(&integrity_file, format!("{integrity}\n"))
        .wrap_err_with(|| format!("cannot write {}", integrity_file.display()))?;
    let size = std::fs::metadata(&archive).map_or(0, |m| m.len());
    progress(&format!(
        "Claude Code {version}: {:.0} MB, sha512 verified",
        size as f64 / 1e6
    ));
    Ok(Package {
        archive,
        version: version.to_owned(),
    })
}

/// A package the user downloaded: npm's `.tgz` (`npm pack @anthropic-ai/claude-code-linux-x64`)
/// or the `claude` executable itself, which is wrapped into a tar under the cache.
pub fn local(path: &Path) -> Result<Package> {
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path)
        .wrap_err_with(|| format!("cannot read the Claude Code package {}", path.display()))?;
    // A file shorter than the magic numbers is neither kind.
    let _ = std::io::Read::read(&mut f, &mut head);
    if head[..2] == [0x1f, 0x8b] {
        let version = tgz_version(path)?;
        return Ok(Package {
            archive: path.to_owned(),
            version,
        });
    }
    if head != *b"\x7fELF" {
        bail!(
            "{} is neither an npm package (.tgz) nor a Claude Code executable",
            path.display()
        );
    }
    let version = std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)
        .wrap_err_with(|| format!("cannot create the cache {}", dir.display()))?;
    let archive = dir.join("local-claude.tar");
    let file = std::fs::File::create(&archive)
        .wrap_err_with(|| format!("cannot write {}", archive.display()))?;
    let mut tar = tar::Builder::new(file);
    let mut exe = std::fs::File::open(path)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(exe.metadata()?.len());
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "package/claude", &mut exe)
        .wrap_err_with(|| format!("cannot pack {}", path.display()))?;
    tar.into_inner()?.flush()?;
    Ok(Package { archive, version })
}

/// The `version` of `package/package.json` inside an npm .tgz.
fn tgz_version(path: &Path) -> Result<String> {
    // The native package's manifest is small and sits after a 400 MB executable; `tar` reads
    // through the stream once.
    let out = std::process::Command::new("tar")
        .args(["-xzOf"])
        .arg(path)
        .arg("package/package.json")
        .output()
        .wrap_err("cannot run tar to read the package's manifest")?;
    if !out.status.success() {
        bail!(
            "{} holds no package/package.json: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    #[derive(Deserialize)]
    struct Manifest {
        name: String,
        version: String,
    }
    let m: Manifest = serde_json::from_slice(&out.stdout)
        .wrap_err_with(|| format!("{}: package.json is not a package manifest", path.display()))?;
    if !m.name.starts_with("@anthropic-ai/claude-code-linux-") {
        bail!(
            "{} is the package {}, not Claude Code's native package (@anthropic-ai/claude-code-linux-x64)",
            path.display(),
            m.name
        );
    }
    Ok(m.version)
}

fn validate_version(v: &str) -> Result<()> {
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
    {
        bail!("`{v}` is not a Claude Code version (expected something like {VERSION})");
    }
    Ok(())
}

fn hint(url: &str) -> String {
    format!(
        "cannot fetch {url}; if this machine cannot reach the npm registry, download the package elsewhere \
         (`npm pack @anthropic-ai/claude-code-linux-x64@VERSION`) and pass it with `bottle-tui image build --agent --claude-code FILE` \
         (a .tgz or the `claude` executable), or set {REGISTRY_ENV} to a mirror"
    )
}

#[derive(Deserialize)]
struct Meta {
    dist: Dist,
}

#[derive(Deserialize)]
struct Dist {
    tarball: String,
    integrity: Option<String>,
}

/// Checks a file against an SRI `sha512-BASE64` string.
pub fn verify_file(path: &Path, integrity: &str) -> Result<()> {
    let Some(expected) = integrity.strip_prefix("sha512-") else {
        bail!("unsupported integrity {integrity:?} (expected sha512-…)");
    };
    let mut f =
        std::fs::File::open(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let got = base64(&hasher.finalize());
    if got != expected {
        bail!("sha512 mismatch: the registry publishes {expected}, the file has {got}");
    }
    Ok(())
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where a download goes, and who hears how far it got (bytes so far, bytes in all if known).
struct Sink<'a> {
    file: &'a mut std::fs::File,
    progress: &'a mut (dyn FnMut(u64, Option<u64>) + Send),
}

/// "40 of 192 MB (21%)", or "40 MB" when the size is not known.
fn fraction(done: u64, total: Option<u64>) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    match total {
        Some(t) if t > 0 => format!(
            "{:.0} of {:.0} MB ({}%)",
            mb(done),
            mb(t),
            done.saturating_mul(100) / t
        ),
        _ => format!("{:.0} MB", mb(done)),
    }
}

/// GETs an https URL (following redirects); the body goes to `sink`, or is returned.
async fn get(url: &str, mut sink: Option<&mut Sink<'_>>) -> Result<Vec<u8>> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) =
            tokio::time::timeout(TIMEOUT, get_once(&url, sink.as_deref_mut()))
                .await
                .map_err(|_| eyre!("no answer within {} s", TIMEOUT.as_secs()))??;
        match (status, location) {
            (300..=399, Some(next)) => url = next,
            (200..=299, _) => return Ok(body),
            (code, _) => bail!(
                "the registry answered HTTP {code}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
            ),
        }
    }
    bail!("more than {MAX_REDIRECTS} redirects")
}

async fn get_once(
    url: &str,
    sink: Option<&mut Sink<'_>>,
) -> Result<(u16, Option<String>, Vec<u8>)> {
    let uri: hyper::Uri = url.parse().wrap_err_with(|| format!("bad URL {url}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("{url}: only https registries are supported");
    }
    let host = uri
        .host()
        .ok_or_else(|| eyre!("{url} has no host"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .wrap_err_with(|| format!("cannot connect to {host}:{port}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| eyre!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name =
        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| eyre!("{host}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .wrap_err_with(|| {
            format!("TLS with {host} failed (is its CA in the system's trust store?)")
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .wrap_err("HTTP handshake failed")?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("bottle-tui/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            hyper::header::ACCEPT,
            "application/json, application/octet-stream",
        )
        .body(Empty::<Bytes>::new())
        .wrap_err("cannot build the request")?;
    let resp = sender.send_request(req).await.wrap_err("request failed")?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let total = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let ok = (200..300).contains(&status);
    let mut sink = sink.filter(|_| ok);
    let (mut done, mut reported) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        let frame = frame.wrap_err("the download broke off")?;
        if let Some(data) = frame.data_ref() {
            match sink.as_deref_mut() {
                Some(s) => {
                    s.file
                        .write_all(data)
                        .wrap_err("cannot write the download")?;
                    done += data.len() as u64;
                    // A line per 10% (or per 20 MB when the size is unknown).
                    let step = total.map_or(20_000_000, |t| (t / 10).max(1));
                    if done / step > reported {
                        reported = done / step;
                        (s.progress)(done, total);
                    }
                }
                None => buf.extend_from_slice(data),
            }
        }
    }
    Ok((status, location, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_progress_reads_as_a_fraction() {
        assert_eq!(
            fraction(40_000_000, Some(192_000_000)),
            "40 of 192 MB (20%)"
        );
        assert_eq!(fraction(5_000_000, None), "5 MB");
        assert_eq!(fraction(0, Some(0)), "0 MB");
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn integrity_is_checked_and_a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello\n").unwrap();
        // `printf 'hello\n' | openssl dgst -sha512 -binary | base64`
        let sri = "sha512-58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==";
        verify_file(&p, sri).unwrap();
        std::fs::write(&p, b"hellO\n").unwrap();
        let err = verify_file(&p, sri).unwrap_err().to_string();
        assert!(err.contains("sha512 mismatch"), "{err}");
        assert!(verify_file(&p, "sha1-abc").is_err());
    }

    #[test]
    fn versions_are_checked_before_they_reach_a_url() {
        assert!(validate_version("2.1.334").is_ok());
        assert!(validate_version("../evil").is_err());
        assert!(validate_version("").is_err());
        assert_eq!(npm_arch("x86_64").unwrap(), "x64");
        assert_eq!(npm_arch("aarch64").unwrap(), "arm64");
        assert!(npm_arch("s390x").is_err());
    }
}
