//! Per-bottle loopback aliases, 127.0.0.16–127.0.0.31. On macOS, TSI filters by address only,
//! so a guest allowed `127.0.0.1/32` could reach every service on the host's loopback; giving
//! each bottle its own alias — its bundle's ports published there and nowhere else, the
//! guest's allowlist naming that /32 alone — narrows it to the bottle's own bundle.
//!
//! The engine is the source of truth: an alias is taken while a running bundle publishes a
//! port on it, so there is no reservation file to go stale. Linux routes all of 127.0.0.0/8 to
//! `lo`, so the same aliases need no setup there — and are used: with 127.0.0.1 for every
//! bottle, one guest could reach every other bottle's published services.

use super::Platform;
use crate::backend::{Backend, label, role};
use color_eyre::eyre::{Result, WrapErr, bail};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

pub const FIRST: u8 = 16;
pub const LAST: u8 = 31;

pub fn pool() -> impl Iterator<Item = Ipv4Addr> {
    (FIRST..=LAST).map(|n| Ipv4Addr::new(127, 0, 0, n))
}

/// The aliases running bundles publish on, read from the engine.
pub async fn in_use(backend: &dyn Backend) -> Result<Vec<Ipv4Addr>> {
    let bundles = backend
        .list_containers(&[(label::ROLE, role::BUNDLE)])
        .await?;
    let mut used: Vec<Ipv4Addr> = bundles
        .iter()
        .filter(|c| c.state == crate::backend::ContainerState::Running)
        .flat_map(|c| c.ports.iter())
        .filter_map(|p| match p.host_ip {
            Some(IpAddr::V4(ip)) if pool().any(|a| a == ip) => Some(ip),
            _ => None,
        })
        .collect();
    used.sort();
    used.dedup();
    Ok(used)
}

/// The lowest alias no running bundle publishes on, on every platform.
pub async fn allocate(backend: &dyn Backend, _platform: Platform, slug: &str) -> Result<Ipv4Addr> {
    let used = in_use(backend).await?;
    match pool().find(|a| !used.contains(a)) {
        Some(alias) => Ok(alias),
        None => bail!(
            "cannot give {slug} a loopback alias: all {} of 127.0.0.{FIRST}–127.0.0.{LAST} are held by running bottles; kill one first (bottle-tui ls shows them)",
            LAST - FIRST + 1
        ),
    }
}

/// The pool's aliases missing from `lo0`, judged from `ifconfig lo0` output.
pub fn missing(ifconfig_lo0: &str) -> Vec<Ipv4Addr> {
    let present: Vec<Ipv4Addr> = ifconfig_lo0
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("inet")).then(|| w.next()?.parse().ok())?
        })
        .collect();
    pool().filter(|a| !present.contains(a)).collect()
}

/// The one privileged command that adds every missing alias (they last until reboot).
pub fn add_command(missing: &[Ipv4Addr]) -> Option<Vec<String>> {
    if missing.is_empty() {
        return None;
    }
    let script = missing
        .iter()
        .map(|a| format!("ifconfig lo0 alias {a} up"))
        .collect::<Vec<_>>()
        .join(" && ");
    Some(vec!["sudo".into(), "sh".into(), "-c".into(), script])
}

/// On macOS, adds the pool's missing aliases with one `sudo` step (once per boot).
pub async fn ensure(platform: Platform, ifconfig: &Path) -> Result<()> {
    if platform == Platform::Linux {
        return Ok(());
    }
    let out = tokio::process::Command::new(ifconfig)
        .arg("lo0")
        .output()
        .await
        .wrap_err_with(|| format!("cannot run `{} lo0`", ifconfig.display()))?;
    let Some(cmd) = add_command(&missing(&String::from_utf8_lossy(&out.stdout))) else {
        return Ok(());
    };
    eprintln!(
        "adding loopback aliases 127.0.0.{FIRST}–127.0.0.{LAST} (once per boot; sudo may ask for your password)"
    );
    let status = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .await
        .wrap_err("cannot run sudo to add the loopback aliases")?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO0: &str = "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n\
        \toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>\n\
        \tinet 127.0.0.1 netmask 0xff000000\n\
        \tinet6 ::1 prefixlen 128\n\
        \tinet 127.0.0.16 netmask 0xff000000\n\
        \tinet 127.0.0.17 netmask 0xff000000\n";

    #[test]
    fn finds_the_missing_aliases_from_ifconfig_output() {
        let m = missing(LO0);
        assert_eq!(m.len(), 14);
        assert_eq!(m[0], Ipv4Addr::new(127, 0, 0, 18));
        assert!(!m.contains(&Ipv4Addr::new(127, 0, 0, 16)));
    }

    #[test]
    fn one_privileged_command_adds_them_all() {
        let cmd = add_command(&missing(LO0)).expect("some are missing");
        assert_eq!(&cmd[..3], ["sudo", "sh", "-c"]);
        assert_eq!(cmd[3].matches("ifconfig lo0 alias").count(), 14);
        assert!(cmd[3].starts_with("ifconfig lo0 alias 127.0.0.18 up && "));
        let all: String = pool()
            .map(|a| format!("\tinet {a} netmask 0xff000000\n"))
            .collect();
        assert_eq!(add_command(&missing(&all)), None, "nothing to add, no sudo");
    }
}
