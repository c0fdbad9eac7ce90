//! Addresses for bottle networks. Docker's default pools hand every network a /16 or /20 and
//! run out after about thirty networks — fifteen bottles. A bottle's networks hold two or three
//! containers, so each gets a /28 from a pool of our own (4096 of them in the default /16),
//! chosen against every subnet the engine already has and every one this process is creating.

use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Overrides the pool bottle networks take their /28s from.
pub const POOL_ENV: &str = "BOTTLE_TUI_SUBNET_POOL";
pub const DEFAULT_POOL: &str = "10.213.0.0/16";
pub const PREFIX: u8 = 28;

/// Subnets being created by this process right now (the engine lists them once made).
static IN_FLIGHT: Mutex<BTreeSet<Ipv4Net>> = Mutex::new(BTreeSet::new());

pub fn pool() -> Result<Ipv4Net, String> {
    let text = std::env::var(POOL_ENV).unwrap_or_else(|_| DEFAULT_POOL.to_owned());
    let net: Ipv4Net = text
        .parse()
        .map_err(|e| format!("{POOL_ENV}={text}: not an IPv4 CIDR ({e})"))?;
    if net.prefix_len() > PREFIX {
        return Err(format!(
            "{POOL_ENV}={text}: too small; it must hold at least one /{PREFIX}"
        ));
    }
    Ok(net.trunc())
}

/// Picks and reserves the first /28 of `pool` that overlaps nothing in `used`.
pub fn reserve(pool: Ipv4Net, used: &[IpNet]) -> Option<Reservation> {
    let mut flight = IN_FLIGHT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let free = pool.subnets(PREFIX).ok()?.find(|s| {
        !flight.contains(s)
            && !used.iter().any(|u| match u {
                IpNet::V4(u) => u.contains(&s.network()) || s.contains(&u.network()),
                IpNet::V6(_) => false,
            })
    })?;
    flight.insert(free);
    Some(Reservation(free))
}

/// Held while the network is being created; released when dropped.
#[derive(Debug)]
pub struct Reservation(pub Ipv4Net);

impl Drop for Reservation {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_free_28s_around_what_exists_and_what_is_in_flight() {
        let pool: Ipv4Net = "10.213.0.0/16".parse().unwrap();
        let used: Vec<IpNet> = vec![
            "10.213.0.0/28".parse().unwrap(),
            "172.17.0.0/16".parse().unwrap(),
            "10.213.0.32/27".parse().unwrap(),
        ];
        let a = reserve(pool, &used).unwrap();
        assert_eq!(a.0.to_string(), "10.213.0.16/28");
        let b = reserve(pool, &used).unwrap();
        assert_eq!(
            b.0.to_string(),
            "10.213.0.64/28",
            "skips the /27 and the reserved one"
        );
        drop(a);
        let c = reserve(pool, &used).unwrap();
        assert_eq!(c.0.to_string(), "10.213.0.16/28");
        // A pool inside a used network has nothing free.
        let covered: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(reserve(pool, &covered).is_none());
    }
}
