//! Test PKI: a private CA and a server certificate it signs, as files.

use std::path::Path;

/// A CA and a certificate for `name` (PEM files in `dir`), for an HTTPS origin the bundle reaches.
pub fn origin(dir: &Path, name: &str) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "private origin CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    std::fs::write(dir.join("origin-ca.pem"), ca_cert.pem()).expect("ca");
    std::fs::write(dir.join("origin.pem"), leaf.pem()).expect("cert");
    std::fs::write(dir.join("origin.key"), leaf_key.serialize_pem()).expect("key");
}
