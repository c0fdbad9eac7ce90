//! Where a daemon listens: an address, or `NAME:PORT` with the name resolved at start-up. The
//! bundle's daemons listen on their own alias (`gateway`, `git-gate`, `supervise`), which
//! Docker's DNS answers with the bundle's address on the bottle's internal network only — so
//! nothing on the egress bridge (the host, other containers there) reaches them.

use color_eyre::eyre::{Result, WrapErr, bail};
use std::net::{SocketAddr, ToSocketAddrs};

/// `spec` as one socket address: an IPv4 address of the name, when it is a name.
pub fn resolve(spec: &str) -> Result<SocketAddr> {
    if let Ok(a) = spec.parse() {
        return Ok(a);
    }
    let addrs: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .wrap_err_with(|| format!("cannot resolve the listen address `{spec}`"))?
        .collect();
    match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
        Some(a) => Ok(*a),
        None => bail!("the listen address `{spec}` resolves to nothing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_pass_and_names_resolve() {
        assert_eq!(
            resolve("0.0.0.0:8888").expect("addr"),
            "0.0.0.0:8888".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(resolve("localhost:9").expect("name").port(), 9);
        assert!(resolve("no-such-name.invalid:1").is_err());
        assert!(resolve("gateway").is_err(), "no port");
    }
}
