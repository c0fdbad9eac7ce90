//! The per-bottle CA the gateway mints interception certificates with. Its key stays in the
//! state dir (0600) and the bundle; the agent only ever gets the certificate.

use crate::fsutil;
use color_eyre::eyre::{Result, WrapErr};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::Path;

pub const CERT_FILE: &str = "ca.pem";
pub const KEY_FILE: &str = "ca.key";

/// Makes the CA in `dir` unless a readable one is already there (a re-prepare must not pull the
/// trust anchor from under a running bottle).
pub fn ensure(dir: &Path, slug: &str) -> Result<()> {
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    if let (Ok(c), Ok(k)) = (
        std::fs::read_to_string(&cert),
        std::fs::read_to_string(&key),
    ) {
        if c.contains("BEGIN CERTIFICATE") && KeyPair::from_pem(&k).is_ok() {
            return Ok(());
        }
    }
    fsutil::private_dir(dir)?;
    let (cert_pem, key_pem) = generate(slug)?;
    fsutil::write(&key, key_pem.as_bytes(), fsutil::SECRET)?;
    fsutil::write(&cert, cert_pem.as_bytes(), fsutil::PUBLIC)
}

fn generate(slug: &str) -> Result<(String, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .wrap_err("cannot set up the bottle CA parameters")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("bottle-tui CA for {slug}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "bottle-tui");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let key = KeyPair::generate().wrap_err("cannot generate the bottle CA key")?;
    let cert = params
        .self_signed(&key)
        .wrap_err("cannot sign the bottle CA certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}
