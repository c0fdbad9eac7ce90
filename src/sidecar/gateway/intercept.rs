//! TLS interception for routed hosts: the gateway terminates the agent's TLS with a
//! certificate the bottle CA mints for that host (after checking SNI = CONNECT host), checks
//! every request's Host, swaps the route's placeholder for the real token, and forwards over
//! TLS verified against the system roots. The token goes nowhere else.

use color_eyre::eyre::{Result, WrapErr, eyre};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The one crypto provider the gateway uses, for both sides.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates kept at most: a wildcard `intercept` lets the agent name hosts without end,
/// and each costs a key pair in the bundle's memory.
pub const CACHE_MAX: usize = 256;

/// Mints and caches per-host certificates signed by the bottle CA (the least recently used
/// goes first once [`CACHE_MAX`] are held).
pub struct Minter {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// Host → (certificate, last use).
    map: HashMap<String, (Arc<CertifiedKey>, u64)>,
    clock: u64,
}

impl Cache {
    fn get(&mut self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.clock += 1;
        let now = self.clock;
        self.map.get_mut(host).map(|(k, used)| {
            *used = now;
            k.clone()
        })
    }

    fn insert(&mut self, host: String, key: Arc<CertifiedKey>) {
        self.clock += 1;
        if self.map.len() >= CACHE_MAX && !self.map.contains_key(&host) {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(h, _)| h.clone())
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(host, (key, self.clock));
    }
}

impl Minter {
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let cert_pem = std::fs::read_to_string(cert)
            .wrap_err_with(|| format!("cannot read {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .wrap_err_with(|| format!("cannot read {}", key.display()))?;
        let key = KeyPair::from_pem(&key_pem).wrap_err("the bottle CA key does not parse")?;
        let ca_der = rustls_pemfile_first_cert(&cert_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .wrap_err("the bottle CA certificate does not parse")?;
        Ok(Self {
            issuer,
            ca_der,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The certificate for `host`, minted on first use.
    pub fn for_host(&self, host: &str) -> Result<Arc<CertifiedKey>> {
        let host = host.to_ascii_lowercase();
        if let Some(k) = self
            .cache
            .lock()
            .map_err(|_| eyre!("certificate cache poisoned"))?
            .get(&host)
        {
            return Ok(k.clone());
        }
        let mut params =
            CertificateParams::new(vec![host.clone()]).wrap_err("bad host for a certificate")?;
        params
            .distinguished_name
            .push(DnType::CommonName, host.clone());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let leaf_key = KeyPair::generate().wrap_err("cannot generate a leaf key")?;
        let leaf = params
            .signed_by(&leaf_key, &self.issuer)
            .wrap_err("cannot sign a leaf certificate")?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let signing = provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| eyre!("cannot load the leaf key: {e}"))?;
        let certified = Arc::new(CertifiedKey::new(
            vec![leaf.der().clone(), self.ca_der.clone()],
            signing,
        ));
        self.cache
            .lock()
            .map_err(|_| eyre!("certificate cache poisoned"))?
            .insert(host, certified.clone());
        Ok(certified)
    }
}

fn rustls_pemfile_first_cert(pem: &str) -> Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| eyre!("the bottle CA certificate is not PEM: {e}"))
}

/// The client side toward upstreams: the system roots, plus `extra` (a PEM file) if given.
pub fn upstream_config(extra: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        for cert in CertificateDer::pem_file_iter(path)
            .wrap_err_with(|| format!("cannot read {}", path.display()))?
        {
            let cert = cert.map_err(|e| eyre!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| eyre!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| eyre!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server config presenting exactly one certificate.
pub fn server_config(key: Arc<CertifiedKey>) -> Result<Arc<rustls::ServerConfig>> {
    #[derive(Debug)]
    struct One(Arc<CertifiedKey>);
    impl rustls::server::ResolvesServerCert for One {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| eyre!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(key)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter() -> (tempfile::TempDir, Minter) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = ca.self_signed(&key).expect("ca");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write");
        std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).expect("write");
        let m = Minter::load(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).expect("load");
        (dir, m)
    }

    #[test]
    fn the_certificate_cache_is_bounded_and_keeps_what_is_in_use() {
        let (_dir, m) = minter();
        let first = m.for_host("a0.example.com").expect("mint");
        for i in 1..CACHE_MAX + 50 {
            m.for_host(&format!("a{i}.example.com")).expect("mint");
            // a0 stays in use, so it is never the one evicted.
            let again = m.for_host("a0.example.com").expect("cached");
            assert!(Arc::ptr_eq(&first, &again), "a0 was minted again at {i}");
        }
        let held = m.cache.lock().expect("lock").map.len();
        assert_eq!(held, CACHE_MAX);
        // The least recently used went: a1 is minted afresh.
        assert!(
            !m.cache
                .lock()
                .expect("lock")
                .map
                .contains_key("a1.example.com")
        );
    }
}
